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

mod faults;

use std::time::Duration;

use faults::{
    coverage, delete_message, etags, lease_owner, moto, shut_down, signal, start_sweeper, start_worker,
    start_worker_on_small_spool, start_worker_with, wait_for_owner,
};
use roomrec_domain::callback::EventType;
use roomrec_faultproxy::{FaultProxy, Mode};
use roomrec_testkit::receiver::Receiver;
use roomrec_tests::publish_with;
use serde_json::{json, Value};
use support::{objects, wait_for_events, Setup};

/// Most media a crashed or frozen worker's recording may lose, per format (the goal).
const TAKEOVER_LOSS: f64 = 15.0;

#[tokio::test]
async fn a_job_whose_worker_dies_resumes_on_another_within_seconds_and_loses_no_uploaded_media() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room1", "dora").await, 120, "640x360", &[]);
    // Two workers, as a fleet runs: the one holding the job is killed, the other takes over.
    let mut workers =
        std::collections::HashMap::from([("able", start_worker("able")), ("baker", start_worker("baker"))]);
    let job = setup.start_job("room1", "dora", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let owner = lease_owner(&setup.app, &job).await.unwrap();
    let mut doomed = workers.remove(owner.as_str()).unwrap();
    doomed.kill().await.unwrap(); // SIGKILL: no chance to finish anything
    let killed_at = chrono::Utc::now();

    let events = wait_for_events(&job, EventType::RecordNewFileStart, 4, Duration::from_secs(30)).await;
    let resumed = events.iter().filter(|e| e.event_type == EventType::RecordNewFileStart).nth(2).unwrap();
    let gap = (resumed.create_time.as_datetime() - killed_at).num_milliseconds() as f64 / 1000.0;
    assert!(gap < TAKEOVER_LOSS, "recording resumed {gap:.1} s after the kill");
    tokio::time::sleep(Duration::from_secs(8)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["stop_reason"], "TENANT_STOP", "{stopped}");
    publisher.kill().await.ok();

    let events = support::final_events(&job).await;
    let recovered: Vec<_> = events.iter().filter(|e| e.detail_message.contains("took the job over")).collect();
    assert_eq!(recovered.len(), 2, "the dead worker's playlist and MP4 were completed: {events:?}");
    // Their timelines as the dead worker last stored them (the first at 10 s of media).
    for done in &recovered {
        let facts = done.file.as_ref().unwrap();
        let key = facts.timeline_object.as_deref().unwrap_or_else(|| panic!("a timeline for {}", facts.obs_object));
        let timeline = support::json_object(&setup.bucket, key).await;
        assert_eq!(timeline["entries"][0]["type"], "join", "{timeline}");
        assert!(timeline["duration_ms"].as_u64().unwrap() >= 9_000, "a snapshot after 10 s of media: {timeline}");
    }
    let (hls, mp4) = (coverage(&setup, &events, "m3u8").await, coverage(&setup, &events, "mp4").await);
    // What the dead worker had recorded up to a few seconds before the kill is in its files:
    // HLS up to its last whole segment, MP4 up to its last pending upload.
    let dead_for =
        (killed_at - events[0].file.as_ref().unwrap().start_time.as_datetime()).num_milliseconds() as f64 / 1000.0;
    assert!(hls.files[0].1 > dead_for - 2.0 - 2.0, "HLS kept {:.1} s of {dead_for:.1} s: {hls:?}", hls.files[0].1);
    assert!(mp4.files[0].1 > dead_for - 2.0 - 2.0, "MP4 kept {:.1} s of {dead_for:.1} s: {mp4:?}", mp4.files[0].1);
    assert!(hls.lost() <= TAKEOVER_LOSS, "HLS lost {:.1} s: {hls:?}", hls.lost());
    assert!(mp4.lost() <= TAKEOVER_LOSS, "MP4 lost {:.1} s: {mp4:?}", mp4.lost());
    let pending = objects(&setup.bucket, &setup.prefix).await.into_iter().filter(|(k, _)| k.contains(".pending/"));
    assert_eq!(pending.count(), 0, "the pending MP4 uploads were cleaned up");
    eprintln!("kill -9: resumed after {gap:.1} s; lost HLS {:.1} s, MP4 {:.1} s", hls.lost(), mp4.lost());
}

#[tokio::test]
async fn a_worker_frozen_past_its_lease_changes_nothing_the_new_owner_wrote() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room5", "ike").await, 120, "640x360", &[]);
    let sleeper = start_worker("sleeper");
    let job = setup.start_job("room5", "ike", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    signal(&sleeper, "-STOP"); // a GC pause, a partition: alive, but past its lease when it wakes
    let _rescuer = start_worker("rescuer");
    wait_for_owner(&setup, &job, "rescuer", Duration::from_secs(30)).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 4, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    let before = etags(&setup.bucket, &setup.prefix).await;

    signal(&sleeper, "-CONT");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = etags(&setup.bucket, &setup.prefix).await;
    for (key, etag) in &before {
        assert_eq!(after.get(key), Some(etag), "{key} was changed or deleted after the sleeper woke");
    }
    // Each view signs its URLs afresh: the record is the rest.
    let unsigned = |mut view: Value| {
        view["record_files"].as_array_mut().into_iter().flatten().for_each(|f| {
            let file = f.as_object_mut().unwrap();
            file.remove("download_url");
            file.remove("timeline_url");
        });
        view
    };
    assert_eq!(unsigned(setup.job(&job).await), unsigned(stopped), "the job's record is as the rescuer left it");
    publisher.kill().await.ok();
}

#[tokio::test]
async fn a_worker_told_to_shut_down_finishes_its_files_and_hands_the_job_on() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room2", "eve").await, 90, "640x360", &[]);
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
    let finished = &handed_back["record_files"][0];
    let timeline = finished["timeline_object"].as_str().expect("with its timeline");
    assert_eq!(timeline, format!("{}.timeline.json", finished["obs_object"].as_str().unwrap()));
    // Metering: the leaving worker recorded what its threads spent before it went.
    let first_cpu = handed_back["usage"]["cpu_seconds"].as_f64().unwrap_or_default();
    assert!(first_cpu > 0.0, "{handed_back}");

    let _next = start_worker("next");
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["record_files"].as_array().unwrap().len(), 2, "{stopped}");
    publisher.kill().await.ok();
    // Both workers' spending and both files are in the job's usage.
    let usage = &stopped["usage"];
    assert!(usage["cpu_seconds"].as_f64().unwrap() > first_cpu, "the next worker's CPU is added: {usage}");
    let files = stopped["record_files"].as_array().unwrap();
    let seconds: f64 = files.iter().map(|f| f["record_duration"].as_f64().unwrap()).sum();
    let bytes: u64 = files.iter().map(|f| f["file_size"].as_u64().unwrap()).sum();
    assert!((usage["recorded_seconds"]["mp4"].as_f64().unwrap() - seconds).abs() < 0.01, "{usage}");
    assert_eq!(usage["bytes_stored"], bytes, "{usage}");
}

#[tokio::test]
async fn a_paused_job_handed_over_stays_paused_on_the_next_worker_until_resumed() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room7", "pat").await, 90, "640x360", &[]);
    let leaving = start_worker("leaving");
    let job = setup.start_job("room7", "pat", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pause = format!("/v2/apps/{}/individual-stream-jobs/{job}/pause", setup.app);
    assert_eq!(setup.api.post(&pause, &json!({})).await.status, 200);
    wait_for_events(&job, EventType::RecordPaused, 1, Duration::from_secs(10)).await;

    // Nothing is recorded to overlap: the leaving worker finishes its file at once.
    shut_down(leaving).await;
    let _next = start_worker("next");
    wait_for_owner(&setup, &job, "next", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = setup.job(&job).await;
    assert_eq!((held["state"].as_str(), held["paused"].as_bool()), (Some("RUNNING"), Some(true)), "{held}");
    let kinds: Vec<EventType> = support::events(&job).await.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds.iter().filter(|k| **k == EventType::RecordNewFileStart).count(), 1, "held: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == EventType::RecordPaused).count(), 1, "announced once: {kinds:?}");

    let resume = format!("/v2/apps/{}/individual-stream-jobs/{job}/resume", setup.app);
    assert_eq!(setup.api.post(&resume, &json!({})).await.status, 200);
    wait_for_events(&job, EventType::RecordResumed, 1, Duration::from_secs(10)).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["record_files"].as_array().unwrap().len(), 2, "{stopped}");
    publisher.kill().await.ok();
}

/// Most media one hand-off may lose (the goal).
const HANDOFF_LOSS: f64 = 2.0;

#[tokio::test]
async fn a_job_handed_over_ten_times_is_still_recorded_and_stops_on_request() {
    let setup = Setup::new(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room3", "fay").await, 240, "640x360", &[]);
    let job = setup.start_job("room3", "fay", 30).await;
    let mut current = start_worker("relay0");
    wait_for_owner(&setup, &job, "relay0", Duration::from_secs(30)).await;
    // SQS dead-letters a message received five times (template.yaml); each hand-off must
    // wake the next worker with a fresh one. As in a rolling deploy, the next worker is up
    // before the current one is told to shut down.
    for round in 1..=10 {
        let name = format!("relay{round}");
        let next = start_worker(&name);
        wait_for_events(&job, EventType::RecordNewFileStart, round, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        shut_down(current).await;
        assert_eq!(setup.job(&job).await["state"], "RUNNING", "hand-off {round} is not a stop");
        wait_for_owner(&setup, &job, &name, Duration::from_secs(30)).await;
        current = next;
    }
    wait_for_events(&job, EventType::RecordNewFileStart, 11, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["stop_reason"], "TENANT_STOP", "{stopped}");
    assert_eq!(stopped["record_files"].as_array().unwrap().len(), 11, "one playlist per worker: {stopped}");
    publisher.kill().await.ok();

    let hls = coverage(&setup, &support::final_events(&job).await, "m3u8").await;
    eprintln!("ten hand-offs: lost {:.1} s of HLS, {:.2} s per hand-off", hls.lost(), hls.lost() / 10.0);
    assert!(hls.lost() <= 10.0 * HANDOFF_LOSS, "lost {:.1} s in ten hand-offs: {hls:?}", hls.lost());
}

#[tokio::test]
async fn a_job_whose_queue_message_was_deleted_is_woken_by_the_sweeper() {
    let setup = Setup::new(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room4", "gus").await, 60, "640x360", &[]);
    let job = setup.start_job("room4", "gus", 30).await;
    // Take the job's message off the queue, as if it had been lost (no worker runs yet).
    delete_message(&job).await;
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

#[tokio::test]
async fn the_recordings_bucket_aborts_multipart_uploads_nobody_finished_after_a_day() {
    let bucket = roomrec_tests::stack_env("ROOMREC_RECORDINGS_BUCKET");
    let lifecycle = support::s3().await.get_bucket_lifecycle_configuration().bucket(bucket).send().await.unwrap();
    let days: Vec<Option<i32>> = lifecycle
        .rules()
        .iter()
        .filter_map(|rule| rule.abort_incomplete_multipart_upload())
        .map(|abort| abort.days_after_initiation())
        .collect();
    assert_eq!(days, [Some(1)], "{lifecycle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_aws_connections_for_a_while_lose_no_media() {
    // The short version of `make chaos`'s network faults: 15 s of refused connections to S3,
    // DynamoDB and SQS (a fault proxy in front of moto) while the worker records.
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), moto()).await.unwrap();
    let endpoint = format!("http://{}", proxy.listen_addr());
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room6", "jo").await, 90, "640x360", &[]);
    let _worker = start_worker_with("cut-off", &[("AWS_ENDPOINT_URL", endpoint.as_str())]);
    let job = setup.start_job("room6", "jo", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.set_mode(Mode::Refuse, Some(Duration::from_secs(15))).await.unwrap();
    tokio::time::sleep(Duration::from_secs(25)).await;
    stopped_having_lost_nothing(&setup, &job, &mut publisher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_object_storage_alone_leaves_the_job_with_the_worker_that_records_it() {
    // Only S3 goes through the fault proxy: DynamoDB and SQS answer throughout, so a lease
    // that lapsed while uploads were retried would have the sweeper wake the standby worker,
    // which would take the job over while the first one still records it.
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), moto()).await.unwrap();
    let s3 = format!("http://{}", proxy.listen_addr());
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room9", "mo").await, 90, "640x360", &[]);
    let _worker = start_worker_with("s3-cut-off", &[("AWS_ENDPOINT_URL_S3", s3.as_str())]);
    let job = setup.start_job("room9", "mo", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    let (_standby, _sweeper) = (start_worker("standby"), start_sweeper());
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set_mode(Mode::Refuse, Some(Duration::from_secs(30))).await.unwrap();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let owner = lease_owner(&setup.app, &job).await;
        assert_eq!(owner.as_deref(), Some("s3-cut-off"), "the job changed hands during the outage");
    }
    stopped_having_lost_nothing(&setup, &job, &mut publisher).await;
}

/// Stops `job` on request and checks that its one HLS and one MP4 file, never interrupted,
/// lost at most a second of what `publisher` sent.
async fn stopped_having_lost_nothing(setup: &Setup, job: &str, publisher: &mut tokio::process::Child) {
    setup.stop(job).await;
    let stopped = setup.wait_for_state(job, "STOPPED", Duration::from_secs(60)).await;
    assert_eq!(stopped["stop_reason"], "TENANT_STOP", "{stopped}");
    publisher.kill().await.ok();

    let events = support::final_events(job).await;
    let (hls, mp4) = (coverage(setup, &events, "m3u8").await, coverage(setup, &events, "mp4").await);
    assert_eq!((hls.files.len(), mp4.files.len()), (1, 1), "one file each, never interrupted: {hls:?} {mp4:?}");
    assert!(hls.lost() <= 1.0 && mp4.lost() <= 1.0, "lost HLS {:.1} s, MP4 {:.1} s", hls.lost(), mp4.lost());
}

#[tokio::test]
async fn a_full_spool_disk_fails_the_job_with_its_reason_and_keeps_what_was_uploaded() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room7", "kay").await, 120, "640x360", &[]);
    let _worker = start_worker_on_small_spool("cramped", &[], 6);
    let job = setup.start_job("room7", "kay", 30).await;
    let failed = setup.wait_for_state(&job, "FAILED", Duration::from_secs(120)).await;
    assert_eq!(failed["stop_reason"], "INTERNAL_ERROR", "{failed}");
    publisher.kill().await.ok();

    let events = support::final_events(&job).await;
    let last = events.last().unwrap();
    assert!(last.detail_message.starts_with("SPOOL_FULL: "), "the reason names the full disk: {last:?}");
    // Every file that was uploaded is complete and plays.
    let (hls, mp4) = (coverage(&setup, &events, "m3u8").await, coverage(&setup, &events, "mp4").await);
    assert!(hls.media > 5.0 && mp4.media > 5.0, "{hls:?} {mp4:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_past_its_spool_budget_while_storage_is_unreachable_fails_and_keeps_its_media() {
    let proxy = FaultProxy::start("127.0.0.1:0".parse().unwrap(), moto()).await.unwrap();
    let endpoint = format!("http://{}", proxy.listen_addr());
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room8", "lee").await, 90, "640x360", &[]);
    let settings = [("AWS_ENDPOINT_URL", endpoint.as_str()), ("ROOMREC_SPOOL_BUDGET_MB", "1")];
    let _worker = start_worker_with("budgeted", &settings);
    let job = setup.start_job("room8", "lee", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Storage unreachable for 20 s: the backlog passes 1 MiB within seconds.
    proxy.set_mode(Mode::Refuse, Some(Duration::from_secs(20))).await.unwrap();
    let failed = setup.wait_for_state(&job, "FAILED", Duration::from_secs(120)).await;
    assert_eq!(failed["stop_reason"], "INTERNAL_ERROR", "{failed}");
    publisher.kill().await.ok();

    let events = support::final_events(&job).await;
    let last = events.last().unwrap();
    assert!(last.detail_message.starts_with("UPLOADS_BEHIND: "), "the reason names the budget: {last:?}");
    // What was spooled was still uploaded once storage came back, and plays.
    let (hls, mp4) = (coverage(&setup, &events, "m3u8").await, coverage(&setup, &events, "mp4").await);
    assert!(hls.media > 6.0 && mp4.media > 6.0, "the media before the outage and spooled in it: {hls:?} {mp4:?}");
}

/// How the ECS agent answers a protection change (amazon-ecs-agent's `TaskProtectionResponse`).
fn agent_answer() -> serde_json::Value {
    json!({ "protection": {
        "ExpirationDate": "2026-11-29T10:00:00Z",
        "ProtectionEnabled": true,
        "TaskArn": "arn:aws:ecs:us-east-1:123456789012:task/roomrec/0123456789abcdef",
    }})
}

/// What each request to the agent asked for, in order: `Some(minutes)` protects, `None` clears.
fn protections(agent: &Receiver) -> Vec<Option<u64>> {
    let asked = |request: &roomrec_testkit::receiver::Received| {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("PUT", "/api/task-1/task-protection/v1/state"));
        let body = request.json();
        match body["ProtectionEnabled"].as_bool() {
            Some(true) => Some(body["ExpiresInMinutes"].as_u64().expect("a protection names its length")),
            Some(false) => None,
            None => panic!("not a protection change: {body}"),
        }
    };
    agent.received().iter().map(asked).collect()
}

#[tokio::test]
async fn a_worker_is_protected_from_scale_in_while_it_records_and_not_after_its_last_job() {
    // The agent's endpoint as ECS gives it to a task: ECS_AGENT_URI, a path under it.
    let agent = Receiver::start_answering(&agent_answer()).await.unwrap();
    let setup = Setup::new(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&setup.publish_url("room9", "max").await, 150, "640x360", &[]);
    let agent_uri = format!("http://{}/api/task-1", agent.addr);
    let guarded = start_worker_with("guarded", &[("ECS_AGENT_URI", agent_uri.as_str())]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(protections(&agent), [], "an idle worker leaves its task unprotected");

    let job = setup.start_job("room9", "max", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 1, Duration::from_secs(30)).await;
    assert_eq!(protections(&agent), [Some(10)], "protected while it records");
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    agent.wait_for(2, Duration::from_secs(10)).await.unwrap();
    assert_eq!(protections(&agent), [Some(10), None], "unprotected once its job has ended");

    // Told to shut down, it hands its job over, and is unprotected before it exits.
    let job = setup.start_job("room9", "max", 30).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 1, Duration::from_secs(30)).await;
    assert_eq!(protections(&agent), [Some(10), None, Some(10)], "protected again");
    shut_down(guarded).await;
    assert_eq!(protections(&agent), [Some(10), None, Some(10), None], "unprotected when the worker exits");

    // Another worker continues the handed-over job until it is stopped.
    let _next = start_worker("unguarded");
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();
}

#[tokio::test]
async fn a_worker_without_room_for_a_mix_leaves_it_queued_until_its_recordings_end() {
    let individual = Setup::new(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mixing = Setup::for_mix(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish_with(&individual.publish_url("room10", "ned").await, 90, "640x360", &[]);
    // 30 units: a 640x360 grid mix (4 to encode, 75 for the panes it may decode) takes all of them.
    let _worker = start_worker_with("narrow", &[("ROOMREC_MAX_JOBS", "30")]);
    let recording = individual.start_job("room10", "ned", 30).await;
    wait_for_events(&recording, EventType::RecordNewFileStart, 1, Duration::from_secs(30)).await;

    let mix = mixing.start_mix(json!({ "room_id": "room11", "encode_template": "640x360_15_500" })).await;
    // Declined every couple of seconds, each time with a fresh message: more declines than
    // SQS's five receives before dead-lettering, and the job still waits.
    tokio::time::sleep(Duration::from_secs(14)).await;
    assert_eq!(mixing.job(&mix).await["state"], "INIT", "no room beside the recording");
    assert_eq!(individual.job(&recording).await["state"], "RUNNING");

    individual.stop(&recording).await;
    individual.wait_for_state(&recording, "STOPPED", Duration::from_secs(30)).await;
    mixing.wait_for_state(&mix, "RUNNING", Duration::from_secs(10)).await;
    mixing.stop(&mix).await;
    let stopped = mixing.wait_for_state(&mix, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["stop_reason"], "TENANT_STOP", "{stopped}");
    publisher.kill().await.ok();
}
