//! What the worker tests share: a recording setup, waiting for job states, reading S3.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client as S3;
use roomrec_adapters::DynamoEventLog;
use roomrec_domain::callback::EventType;
use roomrec_domain::event::RecordEvent;
use roomrec_domain::ids::JobId;
use roomrec_domain::ports::EventLog;
use roomrec_testkit::api::{individual_job, Jobs};
use roomrec_tests::{aws, stack_env, Api};
use serde_json::{json, Value};

/// An app with a rule that records into the stack's bucket under a unique prefix.
pub struct Setup {
    pub api: Api,
    pub app: String,
    pub rule: String,
    pub bucket: String,
    /// Where the rule's files are: `{app_id}/` and `obs_addr.object` in the stack's bucket
    /// (keys are confined under the app), `obs_addr.object` in a bucket of the tenant's role.
    pub prefix: String,
    /// The jobs' collection.
    pub jobs: Jobs,
}

impl Setup {
    /// A new account, app and rule with the given formats and config overrides.
    pub async fn new(formats: &[&str], hls: Value, mp4: Value) -> Self {
        let bucket = stack_env("ROOMREC_RECORDINGS_BUCKET");
        let object = format!("{}/", roomrec_tests::unique("rec"));
        let obs_addr = json!({ "bucket": bucket, "location": "us-east-1", "object": object });
        Self::for_account(Api::new_account().await, formats, obs_addr, hls, mp4).await
    }

    /// A new app of `api`'s account with a rule storing as `obs_addr` says.
    pub async fn for_account(api: Api, formats: &[&str], obs_addr: Value, hls: Value, mp4: Value) -> Self {
        let app = api.create_app("rtctest").await.unwrap();
        let body = json!({ "obs_addr": obs_addr, "record_formats": formats, "hls_config": hls, "mp4_config": mp4 });
        let rule = api.create_rule(&app, &body).await.unwrap();
        let bucket = obs_addr["bucket"].as_str().unwrap().to_owned();
        let object = obs_addr["object"].as_str().unwrap_or_default().trim_end_matches('/');
        let prefix = match obs_addr.get("role_arn") {
            Some(_) => object.to_owned(),
            None => format!("{app}/{object}"),
        };
        Self { api, app, rule, bucket, prefix, jobs: Jobs::Individual }
    }

    /// As [`Setup::new`], for mix jobs.
    pub async fn for_mix(formats: &[&str], hls: Value, mp4: Value) -> Self {
        Self { jobs: Jobs::Mix, ..Self::new(formats, hls, mp4).await }
    }

    /// Starts a mix job with `mix_param` (the rule is added).
    pub async fn start_mix(&self, mix_param: Value) -> String {
        let body = json!({ "mix_param": mix_param, "record_param": { "record_rule_id": self.rule } });
        self.api.create_job(&self.app, Jobs::Mix, &body).await.unwrap()
    }

    /// A minted URL that publishes `user`'s camera into `room` of the app.
    pub async fn publish_url(&self, room: &str, user: &str) -> String {
        self.api.publish_url(&self.app, room, user).await.unwrap()
    }

    /// Starts an individual job for `user` in `room` with `max_idle_time`.
    pub async fn start_job(&self, room: &str, user: &str, max_idle: u32) -> String {
        let body = individual_job(&self.rule, room, user, max_idle);
        self.api.create_job(&self.app, Jobs::Individual, &body).await.unwrap()
    }

    /// The job as the API shows it.
    pub async fn job(&self, job_id: &str) -> Value {
        self.api.get(&format!("/v2/apps/{}/{}/{job_id}", self.app, self.jobs.collection())).await.body
    }

    /// Polls until the job is in `state`, for at most `within`.
    pub async fn wait_for_state(&self, job_id: &str, state: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let job = self.job(job_id).await;
            if job["state"] == state {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job never reached {state}: {job}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls until the roster of `room` lists exactly `users`, in join order.
    pub async fn wait_for_roster(&self, room: &str, users: &[&str]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let roster = self.api.get(&format!("/v2/apps/{}/rooms/{room}/streams", self.app)).await.body;
            let listed: Vec<&str> =
                roster["streams"].as_array().into_iter().flatten().filter_map(|s| s["user_id"].as_str()).collect();
            if listed == users {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the roster never listed {users:?}: {roster}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Requests a stop.
    pub async fn stop(&self, job_id: &str) {
        self.api.stop_job(&self.app, self.jobs, job_id).await.unwrap();
    }
}

/// An S3 client on the stack's moto, path-style.
pub async fn s3() -> S3 {
    let config = aws().await;
    S3::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build())
}

/// Keys and sizes of every object under `prefix`.
pub async fn objects(bucket: &str, prefix: &str) -> Vec<(String, u64)> {
    let out = s3().await.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    out.contents().iter().map(|o| (o.key().unwrap().to_owned(), o.size().unwrap_or_default() as u64)).collect()
}

/// The CRC32 checksum S3 keeps for the object at `key` (base64, as S3 gives it), if any.
pub async fn stored_crc32(bucket: &str, key: &str) -> Option<String> {
    let head = s3().await.head_object().bucket(bucket).key(key).checksum_mode(ChecksumMode::Enabled).send().await;
    head.unwrap_or_else(|err| panic!("{key} is not in S3: {err:?}")).checksum_crc32
}

/// The CRC32 checksum of `bytes`, as S3 writes it.
pub fn crc32(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(bytes).to_be_bytes())
}

/// Downloads an object into `dir`, returning the local path.
pub async fn download(bucket: &str, key: &str, dir: &Path) -> std::path::PathBuf {
    let body = s3().await.get_object().bucket(bucket).key(key).send().await.unwrap().body.collect().await.unwrap();
    let path = dir.join(key.rsplit('/').next().unwrap());
    std::fs::write(&path, body.into_bytes()).unwrap();
    path
}

/// The JSON object at `key`.
pub async fn json_object(bucket: &str, key: &str) -> Value {
    let object = s3().await.get_object().bucket(bucket).key(key).send().await;
    let body = object.unwrap_or_else(|err| panic!("{key} is not in S3: {err:?}")).body.collect().await.unwrap();
    serde_json::from_slice(&body.into_bytes()).unwrap_or_else(|err| panic!("{key} is not JSON: {err}"))
}

/// ffprobe's view of a media file: format duration and stream codecs/sizes.
pub fn probe(path: &Path) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type,codec_name,width,height",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe failed on {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Seconds of a probed file.
pub fn duration(probe: &Value) -> f64 {
    probe["format"]["duration"].as_str().unwrap().parse().unwrap()
}

/// Decodes every frame of `path` (fails on corrupt data). An HLS segment is read as MPEG-TS,
/// as a player reads it from the playlist: ffmpeg's format probe takes a segment of a few
/// packets (the last one, when a stop follows a keyframe closely) for MPEG audio.
pub fn decodes(path: &Path) -> bool {
    let container: &[&str] = if path.extension().is_some_and(|e| e == "ts") { &["-f", "mpegts"] } else { &[] };
    std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror"])
        .args(container)
        .arg("-i")
        .arg(path)
        .args(["-f", "null", "-"])
        .status()
        .unwrap()
        .success()
}

/// The job's events from the outbox, in sequence order.
pub async fn events(job_id: &str) -> Vec<RecordEvent> {
    let config = aws().await;
    let log = DynamoEventLog::new(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
        stack_env("ROOMREC_EVENTS_TABLE"),
        stack_env("ROOMREC_EVENTS_QUEUE_URL"),
    );
    log.list(&JobId::parse(job_id).unwrap()).await.unwrap()
}

/// The job's events once at least `count` of `kind` were recorded, waiting up to `within`.
#[allow(dead_code)] // the takeover tests use it
pub async fn wait_for_events(job_id: &str, kind: EventType, count: usize, within: Duration) -> Vec<RecordEvent> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let events = events(job_id).await;
        if events.iter().filter(|e| e.event_type == kind).count() >= count {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "never saw {count} {kind:?}: {events:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The events of a job that ended: its state is written first, its last event just after.
pub async fn final_events(job_id: &str) -> Vec<RecordEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let events = events(job_id).await;
        let last = events.last().map(|e| e.event_type);
        if matches!(last, Some(EventType::CloudRecordOver | EventType::CloudRecordFailed)) {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job's last event never came: {events:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The frames of the video in `path`, one per `every` seconds, as `width`×`height` RGB.
pub fn frames(path: &Path, every: f64, width: u32, height: u32) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vf", &format!("fps=1/{every}"), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact((width * height * 3) as usize).map(<[u8]>::to_vec).collect()
}

/// The RGB pixel at (`x`, `y`) of a `width`-wide frame.
pub fn pixel(frame: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
    let at = ((y * width + x) * 3) as usize;
    [frame[at], frame[at + 1], frame[at + 2]]
}

/// Whether two colours are the same within video coding error.
pub fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 40)
}

/// The audio of `path` as 48 kHz mono samples.
pub fn samples(path: &Path) -> Vec<f64> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "1", "-ar", "48000", "-f", "s16le", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect()
}

/// The amplitude of the `hz` tone in `samples` (48 kHz), by the Goertzel algorithm.
pub fn tone(samples: &[f64], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 48_000.0;
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in samples {
        let s = x + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    2.0 * power.sqrt() / samples.len() as f64
}
