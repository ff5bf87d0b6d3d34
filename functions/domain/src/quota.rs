//! Per-account quotas: how much of the shared workers one account may hold. Three limits,
//! each checked when a job is created (through the API, a Jocloud start or a join that
//! records automatically):
//!
//! - `active_jobs`: jobs that have not ended (INIT, RUNNING, STOPPING);
//! - `mix_participants`: participants one mix may pull, which is its layout's most panes
//!   (a mix is sized for whoever may join; the worker's capacity model counts it the same);
//! - `waiting_jobs`: active jobs that have nothing to record yet — see [`waits_for_source`].

use serde::{Deserialize, Serialize};

pub use crate::error::QuotaExceeded;
use crate::job::{Job, JobSpec, JobState};
use crate::mix::LayoutTemplate;
use crate::room::RoomStream;

/// Active jobs an account may hold when its operator set nothing (DESIGN.md §3).
pub const DEFAULT_ACTIVE_JOBS: u32 = 50;
/// Participants a mix may pull by default: 25, the most any layout holds (nine_grids_view),
/// so no valid mix is refused unless an operator lowers it. The worker's capacity model
/// (worker/runner/src/capacity.rs) prices that largest mix, 1080p30 with 25 panes, at 137 of
/// a worker's default 200 units: it fits one worker, which is what the limit protects.
pub const DEFAULT_MIX_PARTICIPANTS: u32 = 25;
/// Jobs an account may keep waiting for a source by default: enough for a room of clients
/// that start their recordings just before their participants publish.
pub const DEFAULT_WAITING_JOBS: u32 = 20;

/// One of the quotas, by the name the API and the admin tool use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Jobs that have not ended.
    ActiveJobs,
    /// Participants one mix pulls.
    MixParticipants,
    /// Active jobs waiting for their source.
    WaitingJobs,
}

impl Quota {
    /// The quota's name (`active_jobs`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActiveJobs => "active_jobs",
            Self::MixParticipants => "mix_participants",
            Self::WaitingJobs => "waiting_jobs",
        }
    }
}

/// An account's quotas as an operator set them; an unset one takes its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_jobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix_participants: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_jobs: Option<u32>,
}

/// The limits that apply to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quotas {
    pub active_jobs: u32,
    pub mix_participants: u32,
    pub waiting_jobs: u32,
}

impl QuotaSettings {
    /// The limits these settings give: each unset one at its default.
    pub fn limits(&self) -> Quotas {
        Quotas {
            active_jobs: self.active_jobs.unwrap_or(DEFAULT_ACTIVE_JOBS),
            mix_participants: self.mix_participants.unwrap_or(DEFAULT_MIX_PARTICIPANTS),
            waiting_jobs: self.waiting_jobs.unwrap_or(DEFAULT_WAITING_JOBS),
        }
    }

    /// These settings with what `changes` sets replacing them.
    pub fn merged(self, changes: QuotaSettings) -> Self {
        Self {
            active_jobs: changes.active_jobs.or(self.active_jobs),
            mix_participants: changes.mix_participants.or(self.mix_participants),
            waiting_jobs: changes.waiting_jobs.or(self.waiting_jobs),
        }
    }
}

/// The layout's API name (`nine_grids_view`, ...).
fn layout_name(layout: LayoutTemplate) -> String {
    serde_json::to_value(layout).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl Quota {
    /// The refusal of one more job when `limit` is reached.
    fn reached(self, limit: u32) -> QuotaExceeded {
        QuotaExceeded { quota: self.as_str(), message: format!("{} limit {limit} reached", self.as_str()) }
    }
}

impl Quotas {
    /// Refuses a mix whose layout pulls more participants than allowed; other jobs pass.
    pub fn check_mix(&self, job: &Job) -> Result<(), QuotaExceeded> {
        let JobSpec::Mix { mix_param } = &job.spec else { return Ok(()) };
        let (layout, panes) = (mix_param.layout_template, mix_param.layout_template.max_panes());
        if panes > self.mix_participants {
            let limit = self.mix_participants;
            let message = format!(
                "mix_participants limit {limit} exceeded: {} pulls up to {panes} participants",
                layout_name(layout)
            );
            return Err(QuotaExceeded { quota: Quota::MixParticipants.as_str(), message });
        }
        Ok(())
    }

    /// Refuses one more job when `held` jobs already count against `quota`.
    pub fn check_count(&self, quota: Quota, held: u64) -> Result<(), QuotaExceeded> {
        let limit = match quota {
            Quota::ActiveJobs => self.active_jobs,
            Quota::WaitingJobs => self.waiting_jobs,
            Quota::MixParticipants => self.mix_participants,
        };
        if held >= u64::from(limit) {
            return Err(quota.reached(limit));
        }
        Ok(())
    }
}

/// Whether `job` is waiting for a source, given its room's roster (who publishes now): it
/// is INIT or RUNNING (a STOPPING job is ending, not waiting) and nothing it records is
/// there — an individual job's stream (its participant's camera or screen share, as its
/// `video_type` says) is not in the room, a mix's room has no stream at all. Such a job holds a worker's capacity while it records nothing (until its
/// `max_idle_time`), which is what the `waiting_jobs` quota bounds.
pub fn waits_for_source(job: &Job, roster: &[RoomStream]) -> bool {
    if !matches!(job.state, JobState::Init | JobState::Running) {
        return false;
    }
    match job.records_stream() {
        Some((user, video_type)) => !roster.iter().any(|stream| stream.is(user, video_type)),
        None => roster.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AppId;
    use crate::testing::{now, random};

    fn job(body: &str) -> Job {
        let app = AppId::generate(random());
        match body.contains("mix_param") {
            true => Job::mix(app, serde_json::from_str(body).unwrap(), random(), now()).unwrap(),
            false => Job::individual(app, serde_json::from_str(body).unwrap(), random(), now()).unwrap(),
        }
    }

    fn stream(user: &str) -> RoomStream {
        typed(user, crate::room::VideoType::Camerastream)
    }

    fn typed(user: &str, video_type: crate::room::VideoType) -> RoomStream {
        RoomStream {
            room_id: "r1".try_into().unwrap(),
            user_id: user.try_into().unwrap(),
            url: crate::url::StreamUrl::parse("rtmp://media.example.com/live/x", "url").unwrap(),
            video_type,
            has_audio: true,
            has_video: true,
            join_time: now(),
            join_seq: 1,
            update_time: now(),
            media_session: None,
            media_seen: None,
        }
    }

    #[test]
    fn a_job_waits_while_nobody_it_records_is_in_the_room_unless_it_is_ending() {
        let rule = r#""record_param":{"record_rule_id":"5d0ec2c53a2c15625017adb8bbbcd9ab"}"#;
        let mut individual = job(&format!(r#"{{"room_id":"r1","user_id":"u1",{rule}}}"#));
        let mix = job(&format!(r#"{{"mix_param":{{"room_id":"r1","encode_template":"640x360_15_500"}},{rule}}}"#));
        assert!(waits_for_source(&individual, &[]) && waits_for_source(&mix, &[]));
        assert!(waits_for_source(&individual, &[stream("u2")]), "someone else is no source for it");
        assert!(!waits_for_source(&mix, &[stream("u2")]), "anyone is a source for a mix");
        assert!(!waits_for_source(&individual, &[stream("u2"), stream("u1")]));
        let screen = job(&format!(r#"{{"room_id":"r1","user_id":"u1","video_type":"SUBSTREAM",{rule}}}"#));
        assert!(waits_for_source(&screen, &[stream("u1")]), "the camera is no source for a SUBSTREAM job");
        assert!(!waits_for_source(&screen, &[typed("u1", crate::room::VideoType::Substream)]));
        individual.state = JobState::Stopping;
        assert!(!waits_for_source(&individual, &[]), "a job that is ending is not waiting");
    }

    #[test]
    fn unset_quotas_take_their_defaults_and_a_change_keeps_what_it_does_not_set() {
        let set = QuotaSettings { active_jobs: Some(100), ..QuotaSettings::default() };
        assert_eq!(set.limits(), Quotas { active_jobs: 100, mix_participants: 25, waiting_jobs: 20 });
        let changed = set.merged(QuotaSettings { waiting_jobs: Some(3), ..QuotaSettings::default() });
        assert_eq!(changed.limits(), Quotas { active_jobs: 100, mix_participants: 25, waiting_jobs: 3 });
    }

    #[test]
    fn a_count_at_the_limit_is_refused_with_a_message_naming_the_quota() {
        let limits = QuotaSettings::default().limits();
        assert!(limits.check_count(Quota::ActiveJobs, 49).is_ok());
        let refused = limits.check_count(Quota::ActiveJobs, 50).unwrap_err();
        assert_eq!(refused.to_string(), "active_jobs limit 50 reached");
        assert_eq!(refused.quota, "active_jobs");
    }
}
