//! The screen-share layouts, switched by `Layout` commands during one mix: the large pane
//! (the stream pinned to pane 1, fitted), the column of the others beside it, and the large
//! pane empty when no stream is pinned there.

use std::sync::OnceLock;

use roomrec_media::{Format, Layout, LayoutKind, MixCommand, Pin};

use crate::support::*;

const CAMERA_A: u32 = 0xE02020;
const SCREEN: u32 = 0x20E020;
const CAMERA_C: u32 = 0x2020E0;
const CAMERA_D: u32 = 0xE0E020;

/// Phase starts (seconds): S's screen share pinned to pane 1, left; C's camera pinned
/// instead; the same on the right; the screen share gone (D joins instead) and no pins.
const PHASES: [f64; 4] = [0.0, 3.5, 6.5, 9.5];
const STOP_AT: f64 = 13.0;

/// 640×360 screen share left: large pane x 0–512 (a 16:9 picture fitted: 512×288 at y 36),
/// column x 512–640 of rows 90 high.
const LARGE_LEFT: (u32, u32) = (256, 180);
const BAR_LEFT: (u32, u32) = (256, 16);
const COLUMN_RIGHT: [(u32, u32); 3] = [(576, 45), (576, 135), (576, 225)];
/// Screen share right: large pane x 128–640, column x 0–128.
const LARGE_RIGHT: (u32, u32) = (384, 180);
const BAR_RIGHT: (u32, u32) = (384, 344);
const COLUMN_LEFT: [(u32, u32); 2] = [(64, 45), (64, 135)];

/// `kind` with `user`'s stream (`screen_share` or camera) pinned to pane 1.
fn large(kind: LayoutKind, user: &str, screen_share: bool) -> Layout {
    Layout { pinned: vec![Pin { pane: 1, user_id: user.to_owned(), screen_share }], ..layout(kind) }
}

fn switching() -> &'static Seen {
    static RUN: OnceLock<Seen> = OnceLock::new();
    RUN.get_or_init(|| {
        let _one = one_mix_at_a_time();
        let server = RtmpServer::start();
        let _publishers = [
            Publisher::start(&server, "a", Look::Colour(CAMERA_A), 310),
            Publisher::start(&server, "s", Look::Colour(SCREEN), 430),
            Publisher::start(&server, "c", Look::Colour(CAMERA_C), 550),
            Publisher::start(&server, "d", Look::Colour(CAMERA_D), 670),
        ];
        let dir = TempDir::new("mix-screen-share");
        let spec = spec(dir.path(), Some(CANVAS), large(LayoutKind::ScreenShareLeft, "s", true));
        let first =
            vec![participant(&server, "a", false), participant(&server, "s", true), participant(&server, "c", false)];
        let last =
            vec![participant(&server, "a", false), participant(&server, "c", false), participant(&server, "d", false)];
        let script = vec![
            (PHASES[0], Step::Send(MixCommand::Participants(first))),
            (PHASES[1], Step::Send(MixCommand::Layout(large(LayoutKind::ScreenShareLeft, "c", false)))),
            (PHASES[2], Step::Send(MixCommand::Layout(large(LayoutKind::ScreenShareRight, "c", false)))),
            (PHASES[3], Step::Send(MixCommand::Participants(last))),
            (PHASES[3], Step::Send(MixCommand::Layout(layout(LayoutKind::ScreenShareLeft)))),
        ];
        let look_at: Vec<f64> = (0..PHASES.len()).map(phase_end).collect();
        run_mix(dir, spec, script, STOP_AT, &look_at)
    })
}

/// Near the end of phase `phase`.
fn phase_end(phase: usize) -> f64 {
    PHASES.get(phase + 1).copied().unwrap_or(STOP_AT) - 0.5
}

/// The picture near the end of phase `phase`.
fn picture_in(phase: usize) -> &'static Picture {
    switching().picture(phase_end(phase))
}

#[test]
fn the_pinned_screen_share_fills_the_large_pane_and_the_cameras_stack_beside_it_in_join_order() {
    let expected =
        [(LARGE_LEFT, SCREEN), (COLUMN_RIGHT[0], CAMERA_A), (COLUMN_RIGHT[1], CAMERA_C), (COLUMN_RIGHT[2], BACKGROUND)];
    assert_colours(picture_in(0), &expected, "screen share left");
}

#[test]
fn the_large_pane_fits_the_whole_picture_with_background_bars() {
    assert_colours(picture_in(0), &[(BAR_LEFT, BACKGROUND)], "above the fitted picture");
}

#[test]
fn the_camera_pinned_to_pane_one_takes_the_large_pane_and_the_screen_share_joins_the_column() {
    let expected = [(LARGE_LEFT, CAMERA_C), (COLUMN_RIGHT[0], CAMERA_A), (COLUMN_RIGHT[1], SCREEN)];
    assert_colours(picture_in(1), &expected, "c pinned to pane 1");
}

#[test]
fn screen_share_right_puts_the_large_pane_on_the_right_and_the_column_on_the_left() {
    let expected =
        [(LARGE_RIGHT, CAMERA_C), (BAR_RIGHT, BACKGROUND), (COLUMN_LEFT[0], CAMERA_A), (COLUMN_LEFT[1], SCREEN)];
    assert_colours(picture_in(2), &expected, "screen share right");
}

#[test]
fn without_a_pinned_stream_the_large_pane_shows_the_background() {
    let expected = [
        (LARGE_LEFT, BACKGROUND),
        (COLUMN_RIGHT[0], CAMERA_A),
        (COLUMN_RIGHT[1], CAMERA_C),
        (COLUMN_RIGHT[2], CAMERA_D),
    ];
    assert_colours(picture_in(3), &expected, "no main user");
}

#[test]
fn layout_commands_change_the_picture_within_the_same_file() {
    let mixed = switching();
    mixed.assert_finished_cleanly();
    assert_eq!(mixed.opened(Format::Mp4), [(0, 640, 360)], "one file for every layout");
}
