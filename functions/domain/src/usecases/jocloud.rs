//! The Jocloud verbs over the same jobs: reserve a recording resource, start a recording
//! with it, update its mix layout, stop it, query it; and the join that adds a participant
//! to an open source-stream recording.

use std::sync::Arc;

use crate::clock::{Clock, Random};
use crate::error::{error_chain, Invalid, StoreError, UseCaseError};
use crate::ids::{AppId, RecordId, RoomId};
use crate::job::{Job, JobKind, MixUpdateRequest, StopReason, UpdateError};
use crate::jocloud::{
    jocloud_field, ApplyRecordRequest, RecordIdRequest, Recording, RecordingState, RecordingView, Reservation,
    StartPlan, StartRecordRequest, StreamType, UpdateMixRecordRequest,
};
use crate::ports::{RecordingStore, RoomJobs, RoomStore, RuleStore};
use crate::room::{RoomStream, VideoType};
use crate::time::Timestamp;

use super::access::OwnedApp;
use super::files::Files;
use super::jobs::Jobs;
use super::rules::existing_rule;

/// The Jocloud use cases.
#[derive(Clone)]
pub struct Jocloud {
    ports: JocloudPorts,
}

/// The ports and use cases [`Jocloud`] works with.
#[derive(Clone)]
pub struct JocloudPorts {
    pub recordings: Arc<dyn RecordingStore>,
    /// For the participants a source recording starts with.
    pub rooms: Arc<dyn RoomStore>,
    pub rules: Arc<dyn RuleStore>,
    pub jobs: Jobs,
    /// Signs the files' `download_url`s.
    pub files: Files,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl Jocloud {
    /// The Jocloud use cases.
    pub fn new(ports: JocloudPorts) -> Self {
        Self { ports }
    }

    /// `applyrecord`: reserves a recording resource, valid for five minutes and one start.
    pub async fn apply_record(&self, app: &OwnedApp, request: ApplyRecordRequest) -> Result<Reservation, UseCaseError> {
        let reservation =
            Reservation::new(app.id().clone(), request.roomid, self.ports.random.as_ref(), self.ports.clock.now());
        self.ports.recordings.put_reservation(&reservation).await?;
        Ok(reservation)
    }

    /// `startrecord`: uses the reservation and starts one mix job (mixed) or one individual
    /// job per participant now in the room (source; later joiners get theirs on joining).
    pub async fn start_record(
        &self,
        app: &OwnedApp,
        request: StartRecordRequest,
    ) -> Result<RecordingView, UseCaseError> {
        let plan = request.plan()?;
        existing_rule(self.ports.rules.as_ref(), app.id(), plan.record_rule_id.as_str(), "record_rule_id").await?;
        let recordid = RecordId::generate(self.ports.random.as_ref());
        self.use_reservation(app.id(), &plan, &recordid).await?;
        let StartPlan { resid, room_id, recordtype, streamtype, record_rule_id, max_idle_time, mix_param } = plan;
        let now = self.ports.clock.timestamp();
        let mut recording = Recording {
            app_id: app.id().clone(),
            recordid,
            resid,
            room_id,
            streamtype,
            recordtype,
            record_rule_id,
            max_idle_time,
            mix_job_id: None,
            state: RecordingState::Recording,
            stop_reason: None,
            create_time: now,
            stop_time: None,
        };
        match mix_param {
            Some(mix_param) => {
                let job = recording.mix_job(mix_param, self.ports.random.as_ref(), now);
                recording.mix_job_id = Some(job.job_id.clone());
                self.ports.recordings.put_recording(&recording).await?;
                if let Err(err) = self.ports.jobs.start(job).await {
                    recording.stop(StopReason::InternalError, self.ports.clock.timestamp());
                    self.save_settled(&recording).await;
                    return Err(err);
                }
            }
            None => {
                // Saved first: a participant joining from now on finds it (and whoever of
                // the two starts their job first, the derived job id makes it one job).
                self.ports.recordings.put_recording(&recording).await?;
                let jobs = self.recording_jobs(&recording).await?;
                for stream in self.ports.rooms.list_streams(app.id(), &recording.room_id).await? {
                    if let Err(err) = self.record_participant(&recording, &stream, &jobs).await {
                        // All of the room or nothing (a quota, say, stopped it part way).
                        self.abandon(&mut recording).await;
                        return Err(err);
                    }
                }
            }
        }
        self.view(app, recording).await
    }

    /// Checks the plan's reservation and marks it used by `recordid`, once.
    async fn use_reservation(&self, app_id: &AppId, plan: &StartPlan, recordid: &RecordId) -> Result<(), UseCaseError> {
        let not_found = || UseCaseError::not_found("resid", "recording resource");
        let reservation = self.ports.recordings.get_reservation(app_id, &plan.resid).await?.ok_or_else(not_found)?;
        let now_secs = self.ports.clock.now().timestamp();
        if let Some(refusal) = reservation.refusal(now_secs) {
            return Err(refusal.into());
        }
        if let Some(room) = reservation.room_id.as_ref().filter(|room| **room != plan.room_id) {
            return Err(Invalid::new("roomid", format!("the resid was applied for room {room}")).into());
        }
        match self.ports.recordings.consume_reservation(app_id, &plan.resid, recordid, now_secs).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => {
                // Used by a concurrent start, or expired, since it was read: say which.
                let again = self.ports.recordings.get_reservation(app_id, &plan.resid).await?.ok_or_else(not_found)?;
                Err(again.refusal(self.ports.clock.now().timestamp()).map_or_else(
                    || UseCaseError::Conflict("resid: changed while starting; try again".into()),
                    UseCaseError::from,
                ))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// `stoprecord`: stops the recording and every job of it; stopping again changes nothing.
    pub async fn stop_record(&self, app: &OwnedApp, request: RecordIdRequest) -> Result<RecordingView, UseCaseError> {
        let mut recording = self.recording(app, &request.recordid, request.roomid.as_ref()).await?;
        if recording.state == RecordingState::Recording {
            // First, so that nobody who joins from now on is recorded.
            recording.stop(StopReason::TenantStop, self.ports.clock.timestamp());
            self.ports.recordings.put_recording(&recording).await?;
        }
        let kind = match recording.streamtype {
            StreamType::Mixed => JobKind::Mix,
            StreamType::Source => JobKind::Individual,
        };
        for job in self.recording_jobs(&recording).await?.iter().filter(|j| j.is_active()) {
            self.ports.jobs.stop_job(&recording.app_id, kind, job.job_id.as_str()).await?;
        }
        self.view(app, recording).await
    }

    /// `updatemixrecord`: changes a mixed recording's layout while it records.
    pub async fn update_mix_record(
        &self,
        app: &OwnedApp,
        request: UpdateMixRecordRequest,
    ) -> Result<RecordingView, UseCaseError> {
        let recording = self.recording(app, &request.recordid, request.roomid.as_ref()).await?;
        let Some(job_id) = recording.mix_job_id.clone() else {
            return Err(UseCaseError::Conflict("recordid: a source-stream recording has no mix layout".into()));
        };
        let update = MixUpdateRequest { mix_param: request.mix_param() };
        let refusal = |err: UpdateError| match err {
            UpdateError::Invalid(invalid) => jocloud_field(invalid).into(),
            err => UseCaseError::Conflict(format!("recordid: {err}")),
        };
        self.ports.jobs.update_mix_job(app, job_id.as_str(), update, refusal).await?;
        self.view(app, recording).await
    }

    /// `queryrecord`: the recording's state, its jobs and its files.
    pub async fn query_record(&self, app: &OwnedApp, request: RecordIdRequest) -> Result<RecordingView, UseCaseError> {
        let recording = self.recording(app, &request.recordid, request.roomid.as_ref()).await?;
        self.view(app, recording).await
    }

    /// Ends a source recording that could not start whole: it is stopped, and so are the
    /// jobs it started; a failure is logged (nothing was recorded yet).
    async fn abandon(&self, recording: &mut Recording) {
        recording.stop(StopReason::InternalError, self.ports.clock.timestamp());
        self.save_settled(recording).await;
        let started = match self.recording_jobs(recording).await {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(recordid = %recording.recordid, error = %error_chain(&err),
                    "could not list the jobs of a recording that failed to start");
                return;
            }
        };
        for job in started.iter().filter(|j| j.is_active()) {
            if let Err(err) =
                self.ports.jobs.stop_job(&recording.app_id, JobKind::Individual, job.job_id.as_str()).await
            {
                tracing::warn!(recordid = %recording.recordid, job_id = %job.job_id, error = %error_chain(&err),
                    "could not stop a job of a recording that failed to start");
            }
        }
    }

    /// Records `stream`'s participant in every open source recording of their room.
    pub(crate) async fn join_recordings(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), UseCaseError> {
        for recording in self.ports.recordings.open_recordings(app_id, &stream.room_id).await? {
            let jobs = self.recording_jobs(&recording).await?;
            if recording.is_live(&jobs, self.ports.clock.now()) {
                self.record_participant(&recording, stream, &jobs).await?;
            } else {
                self.settle(recording, &jobs).await;
            }
        }
        Ok(())
    }

    /// Starts the participant's next job in a source recording, unless one may still record.
    /// A Jocloud participant (`uid`) has one stream, named by the uid alone: their camera. A
    /// screen share of the same user is not recorded in a source recording (a mixed one shows
    /// it); Jocloud clients share a screen as a uid of its own.
    async fn record_participant(
        &self,
        recording: &Recording,
        stream: &RoomStream,
        jobs: &[Job],
    ) -> Result<(), UseCaseError> {
        if stream.video_type != VideoType::Camerastream {
            return Ok(());
        }
        let earlier: Vec<Job> = jobs.iter().filter(|j| j.user_id() == Some(&stream.user_id)).cloned().collect();
        let now = self.ports.clock.timestamp();
        let Some(job) = recording.source_job(stream, &earlier, self.ports.random.as_ref(), now) else { return Ok(()) };
        match self.ports.jobs.start(job).await {
            // A concurrent join or start created the same job.
            Ok(_) | Err(UseCaseError::Store(StoreError::Conflict)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// The recording `recordid` of the caller's app; `roomid`, if given, must be its room.
    async fn recording(
        &self,
        app: &OwnedApp,
        recordid: &str,
        roomid: Option<&RoomId>,
    ) -> Result<Recording, UseCaseError> {
        let not_found = || UseCaseError::not_found("recordid", "recording");
        let recordid = RecordId::parse(recordid).ok_or_else(not_found)?;
        let recording = self.ports.recordings.get_recording(app.id(), &recordid).await?.ok_or_else(not_found)?;
        if let Some(room) = roomid.filter(|room| **room != recording.room_id) {
            return Err(Invalid::new("roomid", format!("recording {recordid} is not of room {room}")).into());
        }
        Ok(recording)
    }

    /// The recording's jobs with their files, oldest first: the room's jobs since the
    /// recording began (through the jobs index, never the app's others), each read whole.
    async fn recording_jobs(&self, recording: &Recording) -> Result<Vec<Job>, UseCaseError> {
        if let Some(job_id) = &recording.mix_job_id {
            return Ok(self.ports.jobs.find(&recording.app_id, job_id).await?.into_iter().collect());
        }
        let since = RoomJobs::Since(recording.create_time);
        let listed = self.ports.jobs.in_room(&recording.app_id, JobKind::Individual, &recording.room_id, since).await?;
        let ours = listed.iter().filter(|j| j.jocloud.as_ref().is_some_and(|tag| tag.recordid == recording.recordid));
        let reads = ours.map(|job| self.ports.jobs.find(&recording.app_id, &job.job_id));
        let mut jobs: Vec<Job> = futures::future::try_join_all(reads).await?.into_iter().flatten().collect();
        jobs.sort_by(|a, b| a.create_time.cmp(&b.create_time).then_with(|| a.job_id.cmp(&b.job_id)));
        Ok(jobs)
    }

    /// The view of `recording`, which is first marked stopped if its jobs show it ended.
    async fn view(&self, app: &OwnedApp, recording: Recording) -> Result<RecordingView, UseCaseError> {
        let mut jobs = self.recording_jobs(&recording).await?;
        let recording = match recording.is_live(&jobs, self.ports.clock.now()) {
            true => recording,
            false => self.settle(recording, &jobs).await,
        };
        let rule = self.ports.rules.get_rule(&recording.app_id, &recording.record_rule_id).await?;
        for job in &mut jobs {
            self.ports.files.sign(app.account(), rule.as_ref(), job).await;
        }
        Ok(RecordingView::new(recording, &jobs))
    }

    /// Marks a recording whose jobs have all ended (or that never got one) as stopped, with
    /// the reason its mix job ended or, for source streams, the room's idleness.
    async fn settle(&self, mut recording: Recording, jobs: &[Job]) -> Recording {
        if recording.state == RecordingState::Stopped {
            return recording;
        }
        let reason = match recording.streamtype {
            StreamType::Mixed => jobs.iter().find_map(|j| j.stop_reason),
            StreamType::Source => None,
        };
        let ended = jobs.iter().map(|j| j.stop_time).max().filter(|t| *t > Timestamp::zero());
        let ended = ended.unwrap_or_else(|| self.ports.clock.timestamp());
        recording.stop(reason.unwrap_or(StopReason::ExceedMaxIdleTime), ended);
        self.save_settled(&recording).await;
        recording
    }

    /// Saves a recording the service ended by itself; a failure is logged (the next look
    /// settles it again).
    async fn save_settled(&self, recording: &Recording) {
        if let Err(err) = self.ports.recordings.put_recording(recording).await {
            tracing::warn!(recordid = %recording.recordid, error = %error_chain(&err),
                "could not save the recording's end");
        }
    }
}
