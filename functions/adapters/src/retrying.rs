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
use roomrec_domain::storage::Capped;

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
        body: bytes::Bytes,
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
    async fn get_capped(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Capped, StoreError> {
        upload_retried!(self, "s3 get", |blobs| blobs.get_capped(bucket, key, max_bytes))
    }
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        upload_retried!(self, "s3 list", |blobs| blobs.list(bucket, prefix))
    }
    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), StoreError> {
        upload_retried!(self, "s3 delete", |blobs| blobs.delete(bucket, keys))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use roomrec_domain::testing::{MemBlobs, MemMetrics, SeqRandom};

    use super::*;

    /// Object storage whose first `failures` calls fail as an S3 outage would.
    struct Flaky {
        inner: MemBlobs,
        failures: AtomicUsize,
    }

    impl Flaky {
        fn outage(&self) -> Result<(), StoreError> {
            let left = self.failures.load(Ordering::SeqCst);
            if left == 0 {
                return Ok(());
            }
            self.failures.store(left - 1, Ordering::SeqCst);
            Err(StoreError::Backend("s3: service unavailable".into()))
        }
    }

    #[async_trait]
    impl Blobs for Flaky {
        async fn put(&self, b: &str, k: &str, body: bytes::Bytes, t: &str, w: IfStored) -> Result<String, StoreError> {
            self.outage()?;
            self.inner.put(b, k, body, t, w).await
        }
        async fn start_multipart(&self, b: &str, k: &str, t: &str) -> Result<String, StoreError> {
            self.inner.start_multipart(b, k, t).await
        }
        async fn upload_part(&self, b: &str, k: &str, u: &str, n: i32, p: FilePart<'_>) -> Result<String, StoreError> {
            self.inner.upload_part(b, k, u, n, p).await
        }
        async fn complete_multipart(&self, b: &str, k: &str, u: &str, e: &[String]) -> Result<(), StoreError> {
            self.inner.complete_multipart(b, k, u, e).await
        }
        async fn get(&self, b: &str, k: &str) -> Result<Option<Object>, StoreError> {
            self.inner.get(b, k).await
        }
        async fn get_capped(&self, b: &str, k: &str, max: u64) -> Result<Capped, StoreError> {
            self.inner.get_capped(b, k, max).await
        }
        async fn list(&self, b: &str, p: &str) -> Result<Vec<(String, u64)>, StoreError> {
            self.inner.list(b, p).await
        }
        async fn delete(&self, b: &str, k: &[String]) -> Result<(), StoreError> {
            self.inner.delete(b, k).await
        }
        async fn abort_multipart(&self, b: &str, k: &str, u: &str) -> Result<(), StoreError> {
            self.inner.abort_multipart(b, k, u).await
        }
        async fn size(&self, b: &str, k: &str) -> Result<Option<u64>, StoreError> {
            self.inner.size(b, k).await
        }
    }

    #[tokio::test]
    async fn each_storage_call_tried_again_is_an_upload_retry() {
        let flaky = Arc::new(Flaky { inner: MemBlobs::default(), failures: AtomicUsize::new(2) });
        let metrics = Arc::new(MemMetrics::default());
        let quick = Backoff { first: Duration::from_millis(1), max: Duration::from_millis(2), ..Backoff::AWS };
        let blobs =
            Retrying::new(flaky as Arc<dyn Blobs>, quick, Arc::new(SeqRandom::new(1))).measured(metrics.clone());

        blobs.put("bucket", "a.ts", b"ts".as_slice().into(), "video/mp2t", IfStored::Any).await.unwrap();
        blobs.put("bucket", "b.ts", b"ts".as_slice().into(), "video/mp2t", IfStored::Any).await.unwrap();
        let retries = vec![Metric::UploadRetry { operation: "s3 put" }; 2];
        assert_eq!(metrics.recorded(), retries, "two failed calls, two retries; the clean call none");
    }
}
