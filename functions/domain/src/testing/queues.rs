//! The in-memory job queue, event outbox, object storage, notifier and delivery queue.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::error::{QueueError, StoreError};
use crate::event::{DeliveryStatus, DeliveryUpdate, RecordEvent, StoredEvent};
use crate::ids::JobId;
use crate::ports::{Blobs, DeliveryQueue, EventLog, FilePart, IfStored, JobMessage, JobQueue, Notifier, Object};
use crate::storage::Capped;
use crate::url::CallbackUrl;
use crate::webhook::{AttemptResult, SignedHeaders};

use super::ManualClock;

/// A message on the [`MemJobQueue`] with SQS's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub message: JobMessage,
    /// How many times it was received.
    pub receive_count: u32,
    /// Until when a receiver holds it.
    pub invisible_until: Option<DateTime<Utc>>,
}

/// The jobs queue in memory: messages become invisible when received and visible again when
/// their visibility runs out (on the queue's clock); enqueues can be made to fail.
pub struct MemJobQueue {
    clock: Arc<dyn Clock>,
    messages: Mutex<Vec<QueuedMessage>>,
    failures: AtomicUsize,
}

impl Default for MemJobQueue {
    fn default() -> Self {
        Self::new(Arc::new(ManualClock::default()))
    }
}

impl MemJobQueue {
    /// An empty queue judging visibility by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, messages: Mutex::default(), failures: AtomicUsize::new(0) }
    }

    /// The next `count` enqueues fail as an SQS outage would.
    pub fn fail_next(&self, count: usize) {
        self.failures.store(count, Ordering::SeqCst);
    }

    /// Every message on the queue, visible or not.
    pub fn messages(&self) -> Vec<QueuedMessage> {
        self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Receives the oldest visible message and hides it for `visibility`.
    pub fn receive(&self, visibility: Duration) -> Option<JobMessage> {
        let now = self.clock.now();
        let mut messages = self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = messages.iter_mut().find(|m| m.invisible_until.is_none_or(|until| until <= now))?;
        next.receive_count += 1;
        next.invisible_until = Some(now + chrono::Duration::from_std(visibility).unwrap_or_default());
        Some(next.message.clone())
    }
}

#[async_trait]
impl JobQueue for MemJobQueue {
    async fn enqueue(&self, message: &JobMessage) -> Result<(), QueueError> {
        let failing = self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failing {
            return Err(QueueError("the in-memory queue refused the message".into()));
        }
        let queued = QueuedMessage { message: message.clone(), receive_count: 0, invisible_until: None };
        self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(queued);
        Ok(())
    }
}

/// The event outbox in memory: per-job sequences, conditional appends, the delivery log with
/// its conditional writes (a settled event stays settled but for a redelivery), and the events
/// queued for delivery.
#[derive(Default)]
pub struct MemEventLog {
    sequences: Mutex<HashMap<JobId, u64>>,
    items: Mutex<BTreeMap<(JobId, u64), StoredEvent>>,
    published: Mutex<Vec<RecordEvent>>,
    publish_down: AtomicBool,
}

impl MemEventLog {
    /// The events queued for delivery so far, in order.
    pub fn published(&self) -> Vec<RecordEvent> {
        self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// While `down`, queueing an event fails.
    pub fn set_publish_down(&self, down: bool) {
        self.publish_down.store(down, Ordering::SeqCst);
    }
}

#[async_trait]
impl EventLog for MemEventLog {
    async fn next_sequence(&self, job_id: &JobId) -> Result<u64, StoreError> {
        let mut sequences = self.sequences.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = sequences.entry(job_id.clone()).or_insert(0);
        *next += 1;
        Ok(*next)
    }
    async fn append(&self, event: &RecordEvent) -> Result<(), StoreError> {
        let mut items = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (event.job_id.clone(), event.sequence);
        if items.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        let stored = StoredEvent {
            event: event.clone(),
            delivery_status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            next_attempt_at: None,
            retry_from: 0,
        };
        items.insert(key, stored);
        Ok(())
    }
    async fn list_stored(&self, job_id: &JobId) -> Result<Vec<StoredEvent>, StoreError> {
        let items = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(items.iter().filter(|((job, _), _)| job == job_id).map(|(_, stored)| stored.clone()).collect())
    }
    async fn get(&self, job_id: &JobId, sequence: u64) -> Result<Option<StoredEvent>, StoreError> {
        let items = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(items.get(&(job_id.clone(), sequence)).cloned())
    }
    async fn record_delivery(&self, job_id: &JobId, sequence: u64, update: &DeliveryUpdate) -> Result<(), StoreError> {
        let mut items = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = items.get_mut(&(job_id.clone(), sequence)).ok_or(StoreError::Conflict)?;
        if stored.delivery_status.is_final() && !update.restart_schedule {
            return Err(StoreError::Conflict);
        }
        stored.apply(update);
        Ok(())
    }
    async fn publish(&self, event: &RecordEvent) -> Result<(), QueueError> {
        if self.publish_down.load(Ordering::SeqCst) {
            return Err(QueueError("the in-memory events queue is down".into()));
        }
        self.published.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event.clone());
        Ok(())
    }
}

/// A multipart upload under way.
struct Multipart {
    bucket: String,
    key: String,
    /// Parts by number.
    parts: BTreeMap<i32, Vec<u8>>,
}

#[derive(Default)]
struct Objects {
    /// Bytes and ETag by bucket and key.
    objects: BTreeMap<(String, String), (Vec<u8>, String)>,
    /// Writes so far, numbering ETags.
    writes: u64,
    /// Multipart uploads under way, by id.
    uploads: HashMap<String, Multipart>,
    next_upload: u64,
    /// Calls to [`Blobs::delete`] so far.
    deletes: u64,
}

/// Object storage in memory, multipart uploads included.
#[derive(Default)]
pub struct MemBlobs(Mutex<Objects>);

impl MemBlobs {
    /// An object's bytes, if it exists.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.lock().objects.get(&(bucket.to_owned(), key.to_owned())).map(|(body, _)| body.clone())
    }

    /// How many whole objects were written so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// How many delete calls were made so far (of at least one key).
    pub fn deletes(&self) -> u64 {
        self.lock().deletes
    }

    /// How many multipart uploads are neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.lock().uploads.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Objects {
    /// Stores `body` at `bucket`/`key` under a new ETag.
    fn store(&mut self, bucket: &str, key: &str, body: Vec<u8>) -> String {
        self.writes += 1;
        let etag = format!("\"etag-{}\"", self.writes);
        self.objects.insert((bucket.to_owned(), key.to_owned()), (body, etag.clone()));
        etag
    }
}

fn read_part(part: FilePart<'_>) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(part.path)?;
    file.seek(SeekFrom::Start(part.offset))?;
    let mut bytes = vec![0; usize::try_from(part.length).unwrap_or(usize::MAX)];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[async_trait]
impl Blobs for MemBlobs {
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        _content_type: &str,
        when: IfStored,
    ) -> Result<String, StoreError> {
        let mut objects = self.lock();
        if let IfStored::Matches(etag) = when {
            let stored = objects.objects.get(&(bucket.to_owned(), key.to_owned())).map(|(_, e)| e);
            if stored != Some(&etag) {
                return Err(StoreError::Conflict);
            }
        }
        Ok(objects.store(bucket, key, body.to_vec()))
    }
    async fn start_multipart(&self, bucket: &str, key: &str, _content_type: &str) -> Result<String, StoreError> {
        let mut objects = self.lock();
        objects.next_upload += 1;
        let id = format!("upload-{}", objects.next_upload);
        let upload = Multipart { bucket: bucket.to_owned(), key: key.to_owned(), parts: BTreeMap::new() };
        objects.uploads.insert(id.clone(), upload);
        Ok(id)
    }
    async fn upload_part(
        &self,
        _bucket: &str,
        _key: &str,
        upload_id: &str,
        number: i32,
        part: FilePart<'_>,
    ) -> Result<String, StoreError> {
        let bytes = read_part(part).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let mut objects = self.lock();
        let upload = objects.uploads.get_mut(upload_id).ok_or(StoreError::Conflict)?;
        upload.parts.insert(number, bytes);
        Ok(format!("\"{upload_id}-{number}\""))
    }
    async fn complete_multipart(
        &self,
        _bucket: &str,
        _key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), StoreError> {
        let mut objects = self.lock();
        let upload = objects.uploads.remove(upload_id).ok_or(StoreError::Conflict)?;
        if upload.parts.len() != etags.len() {
            return Err(StoreError::Conflict);
        }
        objects.store(&upload.bucket, &upload.key, upload.parts.into_values().flatten().collect());
        Ok(())
    }
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Object>, StoreError> {
        let objects = self.lock();
        let found = objects.objects.get(&(bucket.to_owned(), key.to_owned()));
        Ok(found.map(|(body, etag)| Object { body: body.clone(), etag: etag.clone() }))
    }
    async fn get_capped(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Capped, StoreError> {
        Ok(match self.object(bucket, key) {
            None => Capped::Missing,
            Some(body) if body.len() as u64 > max_bytes => Capped::TooLarge,
            Some(body) => Capped::Read(body),
        })
    }
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let objects = self.lock();
        let listed = objects.objects.iter().filter(|((b, k), _)| b == bucket && k.starts_with(prefix));
        Ok(listed.map(|((_, key), (body, _))| (key.clone(), body.len() as u64)).collect())
    }
    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), StoreError> {
        let mut objects = self.lock();
        objects.deletes += u64::from(!keys.is_empty());
        for key in keys {
            objects.objects.remove(&(bucket.to_owned(), key.clone()));
        }
        Ok(())
    }
    async fn abort_multipart(&self, _bucket: &str, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.lock().uploads.remove(upload_id);
        Ok(())
    }
    async fn size(&self, bucket: &str, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.object(bucket, key).map(|bytes| bytes.len() as u64))
    }
}

/// One POST the [`ScriptedNotifier`] received.
#[derive(Debug, Clone)]
pub struct Posted {
    pub url: String,
    pub headers: SignedHeaders,
    pub body: serde_json::Value,
}

/// A notifier that answers with scripted results (then 200) and notes every POST; it refuses
/// the URLs it is told to, and can be down until a time.
#[derive(Default)]
pub struct ScriptedNotifier {
    script: Mutex<VecDeque<AttemptResult>>,
    posted: Mutex<Vec<Posted>>,
    refusal: Mutex<Option<String>>,
    down: Option<Outage>,
}

/// Until when, by which clock, a [`ScriptedNotifier`] answers what.
struct Outage {
    clock: Arc<dyn Clock>,
    until: DateTime<Utc>,
    answer: AttemptResult,
}

impl ScriptedNotifier {
    /// A notifier answering `script` in turn, then 200.
    pub fn answering(script: Vec<AttemptResult>) -> Self {
        Self { script: Mutex::new(script.into()), ..Self::default() }
    }

    /// The same notifier answering `answer` to every POST until `until` on `clock` (a receiver
    /// down or overloaded for a while), its script only after.
    pub fn down_until(self, clock: Arc<dyn Clock>, until: DateTime<Utc>, answer: AttemptResult) -> Self {
        Self { down: Some(Outage { clock, until, answer }), ..self }
    }

    /// From now on every URL resolves to a refused address, for `reason`.
    pub fn refuse_all(&self, reason: &str) {
        *self.refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason.to_owned());
    }

    /// Every POST so far.
    pub fn posted(&self) -> Vec<Posted> {
        self.posted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl Notifier for ScriptedNotifier {
    async fn post(&self, url: &CallbackUrl, headers: &SignedHeaders, body: Vec<u8>) -> AttemptResult {
        let body = serde_json::from_slice(&body).unwrap_or_default();
        let posted = Posted { url: url.as_str().to_owned(), headers: headers.clone(), body };
        self.posted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(posted);
        if let Some(down) = self.down.as_ref().filter(|down| down.clock.now() < down.until) {
            return down.answer.clone();
        }
        let next = self.script.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop_front();
        next.unwrap_or(AttemptResult::Answered { status: 200, retry_after: None })
    }
    async fn refusal(&self, _url: &CallbackUrl) -> Option<String> {
        self.refusal.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// SQS's longest visibility timeout; it refuses to postpone a message longer.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html>
const SQS_MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// The events queue as the deliverer sees it, in memory: what was postponed (by receipt) and
/// what was dead-lettered; like SQS it refuses a postponement over 12 h.
#[derive(Default)]
pub struct MemDeliveryQueue {
    postponed: Mutex<Vec<(String, Duration)>>,
    dead: Mutex<Vec<RecordEvent>>,
}

impl MemDeliveryQueue {
    /// Every postponement so far: receipt and delay.
    pub fn postponed(&self) -> Vec<(String, Duration)> {
        self.postponed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The dead-lettered events so far.
    pub fn dead(&self) -> Vec<RecordEvent> {
        self.dead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[async_trait]
impl DeliveryQueue for MemDeliveryQueue {
    async fn postpone(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        if delay > SQS_MAX_VISIBILITY {
            return Err(QueueError("SQS refuses a visibility timeout over 12 h".into()));
        }
        self.postponed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((receipt.to_owned(), delay));
        Ok(())
    }
    async fn dead_letter(&self, event: &RecordEvent) -> Result<(), QueueError> {
        self.dead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event.clone());
        Ok(())
    }
}
