//! `roomrec-gateway --template template.yaml --listen 127.0.0.1:3000`: a local API Gateway.
//! Each request becomes the API Gateway HTTP API (v2) event Lambda would receive, goes through
//! `lambda_http`'s own conversion, and reaches the function's handler, so local behaviour is
//! the deployed behaviour. Every answer carries its request id as `apigw-requestid`, as API
//! Gateway's do, and each routed request is logged once by the same code as in Lambda. Each
//! function calls AWS as its own role when `ROOMREC_ROLES_FILE` names the roles' credentials
//! (the local stack writes it), as it would on AWS.

mod routes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use aws_credential_types::Credentials;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::Body;
use roomrec_adapters::{init_tracing, Deps};
use routes::Route;
use serde_json::json;

/// The response header API Gateway names the request id in.
const REQUEST_ID_HEADER: &str = "apigw-requestid";

/// Largest request body passed to a function: what Lambda's synchronous invocation takes
/// (6 MB; API Gateway itself takes 10 MB). Past it the request never reaches the function and
/// the gateway answers 413 itself, as API Gateway does; the functions' own, smaller bound is
/// `roomrec_http_edge::MAX_BODY_BYTES`.
const MAX_EVENT_BODY_BYTES: usize = 6 * 1024 * 1024;

/// Most of a refused body read and dropped before the 413 is sent, so the client, still
/// sending, reads the answer rather than a reset; a longer one is cut off.
const MAX_DRAIN_BYTES: usize = 4 * MAX_EVENT_BODY_BYTES;

/// Longest wait for the next piece of a body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The local stack's file of each function's role credentials, by binary name.
const ROLES_FILE: &str = "ROOMREC_ROLES_FILE";

struct Gateway {
    /// Each function's dependencies, by binary name.
    deps: HashMap<String, Deps>,
    routes: Vec<Route>,
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let args: Vec<String> = std::env::args().collect();
    let template_path = arg(&args, "--template", "template.yaml");
    let listen: SocketAddr = arg(&args, "--listen", "127.0.0.1:3000").parse().context("--listen")?;
    let template = std::fs::read_to_string(&template_path).with_context(|| format!("reading {template_path}"))?;
    let routes = routes::from_template(&template)?;
    let deps = function_deps(&routes).await?;
    let gateway = Arc::new(Gateway { deps, routes });
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, routes = gateway.routes.len(), "gateway listening");
    loop {
        let (stream, peer) = listener.accept().await?;
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, std::convert::Infallible>(gateway.answer(req, peer).await) }
            });
            if let Err(err) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
}

/// Every function's [`Deps`]; with [`ROLES_FILE`] set, each calls AWS with its role's
/// credentials, otherwise all with the environment's.
async fn function_deps(routes: &[Route]) -> anyhow::Result<HashMap<String, Deps>> {
    let roles: HashMap<String, HashMap<String, String>> = match std::env::var_os(ROLES_FILE) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {ROLES_FILE} {path:?}"))?;
            serde_json::from_str(&text).with_context(|| format!("{ROLES_FILE} {path:?} is not a roles file"))?
        }
        None => HashMap::new(),
    };
    let mut deps = HashMap::new();
    for route in routes {
        if deps.contains_key(&route.binary) {
            continue;
        }
        let mut aws = aws_config::from_env();
        if !roles.is_empty() {
            let role =
                roles.get(&route.binary).with_context(|| format!("{ROLES_FILE} has no role for {}", route.binary))?;
            let var = |name: &str| role.get(name).cloned().with_context(|| format!("{}: no {name}", route.binary));
            let credentials = Credentials::new(
                var("AWS_ACCESS_KEY_ID")?,
                var("AWS_SECRET_ACCESS_KEY")?,
                Some(var("AWS_SESSION_TOKEN")?),
                None,
                "roomrec-roles-file",
            );
            aws = aws.credentials_provider(credentials);
        }
        deps.insert(route.binary.clone(), Deps::with_aws(&aws.load().await)?);
    }
    Ok(deps)
}

fn plain(status: u16, body: serde_json::Value) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// `response`, asking the client to close the connection after it: used when the request's
/// body was not read to its end, so what follows on the connection is not a request.
fn closing(mut response: hyper::Response<Full<Bytes>>) -> hyper::Response<Full<Bytes>> {
    response.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    response
}

/// A request body as read.
enum Read {
    Whole(Bytes),
    /// Past [`MAX_EVENT_BODY_BYTES`]; the rest was read and dropped (up to [`MAX_DRAIN_BYTES`]).
    TooLarge,
    /// The client stopped sending or sent a broken body.
    Broken,
}

/// Reads `body` whole, or up to [`MAX_DRAIN_BYTES`] when it is too large: a client that is
/// still sending when the 413 arrives would otherwise see its connection reset.
async fn read_body(mut body: hyper::body::Incoming) -> Read {
    let mut bytes = Vec::new();
    let mut seen = 0;
    loop {
        let frame = match tokio::time::timeout(BODY_READ_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) if seen <= MAX_EVENT_BODY_BYTES => return Read::Whole(Bytes::from(bytes)),
            Ok(None) => return Read::TooLarge,
            Ok(Some(Err(_))) | Err(_) => return Read::Broken,
        };
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen <= MAX_EVENT_BODY_BYTES {
            bytes.extend_from_slice(&data);
        } else if seen > MAX_DRAIN_BYTES {
            return Read::TooLarge;
        } else {
            bytes = Vec::new();
        }
    }
}

impl Gateway {
    async fn answer(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<Full<Bytes>> {
        let request_id = format!("{:016x}", rand::random::<u64>());
        let mut response = self.route(req, peer, &request_id).await;
        if let Ok(value) = hyper::header::HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }

    /// The routed function's answer to `req`, or API Gateway's own when no route takes it.
    async fn route(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
        peer: SocketAddr,
        request_id: &str,
    ) -> hyper::Response<Full<Bytes>> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let found =
            self.routes.iter().find_map(|r| (r.method == method).then(|| r.matches(&path)).flatten().map(|p| (r, p)));
        let Some((route, params)) = found else {
            // API Gateway's own answer for an unknown route.
            return plain(404, json!({ "message": "Not Found" }));
        };
        let (parts, body) = req.into_parts();
        let bytes = match read_body(body).await {
            Read::Whole(bytes) => bytes,
            Read::TooLarge => return closing(plain(413, json!({ "message": "Request Entity Too Large" }))),
            Read::Broken => return closing(plain(400, json!({ "message": "Bad Request" }))),
        };
        let event = api_gateway_event(&parts, &route.path, params, &bytes, peer, request_id);
        let request = match lambda_http::request::from_str(&event.to_string()) {
            Ok(request) => request,
            Err(err) => {
                tracing::error!(error = %err, "could not convert the request to a Lambda event");
                return plain(500, json!({ "message": "Internal Server Error" }));
            }
        };
        let response =
            roomrec_http_edge::logged(request, |request| (route.handler)(&self.deps[&route.binary], request)).await;
        let (parts, body) = response.into_parts();
        let bytes = match body {
            Body::Text(text) => Bytes::from(text),
            Body::Binary(bytes) => Bytes::from(bytes),
            _ => Bytes::new(),
        };
        hyper::Response::from_parts(parts, Full::new(bytes))
    }
}

/// The API Gateway HTTP API (payload 2.0) event for one request.
fn api_gateway_event(
    parts: &hyper::http::request::Parts,
    route_path: &str,
    params: HashMap<String, String>,
    body: &[u8],
    peer: SocketAddr,
    request_id: &str,
) -> serde_json::Value {
    let method = parts.method.as_str();
    let route_key = format!("{method} {route_path}");
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let joined = match headers.get(name.as_str()).and_then(|v| v.as_str()) {
            Some(previous) => format!("{previous},{value}"),
            None => value,
        };
        headers.insert(name.as_str().to_owned(), json!(joined));
    }
    let raw_query = parts.uri.query().unwrap_or_default();
    let mut query = serde_json::Map::new();
    for (key, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        let joined = match query.get(key.as_ref()).and_then(|v| v.as_str()) {
            Some(previous) => format!("{previous},{value}"),
            None => value.into_owned(),
        };
        query.insert(key.into_owned(), json!(joined));
    }
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let now = chrono::Utc::now();
    json!({
        "version": "2.0",
        "routeKey": &route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "queryStringParameters": if query.is_empty() { serde_json::Value::Null } else { query.into() },
        "pathParameters": if params.is_empty() { serde_json::Value::Null } else { json!(params) },
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route_key.clone(),
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": if body.is_empty() { serde_json::Value::Null } else { json!(body) },
        "isBase64Encoded": encoded,
    })
}
