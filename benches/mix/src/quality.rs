//! Picture quality: SSIM of a recording's window against the uncompressed composite of the
//! same inputs — each participant's loop decoded, scaled to its pane with a high-quality
//! scaler and stacked, never encoded — so speed is not bought with quality.
//!
//! The composite is built inside the `ffmpeg` process that compares (it is never written to
//! disk: 600 frames of raw 1080p would be 1.9 GB). A live recording starts wherever the
//! publisher's loops were, so its place in the 20 s loop is found first: the window's first
//! three seconds, shrunk to 320×180 grey, against every frame of a shrunk composite loop;
//! the offset with the least squared error wins. Then SSIM runs over the whole window, at
//! full size, frame by frame on the 30 fps grid (a frame the mixer skipped is compared as
//! the frozen picture a viewer would see).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::grid;
use crate::inputs::{run, Inputs, FPS, LOOP_FRAMES};
use crate::ours::CANVAS;
use crate::report::{Quality, Side};

/// An offset at least this far from the best one counts as a different match.
pub const DISTINCT_OFFSET_FRAMES: u64 = 3;
/// The size the alignment compares pictures at.
const PROBE_SIZE: (usize, usize) = (320, 180);
/// Frames of a recording the alignment compares (3 s).
const PROBE_FRAMES: u64 = 90;
/// How the composite scales each participant into their pane: as well as swscale can.
const COMPOSITE_SCALER: &str = "lanczos+accurate_rnd+full_chroma_int";
/// Puts the composite's frames on the 30 fps grid: the inputs' frames all share their
/// (millisecond) timestamps, so `xstack` makes exactly one frame for each.
const ON_THE_GRID: &str = "settb=1/30,setpts=N";
/// The shrinking for the alignment, the same for recordings and composite.
const SHRINK: &str = "scale=320:180:flags=area,format=gray";

/// How many of `file`'s video frames fall in the 30 fps slots `first..end`.
pub fn video_frames_between(file: &Path, first: u64, end: u64) -> Result<u64> {
    let mut command = Command::new("ffprobe");
    command.args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0"]);
    command.arg(file);
    let out = run(command, "listing the recording's frames")?;
    Ok(count_in_slots(&String::from_utf8_lossy(&out), first, end))
}

/// How many of the times listed one per line (seconds) fall in the 30 fps slots `first..end`.
fn count_in_slots(times: &str, first: u64, end: u64) -> u64 {
    let slots = times.lines().filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok());
    slots.map(|t| (t * f64::from(FPS)).round() as u64).filter(|s| (first..end).contains(s)).count() as u64
}

/// One loop of the composite of `n` participants, shrunk for the alignment.
#[derive(Debug)]
pub struct Composite {
    n: usize,
    /// [`LOOP_FRAMES`] grey pictures of [`PROBE_SIZE`], one after another.
    frames: Vec<u8>,
}

const PROBE_PIXELS: usize = PROBE_SIZE.0 * PROBE_SIZE.1;

impl Composite {
    /// Builds the shrunk loop from the participants' files.
    pub fn shrunk(inputs: &Inputs, n: usize) -> Result<Self> {
        let mut command = crate::inputs::ffmpeg();
        for i in 0..n {
            command.arg("-i").arg(inputs.video(i));
        }
        let stacked = grid::compose((CANVAS.width, CANVAS.height), n, 0, COMPOSITE_SCALER, "c");
        command.args(["-filter_complex", &format!("{stacked};[c]{ON_THE_GRID},{SHRINK}[s]"), "-map", "[s]"]);
        command.args(["-frames:v", &LOOP_FRAMES.to_string(), "-fps_mode", "passthrough", "-f", "rawvideo", "-"]);
        let frames = run(command, "building the shrunk composite")?;
        ensure!(
            frames.len() == LOOP_FRAMES as usize * PROBE_PIXELS,
            "the shrunk composite has {} bytes, not {} frames of {PROBE_PIXELS}",
            frames.len(),
            LOOP_FRAMES
        );
        Ok(Self { n, frames })
    }
}

/// Aligns `side`'s recording with the composite and measures its SSIM over the window.
pub fn measure(inputs: &Inputs, composite: &Composite, side: &Side) -> Result<Quality> {
    let probe = probe(&side.file, side.first_frame)?;
    let (offset, probe_psnr, runner_up_psnr) = best_offset(&composite.frames, &probe);
    let (ssim_all, ssim_y) = ssim(inputs, composite.n, side, offset)?;
    Ok(Quality { ssim_all, ssim_y, offset, probe_psnr, runner_up_psnr })
}

/// The recording's first [`PROBE_FRAMES`] frames from `first_frame`, shrunk.
fn probe(file: &Path, first_frame: u64) -> Result<Vec<u8>> {
    let end = first_frame + PROBE_FRAMES;
    let filter =
        format!("fps={FPS}:start_time=0,trim=start_frame={first_frame}:end_frame={end},setpts=PTS-STARTPTS,{SHRINK}");
    let mut command = crate::inputs::ffmpeg();
    command.arg("-i").arg(file).args(["-vf", &filter, "-fps_mode", "passthrough", "-f", "rawvideo", "-"]);
    let frames = run(command, "shrinking the recording for the alignment")?;
    ensure!(
        frames.len() == PROBE_FRAMES as usize * PROBE_PIXELS,
        "the recording has only {} frames from frame {first_frame}",
        frames.len() / PROBE_PIXELS
    );
    Ok(frames)
}

/// Picture `i` of shrunk pictures stored one after another.
fn frame(pictures: &[u8], i: usize) -> &[u8] {
    &pictures[i * PROBE_PIXELS..(i + 1) * PROBE_PIXELS]
}

/// PSNR in dB of a mean squared error of 8-bit samples.
fn psnr(mse: f64) -> f64 {
    10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10()
}

/// The composite frame the probe's first frame matches (frame j with composite frame
/// offset + j, round the loop), its PSNR, and the best PSNR at least
/// [`DISTINCT_OFFSET_FRAMES`] away.
fn best_offset(composite: &[u8], probe: &[u8]) -> (u64, f64, f64) {
    let loop_frames = composite.len() / PROBE_PIXELS;
    let probe_frames = probe.len() / PROBE_PIXELS;
    let errors: Vec<f64> = (0..loop_frames)
        .map(|offset| {
            let sum: u64 = (0..probe_frames)
                .map(|j| {
                    let (a, b) = (frame(probe, j), frame(composite, (offset + j) % loop_frames));
                    a.iter().zip(b).map(|(&x, &y)| (i32::from(x) - i32::from(y)).pow(2) as u64).sum::<u64>()
                })
                .sum();
            sum as f64 / (probe_frames * PROBE_PIXELS) as f64
        })
        .collect();
    let best = (0..loop_frames).min_by(|&a, &b| errors[a].total_cmp(&errors[b])).unwrap_or(0);
    let distance = |a: usize| {
        let d = a.abs_diff(best);
        d.min(loop_frames - d) as u64
    };
    let runner_up = (0..loop_frames)
        .filter(|&a| distance(a) >= DISTINCT_OFFSET_FRAMES)
        .map(|a| errors[a])
        .min_by(f64::total_cmp)
        .unwrap_or(f64::INFINITY);
    (best as u64, psnr(errors[best]), psnr(runner_up))
}

/// SSIM (All, Y) of the window of `side`'s recording against the composite from `offset`.
fn ssim(inputs: &Inputs, n: usize, side: &Side, offset: u64) -> Result<(f64, f64)> {
    let (first, end) = (side.first_frame, side.first_frame + side.expected);
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i"]).arg(&side.file);
    for i in 0..n {
        command.args(["-stream_loop", "-1", "-i"]).arg(inputs.video(i));
    }
    let stacked = grid::compose((CANVAS.width, CANVAS.height), n, 1, COMPOSITE_SCALER, "c");
    let graph = format!(
        "[0:v]fps={FPS}:start_time=0,trim=start_frame={first}:end_frame={end},setpts=PTS-STARTPTS,format=yuv420p[rec];\
         {stacked};[c]{ON_THE_GRID},trim=start_frame={offset}:end_frame={},setpts=PTS-STARTPTS[ref];[rec][ref]ssim",
        offset + side.expected
    );
    command.args(["-filter_complex", &graph, "-f", "null", "-"]);
    let out = command.output().context("running ffmpeg for the SSIM")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("the SSIM run failed ({}): {}", out.status, tail(&stderr));
    }
    parse_ssim(&stderr).with_context(|| format!("no SSIM line in ffmpeg's output: {}", tail(&stderr)))
}

/// The last lines of a long diagnostic.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// (All, Y) from the `ssim` filter's summary: `SSIM Y:0.96 (14.1) U:… V:… All:0.95 (13.2)`.
fn parse_ssim(stderr: &str) -> Option<(f64, f64)> {
    let line = stderr.lines().rev().find(|l| l.contains("SSIM Y:"))?;
    let value = |key: &str| -> Option<f64> {
        let (_, rest) = line.split_once(key)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((value("All:")?, value(" Y:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ssim_summary_line_gives_all_and_luma() {
        let stderr = "frame= 1800 fps=20\n[Parsed_ssim_52 @ 0x55d] SSIM Y:0.961234 (14.12) U:0.97 (15.2) V:0.98 (16.9) All:0.965678 (14.64)\n";
        assert_eq!(parse_ssim(stderr), Some((0.965678, 0.961234)));
        assert_eq!(parse_ssim("no summary\n"), None);
    }

    /// A loop of distinct frames: frame i is all `i * 3 % 256` with a ramp.
    fn synthetic_loop(frames: usize) -> Vec<u8> {
        (0..frames).flat_map(|i| (0..PROBE_PIXELS).map(move |p| ((i * 3 + p % 7) % 256) as u8)).collect()
    }

    #[test]
    fn the_alignment_finds_the_probes_place_even_across_the_end_of_the_loop() {
        let composite = synthetic_loop(80);
        for start in [0, 37, 75] {
            let probe: Vec<u8> = (0..10)
                .flat_map(|j| composite[((start + j) % 80) * PROBE_PIXELS..][..PROBE_PIXELS].iter().copied())
                .collect();
            let (offset, best, runner_up) = best_offset(&composite, &probe);
            assert_eq!(offset, start as u64);
            assert!(best > 90.0 && runner_up < 40.0, "{best} {runner_up}");
        }
    }

    #[test]
    fn frames_are_counted_in_their_30_fps_slots() {
        // Slots 15 (0.5 s) to 30 (1.0 s, excluded); a skipped frame is simply not there.
        assert_eq!(count_in_slots("0.466667\n0.500000\n0.533333\n0.600000\nN/A\n1.000000\n", 15, 30), 3);
    }
}
