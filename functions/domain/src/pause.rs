//! Pausing and resuming a job's recording into the same files. A pause is asked for here
//! (the job's `paused` flag); the worker that holds the job sees the flag change, stops
//! writing, and says so with `RECORD_PAUSED` (`RECORD_RESUMED` when it records again).
//!
//! Asking twice is harmless: pausing a paused job (or resuming a recording one) changes
//! nothing and answers the job as it is, as a retried request expects. A job that is
//! ending or has ended cannot be paused or resumed: its files are being finished.

use crate::job::{Job, JobState};
use crate::time::Timestamp;

/// Why a pause or resume was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PauseError {
    /// The job is STOPPING, STOPPED or FAILED.
    #[error("the job is {} and can no longer be paused or resumed", .0.as_str())]
    Ended(JobState),
}

impl Job {
    /// Pauses the job's recording (INIT or RUNNING); `Ok(false)` when it was paused already.
    pub fn request_pause(&mut self, now: Timestamp) -> Result<bool, PauseError> {
        self.check_pausable()?;
        if self.paused {
            return Ok(false);
        }
        self.paused = true;
        self.paused_at = Some(now);
        self.update_time = now;
        Ok(true)
    }

    /// Resumes the job's recording; `Ok(false)` when it was not paused.
    pub fn request_resume(&mut self, now: Timestamp) -> Result<bool, PauseError> {
        self.check_pausable()?;
        if !self.paused {
            return Ok(false);
        }
        self.paused = false;
        self.paused_at = None;
        self.update_time = now;
        Ok(true)
    }

    fn check_pausable(&self) -> Result<(), PauseError> {
        match self.state {
            JobState::Init | JobState::Running => Ok(()),
            state @ (JobState::Stopping | JobState::Stopped | JobState::Failed) => Err(PauseError::Ended(state)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AppId;
    use crate::testing::{now, random};

    fn job(state: JobState) -> Job {
        let body = serde_json::json!({
            "room_id": "r1", "user_id": "u1",
            "record_param": { "record_rule_id": "0123456789abcdef0123456789abcdef" },
        });
        let request = serde_json::from_value(body).unwrap();
        let mut job = Job::individual(AppId::generate(random()), request, random(), now()).unwrap();
        job.state = state;
        job
    }

    #[test]
    fn a_running_job_pauses_once_and_a_second_pause_changes_nothing() {
        let mut job = job(JobState::Running);
        assert_eq!(job.request_pause(now()), Ok(true));
        assert!(job.paused);
        assert_eq!(job.paused_at, Some(now()));
        assert_eq!(job.request_pause(now()), Ok(false), "idempotent: a retried pause succeeds");
        assert_eq!(job.request_resume(now()), Ok(true));
        assert!(!job.paused && job.paused_at.is_none());
        assert_eq!(job.request_resume(now()), Ok(false), "idempotent: a recording job resumes to itself");
    }

    #[test]
    fn a_job_no_worker_claimed_yet_can_be_paused_so_it_starts_paused() {
        let mut job = job(JobState::Init);
        assert_eq!(job.request_pause(now()), Ok(true));
        assert!(job.paused);
    }

    #[test]
    fn an_ending_or_ended_job_refuses_both_naming_its_state() {
        for state in [JobState::Stopping, JobState::Stopped, JobState::Failed] {
            let mut job = job(state);
            assert_eq!(job.request_pause(now()), Err(PauseError::Ended(state)));
            assert_eq!(job.request_resume(now()), Err(PauseError::Ended(state)));
            assert!(PauseError::Ended(state).to_string().contains(state.as_str()));
            assert!(!job.paused);
        }
    }

    #[test]
    fn jobs_stored_before_pausing_existed_read_as_recording() {
        let mut json = serde_json::to_value(job(JobState::Running)).unwrap();
        json.as_object_mut().unwrap().remove("paused");
        let old: Job = serde_json::from_value(json).unwrap();
        assert!(!old.paused);
        let shown = serde_json::to_value(&old).unwrap();
        assert_eq!(shown["paused"], false, "the view always says whether the job is paused");
        assert!(shown.get("paused_at").is_none());
    }
}
