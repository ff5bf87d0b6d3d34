use std::time::Duration;

use reqwest::StatusCode;
use roomrec_tests::{publish, stack_env, Api};
use serde_json::{json, Value};

fn users(roster: &Value) -> Vec<String> {
    roster["streams"].as_array().unwrap().iter().map(|s| s["user_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_roster_lists_streams_in_join_order_and_updates_keep_the_place() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let room = format!("/v2/apps/{app}/rooms/room1/streams");
    for user in ["carol", "alice", "bob"] {
        let reply = api
            .put(&format!("{room}/{user}"), &json!({ "url": format!("rtmp://media.example.com/live/{user}") }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    }
    let again =
        api.put(&format!("{room}/carol"), &json!({ "url": "srt://media.example.com:9000", "has_video": false })).await;
    assert_eq!(again.status, StatusCode::OK, "an update is not a new join");
    let roster = api.get(&room).await.body;
    assert_eq!(users(&roster), ["carol", "alice", "bob"]);
    assert_eq!(roster["streams"][0]["url"], "srt://media.example.com:9000");
    assert_eq!(roster["streams"][0]["has_video"], false);
    assert_eq!(roster["streams"][1]["video_type"], "CAMERASTREAM");

    assert_eq!(api.delete(&format!("{room}/carol")).await.status, StatusCode::NO_CONTENT);
    api.put(&format!("{room}/carol"), &json!({ "url": "rtmp://media.example.com/live/carol" })).await;
    assert_eq!(users(&api.get(&room).await.body), ["alice", "bob", "carol"], "a rejoin goes to the end");
    assert_eq!(api.get(&format!("{room}/bob")).await.body["url"], "rtmp://media.example.com/live/bob");
    assert_eq!(api.get(&format!("{room}/nobody")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_url_the_apps_stream_template_decides() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let path = format!("/v2/apps/{app}/rooms/class-7/streams/amy");
    let refused = api.put(&path, &json!({})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.error_msg().starts_with("url"), "{}", refused.error_msg());

    api.put(
        &format!("/v2/apps/{app}"),
        &json!({ "stream_url_template": "rtsp://cam.example.com/{room_id}/{user_id}" }),
    )
    .await;
    let reply = api.put(&path, &json!({ "video_type": "SUBSTREAM" })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["url"], "rtsp://cam.example.com/class-7/amy");
    assert_eq!(reply.body["video_type"], "SUBSTREAM");
}

async fn wait_for_roster(api: &Api, path: &str, wanted: &[&str]) -> Value {
    let mut roster = Value::Null;
    for _ in 0..100 {
        roster = api.get(path).await.body;
        if users(&roster) == wanted {
            return roster;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("roster never became {wanted:?}: {roster}");
}

#[tokio::test]
async fn nginx_rtmp_publishes_join_and_leave_the_room_through_the_hook() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let room = format!("/v2/apps/{app}/rooms/live1/streams");
    let mut publisher = publish(&format!("{app}.live1.alice"), 4);

    let roster = wait_for_roster(&api, &room, &["alice"]).await;
    let rtmp_port = stack_env("ROOMREC_RTMP_PORT");
    assert_eq!(roster["streams"][0]["url"], format!("rtmp://127.0.0.1:{rtmp_port}/live/{app}.live1.alice"));
    assert_eq!(roster["streams"][0]["has_audio"], true);

    let status = tokio::time::timeout(Duration::from_secs(30), publisher.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the publish was accepted and ran to its end");
    wait_for_roster(&api, &room, &[]).await;
}

#[tokio::test]
async fn nginx_rtmp_refuses_a_publish_into_an_unknown_app() {
    let mut publisher = publish("0123456789abcdef01234567.live1.mallory", 4);
    let status = tokio::time::timeout(Duration::from_secs(30), publisher.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "the hook answered 404, so nginx must drop the publisher");
}
