//! `bench-growth`: what `make bench-growth` runs inside the local stack
//! (infra/local/bench-growth.sh). Two apps of one account: one with `BENCH_GROWTH_SMALL_JOBS`
//! (10) finished jobs, one with `BENCH_GROWTH_JOBS` (100,000), written straight into the jobs
//! table with BatchWriteItem (half of them in the room the routes use, as in a room reused for
//! months), each with three active jobs in that room and an automatic-recording rule. Then,
//! alternating between the apps, each route is timed through the gateway. Prints a Markdown
//! table on stdout; progress on stderr.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use roomrec_adapters::{Deps, DynamoStore, OsRandom};
use roomrec_domain::ids::{AccountId, AppId, JobId};
use roomrec_domain::job::{Job, RecordFile, StopReason};
use roomrec_domain::ports::JobStore;
use roomrec_domain::record::JobRecord;
use roomrec_domain::rule::RecordFormat;
use roomrec_domain::time::Timestamp;
use roomrec_testkit::api::{seed_rule, Api};
use roomrec_testkit::env;
use roomrec_testkit::markdown::{header, row};
use roomrec_testkit::stats::{ms, Sample};
use serde_json::{json, Value};

/// The room every timed route uses.
const ROOM: &str = "room001";
/// Most items one BatchWriteItem takes.
/// <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>
const BATCH_WRITE_MAX_ITEMS: usize = 25;
/// Active jobs each app has in [`ROOM`].
const ACTIVE: usize = 3;
/// Untimed rounds before the timed ones.
const WARMUP: usize = 3;

/// One seeded app.
struct Fixture {
    app: String,
    finished: usize,
    /// A finished job with three files.
    probe: String,
    /// Its active jobs in [`ROOM`].
    active: Vec<String>,
    seeding: Duration,
}

/// The timed operations, in the table's order.
const OPERATIONS: [&str; 4] = [
    "GET .../individual-stream-jobs?room_id=room001&state=INIT (the room's active jobs)",
    "GET .../individual-stream-jobs?limit=20 (a listing page)",
    "PUT .../rooms/room001/streams/{user_id} (a join that records automatically)",
    "GET .../individual-stream-jobs/{job_id} (one job, three files)",
];

#[tokio::main]
async fn main() -> Result<()> {
    let small = env::count_var("BENCH_GROWTH_SMALL_JOBS", 10)?;
    let big = env::count_var("BENCH_GROWTH_JOBS", 100_000)?;
    let repeats = env::count_var("BENCH_GROWTH_REPEATS", 50)?;
    let writers = env::count_var("BENCH_GROWTH_SEED_WRITERS", 8)?.max(1);
    let base = env::stack_var(env::HTTP_URL)?;
    let deps = Deps::from_env().await.context("reading the stack's configuration")?;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await);
    let store = DynamoStore::new(dynamo.clone(), deps.config.tables.clone());
    let account = AccountId::try_from(format!("bench-growth-{}", std::process::id())).context("account name")?;
    let api = Api::issue(&deps.access, base, account).await?;

    let seeder = Seeder { dynamo, store, table: deps.config.tables.jobs.clone(), writers };
    let small = seeder.fixture(&api, small).await.context("seeding the small app")?;
    // Alone first: moto scans a whole table for every index query (real DynamoDB reads only
    // the range asked for), so the small app is also timed before the big one exists.
    eprintln!("bench-growth: the small app alone");
    let alone = measure(&api, &[&small], repeats, 0).await?.remove(0);
    let big = seeder.fixture(&api, big).await.context("seeding the big app")?;
    eprintln!("bench-growth: both apps, alternating");
    let mut both = measure(&api, &[&small, &big], repeats, WARMUP + repeats).await?;
    let (beside, big_times) = (both.remove(0), both.remove(0));
    println!("{}", table(&small, &big, [alone, beside, big_times], repeats)?);
    println!("\n{}", seeder.scanned(&[&small, &big]).await?);
    Ok(())
}

/// Every operation `repeats` times on each fixture (after [`WARMUP`] untimed rounds),
/// alternating between them; rounds are numbered from `first_round` (each joins a new user).
async fn measure(api: &Api, fixtures: &[&Fixture], repeats: usize, first_round: usize) -> Result<Vec<Vec<Sample>>> {
    let mut samples: Vec<Vec<Vec<Duration>>> = vec![vec![Vec::new(); OPERATIONS.len()]; fixtures.len()];
    for round in 0..WARMUP + repeats {
        for (fixture, times) in fixtures.iter().zip(samples.iter_mut()) {
            let n = first_round + round;
            let took = round_trip(api, fixture, n).await.with_context(|| format!("round {n}"))?;
            if round >= WARMUP {
                times.iter_mut().zip(took).for_each(|(sample, took)| sample.push(took));
            }
        }
    }
    samples.into_iter().map(|ops| ops.into_iter().map(|op| Ok(Sample::new(op)?)).collect()).collect()
}

/// Writes jobs straight into the jobs table.
struct Seeder {
    dynamo: aws_sdk_dynamodb::Client,
    store: DynamoStore,
    table: String,
    writers: usize,
}

impl Seeder {
    /// An app with `finished` ended jobs, [`ACTIVE`] active ones and automatic recording on.
    async fn fixture(&self, api: &Api, finished: usize) -> Result<Fixture> {
        let app = api.create_app(&format!("growth{finished}")).await?;
        let rule = api.create_rule(&app, &seed_rule()).await?;
        let app_id = AppId::parse(&app).context("app id")?;
        let started = Instant::now();
        let now = chrono::Utc::now();
        let jobs = (0..finished).map(|i| {
            // Older than the active jobs: the newest finished job ended a second before them.
            let created = Timestamp::at(now - chrono::Duration::seconds(i64::try_from(i).unwrap_or(0) + 1));
            let room = if i % 2 == 0 { ROOM.to_owned() } else { format!("room{:04}", i % 1000) };
            finished_job(&app_id, &rule, &room, i, created)
        });
        let batches: Vec<Vec<JobRecord>> =
            jobs.collect::<Result<Vec<_>>>()?.chunks(BATCH_WRITE_MAX_ITEMS).map(<[_]>::to_vec).collect();
        let probe = batches.first().and_then(|b| b.first()).map(|r| r.job.job_id.clone()).context("no jobs")?;
        futures::stream::iter(batches.into_iter().map(|batch| self.write(batch)))
            .buffer_unordered(self.writers)
            .try_collect::<Vec<()>>()
            .await?;
        let seeding = started.elapsed();
        eprintln!("bench-growth: {finished} finished jobs written in {:.1} s", seeding.as_secs_f64());
        self.add_files(&app_id, &probe).await?;
        api.call(Method::PUT, &format!("/v2/apps/{app}/record-rules/{rule}"), Some(&json!({"auto_record": true})))
            .await?;
        let mut active = Vec::new();
        for user in 0..ACTIVE {
            let body =
                json!({"room_id": ROOM, "user_id": format!("live{user}"), "record_param": {"record_rule_id": rule}});
            let created =
                api.call(Method::POST, &format!("/v2/apps/{app}/individual-stream-jobs"), Some(&body)).await?;
            active.push(created["job_id"].as_str().context("job_id")?.to_owned());
        }
        Ok(Fixture { app, finished, probe: probe.to_string(), active, seeding })
    }

    /// One BatchWriteItem of up to 25 jobs, again for whatever DynamoDB leaves unprocessed.
    async fn write(&self, batch: Vec<JobRecord>) -> Result<()> {
        let mut requests = Vec::with_capacity(batch.len());
        for record in &batch {
            let item = DynamoStore::job_item(record, 2)?;
            requests
                .push(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build());
        }
        let mut pause = Duration::from_millis(50);
        while !requests.is_empty() {
            let out = self.dynamo.batch_write_item().request_items(&self.table, requests).send().await?;
            requests = out.unprocessed_items.unwrap_or_default().remove(&self.table).unwrap_or_default();
            if !requests.is_empty() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
        Ok(())
    }

    /// What DynamoDB itself evaluates for each app's first listing page: the `ScannedCount` of
    /// the five index queries the store makes (one per state, `Limit` 21), unlike moto's time,
    /// which grows with the whole table.
    async fn scanned(&self, fixtures: &[&Fixture]) -> Result<String> {
        let mut lines = vec![
            "## Index entries a first listing page evaluates (ScannedCount of its five queries)\n".to_owned(),
            header(&["app", "entries evaluated"]),
        ];
        for fixture in fixtures {
            let mut scanned = 0;
            for state in ["INIT", "RUNNING", "STOPPING", "STOPPED", "FAILED"] {
                let out = self
                    .dynamo
                    .query()
                    .table_name(&self.table)
                    .index_name("jobs_by_app")
                    .key_condition_expression("app_state = :pk")
                    .expression_attribute_values(
                        ":pk",
                        AttributeValue::S(format!("{}#INDIVIDUAL#{state}", fixture.app)),
                    )
                    .scan_index_forward(false)
                    .limit(21)
                    .send()
                    .await?;
                scanned += out.scanned_count;
            }
            lines.push(row(&[format!("{} finished jobs", fixture.finished), scanned.to_string()]));
        }
        Ok(lines.join("\n"))
    }

    /// Gives the job three completed files, as a worker stores them.
    async fn add_files(&self, app_id: &AppId, job_id: &JobId) -> Result<()> {
        let mut record = self.store.get_job(app_id, job_id).await?.context("the probe job")?;
        for n in 0..3 {
            let key = format!("Record/probe_{n}.mp4");
            let file = RecordFile {
                record_format: RecordFormat::Mp4,
                obs_bucket: "obsName".into(),
                obs_object: key.clone(),
                timeline_object: None,
                timeline_url: None,
                file_size: 1_000_000,
                record_duration: 60.0,
                start_time: record.job.create_time,
                end_time: record.job.stop_time,
                download_url: None,
            };
            record.close_upload(&key, Some(&file));
        }
        Ok(self.store.save_job(&record).await?)
    }
}

/// Finished job `i` of the app in `room`, created at `created`.
fn finished_job(app_id: &AppId, rule: &str, room: &str, i: usize, created: Timestamp) -> Result<JobRecord> {
    let body = json!({"room_id": room, "user_id": format!("u{i}"), "record_param": {"record_rule_id": rule}});
    let job = Job::individual(app_id.clone(), serde_json::from_value(body)?, &OsRandom, created)?;
    let mut record = JobRecord::new(job);
    record.finish(StopReason::ExceedMaxIdleTime, created);
    Ok(record)
}

/// One round of every operation on `fixture`'s app, each checked, and how long each took.
async fn round_trip(api: &Api, fixture: &Fixture, round: usize) -> Result<Vec<Duration>> {
    let app = &fixture.app;
    let jobs = format!("/v2/apps/{app}/individual-stream-jobs");
    let count = |body: &Value| body["jobs"].as_array().map_or(0, Vec::len);
    let mut took = Vec::with_capacity(OPERATIONS.len());

    let (active, time) = timed(api.call(Method::GET, &format!("{jobs}?room_id={ROOM}&state=INIT"), None)).await?;
    ensure!(count(&active) == ACTIVE, "the room's active jobs: {active}");
    took.push(time);

    let (page, time) = timed(api.call(Method::GET, &format!("{jobs}?limit=20"), None)).await?;
    ensure!(count(&page) == 20 || (count(&page) < 20 && page.get("next_token").is_none()), "a listing page: {page}");
    took.push(time);

    let stream = format!("/v2/apps/{app}/rooms/{ROOM}/streams/bench{round}");
    let url = json!({"url": "rtmp://media.example.com/live/bench"});
    took.push(timed(api.call(Method::PUT, &stream, Some(&url))).await?.1);
    api.call(Method::DELETE, &stream, None).await?;
    // The join's job is stopped again (untimed), so every round meets the same active jobs.
    let listed = api.call(Method::GET, &format!("{jobs}?room_id={ROOM}&state=INIT"), None).await?;
    let started: Vec<&str> =
        listed["jobs"].as_array().into_iter().flatten().filter_map(|j| j["job_id"].as_str()).collect();
    ensure!(started.len() == ACTIVE + 1, "the join started one job: {listed}");
    for job in started.into_iter().filter(|job| !fixture.active.iter().any(|a| a == job)) {
        api.call(Method::POST, &format!("{jobs}/{job}/stop"), Some(&json!({}))).await?;
    }

    let (probe, time) = timed(api.call(Method::GET, &format!("{jobs}/{}", fixture.probe), None)).await?;
    ensure!(probe["record_files"].as_array().map(Vec::len) == Some(3), "one job with its files: {probe}");
    took.push(time);
    Ok(took)
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, roomrec_testkit::api::ApiError>>,
) -> Result<(T, Duration)> {
    let start = Instant::now();
    let out = call.await?;
    Ok((out, start.elapsed()))
}

/// The Markdown table: each operation's p50 and p99 for the small app alone, the small app
/// beside the big one and the big app, and the big app's p50 over the small one's beside it.
fn table(
    small: &Fixture,
    big: &Fixture,
    [alone, beside, big_times]: [Vec<Sample>; 3],
    repeats: usize,
) -> Result<String> {
    let (n_small, n_big) = (small.finished, big.finished);
    let mut lines = vec![
        format!(
            "## An app with {n_big} finished jobs against one with {n_small} ({repeats} rounds through the gateway \
             after {WARMUP} untimed; {n_big} jobs written in {:.0} s)\n",
            big.seeding.as_secs_f64()
        ),
        header(&[
            "operation",
            &format!("{n_small} jobs, table alone: p50 / p99 ms"),
            &format!("{n_small} jobs, beside {n_big}: p50 / p99 ms"),
            &format!("{n_big} jobs: p50 / p99 ms"),
            &format!("p50 ratio {n_big} / {n_small} jobs"),
        ]),
    ];
    let cell = |sample: &Sample| format!("{} / {}", ms(sample.percentile(50.0)), ms(sample.percentile(99.0)));
    for (i, operation) in OPERATIONS.iter().enumerate() {
        let (a, s, b) = (&alone[i], &beside[i], &big_times[i]);
        let ratio = b.percentile(50.0).as_secs_f64() / s.percentile(50.0).as_secs_f64().max(1e-9);
        lines.push(row(&[(*operation).to_owned(), cell(a), cell(s), cell(b), format!("{ratio:.2}")]));
    }
    Ok(lines.join("\n"))
}
