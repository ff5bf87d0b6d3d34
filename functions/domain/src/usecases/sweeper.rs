//! The sweeper. The lease in the job store is the truth about who records a job; a queue
//! message only wakes a worker. So that no job depends on one message surviving (a message
//! deleted, dead-lettered after too many receives, or past SQS's 12-hour invisibility cap),
//! the sweeper queues a fresh message for every job that needs a worker and may have none
//! coming: see [`JobRecord::needs_wake_up`]. A duplicate message is harmless: a claim is a
//! conditional write, and a duplicate dies once it finds the same worker holding the job a
//! second time (see `roomrec-worker`'s claim).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::{error_chain, StoreError};
use crate::ids::JobId;
use crate::ports::{JobMessage, JobQueue, JobStore};
use crate::record::JobRecord;

/// How long a job may stay INIT before its message counts as lost: past any queueing delay.
pub const INIT_GRACE: Duration = Duration::from_secs(60);

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Jobs that have not ended.
    pub active: usize,
    /// Jobs a fresh message was queued for.
    pub requeued: Vec<JobId>,
    /// Jobs whose message could not be queued (the next sweep tries again).
    pub failed: Vec<JobId>,
}

/// Wakes a worker for every job that needs one.
#[derive(Clone)]
pub struct Sweeper {
    jobs: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    init_grace: Duration,
}

impl Sweeper {
    /// A sweeper over the job store and the jobs queue, with the standard [`INIT_GRACE`].
    pub fn new(jobs: Arc<dyn JobStore>, queue: Arc<dyn JobQueue>, clock: Arc<dyn Clock>) -> Self {
        Self { jobs, queue, clock, init_grace: INIT_GRACE }
    }

    /// The same sweeper waiting `init_grace` before a job in INIT counts as lost (tests shorten it).
    pub fn with_init_grace(mut self, init_grace: Duration) -> Self {
        self.init_grace = init_grace;
        self
    }

    /// One sweep: a fresh message for every active job that needs waking.
    pub async fn sweep(&self) -> Result<Swept, StoreError> {
        let active = self.jobs.active_jobs().await?;
        let now = self.clock.now();
        let mut swept = Swept { active: active.len(), ..Swept::default() };
        for JobRecord { job, .. } in active.iter().filter(|record| record.needs_wake_up(now, self.init_grace)) {
            let message = JobMessage::wake(job.app_id.clone(), job.job_id.clone());
            match self.queue.enqueue(&message).await {
                Ok(()) => {
                    tracing::info!(job_id = %job.job_id, state = job.state.as_str(), "job re-queued by the sweeper");
                    swept.requeued.push(job.job_id.clone());
                }
                Err(err) => {
                    tracing::warn!(job_id = %job.job_id, error = %error_chain(&err), "could not re-queue the job");
                    swept.failed.push(job.job_id.clone());
                }
            }
        }
        Ok(swept)
    }
}
