//! What the Jocloud verbs answer: a recording with its jobs and files.

use serde::Serialize;

use super::{RecordType, Recording, RecordingState, StreamType};
use crate::ids::{JobId, RecordId, ResId, RoomId, RuleId, UserId};
use crate::job::{Job, JobState, StopReason};
use crate::rule::RecordFormat;
use crate::time::Timestamp;

/// A recording as `startrecord`, `stoprecord`, `updatemixrecord` and `queryrecord` show it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingView {
    pub recordid: RecordId,
    pub resid: ResId,
    pub roomid: RoomId,
    pub streamtype: StreamType,
    pub recordtype: RecordType,
    pub record_rule_id: RuleId,
    pub max_idle_time: u32,
    pub state: RecordingState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    pub create_time: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_time: Option<Timestamp>,
    /// The recording's jobs, oldest first.
    pub jobs: Vec<JobView>,
    /// Every completed file, per job in order.
    pub files: Vec<FileView>,
}

/// One job of a recording.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub job_id: JobId,
    pub stream_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
}

/// One completed file of a recording.
#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    pub record_format: RecordFormat,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub duration: f64,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    /// A presigned GET URL; absent when the file could not be signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
}

impl RecordingView {
    /// The view of `recording` with its `jobs`, their files' `download_url`s as signed.
    pub fn new(recording: Recording, jobs: &[Job]) -> Self {
        let files = jobs
            .iter()
            .flat_map(|job| job.record_files.iter().flatten().map(move |f| (job, f)))
            .map(|(job, f)| FileView {
                user_id: job.user_id().cloned(),
                record_format: f.record_format,
                bucket: f.obs_bucket.clone(),
                key: f.obs_object.clone(),
                size: f.file_size,
                duration: f.record_duration,
                start_time: f.start_time,
                end_time: f.end_time,
                download_url: f.download_url.clone(),
            })
            .collect();
        let jobs = jobs
            .iter()
            .map(|job| JobView {
                job_id: job.job_id.clone(),
                stream_name: job.stream_name.clone(),
                user_id: job.user_id().cloned(),
                state: job.state,
                stop_reason: job.stop_reason,
            })
            .collect();
        Self {
            recordid: recording.recordid,
            resid: recording.resid,
            roomid: recording.room_id,
            streamtype: recording.streamtype,
            recordtype: recording.recordtype,
            record_rule_id: recording.record_rule_id,
            max_idle_time: recording.max_idle_time,
            state: recording.state,
            stop_reason: recording.stop_reason,
            create_time: recording.create_time,
            stop_time: recording.stop_time,
            jobs,
            files,
        }
    }
}
