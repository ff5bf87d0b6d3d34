//! The tenant's pause of a live RTMP recording: nothing is written while held, the same
//! files go on after it (HLS after a discontinuity, MP4 with no hole), however short the
//! merge window.

use std::path::Path;
use std::time::{Duration, Instant};

use roomrec_media::{Command, FilePolicy, Format, HlsSpec, Output, RecordSpec};

use crate::support::{self, decodes, make_input, probe, record_with, Recording, RtmpServer, TempDir};

const SLICE: Duration = Duration::from_secs(2);
/// How long the test holds the recording.
const HOLD: Duration = Duration::from_secs(5);
/// A 25 fps frame.
const FRAME_SECONDS: f64 = 0.04;
/// One AAC frame at 48 kHz.
const AUDIO_FRAME_SECONDS: f64 = 1024.0 / 48_000.0;

/// When the test saw what, for the recorded time to compare the files with.
#[derive(Default)]
struct Marks {
    opened: Option<Instant>,
    paused: Option<Instant>,
    resumed: Option<Instant>,
    ended: Option<Instant>,
}

impl Marks {
    /// The wall time the recorder was told to record: from the first file to the pause, and
    /// from the resume to the end of the publish. The file also holds what the open read
    /// while it probed the streams, before the first file opened (up to 2 s).
    fn recording(&self) -> f64 {
        let [Some(opened), Some(paused), Some(resumed), Some(ended)] =
            [self.opened, self.paused, self.resumed, self.ended]
        else {
            panic!("the test did not get through its script")
        };
        ((paused - opened) + (ended - resumed)).as_secs_f64()
    }
}

/// Publishes a 14 s file in real time and records it, holding the recording for [`HOLD`]
/// 3 s after its first file opened; stops when the publish ended.
fn record_with_a_hold(dir: &TempDir, spec: RecordSpec) -> (Recording, Marks) {
    let server = RtmpServer::start();
    let source = dir.join("in.flv");
    make_input(&source, 14, "640x360", "aac");
    let input = support::input(&server.url("hold"), Duration::from_millis(200));
    let mut marks = Marks::default();
    let published = std::sync::OnceLock::new();
    let recording = std::thread::scope(|scope| {
        scope.spawn(|| {
            server.publish(&source, "hold");
            published.set(Instant::now()).expect("one publish");
        });
        record_with(input, spec, 10_000, |seen| {
            let now = Instant::now();
            let last = seen.last();
            if marks.opened.is_none() && matches!(last, Some(Output::FileOpened { .. })) {
                marks.opened = Some(now);
            }
            match (marks.opened, marks.paused, marks.resumed) {
                (Some(opened), None, _) if now - opened >= Duration::from_secs(3) => {
                    marks.paused = Some(now);
                    Some(Command::Pause)
                }
                (_, Some(paused), None) if now - paused >= HOLD => {
                    marks.resumed = Some(now);
                    Some(Command::Resume)
                }
                (_, _, Some(_)) if seen.last().is_some_and(support::is_waiting) && published.get().is_some() => {
                    Some(Command::Stop)
                }
                _ => None,
            }
        })
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    marks.ended = published.get().copied();
    (recording, marks)
}

fn spec(dir: &Path, merge_window: Duration) -> RecordSpec {
    let files = FilePolicy { cycle: None, merge_window };
    RecordSpec { hls: Some(HlsSpec { slice: SLICE, files }), mp4: Some(files), ..support::spec(dir, SLICE) }
}

/// The largest step between consecutive presentation times of `stream` in `path`.
fn largest_step(path: &Path, stream: &str) -> f64 {
    let mut times = support::packet_times(path, stream);
    times.sort_by(f64::total_cmp);
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

#[test]
fn a_held_rtmp_recording_continues_its_files_without_the_hold() {
    let dir = TempDir::new("hold");
    // A one-second merge window: a source away for the hold's 5 s would have closed the files.
    let (recording, marks) = record_with_a_hold(&dir, spec(dir.path(), Duration::from_secs(1)));

    let paused = recording.outputs.iter().position(|o| matches!(o, Output::Paused { .. })).expect("Paused");
    let resumed = recording.outputs.iter().position(|o| matches!(o, Output::Resumed { .. })).expect("Resumed");
    assert!(paused < resumed);
    let written_while_held = recording.outputs[paused..resumed]
        .iter()
        .filter(|o| matches!(o, Output::Segment { .. } | Output::Mp4Progress { .. } | Output::FileOpened { .. }))
        .count();
    assert_eq!(written_while_held, 0, "nothing written while held: {:?}", &recording.outputs[paused..resumed]);
    for format in [Format::Mp4, Format::Hls] {
        assert_eq!(recording.opened(format).len(), 1, "{format:?}: the same file goes on: {:?}", recording.outputs);
    }

    // The MP4 lasts the recorded time, not the wall time (less up to a second waiting for
    // the keyframe after the resume, plus up to 2 s read while the open probed), and plays
    // through: no hole, A/V together.
    let recorded = marks.recording();
    let (mp4, _) = recording.mp4(0);
    let probed = probe(&mp4);
    assert_eq!(probed.codecs(), ["h264", "aac"]);
    assert!(
        (recorded - 1.5..=recorded + 2.5).contains(&probed.duration),
        "MP4 {} s; recorded {recorded:.2} s, the hold {HOLD:?} left out",
        probed.duration
    );
    assert!(decodes(&mp4));
    let step = largest_step(&mp4, "v:0");
    assert!(step <= 2.5 * FRAME_SECONDS, "a hole of {step} s in the video");
    // One offset keeps A/V together, so the sound's seam can be off by up to one picture
    // and one audio frame on each side of it; a hold left in would be 5 s.
    let seam = FRAME_SECONDS + 2.0 * AUDIO_FRAME_SECONDS;
    let step = largest_step(&mp4, "a:0");
    assert!(step <= seam, "a hole of {step} s in the audio (at most {seam} s)");
    let video = support::packets(&mp4, "v:0").len() as f64 * FRAME_SECONDS;
    let audio = support::packets(&mp4, "a:0").len() as f64 * AUDIO_FRAME_SECONDS;
    assert!((video - audio).abs() < 0.3, "A/V lengths {video} vs {audio}");

    // HLS: the first segment after the resume is flagged, and the segments add up the same.
    let segments = recording.segments(0);
    let flagged: Vec<usize> = segments.iter().enumerate().filter(|(_, s)| s.2).map(|(i, _)| i).collect();
    let before = recording.outputs[..resumed].iter().filter(|o| matches!(o, Output::Segment { .. })).count();
    assert_eq!(flagged, [before], "one discontinuity, at the resume: {segments:?}");
    let total: f64 = segments.iter().map(|s| s.1.as_secs_f64()).sum();
    assert!((total - probed.duration).abs() < 0.5, "HLS {total} s vs MP4 {} s", probed.duration);
    let closed = recording.closed(Format::Mp4);
    assert_eq!(closed.len(), 1);
    assert!((closed[0].1.as_secs_f64() - probed.duration).abs() < 0.2, "the reported duration: {closed:?}");
}
