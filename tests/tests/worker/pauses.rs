//! Pause and resume of a running recording: the same files go on without the pause, and an
//! opted-in callback hears RECORD_PAUSED and RECORD_RESUMED.

use std::time::Duration;

use roomrec_domain::callback::EventType;
use roomrec_domain::event::RecordEvent;
use roomrec_testkit::receiver::Receiver;
use roomrec_tests::{publish, publish_colour};
use serde_json::{json, Value};

use crate::support::{decodes, download, duration, final_events, objects, probe, wait_for_events, Setup};

const AUTH_KEY: &str = "8923ab8c2dcef4538923ab8c2dcef453";
/// How long the test keeps the job paused.
const PAUSE: Duration = Duration::from_secs(6);

/// How far an MP4's length may be from its wall time less the pause: both are read from
/// whole-second timestamps (the file's start and end, the two events), so each is off by up
/// to a second. A pause left in would be off by all of `PAUSE`.
const LENGTH_SLACK: f64 = 2.5;

impl Setup {
    /// POSTs `.../{job_id}/{verb}` (pause, resume) and returns the answer.
    async fn job_verb(&self, job: &str, verb: &str) -> roomrec_testkit::api::Reply {
        let path = format!("/v2/apps/{}/{}/{job}/{verb}", self.app, self.jobs.collection());
        self.api.post(&path, &json!({})).await
    }

    /// Pauses or resumes `job`, which must answer 200 with the job in that state.
    async fn set_paused(&self, job: &str, paused: bool) -> Value {
        let reply = self.job_verb(job, if paused { "pause" } else { "resume" }).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.body["paused"], paused, "{}", reply.body);
        reply.body
    }
}

/// Seconds between the outbox's pause and resume events: when the worker held the
/// recording and when it recorded again.
fn held_seconds(events: &[RecordEvent]) -> f64 {
    let at = |kind| events.iter().find(|e| e.event_type == kind).expect("the event").create_time.as_datetime();
    (at(EventType::RecordResumed) - at(EventType::RecordPaused)).num_milliseconds() as f64 / 1000.0
}

fn seconds_between(start: &Value, end: &Value) -> f64 {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (parse(end) - parse(start)).num_milliseconds() as f64 / 1000.0
}

#[tokio::test]
async fn a_paused_individual_job_records_one_mp4_without_the_pause_and_tells_an_opted_in_callback() {
    let receiver = Receiver::start(Vec::new(), 200).await.unwrap();
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let events = ["RECORD_PAUSED", "RECORD_RESUMED", "CLOUD_RECORD_OVER"];
    let callback = json!({ "url": receiver.url(), "auth_key": AUTH_KEY, "notify_event_subscription": events });
    setup.api.set_callback(&setup.app, &callback).await.unwrap();
    let mut publisher = publish(&setup.publish_url("room1", "alice").await, 60);
    let job = setup.start_job("room1", "alice", 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;

    setup.set_paused(&job, true).await;
    setup.set_paused(&job, true).await; // a retried pause is answered the same
    assert_eq!(setup.job(&job).await["paused"], true);
    wait_for_events(&job, EventType::RecordPaused, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(PAUSE).await;
    let resumed = setup.set_paused(&job, false).await;
    assert!(resumed.get("paused_at").is_none(), "{resumed}");
    wait_for_events(&job, EventType::RecordResumed, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();
    let refused = setup.job_verb(&job, "resume").await;
    assert_eq!(refused.status, 409, "{:?}", refused.body);
    assert!(refused.error_msg().contains("STOPPED"), "{:?}", refused.body);

    // One MP4 and one playlist: the pause did not start new files.
    let stored = objects(&setup.bucket, &setup.prefix).await;
    let mp4s: Vec<&(String, u64)> = stored.iter().filter(|(k, _)| k.ends_with(".mp4")).collect();
    assert_eq!(mp4s.len(), 1, "{stored:?}");
    let playlists: Vec<&(String, u64)> = stored.iter().filter(|(k, _)| k.ends_with(".m3u8")).collect();
    assert_eq!(playlists.len(), 1, "{stored:?}");

    // Its duration is its wall time less the pause, and record_duration says the same.
    let outbox = final_events(&job).await;
    let held = held_seconds(&outbox);
    assert!((PAUSE.as_secs_f64() - 1.0..=PAUSE.as_secs_f64() + 2.0).contains(&held), "held {held} s");
    let files = stopped["record_files"].as_array().unwrap();
    let file = files.iter().find(|f| f["record_format"] == "MP4").expect("the MP4 in the job");
    let wall = seconds_between(&file["start_time"], &file["end_time"]);
    let expected = wall - held;
    let dir = std::env::temp_dir().join(format!("roomrec-test-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mp4 = download(&setup.bucket, &mp4s[0].0, &dir).await;
    let played = duration(&probe(&mp4));
    assert!(decodes(&mp4), "the MP4 does not decode");
    assert!((played - expected).abs() <= LENGTH_SLACK, "MP4 of {played} s; {wall} s of wall time less {held} s paused");
    let record_duration = file["record_duration"].as_f64().unwrap();
    assert!((record_duration - played).abs() <= 0.5, "record_duration {record_duration} s, plays {played} s");

    // The playlist goes on after the pause with a discontinuity, and plays as long.
    let playlist = std::fs::read_to_string(download(&setup.bucket, &playlists[0].0, &dir).await).unwrap();
    assert_eq!(playlist.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{playlist}");
    let hls: f64 = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse::<f64>().unwrap())
        .sum();
    assert!((hls - played).abs() <= 1.0, "HLS {hls} s vs MP4 {played} s");
    std::fs::remove_dir_all(&dir).ok();

    // The callback opted in to the pause events: they arrive, in order, with the job's id.
    let got = receiver.wait_for(3, Duration::from_secs(30)).await.unwrap();
    let kinds: Vec<String> =
        got.iter().map(|r| r.json()["event_type"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(kinds, events, "{got:?}");
    assert!(got.iter().all(|r| r.json()["job_id"] == job.as_str()));
}

#[tokio::test]
async fn a_paused_mix_job_leaves_the_pause_out_of_its_one_mp4() {
    let setup = Setup::for_mix(&["MP4"], json!({}), json!({})).await;
    let mut alice = publish_colour(&setup.publish_url("pausedmix", "alice").await, 60, "0xE03030", 440);
    setup.wait_for_roster("pausedmix", &["alice"]).await;
    let mix = json!({ "room_id": "pausedmix", "encode_template": "640x360_15_500", "max_idle_time": 30 });
    let job = setup.start_mix(mix).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    wait_for_events(&job, EventType::RecordNewFileStart, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    setup.set_paused(&job, true).await;
    wait_for_events(&job, EventType::RecordPaused, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(PAUSE).await;
    setup.set_paused(&job, false).await;
    wait_for_events(&job, EventType::RecordResumed, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    alice.kill().await.ok();

    let stored = objects(&setup.bucket, &setup.prefix).await;
    let mp4s: Vec<&(String, u64)> = stored.iter().filter(|(k, _)| k.ends_with(".mp4")).collect();
    assert_eq!(mp4s.len(), 1, "{stored:?}");
    let held = held_seconds(&final_events(&job).await);
    let file = &stopped["record_files"].as_array().unwrap()[0];
    let wall = seconds_between(&file["start_time"], &file["end_time"]);
    let dir = std::env::temp_dir().join(format!("roomrec-test-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mp4 = download(&setup.bucket, &mp4s[0].0, &dir).await;
    let played = duration(&probe(&mp4));
    assert!(decodes(&mp4), "the MP4 does not decode");
    assert!(
        (played - (wall - held)).abs() <= LENGTH_SLACK,
        "MP4 of {played} s; {wall} s of wall time less {held} s paused"
    );
    let record_duration = file["record_duration"].as_f64().unwrap();
    assert!((record_duration - played).abs() <= 0.5, "record_duration {record_duration} s, plays {played} s");
    std::fs::remove_dir_all(&dir).ok();
}
