//! The reference side of one N: one `ffmpeg` process reading the same N live streams and
//! running the equivalent graph — each picture scaled (bilinear, as the mixer scales) to
//! cover its pane, `xstack`ed on the 1920×1080 canvas at 30 fps; every tone resampled to
//! 48 kHz, summed by `amix` and limited as the mixer limits — encoded with libx264 at the
//! mixer's settings (worker/media/src/transcode/video.rs and mix/encode.rs: preset
//! veryfast, 4620 kbit/s average and VBV peak over a 2 s buffer, no B-frames, a keyframe
//! every 2 s) and AAC at 128 kbit/s, into a fragmented MP4. Inputs are aligned by the
//! publisher's timestamps (`-copyts`), as the mixer aligns them; without it `ffmpeg` would
//! start each input at its own first packet, shifting the panes by however long the inputs
//! took to open one after another. Measured from `/proc/<pid>/stat` over a window that opens
//! once its output is as far into the warm-up as ours was.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use roomrec_testkit::procs::{self, Snapshot};

use crate::inputs::FPS;
use crate::ours::CANVAS;
use crate::report::Side;
use crate::{grid, Bench};

/// Output time after which the window may open (the mix's warm-up).
const WARMUP: Duration = Duration::from_secs(6);
/// The window opens only once ffmpeg has made frames at the real-time rate (±5 %) over this
/// long: until then it is working off what it read while opening its inputs, faster than
/// real time.
const STEADY_OVER: Duration = Duration::from_secs(2);
const STEADY_TOLERANCE: f64 = 0.05;

/// How long `ffmpeg` may take to open its inputs and reach the warm-up's end.
const START_TIMEOUT: Duration = Duration::from_secs(240);
/// Past this, the window opens even if the output never came at the real-time rate (ffmpeg
/// cannot keep up): the frame count then shows it. It is long because ffmpeg opens its inputs
/// one after another (about a second each, reading to learn their streams) and starts its
/// output from the first input's first frame: with 25 inputs it starts some 20 s behind the
/// live streams and works that off at a few frames a second faster than real time.
const STEADY_DEADLINE: Duration = Duration::from_secs(150);
/// How long it may take to finish its file after being told to quit.
const QUIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The mixer's limiter (worker/media/src/mix/sound.rs): −3 dBFS ceiling, 2 ms look-ahead (attack),
/// 200 ms release.
const LIMITER: &str = "alimiter=limit=0.708:attack=2:release=200";

/// The `ffmpeg` arguments after the inputs: the graph for `n` inputs, the encoders, the file.
pub fn graph_and_output(n: usize, file: &Path) -> Vec<String> {
    let canvas = (CANVAS.width, CANVAS.height);
    let video = grid::compose(canvas, n, 0, "bilinear", "stacked");
    let sounds: String = (0..n).map(|i| format!("[{i}:a]aresample=48000[s{i}];")).collect();
    let mix_in: String = (0..n).map(|i| format!("[s{i}]")).collect();
    let graph = format!(
        "{video};[stacked]setpts=PTS-STARTPTS,fps={FPS},format=yuv420p[v];\
         {sounds}{mix_in}amix=inputs={n}:normalize=0,{LIMITER},asetpts=PTS-STARTPTS[a]"
    );
    let kbps = CANVAS.kbps;
    let mut args: Vec<String> = vec!["-filter_complex".into(), graph];
    let rest = [
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-b:v",
        &format!("{kbps}k"),
        "-maxrate",
        &format!("{kbps}k"),
        "-bufsize",
        &format!("{}k", 2 * kbps),
        "-g",
        &(2 * FPS).to_string(),
        "-bf",
        "0",
        "-forced-idr",
        "1",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-ac",
        "2",
        "-ar",
        "48000",
        "-movflags",
        "frag_keyframe+empty_moov+default_base_moof",
        "-f",
        "mp4",
        "-y",
    ];
    args.extend(rest.iter().map(|s| s.to_string()));
    args.push(file.display().to_string());
    args
}

/// One report of `-progress`: frames sent to the encoder so far, at `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Progress {
    frame: u64,
    out_time: Duration,
    at: Instant,
}

/// Reads `-progress` blocks (`key=value` lines ending with `progress=…`).
#[derive(Debug, Default)]
struct ProgressParser {
    frame: u64,
    out_time_us: u64,
}

impl ProgressParser {
    /// Takes one line; returns the block it ends, if it ends one.
    fn line(&mut self, line: &str, at: Instant) -> Option<Progress> {
        let (key, value) = line.trim().split_once('=')?;
        match key {
            "frame" => self.frame = value.trim().parse().unwrap_or(self.frame),
            // "N/A" until the first packet is written.
            "out_time_us" => self.out_time_us = value.trim().parse().unwrap_or(self.out_time_us),
            "progress" => {
                return Some(Progress { frame: self.frame, out_time: Duration::from_micros(self.out_time_us), at });
            }
            _ => {}
        }
        None
    }
}

/// Runs the graph on the streams at `urls` into `dir/reference.mp4`, measuring a window of
/// `bench.window`.
pub fn run(bench: &Bench, urls: &[String], dir: &Path) -> Result<Side> {
    let load_before = procs::load_average();
    let file = dir.join("reference.mp4");
    let log = std::fs::File::create(dir.join("reference.log")).context("creating the reference log")?;
    // Not `inputs::ffmpeg()`: this one reads its stdin, for the `q` that ends it.
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1", "-stats_period", "0.5"]);
    command.arg("-copyts");
    for url in urls {
        command.args(["-i", url]);
    }
    command.args(graph_and_output(urls.len(), &file));
    // `q` on stdin ends it cleanly (the file's last fragment written).
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log);
    let mut child = command.spawn().context("starting the reference ffmpeg")?;
    let result = measure(bench, &mut child);
    let quit = quit(&mut child);
    let (usage, start, end, steady) = result?;
    quit?;
    Ok(Side {
        usage,
        frames: end.frame.saturating_sub(start.frame),
        expected: (usage.wall.as_secs_f64() * f64::from(FPS)).round() as u64,
        first_frame: start.frame,
        file,
        load_before,
        threads: Vec::new(),
        remark: (!steady).then(|| {
            format!(
                "its output never came at 30 fps (±{:.0} %) for {} s within {} s of its start: the window opened anyway",
                STEADY_TOLERANCE * 100.0,
                STEADY_OVER.as_secs(),
                STEADY_DEADLINE.as_secs()
            )
        }),
    })
}

/// Waits for the warm-up, then measures the process over the window; also says whether the
/// output was steady when the window opened.
fn measure(bench: &Bench, child: &mut Child) -> Result<(procs::Usage, Progress, Progress, bool)> {
    let pid = child.id();
    let stdout = child.stdout.take().context("no stdout from ffmpeg")?;
    let (tx, reports) = mpsc::channel();
    thread::spawn(move || {
        let mut parser = ProgressParser::default();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(progress) = parser.line(&line, Instant::now()) {
                // Read the counters as close to the report as possible.
                if tx.send((progress, Snapshot::take(&[pid]))).is_err() {
                    return;
                }
            }
        }
    });
    let started = Instant::now();
    let mut recent: VecDeque<Progress> = VecDeque::new();
    let (start, before, steady) = loop {
        let wait = START_TIMEOUT.saturating_sub(started.elapsed());
        let (progress, snapshot) = reports.recv_timeout(wait).context(
            "the reference ffmpeg did not reach a steady real-time output after its warm-up (see reference.log in the \
             output directory)",
        )?;
        while recent.len() > 1 && recent[1].at + STEADY_OVER <= progress.at {
            recent.pop_front();
        }
        let steady = recent.front().is_some_and(|old| steady_between(old, &progress));
        if progress.out_time >= WARMUP && (steady || started.elapsed() >= STEADY_DEADLINE) {
            break (progress, snapshot?, steady);
        }
        recent.push_back(progress);
    };
    eprintln!("bench-mix: ffmpeg: measuring {} s (load {})", bench.window.as_secs(), procs::load_average());
    loop {
        let (progress, snapshot) =
            reports.recv_timeout(bench.window * 2).context("the reference ffmpeg stopped reporting its progress")?;
        if progress.at.saturating_duration_since(start.at) >= bench.window {
            return Ok((procs::usage(&before, &snapshot?, bench.ticks), start, progress, steady));
        }
    }
}

/// Whether the frames between two reports, at least [`STEADY_OVER`] apart, came at the real-time
/// rate.
fn steady_between(old: &Progress, new: &Progress) -> bool {
    let seconds = new.at.saturating_duration_since(old.at);
    if seconds < STEADY_OVER {
        return false;
    }
    let rate = new.frame.saturating_sub(old.frame) as f64 / seconds.as_secs_f64();
    (rate / f64::from(FPS) - 1.0).abs() <= STEADY_TOLERANCE
}

/// Tells `ffmpeg` to finish its file and waits for it (kills it if it does not).
fn quit(child: &mut Child) -> Result<()> {
    if let Some(mut stdin) = child.stdin.take() {
        let _ = send_quit(&mut stdin);
    }
    let deadline = Instant::now() + QUIT_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("waiting for the reference ffmpeg")? {
            // `q` ends it with status 0; 255 is an interrupted ffmpeg.
            if !status.success() {
                bail!("the reference ffmpeg exited with {status} (see reference.log in the output directory)");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the reference ffmpeg did not finish within {} s of being told to", QUIT_TIMEOUT.as_secs());
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn send_quit(stdin: &mut ChildStdin) -> std::io::Result<()> {
    stdin.write_all(b"q")?;
    stdin.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_block_ends_at_its_progress_line() {
        let mut parser = ProgressParser::default();
        let at = Instant::now();
        assert_eq!(parser.line("frame=181", at), None);
        assert_eq!(parser.line("out_time_us=N/A", at), None);
        assert_eq!(parser.line("out_time_us=6033333", at), None);
        let block = parser.line("progress=continue", at).expect("a block");
        assert_eq!(block, Progress { frame: 181, out_time: Duration::from_micros(6_033_333), at });
    }

    #[test]
    fn the_output_is_steady_once_frames_come_at_thirty_a_second_for_two_seconds() {
        let at = Instant::now();
        let report = |frame, ms| Progress { frame, out_time: Duration::ZERO, at: at + Duration::from_millis(ms) };
        assert!(steady_between(&report(100, 0), &report(160, 2000)));
        assert!(!steady_between(&report(100, 0), &report(190, 2000)), "catching up");
        assert!(!steady_between(&report(100, 0), &report(130, 1000)), "too short to tell");
    }

    #[test]
    fn the_graph_stacks_every_input_mixes_every_tone_and_encodes_like_the_mixer() {
        let args = graph_and_output(9, Path::new("/tmp/r.mp4"));
        let graph = &args[1];
        assert!(graph.contains("[8:v]scale=640:360:force_original_aspect_ratio=increase:flags=bilinear"));
        assert!(graph.contains("xstack=inputs=9:layout="));
        assert!(graph.contains("[8:a]aresample=48000[s8];"));
        assert!(graph.contains("amix=inputs=9:normalize=0,alimiter=limit=0.708"));
        let joined = args.join(" ");
        assert!(joined.contains("-preset veryfast -b:v 4620k -maxrate 4620k -bufsize 9240k -g 60 -bf 0"));
        assert!(joined.ends_with("-f mp4 -y /tmp/r.mp4"));
    }
}
