//! A client of the roomrec HTTP API (the local gateway), signed in with one credential by HTTP
//! Basic auth. The fallible calls ([`Api::call`] and the typed ones: `create_app`,
//! `create_rule`, …) suit the benchmarks, which turn failures into a report; the [`Reply`]
//! shorthands (`get`, `post`, …) suit the tests: any status comes back to be asserted on, and
//! only a gateway that does not answer at all panics, failing the test.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use roomrec_domain::ids::AccountId;
use roomrec_domain::usecases::Access;
use serde_json::{json, Value};

use crate::env;

/// Every request gives up after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request to the API failed, or its answer was not the one expected.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The HTTP client could not be built.
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The gateway did not answer (refused, reset, timed out).
    #[error("{request}: no answer from the gateway")]
    Unreachable { request: String, source: reqwest::Error },
    /// The answer's body could not be read.
    #[error("{request}: reading the body")]
    Body { request: String, source: reqwest::Error },
    /// The gateway answered with another status than the call expects.
    #[error("{request} answered {status}: {body}")]
    Status { request: String, status: StatusCode, body: String },
    /// The body of a successful answer is not JSON.
    #[error("{request}: the body is not JSON: {body}")]
    NotJson { request: String, body: String, source: serde_json::Error },
    /// The body lacks a field the call returns.
    #[error("{request}: no {field} in {body}")]
    MissingField { request: String, field: &'static str, body: Value },
}

/// A credential could not be issued for a new account.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The store refused or failed.
    #[error("issuing a credential for {account}")]
    Store { account: AccountId, source: roomrec_domain::UseCaseError },
    /// The client for it could not be built.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// A response: status and JSON body (`Value::Null` when empty, a string when not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

impl Reply {
    /// The body's `error_msg`, or "" when it has none.
    pub fn error_msg(&self) -> &str {
        self.body["error_msg"].as_str().unwrap_or_default()
    }
}

/// The job collections of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    /// Jobs recording one user's stream.
    Individual,
    /// Jobs mixing a room's streams into one.
    Mix,
}

impl Jobs {
    /// The collection's path segment.
    pub fn collection(self) -> &'static str {
        match self {
            Jobs::Individual => "individual-stream-jobs",
            Jobs::Mix => "mix-stream-jobs",
        }
    }
}

/// The record-rule request body of seed 002, unchanged.
pub fn seed_rule() -> Value {
    json!({
        "obs_addr": { "bucket": "obsName", "location": "cn-north-4", "object": "Record/", "project_id": "01234567890123456789012345678901" },
        "record_formats": ["MP4"],
        "mp4_config": {}
    })
}

/// An individual-job request body: `user` in `room` recorded by `rule`, ended after
/// `max_idle_secs` of silence.
pub fn individual_job(rule: &str, room: &str, user: &str, max_idle_secs: u32) -> Value {
    json!({ "room_id": room, "user_id": user, "max_idle_time": max_idle_secs, "record_param": { "record_rule_id": rule } })
}

/// A name no other test or run uses: `prefix` and 8 random hex digits.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

/// An HTTP client signed in as one account.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    key_id: String,
    secret: String,
    /// An `X-Auth-Token` sent instead of the Basic credentials, when set.
    token: Option<String>,
}

impl Api {
    /// A client of the gateway at `base` (e.g. `http://127.0.0.1:3000`) signed in with `key_id`
    /// and `secret`. Its connections are its own: each test's runtime gets a fresh client, as
    /// a pooled connection must not outlive the runtime that opened it.
    pub fn new(
        base: impl Into<String>,
        key_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(1)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(ApiError::Client)?;
        Ok(Self { http, base: base.into(), key_id: key_id.into(), secret: secret.into(), token: None })
    }

    /// A client of the stack's gateway signed in with its development credential.
    pub fn from_env() -> Result<Self, StackError> {
        Ok(Self::new(
            env::stack_var(env::HTTP_URL)?,
            env::stack_var(env::DEV_KEY_ID)?,
            env::stack_var(env::DEV_SECRET)?,
        )?)
    }

    /// A client of the gateway at `base` signed in as `account`, with a credential issued
    /// through the real store.
    pub async fn issue(access: &Access, base: impl Into<String>, account: AccountId) -> Result<Self, IssueError> {
        let issued =
            access.issue_credential(account.clone()).await.map_err(|source| IssueError::Store { account, source })?;
        Ok(Self::new(base, issued.key_id.to_string(), issued.secret)?)
    }

    /// For tests: a new account of the stack's gateway, issued through its store. Panics
    /// outside `make test`.
    pub async fn new_account() -> Self {
        let deps = roomrec_adapters::Deps::from_env().await.expect("the stack environment configures the store");
        let base = env::stack_var(env::HTTP_URL).unwrap_or_else(|err| panic!("{err}"));
        let account = AccountId::try_from(unique("acct")).expect("valid account name");
        Self::issue(&deps.access, base, account).await.expect("issuing a credential against moto")
    }

    /// The same account against another gateway at `base` (one started with other settings).
    pub fn against(&self, base: &str) -> Self {
        Self { base: base.to_owned(), ..self.clone() }
    }

    /// The same client with other credentials.
    pub fn with_credentials(&self, key_id: &str, secret: &str) -> Self {
        Self { key_id: key_id.to_owned(), secret: secret.to_owned(), ..self.clone() }
    }

    /// The same client authenticating with `X-Auth-Token: token` instead of HTTP Basic.
    pub fn with_token(&self, token: &str) -> Self {
        Self { token: Some(token.to_owned()), ..self.clone() }
    }

    /// IAM's password-method body for `POST /v3/auth/tokens` with this client's credential, as
    /// seed 002 sends it (`domain` and `scope` included).
    pub fn token_request(&self) -> Value {
        json!({ "auth": {
            "identity": { "methods": ["password"], "password": { "user": {
                "name": self.key_id, "password": self.secret, "domain": { "name": "domainname" },
            } } },
            "scope": { "domain": { "name": "domainname" } },
        } })
    }

    /// Obtains a token for this client's credential from `POST /v3/auth/tokens`: the
    /// `X-Subject-Token` of its 201.
    pub async fn obtain_token(&self) -> Result<String, ApiError> {
        let request = || "POST /v3/auth/tokens".to_owned();
        let response = self
            .http
            .post(format!("{}/v3/auth/tokens", self.base))
            .json(&self.token_request())
            .send()
            .await
            .map_err(|source| ApiError::Unreachable { request: request(), source })?;
        let (status, token) = (response.status(), response.headers().get("x-subject-token").cloned());
        let body = response.text().await.map_err(|source| ApiError::Body { request: request(), source })?;
        match token.and_then(|t| t.to_str().ok().map(str::to_owned)) {
            Some(token) if status == StatusCode::CREATED => Ok(token),
            _ => Err(ApiError::Status { request: request(), status, body }),
        }
    }

    /// The key id and secret it signs in with.
    pub fn credential(&self) -> (&str, &str) {
        (&self.key_id, &self.secret)
    }

    /// Sends `body` (raw text, may be malformed) with `method` to `path`; returns the status and
    /// the body's text.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Body<'_>>,
    ) -> Result<(StatusCode, String), ApiError> {
        let request = || format!("{method} {path}");
        let mut builder = self.http.request(method.clone(), format!("{}{path}", self.base));
        builder = match &self.token {
            Some(token) => builder.header("x-auth-token", token),
            None => builder.basic_auth(&self.key_id, Some(&self.secret)),
        };
        builder = match body {
            Some(Body::Json(value)) => builder.json(value),
            Some(Body::Text(text)) => builder.header("content-type", "application/json").body(text),
            None => builder,
        };
        let response = builder.send().await.map_err(|source| ApiError::Unreachable { request: request(), source })?;
        let status = response.status();
        let text = response.text().await.map_err(|source| ApiError::Body { request: request(), source })?;
        Ok((status, text))
    }

    /// Sends one request; the JSON body of an answer with status `expected` (any 2xx when
    /// `None`), `Value::Null` when empty. Any other status is an error.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        expected: Option<StatusCode>,
    ) -> Result<Value, ApiError> {
        let (status, text) = self.exchange(method.clone(), path, body.map(Body::Json)).await?;
        let request = || format!("{method} {path}");
        if !expected.map_or(status.is_success(), |want| status == want) {
            return Err(ApiError::Status { request: request(), status, body: text });
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|source| ApiError::NotJson { request: request(), body: text, source })
    }

    /// Sends one request and returns its JSON body; anything but a 2xx is an error.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        self.expect(method, path, body, None).await
    }

    /// POSTs `body` to the collection at `path`, which must answer 201 Created; returns the new
    /// resource's `field`.
    async fn create(&self, path: &str, body: &Value, field: &'static str) -> Result<String, ApiError> {
        let created = self.expect(Method::POST, path, Some(body), Some(StatusCode::CREATED)).await?;
        string_field(&created, field, || format!("POST {path}"))
    }

    /// Creates an app named `name`; returns its id.
    pub async fn create_app(&self, name: &str) -> Result<String, ApiError> {
        self.create("/v2/apps", &json!({ "app_name": name }), "app_id").await
    }

    /// Creates a record rule in `app` from the request `body`; returns its id.
    pub async fn create_rule(&self, app: &str, body: &Value) -> Result<String, ApiError> {
        self.create(&format!("/v2/apps/{app}/record-rules"), body, "rule_id").await
    }

    /// Starts a job of `kind` in `app` from the request `body`; returns its id.
    pub async fn create_job(&self, app: &str, kind: Jobs, body: &Value) -> Result<String, ApiError> {
        self.create(&format!("/v2/apps/{app}/{}", kind.collection()), body, "job_id").await
    }

    /// Points the app's record callback at what `body` says (`url`, `auth_key`, …).
    pub async fn set_callback(&self, app: &str, body: &Value) -> Result<(), ApiError> {
        self.call(Method::PUT, &format!("/v2/apps/{app}/record-callback"), Some(body)).await.map(drop)
    }

    /// The job's state (`INIT`, `RUNNING`, `STOPPING`, `STOPPED`, `FAILED`).
    pub async fn job_state(&self, app: &str, kind: Jobs, job: &str) -> Result<String, ApiError> {
        let path = format!("/v2/apps/{app}/{}/{job}", kind.collection());
        string_field(&self.call(Method::GET, &path, None).await?, "state", || format!("GET {path}"))
    }

    /// Asks the job to stop, which must answer 200 (also when it is already stopping).
    pub async fn stop_job(&self, app: &str, kind: Jobs, job: &str) -> Result<(), ApiError> {
        let path = format!("/v2/apps/{app}/{}/{job}/stop", kind.collection());
        self.expect(Method::POST, &path, Some(&json!({})), Some(StatusCode::OK)).await.map(drop)
    }

    /// Mints the URL that lets one publisher in as `user` of `room` (the media server refuses
    /// any other publish), with the default video type and lifetime.
    pub async fn publish_url(&self, app: &str, room: &str, user: &str) -> Result<String, ApiError> {
        self.mint_publish_url(app, room, user, &json!({})).await
    }

    /// Mints a publish URL with the request `body` (`video_type`, `ttl_seconds`).
    pub async fn mint_publish_url(&self, app: &str, room: &str, user: &str, body: &Value) -> Result<String, ApiError> {
        self.create(&format!("/v2/apps/{app}/rooms/{room}/streams/{user}/publish-url"), body, "url").await
    }

    /// How many streams the room's roster lists.
    pub async fn roster_len(&self, app: &str, room: &str) -> Result<usize, ApiError> {
        let path = format!("/v2/apps/{app}/rooms/{room}/streams");
        let roster = self.call(Method::GET, &path, None).await?;
        match roster["streams"].as_array() {
            Some(streams) => Ok(streams.len()),
            None => Err(ApiError::MissingField { request: format!("GET {path}"), field: "streams", body: roster }),
        }
    }

    /// For tests: sends `body` (raw text, may be malformed) with `method` to `path`; any status
    /// is returned. Panics when the gateway does not answer.
    pub async fn raw(&self, method: Method, path: &str, body: Option<String>) -> Reply {
        let (status, text) = self.exchange(method, path, body.map(Body::Text)).await.expect("the gateway answers");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, body }
    }

    /// For tests: sends JSON; see [`Api::raw`].
    pub async fn send(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.raw(method, path, Some(body.to_string())).await
    }

    /// For tests: GET; see [`Api::raw`].
    pub async fn get(&self, path: &str) -> Reply {
        self.raw(Method::GET, path, None).await
    }

    /// For tests: POST with JSON; see [`Api::raw`].
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, body).await
    }

    /// For tests: PUT with JSON; see [`Api::raw`].
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, body).await
    }

    /// For tests: DELETE; see [`Api::raw`].
    pub async fn delete(&self, path: &str) -> Reply {
        self.raw(Method::DELETE, path, None).await
    }
}

/// A client could not be made from the stack's environment.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A variable is missing.
    #[error(transparent)]
    Missing(#[from] env::MissingVar),
    /// The client could not be built.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// A request body: JSON to serialize, or text sent as it is.
enum Body<'a> {
    Json(&'a Value),
    Text(String),
}

/// The string `field` of a response body.
fn string_field(body: &Value, field: &'static str, request: impl Fn() -> String) -> Result<String, ApiError> {
    match body[field].as_str() {
        Some(text) => Ok(text.to_owned()),
        None => Err(ApiError::MissingField { request: request(), field, body: body.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_collections_are_named_as_the_routes_name_them() {
        assert_eq!(Jobs::Individual.collection(), "individual-stream-jobs");
        assert_eq!(Jobs::Mix.collection(), "mix-stream-jobs");
    }

    #[test]
    fn an_error_names_the_request_and_what_came_back() {
        let err = string_field(&json!({ "app_id": 7 }), "app_id", || "POST /v2/apps".into()).expect_err("not a string");
        assert_eq!(err.to_string(), r#"POST /v2/apps: no app_id in {"app_id":7}"#);
        let reply = Reply { status: StatusCode::BAD_REQUEST, body: json!({ "error_msg": "url: private" }) };
        assert_eq!(reply.error_msg(), "url: private");
        assert_eq!(Reply { status: StatusCode::OK, body: Value::Null }.error_msg(), "");
    }

    #[test]
    fn unique_names_are_the_prefix_and_eight_hex_digits() {
        let name = unique("acct");
        assert!(
            name.starts_with("acct") && name.len() == 12 && name[4..].chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
    }
}
