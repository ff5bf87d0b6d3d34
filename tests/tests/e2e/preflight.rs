//! `POST /v2/apps/{app_id}/preflight` against the local stack: the probe object in moto's S3
//! (written as the preflight function's role, or the tenant's), a signed `PREFLIGHT` event at
//! a real receiver, the room's roster from the media server's hook.

use std::time::Duration;

use reqwest::StatusCode;
use roomrec_adapters::{Config, DynamoStore};
use roomrec_domain::ids::KeyId;
use roomrec_domain::ports::CredentialStore;
use roomrec_testkit::receiver::{Answer, Receiver};
use roomrec_tests::{aws, publish, stack_env, unique, Api};
use serde_json::{json, Value};

const AUTH_KEY: &str = "8923ab8c2dcef4538923ab8c2dcef453";

async fn s3() -> aws_sdk_s3::Client {
    let config = aws().await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build())
}

/// Every key under `prefix` in `bucket`.
async fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3().await.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    out.contents().iter().map(|o| o.key().unwrap().to_owned()).collect()
}

/// An app of a new account whose rule writes `obs_addr`; its id and the rule's.
async fn app_with_rule(api: &Api, obs_addr: Value) -> (String, String) {
    let app = api.create_app("preflight").await.unwrap();
    let rule = api.create_rule(&app, &json!({ "obs_addr": obs_addr, "record_formats": ["HLS"] })).await.unwrap();
    (app, rule)
}

fn deployment_obs_addr() -> Value {
    json!({ "bucket": stack_env("ROOMREC_RECORDINGS_BUCKET"), "location": "us-east-1", "object": "rec/" })
}

async fn preflight(api: &Api, app: &str, body: &Value) -> Value {
    let reply = api.post(&format!("/v2/apps/{app}/preflight"), body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

fn check<'v>(view: &'v Value, name: &str) -> &'v Value {
    view["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{view}"))
}

#[tokio::test]
async fn a_good_rule_and_callback_pass_the_receiver_gets_a_verifiable_preflight_event_and_no_object_is_left() {
    let api = Api::new_account().await;
    let (app, rule) = app_with_rule(&api, deployment_obs_addr()).await;
    let receiver = Receiver::start_verifying(AUTH_KEY).await.unwrap();
    api.set_callback(&app, &json!({ "url": receiver.url(), "auth_key": AUTH_KEY })).await.unwrap();

    let view = preflight(&api, &app, &json!({ "record_rule_id": rule })).await;
    assert_eq!(check(&view, "bucket")["status"], "ok", "{view}");
    assert_eq!(check(&view, "callback")["status"], "ok", "{view}");
    assert_eq!(check(&view, "streams")["status"], "skipped", "no room asked for");

    let got = receiver.wait_for(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got[0].verified, Some(true), "Standard Webhooks signature");
    got[0].verify_rtc(AUTH_KEY).unwrap();
    assert_eq!(got[0].json()["event_type"], "PREFLIGHT");
    assert_eq!(got[0].json()["app_id"], app.as_str());
    let left = keys(&stack_env("ROOMREC_RECORDINGS_BUCKET"), &format!("{app}/")).await;
    assert!(left.is_empty(), "the probe object is deleted: {left:?}");
}

#[tokio::test]
async fn a_callback_answering_500_fails_its_check_with_the_status() {
    let api = Api::new_account().await;
    let (app, _) = app_with_rule(&api, deployment_obs_addr()).await;
    let receiver = Receiver::start(vec![Answer::from(500)], 500).await.unwrap();
    api.set_callback(&app, &json!({ "url": receiver.url(), "auth_key": AUTH_KEY })).await.unwrap();

    let view = preflight(&api, &app, &json!({})).await;
    let callback = check(&view, "callback");
    assert_eq!((&callback["status"], &callback["reason"]), (&json!("failed"), &json!("CALLBACK_STATUS")), "{view}");
    assert_eq!(callback["http_status"], 500);
    assert_eq!(receiver.count(), 1, "one attempt, no retries");
    assert_eq!(check(&view, "bucket")["status"], "ok", "the app's rule is checked when none is named");
}

#[tokio::test]
async fn another_bucket_without_a_role_fails_with_storage_role_required_and_nothing_is_written_there() {
    let api = Api::new_account().await;
    let bucket = unique("tenant");
    s3().await.create_bucket().bucket(&bucket).send().await.unwrap();
    let (app, rule) = app_with_rule(&api, json!({ "bucket": bucket, "location": "us-east-1" })).await;

    let view = preflight(&api, &app, &json!({ "record_rule_id": rule })).await;
    let checked = check(&view, "bucket");
    assert_eq!((&checked["status"], &checked["reason"]), (&json!("failed"), &json!("STORAGE_ROLE_REQUIRED")), "{view}");
    assert!(keys(&bucket, "").await.is_empty());
}

/// The account id `api` signs in as: the ExternalId its roles must require.
async fn account_of(api: &Api) -> String {
    let config = Config::from_env().unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws().await), config.tables);
    let key = KeyId::parse(api.credential().0).unwrap();
    store.get_credential(&key).await.unwrap().unwrap().account_id.to_string()
}

/// A role in moto trusting the worker's and the preflight function's roles with `external_id`,
/// allowed to write `bucket` (infra/local/tenant_role.py, as a tenant would make it).
fn tenant_role(bucket: &str, external_id: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests");
    let out = std::process::Command::new(format!("{root}/.venv/bin/python"))
        .args([&format!("{root}/infra/local/tenant_role.py"), &unique("tenant"), bucket, external_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_role_trusting_this_account_passes_and_one_wanting_another_external_id_fails_access_denied() {
    let api = Api::new_account().await;
    let bucket = unique("tenant");
    s3().await.create_bucket().bucket(&bucket).send().await.unwrap();
    let good = tenant_role(&bucket, &account_of(&api).await);
    let obs_addr = json!({ "bucket": bucket, "location": "us-east-1", "role_arn": good });
    let (app, rule) = app_with_rule(&api, obs_addr).await;
    let view = preflight(&api, &app, &json!({ "record_rule_id": rule })).await;
    assert_eq!(check(&view, "bucket")["status"], "ok", "{view}");
    assert!(keys(&bucket, "").await.is_empty(), "the probe object is deleted");

    let bad = tenant_role(&bucket, "someone-else");
    let obs_addr = json!({ "bucket": bucket, "location": "us-east-1", "role_arn": bad });
    // One rule per app: this updates it in place.
    let updated = api
        .post(&format!("/v2/apps/{app}/record-rules"), &json!({ "obs_addr": obs_addr, "record_formats": ["HLS"] }))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    let view = preflight(&api, &app, &json!({ "record_rule_id": rule })).await;
    let checked = check(&view, "bucket");
    assert_eq!((&checked["status"], &checked["reason"]), (&json!("failed"), &json!("STORAGE_ACCESS_DENIED")), "{view}");
    assert!(!checked["message"].as_str().unwrap().contains("arn:aws:sts"), "no backend text: {view}");
}

#[tokio::test]
async fn an_empty_room_says_so_and_without_a_worker_a_live_publisher_is_listed_pending() {
    let api = Api::new_account().await;
    let (app, _) = app_with_rule(&api, deployment_obs_addr()).await;
    let view = preflight(&api, &app, &json!({ "room_id": "room1" })).await;
    let streams = check(&view, "streams");
    assert_eq!((&streams["status"], &streams["reason"]), (&json!("failed"), &json!("ROOM_EMPTY")), "{view}");

    let mut publisher = publish(&api.publish_url(&app, "room1", "alice").await.unwrap(), 30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while api.roster_len(&app, "room1").await.unwrap() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let view = preflight(&api, &app, &json!({ "room_id": "room1" })).await;
    publisher.kill().await.ok();
    // No worker runs in this stack: nobody takes the probe message, the answer waited for it
    // and says so, and so does the preflight read again by its id.
    let streams = check(&view, "streams");
    assert_eq!(streams["status"], "pending", "{view}");
    let listed = &streams["streams"];
    assert_eq!((&listed[0]["user_id"], &listed[0]["status"]), (&json!("alice"), &json!("pending")), "{view}");
    assert_eq!(listed[0]["video_type"], "CAMERASTREAM");
    let id = view["preflight_id"].as_str().unwrap();
    let again = api.get(&format!("/v2/apps/{app}/preflight/{id}")).await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &view), "kept as answered");
}

#[tokio::test]
async fn an_unknown_rule_is_a_404_naming_record_rule_id_and_a_bad_room_a_400_naming_room_id() {
    let api = Api::new_account().await;
    let (app, _) = app_with_rule(&api, deployment_obs_addr()).await;
    let path = format!("/v2/apps/{app}/preflight");
    let unknown = api.post(&path, &json!({ "record_rule_id": "0123456789abcdef0123456789abcdef" })).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.error_msg().contains("record_rule_id"), "{:?}", unknown.body);
    let bad_room = api.post(&path, &json!({ "room_id": "room.1" })).await;
    assert_eq!(bad_room.status, StatusCode::BAD_REQUEST);
    assert!(bad_room.error_msg().contains("room_id"), "{:?}", bad_room.body);
    let other = Api::new_account().await;
    assert_eq!(other.post(&path, &json!({})).await.status, StatusCode::NOT_FOUND, "another account's app");
}
