//! The stack's HTTP API as the benchmark uses it: an app and rule per N, individual jobs,
//! their states, stops, and the room roster the nginx-rtmp hook fills.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};

/// Seconds of silence after which the worker would end a job on its own.
const MAX_IDLE_SECS: u32 = 30;
/// Every request gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the local gateway signed in with the stack's development credential.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key_id: String,
    secret: String,
}

/// A string field of a response body.
fn field(body: &Value, name: &str) -> Result<String> {
    body[name].as_str().map(str::to_owned).with_context(|| format!("no {name} in {body}"))
}

impl Api {
    /// A client for `ROOMREC_HTTP_URL` with `ROOMREC_DEV_KEY_ID` / `ROOMREC_DEV_SECRET`.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| format!("{name} is not set: run me through `make bench-worker`"))
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: var("ROOMREC_HTTP_URL")?,
            key_id: var("ROOMREC_DEV_KEY_ID")?,
            secret: var("ROOMREC_DEV_SECRET")?,
        })
    }

    /// Sends one request and returns its JSON body; anything but a 2xx is an error.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.key_id, Some(&self.secret));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}: no answer from the gateway"))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("{method} {path}: reading the body"))?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: the body is not JSON: {text}"))
    }

    /// Creates an app named `name`; returns its id.
    pub async fn create_app(&self, name: &str) -> Result<String> {
        field(&self.send(Method::POST, "/v2/apps", Some(&json!({ "app_name": name }))).await?, "app_id")
    }

    /// Creates a rule recording HLS (4 s slices) and MP4 into `bucket` under `object`, with
    /// every file named `<object><job_id>/<format>_<start time>`; returns its id.
    pub async fn create_rule(&self, app: &str, bucket: &str, object: &str) -> Result<String> {
        let prefix = "{job_id}/{record_format}_{file_start_time}";
        let body = json!({
            "obs_addr": { "bucket": bucket, "location": "us-east-1", "object": object },
            "record_formats": ["HLS", "MP4"],
            "hls_config": { "record_slice_duration": 4, "record_prefix": prefix },
            "mp4_config": { "record_prefix": prefix },
        });
        field(&self.send(Method::POST, &format!("/v2/apps/{app}/record-rules"), Some(&body)).await?, "rule_id")
    }

    /// Starts an individual job recording `user` in `room`; returns its id.
    pub async fn create_job(&self, app: &str, rule: &str, room: &str, user: &str) -> Result<String> {
        let body = json!({ "room_id": room, "user_id": user, "max_idle_time": MAX_IDLE_SECS, "record_param": { "record_rule_id": rule } });
        field(&self.send(Method::POST, &format!("/v2/apps/{app}/individual-stream-jobs"), Some(&body)).await?, "job_id")
    }

    /// The job's state (`INIT`, `RUNNING`, `STOPPING`, `STOPPED`, `FAILED`).
    pub async fn job_state(&self, app: &str, job: &str) -> Result<String> {
        field(&self.send(Method::GET, &format!("/v2/apps/{app}/individual-stream-jobs/{job}"), None).await?, "state")
    }

    /// The states of `jobs`, in order.
    pub async fn job_states(&self, app: &str, jobs: &[String]) -> Result<Vec<String>> {
        let mut states = Vec::with_capacity(jobs.len());
        for job in jobs {
            states.push(self.job_state(app, job).await?);
        }
        Ok(states)
    }

    /// Asks the job to stop (idempotent).
    pub async fn stop_job(&self, app: &str, job: &str) -> Result<()> {
        self.send(Method::POST, &format!("/v2/apps/{app}/individual-stream-jobs/{job}/stop"), Some(&json!({})))
            .await
            .map(drop)
    }

    /// How many streams the room's roster lists.
    pub async fn roster_len(&self, app: &str, room: &str) -> Result<usize> {
        let roster = self.send(Method::GET, &format!("/v2/apps/{app}/rooms/{room}/streams"), None).await?;
        Ok(roster["streams"].as_array().with_context(|| format!("no streams list in {roster}"))?.len())
    }
}
