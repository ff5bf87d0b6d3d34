//! The grid layout (nine_grids_view) as the roster grows 1 → 2 → 4 → 5 → 9 in one mix: the
//! pane shapes for each count, and the mixed sound of everyone.

use std::sync::OnceLock;

use roomrec_media::{Format, LayoutKind, MixCommand};

use crate::support::*;

/// Participant i's colour and tone.
const COLOURS: [u32; 9] = [0xE02020, 0x20E020, 0x2020E0, 0xE0E020, 0x20E0E0, 0xE020E0, 0xE0E0E0, 0xE08020, 0x8020E0];
const TONES: [u32; 9] = [310, 430, 550, 670, 790, 910, 1030, 1150, 1270];
/// How many are in the roster in each phase.
const COUNTS: [usize; 5] = [1, 2, 4, 5, 9];
/// Seconds per phase: time enough to connect (a keyframe a second), probe and show, with a
/// second to spare for a loaded machine (CI once heard the first tone only 2.7 s after it joined).
const PHASE: f64 = 4.0;
/// The last phase lasts longer, for a clean second of everyone's sound.
const STOP_AT: f64 = COUNTS.len() as f64 * PHASE + 1.5;

/// Nine publishers; every `PHASE` seconds the roster grows to the next of `COUNTS`.
fn growing() -> &'static Seen {
    static RUN: OnceLock<Seen> = OnceLock::new();
    RUN.get_or_init(|| {
        let _one = one_mix_at_a_time();
        let server = RtmpServer::start();
        let keys: Vec<String> = (0..9).map(|i| format!("p{i}")).collect();
        let _publishers: Vec<Publisher> = keys
            .iter()
            .zip(COLOURS.iter().zip(TONES))
            .map(|(key, (&colour, tone))| Publisher::start(&server, key, Look::Colour(colour), tone))
            .collect();
        let dir = TempDir::new("mix-grid");
        let spec = spec(dir.path(), Some(CANVAS), layout(LayoutKind::Grid));
        let script = COUNTS
            .iter()
            .enumerate()
            .map(|(phase, &count)| {
                let roster = keys[..count].iter().map(|key| participant(&server, key, false)).collect();
                (phase as f64 * PHASE, Step::Send(MixCommand::Participants(roster)))
            })
            .collect();
        let look_at: Vec<f64> = (0..COUNTS.len()).map(phase_end).collect();
        run_mix(dir, spec, script, STOP_AT, &look_at)
    })
}

/// Near the end of phase `phase`, when its participants all show.
fn phase_end(phase: usize) -> f64 {
    (phase + 1) as f64 * PHASE - 0.4
}

/// The picture near the end of the phase with `count` participants.
fn picture_with(count: usize) -> &'static Picture {
    let phase = COUNTS.iter().position(|&c| c == count).expect("a phase with that count");
    growing().picture(phase_end(phase))
}

#[test]
fn one_participant_fills_the_canvas() {
    let picture = picture_with(1);
    assert_colours(picture, &[((320, 180), COLOURS[0]), ((20, 20), COLOURS[0]), ((620, 340), COLOURS[0])], "one");
}

#[test]
fn two_participants_sit_side_by_side() {
    let picture = picture_with(2);
    let expected =
        [((160, 20), COLOURS[0]), ((160, 340), COLOURS[0]), ((480, 20), COLOURS[1]), ((480, 340), COLOURS[1])];
    assert_colours(picture, &expected, "two");
}

#[test]
fn four_participants_make_a_two_by_two_grid_in_join_order() {
    let picture = picture_with(4);
    let expected =
        [((160, 90), COLOURS[0]), ((480, 90), COLOURS[1]), ((160, 270), COLOURS[2]), ((480, 270), COLOURS[3])];
    assert_colours(picture, &expected, "four");
}

#[test]
fn five_participants_make_a_three_by_two_grid_with_the_last_cell_empty() {
    let picture = picture_with(5);
    let expected = [
        ((106, 90), COLOURS[0]),
        ((319, 90), COLOURS[1]),
        ((533, 90), COLOURS[2]),
        ((106, 270), COLOURS[3]),
        ((319, 270), COLOURS[4]),
        ((533, 270), BACKGROUND),
    ];
    assert_colours(picture, &expected, "five");
}

#[test]
fn nine_participants_make_a_three_by_three_grid() {
    let picture = picture_with(9);
    let centres = [106, 319, 533].map(|x| [60, 180, 300].map(|y| (x, y)));
    let expected: Vec<((u32, u32), u32)> = (0..9).map(|i| (centres[i % 3][i / 3], COLOURS[i])).collect();
    assert_colours(picture, &expected, "nine");
}

#[test]
fn the_grid_changes_shape_within_one_file_that_ends_cleanly() {
    let mixed = growing();
    mixed.assert_finished_cleanly();
    assert_eq!(mixed.opened(Format::Mp4), [(0, 640, 360)]);
}

#[test]
fn the_mixed_sound_carries_every_participants_tone_and_never_clips() {
    let sound = &growing().sound;
    let everyone = ((COUNTS.len() - 1) as f64 * PHASE) as u32 + 2;
    for (i, &tone) in TONES.iter().enumerate() {
        let level = tone_level(sound, tone, everyone, everyone + 2);
        assert!(level > 0.03, "participant {i}'s {tone} Hz tone is at {level}");
    }
    let peak = sound.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
    // Nine tones at half scale add up to several times full scale: only a limiter keeps it under.
    assert!(peak < 0.99, "the sound reaches {peak} of full scale");
    assert!(peak > 0.5, "the limiter turns the sum down, not off: {peak}");
}

#[test]
fn only_participants_in_the_roster_are_heard() {
    let sound = &growing().sound;
    let first_phase = PHASE as u32;
    let heard = tone_level(sound, TONES[0], first_phase - 1, first_phase);
    let not_yet = tone_level(sound, TONES[1], first_phase - 1, first_phase);
    assert!(heard > 0.1, "the first participant: {heard}");
    assert!(not_yet < 0.01, "the second is not in the roster yet: {not_yet}");
}
