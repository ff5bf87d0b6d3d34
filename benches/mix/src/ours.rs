//! Our side of one N: roomrec-media's `Mixer` in this process, exactly as the worker runs it
//! on its media thread (1920×1080 30 fps at 4620 kbit/s, the grid layout, one MP4 file), fed
//! the N live streams. This process's CPU time is measured over a window after a warm-up;
//! the harness itself only sleeps meanwhile (and drains the mixer's reports), and the
//! worker's S3 and DynamoDB side is not part of it.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use roomrec_media::{
    Canvas, FilePolicy, InputSpec, Layout, LayoutKind, MixCommand, MixSpec, Mixer, Output, Participant,
};
use roomrec_testkit::procs::{self, Snapshot};

use crate::inputs::FPS;
use crate::report::Side;
use crate::{grid, quality, Bench};

/// The encode template: 1920x1080_30_4620.
pub const CANVAS: Canvas = Canvas { width: 1920, height: 1080, fps: FPS, kbps: 4620 };
/// From the mixer's start to the window: connecting, probing (0.5 s), the first keyframe
/// (up to 2 s) and the jitter buffer (0.3 s), with room to spare.
const WARMUP: Duration = Duration::from_secs(6);
/// The mixer runs on this long after the window, so the window's last frames are whole in the
/// file however the stop is timed.
const TAIL: Duration = Duration::from_secs(1);
/// The name of the thread the mixer runs on; the threads it starts (libx264's) inherit it.
const MIXER_THREAD: &str = "bench-mixer";
/// The input threads' names start with this (worker/media/src/mix/pull.rs).
const INPUT_THREAD_PREFIX: &str = "mix-input";
/// The runner's input settings (worker/runner/src/job.rs).
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Reports the mixer may queue before it waits for the harness.
const OUTPUT_QUEUE: usize = 256;

/// What the mixer is asked: the template's canvas, the grid, one MP4 file in `dir`.
fn spec(dir: &Path) -> MixSpec {
    let layout = Layout {
        kind: LayoutKind::Grid,
        pinned: Vec::new(),
        background: grid::BACKGROUND_RGB,
        background_image: None,
        default_user_image: None,
        user_images: Vec::new(),
    };
    let mp4 = FilePolicy { cycle: None, merge_window: Duration::ZERO };
    MixSpec { canvas: Some(CANVAS), layout, hls: None, mp4: Some(mp4), spool_dir: dir.to_owned() }
}

/// The participants reading `urls`, in join order (pane order).
fn participants(urls: &[String]) -> Vec<Participant> {
    let participant = |(i, url): (usize, &String)| Participant {
        user_id: format!("u{i}"),
        screen_share: false,
        input: InputSpec {
            url: url.clone(),
            allow_file: false,
            // The benchmark publishes to its own nginx on loopback.
            guard: roomrec_media::Guard::allow_all(),
            io_timeout: IO_TIMEOUT,
            retry_interval: RETRY_INTERVAL,
            rtmp_reader: roomrec_media::RtmpReader::default(),
        },
    };
    urls.iter().enumerate().map(participant).collect()
}

/// Mixes the streams at `urls` into `dir`, measuring a window of `bench.window`.
pub fn run(bench: &Bench, urls: &[String], dir: &Path) -> Result<Side> {
    let load_before = procs::load_average();
    let (commands, command_rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::sync_channel(OUTPUT_QUEUE);
    let (tid_tx, tid_rx) = mpsc::channel();
    commands.send(MixCommand::Participants(participants(urls))).context("queueing the participants")?;
    let mixer = Mixer::new(spec(dir));
    let started = Instant::now();
    let mixing = thread::Builder::new()
        .name(MIXER_THREAD.into())
        .spawn(move || {
            let _ = tid_tx.send(procs::current_tid());
            mixer.run(command_rx, out_tx)
        })
        .context("starting the mixer thread")?;
    let drain = thread::Builder::new()
        .name("bench-outputs".into())
        .spawn(move || out_rx.iter().collect::<Vec<Output>>())
        .context("starting the output drain")?;
    let mixer_tid = tid_rx.recv().context("the mixer thread did not start")??;
    let window = measure_window(bench, started, mixer_tid, &mixing);
    thread::sleep(TAIL);
    // Stop whatever happened, and wait for the file to be finished.
    let _ = commands.send(MixCommand::Stop);
    let mixed = mixing.join().map_err(|_| anyhow!("the mixer thread panicked (see its message above)"))?;
    let outputs = drain.join().map_err(|_| anyhow!("the output drain panicked"))?;
    mixed.context("the mixer failed")?;
    let (usage, threads, from, to) = window?;
    if !outputs.iter().any(|o| matches!(o, Output::Finished)) {
        bail!("the mixer returned without reporting Finished");
    }
    let file = recording(&outputs, dir)?;
    let (first_frame, end_frame) = (slot(from), slot(to));
    let frames = quality::video_frames_between(&file, first_frame, end_frame)?;
    Ok(Side { usage, frames, expected: end_frame - first_frame, first_frame, file, load_before, threads, remark: None })
}

/// The first 30 fps frame slot at or after `at` on the mix's clock.
fn slot(at: Duration) -> u64 {
    (at.as_secs_f64() * f64::from(FPS)).ceil() as u64
}

type Window = (procs::Usage, Vec<(String, usize, f64)>, Duration, Duration);

/// Waits out the warm-up, then measures the process and its threads for `bench.window`;
/// returns the usage, the split by thread group, and the window's bounds on the mix clock
/// (which starts within milliseconds of `started`).
fn measure_window(
    bench: &Bench,
    started: Instant,
    mixer_tid: u32,
    mixing: &thread::JoinHandle<Result<(), roomrec_media::MediaError>>,
) -> Result<Window> {
    thread::sleep(WARMUP);
    if mixing.is_finished() {
        bail!("the mixer ended during the warm-up");
    }
    eprintln!("bench-mix: ours: measuring {} s (load {})", bench.window.as_secs(), procs::load_average());
    let this = std::process::id();
    let (threads_before, before) = (procs::threads(this)?, Snapshot::take(&[this])?);
    thread::sleep(bench.window);
    let (after, threads_after) = (Snapshot::take(&[this])?, procs::threads(this)?);
    if mixing.is_finished() {
        bail!("the mixer ended during the window");
    }
    let split = procs::cpu_by_group(&threads_before, &threads_after, bench.ticks, |tid, name| {
        thread_group(mixer_tid, tid, name)
    });
    let usage = procs::usage(&before, &after, bench.ticks);
    Ok((usage, split, before.at - started, after.at - started))
}

/// What a thread of this process does, by its id and name.
fn thread_group(mixer_tid: u32, tid: u32, name: &str) -> String {
    if tid == mixer_tid {
        "mixer thread (compose, sound mix, AAC, muxing, feeding x264)".into()
    } else if name == MIXER_THREAD {
        "libx264's threads (started by the mixer thread)".into()
    } else if name.starts_with(INPUT_THREAD_PREFIX) {
        "participant input threads (demux, H.264/AAC decode, scale to pane, resample)".into()
    } else {
        "the harness (sleeping, draining reports)".into()
    }
}

/// The MP4 file the mixer wrote.
fn recording(outputs: &[Output], dir: &Path) -> Result<PathBuf> {
    let reported = outputs.iter().find_map(|o| match o {
        Output::Mp4Progress { file: 0, path, .. } => Some(path.clone()),
        _ => None,
    });
    reported.with_context(|| format!("the mixer reported no MP4 file in {}: {outputs:?}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_starts_at_the_next_frame_slot() {
        assert_eq!(slot(Duration::from_secs(6)), 180);
        assert_eq!(slot(Duration::from_millis(6010)), 181);
    }

    #[test]
    fn threads_are_grouped_by_what_they_do() {
        assert!(thread_group(7, 7, MIXER_THREAD).starts_with("mixer thread"));
        assert!(thread_group(7, 8, MIXER_THREAD).starts_with("libx264"));
        assert!(thread_group(7, 9, "mix-input-3").starts_with("participant input"));
        assert!(thread_group(7, 1, "bench-mix").starts_with("the harness"));
    }

    #[test]
    fn participants_join_in_the_order_of_their_urls_with_the_runners_timeouts() {
        let urls = ["rtmp://h/live/a".to_owned(), "rtmp://h/live/b".to_owned()];
        let list = participants(&urls);
        assert_eq!(list.iter().map(|p| p.user_id.as_str()).collect::<Vec<_>>(), ["u0", "u1"]);
        assert_eq!(list[1].input.url, urls[1]);
        assert_eq!(list[0].input.io_timeout, IO_TIMEOUT);
    }
}
