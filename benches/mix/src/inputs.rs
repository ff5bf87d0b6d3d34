//! The participants' media, encoded once and cached under `target/`, and the one `ffmpeg`
//! process that publishes them to nginx-rtmp.
//!
//! Each participant is a 20 s loop of 640×360 30 fps H.264 (800 kbit/s, no B-frames, a
//! keyframe every 2 s: what a WebRTC camera sends) beside a separate loop of an AAC tone of
//! their own pitch. The picture is one detailed still (a Mandelbrot view, softened like a
//! camera lens would) slowly zoomed in and out and panned on a circle, one period per loop,
//! so the loop is seamless and no two frames of it are alike (the quality check finds a
//! recording's place in the loop from its pictures). Participants differ by hue and by
//! where in the period they start. The motion is real (everything moves, by sub-pixel
//! amounts, as a hand-held camera does) but slow: about 0.1–0.2 px per frame, so a frame or
//! two of misalignment between a recording and the reference composite costs little SSIM.
//! Video and audio are separate files looped separately, so each loops at its own exact
//! length (20 s is not a whole number of AAC frames) and the pictures never slip.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

/// Frames per second of the participants (and of the mix).
pub const FPS: u32 = 30;
/// Frames in one loop of a participant's picture (20 s).
pub const LOOP_FRAMES: u64 = 600;
/// A participant's picture size.
pub const SIZE: (u32, u32) = (640, 360);
/// Most participants of a grid mix; hues and phases are spread over this many.
pub const MAX_PARTICIPANTS: usize = 25;
/// Bumped whenever the recipe below changes, so an old cache is never used.
const RECIPE: &str = "v1";
/// The still the pictures are cut from: large, so the zoom and pan move by fractions of an
/// output pixel.
const STILL: &str = "mandelbrot=s=2560x1440:start_scale=0.012:end_scale=0.012:maxiter=1024:outer=normalized_iteration_count,gblur=sigma=2";
/// Zoom around 1.3× (±0.06) and a circle of 40 px of the still, one period per loop.
const ZOOM: &str = "1.3+0.06*sin(PHASE)";
const PAN_RADIUS_PX: u32 = 40;

/// An `ffmpeg` command that prints only errors and never reads the terminal.
pub fn ffmpeg() -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostdin"]).stdin(Stdio::null());
    command
}

/// Runs `command` to the end; its stdout, or an error with its stderr.
pub fn run(mut command: Command, what: &str) -> Result<Vec<u8>> {
    let out = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("{what}: cannot run ffmpeg (is it installed? `make install`)"))?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// The pitch of participant `i`'s tone: 220 Hz and up in steps of 55 Hz.
pub fn tone_hz(i: usize) -> u32 {
    220 + 55 * i as u32
}

/// The cached participant files.
#[derive(Debug, Clone)]
pub struct Inputs {
    dir: PathBuf,
}

impl Inputs {
    /// Participant `i`'s picture loop.
    pub fn video(&self, i: usize) -> PathBuf {
        self.dir.join(format!("p{i:02}-video.flv"))
    }

    /// Participant `i`'s tone loop.
    pub fn audio(&self, i: usize) -> PathBuf {
        self.dir.join(format!("p{i:02}-audio.flv"))
    }

    /// The files of `count` participants under `root`, encoding whatever is not cached yet.
    pub fn prepare(root: &Path, count: usize) -> Result<Self> {
        let dir = root.join(format!("inputs-{RECIPE}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let inputs = Self { dir };
        let still = inputs.dir.join("still.png");
        if !still.exists() {
            eprintln!("bench-mix: drawing the still {}", still.display());
            let mut command = ffmpeg();
            command.args(["-f", "lavfi", "-i", STILL, "-frames:v", "1", "-update", "1", "-f", "image2", "-c:v", "png"]);
            write_atomically(command, &still, "drawing the still")?;
        }
        for i in 0..count {
            if !inputs.video(i).exists() {
                eprintln!(
                    "bench-mix: encoding participant {i}'s picture loop (once; cached in {})",
                    inputs.dir.display()
                );
                write_atomically(video_command(&still, i), &inputs.video(i), "encoding a picture loop")?;
            }
            if !inputs.audio(i).exists() {
                write_atomically(audio_command(i), &inputs.audio(i), "encoding a tone loop")?;
            }
        }
        Ok(inputs)
    }
}

/// Runs `command` with a temporary output path, then moves the file to `path`: a cache entry
/// is whole or absent.
fn write_atomically(mut command: Command, path: &Path, what: &str) -> Result<()> {
    let partial = path.with_extension("part");
    command.arg("-y").arg(&partial);
    run(command, what)?;
    std::fs::rename(&partial, path).with_context(|| format!("moving {} into place", partial.display()))
}

/// Participant `i`: the still zoomed and panned, its hue turned and its period started
/// `i`/[`MAX_PARTICIPANTS`] of the way round.
fn video_command(still: &Path, i: usize) -> Command {
    let phase = format!("2*PI*(in/{LOOP_FRAMES}+{i}/{MAX_PARTICIPANTS})");
    let zoom = ZOOM.replace("PHASE", &phase);
    let r = PAN_RADIUS_PX;
    let (w, h) = SIZE;
    let filter = format!(
        "loop=loop={}:size=1:start=0,zoompan=z='{zoom}':x='(iw-iw/zoom)/2+{r}*cos({phase})':\
         y='(ih-ih/zoom)/2+{r}*sin({phase})':d=1:s={w}x{h}:fps={FPS},hue=h={},format=yuv420p",
        LOOP_FRAMES - 1,
        i * 360 / MAX_PARTICIPANTS
    );
    let mut command = ffmpeg();
    command.arg("-i").arg(still).args(["-vf", &filter, "-frames:v", &LOOP_FRAMES.to_string()]);
    command.args(["-c:v", "libx264", "-preset", "veryfast", "-b:v", "800k", "-maxrate", "800k", "-bufsize", "1600k"]);
    command.args(["-g", "60", "-bf", "0", "-an", "-f", "flv"]);
    command
}

/// Participant `i`'s tone: 20 s of a sine at [`tone_hz`], AAC at 48 kHz, 64 kbit/s, mono.
fn audio_command(i: usize) -> Command {
    let seconds = LOOP_FRAMES / u64::from(FPS);
    let tone = format!("sine=frequency={}:sample_rate=48000:duration={seconds}", tone_hz(i));
    let mut command = ffmpeg();
    command.args(["-f", "lavfi", "-i", &tone, "-c:a", "aac", "-b:a", "64k", "-ac", "1", "-vn", "-f", "flv"]);
    command
}

/// One `ffmpeg` process publishing the first `urls.len()` participants, each to its URL, in
/// real time and without re-encoding. One process for all keeps them in step: every loop
/// starts at the same instant, so participants are aligned exactly as in the reference
/// composite.
pub fn publisher(inputs: &Inputs, urls: &[String], log: File) -> Result<Child> {
    let mut command = ffmpeg();
    for i in 0..urls.len() {
        command.args(["-re", "-stream_loop", "-1", "-i"]).arg(inputs.video(i));
        command.args(["-re", "-stream_loop", "-1", "-i"]).arg(inputs.audio(i));
    }
    for (i, url) in urls.iter().enumerate() {
        let (video, audio) = (format!("{}:v:0", 2 * i), format!("{}:a:0", 2 * i + 1));
        command.args(["-map", &video, "-map", &audio, "-c", "copy", "-f", "flv", url]);
    }
    command.stdout(Stdio::null()).stderr(log).spawn().context("starting the publisher")
}
