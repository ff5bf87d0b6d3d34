//! Timeline sidecars in the real stack: each completed file's `timeline_object`, named in
//! RECORD_FILE_COMPLETE and the job's files, is in S3 beside the file and says who joined,
//! when the layout changed and (for a mix) who spoke.

use std::time::Duration;

use roomrec_domain::callback::EventType;
use roomrec_domain::event::{FileFacts, RecordEvent};
use roomrec_tests::{publish, publish_colour};
use serde_json::{json, Value};

use crate::support::{final_events, json_object, s3, Setup};

/// The object at `key`, as text.
async fn text(bucket: &str, key: &str) -> String {
    let object = s3().await.get_object().bucket(bucket).key(key).send().await;
    let body = object.unwrap_or_else(|err| panic!("{key} is not in S3: {err:?}")).body.collect().await.unwrap();
    String::from_utf8(body.into_bytes().to_vec()).unwrap()
}

/// The file facts of the one RECORD_FILE_COMPLETE among `events`.
fn completed(events: &[RecordEvent]) -> &FileFacts {
    let done: Vec<&RecordEvent> = events.iter().filter(|e| e.event_type == EventType::RecordFileComplete).collect();
    assert_eq!(done.len(), 1, "{events:?}");
    done[0].file.as_ref().unwrap()
}

/// The file's timeline as RECORD_FILE_COMPLETE names it, checked against the job's view.
async fn timeline_of(setup: &Setup, job: &str, facts: &FileFacts) -> Value {
    let key = facts.timeline_object.as_deref().expect("RECORD_FILE_COMPLETE names the timeline");
    assert_eq!(key, format!("{}.timeline.json", facts.obs_object));
    let view = setup.job(job).await;
    let files = view["record_files"].as_array().cloned().unwrap_or_default();
    assert!(files.iter().any(|f| f["timeline_object"] == key), "the job's files name it too: {view}");
    let timeline = json_object(&setup.bucket, key).await;
    assert_eq!(timeline["version"], 1);
    assert_eq!(timeline["object"], facts.obs_object.as_str());
    timeline
}

fn entries<'a>(timeline: &'a Value, kind: &str) -> Vec<&'a Value> {
    timeline["entries"].as_array().unwrap().iter().filter(|e| e["type"] == kind).collect()
}

#[tokio::test]
async fn a_mix_files_timeline_lists_joins_in_order_and_the_layout_update_within_the_file() {
    let setup = Setup::for_mix(&["MP4"], json!({}), json!({})).await;
    let mut alice = publish_colour(&setup.publish_url("tlroom", "alice").await, 60, "0xE03030", 440);
    setup.wait_for_roster("tlroom", &["alice"]).await;
    let job =
        setup.start_mix(json!({ "room_id": "tlroom", "encode_template": "640x360_15_500", "max_idle_time": 30 })).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut bob = publish_colour(&setup.publish_url("tlroom", "bob").await, 60, "0x30C030", 660);
    setup.wait_for_roster("tlroom", &["alice", "bob"]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let update = json!({ "mix_param": { "layout_template": "screen_share_left", "layout_panes": [{ "id": 1, "user_id": "bob" }] } });
    let reply = setup.api.put(&format!("/v2/apps/{}/mix-stream-jobs/{job}", setup.app), &update).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    tokio::time::sleep(Duration::from_secs(4)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    alice.kill().await.ok();
    bob.kill().await.ok();

    let events = final_events(&job).await;
    let facts = completed(&events);
    let timeline = timeline_of(&setup, &job, facts).await;
    let duration_ms = timeline["duration_ms"].as_u64().unwrap();
    let recorded = facts.record_duration.unwrap() * 1000;
    assert!(duration_ms.abs_diff(recorded) <= 1000, "{duration_ms} ms against record_duration {recorded} ms");

    let joins: Vec<(&str, u64)> = entries(&timeline, "join")
        .iter()
        .map(|e| (e["user_id"].as_str().unwrap(), e["at_ms"].as_u64().unwrap()))
        .collect();
    assert_eq!(joins.iter().map(|(user, _)| *user).collect::<Vec<_>>(), ["alice", "bob"], "{timeline}");
    assert!(joins[1].1 >= joins[0].1 + 2_000, "bob joined seconds after alice: {joins:?}");

    let updated = entries(&timeline, "layout").into_iter().find(|e| e["layout"] == "screen_share_left");
    let updated = updated.unwrap_or_else(|| panic!("the layout update: {timeline}"));
    let at = updated["at_ms"].as_u64().unwrap();
    assert!(
        at > joins[1].1 && at < duration_ms,
        "layout at {at} ms, bob joined at {}, file {duration_ms} ms",
        joins[1].1
    );
    let large = updated["panes"].as_array().unwrap().iter().find(|p| p["id"] == 1).expect("pane 1");
    assert_eq!(large["user_id"], "bob", "{updated}");
    assert!(large["width"].as_u64().unwrap() > 320 && large["x"] == 0, "the large pane on the left: {large}");
    let pinned = entries(&timeline, "pinned");
    assert_eq!(pinned.last().map(|p| &p["panes"][0]["user_id"]), Some(&json!("bob")), "{timeline}");

    let vtt = text(&setup.bucket, &format!("{}.speakers.vtt", facts.obs_object)).await;
    assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
    assert!(!entries(&timeline, "speaker").is_empty(), "two people sending tones speak: {timeline}");
}

#[tokio::test]
async fn an_individual_files_timeline_starts_with_its_join() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let mut publisher = publish(&setup.publish_url("tlsolo", "carol").await, 30);
    let job = setup.start_job("tlsolo", "carol", 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();

    let events = final_events(&job).await;
    let timeline = timeline_of(&setup, &job, completed(&events)).await;
    let first = &timeline["entries"][0];
    assert_eq!((first["type"].as_str(), first["at_ms"].as_u64()), (Some("join"), Some(0)), "{timeline}");
    assert!(entries(&timeline, "speaker").is_empty(), "no speakers in an individual file: {timeline}");
}
