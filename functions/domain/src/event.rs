//! Recording events: what the customer's callback receives (seed 001's fields), recorded in
//! an outbox with a per-job sequence before they are queued for delivery, and each one's
//! delivery log there.

use serde::{Deserialize, Serialize};

use crate::callback::EventType;
use crate::ids::{AppId, JobId, RoomId};
use crate::rule::RecordFormat;
use crate::time::Timestamp;

/// One event of a job, as stored and as POSTed to the callback URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEvent {
    /// Unique id (the `webhook-id` of the delivery).
    pub event_id: String,
    /// Position among the job's events, from 1.
    pub sequence: u64,
    pub event_type: EventType,
    pub app_id: AppId,
    pub job_id: JobId,
    pub room_id: RoomId,
    pub stream_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_format: Option<RecordFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileFacts>,
    pub detail_message: String,
    pub create_time: Timestamp,
}

/// The file fields of a file event (seed 001); `download_url` and sizes only on completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_duration: Option<u64>,
    pub start_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    pub width: u32,
    pub height: u32,
    pub obs_location: String,
    pub obs_bucket: String,
    pub obs_object: String,
}

impl RecordEvent {
    /// The JSON body a callback receives: the event with the file fields at the top level.
    pub fn callback_body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).unwrap_or_default();
        if let Some(file) = body.as_object_mut().and_then(|o| o.remove("file")) {
            if let (Some(obj), Some(file)) = (body.as_object_mut(), file.as_object()) {
                obj.extend(file.clone());
            }
        }
        body
    }
}

/// Where an event's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    /// Not yet delivered; retries may be scheduled.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// No callback, or the event type is not subscribed.
    Skipped,
    /// Given up: a final answer or the retry schedule used up; the event is dead-lettered.
    Failed,
}

impl DeliveryStatus {
    /// Whether delivery of this event is over (later events may go).
    pub fn is_final(self) -> bool {
        self != Self::Pending
    }

    /// The stored name (`PENDING`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Skipped => "SKIPPED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Skipped, Self::Failed].into_iter().find(|s| s.as_str() == text)
    }
}

/// One POST to the callback URL, as kept in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An outbox item: the event and its delivery log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    #[serde(flatten)]
    pub event: RecordEvent,
    pub delivery_status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    /// When the next attempt is due, while one is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    /// How many of `attempts` came before the last redelivery: the retry schedule counts only
    /// the ones after.
    #[serde(skip)]
    pub retry_from: usize,
}

impl StoredEvent {
    /// The event as it stands once `update` is recorded.
    pub fn apply(&mut self, update: &DeliveryUpdate) {
        self.delivery_status = update.status;
        if update.restart_schedule {
            self.retry_from = self.attempts.len();
        }
        self.attempts.extend(update.attempt.clone());
        self.next_attempt_at = update.next_attempt_at;
    }

    /// The attempts the retry schedule counts: those since the last redelivery.
    pub fn scheduled_attempts(&self) -> &[Attempt] {
        self.attempts.get(self.retry_from..).unwrap_or_default()
    }
}

/// A change to an event's delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    pub status: DeliveryStatus,
    /// Appended to the attempts, when one was made.
    pub attempt: Option<Attempt>,
    /// Set (or cleared) as the next due time.
    pub next_attempt_at: Option<Timestamp>,
    /// The retry schedule starts afresh after the attempts made so far (a redelivery).
    pub restart_schedule: bool,
}

impl DeliveryUpdate {
    /// A redelivery: pending again, due now, with a fresh retry schedule (the attempts so far
    /// stay in the log).
    pub fn redelivery() -> Self {
        Self { status: DeliveryStatus::Pending, attempt: None, next_attempt_at: None, restart_schedule: true }
    }
}
