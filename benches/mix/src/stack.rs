//! What the benchmark needs of the local stack (`stack.py run`): nginx-rtmp's URL, and an
//! app whose stream keys the publish hook accepts (`<app_id>.<room_id>.<user_id>`), with its
//! room roster to see that every participant is publishing. The HTTP calls run on a
//! current-thread runtime, so nothing of it runs while a side is measured.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};

/// Every request gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the stack's gateway, signed in with its development credential.
#[derive(Debug)]
pub struct Stack {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    key_id: String,
    secret: String,
    /// `rtmp://127.0.0.1:<port>/live`.
    pub rtmp_url: String,
}

/// A variable the stack exports.
pub fn stack_var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set: run me through `make bench-mix`"))
}

impl Stack {
    /// The stack `stack.py run` started, from its environment.
    pub fn from_env() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the HTTP client's runtime")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            runtime,
            http,
            base: stack_var("ROOMREC_HTTP_URL")?,
            key_id: stack_var("ROOMREC_DEV_KEY_ID")?,
            secret: stack_var("ROOMREC_DEV_SECRET")?,
            rtmp_url: stack_var("ROOMREC_RTMP_URL")?,
        })
    }

    /// Sends one request and returns its JSON body; anything but a 2xx is an error.
    fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        self.runtime.block_on(async {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .basic_auth(&self.key_id, Some(&self.secret));
            if let Some(body) = body {
                request = request.json(body);
            }
            let response =
                request.send().await.with_context(|| format!("{method} {path}: no answer from the gateway"))?;
            let status = response.status();
            let text = response.text().await.with_context(|| format!("{method} {path}: reading the body"))?;
            if !status.is_success() {
                bail!("{method} {path} answered {status}: {text}");
            }
            serde_json::from_str(&text).with_context(|| format!("{method} {path}: the body is not JSON: {text}"))
        })
    }

    /// Creates an app named `name`; returns its id.
    pub fn create_app(&self, name: &str) -> Result<String> {
        let body = self.send(Method::POST, "/v2/apps", Some(&json!({ "app_name": name })))?;
        body["app_id"].as_str().map(str::to_owned).with_context(|| format!("no app_id in {body}"))
    }

    /// How many streams the room's roster lists.
    pub fn roster_len(&self, app: &str, room: &str) -> Result<usize> {
        let roster = self.send(Method::GET, &format!("/v2/apps/{app}/rooms/{room}/streams"), None)?;
        Ok(roster["streams"].as_array().with_context(|| format!("no streams list in {roster}"))?.len())
    }
}
