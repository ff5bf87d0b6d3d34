use std::time::Duration;

use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::ports::JobStore;
use roomrec_tests::{publish, store};
use serde_json::json;

use crate::support::{download, duration, objects, probe, Setup};

/// Runs `publisher` to its end (it publishes for a fixed time).
async fn finish(mut publisher: tokio::process::Child) {
    let status = publisher.wait().await.unwrap();
    assert!(status.success(), "the publisher failed: {status}");
}

/// The durations of the MP4 files under `setup`'s prefix, in key order (keys hold the start time).
async fn mp4_durations(setup: &Setup, job: &str) -> Vec<f64> {
    let dir = std::env::temp_dir().join(format!("roomrec-test-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut keys: Vec<String> = objects(&setup.bucket, &setup.prefix)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.ends_with(".mp4"))
        .collect();
    keys.sort();
    let mut durations = Vec::new();
    for key in keys {
        durations.push(duration(&probe(&download(&setup.bucket, &key, &dir).await)));
    }
    std::fs::remove_dir_all(&dir).ok();
    durations
}

#[tokio::test]
async fn a_pause_shorter_than_the_merge_window_continues_the_file_and_a_longer_one_starts_another() {
    let merge = json!({ "record_max_duration_to_merge_file": 8 });
    let setup = Setup::new(
        &["HLS", "MP4"],
        json!({ "record_slice_duration": 2, "record_max_duration_to_merge_file": 8 }),
        merge,
    )
    .await;
    let job = setup.start_job("pauses", "carol", 60).await;
    let url = setup.publish_url("pauses", "carol").await;
    finish(publish(&url, 10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    finish(publish(&url, 10)).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    finish(publish(&url, 8)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;

    let durations = mp4_durations(&setup, &job).await;
    assert_eq!(durations.len(), 2, "MP4 files of {durations:?} s");
    assert!((16.0..=22.0).contains(&durations[0]), "the 2 s pause merged 10 + 10 s: {durations:?}");
    assert!((5.5..=9.0).contains(&durations[1]), "the 12 s pause started a new file: {durations:?}");
    let stored = objects(&setup.bucket, &setup.prefix).await;
    let playlists: Vec<_> = stored.iter().filter(|(k, _)| k.ends_with(".m3u8")).collect();
    assert_eq!(playlists.len(), 2, "{stored:?}");
    let listed = setup.job(&job).await["record_files"].as_array().map(Vec::len);
    assert_eq!(listed, Some(4), "the job lists its two HLS and two MP4 files");
    let key = (AppId::parse(&setup.app).unwrap(), JobId::parse(&job).unwrap());
    let item = store().await.get_jobs(&[key]).await.unwrap();
    assert_eq!(item[0].job.record_files, None, "the job's own item holds none of them: they are items of their own");
}

#[tokio::test]
async fn a_record_cycle_rolls_the_recording_into_a_new_file() {
    let setup = Setup::new(&["MP4"], json!({}), json!({ "record_cycle": 60 })).await;
    let job = setup.start_job("cycles", "dave", 30).await;
    finish(publish(&setup.publish_url("cycles", "dave").await, 75)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;

    let durations = mp4_durations(&setup, &job).await;
    assert_eq!(durations.len(), 2, "MP4 files of {durations:?} s");
    assert!((59.0..=62.0).contains(&durations[0]), "the first file is one 60 s cycle: {durations:?}");
    assert!((10.0..=17.0).contains(&durations[1]), "the rest of the 75 s is in the second: {durations:?}");
    let files = setup.job(&job).await["record_files"].as_array().unwrap().len();
    assert_eq!(files, 2, "the job lists both files");
}
