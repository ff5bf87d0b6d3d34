//! Cold start of one function binary: a minimal Lambda Runtime API on 127.0.0.1 hands a fresh
//! process one API Gateway v2 event and records when the answer comes back. Endpoints and
//! headers are the ones lambda_runtime 1.x uses (its requests.rs and constants.rs).

use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
/// How long one process may take to answer before the run fails.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the emulated Runtime API saw, in order.
#[derive(Debug)]
enum Seen {
    /// The runtime asked for an event.
    Next,
    /// The function answered the event with this body.
    Response(String),
    /// The runtime reported an error (init or invocation) on `path`, or called an unknown one.
    Failure { path: String, body: String },
}

/// One process's timings, from just before it was spawned.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Until its first `GET …/invocation/next` (its initialisation).
    pub first_next: Duration,
    /// Until it posted the event's response.
    pub answered: Duration,
}

/// Starts `binary` `runs` times, each a fresh process with the stack's environment, feeds it
/// `event` and kills it after its answer; the answer must satisfy `check`.
pub async fn measure(binary: &Path, event: &str, runs: usize, check: impl Fn(&str) -> Result<()>) -> Result<Vec<Run>> {
    let mut timings = Vec::with_capacity(runs);
    for i in 1..=runs {
        let (run, body) = one_run(binary, event).await.with_context(|| format!("cold start {i} of {runs}"))?;
        check(&body).with_context(|| format!("cold start {i} of {runs}: unexpected answer {body}"))?;
        timings.push(run);
    }
    Ok(timings)
}

/// One fresh process: its timings and its response body.
async fn one_run(binary: &Path, event: &str) -> Result<(Run, String)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the Runtime API emulator")?;
    let addr = listener.local_addr()?;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(listener, Bytes::from(event.to_owned()), seen_tx));

    let start = Instant::now();
    let (mut child, log) = spawn(binary, &addr.to_string())?;

    let mut first_next = None;
    let outcome = tokio::time::timeout(ANSWER_TIMEOUT, async {
        loop {
            tokio::select! {
                biased; // a reported error outranks the exit that follows it
                event = seen.recv() => match event {
                    Some((at, Seen::Next)) => { first_next.get_or_insert(at - start); }
                    Some((at, Seen::Response(body))) => return Ok((at - start, body)),
                    Some((_, Seen::Failure { path, body })) => bail!("the runtime called {path}: {body}"),
                    None => bail!("the Runtime API emulator stopped"),
                },
                status = child.wait() => bail!("the process exited ({}) before answering", status?),
            }
        }
    })
    .await;

    let _ = child.kill().await;
    server.abort();
    let log = log.await.unwrap_or_default();
    let (answered, body) = match outcome {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => return Err(err.context(format!("its stderr:\n{log}"))),
        Err(_) => bail!("no answer within {ANSWER_TIMEOUT:?}; its stderr:\n{log}"),
    };
    let first_next = first_next.context("answered without asking for an event")?;
    Ok((Run { first_next, answered }, body))
}

/// Starts `binary` against the Runtime API at `runtime_api`, with the stack's environment;
/// returns the process and a task that collects its stderr.
fn spawn(binary: &Path, runtime_api: &str) -> Result<(Child, JoinHandle<String>)> {
    let mut child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "apps-api")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut stderr = child.stderr.take().context("the child's stderr")?;
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    Ok((child, log))
}

/// Serves the Runtime API until aborted; the first `next` gets `event`, later ones wait.
async fn serve(listener: TcpListener, event: Bytes, seen: mpsc::UnboundedSender<(Instant, Seen)>) {
    let handed_out = Arc::new(AtomicBool::new(false));
    // Dropped with this task on abort, which ends every connection still open.
    let mut connections = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let (event, seen, handed_out) = (event.clone(), seen.clone(), handed_out.clone());
        let service = service_fn(move |req| answer(req, event.clone(), seen.clone(), handed_out.clone()));
        connections.spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    event: Bytes,
    seen: mpsc::UnboundedSender<(Instant, Seen)>,
    handed_out: Arc<AtomicBool>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let at = Instant::now();
    let body = String::from_utf8_lossy(&body).into_owned();
    if method == Method::GET && path == NEXT {
        let _ = seen.send((at, Seen::Next));
        if handed_out.swap(true, Ordering::SeqCst) {
            std::future::pending::<()>().await; // one event per process; it is killed meanwhile
        }
        return Ok(next_event(event));
    }
    let invocation = path.strip_prefix(INVOCATION).and_then(|rest| rest.split_once('/'));
    let (status, report) = match invocation {
        Some((id, "response")) if method == Method::POST && id == REQUEST_ID => {
            (StatusCode::ACCEPTED, Seen::Response(body))
        }
        Some((_, "error")) => (StatusCode::ACCEPTED, Seen::Failure { path, body }),
        _ if path == INIT_ERROR => (StatusCode::ACCEPTED, Seen::Failure { path, body }),
        _ => {
            (StatusCode::NOT_FOUND, Seen::Failure { path: format!("{method} {path} (unknown to the emulator)"), body })
        }
    };
    let _ = seen.send((at, report));
    Ok(reply(status, Response::builder(), Bytes::from_static(b"{\"status\":\"OK\"}")))
}

/// The `next` answer: the event and the invocation headers lambda_runtime reads.
fn next_event(event: Bytes) -> Response<Full<Bytes>> {
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + Duration::from_secs(30);
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let builder = Response::builder()
        .header("lambda-runtime-aws-request-id", REQUEST_ID)
        .header("lambda-runtime-deadline-ms", deadline.as_millis().to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            format!("arn:aws:lambda:{region}:123456789012:function:apps-api"),
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        );
    reply(StatusCode::OK, builder, event)
}

fn reply(status: StatusCode, builder: hyper::http::response::Builder, body: Bytes) -> Response<Full<Bytes>> {
    let built = builder.status(status).header("content-type", "application/json").body(Full::new(body));
    // Only a malformed header could fail, and every header here is a constant or a number.
    built.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
