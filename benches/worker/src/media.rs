//! The `ffmpeg` processes of the benchmark: the input file (encoded once) and the reference
//! recorders.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use tokio::process::{Child, Command};

/// Seconds of the prepared input file (the publisher loops it).
const INPUT_SECONDS: &str = "20";
/// HLS segment length of both sides, in seconds.
pub const SLICE_SECONDS: u64 = 4;
/// The longest the input file may take to encode.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(300);

/// An `ffmpeg` command that prints only errors and never reads the terminal.
fn ffmpeg() -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostdin"]).stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// Encodes the 20 s 1280x720 30 fps, 1 Mbit/s H.264 + 64 kbit/s AAC FLV file at `path`.
pub async fn prepare_input(path: &Path) -> Result<()> {
    let mut command = ffmpeg();
    command.args([
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        INPUT_SECONDS,
    ]);
    command
        .args(["-c:v", "libx264", "-preset", "veryfast", "-b:v", "1M", "-maxrate", "1M", "-bufsize", "2M", "-g", "60"]);
    command.args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"]).arg(path);
    let out = tokio::time::timeout(PREPARE_TIMEOUT, command.output())
        .await
        .context("encoding the input file took too long")?
        .context("running ffmpeg (is it installed? `make install`)")?;
    if !out.status.success() {
        bail!("ffmpeg could not encode {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Processes that are killed together when the group is dropped (or explicitly).
#[derive(Debug, Default)]
pub struct Group {
    children: Vec<Child>,
}

impl Group {
    /// Adds a started process.
    pub fn push(&mut self, child: Child) {
        self.children.push(child);
    }

    /// The process ids of every member.
    pub fn pids(&self) -> Result<Vec<u32>> {
        self.children.iter().map(|c| c.id().context("a process of the group has already been reaped")).collect()
    }

    /// Fails if a member has exited.
    pub fn check_alive(&mut self, what: &str) -> Result<()> {
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait().with_context(|| format!("checking {what} {i}"))? {
                bail!("{what} {i} exited ({status})");
            }
        }
        Ok(())
    }

    /// Kills every member and waits for each.
    pub async fn kill_all(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        for mut child in self.children.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }
}

/// The reference recorder: reads `url` and remuxes it, as the worker does, to an HLS event
/// playlist with 4 s segments and a fragmented MP4, both in `dir` as `name.*`.
pub fn reference_recorder(url: &str, dir: &Path, name: &str, log: std::fs::File) -> Result<Child> {
    let mut command = ffmpeg();
    command.args(["-i", url]);
    command.args(["-c", "copy", "-f", "hls", "-hls_time", &SLICE_SECONDS.to_string(), "-hls_playlist_type", "event"]);
    command.arg(dir.join(format!("{name}.m3u8")));
    command.args(["-c", "copy", "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof"]);
    command.arg(dir.join(format!("{name}.mp4"))).stdout(Stdio::null()).stderr(log);
    command.spawn().with_context(|| format!("starting the reference recorder of {url}"))
}

/// How many `.ts` segments `dir` holds.
pub fn local_segments(dir: &Path) -> Result<usize> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut count = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        count += usize::from(entry.path().extension().is_some_and(|e| e == "ts"));
    }
    Ok(count)
}

/// A fresh empty directory at `dir`.
pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    Ok(())
}
