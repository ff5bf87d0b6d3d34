//! The Jocloud verbs through the gateway, without a worker: jobs stay as the API left them.

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;
use roomrec_tests::{aws, seed_rule, stack_env, Api, Reply};
use serde_json::{json, Value};

/// An account with an app and a rule.
struct Jocloud {
    api: Api,
    app: String,
    rule: String,
}

impl Jocloud {
    async fn new() -> Self {
        let api = Api::new_account().await;
        let app = api.create_app("rtctest").await.unwrap();
        let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
        Self { api, app, rule }
    }

    async fn verb(&self, verb: &str, body: &Value) -> Reply {
        self.api.post(&format!("/v2/apps/{}/jocloud/{verb}", self.app), body).await
    }

    async fn apply(&self) -> String {
        let reply = self.verb("applyrecord", &json!({})).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body["resid"].as_str().unwrap().to_owned()
    }

    /// Starts a recording in `room` with `fields` added to the body; returns the answer.
    async fn start(&self, room: &str, fields: Value) -> Reply {
        let resid = self.apply().await;
        let mut body = json!({ "resid": resid, "roomid": room, "record_rule_id": self.rule });
        body.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        self.verb("startrecord", &body).await
    }

    async fn join(&self, room: &str, user: &str) {
        let path = format!("/v2/apps/{}/rooms/{room}/streams/{user}", self.app);
        let reply = self.api.put(&path, &json!({ "url": format!("rtmp://media.example.com/live/{user}") })).await;
        assert!(reply.status.is_success(), "{:?}", reply.body);
    }

    async fn query(&self, recordid: &str) -> Value {
        let reply = self.verb("queryrecord", &json!({ "recordid": recordid })).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body
    }
}

fn users(recording: &Value) -> Vec<String> {
    let mut users: Vec<String> =
        recording["jobs"].as_array().unwrap().iter().map(|j| j["user_id"].as_str().unwrap().to_owned()).collect();
    users.sort();
    users
}

fn seconds_from_now(rfc3339: &str) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    at.timestamp() - chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn applyrecord_reserves_a_resid_for_five_minutes_with_jocloud_success_fields() {
    let jocloud = Jocloud::new().await;
    let path = format!("/v2/apps/{}/jocloud/applyrecord?traceId=23116613407505472693518435", jocloud.app);
    let no_body = jocloud.api.raw(reqwest::Method::POST, &path, None).await;
    for reply in [no_body, jocloud.api.post(&path, &json!({ "roomid": "abcabc" })).await] {
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!((reply.body["code"].as_i64(), reply.body["message"].as_str()), (Some(0), Some("success")));
        assert_eq!(reply.body["traceId"], "23116613407505472693518435");
        assert_eq!(reply.body["resid"].as_str().unwrap().len(), 32);
        let left = seconds_from_now(reply.body["expire_time"].as_str().unwrap());
        assert!((295..=301).contains(&left), "valid for {left} s");
    }
    // A GET changes nothing: a cross-site page could make one with the browser's credentials.
    assert_eq!(jocloud.api.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_mixed_startrecord_starts_one_mix_job_that_carries_the_recordid() {
    let jocloud = Jocloud::new().await;
    let reply = jocloud.start("abcabc", json!({ "layout_template": "screen_share_right" })).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let recording = &reply.body;
    let recordid = recording["recordid"].as_str().unwrap();
    assert_eq!(recordid.len(), 32);
    assert_eq!(
        (recording["streamtype"].as_str(), recording["recordtype"].as_str(), recording["state"].as_str()),
        (Some("mixed"), Some("audio_video"), Some("RECORDING"))
    );
    let jobs = recording["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{recording}");
    let job_id = jobs[0]["job_id"].as_str().unwrap();
    let job = jocloud.api.get(&format!("/v2/apps/{}/mix-stream-jobs/{job_id}", jocloud.app)).await.body;
    assert_eq!(job["state"], "INIT");
    assert_eq!(job["jocloud"]["recordid"], recordid);
    assert_eq!(job["mix_param"]["encode_template"], "1280x720_15_1200", "the default picture");
    assert_eq!(job["mix_param"]["layout_template"], "screen_share_right");
    assert_eq!(job["mix_param"]["max_idle_time"], 30, "Jocloud leaves an idle room after 30 s");
    assert_eq!(jocloud.query(recordid).await["jobs"][0]["job_id"], job_id);
}

#[tokio::test]
async fn a_resid_starts_one_recording_and_its_reuse_is_a_409_naming_resid() {
    let jocloud = Jocloud::new().await;
    let resid = jocloud.apply().await;
    let body = json!({ "resid": resid, "roomid": "abcabc", "record_rule_id": jocloud.rule, "recordtype": 2 });
    let first = jocloud.verb("startrecord", &body).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let again = jocloud.verb("startrecord", &body).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    assert!(again.error_msg().starts_with("resid:"), "{}", again.error_msg());
    assert!(again.error_msg().contains(first.body["recordid"].as_str().unwrap()), "{}", again.error_msg());
}

#[tokio::test]
async fn an_expired_resid_is_a_410_naming_resid_and_the_table_expires_reservations_by_ttl() {
    let jocloud = Jocloud::new().await;
    let resid = jocloud.apply().await;
    // Five minutes later, as far as the stored reservation is concerned.
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let table = stack_env("ROOMREC_JOCLOUD_TABLE");
    dynamo
        .update_item()
        .table_name(&table)
        .key("app_id", AttributeValue::S(jocloud.app.clone()))
        .key("item_key", AttributeValue::S(format!("resid#{resid}")))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N((chrono::Utc::now().timestamp() - 1).to_string()))
        .send()
        .await
        .unwrap();
    let body = json!({ "resid": resid, "roomid": "abcabc", "record_rule_id": jocloud.rule });
    let reply = jocloud.verb("startrecord", &body).await;
    assert_eq!(reply.status, StatusCode::GONE, "{:?}", reply.body);
    assert_eq!(reply.body["error_code"], "EXPIRED");
    assert!(reply.error_msg().starts_with("resid: expired"), "{}", reply.error_msg());

    let ttl = dynamo.describe_time_to_live().table_name(&table).send().await.unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
}

#[tokio::test]
async fn an_unknown_or_foreign_resid_is_a_404_naming_resid() {
    let jocloud = Jocloud::new().await;
    let other = Jocloud::new().await;
    let foreign = other.apply().await;
    for resid in [foreign.as_str(), "0123456789abcdef0123456789abcdef", "not a resid"] {
        let body = json!({ "resid": resid, "roomid": "abcabc", "record_rule_id": jocloud.rule });
        let reply = jocloud.verb("startrecord", &body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{resid}: {:?}", reply.body);
        assert!(reply.error_msg().starts_with("resid:"), "{}", reply.error_msg());
    }
}

#[tokio::test]
async fn a_source_recording_records_each_participant_and_one_who_joins_later_until_it_stops() {
    let jocloud = Jocloud::new().await;
    jocloud.join("srcroom", "alice").await;
    jocloud.join("srcroom", "bob").await;
    let reply = jocloud.start("srcroom", json!({ "streamtype": 2, "recordtype": 2 })).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let recordid = reply.body["recordid"].as_str().unwrap().to_owned();
    assert_eq!(users(&reply.body), ["alice", "bob"]);
    let alice_job = reply.body["jobs"].as_array().unwrap().iter().find(|j| j["user_id"] == "alice").unwrap().clone();
    let path = format!("/v2/apps/{}/individual-stream-jobs/{}", jocloud.app, alice_job["job_id"].as_str().unwrap());
    let job = jocloud.api.get(&path).await.body;
    assert_eq!((job["is_record_audio"].as_bool(), job["is_record_video"].as_bool()), (Some(true), Some(false)));
    assert_eq!(job["jocloud"]["recordid"], recordid.as_str());

    jocloud.join("srcroom", "carol").await;
    jocloud.join("srcroom", "alice").await; // an update, not a second join
    assert_eq!(users(&jocloud.query(&recordid).await), ["alice", "bob", "carol"]);

    let stopped = jocloud.verb("stoprecord", &json!({ "recordid": recordid, "roomid": "srcroom" })).await;
    assert_eq!(stopped.status, StatusCode::OK, "{:?}", stopped.body);
    assert_eq!(stopped.body["state"], "STOPPED");
    assert_eq!(stopped.body["stop_reason"], "TENANT_STOP");
    let states: Vec<&str> =
        stopped.body["jobs"].as_array().unwrap().iter().map(|j| j["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["STOPPED"; 3], "unclaimed jobs stop at once");
    let again = jocloud.verb("stoprecord", &json!({ "recordid": recordid })).await;
    assert_eq!((again.status, &again.body["state"]), (StatusCode::OK, &json!("STOPPED")), "stopping again is fine");

    jocloud.join("srcroom", "dave").await;
    assert_eq!(users(&jocloud.query(&recordid).await).len(), 3, "nobody is recorded after the stop");
}

#[tokio::test]
async fn updatemixrecord_changes_a_mix_layout_any_number_of_times_until_stop() {
    let jocloud = Jocloud::new().await;
    let started = jocloud.start("mixroom", json!({ "streamtype": 1 })).await;
    let recordid = started.body["recordid"].as_str().unwrap().to_owned();
    let job_id = started.body["jobs"][0]["job_id"].as_str().unwrap().to_owned();
    let job_path = format!("/v2/apps/{}/mix-stream-jobs/{job_id}", jocloud.app);
    for (layout, user) in [("screen_share_left", "alice"), ("nine_grids_view", "bob")] {
        let body =
            json!({ "recordid": recordid, "layout_template": layout, "layout_panes": [{ "id": 1, "user_id": user }] });
        let reply = jocloud.verb("updatemixrecord", &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let job = jocloud.api.get(&job_path).await.body;
        assert_eq!(job["mix_param"]["layout_template"], layout);
        assert_eq!(job["mix_param"]["layout_panes"][0]["user_id"], user);
    }
    let panes: Vec<Value> = (1..=18).map(|id| json!({ "id": id, "user_id": format!("u{id}") })).collect();
    let body = json!({ "recordid": recordid, "layout_template": "screen_share_left", "layout_panes": panes });
    let too_many = jocloud.verb("updatemixrecord", &body).await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert!(too_many.error_msg().starts_with("layout_panes"), "{}", too_many.error_msg());

    jocloud.verb("stoprecord", &json!({ "recordid": recordid })).await;
    let late =
        jocloud.verb("updatemixrecord", &json!({ "recordid": recordid, "layout_template": "nine_grids_view" })).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{:?}", late.body);
    assert!(late.error_msg().starts_with("recordid:"), "{}", late.error_msg());

    let source = jocloud.start("srcroom2", json!({ "streamtype": "source" })).await;
    let body = json!({ "recordid": source.body["recordid"], "layout_template": "nine_grids_view" });
    let refused = jocloud.verb("updatemixrecord", &body).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "a source recording has no layout: {:?}", refused.body);
}

#[tokio::test]
async fn bad_jocloud_bodies_get_a_4xx_naming_the_field() {
    let jocloud = Jocloud::new().await;
    let resid = jocloud.apply().await;
    let base = json!({ "resid": resid, "roomid": "abcabc", "record_rule_id": jocloud.rule });
    let with = |fields: Value| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        body
    };
    let cases = [
        (json!({ "roomid": "abcabc", "record_rule_id": jocloud.rule }), 400, "resid"),
        (with(json!({ "recordtype": 7 })), 400, "recordtype"),
        (with(json!({ "streamtype": "both" })), 400, "streamtype"),
        (with(json!({ "recordtype": 1 })), 400, "recordtype"),
        (with(json!({ "streamtype": 2, "layout_template": "nine_grids_view" })), 400, "layout_template"),
        (with(json!({ "encode_template": "huge" })), 400, "encode_template"),
        (with(json!({ "max_idle_time": 1 })), 400, "max_idle_time"),
        (with(json!({ "roomid": "a.b" })), 400, "roomid"),
        (with(json!({ "colour": "red" })), 400, "colour"),
        (with(json!({ "record_rule_id": "0123456789abcdef0123456789abcdef" })), 404, "record_rule_id"),
    ];
    for (body, status, field) in cases {
        let reply = jocloud.verb("startrecord", &body).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {:?}", reply.body);
        assert!(reply.error_msg().starts_with(field), "{body}: {}", reply.error_msg());
    }
    // None of those used the reservation.
    assert_eq!(jocloud.verb("startrecord", &base).await.status, StatusCode::OK);

    for verb in ["queryrecord", "stoprecord", "updatemixrecord"] {
        let reply = jocloud.verb(verb, &json!({ "recordid": "0123456789abcdef0123456789abcdef" })).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{verb}: {:?}", reply.body);
        assert!(reply.error_msg().starts_with("recordid:"), "{verb}: {}", reply.error_msg());
    }
    let unauthenticated = jocloud.api.with_credentials("nobody", "nothing");
    let reply = unauthenticated.post(&format!("/v2/apps/{}/jocloud/applyrecord", jocloud.app), &json!({})).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}
