//! A callback receiver: a real HTTP/1.1 server (hyper) on loopback that records every request
//! it gets, with when it arrived, and answers each with the next scripted answer, then with a
//! default one. Signatures are checked with implementations that are not ours: the
//! `standardwebhooks` crate, and for SparkRTC's `X-Rtc-Signature` Python's `hmac` module.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use standardwebhooks::{Webhook, WebhookError};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// How often [`Receiver::wait_for`] looks again.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// A receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    /// The address could not be listened on.
    #[error("listening on {addr}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// A scripted answer is not a valid HTTP status or header.
    #[error("the scripted answer {0:?} is not valid HTTP")]
    Answer(Answer),
    /// The auth_key cannot key a Standard Webhooks verifier.
    #[error("the verifier's key")]
    Key(#[source] WebhookError),
}

/// A request's SparkRTC signature did not verify.
#[derive(Debug, thiserror::Error)]
pub enum RtcSignatureError {
    /// The request lacks one of the X-Rtc-* headers, or it is not text.
    #[error("the request has no readable {0} header")]
    Missing(&'static str),
    /// python3 could not be run or failed.
    #[error("running python3's hmac: {0}")]
    Python(String),
    /// The signature is not the one the FAQ's algorithm gives.
    #[error("X-Rtc-Signature is {got}, the FAQ's algorithm gives {expected}")]
    Mismatch { got: String, expected: String },
}

/// SparkRTC's algorithm (FAQ "How Do I Authenticate a Recording Callback?") in Python's
/// standard library: key = argv[1] as UTF-8, message = stdin (rand + timestamp + body).
const PYTHON_RTC_HMAC: &str =
    "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())";

/// A receiver got fewer requests than awaited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("receiver got {got} of {wanted} requests in {within:?}")]
pub struct TooFew {
    /// Requests received.
    pub got: usize,
    /// Requests awaited.
    pub wanted: usize,
    /// How long it waited.
    pub within: Duration,
}

/// An answer the receiver gives: a status and extra header lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Header lines added to the answer: (name, value).
    pub headers: Vec<(String, String)>,
}

impl From<u16> for Answer {
    fn from(status: u16) -> Self {
        Self { status, headers: Vec::new() }
    }
}

impl Answer {
    /// The status and headers as hyper takes them.
    fn to_http(&self) -> Result<(StatusCode, HeaderMap), ReceiverError> {
        let invalid = || ReceiverError::Answer(self.clone());
        let status = StatusCode::from_u16(self.status).map_err(|_| invalid())?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str()).map_err(|_| invalid())?;
            headers.append(name, HeaderValue::try_from(value.as_str()).map_err(|_| invalid())?);
        }
        Ok((status, headers))
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When its body had arrived.
    pub at: Instant,
    /// Its method.
    pub method: Method,
    /// The request target, e.g. `/callback`.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// Whether its signature verified on arrival; `None` when the receiver was given no key.
    pub verified: Option<bool>,
}

impl Received {
    /// The body as JSON; `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// Verifies the request as a Standard Webhook signed with `auth_key`.
    pub fn verify(&self, auth_key: &str) -> Result<(), WebhookError> {
        verifier(auth_key)?.verify(&self.body, &self.headers)
    }

    /// The value of header `name`, as text.
    fn header(&self, name: &'static str) -> Result<&str, RtcSignatureError> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).ok_or(RtcSignatureError::Missing(name))
    }

    /// Verifies the request's `X-Rtc-Signature` as a SparkRTC receiver does: lowercase hex
    /// HMAC-SHA256 keyed by `auth_key` over `X-Rtc-Rand` + `X-Rtc-Timestamp` + body, computed
    /// by python3's `hmac` module.
    pub fn verify_rtc(&self, auth_key: &str) -> Result<(), RtcSignatureError> {
        use std::io::Write as _;
        let (rand, timestamp) = (self.header("x-rtc-rand")?, self.header("x-rtc-timestamp")?);
        let got = self.header("x-rtc-signature")?.to_owned();
        let python = |e: std::io::Error| RtcSignatureError::Python(e.to_string());
        let mut child = std::process::Command::new("python3")
            .args(["-c", PYTHON_RTC_HMAC, auth_key])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(python)?;
        let mut stdin = child.stdin.take().ok_or_else(|| RtcSignatureError::Python("no stdin".into()))?;
        stdin.write_all(&[rand.as_bytes(), timestamp.as_bytes(), &self.body].concat()).map_err(python)?;
        drop(stdin);
        let out = child.wait_with_output().map_err(python)?;
        if !out.status.success() {
            return Err(RtcSignatureError::Python(format!("exited with {}", out.status)));
        }
        let expected = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if got == expected {
            Ok(())
        } else {
            Err(RtcSignatureError::Mismatch { got, expected })
        }
    }
}

/// A Standard Webhooks verifier keyed as that convention expects: `whsec_` + base64 of the
/// auth_key's bytes.
fn verifier(auth_key: &str) -> Result<Webhook, WebhookError> {
    Webhook::new(&format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(auth_key)))
}

/// What the connections of one receiver share.
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<(StatusCode, HeaderMap)>>,
    default: (StatusCode, HeaderMap),
    /// The body of the default answer (JSON), empty for none.
    default_body: Bytes,
    verifier: Option<Webhook>,
}

/// Locks `mutex`; a test that panicked while holding it left whole values behind.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running receiver; it stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("received", &lock(&self.received).len()).finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver on a fresh loopback port answering `script`, then `default`.
    pub async fn start(script: Vec<Answer>, default: u16) -> Result<Self, ReceiverError> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script, default).await
    }

    /// A receiver on `addr` (to come back on a port that was down) answering `script`, then
    /// `default`.
    pub async fn start_on(addr: SocketAddr, script: Vec<Answer>, default: u16) -> Result<Self, ReceiverError> {
        Self::spawn(addr, script, (default, Bytes::new()), None).await
    }

    /// A receiver on a fresh loopback port answering every request 200 with the JSON `body`
    /// (playing a JSON service, such as the ECS agent).
    pub async fn start_answering(body: &Value) -> Result<Self, ReceiverError> {
        let body = Bytes::from(body.to_string());
        Self::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), Vec::new(), (200, body), None).await
    }

    /// A receiver on a fresh loopback port answering 200, verifying each request's signature
    /// against `auth_key` as it arrives (the Standard Webhooks timestamp is only valid for minutes).
    pub async fn start_verifying(auth_key: &str) -> Result<Self, ReceiverError> {
        let webhook = verifier(auth_key).map_err(ReceiverError::Key)?;
        Self::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), Vec::new(), (200, Bytes::new()), Some(webhook)).await
    }

    async fn spawn(
        addr: SocketAddr,
        script: Vec<Answer>,
        (default, default_body): (u16, Bytes),
        verifier: Option<Webhook>,
    ) -> Result<Self, ReceiverError> {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(script.iter().map(Answer::to_http).collect::<Result<_, _>>()?),
            default: Answer::from(default).to_http()?,
            default_body,
            verifier,
        });
        let listener = TcpListener::bind(addr).await.map_err(|source| ReceiverError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| ReceiverError::Bind { addr, source })?;
        let task = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// The callback URL of this receiver.
    pub fn url(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        lock(&self.shared.received).len()
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received_since(0)
    }

    /// The requests after the first `from`, in arrival order.
    pub fn received_since(&self, from: usize) -> Vec<Received> {
        lock(&self.shared.received).get(from..).map(<[Received]>::to_vec).unwrap_or_default()
    }

    /// Waits until it got `count` requests, for at most `within`; returns them all.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Result<Vec<Received>, TooFew> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= count {
                return Ok(got);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TooFew { got: got.len(), wanted: count, within });
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// Stops listening and drops its connections: connections are refused from now on.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections until aborted; they live in this task, so aborting it ends them too.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { return };
                let shared = shared.clone();
                let service = service_fn(move |request| answer(request, shared.clone()));
                connections.spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Records one request and answers it as scripted.
async fn answer(
    request: Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let at = Instant::now();
    let verified = shared.verifier.as_ref().map(|webhook| webhook.verify(&body, &parts.headers).is_ok());
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_owned());
    lock(&shared.received).push(Received { at, method: parts.method, path, headers: parts.headers, body, verified });
    let scripted = lock(&shared.script).pop_front();
    let ((status, mut headers), body) = match scripted {
        Some(answer) => (answer, Bytes::new()),
        None => (shared.default.clone(), shared.default_body.clone()),
    };
    if !body.is_empty() {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

// They listen on loopback, which the offline tier (`unshare -n`) does not have.
#[cfg(all(test, feature = "e2e"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_records_requests_and_answers_as_scripted_then_with_the_default() {
        let receiver = Receiver::start(
            vec![503.into(), Answer { status: 302, headers: vec![("location".into(), "http://x/".into())] }],
            200,
        )
        .await
        .expect("starts");
        let http =
            reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let mut statuses = Vec::new();
        for i in 0..3 {
            let response = http.post(receiver.url()).body(format!("{{\"n\":{i}}}")).send().await.expect("answers");
            statuses.push((response.status().as_u16(), response.headers().get("location").cloned()));
        }
        assert_eq!(statuses[0], (503, None));
        assert_eq!(statuses[1], (302, Some(HeaderValue::from_static("http://x/"))));
        assert_eq!(statuses[2], (200, None));
        let got = receiver.wait_for(3, Duration::from_secs(5)).await.expect("all three");
        assert_eq!(got.iter().map(|r| r.json()["n"].as_u64()).collect::<Vec<_>>(), [Some(0), Some(1), Some(2)]);
        assert_eq!((got[0].path.as_str(), got[0].verified), ("/callback", None));
        assert_eq!(receiver.received_since(2).len(), 1);
        assert_eq!(
            receiver.wait_for(4, Duration::from_millis(200)).await.map(|r| r.len()),
            Err(TooFew { got: 3, wanted: 4, within: Duration::from_millis(200) })
        );
    }

    #[tokio::test]
    async fn it_can_answer_every_request_with_a_json_body_and_records_the_method() {
        let receiver = Receiver::start_answering(&serde_json::json!({ "ok": true })).await.expect("starts");
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        let response = http.put(receiver.url()).body("{}").send().await.expect("answers");
        assert_eq!(response.headers().get("content-type").map(|v| v.as_bytes()), Some(&b"application/json"[..]));
        assert_eq!(response.text().await.expect("a body"), r#"{"ok":true}"#);
        assert_eq!(receiver.received()[0].method, Method::PUT);
    }

    #[tokio::test]
    async fn a_stopped_receiver_refuses_connections() {
        let receiver = Receiver::start(Vec::new(), 200).await.expect("starts");
        let addr = receiver.addr;
        receiver.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn signatures_are_checked_on_arrival_against_the_auth_key() {
        let key = "8923ab8c2dcef4538923ab8c2dcef453";
        let receiver = Receiver::start_verifying(key).await.expect("starts");
        let signer = verifier(key).expect("key");
        let body = r#"{"event_id":"e1"}"#;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
        let signature = signer.sign("e1", now as i64, body.as_bytes()).expect("signs");
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        for signature in [signature.as_str(), "v1,bm90IGl0"] {
            let request = http
                .post(receiver.url())
                .header("webhook-id", "e1")
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", signature)
                .body(body);
            assert_eq!(request.send().await.expect("answers").status(), 200);
        }
        let got = receiver.received();
        assert_eq!(got.iter().map(|r| r.verified).collect::<Vec<_>>(), [Some(true), Some(false)]);
        got[0].verify(key).expect("verifies afterwards too");
        assert!(got[1].verify(key).is_err());
    }

    #[tokio::test]
    async fn sparkrtc_signatures_are_checked_with_pythons_hmac() {
        let key = "8923ab8c2dcef4538923ab8c2dcef453";
        let receiver = Receiver::start(Vec::new(), 200).await.expect("starts");
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        // The FAQ's algorithm by OpenSSL: printf '%s' '47112039151614265330{"event_type":"CLOUD_RECORD_OVER"}'
        //   | openssl dgst -sha256 -hmac 8923ab8c2dcef4538923ab8c2dcef453
        let good = "516aa88ca05d8175212764e3b3190ba8dd321598415d4c446453fbda0db31e38";
        for signature in [good, &good.replace('5', "6")] {
            let request = http
                .post(receiver.url())
                .header("X-Rtc-Rand", "4711203915")
                .header("X-Rtc-Timestamp", "1614265330")
                .header("X-Rtc-Signature", signature)
                .body(r#"{"event_type":"CLOUD_RECORD_OVER"}"#);
            assert_eq!(request.send().await.expect("answers").status(), 200);
        }
        let got = receiver.received();
        got[0].verify_rtc(key).expect("the right signature verifies");
        assert!(matches!(got[1].verify_rtc(key), Err(RtcSignatureError::Mismatch { .. })));
        assert!(matches!(got[0].verify_rtc(&key.replace('8', "9")), Err(RtcSignatureError::Mismatch { .. })));
    }
}
