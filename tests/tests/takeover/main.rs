//! Workers that die or shut down: the tests start their own `roomrec-worker` processes (short
//! leases and message visibility), kill or stop them mid-recording, and check that another
//! worker continues the job and that nothing already uploaded is lost. Run by `make test`
//! before the shared worker starts, one test at a time (each test's workers would take the
//! other's jobs), so only these workers take jobs.
#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

#[path = "../worker/support.rs"]
#[allow(dead_code)]
mod support;

use std::process::Stdio;
use std::time::Duration;

use roomrec_domain::callback::EventType;
use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::ports::JobStore;
use roomrec_tests::publish_with;
use roomrec_tests::store;
use serde_json::json;
use support::{decodes, download, duration, events, objects, probe, Setup};

/// A worker process of our own, stopped (SIGKILL) when dropped.
fn start_worker(name: &str) -> tokio::process::Child {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/roomrec-worker");
    let state = roomrec_tests::stack_env("ROOMREC_STATE_DIR");
    let log = std::fs::File::create(format!("{state}/worker-{name}.log")).unwrap();
    tokio::process::Command::new(binary)
        .env("ROOMREC_WORKER_ID", name)
        .env("ROOMREC_LEASE_SECONDS", "4")
        .env("ROOMREC_VISIBILITY_SECONDS", "6")
        .env("ROOMREC_SPOOL_DIR", format!("{state}/spool-{name}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the worker binary is built by make test")
}

async fn open_mp4_parts(app: &str, job: &str) -> usize {
    let store = store().await;
    let job = store.get_job(&AppId::parse(app).unwrap(), &JobId::parse(job).unwrap()).await.unwrap().unwrap();
    job.open_uploads.iter().filter_map(|u| u.multipart.as_ref()).map(|m| m.etags.len()).sum()
}

async fn wait_for_events(
    job: &str,
    kind: EventType,
    count: usize,
    within: Duration,
) -> Vec<roomrec_domain::event::RecordEvent> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let events = events(job).await;
        if events.iter().filter(|e| e.event_type == kind).count() >= count {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "never saw {count} {kind:?}: {events:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_job_whose_worker_dies_is_taken_over_and_its_uploaded_mp4_parts_become_a_file() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    // About 10 Mbit/s, so the first 5 MiB MP4 part is uploaded within seconds.
    let mut publisher = publish_with(&format!("{}.room1.dora", setup.app), 90, "1280x720", &["-qp", "12"]);
    let mut first = start_worker("doomed");
    let job = setup.start_job("room1", "dora", 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while open_mp4_parts(&setup.app, &job).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no MP4 part was uploaded");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    first.kill().await.unwrap(); // SIGKILL: no chance to finish anything

    let _second = start_worker("rescuer");
    let events = wait_for_events(&job, EventType::RecordFileComplete, 2, Duration::from_secs(40)).await;
    let recovered: Vec<_> = events.iter().filter(|e| e.event_type == EventType::RecordFileComplete).collect();
    assert!(recovered.iter().all(|e| e.detail_message.contains("took the job over")), "{recovered:?}");

    // What the dead worker uploaded is a playable file now.
    let dir = std::env::temp_dir().join(format!("roomrec-takeover-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mp4_event = recovered.iter().find(|e| e.file.as_ref().unwrap().obs_object.ends_with(".mp4")).unwrap();
    let facts = mp4_event.file.as_ref().unwrap();
    let stored = objects(&setup.bucket, &facts.obs_object).await;
    assert_eq!(stored.len(), 1, "the MP4 object exists");
    assert_eq!(Some(stored[0].1), facts.file_size, "its size is what was uploaded");
    let mp4 = download(&setup.bucket, &facts.obs_object, &dir).await;
    assert!(decodes(&mp4), "the recovered MP4 decodes");
    assert!(duration(&probe(&mp4)) > 2.0, "{}", probe(&mp4));
    let playlist = recovered.iter().find(|e| e.file.as_ref().unwrap().obs_object.ends_with(".m3u8")).unwrap();
    let text =
        std::fs::read_to_string(download(&setup.bucket, &playlist.file.as_ref().unwrap().obs_object, &dir).await)
            .unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "the abandoned playlist is closed: {text}");

    // The rescuer continues the recording in new files, then stops it on request.
    wait_for_events(&job, EventType::RecordNewFileStart, 4, Duration::from_secs(40)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["record_files"].as_array().unwrap().len(), 4, "two recovered and two new files: {stopped}");
    publisher.kill().await.ok();
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_worker_told_to_shut_down_finishes_its_files_and_hands_the_job_on() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let mut publisher = publish_with(&format!("{}.room2.eve", setup.app), 90, "640x360", &[]);
    let leaving = start_worker("leaving");
    let job = setup.start_job("room2", "eve", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let pid = leaving.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = leaving.wait_with_output().await.unwrap();
    assert!(output.status.success(), "the worker exits cleanly on SIGTERM");
    let handed_back = setup.job(&job).await;
    assert_eq!(handed_back["state"], "RUNNING", "a shutdown is not a stop: {handed_back}");
    assert_eq!(handed_back["record_files"].as_array().map(Vec::len), Some(1), "its file was finished: {handed_back}");

    let _next = start_worker("next");
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["record_files"].as_array().unwrap().len(), 2, "{stopped}");
    publisher.kill().await.ok();
}
