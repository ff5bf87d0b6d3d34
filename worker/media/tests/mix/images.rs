//! Images: the background image (PNG) in empty panes, a participant's own (JPEG) or the
//! default image (PNG) while there is no picture of them (audio only, or stalled).

use std::sync::OnceLock;

use roomrec_media::{Layout, LayoutKind, MixCommand};

use crate::support::*;

const CAMERA: u32 = 0xE02020;
const BACKGROUND_IMAGE: u32 = 0xE08020;
const DEFAULT_IMAGE: u32 = 0xE020E0;
const OWN_IMAGE: u32 = 0x20E0E0;
const TONES: [u32; 3] = [310, 430, 550];

/// The camera's publisher stops then; its last picture holds for the stall timeout (3 s).
const CAMERA_STOPS_AT: f64 = 4.0;
const STOP_AT: f64 = 9.5;
/// Before the camera stops, soon after, and long after.
const LOOK_AT: [f64; 3] = [CAMERA_STOPS_AT - 0.5, CAMERA_STOPS_AT + 1.5, STOP_AT - 0.5];

/// 2×2 grid on 640×360: a (camera), b (audio only), c (audio only, own image), empty.
const PANES: [(u32, u32); 4] = [(160, 90), (480, 90), (160, 270), (480, 270)];

fn with_images() -> &'static Seen {
    static RUN: OnceLock<Seen> = OnceLock::new();
    RUN.get_or_init(|| {
        let _one = one_mix_at_a_time();
        let server = RtmpServer::start();
        let camera = Publisher::start(&server, "a", Look::Colour(CAMERA), TONES[0]);
        let _voices = [
            Publisher::start(&server, "b", Look::Nothing, TONES[1]),
            Publisher::start(&server, "c", Look::Nothing, TONES[2]),
        ];
        let dir = TempDir::new("mix-images");
        let layout = Layout {
            background_image: Some(still(&dir, "background.png", BACKGROUND_IMAGE)),
            default_user_image: Some(still(&dir, "default.png", DEFAULT_IMAGE)),
            user_images: vec![("c".to_owned(), still(&dir, "c.jpg", OWN_IMAGE))],
            ..layout(LayoutKind::Grid)
        };
        let spec = spec(dir.path(), Some(CANVAS), layout);
        let roster = ["a", "b", "c"].iter().map(|key| participant(&server, key, false)).collect();
        let script = vec![
            (0.0, Step::Send(MixCommand::Participants(roster))),
            (CAMERA_STOPS_AT, Step::Do(Box::new(move || drop(camera)))),
        ];
        run_mix(dir, spec, script, STOP_AT, &LOOK_AT)
    })
}

fn picture_before_the_camera_stops() -> &'static Picture {
    with_images().picture(LOOK_AT[0])
}

#[test]
fn a_participant_without_video_shows_the_default_image_in_their_pane() {
    assert_colours(picture_before_the_camera_stops(), &[(PANES[0], CAMERA), (PANES[1], DEFAULT_IMAGE)], "b");
}

#[test]
fn a_participants_own_jpeg_image_wins_over_the_default_one() {
    assert_colours(picture_before_the_camera_stops(), &[(PANES[2], OWN_IMAGE)], "c");
}

#[test]
fn a_png_background_image_shows_in_empty_panes_instead_of_the_colour() {
    assert_colours(picture_before_the_camera_stops(), &[(PANES[3], BACKGROUND_IMAGE)], "the empty pane");
}

#[test]
fn a_stalled_participant_holds_their_last_picture_then_shows_their_image() {
    let held = with_images().picture(LOOK_AT[1]);
    assert_colours(held, &[(PANES[0], CAMERA)], "just after the camera stopped");
    let later = with_images().picture(LOOK_AT[2]);
    assert_colours(later, &[(PANES[0], DEFAULT_IMAGE)], "long after the camera stopped");
    with_images().assert_finished_cleanly();
}

#[test]
fn participants_without_video_are_heard() {
    let sound = &with_images().sound;
    for tone in &TONES[1..] {
        let level = tone_level(sound, *tone, 2, 3);
        assert!(level > 0.1, "the {tone} Hz voice is at {level}");
    }
}
