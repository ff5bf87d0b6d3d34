//! `bench-callbacks`: the callback delivery benchmark `make bench-callbacks` runs inside the
//! local stack (infra/local/bench-callbacks.sh, which also starts a release `roomrec-deliverer`).
//!
//! Creates an app through the API whose record callback points at a receiver this process runs,
//! writes `BENCH_EVENTS` events (default 10,000) over `BENCH_JOBS` jobs (default 100) into the
//! outbox and the events queue as the worker does (`append`, then `publish`, each job's events in
//! sequence order), and waits (at most `BENCH_TIMEOUT_SECS`, default 900) until every event was
//! received. The writers stay at most `BENCH_MAX_BACKLOG` events (default 100; 0: no limit)
//! ahead of the receiver, as a worker's pace would: moto's ReceiveMessage scans the whole queue
//! several times per message it hands out, so an unbounded backlog measures moto, not us. Prints a Markdown table on stdout: throughput, latency from outbox write to receipt,
//! per-job order violations and signatures the `standardwebhooks` crate rejects. Progress goes to
//! stderr.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use roomrec_adapters::{event_log, Deps, DynamoEventLog, OsRandom, SystemClock};
use roomrec_domain::callback::EventType;
use roomrec_domain::clock::Clock;
use roomrec_domain::event::RecordEvent;
use roomrec_domain::ids::{AppId, JobId, RoomId};
use roomrec_domain::ports::EventLog;
use roomrec_testkit::api::Api;
use roomrec_testkit::env::{count_var, seconds_var};
use roomrec_testkit::markdown::{header, row};
use roomrec_testkit::receiver::{Received, Receiver};
use roomrec_testkit::stats::{ms, Sample};
use serde_json::json;

/// The app's auth_key (32 printable characters, as the API requires).
const AUTH_KEY: &str = "bench0callbacks0auth0key00000032";
/// How often a writer held back by the backlog limit looks again.
const BACKLOG_POLL: Duration = Duration::from_millis(20);

/// The benchmark's knobs, from the environment.
#[derive(Debug, Clone, Copy)]
struct Knobs {
    events: usize,
    jobs: usize,
    writers: usize,
    /// Most events written and not yet received; 0 for no limit.
    max_backlog: usize,
    timeout: Duration,
}

impl Knobs {
    fn from_env() -> Result<Self> {
        let knobs = Self {
            events: count_var("BENCH_EVENTS", 10_000)?,
            jobs: count_var("BENCH_JOBS", 100)?,
            writers: count_var("BENCH_WRITERS", 8)?,
            max_backlog: count_var("BENCH_MAX_BACKLOG", 100)?,
            timeout: seconds_var("BENCH_TIMEOUT_SECS", 900, 0)?,
        };
        ensure!(knobs.jobs > 0 && knobs.writers > 0, "BENCH_JOBS and BENCH_WRITERS must be at least 1");
        ensure!(
            knobs.events >= knobs.jobs && knobs.events.is_multiple_of(knobs.jobs),
            "BENCH_EVENTS must be a multiple of BENCH_JOBS"
        );
        Ok(knobs)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let knobs = Knobs::from_env()?;
    let api = Api::from_env()?;
    let deps = Deps::from_env().await.context("reading the stack's configuration")?;
    let log = event_log(&deps.config).await;

    let receiver = Receiver::start_verifying(AUTH_KEY).await?;
    let app = create_app(&api, &receiver.url()).await?;
    eprintln!("bench-callbacks: app {app}, callback {}", receiver.url());

    let per_job = knobs.events / knobs.jobs;
    let jobs: Vec<JobId> = (0..knobs.jobs).map(|_| JobId::generate(&OsRandom)).collect();
    eprintln!(
        "bench-callbacks: writing {} events ({} jobs x {per_job}, {} jobs at a time)",
        knobs.events, knobs.jobs, knobs.writers
    );
    let start = Instant::now();
    let pace = Pace { receiver: &receiver, written: AtomicUsize::new(0), max_backlog: knobs.max_backlog };
    let writes: Vec<Vec<(String, Instant)>> =
        stream::iter(jobs.iter().map(|job| write_job(&log, &pace, &app, job, per_job)))
            .buffer_unordered(knobs.writers)
            .try_collect()
            .await?;
    let written_in = start.elapsed();
    let written: HashMap<String, Instant> = writes.into_iter().flatten().collect();
    eprintln!("bench-callbacks: written in {:.1} s; {} received so far", written_in.as_secs_f64(), receiver.count());

    let complete = wait_for_all(&receiver, &written, start, knobs.timeout).await;
    let (receipts, unreadable) = read_receipts(&receiver.received());
    println!("{}", report(&knobs, &written, &receipts, unreadable, start, written_in)?);
    if !complete {
        bail!("not every event was received within {} s (BENCH_TIMEOUT_SECS)", knobs.timeout.as_secs());
    }
    Ok(())
}

/// Creates an app with `api`'s credential and points its record callback at `url`.
async fn create_app(api: &Api, url: &str) -> Result<AppId> {
    let app_id = api.create_app("bench-callbacks").await?;
    api.set_callback(&app_id, &json!({ "url": url, "auth_key": AUTH_KEY })).await?;
    AppId::parse(&app_id).context("the API returned a malformed app_id")
}

/// Keeps the writers at most `max_backlog` events ahead of the receiver.
struct Pace<'a> {
    receiver: &'a Receiver,
    written: AtomicUsize,
    max_backlog: usize,
}

impl Pace<'_> {
    /// Waits until one more event may be written, and counts it.
    async fn next(&self) {
        while self.max_backlog > 0 && self.written.load(Ordering::SeqCst) >= self.receiver.count() + self.max_backlog {
            tokio::time::sleep(BACKLOG_POLL).await;
        }
        self.written.fetch_add(1, Ordering::SeqCst);
    }
}

/// Writes one job's events in sequence order, as the worker does: each is appended to the
/// outbox, then queued. Returns each event's id with the time its outbox write completed.
async fn write_job(
    log: &DynamoEventLog,
    pace: &Pace<'_>,
    app: &AppId,
    job: &JobId,
    count: usize,
) -> Result<Vec<(String, Instant)>> {
    let mut written = Vec::with_capacity(count);
    for sequence in 1..=count as u64 {
        pace.next().await;
        let event = RecordEvent {
            event_id: format!("{:032x}", rand::random::<u128>()),
            sequence,
            event_type: if sequence == count as u64 {
                EventType::CloudRecordOver
            } else {
                EventType::RecordNewFileStart
            },
            app_id: app.clone(),
            job_id: job.clone(),
            room_id: RoomId::try_from("room001").context("room id")?,
            stream_name: format!("s_{job}_room001_user001"),
            record_format: None,
            file: None,
            detail_message: format!("bench event {sequence}"),
            create_time: SystemClock.timestamp(),
            usage: None,
        };
        log.append(&event).await.with_context(|| format!("appending {job}/{sequence}"))?;
        written.push((event.event_id.clone(), Instant::now()));
        log.publish(&event).await.with_context(|| format!("queueing {job}/{sequence}"))?;
    }
    Ok(written)
}

/// One callback the receiver got, read as an event.
#[derive(Debug, Clone)]
struct Receipt {
    at: Instant,
    event_id: String,
    job_id: String,
    sequence: u64,
    /// Whether the `standardwebhooks` crate accepted its signature on arrival.
    verified: bool,
}

/// The events among `received`, in arrival order, and how many requests were not events (no
/// `event_id`, `job_id`, `sequence`).
fn read_receipts(received: &[Received]) -> (Vec<Receipt>, usize) {
    let mut receipts = Vec::with_capacity(received.len());
    let mut unreadable = 0;
    for request in received {
        let event = request.json();
        match (event["event_id"].as_str(), event["job_id"].as_str(), event["sequence"].as_u64()) {
            (Some(event_id), Some(job_id), Some(sequence)) => receipts.push(Receipt {
                at: request.at,
                event_id: event_id.to_owned(),
                job_id: job_id.to_owned(),
                sequence,
                verified: request.verified == Some(true),
            }),
            _ => unreadable += 1,
        }
    }
    (receipts, unreadable)
}

/// Waits until every written event was received (duplicates do not count twice), for at most
/// `timeout` from `start`; `false` when time ran out.
async fn wait_for_all(
    receiver: &Receiver,
    written: &HashMap<String, Instant>,
    start: Instant,
    timeout: Duration,
) -> bool {
    let mut last_report = Instant::now();
    let (mut read, mut unique) = (0, HashSet::new());
    loop {
        let new = receiver.received_since(read);
        read += new.len();
        let (receipts, _) = read_receipts(&new);
        unique.extend(receipts.into_iter().map(|r| r.event_id).filter(|id| written.contains_key(id)));
        if unique.len() >= written.len() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "bench-callbacks: {} of {} received after {:.0} s",
                unique.len(),
                written.len(),
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The results table.
fn report(
    knobs: &Knobs,
    written: &HashMap<String, Instant>,
    receipts: &[Receipt],
    unreadable: usize,
    start: Instant,
    written_in: Duration,
) -> Result<String> {
    // The first receipt of each event counts; later ones are duplicates.
    let mut first: HashMap<&str, &Receipt> = HashMap::new();
    let mut duplicates = 0;
    for receipt in receipts {
        if first.contains_key(receipt.event_id.as_str()) {
            duplicates += 1;
        } else {
            first.insert(&receipt.event_id, receipt);
        }
    }
    let latencies: Vec<Duration> =
        first.values().filter_map(|r| written.get(&r.event_id).map(|w| r.at.saturating_duration_since(*w))).collect();
    let received = latencies.len();
    let last = first.values().map(|r| r.at).max().unwrap_or(start);
    let total = last.saturating_duration_since(start);

    // Order: in arrival order, each job's (first-received) sequences must increase.
    let mut last_sequence: HashMap<&str, u64> = HashMap::new();
    let mut order_violations = 0;
    for receipt in receipts.iter().filter(|r| first.get(r.event_id.as_str()).is_some_and(|f| std::ptr::eq(*f, *r))) {
        let previous = last_sequence.insert(&receipt.job_id, receipt.sequence).unwrap_or(0);
        if receipt.sequence <= previous {
            order_violations += 1;
        }
    }
    let bad_signatures = receipts.iter().filter(|r| !r.verified).count() + unreadable;

    let sample = Sample::new(latencies)?;
    let per_job = knobs.events / knobs.jobs;
    let lines = [
        format!(
            "## Callback delivery ({} events: {} jobs x {per_job} sequences, written by {} concurrent job writers {}; one \
             release roomrec-deliverer, moto, receiver on loopback answering 200)\n",
            knobs.events,
            knobs.jobs,
            knobs.writers,
            match knobs.max_backlog {
                0 => "with no backlog limit".to_owned(),
                n => format!("at most {n} events ahead of the receiver"),
            }
        ),
        header(&[
            "events",
            "jobs",
            "received",
            "written in s",
            "total s",
            "delivered events/s",
            "write→receipt p50 ms",
            "p99 ms",
            "max ms",
            "order violations",
            "duplicates",
            "bad signatures",
        ]),
        row(&[
            knobs.events.to_string(),
            knobs.jobs.to_string(),
            received.to_string(),
            format!("{:.1}", written_in.as_secs_f64()),
            format!("{:.1}", total.as_secs_f64()),
            format!("{:.1}", received as f64 / total.as_secs_f64().max(f64::EPSILON)),
            ms(sample.percentile(50.0)),
            ms(sample.percentile(99.0)),
            ms(sample.max()),
            order_violations.to_string(),
            duplicates.to_string(),
            bad_signatures.to_string(),
        ]),
        String::new(),
        "Total: from the first outbox write to the last receipt. Latency: from an event's outbox write (append returned) \
         to its receipt, so it includes queueing behind the backlog. Signatures verified with the `standardwebhooks` crate."
            .to_owned(),
    ];
    Ok(lines.join("\n"))
}
