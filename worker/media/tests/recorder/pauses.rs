//! A source that stops and comes back: same files within the merge window, new files after
//! it or when the stream changed. With a file input (read again on each retry) and with a
//! real RTMP publisher through nginx-rtmp.

use std::path::Path;
use std::time::Duration;

use roomrec_media::{FilePolicy, Format, HlsSpec, Mark, Output, RecordSpec};

use crate::support::{self, decodes, file_url, is_waiting, make_input, probe, record, Recording, RtmpServer, TempDir};

const SLICE: Duration = Duration::from_secs(2);

fn merging_spec(dir: &Path, merge_window: Duration) -> RecordSpec {
    let files = FilePolicy { cycle: None, merge_window };
    RecordSpec { hls: Some(HlsSpec { slice: SLICE, files }), mp4: Some(files), ..support::spec(dir, SLICE) }
}

fn waits_after_media(seen: &[Output]) -> usize {
    let Some(first) = seen.iter().position(|o| matches!(o, Output::FileOpened { .. })) else { return 0 };
    seen[first..].iter().filter(|o| is_waiting(o)).count()
}

/// The timeline entries of `format`'s file `file`: (ms, mark).
fn timeline(recording: &Recording, format: Format, file: u32) -> Vec<(u128, Mark)> {
    // The last one sent is the complete one.
    let found = recording.outputs.iter().rev().find_map(|o| match o {
        Output::Timeline { format: f, file: n, timeline } if *f == format && *n == file => Some(timeline),
        _ => None,
    });
    let timeline = found.unwrap_or_else(|| panic!("{format:?} file {file} has a timeline: {:?}", recording.outputs));
    timeline.entries.iter().map(|(at, mark)| (at.as_millis(), mark.clone())).collect()
}

fn position(recording: &Recording, wanted: impl Fn(&Output) -> bool) -> Option<usize> {
    recording.outputs.iter().position(wanted)
}

/// `path` plays for `seconds` (a range): no gap, and audio stays with video.
fn assert_continuous(path: &Path, seconds: std::ops::RangeInclusive<f64>) {
    let probed = probe(path);
    assert_eq!(probed.codecs(), ["h264", "aac"]);
    assert!(seconds.contains(&probed.duration), "{path:?}: {probed:?}, expected {seconds:?} s");
    assert!(decodes(path));
    let video = support::packets(path, "v:0").len();
    let audio = support::packets(path, "a:0").len();
    // 25 fps video, 48 kHz AAC (1024 samples a frame): equal media lengths.
    let video_seconds = video as f64 / 25.0;
    let audio_seconds = audio as f64 * 1024.0 / 48_000.0;
    assert!((video_seconds - audio_seconds).abs() < 0.3, "A/V lengths {video_seconds} vs {audio_seconds}");
}

#[test]
fn a_file_read_again_within_the_merge_window_continues_the_same_files() {
    let dir = TempDir::new("merge");
    make_input(&dir.join("in.flv"), 4, "640x360", "aac");
    let input = support::input(&file_url(&dir.join("in.flv")), Duration::from_millis(300));
    let recording =
        record(input, merging_spec(dir.path(), Duration::from_secs(10)), 10_000, |seen| waits_after_media(seen) == 2);
    assert!(recording.result.is_ok(), "{:?}", recording.result);

    assert_eq!(recording.opened(Format::Mp4).len(), 1);
    assert_eq!(recording.opened(Format::Hls).len(), 1);
    let (path, _) = recording.mp4(0);
    assert_continuous(&path, 7.7..=8.3);
    let segments = recording.segments(0);
    let flagged: Vec<usize> = segments.iter().enumerate().filter(|(_, s)| s.2).map(|(i, _)| i).collect();
    assert_eq!(flagged, [2], "the first segment after the pause: {segments:?}");
    let total: f64 = segments.iter().map(|s| s.1.as_secs_f64()).sum();
    assert!((total - 8.0).abs() < 0.3, "{segments:?}");
    // The timelines: the join, then the gap where the second read continues the file.
    for format in [Format::Mp4, Format::Hls] {
        let entries = timeline(&recording, format, 0);
        assert_eq!(entries.len(), 2, "{format:?}: {entries:?}");
        assert_eq!(entries[0], (0, Mark::Join(None)));
        let (at, Mark::Gap { away }) = &entries[1] else { panic!("{format:?}: a gap: {entries:?}") };
        assert!((3_800..=4_200).contains(at), "{format:?}: the gap after the first 4 s: {entries:?}");
        assert!((0.2..2.0).contains(&away.as_secs_f64()), "{format:?}: away about the retry interval: {away:?}");
    }
}

#[test]
fn a_file_read_again_after_the_merge_window_gets_new_files() {
    let dir = TempDir::new("nomerge");
    make_input(&dir.join("in.flv"), 4, "640x360", "aac");
    let input = support::input(&file_url(&dir.join("in.flv")), Duration::from_millis(500));
    let recording = record(input, merging_spec(dir.path(), Duration::from_millis(100)), 10_000, |seen| {
        waits_after_media(seen) == 2
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);

    let paused = position(&recording, is_waiting).expect("a Waiting");
    let back = recording.outputs.iter().skip(paused).position(|o| matches!(o, Output::Alive)).map(|i| i + paused);
    for format in [Format::Mp4, Format::Hls] {
        assert_eq!(recording.opened(format).len(), 2, "{format:?}");
        let closed =
            position(&recording, |o| matches!(o, Output::FileClosed { format: f, file: 0, .. } if *f == format));
        let reopened =
            position(&recording, |o| matches!(o, Output::FileOpened { format: f, file: 1, .. } if *f == format));
        assert!(
            Some(paused) < closed && closed < back,
            "{format:?}: closed when the window expired, before media came back"
        );
        assert!(back < reopened, "{format:?}");
    }
    for file in [0, 1] {
        assert_continuous(&recording.mp4(file).0, 3.7..=4.3);
        // A new file after a pause starts with the join, and the pause is not a gap in it.
        assert_eq!(timeline(&recording, Format::Mp4, file), [(0, Mark::Join(None))]);
    }
}

#[test]
fn a_source_that_comes_back_with_another_size_gets_new_files() {
    let dir = TempDir::new("resize");
    let source = dir.join("in.flv");
    make_input(&source, 4, "640x360", "aac");
    make_input(&dir.join("small.flv"), 4, "320x180", "aac");
    let input = support::input(&file_url(&source), Duration::from_millis(300));
    let mut swapped = false;
    let recording = record(input, merging_spec(dir.path(), Duration::from_secs(10)), 10_000, |seen| {
        if !swapped && waits_after_media(seen) == 1 {
            std::fs::rename(dir.join("small.flv"), &source).expect("swap the input");
            swapped = true;
        }
        waits_after_media(seen) == 2
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);

    assert_eq!(recording.opened(Format::Mp4), vec![(0, 640, 360), (1, 320, 180)]);
    assert_eq!(recording.opened(Format::Hls), vec![(0, 640, 360), (1, 320, 180)]);
    assert_eq!(probe(&recording.mp4(1).0).streams[0], ("h264".to_owned(), 320, 180));
}

/// Publishes `dir/in.flv` twice through a private nginx-rtmp with `gap` between, recording
/// with `merge_window`; stops after the second publish ends.
fn record_two_publishes(dir: &TempDir, gap: Duration, merge_window: Duration) -> Recording {
    let server = RtmpServer::start();
    let source = dir.join("in.flv");
    make_input(&source, 4, "640x360", "aac");
    let input = support::input(&server.url("pause"), Duration::from_millis(200));
    let recording = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            server.publish(&source, "pause");
            std::thread::sleep(gap);
            server.publish(&source, "pause");
        });
        let recording =
            record(input, merging_spec(dir.path(), merge_window), 10_000, |seen| waits_after_media(seen) == 2);
        let _ = publisher.join();
        recording
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    recording
}

#[test]
fn an_rtmp_publisher_back_within_the_merge_window_continues_the_same_files() {
    let dir = TempDir::new("rtmp-merge");
    let recording = record_two_publishes(&dir, Duration::from_secs(2), Duration::from_secs(10));

    assert_eq!(recording.opened(Format::Mp4).len(), 1, "{:?}", recording.outputs);
    assert_eq!(recording.opened(Format::Hls).len(), 1);
    // Both 4 s parts without the 2 s pause between them (joining a publish late loses up to
    // a second: the wait for its next keyframe).
    assert_continuous(&recording.mp4(0).0, 6.0..=8.3);
    let flagged = recording.segments(0).iter().filter(|s| s.2).count();
    assert_eq!(flagged, 1, "one discontinuity: {:?}", recording.segments(0));
}

#[test]
fn an_rtmp_publisher_back_after_the_merge_window_gets_new_files() {
    let dir = TempDir::new("rtmp-split");
    let recording = record_two_publishes(&dir, Duration::from_millis(2500), Duration::from_secs(1));

    for format in [Format::Mp4, Format::Hls] {
        assert_eq!(recording.opened(format).len(), 2, "{format:?}: {:?}", recording.outputs);
    }
    for file in [0, 1] {
        assert_continuous(&recording.mp4(file).0, 2.5..=4.3);
    }
}
