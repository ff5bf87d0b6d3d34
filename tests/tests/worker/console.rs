//! The web console in a real browser: Debian's chromium, headless, driven by playwright-core
//! (tests/console/console-test.mjs) through `/console/` of the stack's gateway, on a job this
//! test records with the worker (watched live, then played) and whose events the deliverer
//! sends to a real receiver.

use std::time::Duration;

use roomrec_testkit::receiver::Receiver;
use roomrec_tests::{publish, stack_env};
use serde_json::{json, Value};

use crate::support::Setup;

/// The callback signing key of the test's app (32 printable characters).
const AUTH_KEY: &str = "c0ns01ec0ns01ec0ns01ec0ns01ec0ns";

/// The browser script's own bound: three minutes, far past its 30 s steps.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

/// How long the test publisher sends: the live view watches part of it.
const PUBLISH_SECONDS: u32 = 20;

/// Seconds of HLS in storage before the browser opens the live view: three 2 s segments.
const LIVE_START_SECONDS: f64 = 6.0;

#[tokio::test]
async fn the_console_signs_in_watches_a_job_live_plays_its_files_and_redelivers_an_event() {
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let callback = json!({ "url": receiver.url(), "auth_key": AUTH_KEY,
        "notify_event_subscription": ["RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE", "CLOUD_RECORD_OVER",
            "RECORD_PAUSED", "RECORD_RESUMED"] });
    setup.api.set_callback(&setup.app, &callback).await.unwrap();
    // Stopped from the page; else by itself 5 s after the publisher stops.
    let job = setup.start_job("console", "erin", 5).await;
    let mut publisher = publish(&setup.publish_url("console", "erin").await, PUBLISH_SECONDS);
    wait_for_live_playlist(&setup, &job).await;

    let (key_id, secret) = setup.api.credential();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/console/console-test.mjs");
    let run = tokio::process::Command::new("node")
        .arg(script)
        .env("CONSOLE_BASE_URL", stack_env("ROOMREC_HTTP_URL"))
        .env("CONSOLE_APP_ID", &setup.app)
        .env("CONSOLE_JOB_ID", &job)
        .env("CONSOLE_JOB_KIND", "individual")
        .env("CONSOLE_KEY_ID", key_id)
        .env("CONSOLE_SECRET", secret)
        .env("CONSOLE_LIVE", "1")
        .env("CONSOLE_ROOM_ID", "console")
        .env("CONSOLE_USER_ID", "erin")
        .env("CONSOLE_PLAY", "mp4,hls")
        .env("CONSOLE_SCREENSHOT", std::env::var("CONSOLE_SCREENSHOT").unwrap_or_default())
        .kill_on_drop(true)
        .output();
    let (out, status) = tokio::join!(tokio::time::timeout(BROWSER_TIMEOUT, run), publisher.wait());
    assert!(status.unwrap().success(), "the publisher failed");
    let out = out.expect("the browser run ended").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the browser run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    eprintln!("the browser saw: {summary}");
    assert_eq!(summary["state"], "STOPPED", "{summary}");
    // The page's Pause, Resume and Stop reached the job: its events say so, in that order.
    let kinds: Vec<String> =
        receiver.received().iter().filter_map(|r| r.json()["event_type"].as_str().map(str::to_owned)).collect();
    let at = |kind: &str| kinds.iter().position(|k| k == kind).unwrap_or_else(|| panic!("no {kind}: {kinds:?}"));
    assert!(at("RECORD_PAUSED") < at("RECORD_RESUMED") && at("RECORD_RESUMED") < at("CLOUD_RECORD_OVER"), "{kinds:?}");
    let stopped = setup.job(&job).await;
    assert_eq!(stopped["stop_reason"], "TENANT_STOP", "stopped by the page, not idled out: {stopped}");

    // The event the browser redelivered reached the receiver a second time.
    let event_id = summary["redelivered"]["event_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = receiver.received();
        let times = got.iter().filter(|r| r.headers.get("webhook-id").is_some_and(|v| v == event_id.as_str())).count();
        if times >= 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{event_id} was received {times} times: {summary}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the job's view lists the HLS playlist it is recording, with a few segments in
/// storage (what a live view needs to start).
async fn wait_for_live_playlist(setup: &Setup, job: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = setup.job(job).await;
        let recording = view["recording_files"].as_array().into_iter().flatten();
        let hls = recording.filter(|f| f["obs_object"].as_str().is_some_and(|o| o.ends_with(".m3u8")));
        if hls.filter_map(|f| f["record_duration"].as_f64()).any(|s| s >= LIVE_START_SECONDS) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job never listed a live playlist: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
