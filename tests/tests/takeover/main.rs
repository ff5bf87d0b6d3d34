//! Workers that die or shut down, and jobs whose message is lost: the tests start their own
//! `roomrec-worker` processes (short leases and message visibility) and sweeper, kill or stop
//! workers mid-recording or delete a job's message, and check that another worker continues
//! the job and that nothing already uploaded is lost. Run by `make test`
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
use support::{decodes, download, duration, objects, probe, wait_for_events, Setup};

/// The stack's jobs queue URL.
fn jobs_queue() -> String {
    roomrec_tests::stack_env("ROOMREC_JOBS_QUEUE_URL")
}

/// A sweeper of our own (`roomrec-admin sweep`) sweeping every second, counting a job as lost
/// after two seconds in INIT; stopped when dropped.
fn start_sweeper() -> tokio::process::Child {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/roomrec-admin");
    let state = roomrec_tests::stack_env("ROOMREC_STATE_DIR");
    let log = std::fs::File::create(format!("{state}/sweeper.log")).unwrap();
    tokio::process::Command::new(binary)
        .args(["sweep", "--every", "1"])
        .env("ROOMREC_SWEEP_INIT_GRACE_SECONDS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the admin binary is built by make test")
}

/// The worker holding the job now, if any.
async fn lease_owner(app: &str, job: &str) -> Option<String> {
    let record = store().await.get_job(&AppId::parse(app).unwrap(), &JobId::parse(job).unwrap()).await.unwrap();
    record.and_then(|r| r.lease).map(|lease| lease.owner)
}

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

/// SIGTERM, and the worker's clean exit.
async fn shut_down(worker: tokio::process::Child) {
    let pid = worker.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = worker.wait_with_output().await.unwrap();
    assert!(output.status.success(), "the worker exits cleanly on SIGTERM");
}

#[tokio::test]
async fn a_job_handed_over_ten_times_is_still_recorded_and_stops_on_request() {
    let setup = Setup::new(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&format!("{}.room3.fay", setup.app), 180, "640x360", &[]);
    let job = setup.start_job("room3", "fay", 30).await;
    // SQS dead-letters a message received five times (template.yaml); each hand-off must
    // wake the next worker with a fresh one.
    for round in 0..10 {
        let name = format!("relay{round}");
        let worker = start_worker(&name);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while lease_owner(&setup.app, &job).await.as_deref() != Some(name.as_str()) {
            assert!(tokio::time::Instant::now() < deadline, "hand-off {round}: {name} never took the job over");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        wait_for_events(&job, EventType::RecordNewFileStart, round + 1, Duration::from_secs(30)).await;
        shut_down(worker).await;
        assert_eq!(setup.job(&job).await["state"], "RUNNING", "hand-off {round} is not a stop");
    }
    let _last = start_worker("anchor");
    wait_for_events(&job, EventType::RecordNewFileStart, 11, Duration::from_secs(30)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["stop_reason"], "TENANT_STOP", "{stopped}");
    let files = stopped["record_files"].as_array().unwrap();
    assert_eq!(files.len(), 11, "one playlist per worker: {stopped}");
    for file in files {
        let key = file["obs_object"].as_str().unwrap();
        assert_eq!(objects(&setup.bucket, key).await.len(), 1, "{key} is in S3");
    }
    publisher.kill().await.ok();
}

#[tokio::test]
async fn a_job_whose_queue_message_was_deleted_is_woken_by_the_sweeper() {
    let setup = Setup::new(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&format!("{}.room4.gus", setup.app), 60, "640x360", &[]);
    let job = setup.start_job("room4", "gus", 30).await;
    // Take the job's message off the queue, as if it had been lost (no worker runs yet).
    let sqs = aws_sdk_sqs::Client::new(&roomrec_tests::aws().await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    'found: loop {
        assert!(tokio::time::Instant::now() < deadline, "the job's message never came");
        let received = sqs.receive_message().queue_url(jobs_queue()).max_number_of_messages(10).send().await.unwrap();
        for message in received.messages.unwrap_or_default() {
            let receipt = message.receipt_handle.unwrap();
            sqs.delete_message().queue_url(jobs_queue()).receipt_handle(receipt).send().await.unwrap();
            if message.body.unwrap_or_default().contains(&job) {
                break 'found;
            }
        }
    }
    let _worker = start_worker("woken");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(setup.job(&job).await["state"], "INIT", "no message, so no worker took it");

    let _sweeper = start_sweeper();
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 1, Duration::from_secs(20)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["record_files"].as_array().map(Vec::len), Some(1), "{stopped}");
    publisher.kill().await.ok();
}
