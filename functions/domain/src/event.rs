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
    /// The file's timeline sidecar (`<obs_object>.timeline.json`), on completion when stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_object: Option<String>,
}

/// An event as a receiver sees it, in a callback's body and in the job's events listing:
/// seed 001's fields at the top level. A `RECORD_NEW_FILE_START` carries only the fields seed
/// 001 does not keep for `RECORD_FILE_COMPLETE` (no file fields: the file is named when it
/// completes).
#[derive(Debug, Serialize)]
pub struct EventBody<'a> {
    pub event_id: &'a str,
    pub sequence: u64,
    pub event_type: EventType,
    pub app_id: &'a AppId,
    pub job_id: &'a JobId,
    pub room_id: &'a RoomId,
    pub stream_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_format: Option<RecordFormat>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub file: Option<&'a FileFacts>,
    pub detail_message: &'a str,
    pub create_time: Timestamp,
}

impl RecordEvent {
    /// The event as a receiver sees it ([`EventBody`]).
    pub fn body(&self) -> EventBody<'_> {
        let file = self.file.as_ref().filter(|_| self.event_type != EventType::RecordNewFileStart);
        EventBody {
            event_id: &self.event_id,
            sequence: self.sequence,
            event_type: self.event_type,
            app_id: &self.app_id,
            job_id: &self.job_id,
            room_id: &self.room_id,
            stream_name: &self.stream_name,
            record_format: self.record_format,
            file,
            detail_message: &self.detail_message,
            create_time: self.create_time,
        }
    }

    /// The JSON body a callback receives ([`EventBody`]).
    pub fn callback_body(&self) -> serde_json::Value {
        serde_json::to_value(self.body()).unwrap_or_default()
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

/// An outbox item: the event and its delivery log. It is listed (and serialised) as the
/// callback's body with the delivery fields beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: RecordEvent,
    pub delivery_status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    /// When the next attempt is due, while one is scheduled.
    pub next_attempt_at: Option<Timestamp>,
    /// How many of `attempts` came before the last redelivery: the retry schedule counts only
    /// the ones after.
    pub retry_from: usize,
}

/// A listed event: the body a callback gets, then its delivery.
#[derive(Serialize)]
struct ListedEvent<'a> {
    #[serde(flatten)]
    body: EventBody<'a>,
    delivery_status: DeliveryStatus,
    attempts: &'a [Attempt],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<Timestamp>,
}

impl Serialize for StoredEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ListedEvent {
            body: self.event.body(),
            delivery_status: self.delivery_status,
            attempts: &self.attempts,
            next_attempt_at: self.next_attempt_at,
        }
        .serialize(serializer)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{now, random};

    /// Every field seed 001 keeps for `RECORD_FILE_COMPLETE`.
    const COMPLETE_ONLY: [&str; 9] = [
        "download_url",
        "record_duration",
        "start_time",
        "end_time",
        "width",
        "height",
        "obs_location",
        "obs_bucket",
        "obs_object",
    ];

    fn event(event_type: EventType) -> RecordEvent {
        RecordEvent {
            event_id: "e1".into(),
            sequence: 1,
            event_type,
            app_id: AppId::generate(random()),
            job_id: JobId::generate(random()),
            room_id: RoomId::try_from("room01").unwrap(),
            stream_name: "mystream".into(),
            record_format: Some(RecordFormat::Hls),
            file: Some(FileFacts {
                download_url: Some("https://b.example/x.m3u8".into()),
                file_size: Some(26_254_952),
                record_duration: Some(65),
                start_time: now(),
                end_time: Some(now()),
                width: 1280,
                height: 720,
                obs_location: "eu-west-1".into(),
                obs_bucket: "b12".into(),
                obs_object: "x.m3u8".into(),
                timeline_object: None,
            }),
            detail_message: String::new(),
            create_time: now(),
        }
    }

    #[test]
    fn a_file_start_carries_none_of_the_fields_seed_001_keeps_for_file_complete() {
        let start = event(EventType::RecordNewFileStart).callback_body();
        let complete = event(EventType::RecordFileComplete).callback_body();
        for field in COMPLETE_ONLY {
            assert!(start.get(field).is_none(), "{field} on a start: {start}");
            assert!(complete.get(field).is_some(), "{field} missing on a completion: {complete}");
        }
        for field in ["event_type", "stream_name", "record_format", "app_id", "job_id", "room_id", "detail_message"] {
            assert!(start.get(field).is_some(), "{field} missing on a start: {start}");
        }
        assert_eq!(complete["obs_object"], "x.m3u8", "at the top level, as seed 001 shows it");
        assert!(complete.get("file").is_none());
    }

    #[test]
    fn the_events_listing_shows_each_event_as_its_callback_body_with_its_delivery() {
        for event_type in EventType::ALL {
            let stored = StoredEvent {
                event: event(event_type),
                delivery_status: DeliveryStatus::Delivered,
                attempts: vec![Attempt { at: now(), status: Some(200), latency_ms: 3, error: None }],
                next_attempt_at: None,
                retry_from: 0,
            };
            let mut listed = serde_json::to_value(&stored).unwrap();
            let listed = listed.as_object_mut().unwrap();
            assert_eq!(listed.remove("delivery_status").unwrap(), "DELIVERED");
            assert_eq!(listed.remove("attempts").unwrap()[0]["status"], 200);
            assert_eq!(serde_json::Value::Object(listed.clone()), stored.event.callback_body(), "{event_type:?}");
        }
    }
}
