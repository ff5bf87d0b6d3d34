//! Helpers for the end-to-end tests: the stack's addresses (from the environment `make test`
//! exports), a fresh account per test, an HTTP client that signs in as it, and AWS SDK clients
//! pointed at the same moto server the functions use.

use std::process::Stdio;

use reqwest::{Method, StatusCode};
use roomrec_adapters::Deps;
use roomrec_domain::ids::AccountId;
use serde_json::Value;

/// A variable the stack exports; the tests make no sense without it.
pub fn stack_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests through `make test`"))
}

/// The functions' dependencies, wired to the stack's moto tables and queues.
pub async fn deps() -> Deps {
    Deps::from_env().await.expect("the stack environment configures every table and queue")
}

/// The stack's DynamoDB tables as the worker sees them, for tests that write a job directly.
pub async fn store() -> roomrec_adapters::DynamoStore {
    let config = roomrec_adapters::Config::from_env().expect("the stack environment configures every table");
    let aws = aws_config::load_from_env().await;
    roomrec_adapters::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.tables)
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

/// An HTTP client signed in as one account.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    pub key_id: String,
    pub secret: String,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The body's `error_msg`, or "" when it has none.
    pub fn error_msg(&self) -> &str {
        self.body["error_msg"].as_str().unwrap_or_default()
    }
}

impl Api {
    /// A new account with its own credential, issued through the real store.
    pub async fn new_account() -> Self {
        let issued = deps()
            .await
            .access
            .issue_credential(AccountId::try_from(unique("acct")).expect("valid account name"))
            .await
            .expect("issuing a credential against moto");
        // One client per test: each #[tokio::test] has its own runtime, and a pooled
        // connection must not outlive the runtime that opened it.
        Self {
            http: reqwest::Client::new(),
            base: stack_env("ROOMREC_HTTP_URL"),
            key_id: issued.key_id.to_string(),
            secret: issued.secret,
        }
    }

    /// The same account against another gateway at `base` (one started with other settings).
    pub fn against(&self, base: &str) -> Self {
        Self { base: base.to_owned(), ..self.clone() }
    }

    /// The same client with other credentials.
    pub fn with_credentials(&self, key_id: &str, secret: &str) -> Self {
        Self { key_id: key_id.to_owned(), secret: secret.to_owned(), ..self.clone() }
    }

    /// Sends `body` (raw text, may be malformed) with `method` to `path`.
    pub async fn raw(&self, method: Method, path: &str, body: Option<String>) -> Reply {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).basic_auth(&self.key_id, Some(&self.secret));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let text = response.text().await.expect("a readable body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, body }
    }

    /// Sends JSON.
    pub async fn send(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.raw(method, path, Some(body.to_string())).await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Reply {
        self.raw(Method::GET, path, None).await
    }

    /// POST with JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, body).await
    }

    /// PUT with JSON.
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, body).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Reply {
        self.raw(Method::DELETE, path, None).await
    }

    /// Creates an app and returns its id.
    pub async fn create_app(&self) -> String {
        let reply = self.post("/v2/apps", &serde_json::json!({ "app_name": "rtctest" })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["app_id"].as_str().expect("app_id").to_owned()
    }

    /// Creates the seed's MP4 rule in `app` and returns its id.
    pub async fn create_rule(&self, app: &str) -> String {
        let reply = self.post(&format!("/v2/apps/{app}/record-rules"), &seed_rule()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["rule_id"].as_str().expect("rule_id").to_owned()
    }
}

/// The record-rule request body of seed 002, unchanged.
pub fn seed_rule() -> Value {
    serde_json::json!({
        "obs_addr": { "bucket": "obsName", "location": "cn-north-4", "object": "Record/", "project_id": "01234567890123456789012345678901" },
        "record_formats": ["MP4"],
        "mp4_config": {}
    })
}

/// AWS SDK config pointed at the stack's moto server.
pub async fn aws() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// Publishes a 640x360 25 fps test picture with a 440 Hz tone to nginx-rtmp as `key`.
pub fn publish(key: &str, seconds: u32) -> tokio::process::Child {
    publish_with(key, seconds, "640x360", &[])
}

/// Publishes a 320x180 15 fps picture of one colour (`0xRRGGBB`) with a `hz` tone as `key`.
pub fn publish_colour(key: &str, seconds: u32, colour: &str, hz: u32) -> tokio::process::Child {
    let url = format!("{}/{key}", stack_env("ROOMREC_RTMP_URL"));
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", &format!("color=c={colour}:size=320x180:rate=15"), "-f", "lavfi"])
        .args(["-i", &format!("sine=frequency={hz}:sample_rate=48000"), "-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "15"])
        .args(["-c:a", "aac", "-f", "flv", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed by make test")
}

/// Publishes a test picture of `size` with extra x264 arguments (e.g. a high bitrate).
pub fn publish_with(key: &str, seconds: u32, size: &str, x264: &[&str]) -> tokio::process::Child {
    let url = format!("{}/{key}", stack_env("ROOMREC_RTMP_URL"));
    tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(x264)
        .args(["-c:a", "aac", "-f", "flv", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed by make test")
}
