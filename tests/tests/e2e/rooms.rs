use std::time::Duration;

use reqwest::StatusCode;
use roomrec_domain::ids::{AppId, RoomId, UserId};
use roomrec_domain::ports::{AppStore, RoomStore};
use roomrec_domain::publish::{PublishBase, PublishGrant};
use roomrec_domain::room::{MediaSession, RoomStream, VideoType};
use roomrec_domain::time::Timestamp;
use roomrec_domain::url::StreamUrl;
use roomrec_tests::{publish, stack_env, unsigned_publish_url, Api};
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
    let reply = api.put(&path, &json!({})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["url"], "rtsp://cam.example.com/class-7/amy");
    assert_eq!(reply.body["video_type"], "CAMERASTREAM");
    // The template names one URL per user, their camera's: a screen share needs its own.
    let screen = api.put(&path, &json!({ "video_type": "SUBSTREAM" })).await;
    assert_eq!(screen.status, StatusCode::BAD_REQUEST);
    assert!(screen.error_msg().starts_with("url"), "{}", screen.error_msg());
}

#[tokio::test]
async fn a_participants_camera_and_screen_share_are_two_roster_entries_read_and_removed_apart() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let path = format!("/v2/apps/{app}/rooms/class-8/streams/amy");
    let camera = api.put(&path, &json!({ "url": "rtmp://media.example.com/live/amy" })).await;
    assert_eq!(camera.status, StatusCode::CREATED, "{:?}", camera.body);
    let screen_body = json!({ "url": "rtmp://media.example.com/live/amy-screen", "video_type": "SUBSTREAM" });
    let screen = api.put(&path, &screen_body).await;
    assert_eq!(screen.status, StatusCode::CREATED, "the screen share joins beside the camera: {:?}", screen.body);
    assert_eq!(api.put(&path, &screen_body).await.status, StatusCode::OK, "then updates it");

    let roster = api.get(&format!("/v2/apps/{app}/rooms/class-8/streams")).await.body;
    let types: Vec<&str> =
        roster["streams"].as_array().unwrap().iter().map(|s| s["video_type"].as_str().unwrap()).collect();
    assert_eq!((users(&roster), types), (vec!["amy".to_owned(), "amy".to_owned()], vec!["CAMERASTREAM", "SUBSTREAM"]));
    assert_eq!(api.get(&path).await.body["url"], "rtmp://media.example.com/live/amy", "a camera by default");
    let shared = api.get(&format!("{path}?video_type=SUBSTREAM")).await.body;
    assert_eq!(shared["url"], "rtmp://media.example.com/live/amy-screen");
    let bad = api.get(&format!("{path}?video_type=HOLOGRAM")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error_msg().starts_with("video_type"), "{}", bad.error_msg());

    assert_eq!(api.delete(&format!("{path}?video_type=SUBSTREAM")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("{path}?video_type=SUBSTREAM")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.get(&path).await.status, StatusCode::OK, "the camera stays");
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

/// How an ffmpeg publisher ended, waiting up to 30 s.
async fn exit_of(publisher: &mut tokio::process::Child) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(30), publisher.wait()).await.expect("the publisher ends").unwrap()
}

/// Publishing with `url` is refused by nginx-rtmp (its hook answered non-2xx): the publisher
/// fails, and `user` never shows in `room`'s roster.
async fn assert_refused(api: &Api, room: &str, user: &str, url: &str) {
    let mut publisher = publish(url, 4);
    let mut seen = false;
    let status = loop {
        seen |= users(&api.get(room).await.body).iter().any(|u| u == user);
        if let Some(status) = publisher.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "nginx must drop the publisher of {url}");
    assert!(!seen, "{user} never joined the roster: {}", api.get(room).await.body);
}

#[tokio::test]
async fn nginx_rtmp_publishes_with_a_minted_url_join_and_leave_the_room_through_the_hook() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let room = format!("/v2/apps/{app}/rooms/live1/streams");
    let minted = api.post(&format!("{room}/alice/publish-url"), &json!({ "video_type": "SUBSTREAM" })).await;
    assert_eq!(minted.status, StatusCode::CREATED, "{:?}", minted.body);
    let url = minted.body["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/{app}.live1.alice.SUBSTREAM?", stack_env("ROOMREC_RTMP_URL"))), "{url}");
    assert!(minted.body["expires_at"].is_string(), "{:?}", minted.body);
    let mut publisher = publish(url, 4);

    let roster = wait_for_roster(&api, &room, &["alice"]).await;
    let rtmp_port = stack_env("ROOMREC_RTMP_PORT");
    // nginx-rtmp reports the stream name without the query: the worker pulls a stable URL.
    assert_eq!(roster["streams"][0]["url"], format!("rtmp://127.0.0.1:{rtmp_port}/live/{app}.live1.alice.SUBSTREAM"));
    assert_eq!(roster["streams"][0]["video_type"], "SUBSTREAM", "the signed video type");
    assert_eq!(roster["streams"][0]["has_audio"], true);

    assert!(exit_of(&mut publisher).await.success(), "the publish was accepted and ran to its end");
    wait_for_roster(&api, &room, &[]).await;
}

#[tokio::test]
async fn nginx_rtmp_refuses_a_publish_without_a_minted_url_or_with_a_tampered_one() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let room = format!("/v2/apps/{app}/rooms/live2/streams");
    assert_refused(&api, &room, "mallory", &unsigned_publish_url(&format!("{app}.live2.mallory"))).await;

    let minted = api.publish_url(&app, "live2", "alice").await.unwrap();
    let as_mallory = minted.replace(".live2.alice?", ".live2.mallory?");
    assert_refused(&api, &room, "mallory", &as_mallory).await;
}

#[tokio::test]
async fn nginx_rtmp_refuses_a_publish_into_an_unknown_app() {
    let mut publisher = publish(&unsigned_publish_url("0123456789abcdef01234567.live1.mallory"), 4);
    assert!(!exit_of(&mut publisher).await.success(), "the hook answered 404, so nginx must drop the publisher");
}

#[tokio::test]
async fn a_second_publisher_cannot_replace_a_live_participant() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let room = format!("/v2/apps/{app}/rooms/live3/streams");
    let mut first = publish(&api.publish_url(&app, "live3", "alice").await.unwrap(), 30);
    let joined = wait_for_roster(&api, &room, &["alice"]).await["streams"][0].clone();

    // A URL minted for the same participant (leaked, or a second device) is refused while
    // the first publishes, and its publish_done does not remove the first.
    let second = api.publish_url(&app, "live3", "alice").await.unwrap();
    let mut intruder = publish(&second, 4);
    assert!(!exit_of(&mut intruder).await.success(), "nginx must drop the second publisher");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let roster = api.get(&room).await.body;
    assert_eq!(
        roster["streams"].as_array().unwrap(),
        std::slice::from_ref(&joined),
        "the first session stays in the roster"
    );
    assert!(first.try_wait().unwrap().is_none(), "the first publisher keeps streaming");

    first.kill().await.unwrap();
    wait_for_roster(&api, &room, &[]).await;
    let mut next = publish(&second, 4);
    wait_for_roster(&api, &room, &["alice"]).await;
    assert!(exit_of(&mut next).await.success(), "once the first left, the same URL lets the next one in");
}

#[tokio::test]
async fn an_expired_or_rotated_publish_url_is_refused_and_the_secret_never_shows() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let room = format!("/v2/apps/{app}/rooms/live4/streams");
    let store = roomrec_tests::store().await;
    let app_id = AppId::parse(&app).unwrap();
    let stored = store.find_app(&app_id).await.unwrap().unwrap();
    let secret = stored.publish_secret.expect("a new app has a publish secret");

    // Signed with the app's real secret, as the API signs, but its expiry has passed: the
    // API never mints one (its shortest lifetime is a minute), so the test signs it.
    let expired = PublishGrant {
        app_id: app_id.clone(),
        room_id: RoomId::try_from("live4").unwrap(),
        user_id: UserId::try_from("alice").unwrap(),
        video_type: VideoType::Camerastream,
        expires: chrono::Utc::now().timestamp() - 1,
    };
    let base = PublishBase::parse(&stack_env("ROOMREC_RTMP_URL")).unwrap();
    assert_refused(&api, &room, "alice", &base.url(&expired, &secret)).await;
    // The same grant a minute from expiring is let in: the expiry was the only reason.
    let fresh = PublishGrant { expires: chrono::Utc::now().timestamp() + 60, ..expired };
    let mut publisher = publish(&base.url(&fresh, &secret), 4);
    wait_for_roster(&api, &room, &["alice"]).await;
    assert!(exit_of(&mut publisher).await.success());
    wait_for_roster(&api, &room, &[]).await;

    let minted = api.publish_url(&app, "live4", "alice").await.unwrap();
    let rotated = api.post(&format!("/v2/apps/{app}/publish-secret"), &json!({})).await;
    assert_eq!(rotated.status, StatusCode::NO_CONTENT, "{:?}", rotated.body);
    assert_refused(&api, &room, "alice", &minted).await;

    let secret = store.find_app(&app_id).await.unwrap().unwrap().publish_secret.unwrap();
    let shown = [api.get(&format!("/v2/apps/{app}")).await.body, api.get("/v2/apps").await.body];
    for body in shown {
        assert!(!body.to_string().contains(secret.stored()), "the secret never shows: {body}");
    }
    let mut publisher = publish(&api.publish_url(&app, "live4", "alice").await.unwrap(), 4);
    wait_for_roster(&api, &room, &["alice"]).await;
    assert!(exit_of(&mut publisher).await.success());
}

#[tokio::test]
async fn a_stream_whose_media_server_went_silent_is_replaced_and_a_live_one_keeps_reporting() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let room = format!("/v2/apps/{app}/rooms/live5/streams");
    // What a media server that died two minutes ago without its publish_done left behind.
    let store = roomrec_tests::store().await;
    let app_id = AppId::parse(&app).unwrap();
    let now = chrono::Utc::now();
    let dead = RoomStream {
        room_id: RoomId::try_from("live5").unwrap(),
        user_id: UserId::try_from("alice").unwrap(),
        url: StreamUrl::parse(&format!("rtmp://127.0.0.1:1/live/{app}.live5.alice"), "url").unwrap(),
        video_type: VideoType::Camerastream,
        has_audio: true,
        has_video: true,
        join_time: Timestamp::at(now - chrono::Duration::minutes(10)),
        join_seq: (now - chrono::Duration::minutes(10)).timestamp_micros(),
        update_time: Timestamp::at(now - chrono::Duration::minutes(10)),
        media_session: Some(MediaSession::parse("dead-7").unwrap()),
        media_seen: Some(Timestamp::at(now - chrono::Duration::minutes(2))),
    };
    store.create_stream(&app_id, &dead).await.unwrap();
    assert_eq!(users(&api.get(&room).await.body), ["alice"]);

    let mut publisher = publish(&api.publish_url(&app, "live5", "alice").await.unwrap(), 16);
    let joined = loop {
        let roster = api.get(&room).await.body;
        if roster["streams"][0]["join_time"] != dead.join_time.to_string() {
            break roster["streams"][0].clone();
        }
        assert!(publisher.try_wait().unwrap().is_none(), "nginx must let the publish in: {roster}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(joined["url"].as_str().unwrap().ends_with(&format!("/live/{app}.live5.alice")), "{joined}");

    // nginx-rtmp's on_update (every 5 s in the local stack) keeps reporting the new session.
    let (room_id, user_id) = (&dead.room_id, &dead.user_id);
    let first = store.get_stream(&app_id, room_id, user_id, VideoType::Camerastream).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let later = store.get_stream(&app_id, room_id, user_id, VideoType::Camerastream).await.unwrap().unwrap();
    assert_ne!(later.media_session, dead.media_session);
    assert!(later.media_seen > first.media_seen, "{:?} then {:?}", first.media_seen, later.media_seen);
    assert!(exit_of(&mut publisher).await.success(), "every update was answered 2xx: the publisher ran to its end");
    wait_for_roster(&api, &room, &[]).await;
}
