//! Callback delivery: a batch of queued events, each job's in sequence order and different jobs
//! concurrently, signed, retried by the [`webhook`](crate::webhook) policy, every attempt
//! recorded in the outbox.

#[cfg(test)]
mod faults;
mod lanes;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::callback::RecordCallback;
use crate::clock::{Clock, Random};
use crate::download::EventDownloads;
use crate::error::{QueueError, StoreError};
use crate::event::{Attempt, DeliveryStatus, DeliveryUpdate, StoredEvent};
use crate::ids::{AppId, JobId};
use crate::metric::{Metric, Metrics};
use crate::ports::{CallbackStore, DeliveryQueue, EventLog, Notifier};
use crate::time::Timestamp;
use crate::webhook::{self, Outcome, RetrySchedule};
use lanes::JobLanes;

/// How long a later event waits when the one before it has no retry time yet.
pub const ORDER_WAIT: Duration = Duration::from_secs(3);

/// How long a job's first event in a batch may wait in process for the event before it, when
/// that one is pending but not in a retry backoff (another batch is delivering it, or its
/// message is about to arrive), before it is postponed by [`ORDER_WAIT`] instead.
pub const IN_PROCESS_ORDER_WAIT: Duration = Duration::from_secs(1);

/// An event older than this that no deliverer has ever handled (no attempt, no due time) is
/// taken to have lost its queue message (the worker recorded it but could not queue it, say):
/// the next event of its job queues it again, so it cannot hold the job's later events up
/// forever. Scaled with the retry schedule.
pub const ORPHAN_AFTER: Duration = Duration::from_secs(60);

/// A message back this little before its event's retry is due counts as on time: SQS's clock
/// is not ours.
const DUE_SLACK: Duration = Duration::from_secs(1);

/// How often that in-process wait looks at the outbox again.
const IN_PROCESS_ORDER_POLL: Duration = Duration::from_millis(100);

/// The message on the events queue: which outbox item to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    pub job_id: JobId,
    pub sequence: u64,
    #[serde(default)]
    pub event_id: Option<String>,
}

/// A received events-queue message: the outbox reference and the receipt handle it can be
/// postponed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub message: EventMessage,
    pub receipt: Option<String>,
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
    /// Reading the job's events failed for an earlier message of the batch (logged with it).
    #[error("the job's events could not be read")]
    JobUnread,
}

/// The delivery use case over its ports.
#[derive(Clone)]
pub struct Deliverer {
    events: Arc<dyn EventLog>,
    callbacks: Arc<dyn CallbackStore>,
    notifier: Arc<dyn Notifier>,
    queue: Arc<dyn DeliveryQueue>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    metrics: Arc<dyn Metrics>,
    schedule: RetrySchedule,
    lanes: Arc<JobLanes>,
    /// Presigns a completed file's `download_url` at each attempt, when set.
    downloads: Option<EventDownloads>,
}

/// The ports a [`Deliverer`] works over.
pub struct DelivererPorts {
    pub events: Arc<dyn EventLog>,
    pub callbacks: Arc<dyn CallbackStore>,
    pub notifier: Arc<dyn Notifier>,
    pub queue: Arc<dyn DeliveryQueue>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    /// Every attempt's outcome and latency, and every event given up on.
    pub metrics: Arc<dyn Metrics>,
}

/// What one step recorded for an event, and what to tell the queue.
type Step = Result<(DeliveryUpdate, Settled), DeliveryError>;

impl Deliverer {
    /// A deliverer over the outbox, the callbacks, the HTTP notifier and the queues.
    pub fn new(ports: DelivererPorts) -> Self {
        let DelivererPorts { events, callbacks, notifier, queue, clock, random, metrics } = ports;
        Self {
            events,
            callbacks,
            notifier,
            queue,
            clock,
            random,
            metrics,
            schedule: RetrySchedule::STANDARD,
            lanes: Arc::default(),
            downloads: None,
        }
    }

    /// The same deliverer sending each completed file's `download_url` presigned by
    /// `downloads` (else as the worker recorded it).
    pub fn with_downloads(mut self, downloads: EventDownloads) -> Self {
        self.downloads = Some(downloads);
        self
    }

    /// The same deliverer retrying on `schedule` (tests compress it).
    pub fn with_schedule(mut self, schedule: RetrySchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Handles one queued message whose receipt handle (if any) is `receipt`.
    pub async fn deliver(&self, message: &EventMessage, receipt: Option<&str>) -> Result<Settled, DeliveryError> {
        let queued = Queued { message: message.clone(), receipt: receipt.map(str::to_owned) };
        let mut results = self.deliver_batch(std::slice::from_ref(&queued)).await;
        results.pop().unwrap_or(Ok(Settled::Done(None)))
    }

    /// Handles a batch of queued messages: each job's one after the other in sequence order
    /// (and one batch at a time per job in this process), different jobs concurrently. Returns
    /// one result per message, in the batch's order.
    pub async fn deliver_batch(&self, batch: &[Queued]) -> Vec<Result<Settled, DeliveryError>> {
        let mut jobs: BTreeMap<&JobId, Vec<usize>> = BTreeMap::new();
        for (index, queued) in batch.iter().enumerate() {
            jobs.entry(&queued.message.job_id).or_default().push(index);
        }
        let callbacks = CallbackCache::default();
        let runs = jobs.into_iter().map(|(job, indices)| self.deliver_job(job, indices, batch, &callbacks));
        let mut results: Vec<_> = futures::future::join_all(runs).await.into_iter().flatten().collect();
        results.sort_by_key(|(index, _)| *index);
        results.into_iter().map(|(_, result)| result).collect()
    }

    /// Delivers the messages of one job (`indices` into `batch`) in sequence order, reading
    /// the job's events once for all of them.
    async fn deliver_job(
        &self,
        job: &JobId,
        mut indices: Vec<usize>,
        batch: &[Queued],
        callbacks: &CallbackCache,
    ) -> Vec<(usize, Result<Settled, DeliveryError>)> {
        indices.sort_by_key(|&index| batch[index].message.sequence);
        let sequence = |index: usize| batch[index].message.sequence;
        let Some(first) = indices.first().map(|&index| sequence(index)) else { return Vec::new() };
        // The batch's events and the one before each: that is all the order check needs. A batch
        // may hold 1 and 5 of a job; without 4, event 5 would look like the first after a gap.
        let mut wanted: Vec<u64> = indices.iter().map(|&index| sequence(index)).collect();
        let previous: Vec<u64> = wanted.iter().map(|s| s.saturating_sub(1)).filter(|&previous| previous >= 1).collect();
        wanted.extend(previous);
        wanted.sort_unstable();
        wanted.dedup();
        let deadline = tokio::time::Instant::now() + IN_PROCESS_ORDER_WAIT;
        let (_lane, mut known) = loop {
            let lane = self.lanes.enter(job).await;
            let known: BTreeMap<u64, StoredEvent> = match self.events.get_many(job, &wanted).await {
                Ok(events) => events.into_iter().map(|stored| (stored.event.sequence, stored)).collect(),
                Err(err) => {
                    let mut err = Some(DeliveryError::Store(err));
                    let mut failed = |i| (i, Err(err.take().unwrap_or(DeliveryError::JobUnread)));
                    return indices.into_iter().map(&mut failed).collect();
                }
            };
            let previous = first.checked_sub(1).and_then(|p| known.get(&p));
            if !in_flight(first, previous, self.clock.now()) || tokio::time::Instant::now() >= deadline {
                break (lane, known);
            }
            // Let the batch that holds the previous event have the lane, then look again.
            drop(lane);
            tokio::time::sleep(IN_PROCESS_ORDER_POLL).await;
        };
        let mut seen = HashSet::new();
        let mut results = Vec::with_capacity(indices.len());
        for index in indices {
            let queued = &batch[index];
            let sequence = queued.message.sequence;
            let result = if seen.insert(sequence) {
                self.settle(job, sequence, &mut known, queued.receipt.as_deref(), callbacks).await
            } else {
                // A second copy of a message: the first one settles or postpones the event.
                Ok(Settled::Done(known.get(&sequence).map(|stored| stored.delivery_status)))
            };
            results.push((index, result));
        }
        results
    }

    /// Settles event `sequence` of `known` (the job's events as this batch last saw them) and
    /// notes the outcome there for the events after it.
    async fn settle(
        &self,
        job: &JobId,
        sequence: u64,
        known: &mut BTreeMap<u64, StoredEvent>,
        receipt: Option<&str>,
        callbacks: &CallbackCache,
    ) -> Result<Settled, DeliveryError> {
        let orphan_after = ORPHAN_AFTER.mul_f64(self.schedule.scale());
        let orphan =
            sequence.checked_sub(1).and_then(|p| known.get(&p)).filter(|p| orphaned(p, orphan_after, self.clock.now()));
        if let Some(mut orphan) = orphan.cloned() {
            if let Some(update) = self.requeue(&orphan).await? {
                orphan.apply(&update);
                known.insert(orphan.event.sequence, orphan);
            }
        }
        let Some(stored) = known.get(&sequence) else {
            tracing::warn!(job_id = %job, sequence, "no such event in the outbox; dropping");
            return Ok(Settled::Done(None));
        };
        if stored.delivery_status.is_final() {
            return Ok(Settled::Done(Some(stored.delivery_status)));
        }
        if let Some(due_in) = retry_not_due(stored, self.clock.now()) {
            // Back early: the wait was longer than one postponement (a long Retry-After), or this
            // is a copy left by a redelivery or a failed postponement. An attempt now would
            // overrule the receiver and count against the schedule.
            return self.postpone(due_in, receipt).await;
        }
        let previous = sequence.checked_sub(1).and_then(|p| known.get(&p));
        let step = match predecessor_wait(sequence, previous, self.clock.now()) {
            Some(wait) => self.later(stored, None, wait, receipt).await,
            None => self.attempt(stored, receipt, callbacks).await,
        };
        match step {
            Ok((update, settled)) => {
                if let Some(stored) = known.get_mut(&sequence) {
                    stored.apply(&update);
                }
                Ok(settled)
            }
            Err(DeliveryError::Store(StoreError::Conflict)) => self.settled_elsewhere(job, sequence, known).await,
            Err(err) => {
                // Its state is unknown now: the events after it wait the default time.
                if let Some(stored) = known.get_mut(&sequence) {
                    stored.next_attempt_at = None;
                }
                Err(err)
            }
        }
    }

    /// After the outbox refused this batch's record of event `sequence`: if another deliverer
    /// settled it meanwhile, that stands (a late failure never undoes a delivery) and the
    /// message is done; otherwise it comes back.
    async fn settled_elsewhere(
        &self,
        job: &JobId,
        sequence: u64,
        known: &mut BTreeMap<u64, StoredEvent>,
    ) -> Result<Settled, DeliveryError> {
        let current = self.events.get(job, sequence).await?;
        let Some(current) = current.filter(|c| c.delivery_status.is_final()) else {
            if let Some(stored) = known.get_mut(&sequence) {
                stored.next_attempt_at = None;
            }
            return Err(DeliveryError::Store(StoreError::Conflict));
        };
        let status = current.delivery_status;
        tracing::info!(job_id = %job, sequence, ?status, "already settled by another deliverer; keeping that");
        known.insert(sequence, current);
        Ok(Settled::Done(Some(status)))
    }

    /// The presigned URLs of `event`'s completed file, if this deliverer signs them.
    async fn signed_download(&self, event: &crate::event::RecordEvent) -> Option<crate::download::SignedFile> {
        self.downloads.as_ref()?.signed(event).await
    }

    /// Makes one attempt (or skips an event the app does not want) and records it.
    async fn attempt(&self, stored: &StoredEvent, receipt: Option<&str>, callbacks: &CallbackCache) -> Step {
        let event = &stored.event;
        let callback = callbacks.get(self.callbacks.as_ref(), &event.app_id).await?;
        let Some(callback) = callback.filter(|c| c.notify_event_subscription.contains(&event.event_type)) else {
            return self.finish(stored, DeliveryStatus::Skipped, None).await;
        };
        let mut body = event.callback_body();
        if let Some(signed) = self.signed_download(event).await {
            body["download_url"] = signed.download_url.into();
            if let Some(url) = signed.timeline_url {
                body["timeline_url"] = url.into();
            }
        }
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let rand = webhook::rtc_rand(self.random.as_ref());
        let headers =
            webhook::sign(callback.auth_key.as_bytes(), &event.event_id, self.clock.now().timestamp(), &rand, &body);
        let started = Instant::now();
        let result = self.notifier.post(&callback.url, &headers, body).await;
        let attempt = Attempt {
            at: self.clock.timestamp(),
            status: result.status(),
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error: result.error(),
        };
        tracing::info!(job_id = %event.job_id, sequence = event.sequence, status = ?attempt.status, error = ?attempt.error, "callback attempt");
        let outcome = result.outcome();
        self.metrics.record(Metric::CallbackAttempt {
            job_id: event.job_id.clone(),
            delivered: outcome == Outcome::Delivered,
            latency: started.elapsed(),
        });
        match outcome {
            Outcome::Delivered => self.finish(stored, DeliveryStatus::Delivered, Some(attempt)).await,
            Outcome::Final => self.fail(stored, attempt).await,
            Outcome::Retry => {
                let scheduled = stored.scheduled_attempts();
                let since_first = scheduled.first().map_or(Duration::ZERO, |a| since(a.at, self.clock.now()));
                let jitter = self.random.unit() * 2.0 - 1.0;
                match self.schedule.next_delay(scheduled.len() + 1, since_first, result.retry_after(), jitter) {
                    Some(delay) => self.later(stored, Some(attempt), delay, receipt).await,
                    None => self.fail(stored, attempt).await,
                }
            }
        }
    }

    async fn later(
        &self,
        stored: &StoredEvent,
        attempt: Option<Attempt>,
        delay: Duration,
        receipt: Option<&str>,
    ) -> Step {
        let due = self.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let update = DeliveryUpdate {
            status: DeliveryStatus::Pending,
            attempt,
            next_attempt_at: Some(Timestamp::at(due)),
            restart_schedule: false,
        };
        self.events.record_delivery(&stored.event.job_id, stored.event.sequence, &update).await?;
        Ok((update, self.postpone(delay, receipt).await?))
    }

    /// Hides the message for `wait`, or as much of it as one postponement may be: the rest is
    /// postponed again when the message comes back before its event is due.
    async fn postpone(&self, wait: Duration, receipt: Option<&str>) -> Result<Settled, DeliveryError> {
        let delay = wait.min(webhook::MAX_DELAY);
        if let Some(receipt) = receipt {
            self.queue.postpone(receipt, delay).await?;
        }
        Ok(Settled::Later(delay))
    }

    /// Queues an orphaned event's message again and notes it as due now, so the events after
    /// it wait for its delivery as for any other; `None` when it was settled meanwhile.
    async fn requeue(&self, orphan: &StoredEvent) -> Result<Option<DeliveryUpdate>, DeliveryError> {
        let event = &orphan.event;
        tracing::warn!(job_id = %event.job_id, sequence = event.sequence, "event never handled; queueing it again");
        let update = DeliveryUpdate {
            status: DeliveryStatus::Pending,
            attempt: None,
            next_attempt_at: Some(self.clock.timestamp()),
            restart_schedule: false,
        };
        match self.events.record_delivery(&event.job_id, event.sequence, &update).await {
            // Nothing to queue; the events after it wait the default time and look again.
            Err(StoreError::Conflict) => return Ok(None),
            recorded => recorded?,
        }
        self.events.publish(event).await?;
        Ok(Some(update))
    }

    async fn fail(&self, stored: &StoredEvent, attempt: Attempt) -> Step {
        self.queue.dead_letter(&stored.event).await?;
        self.metrics.record(Metric::CallbackFailed { job_id: stored.event.job_id.clone() });
        self.finish(stored, DeliveryStatus::Failed, Some(attempt)).await
    }

    async fn finish(&self, stored: &StoredEvent, status: DeliveryStatus, attempt: Option<Attempt>) -> Step {
        let update = DeliveryUpdate { status, attempt, next_attempt_at: None, restart_schedule: false };
        self.events.record_delivery(&stored.event.job_id, stored.event.sequence, &update).await?;
        Ok((update, Settled::Done(Some(status))))
    }
}

/// How long event `sequence` must wait for `previous` (the job's event before it, as last
/// seen), if that one is still pending.
fn predecessor_wait(sequence: u64, previous: Option<&StoredEvent>, now: DateTime<Utc>) -> Option<Duration> {
    if sequence <= 1 {
        return None;
    }
    // A missing predecessor was never recorded (its write failed): nothing to wait for.
    let previous = previous?;
    if previous.delivery_status.is_final() {
        return None;
    }
    // Come back just after the previous event's next attempt, so a long backoff does not turn
    // into thousands of receives of the events behind it. Behind an event that only waits in
    // line itself, come back with it: a second more per event would space a job's queued
    // events a second apart.
    let due = previous.next_attempt_at.map_or(Duration::ZERO, |due| until(due, now));
    let after = if previous.scheduled_attempts().is_empty() { Duration::ZERO } else { Duration::from_secs(1) };
    Some((due + after).max(ORDER_WAIT).min(webhook::MAX_DELAY))
}

/// How long until `event`'s next attempt, when it is in a retry backoff (an attempt since its
/// last redelivery) and that attempt is more than [`DUE_SLACK`] away.
fn retry_not_due(event: &StoredEvent, now: DateTime<Utc>) -> Option<Duration> {
    let due_in = until(event.next_attempt_at?, now);
    (!event.scheduled_attempts().is_empty() && due_in > DUE_SLACK).then_some(due_in)
}

/// Whether `event` has waited `after` without any deliverer handling it: pending, never
/// attempted, never postponed.
fn orphaned(event: &StoredEvent, after: Duration, now: DateTime<Utc>) -> bool {
    event.delivery_status == DeliveryStatus::Pending
        && event.attempts.is_empty()
        && event.next_attempt_at.is_none()
        && since(event.event.create_time, now) >= after
}

/// Whether `previous`, the event before event `sequence`, is pending without a retry due
/// later: another batch is delivering it, or its message is about to be received.
fn in_flight(sequence: u64, previous: Option<&StoredEvent>, now: DateTime<Utc>) -> bool {
    let Some(previous) = previous.filter(|_| sequence > 1) else { return false };
    !previous.delivery_status.is_final() && previous.next_attempt_at.is_none_or(|due| until(due, now).is_zero())
}

/// The record callbacks read during one batch: one read per app, not one per event.
#[derive(Default)]
struct CallbackCache(Mutex<HashMap<AppId, Option<RecordCallback>>>);

impl CallbackCache {
    async fn get(&self, store: &dyn CallbackStore, app: &AppId) -> Result<Option<RecordCallback>, StoreError> {
        if let Some(known) = self.0.lock().unwrap_or_else(PoisonError::into_inner).get(app) {
            return Ok(known.clone());
        }
        let callback = store.get_callback(app).await?;
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(app.clone(), callback.clone());
        Ok(callback)
    }
}

fn since(at: Timestamp, now: DateTime<Utc>) -> Duration {
    (now - at.as_datetime()).to_std().unwrap_or_default()
}

fn until(at: Timestamp, now: DateTime<Utc>) -> Duration {
    (at.as_datetime() - now).to_std().unwrap_or_default()
}
