//! The Jocloud verbs over the same jobs: reserve a recording resource, start a recording
//! with it, update its mix layout, stop it, query it; and the join that adds a participant
//! to an open source-stream recording.

use chrono::Utc;

use crate::ids::{AccountId, AppId, RecordId, RoomId};
use crate::job::{Job, MixUpdateRequest, StopOutcome, StopReason, UpdateError};
use crate::jocloud::{
    download_url, jocloud_field, ApplyRecordRequest, RecordIdRequest, Recording, RecordingState, RecordingView,
    Reservation, StartPlan, StartRecordRequest, StreamType, UpdateMixRecordRequest,
};
use crate::ports::{JobFilter, RecordingStore, StoreError};
use crate::room::RoomStream;
use crate::time::Timestamp;
use crate::{Invalid, Service, UseCaseError};

impl Service {
    fn recordings(&self) -> Result<&dyn RecordingStore, UseCaseError> {
        self.recordings.as_deref().ok_or_else(|| UseCaseError::Conflict("this function has no Jocloud store".into()))
    }

    /// `applyrecord`: reserves a recording resource, valid for five minutes and one start.
    pub async fn apply_record(
        &self,
        account: &AccountId,
        app_id: &str,
        request: ApplyRecordRequest,
    ) -> Result<Reservation, UseCaseError> {
        let app = self.app(account, app_id).await?;
        let reservation = Reservation::new(app.app_id, request.roomid, Utc::now());
        self.recordings()?.put_reservation(&reservation).await?;
        Ok(reservation)
    }

    /// `startrecord`: uses the reservation and starts one mix job (mixed) or one individual
    /// job per participant now in the room (source; later joiners get theirs on joining).
    pub async fn start_record(
        &self,
        account: &AccountId,
        app_id: &str,
        request: StartRecordRequest,
    ) -> Result<RecordingView, UseCaseError> {
        let app = self.app(account, app_id).await?;
        let plan = request.plan()?;
        self.rule_of(&app.app_id, plan.record_rule_id.as_str(), "record_rule_id").await?;
        let recordid = RecordId::generate();
        self.use_reservation(&app.app_id, &plan, &recordid).await?;
        let StartPlan { resid, room_id, recordtype, streamtype, record_rule_id, max_idle_time, mix_param } = plan;
        let now = Timestamp::now();
        let mut recording = Recording {
            app_id: app.app_id.clone(),
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
        let recordings = self.recordings()?;
        match mix_param {
            Some(mix_param) => {
                let job = recording.mix_job(mix_param, now);
                recording.mix_job_id = Some(job.job_id.clone());
                recordings.put_recording(&recording).await?;
                if let Err(err) = self.start(&app.app_id, job).await {
                    recording.stop(StopReason::InternalError, Timestamp::now());
                    self.save_settled(&recording).await;
                    return Err(err);
                }
            }
            None => {
                // Saved first: a participant joining from now on finds it (and whoever of
                // the two starts their job first, the derived job id makes it one job).
                recordings.put_recording(&recording).await?;
                let jobs = self.recording_jobs(&recording).await?;
                for stream in self.store.list_streams(&app.app_id, &recording.room_id).await? {
                    self.record_participant(&recording, &stream, &jobs).await?;
                }
            }
        }
        self.view(recording).await
    }

    /// Checks the plan's reservation and marks it used by `recordid`, once.
    async fn use_reservation(&self, app_id: &AppId, plan: &StartPlan, recordid: &RecordId) -> Result<(), UseCaseError> {
        let recordings = self.recordings()?;
        let not_found = || UseCaseError::not_found("resid", "recording resource");
        let reservation = recordings.get_reservation(app_id, &plan.resid).await?.ok_or_else(not_found)?;
        if let Some(refusal) = reservation.refusal(Utc::now().timestamp()) {
            return Err(refusal.into());
        }
        if let Some(room) = reservation.room_id.as_ref().filter(|room| **room != plan.room_id) {
            return Err(Invalid::new("roomid", format!("the resid was applied for room {room}")).into());
        }
        match recordings.consume_reservation(app_id, &plan.resid, recordid, Utc::now().timestamp()).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => {
                // Used by a concurrent start, or expired, since it was read: say which.
                let again = recordings.get_reservation(app_id, &plan.resid).await?.ok_or_else(not_found)?;
                Err(again.refusal(Utc::now().timestamp()).map_or_else(
                    || UseCaseError::Conflict("resid: changed while starting; try again".into()),
                    UseCaseError::from,
                ))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// `stoprecord`: stops the recording and every job of it; stopping again changes nothing.
    pub async fn stop_record(
        &self,
        account: &AccountId,
        app_id: &str,
        request: RecordIdRequest,
    ) -> Result<RecordingView, UseCaseError> {
        let mut recording = self.recording(account, app_id, &request.recordid, request.roomid.as_ref()).await?;
        if recording.state == RecordingState::Recording {
            // First, so that nobody who joins from now on is recorded.
            recording.stop(StopReason::TenantStop, Timestamp::now());
            self.recordings()?.put_recording(&recording).await?;
        }
        for job in self.recording_jobs(&recording).await?.iter().filter(|j| j.is_active()) {
            let mix = recording.streamtype == StreamType::Mixed;
            self.change_job(&recording.app_id, job.job_id.as_str(), mix, |job| {
                Ok(job.request_stop(Timestamp::now()) != StopOutcome::Unchanged)
            })
            .await?;
        }
        self.view(recording).await
    }

    /// `updatemixrecord`: changes a mixed recording's layout while it records.
    pub async fn update_mix_record(
        &self,
        account: &AccountId,
        app_id: &str,
        request: UpdateMixRecordRequest,
    ) -> Result<RecordingView, UseCaseError> {
        let recording = self.recording(account, app_id, &request.recordid, request.roomid.as_ref()).await?;
        let Some(job_id) = recording.mix_job_id.clone() else {
            return Err(UseCaseError::Conflict("recordid: a source-stream recording has no mix layout".into()));
        };
        let update = MixUpdateRequest { mix_param: request.mix_param() };
        self.change_job(&recording.app_id, job_id.as_str(), true, |job| {
            match job.update_mix(update.clone(), Timestamp::now()) {
                Ok(()) => Ok(true),
                Err(UpdateError::Invalid(invalid)) => Err(jocloud_field(invalid).into()),
                Err(err) => Err(UseCaseError::Conflict(format!("recordid: {err}"))),
            }
        })
        .await?;
        self.view(recording).await
    }

    /// `queryrecord`: the recording's state, its jobs and its files.
    pub async fn query_record(
        &self,
        account: &AccountId,
        app_id: &str,
        request: RecordIdRequest,
    ) -> Result<RecordingView, UseCaseError> {
        let recording = self.recording(account, app_id, &request.recordid, request.roomid.as_ref()).await?;
        self.view(recording).await
    }

    /// Records `stream`'s participant in every open source recording of their room.
    pub(super) async fn join_recordings(&self, app_id: &AppId, stream: &RoomStream) -> Result<(), UseCaseError> {
        let Some(recordings) = self.recordings.as_deref() else { return Ok(()) };
        for recording in recordings.open_recordings(app_id, &stream.room_id).await? {
            let jobs = self.recording_jobs(&recording).await?;
            if recording.is_live(&jobs, Utc::now()) {
                self.record_participant(&recording, stream, &jobs).await?;
            } else {
                self.settle(recording, &jobs).await;
            }
        }
        Ok(())
    }

    /// Starts the participant's next job in a source recording, unless one may still record.
    async fn record_participant(
        &self,
        recording: &Recording,
        stream: &RoomStream,
        jobs: &[Job],
    ) -> Result<(), UseCaseError> {
        let earlier: Vec<Job> = jobs.iter().filter(|j| j.user_id() == Some(&stream.user_id)).cloned().collect();
        let Some(job) = recording.source_job(stream, &earlier, Timestamp::now()) else { return Ok(()) };
        match self.start(&recording.app_id, job).await {
            // A concurrent join or start created the same job.
            Ok(_) | Err(UseCaseError::Store(StoreError::Conflict)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// The recording `recordid` of the caller's app; `roomid`, if given, must be its room.
    async fn recording(
        &self,
        account: &AccountId,
        app_id: &str,
        recordid: &str,
        roomid: Option<&RoomId>,
    ) -> Result<Recording, UseCaseError> {
        let app = self.app(account, app_id).await?;
        let not_found = || UseCaseError::not_found("recordid", "recording");
        let recordid = RecordId::parse(recordid).ok_or_else(not_found)?;
        let recording = self.recordings()?.get_recording(&app.app_id, &recordid).await?.ok_or_else(not_found)?;
        if let Some(room) = roomid.filter(|room| **room != recording.room_id) {
            return Err(Invalid::new("roomid", format!("recording {recordid} is not of room {room}")).into());
        }
        Ok(recording)
    }

    /// The recording's jobs, oldest first.
    async fn recording_jobs(&self, recording: &Recording) -> Result<Vec<Job>, UseCaseError> {
        if let Some(job_id) = &recording.mix_job_id {
            return Ok(self.store.get_job(&recording.app_id, job_id).await?.into_iter().collect());
        }
        let filter = JobFilter { mix: false, room_id: Some(recording.room_id.clone()), state: None };
        let mut jobs: Vec<Job> = self
            .store
            .list_jobs(&recording.app_id, &filter)
            .await?
            .into_iter()
            .filter(|j| j.jocloud.as_ref().is_some_and(|tag| tag.recordid == recording.recordid))
            .collect();
        jobs.sort_by(|a, b| a.create_time.cmp(&b.create_time).then_with(|| a.job_id.cmp(&b.job_id)));
        Ok(jobs)
    }

    /// The view of `recording`, which is first marked stopped if its jobs show it ended.
    async fn view(&self, recording: Recording) -> Result<RecordingView, UseCaseError> {
        let jobs = self.recording_jobs(&recording).await?;
        let recording = match recording.is_live(&jobs, Utc::now()) {
            true => recording,
            false => self.settle(recording, &jobs).await,
        };
        let rule = self.store.get_rule(&recording.app_id, &recording.record_rule_id).await?;
        let region = rule.map(|r| r.obs_addr.location);
        let endpoint = self.settings.s3_endpoint.as_deref();
        Ok(RecordingView::new(recording, &jobs, |bucket, key| download_url(endpoint, bucket, region.as_deref(), key)))
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
        recording.stop(reason.unwrap_or(StopReason::ExceedMaxIdleTime), ended.unwrap_or_else(Timestamp::now));
        self.save_settled(&recording).await;
        recording
    }

    /// Saves a recording the service ended by itself; a failure is logged (the next look
    /// settles it again).
    async fn save_settled(&self, recording: &Recording) {
        let saved = match self.recordings() {
            Ok(recordings) => recordings.put_recording(recording).await.map_err(UseCaseError::from),
            Err(err) => Err(err),
        };
        if let Err(err) = saved {
            tracing::warn!(recordid = %recording.recordid, error = %crate::error::error_chain(&err),
                "could not save the recording's end");
        }
    }
}
