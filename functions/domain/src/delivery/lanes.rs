//! One batch at a time per job in a process. When batches are handled concurrently (the local
//! deliverer polls with several receivers), a job's later events in one batch wait here for
//! its earlier events in another batch to settle, rather than finding them pending and being
//! postponed by [`ORDER_WAIT`](super::ORDER_WAIT). Across processes the outbox check still
//! decides; this only spares the waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OwnedMutexGuard;

use crate::ids::JobId;

/// The lanes of the jobs being delivered in this process.
#[derive(Debug, Default)]
pub(super) struct JobLanes {
    lanes: Mutex<HashMap<JobId, Arc<tokio::sync::Mutex<()>>>>,
}

/// A job's lane, held until dropped.
#[derive(Debug)]
pub(super) struct Lane<'a> {
    lanes: &'a JobLanes,
    job: JobId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl JobLanes {
    /// Waits (first come, first served) until no other batch of this process delivers `job`.
    pub(super) async fn enter(&self, job: &JobId) -> Lane<'_> {
        let lane = self.lock().entry(job.clone()).or_default().clone();
        let guard = lane.lock_owned().await;
        Lane { lanes: self, job: job.clone(), guard: Some(guard) }
    }

    /// How many jobs have a lane (held or waited for).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<JobId, Arc<tokio::sync::Mutex<()>>>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut lanes = self.lanes.lock();
        // Only the map's own reference left: nobody holds or waits for the lane, forget it.
        if lanes.get(&self.job).is_some_and(|lane| Arc::strong_count(lane) == 1) {
            lanes.remove(&self.job);
        }
    }
}
