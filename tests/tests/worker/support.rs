//! What the worker tests share: a recording setup, waiting for job states, reading S3.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client as S3;
use roomrec_adapters::DynamoEventLog;
use roomrec_domain::event::RecordEvent;
use roomrec_domain::ids::JobId;
use roomrec_domain::ports::EventLog;
use roomrec_tests::{aws, stack_env, Api};
use serde_json::{json, Value};

/// An app with a rule that records into the stack's bucket under a unique prefix.
pub struct Setup {
    pub api: Api,
    pub app: String,
    pub rule: String,
    pub bucket: String,
    pub prefix: String,
}

impl Setup {
    /// A new account, app and rule with the given formats and config overrides.
    pub async fn new(formats: &[&str], hls: Value, mp4: Value) -> Self {
        let api = Api::new_account().await;
        let app = api.create_app().await;
        let bucket = stack_env("ROOMREC_RECORDINGS_BUCKET");
        let prefix = roomrec_tests::unique("rec");
        let body = json!({
            "obs_addr": { "bucket": bucket, "location": "us-east-1", "object": format!("{prefix}/") },
            "record_formats": formats,
            "hls_config": hls,
            "mp4_config": mp4,
        });
        let reply = api.post(&format!("/v2/apps/{app}/record-rules"), &body).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        let rule = reply.body["rule_id"].as_str().unwrap().to_owned();
        Self { api, app, rule, bucket, prefix }
    }

    /// Starts an individual job for `user` in `room` with `max_idle_time`.
    pub async fn start_job(&self, room: &str, user: &str, max_idle: u32) -> String {
        let body = json!({ "room_id": room, "user_id": user, "max_idle_time": max_idle, "record_param": { "record_rule_id": self.rule } });
        let reply = self.api.post(&format!("/v2/apps/{}/individual-stream-jobs", self.app), &body).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        reply.body["job_id"].as_str().unwrap().to_owned()
    }

    /// The job as the API shows it.
    pub async fn job(&self, job_id: &str) -> Value {
        self.api.get(&format!("/v2/apps/{}/individual-stream-jobs/{job_id}", self.app)).await.body
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

    /// Requests a stop.
    pub async fn stop(&self, job_id: &str) {
        let reply =
            self.api.post(&format!("/v2/apps/{}/individual-stream-jobs/{job_id}/stop", self.app), &json!({})).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
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

/// Downloads an object into `dir`, returning the local path.
pub async fn download(bucket: &str, key: &str, dir: &Path) -> std::path::PathBuf {
    let body = s3().await.get_object().bucket(bucket).key(key).send().await.unwrap().body.collect().await.unwrap();
    let path = dir.join(key.rsplit('/').next().unwrap());
    std::fs::write(&path, body.into_bytes()).unwrap();
    path
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

/// Decodes every frame of `path` (fails on corrupt data).
pub fn decodes(path: &Path) -> bool {
    std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
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
