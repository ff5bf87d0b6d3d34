//! `bench-worker`: the recording-worker benchmark `make bench-worker` runs inside the local
//! stack (infra/local/bench-worker.sh). For each N (`BENCH_NS`, default "1 10 50") it publishes
//! N copies of a 1 Mbit/s 720p stream to nginx-rtmp (from one thread of its own), records them
//! with a fresh `roomrec-worker` (N individual jobs, HLS + MP4 to S3: s3s-fs, or moto with
//! BENCH_S3=moto) and then with N `ffmpeg` processes (the same remux to local files), and
//! measures each side's CPU time and memory over the same window (`BENCH_WINDOW_SECS`, default
//! 30). Prints a Markdown table on stdout; progress goes to stderr.

mod bystanders;
mod media;
mod ours;
mod publisher;
mod reference;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bystanders::Bystanders;
use publisher::Publisher;
use report::Row;
use roomrec_testkit::api::Api;
use roomrec_testkit::markdown::section;
use roomrec_testkit::{env, procs};
use serde_json::{json, Value};
use tokio::signal::unix::{signal, SignalKind};

/// The room every N's participants publish in.
pub const ROOM: &str = "bench";
/// The most streams one N may record (the worker's ROOMREC_MAX_JOBS in ours.rs, the dev
/// account's active_jobs quota in bench-worker.sh).
pub const MAX_N: usize = 200;
/// How long N publishers may take to appear in the room roster.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// What every N shares: the stack, the tools, the settings.
pub struct Bench {
    pub api: Api,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub rtmp_url: String,
    pub state_dir: PathBuf,
    /// moto's endpoint and the gateway's, to find their processes.
    pub aws_url: String,
    /// s3s-fs's root directory when it, not moto, serves S3 (BENCH_S3S_ROOT, which
    /// bench-worker.sh sets when it starts s3s-fs).
    pub s3s_root: Option<PathBuf>,
    pub http_url: String,
    pub worker_bin: PathBuf,
    /// Scratch directory (input file, reference recordings), removed at the end.
    pub tmp: PathBuf,
    pub window: Duration,
    /// How long the jobs (or reference recorders) may take to be recording before the N
    /// counts as not sustainable.
    pub ready_timeout: Duration,
    pub ticks: f64,
}

/// One N's app, rule and published streams.
pub struct Room {
    pub n: usize,
    pub app: String,
    pub rule: String,
    /// Where every file of this N is: `{app_id}/` and the rule's `obs_addr.object` (the
    /// deployment's bucket confines keys under the app).
    pub object: String,
}

impl Room {
    /// The user id of participant `i`.
    pub fn user(i: usize) -> String {
        format!("u{i}")
    }

    /// The nginx-rtmp stream key of participant `i`.
    pub fn key(&self, i: usize) -> String {
        format!("{}.{ROOM}.{}", self.app, Self::user(i))
    }
}

/// Removes the scratch directory however the run ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    // Dropping `run` on a signal kills every child process (they are all kill_on_drop).
    tokio::select! {
        result = run() => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = terminate.recv() => bail!("terminated"),
    }
}

/// The Ns to run, from a list like "1 10 50" (spaces or commas).
fn parse_ns(text: &str) -> Result<Vec<usize>, env::KnobError> {
    env::parse_counts("BENCH_NS", text, 1..=MAX_N)
}

async fn run() -> Result<()> {
    let ns = parse_ns(&std::env::var("BENCH_NS").unwrap_or_else(|_| "1 10 50".into()))?;
    let worker_bin =
        PathBuf::from(std::env::var("ROOMREC_WORKER_BIN").unwrap_or_else(|_| "target/release/roomrec-worker".into()));
    ensure!(worker_bin.is_file(), "{} is missing: `cargo build --release -p roomrec-worker`", worker_bin.display());
    let aws = aws_config::load_from_env().await;
    let scratch = Scratch(std::env::temp_dir().join(format!("roomrec-bench-worker-{}", std::process::id())));
    media::fresh_dir(&scratch.0)?;
    let bench = Bench {
        api: Api::from_env()?,
        s3: aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&aws).force_path_style(true).build()),
        bucket: env::stack_var("ROOMREC_RECORDINGS_BUCKET")?,
        rtmp_url: env::stack_var(env::RTMP_URL)?,
        state_dir: PathBuf::from(env::stack_var("ROOMREC_STATE_DIR")?),
        aws_url: env::stack_var("AWS_ENDPOINT_URL")?,
        s3s_root: std::env::var_os("BENCH_S3S_ROOT").map(PathBuf::from),
        http_url: env::stack_var(env::HTTP_URL)?,
        worker_bin,
        tmp: scratch.0.clone(),
        window: env::seconds_var("BENCH_WINDOW_SECS", 30, 1)?,
        ready_timeout: env::seconds_var("BENCH_READY_SECS", 60, 1)?,
        ticks: procs::clock_ticks_per_second()?,
    };
    let input = bench.tmp.join("in.flv");
    eprintln!("bench-worker: encoding the input file {}", input.display());
    media::prepare_input(&input).await?;
    let file: Arc<[u8]> = std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?.into();
    let (mut rows, mut notes) = (Vec::new(), Vec::new());
    for n in ns {
        rows.push(one_n(&bench, &file, n, &mut notes).await);
    }
    println!("{}", report_text(&bench, &rows, &notes));
    Ok(())
}

/// Both sides at one N, on the same N published streams; failures become the row's content.
async fn one_n(bench: &Bench, file: &Arc<[u8]>, n: usize, notes: &mut Vec<String>) -> Row {
    eprintln!("bench-worker: N = {n}: publishing");
    let started = Instant::now();
    let (room, publisher) = match publish(bench, file, n).await {
        Ok(published) => published,
        Err(err) => {
            let why = format!("setting up the publishers failed: {err:#}");
            return Row { n, ours: Err(why.clone()), reference: Err(why) };
        }
    };
    eprintln!("bench-worker: N = {n}: {n} streams published in {:.0} s", started.elapsed().as_secs_f64());
    let bystanders = Bystanders::find(
        port(&bench.aws_url),
        bench.http_url.trim_start_matches("http://"),
        &bench.state_dir.join("nginx.conf").to_string_lossy(),
        bench.s3s_root.as_deref().map(|root| root.to_string_lossy()).as_deref(),
        publisher.tid(),
    );
    let mut side_notes = Vec::new();
    let ours = ours::run(bench, &room, &bystanders, &mut side_notes).await.map_err(|e| format!("{e:#}"));
    eprintln!("bench-worker: N = {n}: the reference ffmpeg processes");
    let reference = reference::run(bench, &room, &bystanders, &mut side_notes).await.map_err(|e| format!("{e:#}"));
    if let Err(err) = publisher.check_alive() {
        side_notes.push(format!("publishers: {err:#}"));
    }
    drop(publisher);
    for (side, result) in [("ours", &ours), ("ffmpeg", &reference)] {
        match result {
            Ok(s) => side_notes.push(format!("{side}: load average when the window opened {}", s.load)),
            Err(e) => side_notes.push(format!("{side}: {e}")),
        }
    }
    notes.extend(side_notes.into_iter().map(|note| format!("N = {n}, {note}")));
    Row { n, ours, reference }
}

/// The port of a `scheme://host:port` URL (empty when it has none).
fn port(url: &str) -> &str {
    url.trim_end_matches('/').rsplit_once(':').map_or("", |(_, port)| port)
}

/// A new app and rule, and N streams published in its room, all listed in the roster.
async fn publish(bench: &Bench, file: &Arc<[u8]>, n: usize) -> Result<(Room, Publisher)> {
    let app = bench.api.create_app(&format!("bench-worker-n{n}")).await?;
    let object = format!("bench-worker/n{n}/");
    let rule = bench.api.create_rule(&app, &rule_body(&bench.bucket, &object)).await?;
    let object = format!("{app}/{object}");
    let room = Room { n, app, rule, object };
    let mut urls = Vec::with_capacity(n);
    for i in 0..n {
        urls.push(bench.api.publish_url(&room.app, ROOM, &Room::user(i)).await?);
    }
    let publisher = Publisher::start(file.clone(), urls).await?;
    let start = Instant::now();
    loop {
        publisher.check_alive()?;
        let listed = bench.api.roster_len(&room.app, ROOM).await?;
        if listed == n {
            return Ok((room, publisher));
        }
        ensure!(
            start.elapsed() < PUBLISH_TIMEOUT,
            "only {listed}/{n} published streams in the roster after {} s",
            PUBLISH_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A rule recording HLS (4 s slices) and MP4 into `bucket` under `object`, with every file
/// named `<object><job_id>/<format>_<start time>`.
fn rule_body(bucket: &str, object: &str) -> Value {
    let prefix = "{job_id}/{record_format}_{file_start_time}";
    json!({
        "obs_addr": { "bucket": bucket, "location": "us-east-1", "object": object },
        "record_formats": ["HLS", "MP4"],
        "hls_config": { "record_slice_duration": media::SLICE_SECONDS, "record_prefix": prefix },
        "mp4_config": { "record_prefix": prefix },
    })
}

/// The printed Markdown: title, table, goal, method and notes.
fn report_text(bench: &Bench, rows: &[Row], notes: &[String]) -> String {
    let window = bench.window.as_secs();
    let cores = std::thread::available_parallelism().map_or_else(|_| "?".into(), |c| c.to_string());
    let mut text = vec![
        format!(
            "## Recording worker against ffmpeg (N live 1280x720 30 fps streams, 1 Mbit/s H.264 + 64 kbit/s AAC; HLS 4 s \
             segments + fragmented MP4; {window} s window)\n"
        ),
        report::table(rows, window),
        String::new(),
        report::goal(rows),
        String::new(),
        report::real_time_goal(rows, window),
        String::new(),
        "Method:".into(),
        format!(
            "- ours: one fresh release `roomrec-worker` per N (ROOMREC_MAX_JOBS=200, RTMP reader `{reader}`: \
             ROOMREC_RTMP_READER) with N individual jobs, measured once every job was RUNNING and had uploaded a \
             segment. It also uploads every segment, playlist and MP4 part to S3 ({s3}, on this machine) and keeps job \
             state in DynamoDB (moto); the reference only writes local files.",
            reader = std::env::var("ROOMREC_RTMP_READER").unwrap_or_else(|_| "buffered".into()),
            s3 = if bench.s3s_root.is_some() { "s3s-fs, BENCH_S3=s3s" } else { "moto, BENCH_S3=moto" }
        ),
        "- ffmpeg: N `ffmpeg -i rtmp://… -c copy -f hls -hls_time 4 -hls_playlist_type event … -c copy -f mp4 -movflags \
         frag_keyframe+empty_moov+default_base_moof …` processes on the same N streams, measured once each had written a segment."
            .into(),
        "- CPU: utime+stime of the measured processes (all threads) from /proc/<pid>/stat at the start and end of the window, \
         divided by (window seconds × N). RSS: VmRSS from /proc/<pid>/status summed over the side's processes, sampled every \
         second, peak taken, divided by N. VmRSS counts the pages of shared libraries (FFmpeg's) once per process, so N \
         ffmpeg processes count them N times; the last column (RssAnon, private memory only) leaves them out."
            .into(),
        "- Not part of either side: the publisher (one thread of the bench publishing the 20 s file to the N streams \
         in real time over RTMP, looped with continuous timestamps, the streams' starts spread over 2 s), nginx-rtmp, \
         moto, s3s-fs and the gateway, which run throughout on the same machine; their CPU over each window is in the \
         notes (moto is one Python process: near 1.00 core it, not the worker, sets the pace)."
            .into(),
        format!(
            "- \"segments in window\" counts HLS segments completed during the window (uploaded to S3 / written to disk); about \
             window/{}·N means the side kept up in real time. A stream is behind real time when it completed fewer \
             than {} segments in the window; the column after gives how many streams were, and the fewest one stream \
             completed, for ours both as uploaded to S3 and as begun by its recorders in the spool (uploaded or not: \
             a recorder in real time with uploads behind means S3, moto here, set the pace).",
            media::SLICE_SECONDS,
            report::expected_segments(window).saturating_sub(1)
        ),
        format!("- Machine: {cores} cores; other work may have been running (load averages below)."),
    ];
    text.extend(section("Notes:", notes));
    text.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_are_listed_with_spaces_or_commas_and_bounded() {
        assert_eq!(parse_ns("1 10 50").expect("valid"), vec![1, 10, 50]);
        assert_eq!(parse_ns(" 2,3 ").expect("valid"), vec![2, 3]);
        assert!(parse_ns("").is_err());
        assert!(parse_ns("0").is_err());
        assert_eq!(parse_ns("50 200").expect("valid"), vec![50, 200]);
        assert!(parse_ns("201").is_err());
        assert!(parse_ns("ten").is_err());
    }

    #[test]
    fn the_port_is_the_endpoints_last_part() {
        assert_eq!(port("http://127.0.0.1:5000"), "5000");
        assert_eq!(port("http://127.0.0.1:5000/"), "5000");
    }
}
