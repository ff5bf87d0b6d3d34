//! What the service measures, as the core knows it: the [`Metrics`] port takes one
//! [`Metric`] at a time; the adapter writes it as CloudWatch Embedded Metric Format.

use std::time::Duration;

use crate::ids::{AppId, JobId};
use crate::job::StopReason;
use crate::rule::RecordFormat;

/// One measurement, with the ids it belongs to (kept as properties, not dimensions).
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A worker claimed a job and starts recording it.
    JobStarted { app_id: AppId, job_id: JobId },
    /// A worker claimed a job whose holder died or froze, to continue it.
    Takeover { app_id: AppId, job_id: JobId },
    /// A job ended, and why.
    JobEnded { app_id: AppId, job_id: JobId, reason: StopReason },
    /// A file of `format` was completed holding this much media.
    Recorded { job_id: JobId, format: RecordFormat, duration: Duration },
    /// A storage call failed for a passing reason and is tried again.
    UploadRetry { operation: &'static str },
    /// One callback POST: whether the receiver took it, and how long it took.
    CallbackAttempt { job_id: JobId, delivered: bool, latency: Duration },
    /// An event was given up on and dead-lettered.
    CallbackFailed { job_id: JobId },
    /// Job slots of a worker in use, of how many.
    SlotsInUse { used: usize, total: usize },
}

/// Where measurements go.
pub trait Metrics: Send + Sync {
    /// Records one measurement; never fails the caller.
    fn record(&self, metric: Metric);
}
