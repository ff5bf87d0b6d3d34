//! The reference side of one N: N `ffmpeg` processes read the same N published streams and
//! remux each to an HLS event playlist (4 s segments) and a fragmented MP4 on local disk.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use roomrec_testkit::procs;

use crate::bystanders::Bystanders;
use crate::media::{self, Group};
use crate::report::{Segments, Side};
use crate::{Bench, Room};

/// The least time the recorders run before the window opens.
const WARMUP: Duration = Duration::from_secs(5);
/// Pause between checks while waiting for the first segments.
const POLL: Duration = Duration::from_millis(500);

/// Starts the N recorders, measures them over the window, kills them and deletes their files;
/// notes what did not go to plan and what ran beside them in `notes`.
pub async fn run(bench: &Bench, room: &Room, bystanders: &Bystanders, notes: &mut Vec<String>) -> Result<Side> {
    let dir = bench.tmp.join(format!("reference-n{}", room.n));
    let dirs: Vec<PathBuf> = (0..room.n).map(|i| dir.join(Room::user(i))).collect();
    for d in &dirs {
        media::fresh_dir(d)?;
    }
    let mut recorders = Group::default();
    let result = async {
        start(bench, room, &dirs, &mut recorders)?;
        wait_ready(bench, &dirs, &mut recorders, notes).await?;
        let pids = recorders.pids()?;
        let load = procs::load_average();
        eprintln!(
            "bench-worker: N = {}: measuring {} ffmpeg processes for {} s (load {load})",
            room.n,
            pids.len(),
            bench.window.as_secs()
        );
        let (before, others_before) = (segments(&dirs)?, bystanders.ticks());
        let (usage, memory) =
            procs::measure(&pids, bench.window, bench.ticks).await.context("measuring the ffmpeg processes")?;
        let (after, others_after) = (segments(&dirs)?, bystanders.ticks());
        notes.push(format!(
            "ffmpeg: cores used over the window beside the ffmpeg processes: {}; the whole machine less them {:.2}",
            bystanders.describe(&others_before, &others_after, bench.ticks),
            usage.other_cores
        ));
        recorders.check_alive("reference ffmpeg")?;
        let segments = Segments(after.iter().zip(&before).map(|(a, b)| a.saturating_sub(*b)).collect());
        let side = Side { usage, memory, segments, recorded: None, load };
        eprintln!("bench-worker: N = {}: ffmpeg {}", room.n, side.summary(room.n, bench.window.as_secs()));
        Ok(side)
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

/// Waits at least [`WARMUP`] and until every recorder has written a segment. After the bench's
/// ready timeout the window opens anyway (those without a segment count as behind real time),
/// with a note of how many had one.
async fn wait_ready(bench: &Bench, dirs: &[PathBuf], recorders: &mut Group, notes: &mut Vec<String>) -> Result<()> {
    let start = Instant::now();
    tokio::time::sleep(WARMUP).await;
    loop {
        recorders.check_alive("reference ffmpeg")?;
        let recorded = segments(dirs)?.iter().filter(|&&count| count > 0).count();
        if recorded == dirs.len() {
            return Ok(());
        }
        if start.elapsed() > bench.ready_timeout {
            let note = format!(
                "ffmpeg: when the window opened ({:.0} s after the recorders started) {recorded}/{} had written a segment",
                start.elapsed().as_secs_f64(),
                dirs.len()
            );
            eprintln!("bench-worker: {note}");
            notes.push(note);
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Segments written so far in each recorder's directory.
fn segments(dirs: &[PathBuf]) -> Result<Vec<usize>> {
    dirs.iter().map(|d| media::local_segments(d)).collect()
}
