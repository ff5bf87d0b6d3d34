use reqwest::StatusCode;
use roomrec_tests::{seed_rule, Api};
use serde_json::json;

#[tokio::test]
async fn seed_app_body_returns_an_app_id_like_the_seed() {
    let api = Api::new_account().await;
    let reply = api.post("/v2/apps", &json!({ "app_name": "rtctest" })).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let app_id = reply.body["app_id"].as_str().unwrap();
    assert_eq!(app_id.len(), 24);
    assert!(app_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(reply.body["app_name"], "rtctest");
}

#[tokio::test]
async fn apps_can_be_listed_read_updated_and_deleted() {
    let api = Api::new_account().await;
    let first = api.create_app("rtctest").await.unwrap();
    let second = api.create_app("rtctest").await.unwrap();
    let list = api.get("/v2/apps").await;
    assert_eq!(list.status, StatusCode::OK);
    let ids: Vec<&str> = list.body["apps"].as_array().unwrap().iter().map(|a| a["app_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&first.as_str()) && ids.contains(&second.as_str()));

    let updated = api
        .put(&format!("/v2/apps/{first}"), &json!({ "app_name": "renamed", "stream_url_template": "rtmp://media.example.com/live/{room_id}_{user_id}" }))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    let read = api.get(&format!("/v2/apps/{first}")).await;
    assert_eq!(read.body["app_name"], "renamed");
    assert_eq!(read.body["stream_url_template"], "rtmp://media.example.com/live/{room_id}_{user_id}");

    assert_eq!(api.delete(&format!("/v2/apps/{first}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("/v2/apps/{first}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.delete(&format!("/v2/apps/{first}")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_accounts_app_and_everything_under_it_is_not_found() {
    let owner = Api::new_account().await;
    let app = owner.create_app("rtctest").await.unwrap();
    let rule = owner.create_rule(&app, &seed_rule()).await.unwrap();
    let stranger = Api::new_account().await;
    let paths = [
        format!("/v2/apps/{app}"),
        format!("/v2/apps/{app}/record-rules"),
        format!("/v2/apps/{app}/record-rules/{rule}"),
        format!("/v2/apps/{app}/record-callback"),
        format!("/v2/apps/{app}/rooms/room1/streams"),
        format!("/v2/apps/{app}/individual-stream-jobs"),
        format!("/v2/apps/{app}/mix-stream-jobs"),
    ];
    for path in &paths {
        let reply = stranger.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}: {:?}", reply.body);
        assert_eq!(reply.body["error_code"], "NOT_FOUND");
    }
    let update = stranger.put(&format!("/v2/apps/{app}"), &json!({ "app_name": "mine now" })).await;
    assert_eq!(update.status, StatusCode::NOT_FOUND);
    assert_eq!(stranger.delete(&format!("/v2/apps/{app}")).await.status, StatusCode::NOT_FOUND);
    let job = stranger
        .post(
            &format!("/v2/apps/{app}/individual-stream-jobs"),
            &json!({ "room_id": "r", "user_id": "u", "record_param": { "record_rule_id": rule } }),
        )
        .await;
    assert_eq!(job.status, StatusCode::NOT_FOUND);
    // The owner still has it, untouched.
    assert_eq!(owner.get(&format!("/v2/apps/{app}")).await.body["app_name"], "rtctest");
}

#[tokio::test]
async fn requests_without_valid_credentials_are_401() {
    let api = Api::new_account().await;
    let (key_id, secret) = api.credential();
    let wrong_secret = api.with_credentials(key_id, "not-the-secret");
    let unknown_key = api.with_credentials("00000000000000000000", secret);
    for client in [wrong_secret, unknown_key] {
        let reply = client.get("/v2/apps").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.body["error_code"], "UNAUTHORIZED");
    }
    let no_auth = reqwest::get(format!("{}/v2/apps", roomrec_tests::stack_env("ROOMREC_HTTP_URL"))).await.unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);
}
