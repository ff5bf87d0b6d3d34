//! What the callback tests share: a real HTTP receiver on loopback that records what it gets
//! and answers as scripted (roomrec-testkit's, shared with the callbacks bench), an app whose
//! callback points at it, and events written straight into the outbox and the events queue
//! (as the worker does) for a job of that app.

use std::time::Duration;

use roomrec_adapters::{DynamoEventLog, OsRandom, SystemClock};
use roomrec_domain::callback::EventType;
use roomrec_domain::clock::Clock;
use roomrec_domain::event::{FileFacts, RecordEvent, StoredEvent};
use roomrec_domain::ids::{AppId, JobId, RoomId};
use roomrec_domain::ports::{EventLog, JobStore};
use roomrec_domain::rule::RecordFormat;
use roomrec_testkit::receiver::Received;
use roomrec_tests::{aws, stack_env, Api};
use serde_json::json;

/// The auth_key every test app signs with (32 printable characters).
pub const AUTH_KEY: &str = "8923ab8c2dcef4538923ab8c2dcef453";

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
        Self { api, app, job: JobId::generate(&OsRandom), log: event_log().await }
    }

    /// The same setup with its job saved in the jobs table (never queued, so no worker takes
    /// it), for the job events endpoints.
    pub async fn with_stored_job(mut self) -> Self {
        let request = serde_json::from_value(
            json!({ "room_id": "room1", "user_id": "user1", "record_param": { "record_rule_id": "r" } }),
        )
        .unwrap();
        let job = roomrec_domain::job::Job::individual(
            AppId::parse(&self.app).unwrap(),
            request,
            &OsRandom,
            SystemClock.timestamp(),
        )
        .unwrap();
        // The job is never queued, so whose quota it counts against does not matter here.
        let account = roomrec_domain::ids::AccountId::try_from("callback-tests").unwrap();
        roomrec_tests::store().await.create_job(&account, &job).await.unwrap();
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
        self.record_file(event_type, None).await
    }

    /// [`Setup::record`] with a file's facts, as the worker records file events.
    pub async fn record_file(&self, event_type: EventType, file: Option<FileFacts>) -> RecordEvent {
        let sequence = self.log.next_sequence(&self.job).await.unwrap();
        let event = RecordEvent {
            event_id: format!("{:032x}", rand::random::<u128>()),
            sequence,
            event_type,
            app_id: AppId::parse(&self.app).unwrap(),
            job_id: self.job.clone(),
            room_id: RoomId::try_from("room1").unwrap(),
            stream_name: "room1_user1".into(),
            record_format: file.as_ref().map(|_| RecordFormat::Mp4),
            file,
            detail_message: format!("event {sequence}"),
            create_time: SystemClock.timestamp(),
            usage: None,
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
/// against the test apps' auth_key.
pub fn verify(request: &Received) -> Result<(), standardwebhooks::WebhookError> {
    request.verify(AUTH_KEY)
}

/// Verifies a request's `X-Rtc-Signature` as a SparkRTC receiver does, with Python's `hmac`
/// (an implementation that is not ours), against the test apps' auth_key.
pub fn verify_rtc(request: &Received) -> Result<(), roomrec_testkit::receiver::RtcSignatureError> {
    request.verify_rtc(AUTH_KEY)
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
