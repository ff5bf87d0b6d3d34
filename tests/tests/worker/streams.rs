//! One participant with a camera and a screen share at once, each published through its own
//! minted URL: an individual job records the stream of its `video_type`, and a
//! screen_share_left mix shows the pinned stream in the large pane (seed 004), the same
//! user's other stream in the column, and the background when nothing is pinned.

use std::time::Duration;

use roomrec_tests::publish_colour;
use serde_json::json;

use crate::support::{download, frames, near, objects, pixel, Setup};

const CAMERA: [u8; 3] = [0xE0, 0x30, 0x30];
const SCREEN: [u8; 3] = [0x30, 0x30, 0xE0];
const BACKGROUND: [u8; 3] = [0x30, 0xC0, 0x30];

/// Publishes `user`'s red camera and blue screen share into `room`, each through a URL
/// minted for its video type, and waits until the roster lists both.
async fn camera_and_screen(setup: &Setup, room: &str, user: &str, seconds: u32) -> [tokio::process::Child; 2] {
    let camera_url = setup.publish_url(room, user).await;
    let screen_body = json!({ "video_type": "SUBSTREAM" });
    let screen_url = setup.api.mint_publish_url(&setup.app, room, user, &screen_body).await.unwrap();
    let camera = publish_colour(&camera_url, seconds, "0xE03030", 440);
    let screen = publish_colour(&screen_url, seconds, "0x3030E0", 660);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let roster = setup.api.get(&format!("/v2/apps/{}/rooms/{room}/streams", setup.app)).await.body;
        let listed: Vec<(&str, &str)> = roster["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["user_id"].as_str()?, s["video_type"].as_str()?)))
            .collect();
        if listed.len() == 2 && listed.contains(&(user, "SUBSTREAM")) && listed.contains(&(user, "CAMERASTREAM")) {
            return [camera, screen];
        }
        assert!(tokio::time::Instant::now() < deadline, "the roster never listed both streams: {roster}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The job's MP4 (the rule records MP4 only), downloaded into a directory of its own.
async fn the_mp4(setup: &Setup, job: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let stored = objects(&setup.bucket, &setup.prefix).await;
    let key = &stored.iter().find(|(k, _)| k.ends_with(".mp4")).unwrap_or_else(|| panic!("no MP4: {stored:?}")).0;
    let dir = std::env::temp_dir().join(format!("roomrec-test-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    (download(&setup.bucket, key, &dir).await, dir)
}

#[tokio::test]
async fn an_individual_job_of_video_type_substream_records_the_screen_share_not_the_camera() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let mut publishers = camera_and_screen(&setup, "sharing1", "teacher", 30).await;
    let body = json!({
        "room_id": "sharing1", "user_id": "teacher", "video_type": "SUBSTREAM", "max_idle_time": 30,
        "record_param": { "record_rule_id": setup.rule },
    });
    let job = setup.api.create_job(&setup.app, setup.jobs, &body).await.unwrap();
    let running = setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    assert_eq!(running["video_type"], "SUBSTREAM");
    tokio::time::sleep(Duration::from_secs(4)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    for publisher in &mut publishers {
        publisher.kill().await.ok();
    }

    let (mp4, dir) = the_mp4(&setup, &job).await;
    let colours: Vec<[u8; 3]> = frames(&mp4, 0.5, 320, 180).iter().map(|f| pixel(f, 320, 160, 90)).collect();
    assert!(colours.len() >= 4, "{colours:?}");
    assert!(colours.iter().all(|c| near(*c, SCREEN)), "every frame is the blue screen share: {colours:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// What a sampled frame of the 640×360 screen_share_left mix shows: the large pane (x 0–512,
/// the fitted picture at y 36–324) and the column's first two rows (x 512–640, 90 high).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Picture {
    /// The screen share pinned: large blue, the same user's red camera first in the column.
    ScreenLarge,
    /// Nothing pinned: the large pane is background, camera then screen share in the column.
    NothingLarge,
    Other,
}

fn picture(frame: &[u8]) -> Picture {
    let at = |x, y| pixel(frame, 640, x, y);
    let (large, first, second) = (at(256, 180), at(576, 45), at(576, 135));
    if near(large, SCREEN) && near(first, CAMERA) && near(second, BACKGROUND) {
        Picture::ScreenLarge
    } else if near(large, BACKGROUND) && near(first, CAMERA) && near(second, SCREEN) {
        Picture::NothingLarge
    } else {
        Picture::Other
    }
}

#[tokio::test]
async fn a_screen_share_mix_pinned_to_a_users_substream_shows_it_large_beside_their_camera_and_unpinned_shows_background(
) {
    let setup = Setup::for_mix(&["MP4"], json!({}), json!({})).await;
    let mut publishers = camera_and_screen(&setup, "sharing2", "teacher", 40).await;
    let pinned = json!([{ "id": 1, "user_id": "teacher", "video_type": "SUBSTREAM" }]);
    let job = setup
        .start_mix(json!({
            "room_id": "sharing2",
            "encode_template": "640x360_15_500",
            "layout_template": "screen_share_left",
            "layout_panes": pinned,
            "background_color": "#30C030",
            "max_idle_time": 30,
        }))
        .await;
    let running = setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    assert_eq!(running["mix_param"]["layout_panes"], pinned);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let unpin = json!({ "mix_param": { "layout_panes": [] } });
    let reply = setup.api.put(&format!("/v2/apps/{}/mix-stream-jobs/{job}", setup.app), &unpin).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    tokio::time::sleep(Duration::from_secs(5)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    for publisher in &mut publishers {
        publisher.kill().await.ok();
    }

    let (mp4, dir) = the_mp4(&setup, &job).await;
    let pictures: Vec<Picture> = frames(&mp4, 0.5, 640, 360).iter().map(|f| picture(f)).collect();
    let count = |p: Picture| pictures.iter().filter(|q| **q == p).count();
    assert!(count(Picture::ScreenLarge) >= 4 && count(Picture::NothingLarge) >= 4, "{pictures:?}");
    let last_pinned = pictures.iter().rposition(|p| *p == Picture::ScreenLarge).unwrap();
    let first_unpinned = pictures.iter().position(|p| *p == Picture::NothingLarge).unwrap();
    assert!(last_pinned < first_unpinned, "pinned, then unpinned, never back: {pictures:?}");
    std::fs::remove_dir_all(&dir).ok();
}
