//! Recording a file input: segments, MP4 files, copy vs transcode, audio/video only, cycles, Stop.

use std::path::Path;
use std::time::Duration;

use roomrec_media::{FilePolicy, Format, Output, RecordSpec, ScalePolicy, ScaleSpec};

use crate::support::{self, decodes, file_url, is_waiting, make_input, packets, probe, record, Recording, TempDir};

const SLICE: Duration = Duration::from_secs(4);
const INPUT_SECONDS: f64 = 12.0;
/// The inputs have a keyframe every second: a cut may come that much after the slice.
const GOP_SECONDS: f64 = 1.0;

/// Records `dir/in.flv` once through (no retry before the test stops it at `Waiting`).
fn record_once(dir: &TempDir, spec: RecordSpec) -> Recording {
    let input = support::input(&file_url(&dir.join("in.flv")), Duration::from_secs(30));
    let recording = record(input, spec, 10_000, |seen| seen.last().is_some_and(is_waiting));
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    assert_eq!(recording.outputs.last(), Some(&Output::Finished));
    recording
}

fn near(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

fn concat_duration(paths: &[&Path]) -> f64 {
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    probe(Path::new(&format!("concat:{}", list.join("|")))).duration
}

#[test]
fn remux_cuts_hls_segments_of_the_slice_length_that_play_back_to_back() {
    let dir = TempDir::new("hls");
    make_input(&dir.join("in.flv"), 12, "640x360", "aac");
    let recording = record_once(&dir, support::spec(dir.path(), SLICE));

    assert_eq!(recording.opened(Format::Hls), vec![(0, 640, 360)]);
    let segments = recording.segments(0);
    assert_eq!(segments.len(), 3, "{segments:?}");
    for (i, (path, duration, discontinuity)) in segments.iter().enumerate() {
        assert!(!discontinuity);
        assert!(decodes(path), "segment {i} does not decode");
        let probed = probe(path);
        assert_eq!(probed.codecs(), ["h264", "aac"]);
        assert!(
            near(probed.duration, duration.as_secs_f64(), 0.2),
            "segment {i}: probed {probed:?}, reported {duration:?}"
        );
        if i + 1 < segments.len() {
            assert!(near(duration.as_secs_f64(), SLICE.as_secs_f64(), GOP_SECONDS), "segment {i}: {duration:?}");
        }
    }
    let reported: f64 = segments.iter().map(|(_, d, _)| d.as_secs_f64()).sum();
    assert!(near(reported, INPUT_SECONDS, INPUT_SECONDS * 0.1), "{reported}");
    let paths: Vec<&Path> = segments.iter().map(|(p, _, _)| p.as_path()).collect();
    let played = concat_duration(&paths);
    assert!(near(played, INPUT_SECONDS, INPUT_SECONDS * 0.1), "{played}");
    let closed = recording.closed(Format::Hls);
    assert_eq!(closed.len(), 1);
    assert!(near(closed[0].1.as_secs_f64(), INPUT_SECONDS, 0.2), "{closed:?}");
}

#[test]
fn remux_writes_a_fragmented_mp4_that_plays_with_both_streams_and_grows_by_fragments() {
    let dir = TempDir::new("mp4");
    make_input(&dir.join("in.flv"), 12, "640x360", "aac");
    let recording = record_once(&dir, support::spec(dir.path(), SLICE));

    assert_eq!(recording.opened(Format::Mp4), vec![(0, 640, 360)]);
    let (path, bytes) = recording.mp4(0);
    assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(bytes), "the last Mp4Progress is the final size");
    let probed = probe(&path);
    assert_eq!(probed.streams, [("h264".to_owned(), 640, 360), ("aac".to_owned(), 0, 0)]);
    assert!(near(probed.duration, INPUT_SECONDS, 0.3), "{probed:?}");
    assert!(decodes(&path));
    let sizes: Vec<u64> = recording
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::Mp4Progress { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "progress only grows: {sizes:?}");
    assert!(sizes.len() >= 10, "fragments are announced as they are written: {sizes:?}");
    let data = std::fs::read(&path).unwrap_or_default();
    assert!(data.windows(4).filter(|w| w == b"moof").count() >= 10, "fragmented");
    // Every announced size ends on a box boundary: a box header follows it.
    for size in &sizes[..sizes.len() - 1] {
        let at = usize::try_from(*size).unwrap_or(usize::MAX);
        let kind = data.get(at + 4..at + 8).unwrap_or_default();
        assert!(kind == b"moof" || kind == b"mfra", "no box at {at}: {kind:?}");
    }
    let closed = recording.closed(Format::Mp4);
    assert!(near(closed[0].1.as_secs_f64(), INPUT_SECONDS, 0.2), "{closed:?}");
}

#[test]
fn remux_copies_the_packets_without_re_encoding() {
    let dir = TempDir::new("copy");
    let source = dir.join("in.flv");
    make_input(&source, 12, "640x360", "aac");
    let recording = record_once(&dir, support::spec(dir.path(), SLICE));

    let (mp4, _) = recording.mp4(0);
    assert_eq!(packets(&mp4, "v:0"), packets(&source, "v:0"), "the same video packets");
    // The input's first audio packet comes 21 ms before its first keyframe, where the file begins.
    let (copied, source_audio) = (packets(&mp4, "a:0"), packets(&source, "a:0"));
    assert_eq!(copied, source_audio[1..], "the same audio packets");
}

#[test]
fn audio_only_recording_has_no_video_and_cuts_segments_by_duration() {
    let dir = TempDir::new("audio");
    make_input(&dir.join("in.flv"), 12, "640x360", "aac");
    let spec = RecordSpec { record_video: false, ..support::spec(dir.path(), SLICE) };
    let recording = record_once(&dir, spec);

    assert_eq!(recording.opened(Format::Mp4), vec![(0, 0, 0)]);
    let (path, _) = recording.mp4(0);
    let probed = probe(&path);
    assert_eq!(probed.codecs(), ["aac"]);
    assert!(near(probed.duration, INPUT_SECONDS, 0.3), "{probed:?}");
    assert!(recording.count(|o| matches!(o, Output::Mp4Progress { .. })) >= 4, "fragments by duration");
    let segments = recording.segments(0);
    assert_eq!(segments.len(), 3, "{segments:?}");
    for (path, duration, _) in &segments {
        assert_eq!(probe(path).codecs(), ["aac"]);
        assert!(near(duration.as_secs_f64(), SLICE.as_secs_f64(), 0.1), "{duration:?}");
    }
}

#[test]
fn video_only_recording_has_no_audio() {
    let dir = TempDir::new("video");
    make_input(&dir.join("in.flv"), 12, "640x360", "aac");
    let spec = RecordSpec { record_audio: false, ..support::spec(dir.path(), SLICE) };
    let recording = record_once(&dir, spec);

    let (path, _) = recording.mp4(0);
    let probed = probe(&path);
    assert_eq!(probed.streams, [("h264".to_owned(), 640, 360)]);
    assert!(near(probed.duration, INPUT_SECONDS, 0.3), "{probed:?}");
    for (path, _, _) in recording.segments(0) {
        assert_eq!(probe(&path).codecs(), ["h264"]);
        assert!(decodes(&path));
    }
}

#[test]
fn cycle_rolls_to_a_new_file_in_each_format() {
    let dir = TempDir::new("cycle");
    make_input(&dir.join("in.flv"), 12, "640x360", "aac");
    let files = FilePolicy { cycle: Some(Duration::from_secs(6)), merge_window: Duration::ZERO };
    let mut spec = support::spec(dir.path(), SLICE);
    spec.mp4 = Some(files);
    spec.hls = spec.hls.map(|hls| roomrec_media::HlsSpec { files, ..hls });
    let recording = record_once(&dir, spec);

    for format in [Format::Mp4, Format::Hls] {
        let opened: Vec<u32> = recording.opened(format).iter().map(|(file, _, _)| *file).collect();
        assert_eq!(opened, [0, 1], "{format:?}");
        let closed = recording.closed(format);
        assert_eq!(closed.len(), 2);
        for (_, duration) in &closed {
            assert!(near(duration.as_secs_f64(), 6.0, GOP_SECONDS), "{format:?} {closed:?}");
        }
        let closed_first = recording
            .outputs
            .iter()
            .position(|o| matches!(o, Output::FileClosed { format: f, file: 0, .. } if *f == format));
        let opened_second = recording
            .outputs
            .iter()
            .position(|o| matches!(o, Output::FileOpened { format: f, file: 1, .. } if *f == format));
        assert!(closed_first < opened_second, "{format:?}: the first file closes before the second opens");
    }
    for file in [0, 1] {
        let (path, _) = recording.mp4(file);
        let probed = probe(&path);
        assert_eq!(probed.codecs(), ["h264", "aac"]);
        assert!(near(probed.duration, 6.0, GOP_SECONDS), "{probed:?}");
        let segments = recording.segments(file);
        let seconds: Vec<f64> = segments.iter().map(|(_, d, _)| d.as_secs_f64().round()).collect();
        assert_eq!(seconds, [4.0, 2.0], "{segments:?}");
    }
}

#[test]
fn non_aac_audio_is_transcoded_to_aac_and_video_still_copied() {
    let dir = TempDir::new("mp3");
    let source = dir.join("in.flv");
    make_input(&source, 12, "640x360", "libmp3lame");
    let recording = record_once(&dir, support::spec(dir.path(), SLICE));

    let (path, _) = recording.mp4(0);
    let probed = probe(&path);
    assert_eq!(probed.codecs(), ["h264", "aac"]);
    assert!(near(probed.duration, INPUT_SECONDS, 0.3), "{probed:?}");
    assert!(decodes(&path));
    assert_eq!(packets(&path, "v:0"), packets(&source, "v:0"), "video copied");
    for (path, _, _) in recording.segments(0) {
        assert_eq!(probe(&path).codecs(), ["h264", "aac"]);
    }
}

#[test]
fn a_larger_source_is_scaled_down_to_fit_the_requested_size() {
    let dir = TempDir::new("scale");
    make_input(&dir.join("in.flv"), 12, "640x360", "aac");
    let spec = RecordSpec {
        scale: Some(ScaleSpec { width: 320, height: 240, policy: ScalePolicy::Downward }),
        ..support::spec(dir.path(), SLICE)
    };
    let recording = record_once(&dir, spec);

    assert_eq!(recording.opened(Format::Mp4), vec![(0, 320, 180)]);
    let (path, _) = recording.mp4(0);
    let probed = probe(&path);
    assert_eq!(probed.streams, [("h264".to_owned(), 320, 180), ("aac".to_owned(), 0, 0)]);
    assert!(near(probed.duration, INPUT_SECONDS, 0.3), "{probed:?}");
    assert!(decodes(&path));
    let segments = recording.segments(0);
    assert_eq!(segments.len(), 3, "keyframes forced at the slice: {segments:?}");
    for (path, duration, _) in &segments {
        assert!(near(duration.as_secs_f64(), SLICE.as_secs_f64(), 0.1), "{duration:?}");
        assert_eq!(probe(path).streams[0], ("h264".to_owned(), 320, 180));
    }
}

#[test]
fn stop_mid_recording_leaves_a_playable_mp4_and_a_complete_last_segment() {
    let dir = TempDir::new("stop");
    make_input(&dir.join("in.flv"), 12, "640x360", "aac");
    let input = support::input(&file_url(&dir.join("in.flv")), Duration::from_secs(30));
    // A rendezvous channel keeps the recorder at most one output ahead of the test, so Stop
    // lands mid-file although a file is read much faster than real time.
    let recording =
        record(input, support::spec(dir.path(), SLICE), 0, |seen| matches!(seen.last(), Some(Output::Segment { .. })));
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    assert_eq!(recording.outputs.last(), Some(&Output::Finished));
    assert_eq!(recording.count(is_waiting), 0, "stopped before the input ended");

    let (path, bytes) = recording.mp4(0);
    assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(bytes));
    let probed = probe(&path);
    assert_eq!(probed.codecs(), ["h264", "aac"]);
    assert!(probed.duration > 3.0 && probed.duration < 10.0, "{probed:?}");
    assert!(decodes(&path));
    let segments = recording.segments(0);
    let (last, duration, _) = segments.last().expect("segments");
    assert!(decodes(last));
    assert!(near(probe(last).duration, duration.as_secs_f64(), 0.2));
    assert_eq!(recording.closed(Format::Hls).len(), 1);
    assert_eq!(recording.closed(Format::Mp4).len(), 1);
}
