//! A worker's hold on a job: claimed with a conditional write, renewed while it records,
//! taken over by another worker once it expires.

use std::time::Duration;

use crate::job::{Job, JobState, StopReason};
use crate::time::Timestamp;

/// Who holds a job and until when (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at_ms: i64,
}

/// Why a worker may not take a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRefused {
    /// The job has ended; its message can be dropped.
    #[error("the job has ended")]
    Ended,
    /// Another worker holds a live lease.
    #[error("another worker holds the job until {0} ms")]
    Held(i64),
}

/// The lease is no longer ours: another worker took the job over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the lease was lost to another worker")]
pub struct LeaseLost;

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Job {
    /// Takes the job for `worker` until `now_ms + lease`. INIT becomes RUNNING; a RUNNING or
    /// STOPPING job whose lease expired is taken over in its state; `true` means it was.
    pub fn claim(&mut self, worker: &str, now_ms: i64, lease: Duration) -> Result<bool, ClaimRefused> {
        if self.state.is_final() {
            return Err(ClaimRefused::Ended);
        }
        let takeover = match &self.lease {
            Some(held) if held.owner != worker && held.expires_at_ms > now_ms => {
                return Err(ClaimRefused::Held(held.expires_at_ms));
            }
            Some(held) => held.owner != worker,
            None => self.state != JobState::Init,
        };
        if self.state == JobState::Init {
            self.state = JobState::Running;
            self.start_time = Timestamp::now();
        }
        self.lease = Some(Lease { owner: worker.to_owned(), expires_at_ms: now_ms + millis(lease) });
        self.update_time = Timestamp::now();
        Ok(takeover)
    }

    /// Extends `worker`'s lease; fails if someone else holds the job now.
    pub fn renew(&mut self, worker: &str, now_ms: i64, lease: Duration) -> Result<(), LeaseLost> {
        match &mut self.lease {
            Some(held) if held.owner == worker => {
                held.expires_at_ms = now_ms + millis(lease);
                Ok(())
            }
            _ => Err(LeaseLost),
        }
    }

    /// Gives the job back without ending it (worker shutdown): another worker continues it.
    pub fn release(&mut self, worker: &str) {
        if self.lease.as_ref().is_some_and(|l| l.owner == worker) {
            self.lease = None;
        }
    }

    /// Ends the job: STOPPED for a stop or idle, FAILED for an internal error.
    pub fn finish(&mut self, reason: StopReason, now: Timestamp) {
        self.state = if reason == StopReason::InternalError { JobState::Failed } else { JobState::Stopped };
        // A tenant stop that raced with idle keeps the tenant's reason.
        self.stop_reason = Some(self.stop_reason.unwrap_or(reason));
        self.stop_time = now;
        self.update_time = now;
        self.lease = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AppId;

    const LEASE: Duration = Duration::from_secs(30);

    fn job() -> Job {
        let body =
            r#"{"room_id":"r","user_id":"u","record_param":{"record_rule_id":"5d0ec2c53a2c15625017adb8bbbcd9ab"}}"#;
        Job::individual(AppId::generate(), serde_json::from_str(body).unwrap(), Timestamp::now()).unwrap()
    }

    #[test]
    fn a_claim_moves_init_to_running_under_a_lease() {
        let mut job = job();
        assert_eq!(job.claim("w1", 1_000, LEASE), Ok(false));
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.lease, Some(Lease { owner: "w1".into(), expires_at_ms: 31_000 }));
    }

    #[test]
    fn a_live_lease_refuses_others_and_an_expired_one_is_taken_over() {
        let mut job = job();
        job.claim("w1", 1_000, LEASE).unwrap();
        assert_eq!(job.claim("w2", 20_000, LEASE), Err(ClaimRefused::Held(31_000)));
        assert_eq!(job.claim("w2", 31_001, LEASE), Ok(true));
        assert_eq!(job.renew("w1", 31_002, LEASE), Err(LeaseLost));
        assert_eq!(job.renew("w2", 31_002, LEASE), Ok(()));
    }

    #[test]
    fn a_released_running_job_is_a_takeover_for_the_next_worker() {
        let mut job = job();
        job.claim("w1", 1_000, LEASE).unwrap();
        job.release("w1");
        assert_eq!(job.claim("w2", 2_000, LEASE), Ok(true));
    }

    #[test]
    fn ended_jobs_cannot_be_claimed_and_keep_a_tenant_stop_reason() {
        let mut job = job();
        job.claim("w1", 1_000, LEASE).unwrap();
        job.request_stop(Timestamp::now());
        job.finish(StopReason::ExceedMaxIdleTime, Timestamp::now());
        assert_eq!((job.state, job.stop_reason), (JobState::Stopped, Some(StopReason::TenantStop)));
        assert_eq!(job.claim("w2", 2_000, LEASE), Err(ClaimRefused::Ended));
    }
}
