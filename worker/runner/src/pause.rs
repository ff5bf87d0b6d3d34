//! A job's pause as the worker carries it out. The tenant's flag on the job is read with
//! every board tick, as a stop is, and passed to the media thread as a command; the media
//! thread's report that it actually held (or resumed) the recording becomes the tenant's
//! `RECORD_PAUSED` (or `RECORD_RESUMED`) event.

use roomrec_domain::callback::EventType;
use roomrec_domain::job::Job;
use roomrec_media::Output;

/// What the media thread was told, and what the tenant was told.
#[derive(Debug)]
pub struct PauseState {
    /// The media thread was told to hold the recording.
    commanded: bool,
    /// The last pause event sent says paused.
    announced: bool,
}

impl PauseState {
    /// For `job` as claimed: one taken over while paused was announced paused by the worker
    /// before (it starts held here too, and says nothing new).
    pub fn new(job: &Job, takeover: bool) -> Self {
        Self { commanded: false, announced: takeover && job.paused }
    }

    /// `Some(paused)` when `job`'s flag differs from what the media thread was last told.
    pub fn command(&mut self, job: &Job) -> Option<bool> {
        (job.paused != self.commanded).then(|| {
            self.commanded = job.paused;
            job.paused
        })
    }

    /// Whether the media thread was told to hold the recording.
    pub fn held(&self) -> bool {
        self.commanded
    }

    /// The event (and its detail) a media thread's report makes, if the tenant was not told yet.
    pub fn event(&mut self, output: &Output) -> Option<(EventType, &'static str)> {
        let (paused, event) = match output {
            Output::Paused { .. } => (true, (EventType::RecordPaused, "TENANT_PAUSE")),
            Output::Resumed { .. } => (false, (EventType::RecordResumed, "TENANT_RESUME")),
            _ => return None,
        };
        (paused != self.announced).then(|| {
            self.announced = paused;
            event
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomrec_domain::ids::AppId;
    use roomrec_domain::testing::{now, random};
    use std::time::{Duration, SystemTime};

    fn job(paused: bool) -> Job {
        let body = serde_json::json!({
            "room_id": "r1", "user_id": "u1",
            "record_param": { "record_rule_id": "0123456789abcdef0123456789abcdef" },
        });
        let request = serde_json::from_value(body).unwrap();
        let mut job = Job::individual(AppId::generate(random()), request, random(), now()).unwrap();
        job.paused = paused;
        job
    }

    fn paused() -> Output {
        Output::Paused { at: SystemTime::now(), position: Duration::from_secs(3) }
    }

    fn resumed() -> Output {
        Output::Resumed { at: SystemTime::now(), position: Duration::from_secs(3) }
    }

    #[test]
    fn a_flag_change_is_commanded_once_and_each_report_announced_once() {
        let mut state = PauseState::new(&job(false), false);
        assert_eq!(state.command(&job(false)), None);
        assert_eq!(state.command(&job(true)), Some(true));
        assert_eq!(state.command(&job(true)), None, "told once");
        assert_eq!(state.event(&paused()), Some((EventType::RecordPaused, "TENANT_PAUSE")));
        assert_eq!(state.event(&paused()), None);
        assert_eq!(state.command(&job(false)), Some(false));
        assert_eq!(state.event(&resumed()), Some((EventType::RecordResumed, "TENANT_RESUME")));
        assert_eq!(state.event(&Output::Alive), None);
    }

    #[test]
    fn a_job_taken_over_paused_starts_held_without_a_second_pause_event() {
        let mut state = PauseState::new(&job(true), true);
        assert_eq!(state.command(&job(true)), Some(true), "the new media thread is told to hold");
        assert_eq!(state.event(&paused()), None, "the worker before announced it");
        assert_eq!(state.command(&job(false)), Some(false));
        assert_eq!(state.event(&resumed()), Some((EventType::RecordResumed, "TENANT_RESUME")));
    }

    #[test]
    fn a_job_paused_before_any_worker_claimed_it_announces_its_pause_when_held() {
        let mut state = PauseState::new(&job(true), false);
        assert_eq!(state.command(&job(true)), Some(true));
        assert_eq!(state.event(&paused()), Some((EventType::RecordPaused, "TENANT_PAUSE")));
    }
}
