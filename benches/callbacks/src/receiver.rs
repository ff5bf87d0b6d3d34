//! The callback receiver: a minimal hyper HTTP/1.1 server on loopback that answers every
//! request 200, notes when each arrived, and checks its signature with the `standardwebhooks`
//! crate (an implementation that is not ours).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub at: Instant,
    pub event_id: String,
    pub job_id: String,
    pub sequence: u64,
    pub verified: bool,
}

/// What the receiver got so far, in arrival order.
#[derive(Debug, Default)]
struct Seen {
    receipts: Vec<Receipt>,
    /// Requests whose body was not an event (no `event_id`, `job_id`, `sequence`).
    unreadable: usize,
}

/// A running receiver.
#[derive(Debug)]
pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on a fresh loopback port; signatures are checked against `auth_key`.
    pub async fn start(auth_key: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the receiver")?;
        let addr = listener.local_addr()?;
        // Standard Webhooks keys are `whsec_` + base64 of the secret's bytes.
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(auth_key));
        let webhook = Arc::new(standardwebhooks::Webhook::new(&secret).context("the verifier's key")?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, webhook) = (shared.clone(), webhook.clone());
                let service = service_fn(move |req| answer(req, seen.clone(), webhook.clone()));
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Ok(Self { addr, seen, task })
    }

    /// The callback URL of this receiver.
    pub fn url(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.lock().receipts.len()
    }

    /// Every receipt so far, in arrival order, and the number of unreadable requests.
    pub fn receipts(&self) -> (Vec<Receipt>, usize) {
        let seen = self.lock();
        (seen.receipts.clone(), seen.unreadable)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Seen>>,
    webhook: Arc<standardwebhooks::Webhook>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let at = Instant::now();
    let verified = webhook.verify(&body, &parts.headers).is_ok();
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    let fields = (event["event_id"].as_str(), event["job_id"].as_str(), event["sequence"].as_u64());
    let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match fields {
        (Some(event_id), Some(job_id), Some(sequence)) => {
            seen.receipts.push(Receipt {
                at,
                event_id: event_id.to_owned(),
                job_id: job_id.to_owned(),
                sequence,
                verified,
            });
        }
        _ => seen.unreadable += 1,
    }
    Ok(Response::new(Full::new(Bytes::new())))
}
