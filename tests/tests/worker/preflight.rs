//! Preflight's streams check against the local stack: the preflight function sends a probe
//! message on the jobs queue, a real worker opens each stream of the room through nginx-rtmp
//! and writes what it found into the preflight's item, and the API answers it.

use std::time::Duration;

use reqwest::StatusCode;
use roomrec_tests::{publish, unique, Api};
use serde_json::{json, Value};

use crate::support::Setup;

/// POSTs a preflight of `room`; the answer, and the same preflight read by id until its
/// streams check is no longer pending (the POST waits up to 8 s; a loaded machine may take
/// longer).
async fn preflight_of_room(api: &Api, app: &str, room: &str) -> (Value, Value) {
    let reply = api.post(&format!("/v2/apps/{app}/preflight"), &json!({ "room_id": room })).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let id = reply.body["preflight_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = api.get(&format!("/v2/apps/{app}/preflight/{id}")).await;
        assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
        if streams_check(&got.body)["status"] != "pending" {
            return (reply.body, got.body);
        }
        assert!(tokio::time::Instant::now() < deadline, "never probed: {}", got.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn streams_check(view: &Value) -> &Value {
    view["checks"].as_array().unwrap().iter().find(|c| c["name"] == "streams").unwrap_or_else(|| panic!("{view}"))
}

#[tokio::test]
async fn a_live_publisher_is_probed_ok_with_its_codecs_and_size() {
    let setup = Setup::new(&["HLS"], json!({}), json!({})).await;
    let room = unique("pfroom");
    let mut publisher = publish(&setup.publish_url(&room, "alice").await, 40);
    setup.wait_for_roster(&room, &["alice"]).await;

    let (answered, view) = preflight_of_room(&setup.api, &setup.app, &room).await;
    publisher.kill().await.ok();
    let streams = streams_check(&view);
    assert_eq!(streams["status"], "ok", "{view}");
    let alice = &streams["streams"][0];
    assert_eq!((&alice["user_id"], &alice["status"]), (&json!("alice"), &json!("ok")), "{view}");
    assert_eq!(
        (&alice["video"]["codec"], &alice["video"]["width"], &alice["video"]["height"]),
        (&json!("h264"), &json!(640), &json!(360))
    );
    assert_eq!((&alice["audio"]["codec"], &alice["audio"]["sample_rate"]), (&json!("aac"), &json!(48000)));
    let fps = alice["video"]["fps"].as_f64().unwrap();
    assert!((fps - 25.0).abs() < 0.5, "fps {fps}");
    // The POST itself waited for the probe unless the worker was slower than its wait.
    let first = &streams_check(&answered)["status"];
    assert!(first == "ok" || first == "pending", "{answered}");
    assert_eq!(answered["preflight_id"], view["preflight_id"]);
}

#[tokio::test]
async fn a_stream_registered_where_nobody_publishes_fails_unreachable_and_another_account_cannot_read_it() {
    let setup = Setup::new(&["HLS"], json!({}), json!({})).await;
    let room = unique("pfghost");
    // The media server's own address (the stack's stream policy allows it), a key nobody publishes.
    let minted = setup.publish_url(&room, "alice").await;
    let mut parts = minted.strip_prefix("rtmp://").unwrap_or_else(|| panic!("{minted}")).split('/');
    let (authority, app_name) = (parts.next().unwrap(), parts.next().unwrap());
    let ghost = format!("rtmp://{authority}/{app_name}/{}", unique("nobody"));
    let put =
        setup.api.put(&format!("/v2/apps/{}/rooms/{room}/streams/ghost", setup.app), &json!({ "url": ghost })).await;
    assert_eq!(put.status, StatusCode::CREATED, "{:?}", put.body);

    let (_, view) = preflight_of_room(&setup.api, &setup.app, &room).await;
    let streams = streams_check(&view);
    assert_eq!((&streams["status"], &streams["reason"]), (&json!("failed"), &json!("STREAM_FAILED")), "{view}");
    let stream = &streams["streams"][0];
    assert_eq!((&stream["status"], &stream["reason"]), (&json!("failed"), &json!("STREAM_UNREACHABLE")), "{view}");
    assert!(stream.get("video").is_none(), "{view}");

    let id = view["preflight_id"].as_str().unwrap();
    let stranger = Api::new_account().await;
    let theirs = stranger.create_app("other").await.unwrap();
    for app in [&setup.app, &theirs] {
        let got = stranger.get(&format!("/v2/apps/{app}/preflight/{id}")).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{app}: {:?}", got.body);
    }
}

#[tokio::test]
async fn a_stream_at_a_name_resolving_to_loopback_fails_refused_and_is_never_connected_to() {
    let setup = Setup::new(&["HLS"], json!({}), json!({})).await;
    let room = unique("pfguard");
    let (listener, port) = crate::guard::untouchable();
    let url = format!("rtmp://{}:{port}/live/x", crate::guard::name_resolving_to_loopback());
    let put =
        setup.api.put(&format!("/v2/apps/{}/rooms/{room}/streams/mallory", setup.app), &json!({ "url": url })).await;
    assert_eq!(put.status, StatusCode::CREATED, "saved: the API cannot resolve names {:?}", put.body);

    let (_, view) = preflight_of_room(&setup.api, &setup.app, &room).await;
    let stream = &streams_check(&view)["streams"][0];
    assert_eq!((&stream["status"], &stream["reason"]), (&json!("failed"), &json!("STREAM_REFUSED")), "{view}");
    assert!(listener.accept().is_err(), "the probe connected to the loopback listener");
}
