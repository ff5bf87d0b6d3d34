//! A participant's camera and screen share at once: the roster keyed by user and video type,
//! through the API, the media hook, automatic recording and Jocloud source recordings.

use super::*;

const SCREEN: VideoType = VideoType::Substream;

impl World {
    /// Registers `who`'s stream of `video_type` through the API; `true` when it joined now.
    async fn put(&self, app: &OwnedApp, who: &str, video_type: VideoType) -> bool {
        self.clock.advance(Duration::from_millis(5));
        let json = format!(r#"{{"url":"rtmp://media.example.com/live/{who}","video_type":"{}"}}"#, video_type.as_str());
        self.rooms.put_stream(app, room(), user(who), body(&json)).await.unwrap().1
    }

    /// The roster as (user, video type) in join order.
    async fn roster(&self, app: &OwnedApp) -> Vec<(String, VideoType)> {
        let streams = self.rooms.list_streams(app, room()).await.unwrap();
        streams.into_iter().map(|s| (s.user_id.to_string(), s.video_type)).collect()
    }
}

fn both(who: &str) -> Vec<(String, VideoType)> {
    vec![(who.to_owned(), CAMERA), (who.to_owned(), SCREEN)]
}

#[tokio::test]
async fn a_participant_registers_a_camera_and_a_screen_share_and_each_is_read_updated_and_removed_alone() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    assert!(w.put(&app, "u1", CAMERA).await);
    assert!(w.put(&app, "u1", SCREEN).await, "the screen share joins beside the camera");
    assert!(!w.put(&app, "u1", SCREEN).await, "a second PUT of the same type updates it");
    assert_eq!(w.roster(&app).await, both("u1"));
    let screen = w.rooms.get_stream(&app, room(), user("u1"), SCREEN).await.unwrap();
    assert_eq!(screen.video_type, SCREEN);

    w.rooms.delete_stream(&app, room(), user("u1"), CAMERA).await.unwrap();
    assert_eq!(w.roster(&app).await, [("u1".to_owned(), SCREEN)], "only the camera left");
    assert_eq!(not_found_field(w.rooms.get_stream(&app, room(), user("u1"), CAMERA).await), "user_id");
    let open = crate::ports::RoomStore::get_room(w.store.as_ref(), app.id(), &room()).await.unwrap();
    assert!(open.is_some(), "the room stays open while the screen share is in");
}

#[tokio::test]
async fn a_screen_share_needs_its_url_since_the_apps_template_names_cameras() {
    let w = world();
    let template = r#"{"app_name":"a","stream_url_template":"rtmp://media.example.com/live/{room_id}_{user_id}"}"#;
    let created = w.apps.create(&account("alice"), body(template)).await.unwrap();
    let app = w.access.app(&account("alice"), created.app_id.as_str()).await.unwrap();
    let screen = w.rooms.put_stream(&app, room(), user("u1"), body(r#"{"video_type":"SUBSTREAM"}"#)).await;
    assert!(matches!(screen, Err(UseCaseError::Invalid(i)) if i.field == "url"));
    let (camera, _) = w.rooms.put_stream(&app, room(), user("u1"), body("{}")).await.unwrap();
    assert_eq!(camera.url.as_str(), "rtmp://media.example.com/live/room001_u1");
}

#[tokio::test]
async fn two_minted_urls_publish_a_camera_and_a_screen_share_at_once_and_each_publish_done_removes_its_own() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let camera = hook_publish(&mint(&w, &app, "u1", "{}").await.url, "1");
    let screen = hook_publish(&mint(&w, &app, "u1", r#"{"video_type":"SUBSTREAM"}"#).await.url, "2");
    w.rooms.media_hook(camera.clone()).await.unwrap();
    w.clock.advance(Duration::from_millis(5));
    w.rooms.media_hook(screen.clone()).await.unwrap();
    assert_eq!(w.roster(&app).await, both("u1"));
    let streams = w.rooms.list_streams(&app, room()).await.unwrap();
    assert_ne!(streams[0].url, streams[1].url, "two stream keys on the media server");

    // The rule against a second publisher holds per stream.
    let second_screen = hook_publish(&mint(&w, &app, "u1", r#"{"video_type":"SUBSTREAM"}"#).await.url, "3");
    assert_eq!(refused_field(w.rooms.media_hook(second_screen.clone()).await), "user_id");
    w.rooms.media_hook(hook_done(&second_screen, "3")).await.unwrap();
    assert_eq!(w.roster(&app).await, both("u1"), "the refused session removes nothing");

    w.rooms.media_hook(hook_done(&screen, "2")).await.unwrap();
    assert_eq!(w.roster(&app).await, [("u1".to_owned(), CAMERA)], "the camera stays");
    w.rooms.media_hook(hook_done(&camera, "1")).await.unwrap();
    assert!(w.roster(&app).await.is_empty());
}

#[tokio::test]
async fn auto_record_starts_a_job_for_the_camera_and_another_for_the_screen_share() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.rules.update(&app, &rule, body(r#"{"auto_record":true}"#)).await.unwrap();
    w.clock.advance(Duration::from_secs(1));
    w.put(&app, "u1", CAMERA).await;
    w.put(&app, "u1", SCREEN).await;
    w.put(&app, "u1", SCREEN).await;
    let filter = JobFilter { kind: JobKind::Individual, room_id: Some(room()), state: None };
    let jobs = w.jobs.list(&app, &filter, &first_page(20)).await.unwrap().jobs;
    let mut recorded: Vec<VideoType> = jobs.iter().filter_map(|j| j.records_stream()).map(|(_, t)| t).collect();
    recorded.sort();
    assert_eq!(recorded, [CAMERA, SCREEN], "one job per stream, an update starts none");
}

#[tokio::test]
async fn a_jocloud_source_recording_records_a_participants_camera_not_their_screen_share() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.put(&app, "u1", SCREEN).await;
    let view = start(&w, &app, &rule, r#","streamtype":2"#).await;
    assert!(view.jobs.is_empty(), "a uid's stream is its camera");
    w.put(&app, "u1", CAMERA).await;
    w.put(&app, "u2", SCREEN).await;
    let query = format!(r#"{{"recordid":"{}"}}"#, view.recordid);
    let queried = w.jocloud.query_record(&app, body(&query)).await.unwrap();
    let users: Vec<String> = queried.jobs.iter().filter_map(|j| j.user_id.as_ref()).map(|u| u.to_string()).collect();
    assert_eq!(users, ["u1"]);
}
