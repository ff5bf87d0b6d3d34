//! Recording jobs and their state machine: INIT → RUNNING → STOPPING → STOPPED, or FAILED.

use serde::{Deserialize, Serialize};

use crate::clock::Random;
use crate::error::Invalid;
use crate::ids::{AppId, JobId, JobUniqueId, RecordId, RoomId, RuleId, UserId};
use crate::mix::{check_max_idle, parse_size, MixParam, MixParamRequest, DEFAULT_MAX_IDLE_SECS};
use crate::room::VideoType;
use crate::time::Timestamp;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Created and queued; no worker has claimed it.
    Init,
    /// A worker is recording.
    Running,
    /// Stop requested; the worker is finalising files.
    Stopping,
    /// Ended; `stop_reason` says why.
    Stopped,
    /// Ended by an error a worker could not recover from.
    Failed,
}

impl JobState {
    /// The state's API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "INIT",
            Self::Running => "RUNNING",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses a state name from a query filter.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .map_err(|_| Invalid::new("state", "must be INIT, RUNNING, STOPPING, STOPPED or FAILED"))
    }

    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Stopped | Self::Failed)
    }
}

/// Why a job stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StopReason {
    /// The customer asked.
    TenantStop,
    /// No media for `max_idle_time`.
    ExceedMaxIdleTime,
    /// The worker hit an error it could not recover from.
    InternalError,
}

impl StopReason {
    /// The reason's API name (`TENANT_STOP`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantStop => "TENANT_STOP",
            Self::ExceedMaxIdleTime => "EXCEED_MAX_IDLE_TIME",
            Self::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// The two kinds of job, each with its own routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// One participant's stream to its own files.
    Individual,
    /// The whole room composited into one picture.
    Mix,
}

impl JobKind {
    /// The `job_type` name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Individual => "INDIVIDUAL",
            Self::Mix => "MIX",
        }
    }

    /// The kind's collection in the API's paths (`individual-stream-jobs`).
    pub fn collection(self) -> &'static str {
        match self {
            Self::Individual => "individual-stream-jobs",
            Self::Mix => "mix-stream-jobs",
        }
    }
}

/// Which kind of job, and its kind's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job_type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobSpec {
    /// One participant's stream to its own files.
    Individual(IndividualParams),
    /// The whole room composited into one picture.
    Mix { mix_param: MixParam },
}

/// How a requested `resolution` applies to the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResolutionPolicy {
    /// Scale down to `resolution` only when the source is larger.
    Downward,
    /// Scale up to `resolution` only when the source is smaller.
    Upward,
    /// Always scale to `resolution`.
    Fixed,
}

/// A requested output size written `1280*720` or `1280x720`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Resolution {
    text: String,
    pub width: u32,
    pub height: u32,
}

impl TryFrom<String> for Resolution {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        let (width, height) =
            parse_size(&text).ok_or_else(|| Invalid::new("resolution", "must be WIDTH*HEIGHT, e.g. 1280*720"))?;
        let ok = (16..=4096).contains(&width) && (16..=4096).contains(&height) && width % 2 == 0 && height % 2 == 0;
        if !ok {
            return Err(Invalid::new("resolution", "width and height must be even and between 16 and 4096"));
        }
        Ok(Self { text, width, height })
    }
}

impl From<Resolution> for String {
    fn from(value: Resolution) -> String {
        value.text
    }
}

/// The parameters of an individual-stream job, echoed at the top level as in the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndividualParams {
    pub user_id: UserId,
    pub is_record_audio: bool,
    pub video_type: VideoType,
    pub resolution: Option<Resolution>,
    pub resolution_policy: Option<ResolutionPolicy>,
    pub max_idle_time: u32,
    /// Whether video is recorded; only a Jocloud audio recording turns it off.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub is_record_video: bool,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// `record_param` of a job: which rule decides storage and files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordParam {
    pub record_rule_id: String,
}

/// `push_param` of the seeds; re-streaming is not offered, so always `{"rtmp_urls": null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushParam {
    pub rtmp_urls: Option<Vec<String>>,
}

/// A finished (or growing) recording file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordFile {
    pub record_format: crate::rule::RecordFormat,
    pub obs_bucket: String,
    pub obs_object: String,
    pub file_size: u64,
    pub record_duration: f64,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    /// A presigned GET URL of the file, added when the job is shown (never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    /// The file's timeline sidecar (`<obs_object>.timeline.json`), when stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_object: Option<String>,
    /// A presigned GET URL of the timeline sidecar, added when the job is shown (never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_url: Option<String>,
}

/// A file a running job is recording now, in its view: where a live view finds the HLS
/// playlist as uploaded so far (`playback.m3u8?object=`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveFile {
    pub record_format: crate::rule::RecordFormat,
    pub obs_bucket: String,
    pub obs_object: String,
    pub start_time: Timestamp,
    /// Bytes stored so far.
    pub file_size: u64,
    /// Seconds of media stored so far.
    pub record_duration: f64,
}

/// A recording job as stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub app_id: AppId,
    pub job_id: JobId,
    pub job_unique_id: JobUniqueId,
    pub room_id: RoomId,
    #[serde(flatten)]
    pub spec: JobSpec,
    pub record_param: RecordParam,
    pub push_param: PushParam,
    pub stream_name: String,
    pub state: JobState,
    /// Recording is paused by the tenant: nothing is written until it resumes ([`crate::pause`]).
    #[serde(default)]
    pub paused: bool,
    /// When the current pause was asked for; absent while recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// The Jocloud recording the job belongs to; its files get Jocloud's names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jocloud: Option<JocloudTag>,
    pub record_files: Option<Vec<RecordFile>>,
    /// Files being recorded now, added when the job is shown (never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_files: Option<Vec<LiveFile>>,
    pub create_time: Timestamp,
    pub start_time: Timestamp,
    pub stop_time: Timestamp,
    pub update_time: Timestamp,
}

/// What a job of a Jocloud recording carries: its files get Jocloud's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JocloudTag {
    pub recordid: RecordId,
    /// 1 for a participant's first job in the recording, 2 after they came back, …
    #[serde(default = "first_part")]
    pub part: u32,
    /// Files this participant already has in the recording (from earlier parts): the first
    /// file of this job is named as the next one.
    #[serde(default)]
    pub first_file: u32,
}

fn first_part() -> u32 {
    1
}

/// Body of `POST .../individual-stream-jobs` (the seed's fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndividualJobRequest {
    pub room_id: Option<RoomId>,
    pub user_id: Option<UserId>,
    pub is_record_audio: Option<bool>,
    pub video_type: Option<VideoType>,
    pub resolution: Option<Resolution>,
    pub resolution_policy: Option<ResolutionPolicy>,
    pub max_idle_time: Option<u32>,
    pub record_param: Option<RecordParam>,
}

/// Body of `POST .../mix-stream-jobs` (the seed's fields).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixJobRequest {
    pub mix_param: Option<MixParamRequest>,
    pub record_param: Option<RecordParam>,
}

/// Body of `PUT .../mix-stream-jobs/{job_id}`: the `mix_param` fields to change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixUpdateRequest {
    pub mix_param: MixParamRequest,
}

/// What a stop request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// No worker had the job: it is STOPPED now.
    StoppedNow,
    /// A worker has it: it is STOPPING until the worker finalises.
    Stopping,
    /// It had already ended or was already stopping; nothing changed.
    Unchanged,
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid::new(field, "is required"))
}

impl Job {
    /// A new job in INIT with the given id (random for API jobs, derived for jobs that
    /// several callers may start at once).
    pub fn from_parts(
        job_id: JobId,
        app_id: AppId,
        room_id: RoomId,
        spec: JobSpec,
        record_param: RecordParam,
        random: &dyn Random,
        now: Timestamp,
    ) -> Self {
        let stream_name = match &spec {
            JobSpec::Individual(p) => format!("s_{job_id}_{room_id}_{}", p.user_id),
            JobSpec::Mix { .. } => format!("m_{job_id}_{room_id}"),
        };
        Self {
            app_id,
            job_id,
            job_unique_id: JobUniqueId::generate(random),
            room_id,
            spec,
            record_param,
            push_param: PushParam::default(),
            stream_name,
            state: JobState::Init,
            paused: false,
            paused_at: None,
            stop_reason: None,
            jocloud: None,
            record_files: None,
            recording_files: None,
            create_time: now,
            start_time: now,
            stop_time: Timestamp::zero(),
            update_time: now,
        }
    }

    /// A new individual job in INIT, from the seed's request body.
    pub fn individual(
        app_id: AppId,
        request: IndividualJobRequest,
        random: &dyn Random,
        now: Timestamp,
    ) -> Result<Self, Invalid> {
        let room_id = required(request.room_id, "room_id")?;
        let params = IndividualParams {
            user_id: required(request.user_id, "user_id")?,
            is_record_audio: request.is_record_audio.unwrap_or(true),
            video_type: request.video_type.unwrap_or_default(),
            resolution_policy: match (&request.resolution, request.resolution_policy) {
                (None, Some(_)) => return Err(Invalid::new("resolution_policy", "needs a resolution")),
                (Some(_), policy) => Some(policy.unwrap_or(ResolutionPolicy::Downward)),
                (None, None) => None,
            },
            resolution: request.resolution,
            max_idle_time: check_max_idle(request.max_idle_time.unwrap_or(DEFAULT_MAX_IDLE_SECS), "max_idle_time")?,
            is_record_video: true,
        };
        let record_param = required(request.record_param, "record_param")?;
        let spec = JobSpec::Individual(params);
        Ok(Self::from_parts(JobId::generate(random), app_id, room_id, spec, record_param, random, now))
    }

    /// A new mix job in INIT, from the seed's request body.
    pub fn mix(app_id: AppId, request: MixJobRequest, random: &dyn Random, now: Timestamp) -> Result<Self, Invalid> {
        let mix_param = MixParam::create(required(request.mix_param, "mix_param")?)?;
        let record_param = required(request.record_param, "record_param")?;
        let room_id = mix_param.room_id.clone();
        let spec = JobSpec::Mix { mix_param };
        Ok(Self::from_parts(JobId::generate(random), app_id, room_id, spec, record_param, random, now))
    }

    /// Which kind of job this is.
    pub fn kind(&self) -> JobKind {
        match self.spec {
            JobSpec::Individual(_) => JobKind::Individual,
            JobSpec::Mix { .. } => JobKind::Mix,
        }
    }

    /// How long the job waits for media before it ends by itself.
    pub fn max_idle_time(&self) -> u32 {
        match &self.spec {
            JobSpec::Individual(params) => params.max_idle_time,
            JobSpec::Mix { mix_param } => mix_param.max_idle_time,
        }
    }

    /// Whether the job may still record (INIT, RUNNING or STOPPING).
    pub fn is_active(&self) -> bool {
        !self.state.is_final()
    }

    /// The participant an individual job records.
    pub fn user_id(&self) -> Option<&UserId> {
        match &self.spec {
            JobSpec::Individual(p) => Some(&p.user_id),
            JobSpec::Mix { .. } => None,
        }
    }

    /// The participant stream an individual job records: its user and video type.
    pub fn records_stream(&self) -> Option<(&UserId, VideoType)> {
        match &self.spec {
            JobSpec::Individual(p) => Some((&p.user_id, p.video_type)),
            JobSpec::Mix { .. } => None,
        }
    }

    /// The rule id the job names; checked against the app's rules when the job is created.
    pub fn rule_id(&self) -> Option<RuleId> {
        RuleId::parse(&self.record_param.record_rule_id)
    }

    /// Applies a stop request: INIT stops at once, RUNNING becomes STOPPING, others stay.
    pub fn request_stop(&mut self, now: Timestamp) -> StopOutcome {
        match self.state {
            JobState::Init => {
                self.state = JobState::Stopped;
                self.stop_reason = Some(StopReason::TenantStop);
                self.stop_time = now;
                self.update_time = now;
                StopOutcome::StoppedNow
            }
            JobState::Running => {
                self.state = JobState::Stopping;
                self.stop_reason = Some(StopReason::TenantStop);
                self.update_time = now;
                StopOutcome::Stopping
            }
            JobState::Stopping | JobState::Stopped | JobState::Failed => StopOutcome::Unchanged,
        }
    }

    /// Applies a live layout update to a mix job that has not ended.
    pub fn update_mix(&mut self, request: MixUpdateRequest, now: Timestamp) -> Result<(), UpdateError> {
        if self.state.is_final() || self.state == JobState::Stopping {
            return Err(UpdateError::Ended(self.state));
        }
        let JobSpec::Mix { mix_param } = &mut self.spec else { return Err(UpdateError::NotMix) };
        let mut updated = mix_param.clone();
        updated.apply(request.mix_param, "mix_param")?;
        *mix_param = updated;
        self.update_time = now;
        Ok(())
    }
}

/// Why a mix update was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The body had a bad value.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The job has ended or is ending.
    #[error("the job is {} and can no longer be updated", .0.as_str())]
    Ended(JobState),
    /// Only mix jobs have a layout.
    #[error("only mix-stream jobs have a layout")]
    NotMix,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{now, random};

    const SEED: &str = r#"{"room_id":"room001","user_id":"user001","is_record_audio":true,"video_type":"CAMERASTREAM","resolution":"1280*720","resolution_policy":"DOWNWARD","max_idle_time":30,"record_param":{"record_rule_id":"5d0ec2c53a2c15625017adb8bbbcd9ab"}}"#;

    fn seed_job() -> Job {
        Job::individual(AppId::generate(random()), serde_json::from_str(SEED).unwrap(), random(), now()).unwrap()
    }

    #[test]
    fn individual_jobs_are_named_like_the_seed_and_echo_its_fields() {
        let job = seed_job();
        assert_eq!(job.stream_name, format!("s_{}_room001_user001", job.job_id));
        let json = serde_json::to_value(&job).unwrap();
        for field in ["app_id", "job_id", "job_unique_id", "resolution", "resolution_policy", "stop_time", "push_param"]
        {
            assert!(json.get(field).is_some(), "{field} missing in {json}");
        }
        assert_eq!(json["state"], "INIT");
        assert_eq!(json["resolution"], "1280*720");
        assert_eq!(json["stop_time"], "0001-01-01T00:00:00Z");
    }

    #[test]
    fn jobs_round_trip_through_json() {
        let job = seed_job();
        let back: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }

    #[test]
    fn stop_moves_init_to_stopped_and_running_to_stopping_once() {
        let mut job = seed_job();
        assert_eq!(job.request_stop(now()), StopOutcome::StoppedNow);
        assert_eq!((job.state, job.stop_reason), (JobState::Stopped, Some(StopReason::TenantStop)));
        assert_eq!(job.request_stop(now()), StopOutcome::Unchanged);

        let mut job = seed_job();
        job.state = JobState::Running;
        assert_eq!(job.request_stop(now()), StopOutcome::Stopping);
        assert_eq!(job.request_stop(now()), StopOutcome::Unchanged);
        assert_eq!(job.state, JobState::Stopping);
    }

    #[test]
    fn jobs_stored_before_jocloud_and_video_flags_existed_read_with_their_defaults() {
        let mut json = serde_json::to_value(seed_job()).unwrap();
        json.as_object_mut().unwrap().remove("jocloud");
        json.as_object_mut().unwrap().remove("is_record_video");
        let old: Job = serde_json::from_value(json).unwrap();
        assert_eq!(old.jocloud, None);
        let JobSpec::Individual(params) = old.spec else { panic!("an individual job") };
        assert!(params.is_record_video);
    }

    #[test]
    fn resolutions_are_plain_numbers_so_the_stored_text_stays_short() {
        assert_eq!(Resolution::try_from("1280*720".to_owned()).unwrap().width, 1280);
        let padded = format!("{}1280*720", "0".repeat(100_000));
        for bad in [padded.as_str(), "+1280*720", "01280*720", "1280*0720"] {
            assert_eq!(Resolution::try_from(bad.to_owned()).unwrap_err().field, "resolution", "{bad:.20}");
        }
    }

    #[test]
    fn max_idle_time_out_of_range_names_the_field() {
        let body = SEED.replace("\"max_idle_time\":30", "\"max_idle_time\":2");
        let err = Job::individual(AppId::generate(random()), serde_json::from_str(&body).unwrap(), random(), now())
            .unwrap_err();
        assert_eq!(err.field, "max_idle_time");
    }
}
