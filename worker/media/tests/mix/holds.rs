//! The tenant's pause of a mix: the held seconds are left out of the same files.

use roomrec_media::{Format, LayoutKind, MixCommand, Output};

use crate::support::*;

const SLICE: std::time::Duration = std::time::Duration::from_secs(2);
const PAUSE_AT: f64 = 2.5;
const RESUME_AT: f64 = 6.5;
const STOP_AT: f64 = 9.0;

#[test]
fn a_held_mix_leaves_the_hold_out_of_its_files_and_keeps_sound_with_picture() {
    let _one = one_mix_at_a_time();
    let server = RtmpServer::start();
    let _noise = Publisher::start(&server, "h", Look::Noise, 440);
    let dir = TempDir::new("mix-hold");
    let spec = spec_with_hls(dir.path(), Some(CANVAS), layout(LayoutKind::Grid), SLICE);
    let script = vec![
        (0.0, Step::Send(MixCommand::Participants(vec![participant(&server, "h", false)]))),
        (PAUSE_AT, Step::Send(MixCommand::Pause)),
        (RESUME_AT, Step::Send(MixCommand::Resume)),
    ];
    let mixed = run_mix(dir, spec, script, STOP_AT, &[]);
    mixed.assert_finished_cleanly();
    assert_eq!(mixed.opened(Format::Mp4).len(), 1, "the same file goes on");
    assert_eq!(mixed.opened(Format::Hls).len(), 1);
    let paused = mixed.outputs.iter().position(|o| matches!(o, Output::Paused { .. })).expect("Paused");
    let resumed = mixed.outputs.iter().position(|o| matches!(o, Output::Resumed { .. })).expect("Resumed");
    assert!(paused < resumed);

    let recorded = STOP_AT - (RESUME_AT - PAUSE_AT);
    let duration = mixed.duration();
    assert!((duration - recorded).abs() < 0.5, "{duration} s for {recorded} s recorded");
    let video = mixed.video_packets.len() as f64 / f64::from(CANVAS.fps);
    let sound = mixed.sound.len() as f64 / 48_000.0;
    assert!((video - recorded).abs() < 0.5, "{video} s of frames");
    assert!((video - sound).abs() < 0.1, "{video} s of picture, {sound} s of sound");

    let flags: Vec<bool> = mixed
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::Segment { discontinuity, .. } => Some(*discontinuity),
            _ => None,
        })
        .collect();
    assert_eq!(flags.iter().filter(|f| **f).count(), 1, "one discontinuity: {flags:?}");
    for (reported, probed) in &mixed.segments {
        assert!((reported.as_secs_f64() - probed).abs() < 0.15, "reported {reported:?}, plays {probed} s");
    }
}
