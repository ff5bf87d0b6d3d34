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
use crate::record::{JobRecord, Lease};
use crate::room::{MediaSession, Room, RoomStream};
use crate::rule::RecordRule;
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
    /// Every app of `account`, oldest first.
    async fn list_apps(&self, account: &AccountId) -> Result<Vec<App>, StoreError>;
    /// Creates or replaces an app of `account`.
    async fn put_app(&self, account: &AccountId, app: &App) -> Result<(), StoreError>;
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
    /// Creates or replaces a rule.
    async fn put_rule(&self, rule: &RecordRule) -> Result<(), StoreError>;
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
    /// Deletes the app's record callback; `false` if there was none.
    async fn delete_callback(&self, app_id: &AppId) -> Result<bool, StoreError>;
}

/// Rooms and their rosters.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// One participant stream of a room.
    async fn get_stream(&self, app_id: &AppId, room: &RoomId, user: &UserId) -> Result<Option<RoomStream>, StoreError>;
    /// A room's roster in join order.
    async fn list_streams(&self, app_id: &AppId, room: &RoomId) -> Result<Vec<RoomStream>, StoreError>;
    /// Saves a participant stream that joined now; `Conflict` if the user is in the room.
    async fn create_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), StoreError>;
    /// Creates or replaces a participant stream.
    async fn put_stream(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), StoreError>;
    /// Removes a participant stream; `false` if there was none.
    async fn delete_stream(&self, app_id: &AppId, room: &RoomId, user: &UserId) -> Result<bool, StoreError>;
    /// Removes a participant stream only if media session `session` registered it; `false`
    /// if there was none or another session's (or the API's) is there now.
    async fn delete_session_stream(
        &self,
        app_id: &AppId,
        room: &RoomId,
        user: &UserId,
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
}

/// Recording jobs: the API's view and the stored record with its version and lease.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// A job of an app, as stored.
    async fn get_job(&self, app_id: &AppId, job_id: &JobId) -> Result<Option<JobRecord>, StoreError>;
    /// The jobs of these (app, job) ids that exist, as stored, in no particular order, read
    /// together.
    async fn get_jobs(&self, jobs: &[(AppId, JobId)]) -> Result<Vec<JobRecord>, StoreError>;
    /// Jobs of an app matching `filter`, newest first.
    async fn list_jobs(&self, app_id: &AppId, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;
    /// Saves a new job at version 1; `Conflict` if the id exists.
    async fn create_job(&self, job: &Job) -> Result<(), StoreError>;
    /// Saves a changed record if its stored version is still `record.version`; bumps the version.
    async fn save_job(&self, record: &JobRecord) -> Result<(), StoreError>;
    /// Deletes a job (used to undo a create whose enqueue failed).
    async fn delete_job(&self, app_id: &AppId, job_id: &JobId) -> Result<(), StoreError>;
    /// Every job of every app that has not ended (INIT, RUNNING, STOPPING), as stored; for
    /// the sweeper, so it may lag the latest writes by a moment.
    async fn active_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;
}

/// Every entity store at once, for processes that need several (the worker, operator tools).
pub trait Store: CredentialStore + AppStore + RuleStore + CallbackStore + RoomStore + JobStore {}

impl<T: CredentialStore + AppStore + RuleStore + CallbackStore + RoomStore + JobStore> Store for T {}

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
    /// the condition failed (another writer replaced the object).
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
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
    /// The keys and sizes of the objects whose key starts with `prefix`, in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, StoreError>;
    /// Deletes an object (nothing if there is none).
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError>;
    /// Abandons a multipart upload.
    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), StoreError>;
    /// The size of an object, if it exists.
    async fn size(&self, bucket: &str, key: &str) -> Result<Option<u64>, StoreError>;
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
