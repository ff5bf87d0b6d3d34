//! Stream URLs that point inside the service's own network, or ask a client to listen, are
//! refused when saved, with a 400 naming the field; the local media server, which the stack
//! allow-lists (`ROOMREC_STREAM_ALLOW`), is still accepted.

use reqwest::StatusCode;
use roomrec_tests::{stack_env, Api};
use serde_json::json;

/// Cloud metadata, moto's S3 on this host, another port on loopback, private and smuggled
/// IPv6 forms, `localhost`, and a client turned into a listener.
fn forbidden() -> Vec<String> {
    let aws_port = stack_env("ROOMREC_AWS_PORT");
    let bucket = stack_env("ROOMREC_RECORDINGS_BUCKET");
    vec![
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://[fd00:ec2::254]/latest/meta-data/".into(),
        format!("http://127.0.0.1:{aws_port}/{bucket}/key"),
        "srt://127.0.0.1:9000?mode=listener".into(),
        "srt://media.example.com:9000?mode=listener".into(),
        "rtsp://media.example.com/cam?rtsp_flags=listen".into(),
        "rtmp://10.0.0.7/live/x".into(),
        "rtmp://100.64.0.1/live/x".into(),
        "rtmp://[::1]/live/x".into(),
        "rtmp://[::ffff:127.0.0.1]/live/x".into(),
        "https://[64:ff9b::a9fe:a9fe]/a.m3u8".into(),
        "rtmp://localhost/live/x".into(),
        "rtmp://2130706433/live/x".into(),
    ]
}

#[tokio::test]
async fn stream_urls_naming_internal_addresses_are_refused_when_saved_and_nothing_is_stored() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let path = format!("/v2/apps/{app}/rooms/room1/streams/u1");
    for url in forbidden() {
        let reply = api.put(&path, &json!({ "url": url })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{url}: {:?}", reply.body);
        assert!(reply.error_msg().starts_with("url:"), "{url}: {}", reply.error_msg());
    }
    assert_eq!(api.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stream_url_templates_naming_internal_addresses_are_refused_on_create_and_update() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    for url in ["http://169.254.169.254/{room_id}/{user_id}", "srt://media.example.com:9000?mode=listener&x={user_id}"]
    {
        let created = api.post("/v2/apps", &json!({ "app_name": "a", "stream_url_template": url })).await;
        assert_eq!(created.status, StatusCode::BAD_REQUEST, "{url}: {:?}", created.body);
        assert!(created.error_msg().starts_with("stream_url_template:"), "{}", created.error_msg());
        let updated = api.put(&format!("/v2/apps/{app}"), &json!({ "stream_url_template": url })).await;
        assert_eq!(updated.status, StatusCode::BAD_REQUEST, "{url}: {:?}", updated.body);
        assert!(updated.error_msg().starts_with("stream_url_template:"), "{}", updated.error_msg());
    }
    assert!(api.get(&format!("/v2/apps/{app}")).await.body.get("stream_url_template").is_none());
}

#[tokio::test]
async fn the_allow_listed_media_server_and_public_names_are_accepted() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rtmp_port = stack_env("ROOMREC_RTMP_PORT");
    for url in [format!("rtmp://127.0.0.1:{rtmp_port}/live/x"), "srt://media.example.com:9000?mode=caller".into()] {
        let reply = api.put(&format!("/v2/apps/{app}/rooms/room1/streams/u1"), &json!({ "url": url })).await;
        assert!(reply.status.is_success(), "{url}: {:?}", reply.body);
    }
}
