//! What the mix writes: H.264 at the canvas's size, rate and bit rate with AAC, HLS segments
//! of the slice length, an audio-only mix, and what is reported along the way.

use std::sync::OnceLock;
use std::time::Duration;

use roomrec_media::{Format, LayoutKind, MixCommand, Output};

use crate::support::*;

const SLICE: Duration = Duration::from_secs(2);
/// Mid-slice, so how many segments there are does not hang on a few milliseconds.
const STOP_AT: f64 = 7.0;

/// One participant of moving noise, which no encoder squeezes below its bit rate.
fn busy() -> &'static Seen {
    static RUN: OnceLock<Seen> = OnceLock::new();
    RUN.get_or_init(|| {
        let _one = one_mix_at_a_time();
        let server = RtmpServer::start();
        let _noise = Publisher::start(&server, "n", Look::Noise, 440);
        let dir = TempDir::new("mix-files");
        let spec = spec_with_hls(dir.path(), Some(CANVAS), layout(LayoutKind::Grid), SLICE);
        let script = vec![(0.0, Step::Send(MixCommand::Participants(vec![participant(&server, "n", false)])))];
        run_mix(dir, spec, script, STOP_AT, &[])
    })
}

#[test]
fn the_mix_is_encoded_at_the_canvas_size_and_frame_rate_with_stereo_aac() {
    let mixed = busy();
    let streams = mixed.streams();
    let expected = [("h264", "640x360"), ("aac", "stereo")].map(|(c, d)| (c.to_owned(), d.to_owned()));
    assert_eq!(streams, expected);
    // Within 5 %: on a loaded machine the mixer may skip a frame to keep up with the clock.
    let fps = mixed.frame_rate();
    assert!((fps - 15.0).abs() <= 0.75, "{fps} frames per second for a 15 fps canvas");
    let frames = mixed.video_packets.len() as f64;
    assert!((frames - STOP_AT * 15.0).abs() <= 8.0, "{frames} frames in {STOP_AT} s at 15 fps");
}

#[test]
fn the_video_keeps_to_the_canvas_bit_rate() {
    let bits: u64 = busy().video_packets.iter().sum::<u64>() * 8;
    let kbps = bits as f64 / STOP_AT / 1000.0;
    let target = f64::from(CANVAS.kbps);
    assert!((kbps - target).abs() <= target * 0.25, "{kbps:.0} kbit/s for a {target} kbit/s canvas");
}

#[test]
fn hls_segments_are_cut_at_the_slice_length_and_play() {
    let mixed = busy();
    assert_eq!(mixed.opened(Format::Hls), [(0, 640, 360)]);
    let segments = &mixed.segments;
    assert_eq!(segments.len(), 4, "{segments:?}");
    for (reported, probed) in segments {
        assert!((reported.as_secs_f64() - probed).abs() < 0.15, "reported {reported:?}, plays {probed} s");
    }
    for (reported, _) in &segments[..segments.len() - 1] {
        assert!((reported.as_secs_f64() - SLICE.as_secs_f64()).abs() < 0.1, "{reported:?}");
    }
    let last = segments.last().map_or(0.0, |(d, _)| d.as_secs_f64());
    assert!(last > 0.5 && last < SLICE.as_secs_f64(), "the last segment ends at the stop: {last} s");
}

#[test]
fn a_stopped_mix_closes_its_files_cleanly_and_they_play_to_the_end() {
    let mixed = busy();
    mixed.assert_finished_cleanly();
    let duration = mixed.duration();
    assert!((duration - STOP_AT).abs() < 0.5, "{duration} s");
    let announced = mixed.outputs.iter().rev().find_map(|o| match o {
        Output::Mp4Progress { bytes, .. } => Some(*bytes),
        _ => None,
    });
    assert_eq!(announced, Some(mixed.mp4_bytes), "the last progress is the final size");
}

#[test]
fn media_flowing_is_reported_about_once_a_second() {
    let alive = busy().outputs.iter().filter(|o| **o == Output::Alive).count();
    assert!((4..=8).contains(&alive), "{alive} Alive in {STOP_AT} s");
}

#[test]
fn an_audio_only_mix_has_only_an_aac_track_with_everyones_sound() {
    let _one = one_mix_at_a_time();
    let server = RtmpServer::start();
    let _publishers = [
        Publisher::start(&server, "a", Look::Colour(0xE02020), 310),
        Publisher::start(&server, "b", Look::Nothing, 430),
    ];
    let dir = TempDir::new("mix-audio-only");
    let spec = spec(dir.path(), None, layout(LayoutKind::Grid));
    let roster = vec![participant(&server, "a", false), participant(&server, "b", false)];
    let mixed = run_mix(dir, spec, vec![(0.0, Step::Send(MixCommand::Participants(roster)))], 4.0, &[]);
    mixed.assert_finished_cleanly();
    assert_eq!(mixed.opened(Format::Mp4), [(0, 0, 0)]);
    assert_eq!(mixed.streams(), [("aac".to_owned(), "stereo".to_owned())]);
    for tone in [310, 430] {
        let level = tone_level(&mixed.sound, tone, 2, 3);
        assert!(level > 0.1, "the {tone} Hz tone is at {level}");
    }
}

#[test]
fn an_empty_room_records_the_background_and_silence_and_reports_no_media() {
    let _one = one_mix_at_a_time();
    let dir = TempDir::new("mix-empty");
    let spec = spec(dir.path(), Some(CANVAS), layout(LayoutKind::Grid));
    let script = vec![(0.0, Step::Send(MixCommand::Participants(Vec::new())))];
    let mixed = run_mix(dir, spec, script, 2.0, &[1.5]);
    mixed.assert_finished_cleanly();
    assert!(!mixed.outputs.contains(&Output::Alive), "nobody sends media");
    assert_colours(mixed.picture(1.5), &[((320, 180), BACKGROUND), ((10, 10), BACKGROUND)], "an empty room");
    let peak = mixed.sound.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
    assert!(mixed.sound.len() > 48_000 && peak < 0.001, "silence: {} samples, peak {peak}", mixed.sound.len());
}
