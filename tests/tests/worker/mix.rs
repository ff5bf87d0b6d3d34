use std::time::{Duration, Instant};

use roomrec_domain::callback::EventType;
use roomrec_tests::publish_colour;
use serde_json::json;

use crate::support::{download, final_events, frames, near, objects, pixel, probe, samples, tone, Setup};

const ALICE: [u8; 3] = [0xE0, 0x30, 0x30];
const BOB: [u8; 3] = [0x30, 0xC0, 0x30];
const BACKGROUND: [u8; 3] = [0x20, 0x20, 0xE0];
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

/// What a sampled frame of the two-person mix shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Picture {
    /// nine_grids_view with two people: alice left, bob right.
    Grid,
    /// screen_share_left with bob pinned to the large pane, alice first in the column.
    BobLarge,
    Other,
}

fn picture(frame: &[u8]) -> Picture {
    let at = |x, y| pixel(frame, WIDTH, x, y);
    if near(at(160, 180), ALICE) && near(at(480, 180), BOB) {
        Picture::Grid
    } else if near(at(256, 180), BOB) && near(at(576, 45), ALICE) && near(at(576, 315), BACKGROUND) {
        Picture::BobLarge
    } else {
        Picture::Other
    }
}

#[tokio::test]
async fn a_mix_job_composes_the_room_and_applies_a_layout_update_in_the_same_file() {
    let setup = Setup::for_mix(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    // Join order decides the panes: alice first (left), then bob.
    let mut alice = publish_colour(&setup.publish_url("mixroom", "alice").await, 60, "0xE03030", 440);
    setup.wait_for_roster("mixroom", &["alice"]).await;
    let mut bob = publish_colour(&setup.publish_url("mixroom", "bob").await, 60, "0x30C030", 660);
    setup.wait_for_roster("mixroom", &["alice", "bob"]).await;
    let job = setup
        .start_mix(json!({
            "room_id": "mixroom",
            "encode_template": "640x360_15_500",
            "layout_template": "nine_grids_view",
            "background_color": "#2020E0",
            "max_idle_time": 30,
        }))
        .await;
    let running = setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    assert_eq!(running["stream_name"], format!("m_{job}_mixroom"));
    tokio::time::sleep(Duration::from_secs(8)).await;

    let update = json!({ "mix_param": { "layout_template": "screen_share_left", "layout_panes": [{ "id": 1, "user_id": "bob" }] } });
    let reply = setup.api.put(&format!("/v2/apps/{}/mix-stream-jobs/{job}", setup.app), &update).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let updated_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    let since_update = updated_at.elapsed().as_secs_f64();
    alice.kill().await.ok();
    bob.kill().await.ok();
    assert_eq!(stopped["stop_reason"], "TENANT_STOP");
    // Metering: both panes showed someone for the whole recording.
    let usage = &stopped["usage"];
    let (panes, recorded) =
        (usage["mixed_pane_seconds"].as_f64().unwrap(), usage["recorded_seconds"]["mp4"].as_f64().unwrap());
    assert!(
        panes >= 1.6 * recorded && panes <= 2.0 * recorded + 1.0,
        "{panes} pane-seconds over {recorded} s: {usage}"
    );
    assert!(usage["cpu_seconds"].as_f64().unwrap() > 0.0, "{usage}");

    // One file per format: the layout changed inside the recording, not by a new file.
    let stored = objects(&setup.bucket, &setup.prefix).await;
    let mp4s: Vec<_> = stored.iter().filter(|(k, _)| k.ends_with(".mp4")).collect();
    assert_eq!(mp4s.len(), 1, "{stored:?}");
    assert_eq!(stored.iter().filter(|(k, _)| k.ends_with(".m3u8")).count(), 1, "{stored:?}");
    let dir = std::env::temp_dir().join(format!("roomrec-test-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mp4 = download(&setup.bucket, &mp4s[0].0, &dir).await;
    let probed = probe(&mp4);
    let video = probed["streams"].as_array().unwrap().iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(
        (video["codec_name"].as_str(), video["width"].as_u64(), video["height"].as_u64()),
        (Some("h264"), Some(640), Some(360))
    );

    // Sampled every half second: the grid first, then bob large, never back.
    let pictures: Vec<Picture> = frames(&mp4, 0.5, WIDTH, HEIGHT).iter().map(|f| picture(f)).collect();
    let first_large = pictures.iter().position(|p| *p == Picture::BobLarge).unwrap_or_else(|| panic!("{pictures:?}"));
    let last_grid = pictures.iter().rposition(|p| *p == Picture::Grid).unwrap_or_else(|| panic!("{pictures:?}"));
    assert!(last_grid < first_large, "{pictures:?}");
    assert!(pictures[..last_grid].iter().filter(|p| **p == Picture::Grid).count() >= 6, "{pictures:?}");
    assert!(pictures[first_large..].iter().filter(|p| **p == Picture::BobLarge).count() >= 6, "{pictures:?}");
    // The update shows within 2 s (plus the half-second sampling), counted back from the end.
    let from_end = (pictures.len() - first_large) as f64 * 0.5;
    assert!(
        from_end >= since_update - 2.5 - 1.0,
        "update shown {from_end} s before the end, made {since_update} s before"
    );

    // Both voices are in the soundtrack, and a tone nobody sent is not.
    let audio = samples(&mp4);
    let middle = &audio[audio.len() / 4..audio.len() * 3 / 4];
    let (a, b, none) = (tone(middle, 440.0), tone(middle, 660.0), tone(middle, 1000.0));
    assert!(a > 0.02 && b > 0.02 && none < 0.005, "440 Hz {a}, 660 Hz {b}, 1000 Hz {none}");
    assert!(audio.iter().all(|s| s.abs() < 0.999), "the mix clips");

    let events = final_events(&job).await;
    let kinds: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds.iter().filter(|k| **k == EventType::RecordNewFileStart).count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == EventType::RecordFileComplete).count(), 2, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&EventType::CloudRecordOver), "{kinds:?}");
    for done in events.iter().filter(|e| e.event_type == EventType::RecordFileComplete) {
        let facts = done.file.as_ref().unwrap();
        assert_eq!((facts.width, facts.height), (WIDTH, HEIGHT));
        assert_eq!(done.stream_name, format!("m_{job}_mixroom"));
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn an_audio_only_mix_of_an_empty_room_ends_in_exceed_max_idle_time() {
    let setup = Setup::for_mix(&["MP4"], json!({}), json!({})).await;
    let job =
        setup.start_mix(json!({ "room_id": "nobody-here", "encode_template": "audio_only", "max_idle_time": 5 })).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["stop_reason"], "EXCEED_MAX_IDLE_TIME");
    assert_eq!(stopped["usage"]["mixed_pane_seconds"], 0.0, "no picture, no panes");
    let kinds: Vec<EventType> = final_events(&job).await.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds.last(), Some(&EventType::CloudRecordOver), "{kinds:?}");
    // A mix records from its start (silence here, until the idle limit), sound only.
    let stored = objects(&setup.bucket, &setup.prefix).await;
    let (key, _) = stored.iter().find(|(k, _)| k.ends_with(".mp4")).expect("the recorded silence");
    let dir = std::env::temp_dir().join(format!("roomrec-test-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    let probed = probe(&download(&setup.bucket, key, &dir).await);
    let types: Vec<&str> =
        probed["streams"].as_array().unwrap().iter().map(|s| s["codec_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["audio"], "{probed}");
    std::fs::remove_dir_all(&dir).ok();
}
