//! Every use case against the in-memory ports: the paths a user sees, failures included.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::app::App;
use crate::clock::Clock;
use crate::delivery::{Deliverer, DelivererPorts};
use crate::error::{QueueError, StoreError, UseCaseError};
use crate::event::{DeliveryStatus, DeliveryUpdate, RecordEvent};
use crate::ids::{AccountId, AppId, JobId, RoomId, UserId};
use crate::job::{Job, JobKind, JobState, StopReason};
use crate::jocloud::{RecordingState, RecordingView};
use crate::ports::{AppStore, EventLog, JobFilter, PageRequest, RuleStore};
use crate::publish::{PublishBase, PublishUrl, StreamKey};
use crate::reach::StreamPolicy;
use crate::record::JobRecord;
use crate::room::{MediaSession, VideoType};
use crate::testing::{
    ManualClock, MemBlobsProvider, MemDeliveryQueue, MemEventLog, MemEventSource, MemJobQueue, MemPresigner, MemStore,
    ScriptedNotifier, SeqRandom,
};
use crate::time::Timestamp;
use crate::url::{PrivateAddresses, StreamUrl};

/// Presigned download URLs and playable playlists.
mod files;
/// Listings, room reads and files at scale: what they read.
mod growth;
/// One rule per app: create or update, races, apps with rules from before.
mod rules;

const CALLBACK: &str = r#"{"url":"https://hooks.example.com/cb","auth_key":"8923ab8c2dcef4538923ab8c2dcef453"}"#;

/// Every use case over one set of in-memory ports.
struct World {
    store: Arc<MemStore>,
    queue: Arc<MemJobQueue>,
    events: Arc<MemEventLog>,
    notifier: Arc<ScriptedNotifier>,
    clock: Arc<ManualClock>,
    access: Access,
    apps: Apps,
    rules: Rules,
    callbacks: Callbacks,
    jobs: Jobs,
    job_events: JobEvents,
    rooms: Rooms,
    jocloud: Jocloud,
    files: Files,
    storage: Arc<MemBlobsProvider>,
}

fn world() -> World {
    let store = Arc::new(MemStore::default());
    let clock = Arc::new(ManualClock::default());
    let queue = Arc::new(MemJobQueue::new(clock.clone()));
    let events = Arc::new(MemEventLog::default());
    let notifier = Arc::new(ScriptedNotifier::default());
    let random = Arc::new(SeqRandom::new(11));
    let quotas = QuotaPorts { apps: store.clone(), quotas: store.clone(), rooms: store.clone() };
    let jobs = Jobs::new(store.clone(), store.clone(), queue.clone(), quotas, clock.clone(), random.clone());
    let storage = Arc::new(MemBlobsProvider::default());
    let files = Files::new(FilesPorts {
        jobs: jobs.clone(),
        rules: store.clone(),
        presigner: Arc::new(MemPresigner { provider: storage.clone() }),
        blobs: storage.clone(),
    });
    let jocloud = Jocloud::new(JocloudPorts {
        recordings: store.clone(),
        rooms: store.clone(),
        rules: store.clone(),
        jobs: jobs.clone(),
        files: files.clone(),
        clock: clock.clone(),
        random: random.clone(),
    });
    World {
        access: Access::new(store.clone(), store.clone(), clock.clone(), random.clone()),
        apps: Apps::new(AppsPorts {
            apps: store.clone(),
            rules: store.clone(),
            callbacks: store.clone(),
            rooms: store.clone(),
            job_store: store.clone(),
            jobs: jobs.clone(),
            clock: clock.clone(),
            random: random.clone(),
        }),
        rules: Rules::new(store.clone(), clock.clone(), random.clone()),
        callbacks: Callbacks::new(store.clone(), notifier.clone(), PrivateAddresses::Refuse, clock.clone()),
        job_events: JobEvents::new(jobs.clone(), events.clone()),
        rooms: Rooms::new(RoomsPorts {
            rooms: store.clone(),
            apps: store.clone(),
            rules: store.clone(),
            jobs: jobs.clone(),
            jocloud: jocloud.clone(),
            clock: clock.clone(),
            random: random.clone(),
        }),
        jobs,
        jocloud,
        files,
        storage,
        store,
        queue,
        events,
        notifier,
        clock,
    }
}

fn account(name: &str) -> AccountId {
    AccountId::try_from(name).unwrap()
}

fn body<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).unwrap()
}

fn room() -> RoomId {
    RoomId::try_from("room001").unwrap()
}

fn user(name: &str) -> UserId {
    UserId::try_from(name).unwrap()
}

fn individual_body(rule: &str) -> String {
    format!(r#"{{"room_id":"room001","user_id":"user001","record_param":{{"record_rule_id":"{rule}"}}}}"#)
}

fn mix_body(rule: &str) -> String {
    format!(
        r#"{{"mix_param":{{"room_id":"room001","encode_template":"640x360_15_500"}},"record_param":{{"record_rule_id":"{rule}"}}}}"#
    )
}

/// The first page of a listing, `limit` long.
fn first_page(limit: usize) -> PageRequest {
    PageRequest { after: None, offset: 0, limit }
}

fn not_found_field(result: Result<impl std::fmt::Debug, UseCaseError>) -> &'static str {
    match result {
        Err(UseCaseError::NotFound { field, .. }) => field,
        other => panic!("expected not found, got {other:?}"),
    }
}

impl World {
    /// An app of account `alice` and its HLS rule.
    async fn app_with_rule(&self) -> (OwnedApp, String) {
        let app = self.apps.create(&account("alice"), body(r#"{"app_name":"rtctest"}"#)).await.unwrap();
        let owned = self.access.app(&account("alice"), app.app_id.as_str()).await.unwrap();
        let rule = self
            .rules
            .create_or_update(
                &owned,
                body(r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1"},"record_formats":["HLS"]}"#),
            )
            .await
            .unwrap();
        (owned, rule.rule.rule_id.to_string())
    }

    async fn individual(&self, app: &OwnedApp, rule: &str) -> Job {
        self.jobs.create_individual(app, body(&individual_body(rule))).await.unwrap()
    }

    /// What a worker's claim writes.
    fn claim(&self, job: &Job) {
        let mut record = self.store.job(&job.app_id, &job.job_id).unwrap();
        record.claim("w1", self.clock.now(), Duration::from_secs(30)).unwrap();
        record.version += 1;
        self.store.put_job_record(record);
    }

    /// The callback deliverer over this world's outbox and callbacks, posting to `notifier`,
    /// fed by the events queue.
    fn event_source(&self, notifier: Arc<ScriptedNotifier>) -> MemEventSource {
        let queue = Arc::new(MemDeliveryQueue::default());
        let deliverer = Deliverer::new(DelivererPorts {
            events: self.events.clone(),
            callbacks: self.store.clone(),
            notifier,
            queue: queue.clone(),
            clock: self.clock.clone(),
            random: Arc::new(SeqRandom::new(13)),
            metrics: Arc::new(crate::testing::MemMetrics::default()),
        });
        MemEventSource::new(self.clock.clone(), self.events.clone(), queue, deliverer)
    }

    async fn join(&self, app: &OwnedApp, who: &str) -> bool {
        self.clock.advance(Duration::from_millis(5));
        let request = body(r#"{"url":"rtmp://media.example.com/live/x"}"#);
        self.rooms.put_stream(app, room(), user(who), request).await.unwrap().1
    }
}

// ---- access and apps ----

#[tokio::test]
async fn an_issued_credential_authenticates_its_account_and_nothing_else_does() {
    let w = world();
    let issued = w.access.issue_credential(account("alice")).await.unwrap();
    let key = issued.key_id.as_str();
    assert_eq!(w.access.authenticate(key, &issued.secret).await.unwrap(), Some(account("alice")));
    assert_eq!(w.access.authenticate(key, "wrong").await.unwrap(), None);
    assert_eq!(w.access.authenticate("nonsense", &issued.secret).await.unwrap(), None);
}

#[tokio::test]
async fn a_registered_key_id_cannot_be_taken_by_another_account_or_with_a_short_secret() {
    let w = world();
    let key = crate::ids::KeyId::generate(crate::testing::random());
    let secret = "s".repeat(40);
    w.access.register_credential(account("alice"), key.clone(), &secret).await.unwrap();
    let taken = w.access.register_credential(account("bob"), key.clone(), &secret).await;
    assert!(matches!(taken, Err(UseCaseError::Conflict(m)) if m.starts_with("key_id")));
    let short = w.access.register_credential(account("alice"), key, "short").await;
    assert!(matches!(short, Err(UseCaseError::Invalid(i)) if i.field == "secret"));
}

#[tokio::test]
async fn another_accounts_app_is_not_found_like_a_missing_one() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    assert_eq!(not_found_field(w.access.app(&account("mallory"), app.id().as_str()).await), "app_id");
    assert_eq!(not_found_field(w.access.app(&account("alice"), "not-an-id").await), "app_id");
    assert_eq!(w.access.app(&account("alice"), app.id().as_str()).await.unwrap().app(), app.app());
}

#[tokio::test]
async fn apps_are_created_listed_renamed_and_deleted_per_account() {
    let w = world();
    let app = w.apps.create(&account("alice"), body(r#"{"app_name":"one"}"#)).await.unwrap();
    w.apps.create(&account("bob"), body(r#"{"app_name":"two"}"#)).await.unwrap();
    assert_eq!(w.apps.list(&account("alice")).await.unwrap(), vec![app.clone()]);
    let owned = w.access.app(&account("alice"), app.app_id.as_str()).await.unwrap();
    let renamed = w.apps.update(owned, body(r#"{"app_name":"renamed"}"#)).await.unwrap();
    assert_eq!(String::from(renamed.app().app_name.clone()), "renamed");
    w.apps.delete(renamed).await.unwrap();
    assert!(w.apps.list(&account("alice")).await.unwrap().is_empty());
    let missing = w.apps.create(&account("alice"), body("{}")).await;
    assert!(matches!(missing, Err(UseCaseError::Invalid(i)) if i.field == "app_name"));
}

// ---- rules and callbacks ----

#[tokio::test]
async fn a_callback_is_set_read_and_removed_and_a_private_address_is_refused_naming_url() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let saved = w.callbacks.put(&app, body(CALLBACK)).await.unwrap();
    assert_eq!(w.callbacks.get(&app).await.unwrap(), saved);
    w.callbacks.delete(&app).await.unwrap();
    assert_eq!(not_found_field(w.callbacks.get(&app).await), "record-callback");
    assert_eq!(not_found_field(w.callbacks.delete(&app).await), "record-callback");

    w.notifier.refuse_all("resolves to 10.0.0.1");
    let refused = w.callbacks.put(&app, body(CALLBACK)).await;
    assert!(matches!(refused, Err(UseCaseError::Invalid(i)) if i.field == "url"));
}

// ---- jobs ----

#[tokio::test]
async fn a_created_job_is_init_queued_and_found_only_under_its_own_kind() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    assert_eq!(job.state, JobState::Init);
    let queued: Vec<JobId> = w.queue.messages().into_iter().map(|m| m.message.job_id).collect();
    assert_eq!(queued, vec![job.job_id.clone()]);
    assert_eq!(w.jobs.get(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap(), job);
    assert_eq!(not_found_field(w.jobs.get(&app, JobKind::Mix, job.job_id.as_str()).await), "job_id");

    let mix = w.jobs.create_mix(&app, body(&mix_body(&rule))).await.unwrap();
    let filter = JobFilter { kind: JobKind::Mix, room_id: None, state: None };
    assert_eq!(w.jobs.list(&app, &filter, &first_page(20)).await.unwrap().jobs, vec![mix]);
}

#[tokio::test]
async fn a_job_naming_a_missing_rule_is_refused_naming_the_field() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let missing = "5d0ec2c53a2c15625017adb8bbbcd9ab";
    let result = w.jobs.create_individual(&app, body(&individual_body(missing))).await;
    assert_eq!(not_found_field(result), "record_param.record_rule_id");
    assert_eq!(w.store.job_count(), 0);
}

#[tokio::test]
async fn a_job_whose_message_cannot_be_queued_fails_and_leaves_no_init_job_behind() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.queue.fail_next(1);
    let result = w.jobs.create_individual(&app, body(&individual_body(&rule))).await;
    assert!(matches!(result, Err(UseCaseError::Queue(QueueError(_)))), "{result:?}");
    assert_eq!(w.store.job_count(), 0, "no worker would ever see it");
    assert!(w.queue.messages().is_empty());
}

#[tokio::test]
async fn stop_ends_an_unclaimed_job_at_once_and_is_idempotent() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    let stopped = w.jobs.stop(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    assert_eq!((stopped.state, stopped.stop_reason), (JobState::Stopped, Some(StopReason::TenantStop)));
    let again = w.jobs.stop(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    assert_eq!(again, stopped);
}

#[tokio::test]
async fn a_stop_racing_a_worker_claim_leaves_the_job_stopping_for_the_worker() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    // The worker's claim lands between the stop's read and its write.
    let now = w.clock.now();
    w.store.race_next_save(move |record: &mut JobRecord| {
        record.claim("w1", now, Duration::from_secs(30)).unwrap();
    });
    let stopped = w.jobs.stop(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    assert_eq!(stopped.state, JobState::Stopping, "the worker finalises its files");
    let stored = w.store.job(&job.app_id, &job.job_id).unwrap();
    assert_eq!(stored.lease.map(|l| l.owner), Some("w1".to_owned()), "the claim was not overwritten");
}

#[tokio::test]
async fn a_job_write_that_keeps_losing_races_answers_a_conflict_naming_the_job() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    w.claim(&job);
    for _ in 0..5 {
        w.store.race_next_save(|_| {});
    }
    let result = w.jobs.stop(&app, JobKind::Individual, job.job_id.as_str()).await;
    assert!(matches!(result, Err(UseCaseError::Conflict(m)) if m.starts_with("job_id")));
}

#[tokio::test]
async fn a_mix_layout_changes_while_recording_and_not_once_stopping() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let mix = w.jobs.create_mix(&app, body(&mix_body(&rule))).await.unwrap();
    w.claim(&mix);
    let update = body(r#"{"mix_param":{"layout_template":"screen_share_left"}}"#);
    let updated = w.jobs.update_mix(&app, mix.job_id.as_str(), update).await.unwrap();
    let crate::job::JobSpec::Mix { mix_param } = &updated.spec else { panic!("a mix") };
    assert_eq!(mix_param.layout_template, crate::mix::LayoutTemplate::ScreenShareLeft);

    let bad = w.jobs.update_mix(&app, mix.job_id.as_str(), body(r#"{"mix_param":{"max_idle_time":2}}"#)).await;
    assert!(matches!(&bad, Err(UseCaseError::Invalid(i)) if i.field == "mix_param.max_idle_time"), "{bad:?}");
    w.jobs.stop(&app, JobKind::Mix, mix.job_id.as_str()).await.unwrap();
    let late = w.jobs.update_mix(&app, mix.job_id.as_str(), body(r#"{"mix_param":{"max_idle_time":60}}"#)).await;
    assert!(matches!(late, Err(UseCaseError::Conflict(_))), "{late:?}");
}

#[tokio::test]
async fn a_store_outage_is_a_store_error_not_a_missing_job() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    w.store.set_down(true);
    let result = w.jobs.get(&app, JobKind::Individual, job.job_id.as_str()).await;
    assert!(matches!(result, Err(UseCaseError::Store(StoreError::Backend(_)))), "{result:?}");
}

// ---- job events ----

fn event(job: &Job, sequence: u64) -> RecordEvent {
    RecordEvent {
        event_id: format!("{}{sequence:04}", &job.job_id.as_str()[..28]),
        sequence,
        event_type: crate::callback::EventType::CloudRecordOver,
        app_id: job.app_id.clone(),
        job_id: job.job_id.clone(),
        room_id: job.room_id.clone(),
        stream_name: job.stream_name.clone(),
        record_format: None,
        file: None,
        detail_message: "TENANT_STOP".into(),
        create_time: crate::testing::now(),
    }
}

#[tokio::test]
async fn a_jobs_events_are_listed_in_order_and_one_is_redelivered_once_per_call() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    for sequence in [1, 2] {
        w.events.append(&event(&job, sequence)).await.unwrap();
    }
    let delivered = DeliveryUpdate {
        status: DeliveryStatus::Delivered,
        attempt: None,
        next_attempt_at: None,
        restart_schedule: false,
    };
    w.events.record_delivery(&job.job_id, 2, &delivered).await.unwrap();
    let listed = w.job_events.list(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    assert_eq!(listed.iter().map(|e| e.event.sequence).collect::<Vec<_>>(), [1, 2]);

    let second = &listed[1].event.event_id;
    let again = w.job_events.redeliver(&app, JobKind::Individual, job.job_id.as_str(), second).await.unwrap();
    assert_eq!(again.delivery_status, DeliveryStatus::Pending);
    assert_eq!(w.events.published().iter().map(|e| e.sequence).collect::<Vec<_>>(), [2]);
    let unknown = w.job_events.redeliver(&app, JobKind::Individual, job.job_id.as_str(), "nope").await;
    assert_eq!(not_found_field(unknown), "event_id");
    assert_eq!(not_found_field(w.job_events.list(&app, JobKind::Mix, job.job_id.as_str()).await), "job_id");
}

#[tokio::test]
async fn fifty_redeliveries_of_one_event_send_it_once_per_call() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.callbacks.put(&app, body(CALLBACK)).await.unwrap();
    let job = w.individual(&app, &rule).await;
    let first = event(&job, 1);
    w.events.append(&first).await.unwrap();
    w.events.publish(&first).await.unwrap();
    let notifier = Arc::new(ScriptedNotifier::default());
    let mut source = w.event_source(notifier.clone());
    source.run_until(w.clock.now()).await;
    assert_eq!(notifier.posted().len(), 1);

    for call in 1..=50 {
        let again = w.job_events.redeliver(&app, JobKind::Individual, job.job_id.as_str(), &first.event_id).await;
        assert_eq!(again.unwrap().delivery_status, DeliveryStatus::Pending);
        source.run_until(w.clock.now()).await;
        assert_eq!(notifier.posted().len(), 1 + call, "redelivery {call} sent the event exactly once");
    }
    assert!(source.is_empty());
    assert!(notifier.posted().iter().all(|p| p.headers.id == first.event_id));
    let nonces: std::collections::HashSet<_> = notifier.posted().iter().map(|p| p.headers.rtc_rand.clone()).collect();
    assert_eq!(nonces.len(), 51, "every attempt signs with a fresh X-Rtc-Rand");
}

#[tokio::test]
async fn fifty_redeliveries_at_once_while_the_receiver_fails_send_the_event_once_per_retry_not_once_per_call() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.callbacks.put(&app, body(CALLBACK)).await.unwrap();
    let job = w.individual(&app, &rule).await;
    let first = event(&job, 1);
    w.events.append(&first).await.unwrap();
    let busy = crate::webhook::AttemptResult::Answered { status: 503, retry_after: None };
    let back = w.clock.now() + chrono::Duration::minutes(10);
    let notifier = Arc::new(ScriptedNotifier::default().down_until(w.clock.clone(), back, busy));
    let mut source = w.event_source(notifier.clone());

    for _ in 0..50 {
        w.job_events.redeliver(&app, JobKind::Individual, job.job_id.as_str(), &first.event_id).await.unwrap();
    }
    source.run_until(w.clock.now() + chrono::Duration::days(2)).await;
    // 503 at once, after 5 s and after 5 min; delivered at the next retry, 30 min later.
    assert_eq!(notifier.posted().len(), 4, "the 50 queued copies make one attempt per retry between them");
    assert!(source.is_empty(), "every copy is done with");
    let stored = w.events.get(&job.job_id, 1).await.unwrap().unwrap();
    assert_eq!((stored.delivery_status, stored.attempts.len()), (DeliveryStatus::Delivered, 4));
}

// ---- rooms ----

#[tokio::test]
async fn joins_keep_their_order_an_update_keeps_the_join_and_a_leave_removes_the_stream() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    assert!(w.join(&app, "u2").await, "joined now");
    assert!(w.join(&app, "u1").await);
    assert!(!w.join(&app, "u2").await, "already in the room: an update");
    let roster: Vec<String> =
        w.rooms.list_streams(&app, room()).await.unwrap().into_iter().map(|s| s.user_id.to_string()).collect();
    assert_eq!(roster, ["u2", "u1"]);
    assert_eq!(w.rooms.get_stream(&app, room(), user("u1"), CAMERA).await.unwrap().user_id, user("u1"));
    w.rooms.delete_stream(&app, room(), user("u1"), CAMERA).await.unwrap();
    assert_eq!(not_found_field(w.rooms.get_stream(&app, room(), user("u1"), CAMERA).await), "user_id");
    assert_eq!(not_found_field(w.rooms.delete_stream(&app, room(), user("u1"), CAMERA).await), "user_id");
    let bad = w.rooms.put_stream(&app, room(), user("u3"), body("{}")).await;
    assert!(matches!(bad, Err(UseCaseError::Invalid(i)) if i.field == "url"));
}

fn invalid_field<T: std::fmt::Debug>(result: Result<T, UseCaseError>) -> String {
    match result {
        Err(UseCaseError::Invalid(invalid)) => invalid.field,
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn stream_urls_naming_internal_addresses_or_asking_to_listen_are_refused_when_saved() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:5000/bucket/key",
        "srt://media.example.com:9000?mode=listener",
        "rtsp://[::ffff:10.0.0.1]/cam",
        "rtmp://localhost/live/x",
    ] {
        let request = body(&format!(r#"{{"url":"{url}"}}"#));
        assert_eq!(invalid_field(w.rooms.put_stream(&app, room(), user("u1"), request).await), "url", "{url}");
    }
    assert!(w.rooms.list_streams(&app, room()).await.unwrap().is_empty());
    let public = body(r#"{"url":"rtmp://media.example.com/live/u1"}"#);
    assert!(w.rooms.put_stream(&app, room(), user("u1"), public).await.is_ok());
}

#[tokio::test]
async fn templates_naming_internal_addresses_are_refused_and_the_allow_list_admits_its_host_and_port() {
    let w = world();
    let template = r#"{"app_name":"a","stream_url_template":"rtmp://127.0.0.1:1935/live/{room_id}_{user_id}"}"#;
    assert_eq!(invalid_field(w.apps.create(&account("alice"), body(template)).await), "stream_url_template");
    let allowing = StreamPolicy::parse_allow_list("127.0.0.1:1935").unwrap();
    let apps = w.apps.clone().with_stream_policy(allowing.clone());
    assert!(apps.create(&account("alice"), body(template)).await.is_ok());
    let (app, _) = w.app_with_rule().await;
    let rooms = w.rooms.clone().with_stream_policy(allowing);
    assert!(rooms
        .put_stream(&app, room(), user("u1"), body(r#"{"url":"rtmp://127.0.0.1:1935/live/a"}"#))
        .await
        .is_ok());
    let other_port = body(r#"{"url":"rtmp://127.0.0.1:1936/live/a"}"#);
    assert_eq!(invalid_field(rooms.put_stream(&app, room(), user("u1"), other_port).await), "url");
    let metadata = body(r#"{"url":"http://169.254.169.254:1935/a.m3u8"}"#);
    assert_eq!(invalid_field(rooms.put_stream(&app, room(), user("u1"), metadata).await), "url");
}

#[tokio::test]
async fn a_join_under_an_auto_record_rule_starts_one_job_per_join() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.rules.update(&app, &rule, body(r#"{"auto_record":true}"#)).await.unwrap();
    w.clock.advance(Duration::from_secs(1));
    w.join(&app, "u1").await;
    w.join(&app, "u1").await;
    let filter = JobFilter { kind: JobKind::Individual, room_id: Some(room()), state: None };
    let jobs = w.jobs.list(&app, &filter, &first_page(20)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1, "an update of the same participant starts nothing");
    assert_eq!(jobs[0].user_id(), Some(&user("u1")));
    assert_eq!(w.queue.messages().len(), 1);
}

fn publish_base() -> PublishBase {
    PublishBase::parse("rtmp://media.example.com/live").unwrap()
}

/// Mints a publish URL for `who` in room001 with the request `json`.
async fn mint(w: &World, app: &OwnedApp, who: &str, json: &str) -> PublishUrl {
    w.rooms.publish_url(app, room(), user(who), body(json), &publish_base()).await.unwrap()
}

/// The camera, the default video type.
const CAMERA: VideoType = VideoType::Camerastream;

/// What nginx-rtmp reports when connection `session` publishes with URL `minted`: the stream
/// key split into app, room, user and video type, the query's signed fields.
fn hook_publish(minted: &str, session: &str) -> PublishEvent {
    let url = url::Url::parse(minted).unwrap();
    let key = url.path_segments().unwrap().next_back().unwrap().to_owned();
    let parsed = StreamKey::parse(&key).unwrap();
    let field = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap();
    PublishEvent {
        app_id: parsed.app_id,
        room_id: parsed.room_id,
        user_id: parsed.user_id,
        video_type: parsed.video_type,
        session: MediaSession::parse(session).unwrap(),
        call: PublishCall::Publish {
            url: StreamUrl::parse(&format!("rtmp://127.0.0.1/live/{key}"), "name").unwrap(),
            video_type: VideoType::parse(&field("video_type")).unwrap(),
            expires: field("expires").parse().unwrap(),
            signature: field("signature"),
        },
    }
}

/// What nginx-rtmp reports when connection `session` of `publish`'s stream ends.
fn hook_done(publish: &PublishEvent, session: &str) -> PublishEvent {
    PublishEvent { session: MediaSession::parse(session).unwrap(), call: PublishCall::PublishDone, ..publish.clone() }
}

fn hook_update(publish: &PublishEvent, session: &str) -> PublishEvent {
    PublishEvent { session: MediaSession::parse(session).unwrap(), call: PublishCall::Update, ..publish.clone() }
}

fn refused_field(result: Result<(), UseCaseError>) -> String {
    match result {
        Err(UseCaseError::Invalid(invalid)) => invalid.field,
        Err(UseCaseError::Expired { field, .. }) => field.to_owned(),
        Err(UseCaseError::Conflict(message)) => message.split(':').next().unwrap().to_owned(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_minted_url_joins_its_participant_with_the_signed_video_type_and_publish_done_leaves() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let minted = mint(&w, &app, "u1", r#"{"video_type":"SUBSTREAM","ttl_seconds":600}"#).await;
    assert!(
        minted.url.starts_with(&format!("rtmp://media.example.com/live/{}.room001.u1.SUBSTREAM?", app.id())),
        "{}",
        minted.url
    );
    assert_eq!(minted.expires_at, Timestamp::at(w.clock.now() + chrono::Duration::seconds(600)));
    let publish = hook_publish(&minted.url, "7");
    w.rooms.media_hook(publish.clone()).await.unwrap();
    let roster = w.rooms.list_streams(&app, room()).await.unwrap();
    assert_eq!((roster.len(), roster[0].video_type), (1, VideoType::Substream));
    assert_eq!(roster[0].url.as_str(), format!("rtmp://127.0.0.1/live/{}.room001.u1.SUBSTREAM", app.id()));
    w.rooms.media_hook(hook_done(&publish, "7")).await.unwrap();
    assert!(w.rooms.list_streams(&app, room()).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_hook_refuses_a_tampered_or_unsigned_publish_and_an_unknown_app() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let publish = hook_publish(&mint(&w, &app, "u1", "{}").await.url, "1");
    let PublishCall::Publish { url, video_type, expires, signature } = publish.call.clone() else { unreachable!() };
    let as_mallory = PublishEvent { user_id: user("mallory"), ..publish.clone() };
    let as_screen = PublishEvent {
        video_type: VideoType::Substream,
        call: PublishCall::Publish {
            url: url.clone(),
            video_type: VideoType::Substream,
            expires,
            signature: signature.clone(),
        },
        ..publish.clone()
    };
    let longer = PublishEvent {
        call: PublishCall::Publish {
            url: url.clone(),
            video_type,
            expires: expires + 86_400,
            signature: signature.clone(),
        },
        ..publish.clone()
    };
    let unsigned = PublishEvent {
        call: PublishCall::Publish { url: url.clone(), video_type, expires, signature: String::new() },
        ..publish.clone()
    };
    for event in [as_mallory, as_screen, longer, unsigned] {
        assert_eq!(refused_field(w.rooms.media_hook(event.clone()).await), "signature", "{event:?}");
    }
    assert!(w.rooms.list_streams(&app, room()).await.unwrap().is_empty(), "nobody joined");
    let key_unlike_query = PublishEvent { video_type: VideoType::Substream, ..publish.clone() };
    assert_eq!(refused_field(w.rooms.media_hook(key_unlike_query).await), "video_type");
    let stranger = PublishEvent { app_id: AppId::generate(crate::testing::random()), ..publish };
    assert_eq!(not_found_field(w.rooms.media_hook(stranger).await), "app_id");
}

#[tokio::test]
async fn an_expired_publish_url_is_refused() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let publish = hook_publish(&mint(&w, &app, "u1", r#"{"ttl_seconds":60}"#).await.url, "1");
    w.clock.advance(Duration::from_secs(60));
    assert_eq!(refused_field(w.rooms.media_hook(publish).await), "expires");
    assert!(w.rooms.list_streams(&app, room()).await.unwrap().is_empty());
}

#[tokio::test]
async fn rotating_the_publish_secret_refuses_urls_minted_before_and_never_shows_it() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let before = hook_publish(&mint(&w, &app, "u1", "{}").await.url, "1");
    let secret = w.rooms.rotate_publish_secret(&app).await.unwrap();
    assert_eq!(refused_field(w.rooms.media_hook(before).await), "signature");

    let app = w.access.app(&account("alice"), app.id().as_str()).await.unwrap();
    let app_json = serde_json::to_string(app.app()).unwrap();
    assert!(!app_json.contains(secret.stored()) && !app_json.contains("secret"), "{app_json}");
    let after = mint(&w, &app, "u1", "{}").await;
    assert!(!after.url.contains(secret.stored()));
    w.rooms.media_hook(hook_publish(&after.url, "2")).await.unwrap();
    assert_eq!(w.rooms.list_streams(&app, room()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_app_update_read_before_a_rotation_keeps_the_rotated_secret() {
    let w = world();
    let (stale, _) = w.app_with_rule().await;
    w.rooms.rotate_publish_secret(&stale).await.unwrap();
    let rotated = w.access.app(&account("alice"), stale.id().as_str()).await.unwrap();
    let minted = hook_publish(&mint(&w, &rotated, "u1", "{}").await.url, "1");

    w.apps.update(stale, body(r#"{"app_name":"renamed"}"#)).await.unwrap();
    w.rooms.media_hook(minted).await.unwrap();
    assert_eq!(w.rooms.list_streams(&rotated, room()).await.unwrap().len(), 1, "the rotated secret still signs");
}

#[tokio::test]
async fn a_publisher_the_media_server_stopped_reporting_is_replaced_after_90_s_and_a_reporting_one_never() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let first = hook_publish(&mint(&w, &app, "u1", "{}").await.url, "1");
    w.rooms.media_hook(first.clone()).await.unwrap();
    let second = hook_publish(&mint(&w, &app, "u1", r#"{"ttl_seconds":3600}"#).await.url, "2");
    for _ in 0..4 {
        w.clock.advance(Duration::from_secs(30));
        w.rooms.media_hook(hook_update(&first, "1")).await.unwrap();
        assert_eq!(refused_field(w.rooms.media_hook(second.clone()).await), "user_id", "a reporting session stays");
    }
    assert_eq!(refused_field(w.rooms.media_hook(hook_update(&first, "2")).await), "clientid", "not its stream");

    // The media server dies: no update, no publish_done.
    w.clock.advance(Duration::from_secs(89));
    assert_eq!(refused_field(w.rooms.media_hook(second.clone()).await), "user_id", "89 s of silence");
    w.clock.advance(Duration::from_secs(1));
    w.rooms.media_hook(second.clone()).await.unwrap();
    let now_in = w.rooms.get_stream(&app, room(), user("u1"), CAMERA).await.unwrap();
    assert_eq!(now_in.media_session, Some(MediaSession::parse("2").unwrap()));

    assert_eq!(refused_field(w.rooms.media_hook(hook_update(&first, "1")).await), "clientid", "the old session");
    w.rooms.media_hook(hook_done(&first, "1")).await.unwrap();
    assert_eq!(w.rooms.list_streams(&app, room()).await.unwrap().len(), 1, "its publish_done removes nothing");
}

#[tokio::test]
async fn a_stream_the_api_registered_is_never_replaced_by_a_publish() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    w.join(&app, "u1").await;
    w.clock.advance(Duration::from_secs(3600));
    let publish = hook_publish(&mint(&w, &app, "u1", "{}").await.url, "1");
    assert_eq!(refused_field(w.rooms.media_hook(publish).await), "user_id");
}

#[tokio::test]
async fn a_second_publisher_cannot_replace_a_live_participant_nor_remove_them_when_it_ends() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let first = hook_publish(&mint(&w, &app, "u1", "{}").await.url, "1");
    w.rooms.media_hook(first.clone()).await.unwrap();
    let joined = w.rooms.get_stream(&app, room(), user("u1"), CAMERA).await.unwrap();

    w.clock.advance(Duration::from_secs(5));
    let second = hook_publish(&mint(&w, &app, "u1", "{}").await.url, "2");
    assert_eq!(refused_field(w.rooms.media_hook(second.clone()).await), "user_id");
    w.rooms.media_hook(hook_done(&second, "2")).await.unwrap();
    assert_eq!(w.rooms.get_stream(&app, room(), user("u1"), CAMERA).await.unwrap(), joined, "the first session stays");

    w.rooms.media_hook(hook_done(&first, "1")).await.unwrap();
    assert!(w.rooms.list_streams(&app, room()).await.unwrap().is_empty(), "its own publish_done removes it");
    w.rooms.media_hook(second).await.unwrap();
    assert_eq!(w.rooms.list_streams(&app, room()).await.unwrap().len(), 1, "once the first left, the next joins");
    w.rooms.media_hook(hook_done(&first, "1")).await.unwrap();
    let now_in = w.rooms.get_stream(&app, room(), user("u1"), CAMERA).await.unwrap();
    assert_eq!(
        now_in.media_session,
        Some(MediaSession::parse("2").unwrap()),
        "a late publish_done of the older session"
    );
}

#[tokio::test]
async fn an_app_stored_without_a_publish_secret_gets_one_on_its_first_mint() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let legacy = App { publish_secret: None, ..app.app().clone() };
    w.store.put_app(app.account(), &legacy).await.unwrap();
    let app = w.access.app(&account("alice"), app.id().as_str()).await.unwrap();
    let minted = mint(&w, &app, "u1", "{}").await;
    assert!(w.store.find_app(app.id()).await.unwrap().unwrap().publish_secret.is_some());
    w.rooms.media_hook(hook_publish(&minted.url, "1")).await.unwrap();
    assert_eq!(w.rooms.list_streams(&app, room()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_publish_url_lasts_an_hour_by_default_and_refuses_lifetimes_outside_a_minute_to_a_day() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let minted = mint(&w, &app, "u1", "{}").await;
    assert_eq!(minted.expires_at, Timestamp::at(w.clock.now() + chrono::Duration::hours(1)));
    assert!(minted.url.contains("video_type=CAMERASTREAM"), "{}", minted.url);
    for ttl in ["59", "86401"] {
        let refused = w
            .rooms
            .publish_url(&app, room(), user("u1"), body(&format!(r#"{{"ttl_seconds":{ttl}}}"#)), &publish_base())
            .await;
        assert!(matches!(refused, Err(UseCaseError::Invalid(i)) if i.field == "ttl_seconds"), "{ttl}");
    }
}

// ---- Jocloud ----

async fn start(w: &World, app: &OwnedApp, rule: &str, extra: &str) -> RecordingView {
    let reservation = w.jocloud.apply_record(app, body("{}")).await.unwrap();
    let request = format!(r#"{{"resid":"{}","roomid":"room001","record_rule_id":"{rule}"{extra}}}"#, reservation.resid);
    w.jocloud.start_record(app, body(&request)).await.unwrap()
}

#[tokio::test]
async fn a_mixed_jocloud_recording_is_one_mix_job_updated_and_stopped_through_its_recordid() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let view = start(&w, &app, &rule, "").await;
    assert_eq!(view.jobs.len(), 1);
    let recordid = view.recordid.to_string();
    w.claim(&w.jobs.get(&app, JobKind::Mix, view.jobs[0].job_id.as_str()).await.unwrap());
    let update = format!(r#"{{"recordid":"{recordid}","layout_template":"screen_share_right"}}"#);
    w.jocloud.update_mix_record(&app, body(&update)).await.unwrap();
    let stopped = w.jocloud.stop_record(&app, body(&format!(r#"{{"recordid":"{recordid}"}}"#))).await.unwrap();
    assert_eq!(stopped.state, RecordingState::Stopped);
    assert_eq!(stopped.jobs[0].state, JobState::Stopping);
    let queried = w.jocloud.query_record(&app, body(&format!(r#"{{"recordid":"{recordid}"}}"#))).await.unwrap();
    assert_eq!(queried.recordid, view.recordid);
}

#[tokio::test]
async fn a_resid_starts_one_recording_within_five_minutes() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let reservation = w.jocloud.apply_record(&app, body("{}")).await.unwrap();
    let request = format!(r#"{{"resid":"{}","roomid":"room001","record_rule_id":"{rule}"}}"#, reservation.resid);
    w.jocloud.start_record(&app, body(&request)).await.unwrap();
    let reused = w.jocloud.start_record(&app, body(&request)).await;
    assert!(matches!(reused, Err(UseCaseError::Conflict(m)) if m.starts_with("resid")));

    let late = w.jocloud.apply_record(&app, body("{}")).await.unwrap();
    w.clock.advance(Duration::from_secs(301));
    let request = format!(r#"{{"resid":"{}","roomid":"room001","record_rule_id":"{rule}"}}"#, late.resid);
    let expired = w.jocloud.start_record(&app, body(&request)).await;
    assert!(matches!(expired, Err(UseCaseError::Expired { field: "resid", .. })), "{expired:?}");
}

#[tokio::test]
async fn a_source_recording_records_who_is_in_the_room_and_who_joins_later() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.join(&app, "u1").await;
    let view = start(&w, &app, &rule, r#","streamtype":2"#).await;
    assert_eq!(view.jobs.len(), 1);
    // Later to the second, so the jobs' order is the joins' and not their random ids'.
    w.clock.advance(Duration::from_secs(1));
    w.join(&app, "u2").await;
    let recordid = view.recordid.to_string();
    let queried = w.jocloud.query_record(&app, body(&format!(r#"{{"recordid":"{recordid}"}}"#))).await.unwrap();
    let users: Vec<String> = queried.jobs.iter().filter_map(|j| j.user_id.as_ref()).map(|u| u.to_string()).collect();
    assert_eq!(users, ["u1", "u2"]);
}

#[tokio::test]
async fn a_jocloud_recording_of_another_room_or_app_is_refused() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let view = start(&w, &app, &rule, "").await;
    let wrong_room = format!(r#"{{"recordid":"{}","roomid":"other"}}"#, view.recordid);
    let refused = w.jocloud.query_record(&app, body(&wrong_room)).await;
    assert!(matches!(refused, Err(UseCaseError::Invalid(i)) if i.field == "roomid"));
    let other = w.apps.create(&account("alice"), body(r#"{"app_name":"other"}"#)).await.unwrap();
    let other = w.access.app(&account("alice"), other.app_id.as_str()).await.unwrap();
    let query = format!(r#"{{"recordid":"{}"}}"#, view.recordid);
    assert_eq!(not_found_field(w.jocloud.query_record(&other, body(&query)).await), "recordid");
    assert!(w.store.get_rule(app.id(), &crate::ids::RuleId::parse(&rule).unwrap()).await.unwrap().is_some());
}

// ---- sweeper ----

#[tokio::test]
async fn the_sweeper_wakes_a_worker_for_jobs_nobody_will_take_and_for_no_other() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let sweeper = Sweeper::new(w.store.clone(), w.queue.clone(), w.clock.clone());
    let fresh = w.individual(&app, &rule).await;
    let (held, released, stopped) =
        (w.individual(&app, &rule).await, w.individual(&app, &rule).await, w.individual(&app, &rule).await);
    let swept = sweeper.sweep().await.unwrap();
    assert_eq!((swept.active, swept.requeued.len()), (4, 0), "every INIT job's message is on its way");

    w.clock.advance(INIT_GRACE);
    w.claim(&held);
    w.claim(&released);
    let mut record = w.store.job(&released.app_id, &released.job_id).unwrap();
    let lease = record.lease.clone().unwrap();
    record.release(&lease);
    w.store.put_job_record(record);
    w.jobs.stop(&app, JobKind::Individual, stopped.job_id.as_str()).await.unwrap();
    let before = w.queue.messages().len();
    let swept = sweeper.sweep().await.unwrap();
    assert_eq!(swept.active, 3);
    let mut requeued = swept.requeued.clone();
    requeued.sort();
    let mut expected = vec![fresh.job_id.clone(), released.job_id.clone()];
    expected.sort();
    assert_eq!(requeued, expected, "the lost INIT message and the handed-back job, not the held or stopped one");
    assert_eq!(w.queue.messages().len(), before + 2);

    // The held job's worker dies: once its lease runs out, it is woken too.
    w.clock.advance(Duration::from_secs(30));
    assert!(sweeper.sweep().await.unwrap().requeued.contains(&held.job_id));
}

#[tokio::test]
async fn a_job_the_sweeper_cannot_queue_is_reported_and_tried_again_next_time() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    let sweeper = Sweeper::new(w.store.clone(), w.queue.clone(), w.clock.clone()).with_init_grace(Duration::ZERO);
    w.queue.fail_next(1);
    let swept = sweeper.sweep().await.unwrap();
    assert_eq!((swept.requeued.clone(), swept.failed.clone()), (vec![], vec![job.job_id.clone()]));
    assert_eq!(sweeper.sweep().await.unwrap().requeued, vec![job.job_id]);
}

mod quotas;

/// A participant's camera and screen share at once.
mod streams;

/// Pause and resume: state rules, kinds, quotas.
mod pauses;
