//! Callbacks under fault, over the in-memory twins of the ports and Lambda's event source: a
//! receiver asking for a day's pause, a receiver down for hours, a slower deliverer's late
//! record. The clock is a [`ManualClock`] the event source moves, so days pass in milliseconds.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use chrono::TimeZone;

use super::*;
use crate::callback::{AuthKey, EventType};
use crate::event::RecordEvent;
use crate::ids::RoomId;
use crate::testing::{
    epoch, now, random, ManualClock, MemDeliveryQueue, MemEventLog, MemEventSource, MemStore, Posted, ScriptedNotifier,
    SeqRandom,
};
use crate::url::{CallbackUrl, PrivateAddresses};
use crate::webhook::{AttemptResult, SignedHeaders, MAX_DELAY, RETRY_SCHEDULE_SECS};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The events queue's maxReceiveCount in template.yaml: a message received more often is
/// moved to the dead-letter queue by SQS itself.
const MAX_RECEIVE_COUNT: u32 = 100;

/// One job's events, a deliverer and the event source between them.
struct Faults {
    clock: Arc<ManualClock>,
    events: Arc<MemEventLog>,
    queue: Arc<MemDeliveryQueue>,
    source: MemEventSource,
    app: AppId,
    job: JobId,
}

/// A job of an app subscribed to every event, delivered to the notifier `notifier` makes
/// (given the outbox).
async fn faults(clock: Arc<ManualClock>, notifier: impl FnOnce(&Arc<MemEventLog>) -> Arc<dyn Notifier>) -> Faults {
    let app = AppId::generate(random());
    let store = Arc::new(MemStore::default());
    let callback = RecordCallback {
        url: CallbackUrl::parse("https://hooks.example.com/cb", PrivateAddresses::Refuse).unwrap(),
        auth_key: AuthKey::try_from("8923ab8c2dcef4538923ab8c2dcef453".to_owned()).unwrap(),
        notify_event_subscription: EventType::ALL.to_vec(),
        update_time: now(),
    };
    store.put_callback(&app, &callback).await.unwrap();
    let events = Arc::new(MemEventLog::default());
    let queue = Arc::new(MemDeliveryQueue::default());
    let deliverer = Deliverer::new(DelivererPorts {
        events: events.clone(),
        callbacks: store,
        notifier: notifier(&events),
        queue: queue.clone(),
        clock: clock.clone(),
        random: Arc::new(SeqRandom::new(5)),
        metrics: Arc::new(crate::testing::MemMetrics::default()),
    });
    let source = MemEventSource::new(clock.clone(), events.clone(), queue.clone(), deliverer);
    Faults { clock, events, queue, source, app, job: JobId::generate(random()) }
}

impl Faults {
    /// Records event `sequence` of the job and queues it, as the worker does.
    async fn record(&self, sequence: u64) {
        let event = RecordEvent {
            event_id: format!("{}-{sequence}", self.job),
            sequence,
            event_type: EventType::RecordFileComplete,
            app_id: self.app.clone(),
            job_id: self.job.clone(),
            room_id: RoomId::try_from("room1").unwrap(),
            stream_name: "s".into(),
            record_format: None,
            file: None,
            detail_message: String::new(),
            create_time: Timestamp::at(self.clock.now()),
            usage: None,
        };
        self.events.append(&event).await.unwrap();
        self.events.publish(&event).await.unwrap();
    }

    async fn stored(&self, sequence: u64) -> StoredEvent {
        self.events.get(&self.job, sequence).await.unwrap().unwrap()
    }

    /// The postponements of every message, none of which SQS may refuse.
    fn assert_postponements_fit_sqs(&self) {
        let postponed = self.queue.postponed();
        assert!(postponed.iter().all(|(_, delay)| *delay <= MAX_DELAY), "{postponed:?}");
        assert!(self.source.max_receives() < MAX_RECEIVE_COUNT, "{} receives", self.source.max_receives());
    }
}

fn sequences<'a>(posted: impl IntoIterator<Item = &'a Posted>) -> Vec<u64> {
    posted.into_iter().map(|p| p.body["sequence"].as_u64().unwrap()).collect()
}

// ---- a long Retry-After ----

#[tokio::test]
async fn a_503_asking_for_a_day_is_postponed_again_until_due_and_the_jobs_later_events_wait_in_order() {
    let busy = AttemptResult::Answered { status: 503, retry_after: Some(DAY) };
    let notifier = Arc::new(ScriptedNotifier::answering(vec![busy]));
    let mut f = faults(Arc::new(ManualClock::default()), |_| notifier.clone()).await;
    for sequence in 1..=3 {
        f.record(sequence).await;
    }

    f.source.run_until(epoch() + chrono::Duration::days(3)).await;
    assert!(f.source.is_empty(), "every message settled");
    assert_eq!(sequences(&notifier.posted()), [1, 1, 2, 3], "nothing sent during the day, then in order");
    let first = f.stored(1).await;
    let waited = first.attempts[1].at.as_datetime() - first.attempts[0].at.as_datetime();
    assert!(waited.to_std().unwrap() >= DAY, "the second attempt came {waited} after the first");
    for sequence in 1..=3 {
        assert_eq!(f.stored(sequence).await.delivery_status, DeliveryStatus::Delivered);
    }
    assert!(f.queue.dead().is_empty(), "a long Retry-After is never a reason to give up");
    // A day is more than one postponement may be: the first event's message came back early
    // twice (11 h 45 min each) and was hidden again without an attempt.
    assert_eq!(f.queue.postponed().iter().filter(|(receipt, _)| receipt.starts_with("1/")).count(), 3);
    f.assert_postponements_fit_sqs();
}

#[tokio::test]
async fn a_receiver_asking_for_a_day_every_time_is_retried_through_the_whole_schedule_before_dead_lettering() {
    let busy = AttemptResult::Answered { status: 503, retry_after: Some(DAY) };
    let notifier = Arc::new(ScriptedNotifier::answering(vec![busy; RETRY_SCHEDULE_SECS.len()]));
    let mut f = faults(Arc::new(ManualClock::default()), |_| notifier.clone()).await;
    f.record(1).await;
    f.record(2).await;

    f.source.run_until(epoch() + chrono::Duration::days(14)).await;
    let first = f.stored(1).await;
    assert_eq!(first.attempts.len(), RETRY_SCHEDULE_SECS.len(), "one attempt per scheduled retry, none early");
    assert_eq!(first.delivery_status, DeliveryStatus::Failed);
    assert_eq!(f.queue.dead().len(), 1);
    assert_eq!(f.stored(2).await.delivery_status, DeliveryStatus::Delivered, "the next event goes after it");
    assert_eq!(sequences(&notifier.posted()).last(), Some(&2));
    f.assert_postponements_fit_sqs();
}

// ---- a receiver down for hours ----

/// Three events of a job recorded while the receiver is down for `down`: each arrives, in
/// order, when it is back. Returns when the first one arrived.
async fn every_event_arrives_in_order_after_an_outage_of(down: Duration) -> chrono::DateTime<Utc> {
    let clock = Arc::new(ManualClock::default());
    let back = epoch() + chrono::Duration::from_std(down).unwrap();
    let refused = AttemptResult::Unreachable("connection refused".into());
    let receiver = Arc::new(ScriptedNotifier::default().down_until(clock.clone(), back, refused));
    let mut f = faults(clock, |_| receiver.clone()).await;
    for sequence in 1..=3 {
        f.record(sequence).await;
    }

    f.source.run_until(epoch() + chrono::Duration::days(3)).await;
    let posted = receiver.posted();
    let received: Vec<_> = posted.iter().filter(|p| p.headers.timestamp >= back.timestamp()).collect();
    assert_eq!(sequences(received.iter().copied()), [1, 2, 3], "each once, in order, once it was back");
    assert!(f.queue.dead().is_empty());
    assert!(f.source.is_empty());
    for sequence in 2..=3 {
        assert_eq!(f.stored(sequence).await.attempts.len(), 1, "event {sequence} was not sent during the outage");
    }
    assert!(f.stored(1).await.attempts.len() > 1);
    f.assert_postponements_fit_sqs();
    Utc.timestamp_opt(received[0].headers.timestamp, 0).unwrap()
}

#[tokio::test]
async fn a_receiver_down_for_an_hour_gets_every_event_in_order_at_the_next_retry_after_it_is_back() {
    let arrived = every_event_arrives_in_order_after_an_outage_of(HOUR).await;
    // Retries at 0, 5 s, 5 min and 35 min fail; the next is 2 h ± 20 % after the fourth.
    let after = (arrived - epoch()).to_std().unwrap();
    assert!((HOUR..4 * HOUR).contains(&after), "first delivery {after:?} after the event");
}

#[tokio::test]
async fn a_receiver_down_for_23_hours_still_gets_every_event_in_order() {
    let arrived = every_event_arrives_in_order_after_an_outage_of(23 * HOUR).await;
    let after = (arrived - epoch()).to_std().unwrap();
    assert!(after >= 23 * HOUR && after <= 34 * HOUR, "first delivery {after:?} after the event");
}

// ---- a slower deliverer's late record ----

/// A receiver slow to answer: while it keeps this deliverer waiting, another deliverer
/// delivers the event (its record lands first); then it answers this one with `late`.
struct Overtaken {
    events: Arc<MemEventLog>,
    late: AttemptResult,
}

#[async_trait]
impl Notifier for Overtaken {
    async fn post(&self, _url: &CallbackUrl, _headers: &SignedHeaders, body: Vec<u8>) -> AttemptResult {
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let job: JobId = serde_json::from_value(body["job_id"].clone()).unwrap();
        let attempt = Attempt { at: now(), status: Some(200), latency_ms: 5, error: None };
        let delivered = DeliveryUpdate {
            status: DeliveryStatus::Delivered,
            attempt: Some(attempt),
            next_attempt_at: None,
            restart_schedule: false,
        };
        self.events.record_delivery(&job, body["sequence"].as_u64().unwrap(), &delivered).await.unwrap();
        self.late.clone()
    }
    async fn refusal(&self, _url: &CallbackUrl) -> Option<String> {
        None
    }
}

#[tokio::test]
async fn a_late_failure_of_a_slower_deliverer_leaves_the_event_delivered_and_its_message_done() {
    for late in [AttemptResult::Answered { status: 503, retry_after: None }, AttemptResult::TimedOut] {
        let mut f = faults(Arc::new(ManualClock::default()), |events| {
            Arc::new(Overtaken { events: events.clone(), late: late.clone() })
        })
        .await;
        f.record(1).await;

        f.source.run_until(epoch() + DAY).await;
        assert!(f.source.is_empty(), "the message is done with: the event was delivered ({late:?})");
        assert_eq!(f.source.max_receives(), 1, "the refused record is no error to retry");
        let stored = f.stored(1).await;
        assert_eq!(stored.delivery_status, DeliveryStatus::Delivered, "{late:?}");
        assert_eq!(
            (stored.attempts.len(), stored.attempts[0].status, stored.next_attempt_at),
            (1, Some(200), None),
            "only the delivery is logged"
        );
        assert!(f.queue.postponed().is_empty() && f.queue.dead().is_empty());
    }
}
