//! The active speaker in a mix file's timeline: two participants, one beeping while the
//! other is silent, then the other way round. The speaker entries must fall where the file's
//! own sound changes, and the WebVTT track must say the same.

use std::sync::OnceLock;
use std::time::Duration;

use roomrec_media::{FileTimeline, Format, LayoutKind, Mark, MixCommand, Output};

use crate::support::*;

/// When (in each publisher's own time) the beep moves from "a" to "b".
const SWAP_AT: f64 = 5.0;
const STOP_AT: f64 = 9.5;
const A_HZ: u32 = 440;
const B_HZ: u32 = 880;
/// The sound is measured in windows of this many samples (100 ms: whole cycles of both tones).
const WINDOW: usize = 4_800;
/// How far a speaker entry may be from where the file's sound changes.
const TOLERANCE_MS: i64 = 500;

/// A tone of `hz` at a quarter of full scale while `when` (an ffmpeg expression of the time
/// `t`) holds, silence otherwise.
fn beep(hz: u32, when: &str) -> String {
    format!("sine=frequency={hz}:sample_rate=48000,volume=volume='2*{when}':eval=frame")
}

fn a_then_b() -> &'static Seen {
    static RUN: OnceLock<Seen> = OnceLock::new();
    RUN.get_or_init(|| {
        let _one = one_mix_at_a_time();
        let server = RtmpServer::start();
        let _publishers = [
            Publisher::with_sound(&server, "a", Look::Colour(0xE02020), &beep(A_HZ, &format!("lt(t,{SWAP_AT})"))),
            Publisher::with_sound(&server, "b", Look::Colour(0x20E020), &beep(B_HZ, &format!("gte(t,{SWAP_AT})"))),
        ];
        let dir = TempDir::new("mix-speakers");
        let spec = spec(dir.path(), Some(CANVAS), layout(LayoutKind::Grid));
        let roster = ["a", "b"].iter().map(|key| participant(&server, key, false)).collect();
        let script = vec![(0.0, Step::Send(MixCommand::Participants(roster)))];
        run_mix(dir, spec, script, STOP_AT, &[])
    })
}

/// The MP4 file's timeline (the last one sent is the complete one).
fn timeline(seen: &Seen) -> &FileTimeline {
    seen.outputs
        .iter()
        .rev()
        .find_map(|o| match o {
            Output::Timeline { format: Format::Mp4, file: 0, timeline } => Some(timeline),
            _ => None,
        })
        .expect("the MP4 file's timeline, sent before it closed")
}

/// The amplitude of the `hz` tone in window `index` of `samples`.
fn level(samples: &[f32], hz: u32, index: usize) -> f64 {
    let window = &samples[index * WINDOW..(index + 1) * WINDOW];
    let step = std::f64::consts::TAU * f64::from(hz) / 48_000.0;
    let (re, im) = window.iter().enumerate().fold((0.0f64, 0.0f64), |(re, im), (n, &x)| {
        let phase = step * n as f64;
        (re + f64::from(x) * phase.cos(), im - f64::from(x) * phase.sin())
    });
    2.0 * (re * re + im * im).sqrt() / WINDOW as f64
}

/// Where, in ms of the file, "a" is first heard and where "b" takes over, from its sound.
fn heard(seen: &Seen) -> (i64, i64) {
    let windows = seen.sound.len() / WINDOW;
    let a_from = (0..windows).find(|&i| level(&seen.sound, A_HZ, i) > 0.05).expect("a is heard");
    let b_from = (a_from..windows)
        .find(|&i| level(&seen.sound, B_HZ, i) > level(&seen.sound, A_HZ, i))
        .expect("b is heard after a");
    (a_from as i64 * 100, b_from as i64 * 100)
}

/// The speaker entries: (ms, user).
fn speakers(timeline: &FileTimeline) -> Vec<(i64, Option<String>)> {
    timeline
        .entries
        .iter()
        .filter_map(|(at, mark)| match mark {
            Mark::Speaker(user) => Some((at.as_millis() as i64, user.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_speaker_entries_fall_where_the_file_is_heard_to_change_speaker() {
    let seen = a_then_b();
    seen.assert_finished_cleanly();
    let (a_from, b_from) = heard(seen);
    let found = speakers(timeline(seen));
    let who: Vec<Option<&str>> = found.iter().map(|(_, user)| user.as_deref()).collect();
    assert_eq!(who, [Some("a"), Some("b")], "{found:?}");
    assert!((found[0].0 - a_from).abs() <= TOLERANCE_MS, "a heard from {a_from} ms: {found:?}");
    assert!((found[1].0 - b_from).abs() <= TOLERANCE_MS, "b heard from {b_from} ms: {found:?}");
}

#[test]
fn the_timeline_starts_with_the_joins_and_the_layout_of_both_panes() {
    let timeline = timeline(a_then_b());
    let joins: Vec<&str> = timeline
        .entries
        .iter()
        .filter_map(|(_, mark)| match mark {
            Mark::Join(Some(who)) => Some(who.user_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(joins, ["a", "b"]);
    let last_layout = timeline.entries.iter().rev().find_map(|(at, mark)| match mark {
        Mark::Layout { panes, .. } => Some((*at, panes)),
        _ => None,
    });
    let (at, panes) = last_layout.expect("a layout entry");
    assert!(at <= Duration::from_millis(500), "laid out as the file starts: {at:?}");
    let seated: Vec<(&str, u32, u32, u32, u32)> = panes
        .iter()
        .filter_map(|p| p.who.as_ref().map(|w| (w.user_id.as_str(), p.x, p.y, p.width, p.height)))
        .collect();
    assert_eq!(seated, [("a", 0, 0, 320, 360), ("b", 320, 0, 320, 360)], "two side by side on 640x360");
}

/// One WebVTT cue: (from ms, to ms, text).
fn cues(vtt: &str) -> Vec<(i64, i64, String)> {
    let mut blocks = vtt.split("\n\n");
    assert_eq!(blocks.next(), Some("WEBVTT"), "the header: {vtt}");
    let ms = |time: &str| -> i64 {
        let parts: Vec<f64> = time.split(':').map(|p| p.parse().expect("a number")).collect();
        assert_eq!(parts.len(), 3, "hh:mm:ss.ttt: {time}");
        ((parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1000.0).round() as i64
    };
    blocks
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let lines: Vec<&str> = block.lines().collect();
            assert_eq!(lines.len(), 3, "id, timing, text: {block:?}");
            let (from, to) = lines[1].split_once(" --> ").expect("a cue timing");
            (ms(from), ms(to), lines[2].to_owned())
        })
        .collect()
}

#[test]
fn the_speaker_track_is_valid_webvtt_with_a_cue_per_speaker() {
    let seen = a_then_b();
    let timeline = timeline(seen);
    let found = speakers(timeline);
    let cues = cues(&timeline.speakers_vtt());
    let texts: Vec<&str> = cues.iter().map(|(_, _, text)| text.as_str()).collect();
    assert_eq!(texts, ["a", "b"]);
    assert_eq!((cues[0].0, cues[0].1), (found[0].0, found[1].0), "a's cue lasts until b speaks");
    assert_eq!(cues[1].1, timeline.duration.as_millis() as i64, "b's cue lasts to the end of the file");
    assert!(cues.iter().all(|(from, to, _)| from < to));
    let json: serde_json::Value = serde_json::from_str(&timeline.json("x.mp4")).expect("the timeline is JSON");
    assert_eq!(json["entries"].as_array().map(Vec::len), Some(timeline.entries.len()));
}
