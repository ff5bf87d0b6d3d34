//! In-memory twins of every port, for unit tests with no services: they keep the semantics
//! the core relies on — conditional creates and versioned job writes that lose a race,
//! reservations that expire, queue messages with visibility and receive counts, per-job event
//! sequences — and let a test inject the failures it wants to see handled.
#![allow(clippy::unwrap_used)]

mod event_source;
mod preflights;
mod queues;
mod storage;
mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, TimeZone, Utc};

use crate::clock::{Clock, Random};
use crate::metric::{Metric, Metrics};
use crate::time::Timestamp;

pub use event_source::MemEventSource;
pub use preflights::MemPreflights;
pub use queues::{MemBlobs, MemDeliveryQueue, MemEventLog, MemJobQueue, Posted, QueuedMessage, ScriptedNotifier};
pub use storage::{MemBlobsProvider, MemPresigner};
pub use store::MemStore;

/// The instant every [`ManualClock`] starts at: seed 001's own example time.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2021, 4, 21, 10, 29, 33).single().unwrap()
}

/// [`epoch`] as a [`Timestamp`], for tests that need "a time".
pub fn now() -> Timestamp {
    Timestamp::at(epoch())
}

/// An upload of `format` at `key`, opened under claim `epoch`, nothing stored yet.
pub fn open_upload(format: crate::rule::RecordFormat, key: &str, epoch: u64) -> crate::record::OpenUpload {
    crate::record::OpenUpload {
        record_format: format,
        bucket: "b12".into(),
        key: key.into(),
        start_time: now(),
        width: 0,
        height: 0,
        multipart: None,
        bytes: 0,
        duration: 0.0,
        epoch,
        handed_over_until_ms: None,
    }
}

/// A process-wide deterministic random source, for tests that need ids.
pub fn random() -> &'static SeqRandom {
    static RANDOM: SeqRandom = SeqRandom::new(1);
    &RANDOM
}

/// A clock that moves only when told.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl Default for ManualClock {
    fn default() -> Self {
        Self(Mutex::new(epoch()))
    }
}

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().unwrap();
        *now += chrono::Duration::from_std(by).unwrap();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Deterministic "random" bytes: SplitMix64 over a counter, so every call differs and every
/// run is the same.
#[derive(Debug)]
pub struct SeqRandom(AtomicU64);

impl SeqRandom {
    /// A source starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }
}

impl Random for SeqRandom {
    fn fill(&self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let mut z = self.0.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::default();
        assert_eq!(clock.now(), epoch());
        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.timestamp().to_string(), "2021-04-21T10:31:03Z");
    }

    #[tokio::test]
    async fn the_outbox_refuses_a_delivery_record_for_a_settled_event_but_not_a_redelivery() {
        use crate::event::{DeliveryStatus, DeliveryUpdate, RecordEvent};
        use crate::ids::{AppId, JobId, RoomId};
        use crate::ports::EventLog;

        let events = MemEventLog::default();
        let job = JobId::generate(random());
        let event = RecordEvent {
            event_id: "e1".into(),
            sequence: 1,
            event_type: crate::callback::EventType::CloudRecordOver,
            app_id: AppId::generate(random()),
            job_id: job.clone(),
            room_id: RoomId::try_from("room1").unwrap(),
            stream_name: "s".into(),
            record_format: None,
            file: None,
            detail_message: String::new(),
            create_time: now(),
            usage: None,
        };
        events.append(&event).await.unwrap();
        let update = |status| DeliveryUpdate { status, attempt: None, next_attempt_at: None, restart_schedule: false };
        events.record_delivery(&job, 1, &update(DeliveryStatus::Pending)).await.unwrap();
        events.record_delivery(&job, 1, &update(DeliveryStatus::Delivered)).await.unwrap();
        for late in [DeliveryStatus::Pending, DeliveryStatus::Failed, DeliveryStatus::Delivered] {
            let refused = events.record_delivery(&job, 1, &update(late)).await;
            assert!(matches!(refused, Err(crate::error::StoreError::Conflict)), "{late:?}: {refused:?}");
        }
        assert_eq!(events.get(&job, 1).await.unwrap().unwrap().delivery_status, DeliveryStatus::Delivered);
        events.record_delivery(&job, 1, &DeliveryUpdate::redelivery()).await.unwrap();
        assert_eq!(events.get(&job, 1).await.unwrap().unwrap().delivery_status, DeliveryStatus::Pending);
        let missing = events.record_delivery(&job, 2, &update(DeliveryStatus::Delivered)).await;
        assert!(matches!(missing, Err(crate::error::StoreError::Conflict)), "{missing:?}");
    }

    #[test]
    fn seq_random_never_repeats_an_id_and_units_stay_below_one() {
        let random = SeqRandom::new(7);
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random.hex(16)).collect();
        assert_eq!(ids.len(), 1000);
        assert!((0..1000).map(|_| random.unit()).all(|u| (0.0..1.0).contains(&u)));
    }
}

/// The [`Metrics`] twin: keeps every measurement, in order.
#[derive(Debug, Default)]
pub struct MemMetrics(Mutex<Vec<Metric>>);

impl MemMetrics {
    /// What was recorded so far.
    pub fn recorded(&self) -> Vec<Metric> {
        self.0.lock().unwrap().clone()
    }
}

impl Metrics for MemMetrics {
    fn record(&self, metric: Metric) {
        self.0.lock().unwrap().push(metric);
    }
}

/// A writer keeping what is written to it (a log subscriber's output), shared by its clones.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
