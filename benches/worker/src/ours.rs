//! Our side of one N: a fresh `roomrec-worker` records the N published streams (N individual
//! jobs) to S3; its process is measured once every job is RUNNING with a segment
//! uploaded, then the jobs are stopped through the API and the worker is shut down.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use roomrec_testkit::api::{individual_job, Api, Jobs};
use roomrec_testkit::procs::{self, Threads};
use tokio::process::{Child, Command};

use crate::bystanders::Bystanders;
use crate::report::{Segments, Side};
use crate::{Bench, Room};

/// Concurrent recordings the measured worker accepts: the largest N (its default capacity,
/// set here so a change of the default does not cap the benchmark).
const MAX_JOBS: usize = crate::MAX_N;
/// Most MiB one recording may hold in the spool not yet uploaded: past it the job fails
/// ("uploads fell behind"), so a slow S3 at N = 200 cannot fill the disk (200 × 64 MiB).
const SPOOL_BUDGET_MB: &str = "64";
/// How long the stopped jobs may take to reach STOPPED.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the worker may take to exit after SIGTERM before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the worker is given to start its runtime before its threads are listed.
const STARTUP: Duration = Duration::from_secs(1);
/// The threads the worker had before any job.
const STARTUP_THREADS: &str = "threads from before the jobs (main, tokio async workers: S3/DynamoDB/SQS calls, uploads, leases; any early blocking-pool thread)";
/// The threads it started since.
const JOB_THREADS: &str = "threads started since (per job its media thread; the ingest thread; tokio blocking pool)";
/// Seconds of silence after which the worker would end a job on its own.
const MAX_IDLE_SECS: u32 = 30;
/// Requests the bench has in flight to the gateway at once (creating, polling, stopping N jobs).
const API_CONCURRENCY: usize = 8;
/// Pause between polls of the API and S3 while waiting.
const POLL: Duration = Duration::from_secs(1);

/// Starts a worker, records the room's N streams with it, measures it; notes what went wrong
/// around the measurement (slow stops) in `notes`.
pub async fn run(bench: &Bench, room: &Room, bystanders: &Bystanders, notes: &mut Vec<String>) -> Result<Side> {
    let mut worker = start_worker(bench, room.n)?;
    let mut jobs = Vec::with_capacity(room.n);
    let result = async {
        // The threads the worker has before any job: main and tokio's async workers.
        tokio::time::sleep(STARTUP).await;
        let startup = procs::threads(worker.id().context("the worker has been reaped")?)?;
        let bodies: Vec<_> =
            (0..room.n).map(|i| individual_job(&room.rule, crate::ROOM, &Room::user(i), MAX_IDLE_SECS)).collect();
        let created = stream::iter(&bodies).map(|body| bench.api.create_job(&room.app, Jobs::Individual, body));
        let mut failure = None;
        // Every job created is kept (and stopped below), also when another failed.
        for result in created.buffered(API_CONCURRENCY).collect::<Vec<_>>().await {
            match result {
                Ok(job) => jobs.push(job),
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        if let Some(err) = failure {
            return Err(err).context("creating the jobs");
        }
        wait_ready(bench, room, &jobs, &mut worker, notes).await?;
        measure(bench, room, &jobs, &mut worker, &startup, bystanders, notes).await
    }
    .await;
    match stop_jobs(bench, room, &jobs).await {
        Ok(took) => notes.push(format!(
            "ours: all {} jobs STOPPED {:.0} s after the stop requests",
            jobs.len(),
            took.as_secs_f64()
        )),
        Err(err) => notes.push(format!("ours: {err:#}")),
    }
    if let Err(err) = shut_down(&mut worker).await {
        notes.push(format!("ours: {err:#}"));
    }
    // s3s-fs keeps every object on this machine's disk, about 50 MB a second (HLS and MP4) at
    // N = 200: the N's recordings go before the next side records.
    if let Some(root) = &bench.s3s_root {
        let _ = std::fs::remove_dir_all(root.join(&bench.bucket).join(&room.object));
    }
    result
}

/// A fresh worker with the stack's environment, its output appended to `worker.log`.
fn start_worker(bench: &Bench, n: usize) -> Result<Child> {
    let path = bench.state_dir.join("worker.log");
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(log, "===== bench-worker: a fresh worker for N = {n} =====").context("writing the worker log")?;
    let err = log.try_clone().context("sharing the worker log")?;
    Command::new(&bench.worker_bin)
        .env("ROOMREC_MAX_JOBS", MAX_JOBS.to_string())
        .env("ROOMREC_SPOOL_DIR", spool_dir(bench))
        .env("ROOMREC_SPOOL_BUDGET_MB", SPOOL_BUDGET_MB)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bench.worker_bin.display()))
}

/// Fails if the worker has exited.
fn check_worker(worker: &mut Child) -> Result<()> {
    match worker.try_wait().context("checking the worker")? {
        Some(status) => bail!("the worker exited ({status}); see worker.log"),
        None => Ok(()),
    }
}

/// Number of uploaded `.ts` segments per job id under the room's object prefix.
async fn segments_per_job(bench: &Bench, room: &Room) -> Result<HashMap<String, usize>> {
    match &bench.s3s_root {
        Some(root) => Ok(stored_segments(&root.join(&bench.bucket).join(&room.object))),
        None => listed_segments(bench, room).await,
    }
}

/// The `.ts` objects per job id in s3s-fs's directory of the room's prefix (an object is a
/// file at its key, renamed into place whole). Read from its disk because s3s-fs walks the
/// whole bucket, with a metadata read per file, for each page of a listing: minutes at
/// N = 200.
fn stored_segments(dir: &std::path::Path) -> HashMap<String, usize> {
    let jobs = std::fs::read_dir(dir).into_iter().flatten().flatten();
    let count = |job: &std::fs::DirEntry| {
        let files = std::fs::read_dir(job.path()).into_iter().flatten().flatten();
        files.filter(|f| f.file_name().to_str().is_some_and(|n| n.ends_with(".ts"))).count()
    };
    jobs.filter_map(|job| Some((job.file_name().into_string().ok()?, count(&job)))).collect()
}

/// As [`segments_per_job`], from S3's listing.
async fn listed_segments(bench: &Bench, room: &Room) -> Result<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    let mut token = None;
    loop {
        let page =
            bench.s3.list_objects_v2().bucket(&bench.bucket).prefix(&room.object).set_continuation_token(token).send();
        let page = page.await.with_context(|| format!("listing s3://{}/{}", bench.bucket, room.object))?;
        for key in page.contents().iter().filter_map(|o| o.key()).filter(|k| k.ends_with(".ts")) {
            let job = key[room.object.len()..].split('/').next().unwrap_or_default();
            *counts.entry(job.to_owned()).or_insert(0) += 1;
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(counts);
        }
    }
}

/// Waits until every job has uploaded a segment and is RUNNING. After the bench's ready
/// timeout the window opens anyway (the jobs still starting count as behind real time), with
/// a note of how far they got; a job that ended fails the side. The jobs' states are asked
/// for (N calls to the API) only once every job has a segment or the time is up: at N = 200
/// polling them every second kept moto, and so the jobs' own calls, busy.
async fn wait_ready(
    bench: &Bench,
    room: &Room,
    jobs: &[String],
    worker: &mut Child,
    notes: &mut Vec<String>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        check_worker(worker)?;
        let segments = segments_per_job(bench, room).await?;
        let recorded = jobs.iter().filter(|j| segments.get(*j).is_some_and(|&c| c > 0)).count();
        let timed_out = start.elapsed() > bench.ready_timeout;
        if recorded < jobs.len() && !timed_out {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let states = job_states(&bench.api, &room.app, jobs).await?;
        if let Some(i) = states.iter().position(|s| s == "FAILED" || s == "STOPPED") {
            bail!("job {} ended as {} before the window; see worker.log", jobs[i], states[i]);
        }
        let running = states.iter().filter(|s| *s == "RUNNING").count();
        let waited = start.elapsed().as_secs_f64();
        if running == jobs.len() && recorded == jobs.len() {
            eprintln!("bench-worker: N = {}: every job RUNNING with a segment after {waited:.0} s", room.n);
            return Ok(());
        }
        if timed_out {
            let note = format!(
                "ours: when the window opened ({waited:.0} s after the jobs were created) {running}/{} jobs were \
                 RUNNING and {recorded}/{} had uploaded a segment",
                jobs.len(),
                jobs.len()
            );
            eprintln!("bench-worker: N = {}: {note}", room.n);
            notes.push(note);
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Where the measured worker spools its files (a directory per job).
fn spool_dir(bench: &Bench) -> std::path::PathBuf {
    bench.state_dir.join("spool")
}

/// The sequence number of the newest HLS segment each job's recorder has begun, in order (0
/// without one). The one being written is always in the spool (`<job>/hls-<i>-<seq>.ts`);
/// those before it are there until uploaded.
fn newest_spooled(bench: &Bench, jobs: &[String]) -> Vec<usize> {
    let newest = |job: &String| {
        let listing = std::fs::read_dir(spool_dir(bench).join(job)).into_iter().flatten().flatten();
        listing.filter_map(|entry| entry.file_name().to_str().and_then(segment_seq)).max().unwrap_or(0)
    };
    jobs.iter().map(newest).collect()
}

/// The sequence number in a spooled segment's name, `hls-<playlist>-<seq>.ts`.
fn segment_seq(name: &str) -> Option<usize> {
    name.strip_prefix("hls-")?.strip_suffix(".ts")?.rsplit_once('-')?.1.parse().ok()
}

/// Segments each of `jobs` uploaded between two listings, in order.
fn uploaded_between(jobs: &[String], before: &HashMap<String, usize>, after: &HashMap<String, usize>) -> Vec<usize> {
    let count = |listing: &HashMap<String, usize>, job: &String| listing.get(job).copied().unwrap_or(0);
    jobs.iter().map(|job| count(after, job).saturating_sub(count(before, job))).collect()
}

/// The worker's usage over the window and the segments its jobs uploaded meanwhile; notes how
/// its CPU time divides between the threads it had at `startup` and those it started since.
async fn measure(
    bench: &Bench,
    room: &Room,
    jobs: &[String],
    worker: &mut Child,
    startup: &Threads,
    bystanders: &Bystanders,
    notes: &mut Vec<String>,
) -> Result<Side> {
    let pid = worker.id().context("the worker has been reaped")?;
    let load = procs::load_average();
    eprintln!("bench-worker: N = {}: measuring the worker for {} s (load {load})", room.n, bench.window.as_secs());
    let listing = Instant::now();
    let spooled_before = newest_spooled(bench, jobs);
    let before = segments_per_job(bench, room).await?;
    let listing_took = listing.elapsed();
    let (threads_before, others_before) = (procs::threads(pid)?, bystanders.ticks());
    let (usage, memory) = procs::measure(&[pid], bench.window, bench.ticks).await.context("measuring the worker")?;
    let (threads_after, others_after) = (procs::threads(pid)?, bystanders.ticks());
    notes.push(format!(
        "ours: cores used over the window beside the worker: {}; the whole machine less the worker {:.2}",
        bystanders.describe(&others_before, &others_after, bench.ticks),
        usage.other_cores
    ));
    let listing = Instant::now();
    let spooled_after = newest_spooled(bench, jobs);
    let after = segments_per_job(bench, room).await?;
    notes.push(format!(
        "ours: listing the segments took {:.1} s before the window and {:.1} s after it (uploads during a listing may \
         count in the window)",
        listing_took.as_secs_f64(),
        listing.elapsed().as_secs_f64()
    ));
    let group = |tid, _: &str| if startup.contains_key(&tid) { STARTUP_THREADS } else { JOB_THREADS };
    let split = procs::cpu_by_group(&threads_before, &threads_after, bench.ticks, group);
    let share = |secs: f64| 100.0 * secs / usage.cpu_seconds.max(f64::EPSILON);
    let split: Vec<String> =
        split.iter().map(|(group, count, secs)| format!("{group}: {count} threads, {:.0} %", share(*secs))).collect();
    notes.push(format!("ours: worker CPU by thread (threads alive over the whole window): {}", split.join("; ")));
    // No poll of the jobs' states here: at N = 200 one takes minutes through a busy moto, and a
    // job that stopped recording shows in its segment counts.
    check_worker(worker)?;
    let segments = Segments(uploaded_between(jobs, &before, &after));
    let recorded = spooled_after.iter().zip(&spooled_before).map(|(a, b)| a.saturating_sub(*b)).collect();
    let side = Side { usage, memory, segments, recorded: Some(Segments(recorded)), load };
    eprintln!("bench-worker: N = {}: ours {}", room.n, side.summary(room.n, bench.window.as_secs()));
    Ok(side)
}

/// The states of the individual `jobs` of `app`, in order.
async fn job_states(api: &Api, app: &str, jobs: &[String]) -> Result<Vec<String>> {
    let states = stream::iter(jobs).map(|job| api.job_state(app, Jobs::Individual, job));
    Ok(states.buffered(API_CONCURRENCY).try_collect().await?)
}

/// Stops every job through the API and waits until all are STOPPED; returns how long that took.
async fn stop_jobs(bench: &Bench, room: &Room, jobs: &[String]) -> Result<Duration> {
    let stops = stream::iter(jobs).map(|job| bench.api.stop_job(&room.app, Jobs::Individual, job));
    stops.buffer_unordered(API_CONCURRENCY).try_collect::<()>().await?;
    let start = Instant::now();
    loop {
        let states = job_states(&bench.api, &room.app, jobs).await?;
        let stopped = states.iter().filter(|s| *s == "STOPPED").count();
        if stopped == jobs.len() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > STOP_TIMEOUT {
            let mut others = std::collections::BTreeMap::new();
            for state in states.iter().filter(|s| *s != "STOPPED") {
                *others.entry(state.as_str()).or_insert(0) += 1;
            }
            bail!(
                "{stopped}/{} jobs STOPPED {} s after the stop; the others by state: {others:?}",
                jobs.len(),
                STOP_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGTERM (the worker's graceful shutdown), then SIGKILL if it is still there.
async fn shut_down(worker: &mut Child) -> Result<()> {
    if let Some(pid) = worker.id() {
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
    }
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, worker.wait()).await {
        Ok(status) => status.map(drop).context("waiting for the worker"),
        Err(_) => {
            let _ = worker.kill().await;
            bail!("the worker did not exit within {} s of SIGTERM; killed", SHUTDOWN_TIMEOUT.as_secs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spooled_segments_sequence_number_is_the_last_part_of_its_name() {
        assert_eq!(segment_seq("hls-0-17.ts"), Some(17));
        assert_eq!(segment_seq("hls-2-0.ts"), Some(0));
        assert_eq!(segment_seq("mp4-0.mp4"), None);
        assert_eq!(segment_seq("hls-0-17.ts.tmp"), None);
    }
}
