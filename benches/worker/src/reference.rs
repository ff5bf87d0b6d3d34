//! The reference side of one N: N `ffmpeg` processes read the same N published streams and
//! remux each to an HLS event playlist (4 s segments) and a fragmented MP4 on local disk.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use roomrec_testkit::procs;

use crate::media::{self, Group};
use crate::report::Side;
use crate::{Bench, Room};

/// The least time the recorders run before the window opens.
const WARMUP: Duration = Duration::from_secs(5);
/// Pause between checks while waiting for the first segments.
const POLL: Duration = Duration::from_millis(500);

/// Starts the N recorders, measures them over the window, kills them and deletes their files.
pub async fn run(bench: &Bench, room: &Room) -> Result<Side> {
    let dir = bench.tmp.join(format!("reference-n{}", room.n));
    let dirs: Vec<PathBuf> = (0..room.n).map(|i| dir.join(Room::user(i))).collect();
    for d in &dirs {
        media::fresh_dir(d)?;
    }
    let mut recorders = Group::default();
    let result = async {
        start(bench, room, &dirs, &mut recorders)?;
        wait_ready(bench, &dirs, &mut recorders).await?;
        let pids = recorders.pids()?;
        let load = procs::load_average();
        eprintln!(
            "bench-worker: N = {}: measuring {} ffmpeg processes for {} s (load {load})",
            room.n,
            pids.len(),
            bench.window.as_secs()
        );
        let before = segments(&dirs)?;
        let (usage, memory) =
            procs::measure(&pids, bench.window, bench.ticks).await.context("measuring the ffmpeg processes")?;
        let after = segments(&dirs)?;
        recorders.check_alive("reference ffmpeg")?;
        Ok(Side { usage, memory, segments: after.saturating_sub(before), load })
    }
    .await;
    recorders.kill_all().await;
    if let Err(err) = std::fs::remove_dir_all(&dir) {
        eprintln!("bench-worker: could not remove {}: {err}", dir.display());
    }
    result
}

/// One recorder per published stream; their diagnostics go to `reference-n<N>.log`.
fn start(bench: &Bench, room: &Room, dirs: &[PathBuf], recorders: &mut Group) -> Result<()> {
    let log_path = bench.state_dir.join(format!("reference-n{}.log", room.n));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    for (i, dir) in dirs.iter().enumerate() {
        let url = format!("{}/{}", bench.rtmp_url, room.key(i));
        recorders.push(media::reference_recorder(
            &url,
            dir,
            "rec",
            log.try_clone().context("sharing the reference log")?,
        )?);
    }
    Ok(())
}

/// Waits at least [`WARMUP`] and until every recorder has written a segment.
async fn wait_ready(bench: &Bench, dirs: &[PathBuf], recorders: &mut Group) -> Result<()> {
    let start = Instant::now();
    tokio::time::sleep(WARMUP).await;
    loop {
        recorders.check_alive("reference ffmpeg")?;
        let mut recorded = 0;
        for dir in dirs {
            recorded += usize::from(media::local_segments(dir)? > 0);
        }
        if recorded == dirs.len() {
            return Ok(());
        }
        if start.elapsed() > bench.ready_timeout {
            bail!(
                "not sustainable: after {} s {recorded}/{} recorders had written a segment",
                bench.ready_timeout.as_secs(),
                dirs.len()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Segments written so far in every recorder's directory.
fn segments(dirs: &[PathBuf]) -> Result<usize> {
    dirs.iter().map(|d| media::local_segments(d)).sum()
}
