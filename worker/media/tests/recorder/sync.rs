//! A/V sync of a remux: a real RTMP publisher that flashes and beeps once a second, recorded
//! by the recorder and, at the same time, remuxed by `ffmpeg -c copy`; both files measured
//! from outside ([`crate::av_sync`]).

use std::path::{Path, PathBuf};
use std::process::{Command as Program, Stdio};
use std::time::Duration;

use roomrec_media::{Format, Output, RecordSpec, ScalePolicy, ScaleSpec};

use crate::av_sync::{assert_report_agrees, flash_and_beep_inputs, measure, reported_quality, Sync};
use crate::support::{self, ffmpeg, is_waiting, record, RtmpServer, TempDir};

const SOURCE_SECONDS: u32 = 10;

/// A file of `SOURCE_SECONDS` that flashes and beeps, H.264 (`x264` arguments) + AAC in FLV.
fn make_source(path: &Path, x264: &[&str], audio_codec: &str) {
    let mut args = flash_and_beep_inputs("320x180", 25);
    let seconds = SOURCE_SECONDS.to_string();
    args.extend(["-t", &seconds, "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p"].map(String::from));
    args.extend(x264.iter().map(|a| a.to_string()));
    args.extend(
        ["-c:a", audio_codec, "-ar", "48000", "-f", "flv", path.to_str().expect("utf-8 path")].map(String::from),
    );
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// What one publish gave: the source, ffmpeg's remux of the stream and the recorder's MP4.
struct Run {
    source: Sync,
    remux: Sync,
    recorded: Sync,
    /// The recorder's HLS segments, played back to back.
    hls: Sync,
    outputs: Vec<Output>,
}

/// Publishes a flashing, beeping source once through a private nginx-rtmp while the recorder
/// and `ffmpeg -c copy` both read it.
fn publish_and_record(
    label: &str,
    x264: &[&str],
    audio_codec: &str,
    scale: Option<ScaleSpec>,
    join_after: Duration,
) -> Run {
    let dir = TempDir::new(label);
    let source = dir.join("source.flv");
    make_source(&source, x264, audio_codec);
    let server = RtmpServer::start();
    let url = server.url("sync");
    let remux_path = dir.join("remux.mp4");
    let recording = std::thread::scope(|scope| {
        scope.spawn(|| server.publish(&source, "sync"));
        std::thread::sleep(join_after);
        let remux = scope.spawn(|| remux_until_the_end(&url, &remux_path));
        let input = support::input(&url, Duration::from_millis(100));
        let spec = RecordSpec { scale, ..support::spec(dir.path(), Duration::from_secs(2)) };
        let recording = record(input, spec, 10_000, |seen| {
            seen.iter().any(|o| matches!(o, Output::FileOpened { .. })) && seen.last().is_some_and(is_waiting)
        });
        remux.join().expect("the remux thread does not panic");
        recording
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    let (mp4, _) = recording.mp4(0);
    let scratch = TempDir::new("measure");
    let segments: Vec<String> = recording.segments(0).iter().map(|s| s.0.display().to_string()).collect();
    let hls = PathBuf::from(format!("concat:{}", segments.join("|")));
    Run {
        hls: measure(&hls, scratch.path()),
        source: measure(&source, scratch.path()),
        remux: measure(&remux_path, scratch.path()),
        recorded: measure(&mp4, scratch.path()),
        outputs: recording.outputs,
    }
}

/// `ffmpeg -i <url> -c copy <path>`, started while the publisher is starting; waits for it to
/// end with the stream.
fn remux_until_the_end(url: &str, path: &PathBuf) {
    for _ in 0..50 {
        let status = Program::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-rw_timeout", "3000000", "-i", url, "-c", "copy"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run ffmpeg");
        // Before the publisher is there, nginx-rtmp refuses the play and ffmpeg exits at once.
        if status.success() && std::fs::metadata(path).is_ok_and(|m| m.len() > 10_000) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("ffmpeg could not remux {url}");
}

fn assert_run(run: &Run) {
    eprintln!(
        "A/V offset (audio minus video, ms): source {:.1}, ffmpeg -c copy {:.1}, recorder {:.1} (HLS {:.1}); recorder per flash {:?}",
        run.source.mean_ms(),
        run.remux.mean_ms(),
        run.recorded.mean_ms(),
        run.hls.mean_ms(),
        run.recorded.offsets_ms
    );
    assert!(run.source.mean_ms().abs() <= 2.0, "the test source itself is aligned: {:?}", run.source);
    assert!(run.recorded.flashes >= 6 && run.recorded.beeps >= 6, "{:?}", run.recorded);
    assert!(run.recorded.offsets_ms.len() >= 6, "{:?}", run.recorded);
    let against_remux = run.recorded.mean_ms() - run.remux.mean_ms();
    assert!(against_remux.abs() <= 5.0, "recorder {:?} vs ffmpeg's remux {:?}", run.recorded, run.remux);
    assert!(run.recorded.mean_ms().abs() <= 40.0, "{:?}", run.recorded);
    for format in [Format::Mp4, Format::Hls] {
        let quality = reported_quality(&run.outputs, format, 0);
        assert_report_agrees(&quality, &run.recorded);
        assert_eq!((quality.gaps, quality.duplicated_frames, quality.late_frames_skipped), (0, 0, 0), "{quality:?}");
        let input = quality.input_changes.first().expect("the input as the file opened");
        assert_eq!((input.at_ms, input.width, input.height), (0, Some(320), Some(180)), "{quality:?}");
        assert!(input.fps.is_some_and(|fps| (fps - 25.0).abs() < 2.0), "{quality:?}");
    }
}

#[test]
fn a_remux_keeps_audio_with_video_as_ffmpegs_own_remux_does() {
    let run =
        publish_and_record("sync", &["-preset", "ultrafast", "-tune", "zerolatency"], "aac", None, Duration::ZERO);
    assert_run(&run);
}

#[test]
fn a_remux_of_video_with_b_frames_keeps_audio_with_video() {
    let run = publish_and_record("sync-bframes", &["-preset", "veryfast", "-bf", "2"], "aac", None, Duration::ZERO);
    assert_run(&run);
}

#[test]
fn a_recording_that_transcodes_audio_keeps_it_with_video() {
    let run = publish_and_record(
        "sync-mp3",
        &["-preset", "ultrafast", "-tune", "zerolatency"],
        "libmp3lame",
        None,
        Duration::ZERO,
    );
    assert_run(&run);
}

#[test]
fn a_recording_that_transcodes_video_keeps_audio_with_it() {
    let scale = ScaleSpec { width: 160, height: 90, policy: ScalePolicy::Fixed };
    let run = publish_and_record(
        "sync-scaled",
        &["-preset", "ultrafast", "-tune", "zerolatency"],
        "aac",
        Some(scale),
        Duration::ZERO,
    );
    assert_run(&run);
}

#[test]
fn a_recording_that_joins_between_keyframes_keeps_audio_with_video() {
    let run = publish_and_record(
        "sync-late",
        &["-preset", "ultrafast", "-tune", "zerolatency"],
        "aac",
        None,
        Duration::from_millis(1500),
    );
    assert_run(&run);
}
