//! Automatic recording through the gateway, without a worker: which joins create a job.

use std::time::Duration;

use reqwest::StatusCode;
use roomrec_tests::{seed_rule, Api};
use serde_json::{json, Value};

async fn auto_rule(api: &Api, app: &str) -> String {
    let mut body = seed_rule();
    body["auto_record"] = json!(true);
    let reply = api.post(&format!("/v2/apps/{app}/record-rules"), &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.body["rule_id"].as_str().unwrap().to_owned()
}

async fn set_auto(api: &Api, app: &str, rule: &str, on: bool) -> Value {
    let reply = api.put(&format!("/v2/apps/{app}/record-rules/{rule}"), &json!({ "auto_record": on })).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn join(api: &Api, app: &str, room: &str, user: &str) {
    let path = format!("/v2/apps/{app}/rooms/{room}/streams/{user}");
    let reply = api.put(&path, &json!({ "url": format!("rtmp://media.example.com/live/{user}") })).await;
    assert!(reply.status.is_success(), "{:?}", reply.body);
}

async fn leave(api: &Api, app: &str, room: &str, user: &str) {
    let reply = api.delete(&format!("/v2/apps/{app}/rooms/{room}/streams/{user}")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
}

/// The individual jobs of `room`: (user, state), by user.
async fn jobs(api: &Api, app: &str, room: &str) -> Vec<(String, String)> {
    let list = api.get(&format!("/v2/apps/{app}/individual-stream-jobs?room_id={room}")).await.body;
    let mut jobs: Vec<(String, String)> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["user_id"].as_str().unwrap().to_owned(), j["state"].as_str().unwrap().to_owned()))
        .collect();
    jobs.sort();
    jobs
}

fn init(users: &[&str]) -> Vec<(String, String)> {
    users.iter().map(|u| ((*u).to_owned(), "INIT".to_owned())).collect()
}

#[tokio::test]
async fn auto_record_is_echoed_with_its_start_time_and_one_rule_per_app_may_have_it() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let first = auto_rule(&api, &app).await;
    let rule = api.get(&format!("/v2/apps/{app}/record-rules/{first}")).await.body;
    assert_eq!(rule["auto_record"], true);
    assert!(rule["auto_record_since"].is_string(), "{rule}");

    // A second POST updates the app's rule; saying nothing of auto_record leaves it on.
    let second = api.post(&format!("/v2/apps/{app}/record-rules"), &seed_rule()).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    assert_eq!((second.body["rule_id"].as_str(), &second.body["auto_record"]), (Some(first.as_str()), &json!(true)));
    assert_eq!(second.body["auto_record_since"], rule["auto_record_since"]);

    // An app with another rule from before one rule per app: only one of them records automatically.
    let other = crate::rules::rule_from_before(&app, 1_700_000_000).await.rule_id.to_string();
    let update = api.put(&format!("/v2/apps/{app}/record-rules/{other}"), &json!({ "auto_record": true })).await;
    assert_eq!(update.status, StatusCode::CONFLICT, "{:?}", update.body);
    assert!(update.error_msg().starts_with("auto_record:"), "{}", update.error_msg());

    let off = set_auto(&api, &app, &first, false).await;
    assert_eq!(off["auto_record"], false);
    assert!(off.get("auto_record_since").is_none(), "{off}");
    assert_eq!(set_auto(&api, &app, &other, true).await["auto_record"], true);
}

#[tokio::test]
async fn each_stream_joining_a_new_room_of_an_auto_record_app_gets_one_individual_job() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = auto_rule(&api, &app).await;
    join(&api, &app, "auto1", "alice").await;
    join(&api, &app, "auto1", "alice").await; // an update, not a join
    join(&api, &app, "auto1", "bob").await;
    assert_eq!(jobs(&api, &app, "auto1").await, init(&["alice", "bob"]));

    let list = api.get(&format!("/v2/apps/{app}/individual-stream-jobs?room_id=auto1")).await.body;
    let job = &list["jobs"][0];
    assert_eq!(job["record_param"]["record_rule_id"], rule.as_str());
    assert_eq!((job["is_record_audio"].as_bool(), job["video_type"].as_str()), (Some(true), Some("CAMERASTREAM")));
    assert_eq!(job["max_idle_time"], 5, "the seed rule's merge window is 0: the shortest idle time");

    // alice leaves and comes back while her job may still record: no second job.
    leave(&api, &app, "auto1", "alice").await;
    join(&api, &app, "auto1", "alice").await;
    assert_eq!(jobs(&api, &app, "auto1").await, init(&["alice", "bob"]));
}

#[tokio::test]
async fn a_room_created_before_auto_record_was_turned_on_is_recorded_only_once_it_empties_and_starts_again() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    join(&api, &app, "older", "alice").await;
    // Times are kept to the second: turn it on in a later second than the room's creation.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    set_auto(&api, &app, &rule, true).await;
    join(&api, &app, "older", "bob").await;
    assert!(jobs(&api, &app, "older").await.is_empty(), "the room existed before auto-record");

    leave(&api, &app, "older", "alice").await;
    leave(&api, &app, "older", "bob").await;
    join(&api, &app, "older", "carol").await;
    assert_eq!(jobs(&api, &app, "older").await, init(&["carol"]), "the room emptied, so this is a new room");
}

#[tokio::test]
async fn turning_auto_record_off_starts_no_new_jobs_and_leaves_the_running_ones() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = auto_rule(&api, &app).await;
    join(&api, &app, "offroom", "alice").await;
    set_auto(&api, &app, &rule, false).await;
    join(&api, &app, "offroom", "bob").await;
    join(&api, &app, "another", "carol").await;
    assert_eq!(jobs(&api, &app, "offroom").await, init(&["alice"]));
    assert!(jobs(&api, &app, "another").await.is_empty());
}
