//! Callback delivery: one queued event at a time, in each job's sequence order, signed,
//! retried by the [`webhook`](crate::webhook) policy, every attempt recorded in the outbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::event::RecordEvent;
use crate::ids::JobId;
use crate::ports::{DeliveryQueue, EventLog, Notifier, QueueError, Store, StoreError};
use crate::time::Timestamp;
use crate::webhook::{self, Outcome};

/// How long a later event waits when the one before it has no retry time yet.
pub const ORDER_WAIT: Duration = Duration::from_secs(3);

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
}

/// A change to an event's delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    pub status: DeliveryStatus,
    /// Appended to the attempts, when one was made.
    pub attempt: Option<Attempt>,
    /// Set (or cleared) as the next due time.
    pub next_attempt_at: Option<Timestamp>,
}

/// The message on the events queue: which outbox item to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    pub job_id: JobId,
    pub sequence: u64,
    #[serde(default)]
    pub event_id: Option<String>,
}

/// What became of a queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Done with it (delivered, skipped, failed for good, or nothing to do): acknowledge.
    Done(Option<DeliveryStatus>),
    /// Try again after this delay (the message's visibility was set to it): do not acknowledge.
    Later(Duration),
}

/// Delivery could not be decided; the message should come back.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the outbox or callback store failed")]
    Store(#[from] StoreError),
    #[error("the events queue failed")]
    Queue(#[from] QueueError),
}

/// The delivery use case over its ports.
#[derive(Clone)]
pub struct Deliverer {
    events: Arc<dyn EventLog>,
    store: Arc<dyn Store>,
    notifier: Arc<dyn Notifier>,
    queue: Arc<dyn DeliveryQueue>,
}

impl Deliverer {
    /// A deliverer over the outbox, the callback store, the HTTP notifier and the queues.
    pub fn new(
        events: Arc<dyn EventLog>,
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        queue: Arc<dyn DeliveryQueue>,
    ) -> Self {
        Self { events, store, notifier, queue }
    }

    /// Handles one queued message whose receipt handle (if any) is `receipt`.
    pub async fn deliver(&self, message: &EventMessage, receipt: Option<&str>) -> Result<Settled, DeliveryError> {
        let Some(stored) = self.events.get(&message.job_id, message.sequence).await? else {
            tracing::warn!(job_id = %message.job_id, sequence = message.sequence, "no such event in the outbox; dropping");
            return Ok(Settled::Done(None));
        };
        if stored.delivery_status.is_final() {
            return Ok(Settled::Done(Some(stored.delivery_status)));
        }
        if let Some(wait) = self.wait_for_predecessor(&stored).await? {
            return self.later(&stored, None, wait, receipt).await;
        }
        let event = &stored.event;
        let callback = self.store.get_callback(&event.app_id).await?;
        let Some(callback) = callback.filter(|c| c.notify_event_subscription.contains(&event.event_type)) else {
            return self.finish(&stored, DeliveryStatus::Skipped, None).await;
        };
        let body = serde_json::to_vec(&event.callback_body()).unwrap_or_default();
        let headers =
            webhook::sign(callback.auth_key.as_bytes(), &event.event_id, chrono::Utc::now().timestamp(), &body);
        let started = Instant::now();
        let result = self.notifier.post(&callback.url, &headers, body).await;
        let attempt = Attempt {
            at: Timestamp::now(),
            status: result.status(),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error: result.error(),
        };
        tracing::info!(job_id = %event.job_id, sequence = event.sequence, status = ?attempt.status, error = ?attempt.error, "callback attempt");
        match result.outcome() {
            Outcome::Delivered => self.finish(&stored, DeliveryStatus::Delivered, Some(attempt)).await,
            Outcome::Final => self.fail(&stored, attempt).await,
            Outcome::Retry => {
                let since_first = stored.attempts.first().map_or(Duration::ZERO, |a| since(a.at));
                let jitter = rand::random::<f64>() * 2.0 - 1.0;
                match webhook::next_delay(stored.attempts.len() + 1, since_first, result.retry_after(), jitter) {
                    Some(delay) => self.later(&stored, Some(attempt), delay, receipt).await,
                    None => self.fail(&stored, attempt).await,
                }
            }
        }
    }

    /// How long to wait for the previous event of the job, if it is still pending.
    async fn wait_for_predecessor(&self, stored: &StoredEvent) -> Result<Option<Duration>, DeliveryError> {
        let sequence = stored.event.sequence;
        if sequence <= 1 {
            return Ok(None);
        }
        // A missing predecessor was never recorded (its write failed): nothing to wait for.
        let Some(previous) = self.events.get(&stored.event.job_id, sequence - 1).await? else {
            return Ok(None);
        };
        if previous.delivery_status.is_final() {
            return Ok(None);
        }
        // Come back just after the previous event's next attempt, so a long backoff does not
        // turn into thousands of receives of the events behind it.
        let due = previous.next_attempt_at.map_or(Duration::ZERO, until);
        Ok(Some((due + Duration::from_secs(1)).max(ORDER_WAIT).min(webhook::MAX_DELAY)))
    }

    async fn later(
        &self,
        stored: &StoredEvent,
        attempt: Option<Attempt>,
        delay: Duration,
        receipt: Option<&str>,
    ) -> Result<Settled, DeliveryError> {
        let due = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let update =
            DeliveryUpdate { status: DeliveryStatus::Pending, attempt, next_attempt_at: Some(Timestamp::from(due)) };
        self.events.record_delivery(&stored.event.job_id, stored.event.sequence, &update).await?;
        if let Some(receipt) = receipt {
            self.queue.postpone(receipt, delay).await?;
        }
        Ok(Settled::Later(delay))
    }

    async fn fail(&self, stored: &StoredEvent, attempt: Attempt) -> Result<Settled, DeliveryError> {
        self.queue.dead_letter(&stored.event).await?;
        self.finish(stored, DeliveryStatus::Failed, Some(attempt)).await
    }

    async fn finish(
        &self,
        stored: &StoredEvent,
        status: DeliveryStatus,
        attempt: Option<Attempt>,
    ) -> Result<Settled, DeliveryError> {
        let update = DeliveryUpdate { status, attempt, next_attempt_at: None };
        self.events.record_delivery(&stored.event.job_id, stored.event.sequence, &update).await?;
        Ok(Settled::Done(Some(status)))
    }
}

fn since(at: Timestamp) -> Duration {
    (chrono::Utc::now() - at.as_datetime()).to_std().unwrap_or_default()
}

fn until(at: Timestamp) -> Duration {
    (at.as_datetime() - chrono::Utc::now()).to_std().unwrap_or_default()
}
