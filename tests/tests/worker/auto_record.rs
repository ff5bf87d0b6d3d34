use std::time::{Duration, Instant};

use roomrec_domain::callback::EventType;
use roomrec_tests::publish_colour;
use serde_json::{json, Value};

use crate::support::{decodes, download, final_events, objects, Setup};

/// The app's individual jobs in `room`, as the jobs API lists them.
async fn room_jobs(setup: &Setup, room: &str) -> Vec<Value> {
    let list = setup.api.get(&format!("/v2/apps/{}/individual-stream-jobs?room_id={room}", setup.app)).await.body;
    list["jobs"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_auto_record_rule_records_a_publish_to_nginx_rtmp_without_a_jobs_api_call() {
    let hls = json!({ "record_slice_duration": 2, "record_max_duration_to_merge_file": 5 });
    let setup = Setup::new(&["HLS"], hls, json!({})).await;
    let path = format!("/v2/apps/{}/record-rules/{}", setup.app, setup.rule);
    let enabled = setup.api.put(&path, &json!({ "auto_record": true })).await;
    assert_eq!(enabled.status, 200, "{:?}", enabled.body);

    // Only the media server speaks: nginx-rtmp's hook registers alice, the rule does the rest.
    let mut publisher = publish_colour(&setup.publish_url("autoroom", "alice").await, 12, "0xE03030", 440);
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        if let [job] = room_jobs(&setup, "autoroom").await.as_slice() {
            break job.clone();
        }
        assert!(Instant::now() < deadline, "no job was started for the publish");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        (job["user_id"].as_str(), job["record_param"]["record_rule_id"].as_str()),
        (Some("alice"), Some(setup.rule.as_str()))
    );
    setup.wait_for_state(&job_id, "RUNNING", Duration::from_secs(20)).await;
    assert!(publisher.wait().await.unwrap().success(), "the publisher failed");

    // The stream left and stayed away past the 5 s merge window: the job ends by itself.
    let stopped = setup.wait_for_state(&job_id, "STOPPED", Duration::from_secs(60)).await;
    assert_eq!(stopped["stop_reason"], "EXCEED_MAX_IDLE_TIME");
    assert_eq!(room_jobs(&setup, "autoroom").await.len(), 1, "one stream, one job");

    let stored = objects(&setup.bucket, &setup.prefix).await;
    let playlists: Vec<&String> = stored.iter().map(|(k, _)| k).filter(|k| k.ends_with(".m3u8")).collect();
    assert_eq!(playlists.len(), 1, "{stored:?}");
    assert!(playlists[0].contains(&format!("s_{job_id}_autoroom_alice")), "{}", playlists[0]);
    let dir = std::env::temp_dir().join(format!("roomrec-test-{job_id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let playlist = std::fs::read_to_string(download(&setup.bucket, playlists[0], &dir).await).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let segments: Vec<&str> = playlist.lines().filter(|l| l.ends_with(".ts")).collect();
    assert!(segments.len() >= 4, "12 s in 2 s slices: {playlist}");
    let folder = playlists[0].rsplit_once('/').unwrap().0;
    for uri in segments {
        assert!(decodes(&download(&setup.bucket, &format!("{folder}/{uri}"), &dir).await), "{uri} does not decode");
    }
    std::fs::remove_dir_all(&dir).ok();

    // Its events, for the callback, as for any job: in the outbox and through the API.
    let kinds: Vec<EventType> = final_events(&job_id).await.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds, [EventType::RecordNewFileStart, EventType::RecordFileComplete, EventType::CloudRecordOver]);
    let listed = setup.api.get(&format!("/v2/apps/{}/individual-stream-jobs/{job_id}/events", setup.app)).await;
    assert_eq!(listed.body["events"].as_array().map(Vec::len), Some(3), "{:?}", listed.body);
}
