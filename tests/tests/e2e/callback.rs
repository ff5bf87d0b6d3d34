use reqwest::StatusCode;
use roomrec_tests::Api;
use serde_json::json;

#[tokio::test]
async fn seed_callback_body_returns_the_seed_shape_with_the_seeds_three_events_subscribed() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let path = format!("/v2/apps/{app}/record-callback");
    let body = json!({ "url": "http://mydomain.com/callback", "auth_key": "8923ab8c2dcef4538923ab8c2dcef453" });
    let reply = api.put(&path, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["app_id"], app.as_str());
    let callback = &reply.body["record_callback"];
    assert_eq!(callback["url"], "http://mydomain.com/callback");
    assert_eq!(callback["auth_key"], "8923ab8c2dcef4538923ab8c2dcef453");
    assert!(callback["update_time"].is_string());
    assert_eq!(
        callback["notify_event_subscription"],
        json!(["RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE", "CLOUD_RECORD_OVER"]),
        "seed 002's default: the failure event is opt-in"
    );

    assert_eq!(api.get(&path).await.body, reply.body);
    assert_eq!(api.delete(&path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_callback_can_subscribe_to_some_events_only() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let body = json!({
        "url": "https://hooks.example.com/rec",
        "auth_key": "k".repeat(64),
        "notify_event_subscription": ["RECORD_FILE_COMPLETE"],
    });
    let reply = api.put(&format!("/v2/apps/{app}/record-callback"), &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["record_callback"]["notify_event_subscription"], json!(["RECORD_FILE_COMPLETE"]));

    let mut with_failures = body.clone();
    with_failures["notify_event_subscription"] = json!(["RECORD_FILE_COMPLETE", "CLOUD_RECORD_FAILED"]);
    let reply = api.put(&format!("/v2/apps/{app}/record-callback"), &with_failures).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.body["record_callback"]["notify_event_subscription"],
        json!(["RECORD_FILE_COMPLETE", "CLOUD_RECORD_FAILED"])
    );
}
