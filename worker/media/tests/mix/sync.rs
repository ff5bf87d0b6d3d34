//! A/V sync of a mix: a real RTMP publisher that flashes and beeps once a second, mixed
//! alone onto the canvas, the mix's MP4 measured from outside ([`crate::av_sync`]).

use roomrec_media::{Canvas, Format, LayoutKind, MixCommand};

use crate::av_sync::{assert_report_agrees, flash_and_beep_inputs, measure, reported_quality, Sync};
use crate::support::*;

const STOP_AT: f64 = 10.0;

/// An `ffmpeg` program publishing a flashing, beeping picture at `fps` in real time until dropped.
fn flashing_publisher(server: &RtmpServer, key: &str, fps: u32) -> Publisher {
    let mut args: Vec<String> = ["-nostdin", "-v", "error", "-re"].map(String::from).to_vec();
    let mut inputs = flash_and_beep_inputs("320x180", fps);
    // Both lavfi inputs in real time.
    inputs.insert(4, "-re".to_owned());
    args.extend(inputs);
    let gop = fps.to_string();
    let x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", &gop];
    args.extend(x264.map(String::from));
    args.extend(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", &server.url(key)].map(String::from));
    Publisher::spawn(&args)
}

/// Mixes one flashing, beeping participant at `source_fps` onto `canvas`; measures the MP4.
fn mix_and_measure(label: &str, canvas: Canvas, source_fps: u32) -> (Seen, Sync) {
    let _one = one_mix_at_a_time();
    let server = RtmpServer::start();
    let _publisher = flashing_publisher(&server, "f", source_fps);
    let dir = TempDir::new(label);
    let kept = TempDir::new("mix-sync-kept");
    let mp4 = kept.join("mix.mp4");
    let spec = spec(dir.path(), Some(canvas), layout(LayoutKind::Grid));
    let script = vec![(0.0, Step::Send(MixCommand::Participants(vec![participant(&server, "f", false)])))];
    let seen = run_mix_keeping(dir, spec, script, STOP_AT, &[], Some(&mp4));
    let measured = measure(&mp4, kept.path());
    eprintln!(
        "{label}: mix A/V offset {:.1} ms (audio minus video), per flash {:?}",
        measured.mean_ms(),
        measured.offsets_ms
    );
    (seen, measured)
}

#[test]
fn a_mix_at_the_sources_frame_rate_keeps_audio_with_video() {
    let (seen, measured) = mix_and_measure("mix-sync-25", Canvas { width: 320, height: 180, fps: 25, kbps: 300 }, 25);
    seen.assert_finished_cleanly();
    assert!(measured.flashes >= 5 && measured.beeps >= 5, "{measured:?}");
    assert!(measured.offsets_ms.len() >= 5, "{measured:?}");
    assert!(measured.mean_ms().abs() <= 20.0, "{measured:?}");
    let quality = reported_quality(&seen.outputs, Format::Mp4, 0);
    assert_report_agrees(&quality, &measured);
    assert_eq!((quality.gaps, quality.late_frames_skipped), (0, 0), "{quality:?}");
    // At the source's own rate nearly every picture shows once: a few repeat or drop where
    // arrival jitter puts two in one output frame.
    assert!(quality.duplicated_frames <= 10 && quality.dropped_frames <= 10, "{quality:?}");
}

/// A mix at half its source's frame rate shows every other source picture: a flash that
/// begins on a dropped picture shows one source frame late. The mix delays the sound by the
/// pictures' average lag, so events at random frames are in sync on average; these flashes
/// all fall on the same phase, so they are off by up to half an output frame (33 ms).
#[test]
fn a_mix_slower_than_its_source_keeps_audio_within_half_an_output_frame_of_video() {
    let (seen, measured) = mix_and_measure("mix-sync-15", Canvas { width: 320, height: 180, fps: 15, kbps: 300 }, 30);
    seen.assert_finished_cleanly();
    assert!(measured.flashes >= 5 && measured.beeps >= 5, "{measured:?}");
    assert!(measured.offsets_ms.len() >= 5, "{measured:?}");
    assert!(measured.mean_ms().abs() <= 1000.0 / 15.0 / 2.0 + 5.0, "{measured:?}");
    let quality = reported_quality(&seen.outputs, Format::Mp4, 0);
    // The sound follows the pictures' lag only once it is 10 ms off (`SOUND_STEP_US`): where
    // the lag settled after the first step, up to that stays. Here 0.0–0.7 ms in six runs,
    // and 7.0 in one run of `make test`.
    assert!(quality.av_offset_ms.is_some_and(|ms| ms.abs() <= 10.0), "on average in sync: {quality:?}");
}
