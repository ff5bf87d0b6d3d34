//! The benchmarked routes, the fixture they act on, and a client of the local gateway.

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};

/// Room and user of the fixture's stream and job.
pub const ROOM: &str = "room001";
/// See [`ROOM`].
pub const USER: &str = "user001";

/// One benchmarked route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateApp,
    GetApp,
    CreateRule,
    GetRule,
    PutCallback,
    PutStream,
    CreateJob,
    GetJob,
}

impl Route {
    /// Every benchmarked route, in the order the table lists them.
    pub const ALL: [Route; 8] = [
        Route::CreateApp,
        Route::GetApp,
        Route::CreateRule,
        Route::GetRule,
        Route::PutCallback,
        Route::PutStream,
        Route::CreateJob,
        Route::GetJob,
    ];

    /// The route as template.yaml names it.
    pub fn label(self) -> &'static str {
        match self {
            Route::CreateApp => "POST /v2/apps",
            Route::GetApp => "GET /v2/apps/{app_id}",
            Route::CreateRule => "POST /v2/apps/{app_id}/record-rules",
            Route::GetRule => "GET /v2/apps/{app_id}/record-rules/{rule_id}",
            Route::PutCallback => "PUT /v2/apps/{app_id}/record-callback",
            Route::PutStream => "PUT /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}",
            Route::CreateJob => "POST /v2/apps/{app_id}/individual-stream-jobs",
            Route::GetJob => "GET /v2/apps/{app_id}/individual-stream-jobs/{job_id}",
        }
    }
}

/// The ids the routes act on, created through the gateway before anything is timed.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub key_id: String,
    pub app_id: String,
    pub rule_id: String,
    pub job_id: String,
}

/// The record-rule body of seed 002 (tests/src/lib.rs `seed_rule`).
fn rule_body() -> Value {
    json!({
        "obs_addr": { "bucket": "obsName", "location": "cn-north-4", "object": "Record/", "project_id": "01234567890123456789012345678901" },
        "record_formats": ["MP4"],
        "mp4_config": {}
    })
}

/// The individual-job body of the seeds (tests/tests/e2e/jobs.rs `seed_individual_job`).
fn job_body(rule_id: &str) -> Value {
    json!({
        "room_id": ROOM, "user_id": USER, "is_record_audio": true, "video_type": "CAMERASTREAM",
        "resolution": "1280*720", "resolution_policy": "DOWNWARD", "max_idle_time": 30,
        "record_param": { "record_rule_id": rule_id }
    })
}

/// A string field of a response body.
fn field(body: &Value, name: &str) -> Result<String> {
    body[name].as_str().map(str::to_owned).with_context(|| format!("no {name} in {body}"))
}

/// An HTTP client signed in as one account, sending over one keep-alive connection.
#[derive(Debug, Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
    key_id: String,
    secret: String,
}

impl Gateway {
    /// A client for the gateway at `base` (e.g. `http://127.0.0.1:3000`).
    pub fn new(base: String, key_id: String, secret: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base, key_id, secret })
    }

    /// The key id and secret it signs in with.
    pub fn credential(&self) -> (&str, &str) {
        (&self.key_id, &self.secret)
    }

    /// Sends one request and returns its JSON body; anything but a 2xx is an error.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
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

    /// Creates the app, rule, callback, stream and job the routes read and write.
    pub async fn fixture(&self) -> Result<Fixture> {
        let app = self.send(Method::POST, "/v2/apps", Some(&json!({ "app_name": "bench" }))).await?;
        let app_id = field(&app, "app_id")?;
        let rule = self.send(Method::POST, &format!("/v2/apps/{app_id}/record-rules"), Some(&rule_body())).await?;
        let rule_id = field(&rule, "rule_id")?;
        let mut fixture = Fixture { key_id: self.key_id.clone(), app_id, rule_id, job_id: String::new() };
        for route in [Route::PutCallback, Route::PutStream] {
            let (method, path, body) = request(route, &fixture);
            self.send(method, &path, body.as_ref()).await?;
        }
        let (method, path, body) = request(Route::CreateJob, &fixture);
        let job = self.send(method, &path, body.as_ref()).await?;
        fixture.job_id = field(&job, "job_id")?;
        Ok(fixture)
    }
}

/// Method, path and body of one request to `route`.
pub fn request(route: Route, f: &Fixture) -> (Method, String, Option<Value>) {
    let app = &f.app_id;
    match route {
        Route::CreateApp => (Method::POST, "/v2/apps".to_owned(), Some(json!({ "app_name": "bench" }))),
        Route::GetApp => (Method::GET, format!("/v2/apps/{app}"), None),
        Route::CreateRule => (Method::POST, format!("/v2/apps/{app}/record-rules"), Some(rule_body())),
        Route::GetRule => (Method::GET, format!("/v2/apps/{app}/record-rules/{}", f.rule_id), None),
        Route::PutCallback => (
            Method::PUT,
            format!("/v2/apps/{app}/record-callback"),
            Some(json!({ "url": "http://mydomain.com/callback", "auth_key": "8923ab8c2dcef4538923ab8c2dcef453" })),
        ),
        Route::PutStream => (
            Method::PUT,
            format!("/v2/apps/{app}/rooms/{ROOM}/streams/{USER}"),
            Some(json!({ "url": "rtmp://media.example.com/live/x" })),
        ),
        Route::CreateJob => {
            (Method::POST, format!("/v2/apps/{app}/individual-stream-jobs"), Some(job_body(&f.rule_id)))
        }
        Route::GetJob => (Method::GET, format!("/v2/apps/{app}/individual-stream-jobs/{}", f.job_id), None),
    }
}
