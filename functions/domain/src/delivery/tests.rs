//! Unit tests of the delivery use case over in-memory fakes of its ports (the integration
//! tests in tests/tests/callbacks run it against moto and a real receiver).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::callback::{AuthKey, EventType};
use crate::event::RecordEvent;
use crate::ids::RoomId;
use crate::testing::{epoch, now, random, ManualClock, MemMetrics, SeqRandom};
use crate::url::{CallbackUrl, PrivateAddresses};
use crate::webhook::{AttemptResult, SignedHeaders};

// ---- fakes ----

#[derive(Default)]
struct FakeEvents {
    items: Mutex<BTreeMap<(JobId, u64), StoredEvent>>,
    reads: Mutex<usize>,
    /// Sequences queued again.
    published: Mutex<Vec<u64>>,
}

#[async_trait]
impl EventLog for FakeEvents {
    async fn next_sequence(&self, _job_id: &JobId) -> Result<u64, StoreError> {
        unreachable!("the deliverer never allocates sequences")
    }
    async fn append(&self, _event: &RecordEvent) -> Result<(), StoreError> {
        unreachable!("the deliverer never records events")
    }
    async fn list_stored(&self, job_id: &JobId) -> Result<Vec<StoredEvent>, StoreError> {
        *self.reads.lock().unwrap() += 1;
        let items = self.items.lock().unwrap();
        Ok(items.iter().filter(|((job, _), _)| job == job_id).map(|(_, stored)| stored.clone()).collect())
    }
    async fn get(&self, job_id: &JobId, sequence: u64) -> Result<Option<StoredEvent>, StoreError> {
        *self.reads.lock().unwrap() += 1;
        Ok(self.items.lock().unwrap().get(&(job_id.clone(), sequence)).cloned())
    }
    async fn get_many(&self, job_id: &JobId, sequences: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        *self.reads.lock().unwrap() += 1;
        let items = self.items.lock().unwrap();
        Ok(sequences.iter().filter_map(|sequence| items.get(&(job_id.clone(), *sequence)).cloned()).collect())
    }
    async fn record_delivery(&self, job_id: &JobId, sequence: u64, update: &DeliveryUpdate) -> Result<(), StoreError> {
        let mut items = self.items.lock().unwrap();
        let stored = items.get_mut(&(job_id.clone(), sequence)).ok_or(StoreError::Conflict)?;
        if stored.delivery_status.is_final() && !update.restart_schedule {
            return Err(StoreError::Conflict);
        }
        stored.apply(update);
        Ok(())
    }
    async fn publish(&self, event: &RecordEvent) -> Result<(), QueueError> {
        self.published.lock().unwrap().push(event.sequence);
        Ok(())
    }
}

struct FakeCallbacks {
    callback: Option<RecordCallback>,
    reads: Mutex<usize>,
}

#[async_trait]
impl CallbackStore for FakeCallbacks {
    async fn get_callback(&self, _app_id: &AppId) -> Result<Option<RecordCallback>, StoreError> {
        *self.reads.lock().unwrap() += 1;
        Ok(self.callback.clone())
    }
    async fn put_callback(&self, _app_id: &AppId, _callback: &RecordCallback) -> Result<(), StoreError> {
        unreachable!("the deliverer never writes callbacks")
    }
    async fn update_callback(&self, _app_id: &AppId, _callback: &RecordCallback) -> Result<bool, StoreError> {
        unreachable!("the deliverer never writes callbacks")
    }
    async fn delete_callback(&self, _app_id: &AppId) -> Result<bool, StoreError> {
        unreachable!("the deliverer never writes callbacks")
    }
}

/// Answers with the scripted results in turn (then 200), after `delay`; notes each request.
#[derive(Default)]
struct FakeNotifier {
    script: Mutex<VecDeque<AttemptResult>>,
    delay: Duration,
    posted: Mutex<Vec<(String, u64)>>,
}

#[async_trait]
impl Notifier for FakeNotifier {
    async fn post(&self, _url: &CallbackUrl, headers: &SignedHeaders, body: Vec<u8>) -> AttemptResult {
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        self.posted.lock().unwrap().push((headers.id.clone(), body["sequence"].as_u64().unwrap()));
        tokio::time::sleep(self.delay).await;
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or(AttemptResult::Answered { status: 200, retry_after: None })
    }
    async fn refusal(&self, _url: &CallbackUrl) -> Option<String> {
        None
    }
}

#[derive(Default)]
struct FakeQueue {
    postponed: Mutex<Vec<(String, Duration)>>,
    dead: Mutex<Vec<String>>,
}

#[async_trait]
impl DeliveryQueue for FakeQueue {
    async fn postpone(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.postponed.lock().unwrap().push((receipt.to_owned(), delay));
        Ok(())
    }
    async fn dead_letter(&self, event: &RecordEvent) -> Result<(), QueueError> {
        self.dead.lock().unwrap().push(event.event_id.clone());
        Ok(())
    }
}

// ---- a deliverer over them ----

struct World {
    events: Arc<FakeEvents>,
    callbacks: Arc<FakeCallbacks>,
    notifier: Arc<FakeNotifier>,
    queue: Arc<FakeQueue>,
    clock: Arc<ManualClock>,
    metrics: Arc<MemMetrics>,
    deliverer: Deliverer,
    app: AppId,
}

fn world(subscribed: &[EventType], script: Vec<AttemptResult>, delay: Duration) -> World {
    let callback = RecordCallback {
        url: CallbackUrl::parse("https://hooks.example.com/cb", PrivateAddresses::Refuse).unwrap(),
        auth_key: AuthKey::try_from("8923ab8c2dcef4538923ab8c2dcef453".to_owned()).unwrap(),
        notify_event_subscription: subscribed.to_vec(),
        update_time: now(),
    };
    let events = Arc::new(FakeEvents::default());
    let callbacks = Arc::new(FakeCallbacks { callback: Some(callback), reads: Mutex::new(0) });
    let notifier = Arc::new(FakeNotifier { script: Mutex::new(script.into()), delay, ..FakeNotifier::default() });
    let queue = Arc::new(FakeQueue::default());
    // A clock that stands still unless a test moves it: "now" is `epoch()`.
    let clock = Arc::new(ManualClock::default());
    let metrics = Arc::new(MemMetrics::default());
    let deliverer = Deliverer::new(DelivererPorts {
        events: events.clone(),
        callbacks: callbacks.clone(),
        notifier: notifier.clone(),
        queue: queue.clone(),
        clock: clock.clone(),
        random: Arc::new(SeqRandom::new(3)),
        metrics: metrics.clone(),
    });
    World { events, callbacks, notifier, queue, clock, metrics, deliverer, app: AppId::generate(random()) }
}

fn answered(status: u16) -> AttemptResult {
    AttemptResult::Answered { status, retry_after: None }
}

impl World {
    /// Records event `sequence` of `job` as pending.
    fn record(&self, job: &JobId, sequence: u64) -> Queued {
        self.record_as(job, sequence, EventType::CloudRecordOver)
    }

    /// Records event `sequence` of `job`, of `event_type`, as pending.
    fn record_as(&self, job: &JobId, sequence: u64, event_type: EventType) -> Queued {
        let event = RecordEvent {
            event_id: format!("{job}-{sequence}"),
            sequence,
            event_type,
            app_id: self.app.clone(),
            job_id: job.clone(),
            room_id: RoomId::try_from("room1").unwrap(),
            stream_name: "s".into(),
            record_format: None,
            file: None,
            detail_message: String::new(),
            create_time: now(),
        };
        let stored = StoredEvent {
            event,
            delivery_status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            next_attempt_at: None,
            retry_from: 0,
        };
        self.events.items.lock().unwrap().insert((job.clone(), sequence), stored);
        let message = EventMessage { job_id: job.clone(), sequence, event_id: None };
        Queued { message, receipt: Some(format!("receipt-{job}-{sequence}")) }
    }

    fn stored(&self, job: &JobId, sequence: u64) -> StoredEvent {
        self.events.items.lock().unwrap()[&(job.clone(), sequence)].clone()
    }

    fn posted(&self) -> Vec<u64> {
        self.notifier.posted.lock().unwrap().iter().map(|(_, sequence)| *sequence).collect()
    }

    async fn deliver(&self, queued: &Queued) -> Settled {
        self.deliverer.deliver(&queued.message, queued.receipt.as_deref()).await.unwrap()
    }
}

const ALL: [EventType; 6] = EventType::ALL;
const NO_DELAY: Duration = Duration::ZERO;

fn secs(low: f64, high: f64, got: Duration) {
    assert!((low..=high).contains(&got.as_secs_f64()), "{got:?} not in {low}..={high} s");
}

// ---- the outbound client's answers ----

#[tokio::test]
async fn a_2xx_is_delivered_once_and_logged() {
    let w = world(&ALL, vec![answered(204)], NO_DELAY);
    let job = JobId::generate(random());
    let queued = w.record(&job, 1);

    assert_eq!(w.deliver(&queued).await, Settled::Done(Some(DeliveryStatus::Delivered)));
    let stored = w.stored(&job, 1);
    assert_eq!(stored.delivery_status, DeliveryStatus::Delivered);
    assert_eq!(
        (stored.attempts.len(), stored.attempts[0].status, stored.attempts[0].error.clone()),
        (1, Some(204), None)
    );
    assert_eq!(stored.next_attempt_at, None);
    assert!(w.queue.postponed.lock().unwrap().is_empty() && w.queue.dead.lock().unwrap().is_empty());
    assert_eq!(w.notifier.posted.lock().unwrap()[0].0, format!("{job}-1"), "webhook-id is the event id");
}

#[tokio::test]
async fn each_attempt_is_measured_and_an_event_given_up_on_counts_as_a_failure() {
    let w = world(&ALL, vec![answered(503), answered(410)], NO_DELAY);
    let job = JobId::generate(random());
    let queued = w.record(&job, 1);

    assert!(matches!(w.deliver(&queued).await, Settled::Later(_)));
    w.clock.advance(Duration::from_secs(10));
    assert_eq!(w.deliver(&queued).await, Settled::Done(Some(DeliveryStatus::Failed)));
    let measured: Vec<_> = w
        .metrics
        .recorded()
        .into_iter()
        .map(|m| match m {
            Metric::CallbackAttempt { delivered, job_id, .. } => (format!("attempt delivered={delivered}"), job_id),
            Metric::CallbackFailed { job_id } => ("failed".to_owned(), job_id),
            other => panic!("the deliverer measures only callbacks: {other:?}"),
        })
        .collect();
    let names: Vec<&str> = measured.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["attempt delivered=false", "attempt delivered=false", "failed"]);
    assert!(measured.iter().all(|(_, id)| *id == job));
}

#[tokio::test]
async fn a_5xx_is_postponed_by_the_first_retry_delay_and_logged() {
    let w = world(&ALL, vec![answered(503)], NO_DELAY);
    let job = JobId::generate(random());
    let queued = w.record(&job, 1);

    let Settled::Later(delay) = w.deliver(&queued).await else { panic!("a 503 must be retried") };
    secs(4.0, 6.0, delay); // 5 s ± 20 %
    assert_eq!(w.queue.postponed.lock().unwrap().as_slice(), [(format!("receipt-{job}-1"), delay)]);
    let stored = w.stored(&job, 1);
    assert_eq!(stored.delivery_status, DeliveryStatus::Pending);
    assert_eq!(stored.attempts[0].error.as_deref(), Some("HTTP 503"));
    assert!(stored.next_attempt_at.is_some());
    assert!(w.queue.dead.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_timeout_is_retried_like_a_5xx() {
    let w = world(&ALL, vec![AttemptResult::TimedOut], NO_DELAY);
    let job = JobId::generate(random());

    assert!(matches!(w.deliver(&w.record(&job, 1)).await, Settled::Later(_)));
    let attempt = &w.stored(&job, 1).attempts[0];
    assert_eq!((attempt.status, attempt.error.as_deref()), (None, Some("no answer within 10 s")));
}

#[tokio::test]
async fn a_4xx_is_final_and_dead_lettered_without_a_retry() {
    let w = world(&ALL, vec![answered(404)], NO_DELAY);
    let job = JobId::generate(random());

    assert_eq!(w.deliver(&w.record(&job, 1)).await, Settled::Done(Some(DeliveryStatus::Failed)));
    assert_eq!(w.stored(&job, 1).attempts[0].status, Some(404));
    assert_eq!(w.queue.dead.lock().unwrap().as_slice(), [format!("{job}-1")]);
    assert!(w.queue.postponed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_address_is_final() {
    let w = world(&ALL, vec![AttemptResult::Refused("127.0.0.1 is a private address".into())], NO_DELAY);
    let job = JobId::generate(random());

    assert_eq!(w.deliver(&w.record(&job, 1)).await, Settled::Done(Some(DeliveryStatus::Failed)));
    let error = w.stored(&job, 1).attempts[0].error.clone().unwrap();
    assert!(error.starts_with("refused:"), "{error}");
}

#[tokio::test]
async fn a_longer_retry_after_sets_the_delay() {
    let busy = AttemptResult::Answered { status: 429, retry_after: Some(Duration::from_secs(120)) };
    let w = world(&ALL, vec![busy], NO_DELAY);
    let job = JobId::generate(random());

    assert_eq!(w.deliver(&w.record(&job, 1)).await, Settled::Later(Duration::from_secs(120)));
    assert_eq!(w.queue.postponed.lock().unwrap()[0].1, Duration::from_secs(120));
}

#[tokio::test]
async fn a_used_up_schedule_dead_letters_the_event() {
    let w = world(&ALL, vec![answered(500)], NO_DELAY);
    let job = JobId::generate(random());
    let queued = w.record(&job, 1);
    let day_ago = Timestamp::at(epoch() - chrono::Duration::hours(25));
    let failed = Attempt { at: day_ago, status: Some(500), latency_ms: 1, error: Some("HTTP 500".into()) };
    w.events.items.lock().unwrap().get_mut(&(job.clone(), 1)).unwrap().attempts =
        vec![failed; webhook::RETRY_SCHEDULE_SECS.len() - 1];

    assert_eq!(w.deliver(&queued).await, Settled::Done(Some(DeliveryStatus::Failed)));
    assert_eq!(w.queue.dead.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_redelivered_event_whose_schedule_was_used_up_gets_the_schedule_again() {
    let w = world(&ALL, vec![answered(500), answered(500)], NO_DELAY);
    let job = JobId::generate(random());
    let queued = w.record(&job, 1);
    let day_ago = Timestamp::at(epoch() - chrono::Duration::hours(25));
    let failed = Attempt { at: day_ago, status: Some(500), latency_ms: 1, error: Some("HTTP 500".into()) };
    w.events.items.lock().unwrap().get_mut(&(job.clone(), 1)).unwrap().attempts =
        vec![failed; webhook::RETRY_SCHEDULE_SECS.len()];
    w.events.record_delivery(&job, 1, &DeliveryUpdate::redelivery()).await.unwrap();

    let Settled::Later(delay) = w.deliver(&queued).await else { panic!("a redelivery failed at once") };
    secs(4.0, 6.0, delay); // the schedule's first retry again
    w.clock.advance(delay);
    let Settled::Later(delay) = w.deliver(&queued).await else { panic!("the second retry failed at once") };
    secs(240.0, 360.0, delay);
    assert_eq!(
        w.stored(&job, 1).attempts.len(),
        webhook::RETRY_SCHEDULE_SECS.len() + 2,
        "the old attempts stay logged"
    );
}

#[tokio::test]
async fn unsubscribed_events_are_skipped_without_a_request() {
    let w = world(&[EventType::RecordFileComplete], vec![], NO_DELAY);
    let job = JobId::generate(random());

    assert_eq!(w.deliver(&w.record(&job, 1)).await, Settled::Done(Some(DeliveryStatus::Skipped)));
    assert!(w.posted().is_empty());
    assert!(w.stored(&job, 1).attempts.is_empty());
}

#[tokio::test]
async fn pause_and_resume_events_reach_only_a_callback_that_opted_in() {
    let job = JobId::generate(random());
    let default = world(&EventType::DEFAULT, vec![], NO_DELAY);
    let paused = default.record_as(&job, 1, EventType::RecordPaused);
    assert_eq!(default.deliver(&paused).await, Settled::Done(Some(DeliveryStatus::Skipped)));
    assert!(default.posted().is_empty(), "the default subscription does not get them");

    let opted_in = world(&[EventType::RecordPaused, EventType::RecordResumed], vec![answered(200); 2], NO_DELAY);
    for (sequence, event_type) in [(1, EventType::RecordPaused), (2, EventType::RecordResumed)] {
        let queued = opted_in.record_as(&job, sequence, event_type);
        assert_eq!(opted_in.deliver(&queued).await, Settled::Done(Some(DeliveryStatus::Delivered)));
    }
    assert_eq!(opted_in.posted(), [1, 2]);
}

// ---- order and batches ----

#[tokio::test]
async fn a_later_event_waits_while_the_one_before_is_retried() {
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    w.record(&job, 1);
    let due = Timestamp::at(epoch() + chrono::Duration::seconds(60));
    w.events.items.lock().unwrap().get_mut(&(job.clone(), 1)).unwrap().next_attempt_at = Some(due);

    let Settled::Later(wait) = w.deliver(&w.record(&job, 2)).await else { panic!("sent before its predecessor") };
    secs(59.0, 62.0, wait); // just after the predecessor's next attempt
    assert!(w.posted().is_empty());
    assert_eq!(w.stored(&job, 2).attempts.len(), 0, "waiting is not an attempt");
}

#[tokio::test]
async fn a_batch_delivers_each_jobs_events_in_sequence_order_reading_each_job_and_app_once() {
    let w = world(&ALL, vec![], NO_DELAY);
    let (a, b) = (JobId::generate(random()), JobId::generate(random()));
    let batch = vec![w.record(&a, 3), w.record(&b, 1), w.record(&a, 1), w.record(&a, 2)];

    let results = w.deliverer.deliver_batch(&batch).await;
    assert!(results.iter().all(|r| matches!(r, Ok(Settled::Done(Some(DeliveryStatus::Delivered))))), "{results:?}");
    let of_a: Vec<_> =
        w.notifier.posted.lock().unwrap().iter().filter(|(id, _)| id.starts_with(a.as_str())).map(|p| p.1).collect();
    assert_eq!(of_a, [1, 2, 3]);
    assert_eq!(*w.events.reads.lock().unwrap(), 2, "one outbox read per job");
    assert_eq!(*w.callbacks.reads.lock().unwrap(), 1, "one callback read per app");
}

#[tokio::test]
async fn when_an_event_is_retried_the_later_ones_of_its_job_in_the_batch_wait_for_it() {
    let w = world(&ALL, vec![answered(503)], NO_DELAY);
    let job = JobId::generate(random());
    let batch = vec![w.record(&job, 1), w.record(&job, 2), w.record(&job, 3)];

    let results: Vec<_> = w.deliverer.deliver_batch(&batch).await.into_iter().map(Result::unwrap).collect();
    assert!(results.iter().all(|r| matches!(r, Settled::Later(_))), "{results:?}");
    assert_eq!(w.posted(), [1], "only the first was sent");
    let Settled::Later(retry) = results[0] else { unreachable!() };
    let Settled::Later(wait) = results[1] else { unreachable!() };
    assert!(wait > retry, "the second comes back after the first's retry: {wait:?} vs {retry:?}");
}

#[tokio::test]
async fn a_batch_with_a_gap_in_a_jobs_sequence_waits_for_the_events_between() {
    // Events 2..4 are waiting in the queue behind 1; 1 comes back with 5 in one batch.
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    let first = w.record(&job, 1);
    for sequence in 2..=4 {
        w.record(&job, sequence);
    }
    let batch = vec![w.record(&job, 5), first];

    let results: Vec<_> = w.deliverer.deliver_batch(&batch).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(w.posted(), [1], "5 is not sent while 4 is pending");
    assert!(matches!(results[0], Settled::Later(_)), "{results:?}");
    assert!(matches!(results[1], Settled::Done(Some(DeliveryStatus::Delivered))), "{results:?}");
}

#[tokio::test]
async fn an_old_predecessor_no_deliverer_ever_handled_is_queued_again_and_waited_for() {
    // Event 1 was recorded two minutes ago but its queue message was lost.
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    w.record(&job, 1);
    let long_ago = Timestamp::at(epoch() - chrono::Duration::minutes(2));
    w.events.items.lock().unwrap().get_mut(&(job.clone(), 1)).unwrap().event.create_time = long_ago;

    let Settled::Later(wait) = w.deliver(&w.record(&job, 2)).await else { panic!("sent before its predecessor") };
    assert_eq!(*w.events.published.lock().unwrap(), [1], "the orphan's message is queued again");
    assert!(w.posted().is_empty());
    secs(2.5, 4.0, wait); // back soon after the orphan's new message
    let orphan = w.stored(&job, 1);
    assert!(orphan.next_attempt_at.is_some() && orphan.attempts.is_empty(), "{orphan:?}");

    // A second look while the requeued message is on its way queues nothing more.
    let Settled::Later(_) = w.deliver(&w.record(&job, 2)).await else { panic!("sent before its predecessor") };
    assert_eq!(w.events.published.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_recent_predecessor_not_handled_yet_is_waited_for_without_queueing_it_again() {
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    w.record(&job, 1); // its message is simply not received yet

    let Settled::Later(_) = w.deliver(&w.record(&job, 2)).await else { panic!("sent before its predecessor") };
    assert!(w.events.published.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_second_copy_of_a_message_in_a_batch_is_acknowledged_without_a_second_request() {
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    let queued = w.record(&job, 1);

    let results = w.deliverer.deliver_batch(&[queued.clone(), queued]).await;
    assert!(results.iter().all(|r| matches!(r, Ok(Settled::Done(_)))), "{results:?}");
    assert_eq!(w.posted(), [1]);
}

#[tokio::test]
async fn concurrent_batches_of_one_job_take_turns_instead_of_postponing_the_later_event() {
    let w = world(&ALL, vec![], Duration::from_millis(200));
    let job = JobId::generate(random());
    let (first, second) = (w.record(&job, 1), w.record(&job, 2));

    let (one, two) = tokio::join!(
        w.deliverer.deliver_batch(std::slice::from_ref(&first)),
        w.deliverer.deliver_batch(std::slice::from_ref(&second))
    );
    assert!(matches!(one[0], Ok(Settled::Done(Some(DeliveryStatus::Delivered)))), "{one:?}");
    assert!(matches!(two[0], Ok(Settled::Done(Some(DeliveryStatus::Delivered)))), "{two:?}");
    assert_eq!(w.posted(), [1, 2]);
    assert_eq!(w.deliverer.lanes.len(), 0, "lanes are forgotten when no batch holds them");
}

#[tokio::test]
async fn a_first_event_whose_predecessor_is_being_delivered_elsewhere_waits_in_process_not_in_the_queue() {
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    w.record(&job, 1);
    let second = w.record(&job, 2);
    let (events, settle) = (w.events.clone(), job.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let update = DeliveryUpdate {
            status: DeliveryStatus::Delivered,
            attempt: None,
            next_attempt_at: None,
            restart_schedule: false,
        };
        events.record_delivery(&settle, 1, &update).await.unwrap();
    });

    assert_eq!(w.deliver(&second).await, Settled::Done(Some(DeliveryStatus::Delivered)));
    assert!(w.queue.postponed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_predecessor_that_does_not_settle_in_time_postpones_the_event_by_the_order_wait() {
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    w.record(&job, 1);
    let started = tokio::time::Instant::now();

    assert_eq!(w.deliver(&w.record(&job, 2)).await, Settled::Later(ORDER_WAIT));
    assert!(started.elapsed() >= IN_PROCESS_ORDER_WAIT);
    assert!(w.posted().is_empty());
}

#[tokio::test]
async fn events_queued_behind_one_that_waits_in_line_come_back_with_it_not_a_second_later_each() {
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    w.record(&job, 1);
    let due = Timestamp::at(epoch() + chrono::Duration::seconds(3));
    w.events.items.lock().unwrap().get_mut(&(job.clone(), 1)).unwrap().next_attempt_at = Some(due);
    let batch = vec![w.record(&job, 2), w.record(&job, 3), w.record(&job, 4)];

    for result in w.deliverer.deliver_batch(&batch).await {
        let Ok(Settled::Later(wait)) = result else { panic!("{result:?}") };
        secs(2.0, 3.0, wait);
    }
}

#[tokio::test]
async fn a_message_back_before_its_events_retry_is_due_is_postponed_again_without_an_attempt() {
    let busy = AttemptResult::Answered { status: 503, retry_after: Some(Duration::from_secs(86400)) };
    let w = world(&ALL, vec![busy], NO_DELAY);
    let job = JobId::generate(random());
    let queued = w.record(&job, 1);

    assert_eq!(w.deliver(&queued).await, Settled::Later(webhook::MAX_DELAY), "a day is more than SQS allows at once");
    let due = w.stored(&job, 1).next_attempt_at.unwrap();
    assert_eq!(due.as_datetime() - epoch(), chrono::Duration::days(1), "the receiver's day is kept as the due time");
    w.clock.advance(webhook::MAX_DELAY);
    assert_eq!(w.deliver(&queued).await, Settled::Later(webhook::MAX_DELAY));
    w.clock.advance(webhook::MAX_DELAY);
    assert_eq!(w.deliver(&queued).await, Settled::Later(Duration::from_secs(30 * 60)));
    assert_eq!(w.posted(), [1], "no attempt before the due time");
    assert_eq!(w.stored(&job, 1).next_attempt_at, Some(due), "waiting again changes nothing in the outbox");
    w.clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(w.deliver(&queued).await, Settled::Done(Some(DeliveryStatus::Delivered)));
    assert!(w.queue.dead.lock().unwrap().is_empty());
}

#[tokio::test]
async fn two_deliverers_answered_2xx_the_second_record_is_refused_and_its_message_done() {
    let w = world(&ALL, vec![], NO_DELAY);
    let job = JobId::generate(random());
    let queued = w.record(&job, 1);
    let stale = w.stored(&job, 1);
    assert_eq!(w.deliver(&queued).await, Settled::Done(Some(DeliveryStatus::Delivered)));

    // A second deliverer read the event while it was pending and got its own 2xx.
    let mut known = BTreeMap::from([(1, stale)]);
    let settled = w.deliverer.settle(&job, 1, &mut known, None, &CallbackCache::default()).await.unwrap();
    assert_eq!(settled, Settled::Done(Some(DeliveryStatus::Delivered)));
    assert_eq!(w.stored(&job, 1).attempts.len(), 1, "the refused record added nothing");
    assert_eq!(w.posted(), [1, 1]);
}
