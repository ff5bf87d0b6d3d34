//! What the callback tests share: a real HTTP receiver on loopback that records what it gets
//! and answers as scripted, an app whose callback points at it, and events written straight
//! into the outbox and the events queue (as the worker does) for a job of that app.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use roomrec_adapters::DynamoEventLog;
use roomrec_domain::callback::EventType;
use roomrec_domain::delivery::StoredEvent;
use roomrec_domain::event::RecordEvent;
use roomrec_domain::ids::{AppId, JobId, RoomId};
use roomrec_domain::ports::EventLog;
use roomrec_domain::time::Timestamp;
use roomrec_tests::{aws, stack_env, Api};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The auth_key every test app signs with (32 printable characters).
pub const AUTH_KEY: &str = "8923ab8c2dcef4538923ab8c2dcef453";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An answer the receiver gives: a status and extra header lines.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl From<u16> for Answer {
    fn from(status: u16) -> Self {
        Self { status, headers: Vec::new() }
    }
}

/// A tiny HTTP/1.1 server: answers each request with the next scripted answer, then with
/// the default one; one request per connection.
pub struct Receiver {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver on a fresh loopback port.
    pub async fn start(script: Vec<Answer>, default: u16) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), script, default).await
    }

    /// A receiver on `addr` (to come back on a port that was down).
    pub async fn start_on(addr: SocketAddr, script: Vec<Answer>, default: u16) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let Some(request) = read_request(&mut socket).await else { continue };
                seen.lock().unwrap().push(request);
                let answer = script.lock().unwrap().pop_front().unwrap_or_else(|| default.into());
                let mut text = format!("HTTP/1.1 {} X\r\ncontent-length: 0\r\nconnection: close\r\n", answer.status);
                for (name, value) in &answer.headers {
                    text.push_str(&format!("{name}: {value}\r\n"));
                }
                text.push_str("\r\n");
                let _ = socket.write_all(text.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        Self { addr, requests, task }
    }

    /// The callback URL of this receiver.
    pub fn url(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// What it got so far.
    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until it got `count` requests, for at most `within`.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= count {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "receiver got {} of {count} requests", got.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops listening: connections are refused from now on.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let mut headers = http::HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.append(http::HeaderName::try_from(name.trim()).ok()?, http::HeaderValue::try_from(value.trim()).ok()?);
    }
    let length: usize = headers.get("content-length").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    }
    Some(Received { path, headers, body: data[head_end..head_end + length].to_vec() })
}

/// An app whose record callback points at `url`, subscribed to `events`, and a job id of it.
pub struct Setup {
    pub api: Api,
    pub app: String,
    pub job: JobId,
    pub log: DynamoEventLog,
}

impl Setup {
    /// A new account and app with its callback set through the API.
    pub async fn new(url: &str, events: &[&str]) -> Self {
        let api = Api::new_account().await;
        let app = api.create_app("rtctest").await.unwrap();
        let body = json!({ "url": url, "auth_key": AUTH_KEY, "notify_event_subscription": events });
        api.set_callback(&app, &body).await.unwrap();
        Self { api, app, job: JobId::generate(), log: event_log().await }
    }

    /// The same setup with its job saved in the jobs table (never queued, so no worker takes
    /// it), for the job events endpoints.
    pub async fn with_stored_job(mut self) -> Self {
        let request = serde_json::from_value(
            json!({ "room_id": "room1", "user_id": "user1", "record_param": { "record_rule_id": "r" } }),
        )
        .unwrap();
        let job =
            roomrec_domain::job::Job::individual(AppId::parse(&self.app).unwrap(), request, Timestamp::now()).unwrap();
        roomrec_tests::deps().await.service.store().create_job(&job).await.unwrap();
        self.job = job.job_id;
        self
    }

    /// The same setup queueing its events on `queue_url` (a test's own events queue) instead
    /// of the stack's.
    pub async fn with_queue(mut self, queue_url: &str) -> Self {
        let config = aws().await;
        self.log = DynamoEventLog::new(
            aws_sdk_dynamodb::Client::new(&config),
            aws_sdk_sqs::Client::new(&config),
            stack_env("ROOMREC_EVENTS_TABLE"),
            queue_url.to_owned(),
        );
        self
    }

    /// Allocates the job's next sequence and records an event of `event_type` in the outbox.
    pub async fn record(&self, event_type: EventType) -> RecordEvent {
        let sequence = self.log.next_sequence(&self.job).await.unwrap();
        let event = RecordEvent {
            event_id: format!("{:032x}", rand::random::<u128>()),
            sequence,
            event_type,
            app_id: AppId::parse(&self.app).unwrap(),
            job_id: self.job.clone(),
            room_id: RoomId::try_from("room1").unwrap(),
            stream_name: "room1_user1".into(),
            record_format: None,
            file: None,
            detail_message: format!("event {sequence}"),
            create_time: Timestamp::now(),
        };
        self.log.append(&event).await.unwrap();
        event
    }

    /// Queues a recorded event for delivery.
    pub async fn publish(&self, event: &RecordEvent) {
        self.log.publish(event).await.unwrap();
    }

    /// Records and queues one event.
    pub async fn emit(&self, event_type: EventType) -> RecordEvent {
        let event = self.record(event_type).await;
        self.publish(&event).await;
        event
    }

    /// The outbox item of `event` with its delivery log.
    pub async fn stored(&self, event: &RecordEvent) -> StoredEvent {
        self.log.get(&self.job, event.sequence).await.unwrap().unwrap()
    }

    /// Polls the outbox until `event`'s delivery is final, for at most `within`.
    pub async fn wait_settled(&self, event: &RecordEvent, within: Duration) -> StoredEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let stored = self.stored(event).await;
            if stored.delivery_status.is_final() {
                return stored;
            }
            assert!(tokio::time::Instant::now() < deadline, "event {} never settled: {stored:?}", event.sequence);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The outbox and events queue of the stack.
pub async fn event_log() -> DynamoEventLog {
    let config = aws().await;
    DynamoEventLog::new(
        aws_sdk_dynamodb::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
        stack_env("ROOMREC_EVENTS_TABLE"),
        stack_env("ROOMREC_EVENTS_QUEUE_URL"),
    )
}

/// Verifies a request with the `standardwebhooks` crate, an implementation that is not ours,
/// keyed as that convention expects: `whsec_` + base64 of the auth_key's bytes.
pub fn verify(request: &Received) -> Result<(), standardwebhooks::WebhookError> {
    let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(AUTH_KEY));
    standardwebhooks::Webhook::new(&secret)?.verify(&request.body, &request.headers)
}

/// Whether the events dead-letter queue holds the event with `event_id`.
pub async fn dead_lettered(event_id: &str, within: Duration) -> bool {
    dead_lettered_on(&stack_env("ROOMREC_CALLBACK_DLQ_URL"), event_id, within).await
}

/// Whether the dead-letter queue at `queue` holds the event with `event_id`.
pub async fn dead_lettered_on(queue: &str, event_id: &str, within: Duration) -> bool {
    let sqs = aws_sdk_sqs::Client::new(&aws().await);
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        if out.messages().iter().any(|m| m.body().unwrap_or_default().contains(event_id)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}
