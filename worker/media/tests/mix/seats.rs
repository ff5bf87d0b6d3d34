//! Stable seats in the grid: a participant who leaves frees their pane, and the next one to
//! join takes it, while everyone else stays where they are.

use std::sync::OnceLock;

use roomrec_media::{LayoutKind, MixCommand};

use crate::support::*;

const A: u32 = 0xE02020;
const B: u32 = 0x20E020;
const C: u32 = 0x2020E0;
const D: u32 = 0xE0E020;

/// Roster [a, b, c]; then b leaves; then d joins.
const LEAVE_AT: f64 = 3.0;
const JOIN_AT: f64 = 5.5;
const STOP_AT: f64 = 8.5;
/// Just before each change, and before the end.
const LOOK_AT: [f64; 3] = [LEAVE_AT - 0.4, JOIN_AT - 0.4, STOP_AT - 0.4];

/// The 2×2 grid's pane centres on a 640×360 canvas, pane 1 to 4.
const PANES: [(u32, u32); 4] = [(160, 90), (480, 90), (160, 270), (480, 270)];

fn leave_then_join() -> &'static Seen {
    static RUN: OnceLock<Seen> = OnceLock::new();
    RUN.get_or_init(|| {
        let _one = one_mix_at_a_time();
        let server = RtmpServer::start();
        let _publishers = [
            Publisher::start(&server, "a", Look::Colour(A), 310),
            Publisher::start(&server, "b", Look::Colour(B), 430),
            Publisher::start(&server, "c", Look::Colour(C), 550),
            Publisher::start(&server, "d", Look::Colour(D), 670),
        ];
        let dir = TempDir::new("mix-seats");
        let spec = spec(dir.path(), Some(CANVAS), layout(LayoutKind::Grid));
        let roster = |keys: &[&str]| keys.iter().map(|key| participant(&server, key, false)).collect();
        let script = vec![
            (0.0, Step::Send(MixCommand::Participants(roster(&["a", "b", "c"])))),
            (LEAVE_AT, Step::Send(MixCommand::Participants(roster(&["a", "c"])))),
            (JOIN_AT, Step::Send(MixCommand::Participants(roster(&["a", "c", "d"])))),
        ];
        run_mix(dir, spec, script, STOP_AT, &LOOK_AT)
    })
}

#[test]
fn three_participants_fill_three_panes_of_a_two_by_two_grid() {
    let picture = leave_then_join().picture(LOOK_AT[0]);
    let expected = [(PANES[0], A), (PANES[1], B), (PANES[2], C), (PANES[3], BACKGROUND)];
    assert_colours(picture, &expected, "before anyone leaves");
}

#[test]
fn a_participant_who_leaves_leaves_an_empty_pane_and_nobody_moves() {
    let picture = leave_then_join().picture(LOOK_AT[1]);
    let expected = [(PANES[0], A), (PANES[1], BACKGROUND), (PANES[2], C), (PANES[3], BACKGROUND)];
    assert_colours(picture, &expected, "after b left");
}

#[test]
fn a_participant_who_leaves_frees_their_pane_for_the_next_joiner() {
    let picture = leave_then_join().picture(LOOK_AT[2]);
    let expected = [(PANES[0], A), (PANES[1], D), (PANES[2], C), (PANES[3], BACKGROUND)];
    assert_colours(picture, &expected, "after d joined");
    leave_then_join().assert_finished_cleanly();
}
