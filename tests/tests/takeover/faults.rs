//! What the takeover tests and `make chaos` share: workers and a sweeper of their own, signals,
//! who holds a job, and how much of a recording its files hold.

use std::process::Stdio;
use std::time::Duration;

use roomrec_domain::callback::EventType;
use roomrec_domain::event::RecordEvent;
use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::ports::JobStore;
use roomrec_tests::store;

use crate::support::{decodes, download, duration, objects, probe, Setup};

/// The stack's jobs queue URL.
pub fn jobs_queue() -> String {
    roomrec_tests::stack_env("ROOMREC_JOBS_QUEUE_URL")
}

/// The local AWS endpoint (moto), for a fault proxy to forward to.
pub fn moto() -> std::net::SocketAddr {
    let url = std::env::var("AWS_ENDPOINT_URL").expect("run inside the local stack");
    url.trim_start_matches("http://").trim_end_matches('/').parse().unwrap()
}

/// Takes the job's message off the jobs queue (and any before it), as if it were lost; run
/// while no worker receives.
pub async fn delete_message(job: &str) {
    let sqs = aws_sdk_sqs::Client::new(&roomrec_tests::aws().await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the job's message never came");
        let received = sqs.receive_message().queue_url(jobs_queue()).max_number_of_messages(10).send().await.unwrap();
        for message in received.messages.unwrap_or_default() {
            let receipt = message.receipt_handle.unwrap();
            sqs.delete_message().queue_url(jobs_queue()).receipt_handle(receipt).send().await.unwrap();
            if message.body.unwrap_or_default().contains(job) {
                return;
            }
        }
    }
}

/// A sweeper of our own (`roomrec-admin sweep`) sweeping every second, counting a job as lost
/// after two seconds in INIT; stopped when dropped.
pub fn start_sweeper() -> tokio::process::Child {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/roomrec-admin");
    let state = roomrec_tests::stack_env("ROOMREC_STATE_DIR");
    let log = std::fs::File::create(format!("{state}/sweeper.log")).unwrap();
    tokio::process::Command::new(binary)
        .args(["sweep", "--every", "1"])
        .envs(roomrec_tests::role_env("sweeper"))
        .env("ROOMREC_SWEEP_INIT_GRACE_SECONDS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the admin binary is built by make test")
}

/// The worker holding the job now, if any.
pub async fn lease_owner(app: &str, job: &str) -> Option<String> {
    let record = store().await.get_job(&AppId::parse(app).unwrap(), &JobId::parse(job).unwrap()).await.unwrap();
    record.and_then(|r| r.lease).map(|lease| lease.owner)
}

/// A worker process of our own, with the default lease and message visibility (what the
/// takeover times are promised for); stopped (SIGKILL) when dropped.
pub fn start_worker(name: &str) -> tokio::process::Child {
    start_worker_with(name, &[])
}

/// [`start_worker`] with more settings (`AWS_ENDPOINT_URL` through a fault proxy, say).
pub fn start_worker_with(name: &str, settings: &[(&str, &str)]) -> tokio::process::Child {
    worker_command(name, settings, None)
}

/// [`start_worker_with`], its spool a tmpfs of `spool_mib` MiB in a mount namespace of its
/// own (`unshare -m`, as root), so its disk fills up.
pub fn start_worker_on_small_spool(name: &str, settings: &[(&str, &str)], spool_mib: u32) -> tokio::process::Child {
    worker_command(name, settings, Some(spool_mib))
}

fn worker_command(name: &str, settings: &[(&str, &str)], spool_mib: Option<u32>) -> tokio::process::Child {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/roomrec-worker");
    let state = roomrec_tests::stack_env("ROOMREC_STATE_DIR");
    let log = std::fs::File::create(format!("{state}/worker-{name}.log")).unwrap();
    let spool = format!("{state}/spool-{name}");
    let mut command = match spool_mib {
        None => tokio::process::Command::new(binary),
        Some(mib) => {
            std::fs::create_dir_all(&spool).unwrap();
            let mut command = tokio::process::Command::new("unshare");
            let mount = format!("mount -t tmpfs -o size={mib}m tmpfs \"$ROOMREC_SPOOL_DIR\" && exec \"$0\"");
            command.args(["-m", "sh", "-c", &mount, binary]);
            command
        }
    };
    command
        .env("ROOMREC_WORKER_ID", name)
        .envs(roomrec_tests::role_env("worker"))
        .envs(settings.iter().copied())
        .env("ROOMREC_SPOOL_DIR", spool)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the worker binary is built by make test")
}

/// Sends `signal` (`-STOP`, `-CONT`, `-TERM`) to `worker`.
pub fn signal(worker: &tokio::process::Child, signal: &str) {
    let pid = worker.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
}

/// Waits until `name` holds the job.
pub async fn wait_for_owner(setup: &Setup, job: &str, name: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while lease_owner(&setup.app, job).await.as_deref() != Some(name) {
        assert!(tokio::time::Instant::now() < deadline, "{name} never took the job");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Media of one format in a job's completed files, against the time they span.
#[derive(Debug)]
pub struct Coverage {
    /// Seconds from the first file's start to the last file's end.
    pub span: f64,
    /// Seconds of media in the files: MP4 by ffprobe, HLS by its playlist, every segment of
    /// which must be in S3. More than `span` when files overlap (a hand-over).
    pub media: f64,
    /// Each file's media as seconds from the first file's start: where it begins and how long
    /// it is, in event order.
    pub files: Vec<(f64, f64)>,
}

impl Coverage {
    /// Seconds of the span no file holds.
    pub fn lost(&self) -> f64 {
        let mut files = self.files.clone();
        files.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut covered, mut reached) = (0.0, 0.0_f64);
        for (from, seconds) in files {
            let to = (from + seconds).min(self.span);
            covered += (to - from.max(reached)).max(0.0);
            reached = reached.max(to);
        }
        (self.span - covered).max(0.0)
    }
}

/// What the job's completed files of `format` ("mp4" or "m3u8") hold, downloaded to a
/// temporary folder of their own. A file's start time is
/// stamped when its first packet is written, after the ~2 s its input is probed, yet it holds
/// the packets read while probing: each file's media is taken to begin that much before its
/// start time, as measured on the last file (which ends when written, at the stop).
pub async fn coverage(setup: &Setup, events: &[RecordEvent], format: &str) -> Coverage {
    let job = events.first().map(|e| e.job_id.to_string()).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("roomrec-coverage-{job}-{format}"));
    std::fs::create_dir_all(&dir).unwrap();
    let done: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == EventType::RecordFileComplete)
        .filter_map(|e| e.file.as_ref())
        .filter(|f| f.obs_object.ends_with(&format!(".{format}")))
        .collect();
    assert!(!done.is_empty(), "no {format} file completed: {events:?}");
    let seconds = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        (to - from).num_milliseconds() as f64 / 1000.0
    };
    let mut media = Vec::new();
    for file in &done {
        let local = download(&setup.bucket, &file.obs_object, &dir).await;
        media.push(if format == "mp4" {
            assert!(decodes(&local), "{} decodes", file.obs_object);
            duration(&probe(&local))
        } else {
            let text = std::fs::read_to_string(&local).unwrap();
            assert!(text.contains("#EXT-X-ENDLIST"), "{} is closed: {text}", file.obs_object);
            let folder = file.obs_object.rsplit_once('/').map_or(String::new(), |(f, _)| format!("{f}/"));
            let (mut total, mut bytes) = (0.0, 0);
            for line in text.lines() {
                if let Some(extinf) = line.strip_prefix("#EXTINF:") {
                    total += extinf.trim_end_matches(',').parse::<f64>().unwrap();
                } else if !line.starts_with('#') && !line.is_empty() {
                    let stored = objects(&setup.bucket, &format!("{folder}{line}")).await;
                    assert_eq!(stored.len(), 1, "{line} is in S3");
                    bytes += stored[0].1;
                }
            }
            // What the completion said, also of a file a dead worker left: what is stored.
            assert_eq!(file.file_size, Some(bytes), "{}: file_size is its segments' bytes", file.obs_object);
            let said = file.record_duration.unwrap() as f64;
            assert!((said - total).abs() <= 1.0, "{}: record_duration {said} s, playlist {total} s", file.obs_object);
            total
        });
    }
    std::fs::remove_dir_all(&dir).ok();
    let last = done.last().unwrap();
    let last_span = seconds(last.start_time.as_datetime(), last.end_time.as_ref().unwrap().as_datetime());
    let probed = (media.last().unwrap() - last_span).max(0.0);
    let start = done.iter().map(|f| f.start_time.as_datetime()).min().unwrap();
    let end = done.iter().filter_map(|f| f.end_time.as_ref()).map(|t| t.as_datetime()).max().unwrap();
    let files: Vec<(f64, f64)> =
        done.iter().zip(&media).map(|(f, m)| (seconds(start, f.start_time.as_datetime()), *m)).collect();
    Coverage { span: seconds(start, end) + probed, media: media.iter().sum(), files }
}

/// Every object under `prefix` with its ETag.
pub async fn etags(bucket: &str, prefix: &str) -> std::collections::BTreeMap<String, String> {
    let listed = crate::support::s3().await.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    listed.contents().iter().map(|o| (o.key().unwrap().to_owned(), o.e_tag().unwrap().to_owned())).collect()
}

/// SIGTERM, and the worker's clean exit.
pub async fn shut_down(worker: tokio::process::Child) {
    signal(&worker, "-TERM");
    let output = worker.wait_with_output().await.unwrap();
    assert!(output.status.success(), "the worker exits cleanly on SIGTERM");
}
