//! Jocloud / ThunderBolt cloud recording (seed 003) over the same core: a reserved
//! recording resource (`resid`: five minutes, one use), a recording (`recordid`) that is
//! one mix job or one individual job per participant, and Jocloud's object names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::Random;
use crate::error::{Invalid, UseCaseError};
use crate::ids::{AppId, JobId, RecordId, ResId, RoomId, RuleId, UserId};
use crate::job::{IndividualParams, Job, JobSpec, JocloudTag, RecordParam, StopReason};
use crate::mix::MixParam;
use crate::naming::hls_files;
use crate::room::RoomStream;
use crate::time::Timestamp;

mod request;
mod view;

pub use request::{
    jocloud_field, ApplyRecordRequest, RecordIdRequest, StartPlan, StartRecordRequest, UpdateMixRecordRequest,
};
pub use view::{FileView, JobView, RecordingView};

/// How long a reserved `resid` can start a recording, in seconds (Jocloud: five minutes).
pub const RESERVATION_SECS: i64 = 300;
/// The mix picture when `encode_template` is not given.
pub const DEFAULT_ENCODE_TEMPLATE: &str = "1280x720_15_1200";
/// `max_idle_time` when not given: Jocloud leaves an idle room after 30 s.
pub const DEFAULT_IDLE_SECS: u32 = 30;

/// A reserved recording resource, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub app_id: AppId,
    pub resid: ResId,
    /// The room it was reserved for, if the client named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    pub create_time: Timestamp,
    /// Seconds since the epoch after which it starts nothing (also the storage TTL).
    pub expires_at: i64,
    /// The recording it started, once used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<RecordId>,
}

/// Why a reservation cannot start a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It started this recording already.
    Used(RecordId),
    /// It expired at this time.
    Expired(Timestamp),
}

impl From<Refusal> for UseCaseError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Used(record) => {
                UseCaseError::Conflict(format!("resid: already used by recording {record}; apply for a new one"))
            }
            Refusal::Expired(at) => UseCaseError::Expired {
                field: "resid",
                reason: format!("expired at {at} ({RESERVATION_SECS} s after it was applied for); apply for a new one"),
            },
        }
    }
}

fn timestamp(secs: i64) -> Timestamp {
    DateTime::from_timestamp(secs, 0).map(Timestamp::from).unwrap_or_else(Timestamp::zero)
}

impl Reservation {
    /// A new reservation of `app_id` made at `now`, valid for [`RESERVATION_SECS`].
    pub fn new(app_id: AppId, room_id: Option<RoomId>, random: &dyn Random, now: DateTime<Utc>) -> Self {
        let create_time = timestamp(now.timestamp());
        Self {
            app_id,
            resid: ResId::generate(random),
            room_id,
            create_time,
            expires_at: now.timestamp() + RESERVATION_SECS,
            used_by: None,
        }
    }

    /// When it expires.
    pub fn expire_time(&self) -> Timestamp {
        timestamp(self.expires_at)
    }

    /// Why it cannot start a recording at `now_secs`, if it cannot.
    pub fn refusal(&self, now_secs: i64) -> Option<Refusal> {
        match &self.used_by {
            Some(record) => Some(Refusal::Used(record.clone())),
            None if now_secs >= self.expires_at => Some(Refusal::Expired(self.expire_time())),
            None => None,
        }
    }
}

/// What a recording captures (`recordtype`; Jocloud's codes 0, 1, 2 are accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "Code")]
pub enum RecordType {
    #[default]
    AudioVideo,
    Video,
    Audio,
}

/// Which streams a recording captures (`streamtype`; Jocloud's codes 1, 2 are accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "Code")]
pub enum StreamType {
    /// The room composited into one picture: one mix job.
    #[default]
    Mixed,
    /// Each participant on their own: one individual job per participant.
    Source,
}

/// A Jocloud enum as a client may write it: its number or its name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Code {
    Number(i64),
    Name(String),
}

impl TryFrom<Code> for RecordType {
    type Error = Invalid;
    fn try_from(code: Code) -> Result<Self, Invalid> {
        match code {
            Code::Number(0) => Ok(Self::AudioVideo),
            Code::Number(1) => Ok(Self::Video),
            Code::Number(2) => Ok(Self::Audio),
            Code::Name(name) if name == "audio_video" => Ok(Self::AudioVideo),
            Code::Name(name) if name == "video" => Ok(Self::Video),
            Code::Name(name) if name == "audio" => Ok(Self::Audio),
            _ => Err(Invalid::new("recordtype", "must be audio_video (0), video (1) or audio (2)")),
        }
    }
}

impl TryFrom<Code> for StreamType {
    type Error = Invalid;
    fn try_from(code: Code) -> Result<Self, Invalid> {
        match code {
            Code::Number(1) => Ok(Self::Mixed),
            Code::Number(2) => Ok(Self::Source),
            Code::Name(name) if name == "mixed" => Ok(Self::Mixed),
            Code::Name(name) if name == "source" => Ok(Self::Source),
            _ => Err(Invalid::new("streamtype", "must be mixed (1) or source (2)")),
        }
    }
}

/// Whether a recording still records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordingState {
    Recording,
    Stopped,
}

/// A Jocloud recording, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub app_id: AppId,
    pub recordid: RecordId,
    pub resid: ResId,
    pub room_id: RoomId,
    pub streamtype: StreamType,
    pub recordtype: RecordType,
    pub record_rule_id: RuleId,
    pub max_idle_time: u32,
    /// The mix job of a mixed recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix_job_id: Option<JobId>,
    pub state: RecordingState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    pub create_time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<Timestamp>,
}

impl Recording {
    /// Whether a participant who joins now is recorded: a source recording that was not
    /// stopped and has not gone idle.
    pub fn is_open_source(&self) -> bool {
        self.streamtype == StreamType::Source && self.state == RecordingState::Recording
    }

    /// Whether the recording is still under way, judged by its `jobs`: one of them may still
    /// record, or (with none yet) the room has not been idle for `max_idle_time`. A job ends
    /// only after its participant sent nothing for `max_idle_time`, so once all have ended
    /// the room has been idle that long: Jocloud's auto-exit.
    pub fn is_live(&self, jobs: &[Job], now: DateTime<Utc>) -> bool {
        if self.state == RecordingState::Stopped {
            return false;
        }
        if jobs.is_empty() {
            let idle = now - self.create_time.as_datetime();
            return idle.num_seconds() < i64::from(self.max_idle_time);
        }
        jobs.iter().any(Job::is_active)
    }

    /// Ends the recording (idempotent: the first reason and time stay).
    pub fn stop(&mut self, reason: StopReason, now: Timestamp) {
        if self.state == RecordingState::Recording {
            self.state = RecordingState::Stopped;
            self.stop_reason = Some(reason);
            self.stop_time = Some(now);
        }
    }

    fn tag(&self, part: u32, first_file: u32) -> JocloudTag {
        JocloudTag { recordid: self.recordid.clone(), part, first_file }
    }

    /// The mix job of a mixed recording of `mix_param`.
    pub fn mix_job(&self, mix_param: MixParam, random: &dyn Random, now: Timestamp) -> Job {
        let record_param = RecordParam { record_rule_id: self.record_rule_id.to_string() };
        let spec = JobSpec::Mix { mix_param };
        let (app, room) = (self.app_id.clone(), self.room_id.clone());
        let mut job = Job::from_parts(JobId::generate(random), app, room, spec, record_param, random, now);
        job.jocloud = Some(self.tag(1, 0));
        job
    }

    /// The id of `user`'s `part`-th job in this recording; equal for every caller, so a
    /// participant is never recorded twice at once.
    pub fn source_job_id(&self, user: &UserId, part: u32) -> JobId {
        JobId::derived(&format!("jocloud|{}|{user}|{part}", self.recordid))
    }

    /// The next job for `stream`'s participant in a source recording, given their `earlier`
    /// jobs in it; `None` while one of those may still record.
    pub fn source_job(&self, stream: &RoomStream, earlier: &[Job], random: &dyn Random, now: Timestamp) -> Option<Job> {
        if earlier.iter().any(Job::is_active) {
            return None;
        }
        let part = earlier.iter().filter_map(|j| j.jocloud.as_ref()).map(|t| t.part).max().unwrap_or(0) + 1;
        let first_file = earlier.iter().map(|job| hls_files(job, &[])).sum();
        let params = IndividualParams {
            user_id: stream.user_id.clone(),
            is_record_audio: self.recordtype != RecordType::Video,
            video_type: stream.video_type,
            resolution: None,
            resolution_policy: None,
            max_idle_time: self.max_idle_time,
            is_record_video: self.recordtype != RecordType::Audio,
        };
        let record_param = RecordParam { record_rule_id: self.record_rule_id.to_string() };
        let id = self.source_job_id(&stream.user_id, part);
        let spec = JobSpec::Individual(params);
        let (app, room) = (self.app_id.clone(), self.room_id.clone());
        let mut job = Job::from_parts(id, app, room, spec, record_param, random, now);
        job.jocloud = Some(self.tag(part, first_file));
        Some(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;
    use crate::naming::object_name;
    use crate::room::VideoType;
    use crate::rule::RecordFormat;
    use crate::testing::random;
    use crate::url::StreamUrl;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_reservation_starts_one_recording_within_five_minutes() {
        let reservation = Reservation::new(AppId::generate(random()), None, random(), at(1_000));
        assert_eq!(reservation.expires_at, 1_300);
        assert_eq!(reservation.refusal(1_299), None);
        assert_eq!(reservation.refusal(1_300), Some(Refusal::Expired(reservation.expire_time())));
        let record = RecordId::generate(random());
        let used = Reservation { used_by: Some(record.clone()), ..reservation };
        assert_eq!(used.refusal(1_100), Some(Refusal::Used(record)), "single use");
    }

    #[test]
    fn an_expired_or_reused_resid_is_refused_naming_resid() {
        let expired = UseCaseError::from(Refusal::Expired(Timestamp::zero()));
        assert!(matches!(&expired, UseCaseError::Expired { field: "resid", .. }), "{expired:?}");
        let reused = UseCaseError::from(Refusal::Used(RecordId::generate(random())));
        assert!(matches!(&reused, UseCaseError::Conflict(m) if m.starts_with("resid:")), "{reused:?}");
    }

    fn recording(streamtype: StreamType, recordtype: RecordType, created: i64) -> Recording {
        Recording {
            app_id: AppId::generate(random()),
            recordid: RecordId::generate(random()),
            resid: ResId::generate(random()),
            room_id: RoomId::try_from("abcabc").unwrap(),
            streamtype,
            recordtype,
            record_rule_id: RuleId::generate(random()),
            max_idle_time: 30,
            mix_job_id: None,
            state: RecordingState::Recording,
            stop_reason: None,
            create_time: Timestamp::at(at(created)),
            stop_time: None,
        }
    }

    fn stream(user: &str) -> RoomStream {
        RoomStream {
            room_id: RoomId::try_from("abcabc").unwrap(),
            user_id: UserId::try_from(user).unwrap(),
            url: StreamUrl::parse("rtmp://media.example.com/live/x", "url").unwrap(),
            video_type: VideoType::Camerastream,
            has_audio: true,
            has_video: true,
            join_time: Timestamp::zero(),
            join_seq: 1,
            update_time: Timestamp::zero(),
            media_session: None,
            media_seen: None,
        }
    }

    #[test]
    fn a_source_job_records_what_the_recordtype_asks_and_is_the_same_for_every_caller() {
        let rec = recording(StreamType::Source, RecordType::Audio, 0);
        let job = rec.source_job(&stream("u1"), &[], random(), Timestamp::zero()).unwrap();
        let JobSpec::Individual(params) = &job.spec else { panic!("an individual job") };
        assert!(params.is_record_audio && !params.is_record_video);
        assert_eq!(params.max_idle_time, 30);
        assert_eq!(job.jocloud, Some(JocloudTag { recordid: rec.recordid.clone(), part: 1, first_file: 0 }));
        assert_eq!(job.job_id, rec.source_job_id(&stream("u1").user_id, 1));
        let again = rec.source_job(&stream("u1"), &[], random(), Timestamp::zero()).unwrap();
        assert_eq!(again.job_id, job.job_id, "two joins racing create one job");
    }

    #[test]
    fn a_participant_who_comes_back_gets_the_next_part_numbered_after_their_files() {
        let rec = recording(StreamType::Source, RecordType::AudioVideo, 0);
        let mut first = rec.source_job(&stream("u1"), &[], random(), Timestamp::zero()).unwrap();
        assert!(
            rec.source_job(&stream("u1"), std::slice::from_ref(&first), random(), Timestamp::zero()).is_none(),
            "still recording"
        );
        first.state = JobState::Stopped;
        let file = crate::job::RecordFile {
            record_format: RecordFormat::Hls,
            obs_bucket: "b".into(),
            obs_object: "k".into(),
            timeline_object: None,
            timeline_url: None,
            file_size: 1,
            record_duration: 1.0,
            start_time: Timestamp::zero(),
            end_time: Timestamp::zero(),
            download_url: None,
        };
        first.record_files = Some(vec![file]);
        let second = rec.source_job(&stream("u1"), &[first.clone()], random(), Timestamp::zero()).unwrap();
        let tag = second.jocloud.clone().unwrap();
        assert_eq!((tag.part, tag.first_file), (2, 1));
        assert_ne!(second.job_id, first.job_id);
        let name = object_name(&tag, &rec.room_id, second.user_id(), 0);
        assert_eq!(name, format!("rid_{}_abcabc__uid_s_u1__uid_e_2", rec.recordid));
    }

    #[test]
    fn object_names_follow_jocloud() {
        let tag = JocloudTag { recordid: RecordId::generate(random()), part: 1, first_file: 0 };
        let room = RoomId::try_from("abcabc").unwrap();
        let user = UserId::try_from("10266666").unwrap();
        assert_eq!(object_name(&tag, &room, None, 0), format!("rid_{}_abcabc", tag.recordid));
        assert_eq!(
            object_name(&tag, &room, Some(&user), 0),
            format!("rid_{}_abcabc__uid_s_10266666__uid_e", tag.recordid)
        );
        assert_eq!(object_name(&tag, &room, None, 1), format!("rid_{}_abcabc_2", tag.recordid));
    }

    #[test]
    fn a_source_recording_lives_while_a_job_may_record_or_until_an_empty_room_idles_out() {
        let rec = recording(StreamType::Source, RecordType::AudioVideo, 1_000);
        assert!(rec.is_live(&[], at(1_029)), "nobody yet, within max_idle_time");
        assert!(!rec.is_live(&[], at(1_030)), "nobody for max_idle_time: auto-exit");
        let mut job = rec.source_job(&stream("u1"), &[], random(), Timestamp::zero()).unwrap();
        assert!(rec.is_live(std::slice::from_ref(&job), at(9_999)));
        job.state = JobState::Stopped;
        assert!(!rec.is_live(&[job], at(1_001)), "every participant went idle");
        let mut stopped = rec.clone();
        stopped.stop(StopReason::TenantStop, Timestamp::zero());
        assert!(!stopped.is_live(&[], at(1_001)) && !stopped.is_open_source());
    }
}
