//! The ports the core needs: one store per entity, the job queue, the event outbox, object
//! storage and the HTTP notifier. Adapters (`DynamoStore`, `SqsJobQueue`, …) implement them;
//! [`testing`](crate::testing) has an in-memory twin of each.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::callback::RecordCallback;
use crate::event::{DeliveryUpdate, RecordEvent, StoredEvent};
use crate::ids::{AccountId, AppId, JobId, KeyId, RecordId, ResId, RoomId, RuleId, UserId};
use crate::job::{Job, JobKind, JobState};
use crate::jocloud::{Recording, Reservation};
use crate::publish::PublishSecret;
use crate::quota::QuotaSettings;
use crate::record::{JobRecord, Lease};
use crate::room::{MediaSession, Room, RoomStream, VideoType};
use crate::rule::RecordRule;
use crate::storage::{Access, AccessError, Capped};
use crate::time::Timestamp;
use crate::url::CallbackUrl;
use crate::webhook::{AttemptResult, SignedHeaders};

pub use crate::error::{BackendError, QueueError, StoreError};

/// An API credential: the secret is kept only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub key_id: KeyId,
    pub account_id: AccountId,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_sha256: String,
    pub create_time: Timestamp,
}

/// Which jobs a listing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    pub kind: JobKind,
    pub room_id: Option<RoomId>,
    pub state: Option<JobState>,
}

/// Which page of a listing: `limit` jobs, after skipping `offset`, from where `after` left off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<JobCursor>,
    pub offset: usize,
    pub limit: usize,
}

/// Where a job listing (newest first) resumes: after the job created at `create_time` with
/// `job_id`, so a page costs the same however deep it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobCursor {
    pub create_time: Timestamp,
    pub job_id: JobId,
}

impl JobCursor {
    /// Where a listing resumes after `job`.
    pub fn after(job: &Job) -> Self {
        Self { create_time: job.create_time, job_id: job.job_id.clone() }
    }

    /// The cursor as the API's `next_token`: `{unix seconds}-{job_id}`.
    pub fn token(&self) -> String {
        format!("{}-{}", self.create_time.as_datetime().timestamp(), self.job_id)
    }

    /// A `next_token` read back; `None` if it is not one.
    pub fn parse(token: &str) -> Option<Self> {
        let (secs, job_id) = token.split_once('-')?;
        let secs = secs.parse::<i64>().ok().filter(|s| *s >= 0)?;
        let create_time = Timestamp::at(chrono::DateTime::from_timestamp(secs, 0)?);
        Some(Self { create_time, job_id: JobId::parse(job_id)? })
    }
}

/// One page of a job listing, and where the next one starts if there are more.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next: Option<JobCursor>,
}

/// Which jobs of a room [`JobStore::room_jobs`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomJobs {
    /// Those that have not ended (INIT, RUNNING, STOPPING).
    Active,
    /// Those created at or after this time, in any state.
    Since(Timestamp),
}

/// Most files [`JobStore::get_job`] reads with a job (its oldest).
pub const MAX_JOB_FILES: usize = 1000;

/// The message that wakes a worker for a job. The job store's lease, not the message, says
/// who records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub app_id: AppId,
    pub job_id: JobId,
    /// The lease a claim met when this message was sent again after a refusal: met again,
    /// renewed by the same worker, it shows the holder alive and the message a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_by: Option<Lease>,
}

impl JobMessage {
    /// A message waking a worker for `job_id`.
    pub fn wake(app_id: AppId, job_id: JobId) -> Self {
        Self { app_id, job_id, refused_by: None }
    }
}

/// API credentials.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The credential with this key id.
    async fn get_credential(&self, key_id: &KeyId) -> Result<Option<Credential>, StoreError>;
    /// Saves a new credential; `Conflict` if the key id exists.
    async fn create_credential(&self, credential: &Credential) -> Result<(), StoreError>;
    /// Removes a credential.
    async fn delete_credential(&self, key_id: &KeyId) -> Result<(), StoreError>;
}

/// Apps, each owned by one account.
#[async_trait]
pub trait AppStore: Send + Sync {
    /// An app of `account`; another account's app is `None`.
    async fn get_app(&self, account: &AccountId, app_id: &AppId) -> Result<Option<App>, StoreError>;
    /// An app by id alone, for trusted callers (the media hook, workers).
    async fn find_app(&self, app_id: &AppId) -> Result<Option<App>, StoreError>;
    /// The account that owns an app, for trusted callers (workers: a tenant role's ExternalId).
    async fn app_owner(&self, app_id: &AppId) -> Result<Option<AccountId>, StoreError>;
    /// Every app of `account`, oldest first.
    async fn list_apps(&self, account: &AccountId) -> Result<Vec<App>, StoreError>;
    /// Creates or replaces an app of `account`.
    async fn put_app(&self, account: &AccountId, app: &App) -> Result<(), StoreError>;
    /// Replaces an app of `account` that still exists, but not its publish secret; `false` if
    /// it does not exist (a concurrent delete is never undone).
    async fn update_app(&self, account: &AccountId, app: &App) -> Result<bool, StoreError>;
    /// Sets only the publish secret of an app of `account` that still exists (so a concurrent
    /// update keeps it); with `only_if_none`, only where it has none. `false` if not set.
    async fn set_publish_secret(
        &self,
        account: &AccountId,
        app_id: &AppId,
        secret: &PublishSecret,
        only_if_none: bool,
    ) -> Result<bool, StoreError>;
    /// Deletes an app; `false` if there was none.
    async fn delete_app(&self, account: &AccountId, app_id: &AppId) -> Result<bool, StoreError>;
}

/// Record rules of apps.
#[async_trait]
pub trait RuleStore: Send + Sync {
    /// A record rule of an app.
    async fn get_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<Option<RecordRule>, StoreError>;
    /// Every rule of an app, oldest first.
    async fn list_rules(&self, app_id: &AppId) -> Result<Vec<RecordRule>, StoreError>;
    /// Creates or replaces a rule, unconditionally (fixtures).
    async fn put_rule(&self, rule: &RecordRule) -> Result<(), StoreError>;
    /// Stores `rule` as its app's one rule; `false`, writing nothing, when the app has its rule
    /// already (of two racing creates, one wins). Rules `put_rule` stored do not count.
    async fn create_rule(&self, rule: &RecordRule) -> Result<bool, StoreError>;
    /// Replaces a rule that still exists; `false` if it does not.
    async fn update_rule(&self, rule: &RecordRule) -> Result<bool, StoreError>;
    /// Deletes a rule; `false` if there was none.
    async fn delete_rule(&self, app_id: &AppId, rule_id: &RuleId) -> Result<bool, StoreError>;
}

/// The record callback of each app.
#[async_trait]
pub trait CallbackStore: Send + Sync {
    /// The app's record callback.
    async fn get_callback(&self, app_id: &AppId) -> Result<Option<RecordCallback>, StoreError>;
    /// Creates or replaces the app's record callback.
    async fn put_callback(&self, app_id: &AppId, callback: &RecordCallback) -> Result<(), StoreError>;
    /// Replaces the app's record callback if it still has one; `false` if not.
    async fn update_callback(&self, app_id: &AppId, callback: &RecordCallback) -> Result<bool, StoreError>;
    /// Deletes the app's record callback; `false` if there was none.
    async fn delete_callback(&self, app_id: &AppId) -> Result<bool, StoreError>;
}

/// Rooms and their rosters.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// `user`'s stream of `video_type` in a room (streams are keyed by user and video type).
    async fn get_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
    ) -> Result<Option<RoomStream>, StoreError>;
    /// A room's roster in join order.
    async fn list_streams(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<RoomStream>, StoreError>;
    /// Saves a participant stream that joined now; `Conflict` if the user has a stream of its
    /// video type in the room.
    async fn create_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), StoreError>;
    /// Replaces a participant stream that is still in the room; `false` if it left.
    async fn update_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<bool, StoreError>;
    /// Removes `user`'s stream of `video_type`; `false` if there was none.
    async fn delete_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
    ) -> Result<bool, StoreError>;
    /// Records that media session `session`, which registered `user`'s stream of
    /// `video_type`, still publishes at `seen`; `false` if that stream is not its own (any
    /// more).
    async fn touch_session_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
        session: &MediaSession,
        seen: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Removes `user`'s stream of `video_type` only if media session `session` registered it;
    /// `false` if there was none or another session's (or the API's) is there now.
    async fn delete_session_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
        video_type: VideoType,
        session: &MediaSession,
    ) -> Result<bool, StoreError>;
    /// Notes the join with `join_seq` in the room, creating the room (at `now`) if it has
    /// none; returns the room.
    async fn open_room(&self, app_id: &AppId, room: &RoomId, join_seq: i64, now: Timestamp)
        -> Result<Room, StoreError>;
    /// The room, while anyone is in it.
    async fn get_room(&self, app_id: &AppId, room: &RoomId) -> Result<Option<Room>, StoreError>;
    /// Removes the room unless someone joined since it was read; `false` if someone did.
    async fn close_room(&self, app_id: &AppId, room: &Room) -> Result<bool, StoreError>;
    /// Removes every room and stream of an app (the app is being deleted).
    async fn delete_app_rooms(&self, app_id: &AppId) -> Result<(), StoreError>;
}

/// Recording jobs: the API's view and the stored record with its version and lease.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// A job of an app, as stored, with its files (items of their own: the oldest
    /// [`MAX_JOB_FILES`]) in `job.record_files`.
    async fn get_job(&self, app_id: &AppId, job_id: &JobId) -> Result<Option<JobRecord>, StoreError>;
    /// The jobs of these (app, job) ids that exist, as stored but without their files, in no
    /// particular order, read together.
    async fn get_jobs(&self, jobs: &[(AppId, JobId)]) -> Result<Vec<JobRecord>, StoreError>;
    /// One page of an app's jobs matching `filter`, newest first (ties by job id, highest
    /// first), without their files; read through an index, so a page costs the same however
    /// many jobs the app has.
    async fn list_jobs(&self, app_id: &AppId, filter: &JobFilter, page: &PageRequest) -> Result<JobPage, StoreError>;
    /// Every job of `kind` in a room that `which` picks, in no particular order, without
    /// their files; read through an index, so it costs what those jobs do, not what the app's
    /// other jobs do.
    async fn room_jobs(
        &self,
        app_id: &AppId,
        kind: JobKind,
        room: &RoomId,
        which: RoomJobs,
    ) -> Result<Vec<Job>, StoreError>;
    /// Saves a new job of `account` at version 1; `Conflict` if the id exists.
    async fn create_job(&self, account: &AccountId, job: &Job) -> Result<(), StoreError>;
    /// Saves a changed record if its stored version is still `record.version`; bumps the
    /// version. Its `new_files` are stored first, each as an item of its own (a file whose
    /// job write then loses is still a file the job made).
    async fn save_job(&self, record: &JobRecord) -> Result<(), StoreError>;
    /// Deletes a job (used to undo a create whose enqueue failed).
    async fn delete_job(&self, app_id: &AppId, job_id: &JobId) -> Result<(), StoreError>;
    /// Every job of every app that has not ended (INIT, RUNNING, STOPPING), as stored; for
    /// the sweeper, so it may lag the latest writes by a moment.
    async fn active_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
    /// How many jobs of `account` have not ended; may lag the latest writes by a moment.
    async fn count_account_jobs(&self, account: &AccountId) -> Result<u64, StoreError>;
    /// The jobs of `account` that have not ended; may lag the latest writes by a moment.
    async fn account_jobs(&self, account: &AccountId) -> Result<Vec<Job>, StoreError>;
}

/// The quotas an operator set for each account.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// The account's quota settings (all unset if it has none).
    async fn get_quotas(&self, account: &AccountId) -> Result<QuotaSettings, StoreError>;
    /// Saves the account's quota settings.
    async fn put_quotas(&self, account: &AccountId, quotas: &QuotaSettings) -> Result<(), StoreError>;
}

/// Per-app, per-day usage counters (metering): added to once per job when it ends, read
/// by the account's usage summary.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds the ended `job`'s `usage` to `app`'s counters of `day` (UTC); a job already
    /// counted there is not counted again.
    async fn add_usage(
        &self,
        account: &AccountId,
        app: &AppId,
        day: chrono::NaiveDate,
        job: &JobId,
        usage: &crate::usage::Usage,
    ) -> Result<(), StoreError>;
    /// The counters of every app of `account` from `from` to `to`, both included.
    async fn daily_usage(
        &self,
        account: &AccountId,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<crate::usage::DailyUsage>, StoreError>;
}

/// Every entity store at once, for processes that need several (the worker, operator tools).
pub trait Store: CredentialStore + AppStore + RuleStore + CallbackStore + RoomStore + JobStore + UsageStore {}

impl<T: CredentialStore + AppStore + RuleStore + CallbackStore + RoomStore + JobStore + UsageStore> Store for T {}

/// Jocloud's reserved recording resources and its recordings.
#[async_trait]
pub trait RecordingStore: Send + Sync {
    /// Saves a new reservation.
    async fn put_reservation(&self, reservation: &Reservation) -> Result<(), StoreError>;
    /// A reservation of the app, used or not, expired or not (until storage drops it).
    async fn get_reservation(&self, app_id: &AppId, resid: &ResId) -> Result<Option<Reservation>, StoreError>;
    /// Marks the reservation used by `record_id` if it is unused and expires after
    /// `now_secs`; `Conflict` otherwise (unknown, used or expired).
    async fn consume_reservation(
        &self,
        app_id: &AppId,
        resid: &ResId,
        record_id: &RecordId,
        now_secs: i64,
    ) -> Result<(), StoreError>;
    /// Creates or replaces a recording; an open source recording is also listed for its room.
    async fn put_recording(&self, recording: &Recording) -> Result<(), StoreError>;
    /// A recording of the app.
    async fn get_recording(&self, app_id: &AppId, record_id: &RecordId) -> Result<Option<Recording>, StoreError>;
    /// The open source-stream recordings of a room: those a participant who joins now joins.
    async fn open_recordings(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<Recording>, StoreError>;
}

/// The event outbox and the queue that feeds callback delivery.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// The next sequence number of `job_id`'s events (1, 2, …), atomically.
    async fn next_sequence(&self, job_id: &JobId) -> Result<u64, StoreError>;
    /// Records an event; `Conflict` if its sequence is taken.
    async fn append(&self, event: &RecordEvent) -> Result<(), StoreError>;
    /// A job's events in sequence order.
    async fn list(&self, job_id: &JobId) -> Result<Vec<RecordEvent>, StoreError> {
        Ok(self.list_stored(job_id).await?.into_iter().map(|s| s.event).collect())
    }
    /// A job's events with their delivery logs, in sequence order.
    async fn list_stored(&self, job_id: &JobId) -> Result<Vec<StoredEvent>, StoreError>;
    /// One event with its delivery log.
    async fn get(&self, job_id: &JobId, sequence: u64) -> Result<Option<StoredEvent>, StoreError>;
    /// The job's events with these sequences (those that exist), with their delivery logs.
    async fn get_many(&self, job_id: &JobId, sequences: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let mut found = Vec::with_capacity(sequences.len());
        for &sequence in sequences {
            found.extend(self.get(job_id, sequence).await?);
        }
        Ok(found)
    }
    /// Sets an event's delivery status, appends an attempt, sets or clears the next due time, as
    /// one conditional write: `Conflict` when the event is missing or already settled
    /// (DELIVERED, SKIPPED, FAILED), so a slower deliverer's late record never undoes a
    /// settlement. Only a redelivery (`restart_schedule`) applies to a settled event.
    async fn record_delivery(&self, job_id: &JobId, sequence: u64, update: &DeliveryUpdate) -> Result<(), StoreError>;
    /// Queues a recorded event for delivery.
    async fn publish(&self, event: &RecordEvent) -> Result<(), QueueError>;
}

/// A byte range of a file: `length` bytes from `offset`.
#[derive(Debug, Clone, Copy)]
pub struct FilePart<'a> {
    pub path: &'a std::path::Path,
    pub offset: u64,
    pub length: u64,
}

/// What a [`Blobs::put`] may replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfStored {
    /// Whatever is stored, or nothing.
    Any,
    /// Only the object with this ETag (as [`Blobs::put`] or [`Blobs::get`] returned it).
    Matches(String),
}

/// An object as read: its bytes and its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub body: Vec<u8>,
    pub etag: String,
}

/// Object storage for recordings.
#[async_trait]
pub trait Blobs: Send + Sync {
    /// Writes a whole object if what is stored is `when`; returns its ETag. `Conflict` when
    /// the condition failed (another writer replaced the object). The body is shared, not
    /// copied, by each attempt of a retried write.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        content_type: &str,
        when: IfStored,
    ) -> Result<String, StoreError>;
    /// Starts a multipart upload; returns its id.
    async fn start_multipart(&self, bucket: &str, key: &str, content_type: &str) -> Result<String, StoreError>;
    /// Uploads part `number` (from 1) streamed from a file on disk; returns its ETag.
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        part: FilePart<'_>,
    ) -> Result<String, StoreError>;
    /// Completes a multipart upload from its parts' ETags, in order.
    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), StoreError>;
    /// Reads a whole object; `None` if there is none.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Object>, StoreError>;
    /// Reads an object of at most `max_bytes` as it streams in, stopping at the cap
    /// (a tenant's image, say, which may be any size).
    async fn get_capped(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Capped, StoreError>;
    /// The keys and sizes of the objects whose key starts with `prefix`, in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, StoreError>;
    /// Deletes objects in as few calls as the store allows (none for no keys; nothing for a
    /// key with no object).
    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), StoreError>;
    /// Abandons a multipart upload.
    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), StoreError>;
    /// The size of an object, if it exists.
    async fn size(&self, bucket: &str, key: &str) -> Result<Option<u64>, StoreError>;
}

/// Object storage as a job reaches it: with the worker's own credentials, or as the tenant's
/// role (assumed once, its credentials refreshed before they expire).
#[async_trait]
pub trait BlobsProvider: Send + Sync {
    /// Object storage reached with `access`.
    async fn blobs(&self, access: &Access) -> Result<std::sync::Arc<dyn Blobs>, AccessError>;
}

/// Signs URLs that GET an object with no credentials of the caller's own.
#[async_trait]
pub trait Presigner: Send + Sync {
    /// A URL that reads `key` in `bucket` for `lifetime`, signed with `access`'s credentials
    /// (a role session's URL stops working when the session ends, whatever `lifetime` says).
    async fn presign_get(
        &self,
        access: &Access,
        bucket: &str,
        key: &str,
        lifetime: std::time::Duration,
    ) -> Result<String, AccessError>;
}

/// The queue workers take jobs from.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends one job message.
    async fn enqueue(&self, message: &JobMessage) -> Result<(), QueueError>;
}

/// POSTs signed callbacks, refusing addresses the deployment may not reach.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// One attempt: POST `body` (JSON) with the webhook headers to `url`.
    async fn post(&self, url: &CallbackUrl, headers: &SignedHeaders, body: Vec<u8>) -> AttemptResult;
    /// Why `url` may never be called (it resolves to a refused address), if it may not.
    async fn refusal(&self, url: &CallbackUrl) -> Option<String>;
}

/// The events queue as the deliverer sees it: messages can be postponed or dead-lettered.
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Makes the received message with `receipt` visible again after `delay`.
    async fn postpone(&self, receipt: &str, delay: std::time::Duration) -> Result<(), QueueError>;
    /// Parks an undeliverable event on the dead-letter queue.
    async fn dead_letter(&self, event: &RecordEvent) -> Result<(), QueueError>;
}

/// Preflights, kept a day so their answer can be read again once the worker probed.
#[async_trait]
pub trait PreflightStore: Send + Sync {
    /// Saves a new preflight.
    async fn put_preflight(&self, record: &crate::preflight::PreflightRecord) -> Result<(), StoreError>;
    /// A preflight of an app, while it is kept.
    async fn get_preflight(
        &self,
        app_id: &AppId,
        preflight_id: &crate::preflight::PreflightId,
    ) -> Result<Option<crate::preflight::PreflightRecord>, StoreError>;
    /// Replaces a preflight that is still kept (the worker's probe results); `false` if it is
    /// gone.
    async fn update_preflight(&self, record: &crate::preflight::PreflightRecord) -> Result<bool, StoreError>;
}

/// The jobs queue as a preflight uses it: a probe message for a worker.
#[async_trait]
pub trait ProbeQueue: Send + Sync {
    /// Sends one probe message.
    async fn enqueue_probe(&self, message: &crate::preflight::ProbeMessage) -> Result<(), QueueError>;
}
