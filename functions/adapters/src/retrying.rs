//! [`Retrying`]: any object storage, outbox or delivery queue with every call retried by
//! [`retry`] while it fails for a passing reason, so an AWS outage shorter than the backoff's
//! deadline costs a recording or a delivery time, not its data. Object storage retries are
//! counted as `UploadRetry` metrics when [`Retrying::measured`] gave it somewhere to count them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use roomrec_domain::clock::Random;
use roomrec_domain::event::{DeliveryUpdate, RecordEvent, StoredEvent};
use roomrec_domain::ids::JobId;
use roomrec_domain::metric::{Metric, Metrics};
use roomrec_domain::ports::{Blobs, DeliveryQueue, EventLog, FilePart, IfStored, Object, QueueError, StoreError};
use roomrec_domain::retry::{retry, Backoff};

/// `inner` with its calls retried by `backoff`.
pub struct Retrying<T: ?Sized> {
    inner: Arc<T>,
    backoff: Backoff,
    random: Arc<dyn Random>,
    metrics: Option<Arc<dyn Metrics>>,
}

impl<T: ?Sized> Retrying<T> {
    /// `inner` with its calls retried by `backoff`.
    pub fn new(inner: Arc<T>, backoff: Backoff, random: Arc<dyn Random>) -> Self {
        Self { inner, backoff, random, metrics: None }
    }

    /// The same, with each storage call tried again recorded in `metrics`.
    pub fn measured(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// Retries `$call` on `$self.inner`, logged as `$what`.
macro_rules! retried {
    ($self:ident, $what:literal, |$inner:ident| $call:expr) => {
        retry(&$self.backoff, $self.random.as_ref(), $what, || {
            let $inner = &$self.inner;
            $call
        })
        .await
    };
}

/// [`retried!`] for object storage: every call after the first is an `UploadRetry`.
macro_rules! upload_retried {
    ($self:ident, $what:literal, |$inner:ident| $call:expr) => {{
        let tried = AtomicBool::new(false);
        retry(&$self.backoff, $self.random.as_ref(), $what, || {
            if tried.swap(true, Ordering::Relaxed) {
                if let Some(metrics) = &$self.metrics {
                    metrics.record(Metric::UploadRetry { operation: $what });
                }
            }
            let $inner = &$self.inner;
            $call
        })
        .await
    }};
}

#[async_trait]
impl Blobs for Retrying<dyn Blobs> {
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        when: IfStored,
    ) -> Result<String, StoreError> {
        upload_retried!(self, "s3 put", |blobs| blobs.put(bucket, key, body.clone(), content_type, when.clone()))
    }
    async fn start_multipart(&self, bucket: &str, key: &str, content_type: &str) -> Result<String, StoreError> {
        upload_retried!(self, "s3 create multipart", |blobs| blobs.start_multipart(bucket, key, content_type))
    }
    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        part: FilePart<'_>,
    ) -> Result<String, StoreError> {
        upload_retried!(self, "s3 upload part", |blobs| blobs.upload_part(bucket, key, upload_id, number, part))
    }
    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), StoreError> {
        upload_retried!(self, "s3 complete multipart", |blobs| blobs.complete_multipart(bucket, key, upload_id, etags))
    }
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Object>, StoreError> {
        upload_retried!(self, "s3 get", |blobs| blobs.get(bucket, key))
    }
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        upload_retried!(self, "s3 list", |blobs| blobs.list(bucket, prefix))
    }
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        upload_retried!(self, "s3 delete", |blobs| blobs.delete(bucket, key))
    }
    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), StoreError> {
        upload_retried!(self, "s3 abort multipart", |blobs| blobs.abort_multipart(bucket, key, upload_id))
    }
    async fn size(&self, bucket: &str, key: &str) -> Result<Option<u64>, StoreError> {
        upload_retried!(self, "s3 head", |blobs| blobs.size(bucket, key))
    }
}

#[async_trait]
impl EventLog for Retrying<dyn EventLog> {
    async fn next_sequence(&self, job_id: &JobId) -> Result<u64, StoreError> {
        retried!(self, "outbox next sequence", |events| events.next_sequence(job_id))
    }
    async fn append(&self, event: &RecordEvent) -> Result<(), StoreError> {
        retried!(self, "outbox append", |events| events.append(event))
    }
    async fn list_stored(&self, job_id: &JobId) -> Result<Vec<StoredEvent>, StoreError> {
        retried!(self, "outbox list", |events| events.list_stored(job_id))
    }
    async fn get(&self, job_id: &JobId, sequence: u64) -> Result<Option<StoredEvent>, StoreError> {
        retried!(self, "outbox get", |events| events.get(job_id, sequence))
    }
    async fn get_many(&self, job_id: &JobId, sequences: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        retried!(self, "outbox get many", |events| events.get_many(job_id, sequences))
    }
    async fn record_delivery(&self, job_id: &JobId, sequence: u64, update: &DeliveryUpdate) -> Result<(), StoreError> {
        retried!(self, "outbox record delivery", |events| events.record_delivery(job_id, sequence, update))
    }
    async fn publish(&self, event: &RecordEvent) -> Result<(), QueueError> {
        retried!(self, "events queue send", |events| events.publish(event))
    }
}

#[async_trait]
impl DeliveryQueue for Retrying<dyn DeliveryQueue> {
    async fn postpone(&self, receipt: &str, delay: std::time::Duration) -> Result<(), QueueError> {
        retried!(self, "events queue postpone", |queue| queue.postpone(receipt, delay))
    }
    async fn dead_letter(&self, event: &RecordEvent) -> Result<(), QueueError> {
        retried!(self, "dead-letter queue send", |queue| queue.dead_letter(event))
    }
}
