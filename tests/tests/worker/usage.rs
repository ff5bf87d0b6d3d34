//! Metering end to end: a recorded job's usage on the job, on its `CLOUD_RECORD_OVER` and in
//! `GET /v2/usage`, checked against the files in moto's S3 and ffprobe.

use std::time::Duration;

use reqwest::StatusCode;
use roomrec_domain::callback::EventType;
use roomrec_tests::{publish, Api};
use serde_json::{json, Value};

use crate::support::{download, duration, final_events, objects, probe, Setup};

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

#[tokio::test]
async fn a_recorded_jobs_usage_matches_its_files_and_is_summed_for_its_account_only() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish(&setup.publish_url("room1", "alice").await, 40);
    let job = setup.start_job("room1", "alice", 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();

    let usage = &stopped["usage"];
    let stored = objects(&setup.bucket, &setup.prefix).await;
    let media_bytes: u64 =
        stored.iter().filter(|(k, _)| k.ends_with(".ts") || k.ends_with(".mp4")).map(|(_, s)| s).sum();
    assert_eq!(usage["bytes_stored"], media_bytes, "the media objects' sizes: {stored:?} {usage}");
    let mp4 = stored.iter().find(|(k, _)| k.ends_with(".mp4")).unwrap();
    let dir = std::env::temp_dir().join(roomrec_tests::unique("usage"));
    std::fs::create_dir_all(&dir).unwrap();
    let file_seconds = duration(&probe(&download(&setup.bucket, &mp4.0, &dir).await));
    let _ = std::fs::remove_dir_all(&dir);
    let mp4_seconds = number(&usage["recorded_seconds"]["mp4"]);
    assert!((mp4_seconds - file_seconds).abs() < 1.0, "mp4 {mp4_seconds} s against ffprobe's {file_seconds} s");
    let hls_seconds = number(&usage["recorded_seconds"]["hls"]);
    assert!((hls_seconds - file_seconds).abs() < 2.5, "hls {hls_seconds} s against the MP4's {file_seconds} s");
    let cpu = number(&usage["cpu_seconds"]);
    assert!(cpu > 0.0 && cpu < file_seconds * 2.0, "a remux's CPU-seconds: {cpu}");
    assert_eq!(usage["mixed_pane_seconds"], 0.0, "not a mix");

    let over = final_events(&job).await;
    let over = over.iter().find(|e| e.event_type == EventType::CloudRecordOver).unwrap();
    assert_eq!(serde_json::to_value(over.usage.unwrap()).unwrap(), *usage, "the event says the same");

    let today = chrono::Utc::now().date_naive().to_string();
    let summary = setup.api.get(&format!("/v2/usage?from={today}&to={today}")).await;
    assert_eq!(summary.status, StatusCode::OK, "{:?}", summary.body);
    let apps = summary.body["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 1, "{:?}", summary.body);
    assert_eq!(apps[0]["app_id"], setup.app.as_str());
    assert_eq!(apps[0]["usage"], *usage, "one job: its usage");
    assert_eq!(summary.body["total"], *usage);

    let other = Api::new_account().await.get(&format!("/v2/usage?from={today}")).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body["apps"], json!([]), "another account sees none of it");
    let bad = setup.api.get("/v2/usage?from=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error_msg().contains("from"), "{:?}", bad.body);
}
