//! The HTTP edge every API function shares: authentication (HTTP Basic or `X-Auth-Token`),
//! JSON bodies parsed with the failing field named, path and query helpers, and one mapping
//! from errors to responses.
//!
//! A handler is `route key → use case`: [`serve`] authenticates, runs it, and turns its
//! `Result` into a response, so handlers never build error bodies themselves. [`logged`]
//! wraps every request in a span with its ids and logs it once, with its status and latency.

mod error;
mod jobs;

use std::future::Future;
use std::time::Instant;

use base64::Engine;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use roomrec_domain::ids::{AccountId, RoomId};
use roomrec_domain::job::{JobKind, JobState};
use roomrec_domain::ports::{JobCursor, JobFilter, JobPage, PageRequest};
use roomrec_domain::usecases::{Access, OwnedApp};
use roomrec_domain::Invalid;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::field::Empty;
use tracing::Instrument;

pub use error::ApiError;
pub use jobs::{job_routes, JobUseCases};

/// A handler's outcome: a status and a JSON body, or an error.
pub type ApiResult = Result<Response<Body>, ApiError>;

/// The API Gateway route key of the request, e.g. `GET /v2/apps/{app_id}`.
pub fn route_key(req: &Request) -> &str {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.as_deref().unwrap_or(""),
        _ => "",
    }
}

/// API Gateway's id of the request, which it also returns as the `apigw-requestid` header.
pub fn request_id(req: &Request) -> &str {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.as_deref().unwrap_or(""),
        _ => "",
    }
}

/// Answers `req` with `handle` inside a `request` span holding its request id, method, route
/// and the app and job it names (the caller's account is added once authenticated), so every
/// line logged meanwhile carries them; then logs the request once, at info, with its status
/// and latency. An error's body gets the request id as `request_id`, the key to its causes
/// in the logs.
pub async fn logged<F, Fut>(req: Request, handle: F) -> Response<Body>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<Body>>,
{
    let started = Instant::now();
    let route = route_key(&req).split_once(' ').map_or("", |(_, route)| route);
    let span = tracing::info_span!(
        "request",
        request_id = request_id(&req),
        method = req.method().as_str(),
        route,
        account = Empty,
        app_id = Empty,
        job_id = Empty,
    );
    for name in ["app_id", "job_id"] {
        if let Some(value) = req.path_parameters_ref().and_then(|p| p.first(name)) {
            span.record(name, value);
        }
    }
    let id = request_id(&req).to_owned();
    async move {
        let response = with_request_id(handle(req).await, &id);
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(status = response.status().as_u16(), latency_ms, "request");
        response
    }
    .instrument(span)
    .await
}

/// `response` with `request_id` added to its body when it is an error (`{"error_code", …}`),
/// so a tenant can quote it and the cause be found in the logs under that id.
fn with_request_id(response: Response<Body>, request_id: &str) -> Response<Body> {
    if response.status().as_u16() < 400 || request_id.is_empty() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let mut error = match &body {
        Body::Text(text) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok(),
        _ => None,
    };
    let body = match error.as_mut().filter(|e| e.contains_key("error_code")) {
        Some(error) => {
            error.insert("request_id".into(), request_id.into());
            Body::Text(serde_json::Value::Object(std::mem::take(error)).to_string())
        }
        None => body,
    };
    Response::from_parts(parts, body)
}

/// A path parameter; the route guarantees it exists, so absence is an unknown route.
pub fn path<'r>(req: &'r Request, name: &'static str) -> Result<&'r str, ApiError> {
    req.path_parameters_ref().and_then(|p| p.first(name)).ok_or_else(ApiError::unknown_route)
}

/// A query-string parameter, if given.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// Largest request body a function reads, in bytes: every field has a documented maximum and
/// the largest valid body (a mix job with 64 background images of the longest key) is about
/// 80 KB, so this leaves room for formatting. API Gateway passes up to 10 MB and Lambda up to
/// 6 MB (<https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>); a body
/// past this bound is answered 413 before it is parsed.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// The request's body as bytes (empty when there is none).
fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    }
}

/// Whether the request declares a JSON body (`application/json`, with any parameters).
fn declares_json(req: &Request) -> bool {
    let header = req.headers().get("content-type").and_then(|h| h.to_str().ok()).unwrap_or("");
    let media_type = header.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

/// Parses the JSON body into `T`, naming the failing field on error: 413 past
/// [`MAX_BODY_BYTES`], 415 unless it is declared `application/json`.
pub fn body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large());
    }
    if !bytes.is_empty() && !declares_json(req) {
        return Err(ApiError::unsupported_media_type());
    }
    error::parse_json(bytes)
}

/// Parses the JSON body into `T`, or gives `T::default()` when there is no body.
pub fn optional_body<T: DeserializeOwned + Default>(req: &Request) -> Result<T, ApiError> {
    if body_bytes(req).iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        body(req)
    }
}

/// A JSON response with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> ApiResult {
    let text = serde_json::to_string(value).map_err(|e| ApiError::internal(&e))?;
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(text))
        .map_err(|e| ApiError::internal(&e))
}

/// An HLS playlist response (`application/vnd.apple.mpegurl`), never cached: the URLs in
/// it expire.
pub fn playlist(text: String) -> ApiResult {
    Response::builder()
        .status(200)
        .header("content-type", "application/vnd.apple.mpegurl")
        .header("cache-control", "no-store")
        .body(Body::Text(text))
        .map_err(|e| ApiError::internal(&e))
}

/// An empty 204 response.
pub fn no_content() -> ApiResult {
    Response::builder().status(204).body(Body::Empty).map_err(|e| ApiError::internal(&e))
}

/// Header carrying a token from `POST /v3/auth/tokens`, as SparkRTC's clients send it.
pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// The account whose `X-Auth-Token`, or else HTTP Basic credentials (`key_id:secret`), the
/// request carries.
pub async fn authenticate(access: &Access, req: &Request) -> Result<AccountId, ApiError> {
    let found = match req.headers().get(AUTH_TOKEN_HEADER) {
        Some(token) => access.authenticate_token(token.to_str().map_err(|_| ApiError::unauthorized())?).await,
        None => {
            let (key_id, secret) = basic_credentials(req).ok_or_else(ApiError::unauthorized)?;
            access.authenticate(&key_id, &secret).await
        }
    };
    match found {
        Ok(Some(account)) => {
            tracing::Span::current().record("account", account.as_str());
            Ok(account)
        }
        Ok(None) => Err(ApiError::unauthorized()),
        Err(err) => Err(ApiError::from(roomrec_domain::UseCaseError::from(err))),
    }
}

/// The key id and secret of the request's `Authorization: Basic` header.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let header = req.headers().get("authorization").and_then(|h| h.to_str().ok());
    let encoded = header.and_then(|h| h.strip_prefix("Basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let (key_id, secret) =
        String::from_utf8(decoded).ok()?.split_once(':').map(|(k, s)| (k.to_owned(), s.to_owned()))?;
    Some((key_id, secret))
}

/// Authenticates the request, runs `handler` for the caller's account and maps its result.
/// Errors never escape: the Lambda always answers with a JSON response.
pub async fn serve<'a, F, Fut>(access: &'a Access, req: &'a Request, handler: F) -> Response<Body>
where
    F: FnOnce(AccountId) -> Fut,
    Fut: Future<Output = ApiResult> + 'a,
{
    let result = match authenticate(access, req).await {
        Ok(account) => handler(account).await,
        Err(err) => Err(err),
    };
    result.unwrap_or_else(|err| err.into_response(route_key(req)))
}

/// [`serve`] for a route under `/v2/apps/{app_id}`: `handler` gets the caller's app, its
/// ownership proven once here.
pub async fn serve_app<'a, F, Fut>(access: &'a Access, req: &'a Request, handler: F) -> Response<Body>
where
    F: FnOnce(OwnedApp) -> Fut,
    Fut: Future<Output = ApiResult> + 'a,
{
    serve(access, req, |account| async move { handler(access.app(&account, path(req, "app_id")?).await?).await }).await
}

/// Largest page a job listing returns.
pub const MAX_PAGE: usize = 100;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 20;
/// Most jobs `offset` may skip: each skipped job is read, so deeper pages use `next_token`.
pub const MAX_OFFSET: usize = 1000;

/// The listing filter of `kind` from the query string (`room_id`, `state`).
pub fn job_filter(req: &Request, kind: JobKind) -> Result<JobFilter, ApiError> {
    let room_id = query(req, "room_id").map(RoomId::try_from).transpose()?;
    let state = query(req, "state").map(|s| JobState::parse(&s)).transpose()?;
    Ok(JobFilter { kind, room_id, state })
}

/// Which page a listing asks for (query `next_token`, `offset`, `limit`).
pub fn job_page(req: &Request) -> Result<PageRequest, ApiError> {
    let number = |name: &'static str, default: usize, max: usize| -> Result<usize, ApiError> {
        match query(req, name) {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| Invalid::new(name, format!("must be a whole number from 0 to {max}")).into()),
        }
    };
    let after = match query(req, "next_token") {
        None => None,
        Some(token) => Some(
            JobCursor::parse(&token)
                .ok_or_else(|| Invalid::new("next_token", "must be a next_token a listing returned"))?,
        ),
    };
    Ok(PageRequest { after, offset: number("offset", 0, MAX_OFFSET)?, limit: number("limit", DEFAULT_PAGE, MAX_PAGE)? })
}

/// A page of jobs, with the `next_token` that continues the listing while there are more.
pub fn job_list(page: JobPage) -> ApiResult {
    let mut body = serde_json::json!({ "jobs": page.jobs });
    if let Some(next) = page.next {
        body["next_token"] = serde_json::Value::String(next.token());
    }
    json(200, &body)
}

/// The `main` of an API function: tracing, the use cases wired from the environment once,
/// then every request to `$handle(&deps, request)`, [`logged`]. The calling crate depends on tokio,
/// lambda_http and roomrec-adapters.
#[macro_export]
macro_rules! lambda_main {
    ($handle:path) => {
        #[tokio::main]
        async fn main() -> Result<(), lambda_http::Error> {
            roomrec_adapters::init_tracing();
            let deps = roomrec_adapters::Deps::from_env().await?;
            let deps = &deps;
            let handler = move |req: lambda_http::Request| async move {
                let response = $crate::logged(req, |req| $handle(deps, req)).await;
                Ok::<_, std::convert::Infallible>(response)
            };
            lambda_http::run(lambda_http::service_fn(handler)).await
        }
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use roomrec_domain::testing::Captured;

    use super::*;

    /// The replayed create-app event with `body` and `content_type` (none when `None`).
    fn create_app(body: &str, content_type: Option<&str>) -> Request {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/apps-api/01-create-app.json")).unwrap();
        event["body"] = body.into();
        match content_type {
            Some(value) => event["headers"]["content-type"] = value.into(),
            None => drop(event["headers"].as_object_mut().unwrap().remove("content-type")),
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[derive(Debug, serde::Deserialize, Default)]
    #[allow(dead_code)]
    struct Named {
        app_name: String,
    }

    #[test]
    fn a_body_past_the_limit_answers_413_naming_the_body() {
        let name = "a".repeat(MAX_BODY_BYTES);
        let err =
            body::<Named>(&create_app(&format!(r#"{{"app_name":"{name}"}}"#), Some("application/json"))).unwrap_err();
        assert_eq!((err.status, err.code), (413, "PAYLOAD_TOO_LARGE"));
        assert!(err.message.starts_with("body:"), "{}", err.message);
        let at_limit = format!(r#"{{"app_name":"{}"}}"#, "a".repeat(MAX_BODY_BYTES - 15));
        assert_eq!(at_limit.len(), MAX_BODY_BYTES);
        assert!(body::<Named>(&create_app(&at_limit, Some("application/json"))).is_ok());
    }

    #[test]
    fn a_body_not_declared_json_answers_415_naming_the_header() {
        let json = r#"{"app_name":"a"}"#;
        for content_type in
            [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data")]
        {
            let err = body::<Named>(&create_app(json, content_type)).unwrap_err();
            assert_eq!((err.status, err.code), (415, "UNSUPPORTED_MEDIA_TYPE"), "{content_type:?}");
            assert!(err.message.starts_with("content-type:"), "{}", err.message);
        }
        for content_type in ["application/json", "Application/JSON; charset=utf-8"] {
            assert!(body::<Named>(&create_app(json, Some(content_type))).is_ok(), "{content_type}");
        }
        assert!(optional_body::<Named>(&create_app("", None)).is_ok(), "no body needs no content type");
    }

    #[tokio::test]
    async fn a_request_authenticates_with_an_x_auth_token_or_basic_and_a_bad_token_is_401() {
        use std::sync::Arc;

        use roomrec_domain::testing::{ManualClock, MemStore, SeqRandom};
        use roomrec_domain::token::{PasswordLogin, TokenKey};

        let store = Arc::new(MemStore::default());
        let access = Access::new(store.clone(), store, Arc::new(ManualClock::default()), Arc::new(SeqRandom::new(3)))
            .with_token_key(TokenKey::parse(&"k".repeat(32)));
        let issued = access.issue_credential(AccountId::try_from("acme").unwrap()).await.unwrap();
        let login = PasswordLogin { key_id: issued.key_id.to_string(), secret: issued.secret.clone() };
        let token = access.issue_token(&login).await.unwrap().token;
        let with = |name: &str, value: &str| {
            let mut req = create_app("{}", Some("application/json"));
            req.headers_mut()
                .insert(lambda_http::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
            req
        };
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", issued.key_id, issued.secret))
        );
        for req in [with("x-auth-token", &token), with("authorization", &basic)] {
            assert_eq!(authenticate(&access, &req).await.unwrap().as_str(), "acme");
        }
        let mut both = with("authorization", &basic);
        both.headers_mut().insert(AUTH_TOKEN_HEADER, "rrt1.forged".parse().unwrap());
        for req in [with("x-auth-token", &token.replace("rrt1.", "rrt2.")), both] {
            assert_eq!(
                authenticate(&access, &req).await.unwrap_err().status,
                401,
                "a present token is the one checked"
            );
        }
    }

    #[tokio::test]
    async fn an_error_body_carries_the_request_id_and_a_success_body_is_untouched() {
        let req = create_app("{}", Some("application/json"));
        let error = logged(req, |_req| async { ApiError::unauthorized().into_response("POST /v2/apps") }).await;
        let Body::Text(text) = error.body() else { panic!("a JSON error body") };
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["request_id"], "replay-01-create-app");
        assert_eq!(value["error_code"], "UNAUTHORIZED");
        let req = create_app("{}", Some("application/json"));
        let ok = logged(req, |_req| async { json(201, &serde_json::json!({ "app_id": "x" })).unwrap() }).await;
        assert_eq!(ok.body(), &Body::Text(r#"{"app_id":"x"}"#.into()));
    }

    #[tokio::test]
    async fn a_request_and_every_line_logged_while_it_is_answered_carry_its_ids() {
        let event = include_str!("../../../events/apps-api/03-get-app.json");
        let req = lambda_http::request::from_str(event).unwrap();
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(roomrec_adapters::FlatJson)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let response = logged(req, |_req| async {
            tracing::Span::current().record("account", "acme");
            tracing::warn!("inside");
            Response::builder().status(404).body(Body::Empty).unwrap()
        })
        .await;
        assert_eq!(response.status(), 404);
        let text = out.text();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            assert_eq!(line["request_id"], "replay-03-get-app", "{line}");
            assert_eq!(
                (line["account"].as_str(), line["app_id"].as_str()),
                (Some("acme"), Some("5ff9701f2346968bb306cb43"))
            );
        }
        let request = &lines[1];
        assert_eq!((request["level"].as_str(), request["message"].as_str()), (Some("INFO"), Some("request")));
        assert_eq!((request["method"].as_str(), request["route"].as_str()), (Some("GET"), Some("/v2/apps/{app_id}")));
        assert_eq!(request["status"], 404);
        assert!(request["latency_ms"].is_u64(), "{request}");
        assert!(request.get("job_id").is_none(), "the route names no job: {request}");
    }
}
