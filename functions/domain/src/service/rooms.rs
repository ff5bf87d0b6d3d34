//! Rooms: the roster, the media server's hook, and what a join starts without an API call:
//! an automatic recording (seed 000) and a Jocloud source recording's next participant.

use crate::auto_record;
use crate::ids::{AccountId, AppId, RoomId, UserId};
use crate::ports::{JobFilter, StoreError};
use crate::room::{Room, RoomStream, StreamRequest, VideoType};
use crate::time::{now_micros, Timestamp};
use crate::url::StreamUrl;
use crate::{Invalid, Service, UseCaseError};

use super::PublishEvent;

impl Service {
    /// Registers or updates a participant stream; `true` when it joined now.
    pub async fn put_stream(
        &self,
        account: &AccountId,
        app_id: &str,
        room: RoomId,
        user: UserId,
        request: StreamRequest,
    ) -> Result<(RoomStream, bool), UseCaseError> {
        let app = self.app(account, app_id).await?;
        let url = match (request.url, &app.stream_url_template) {
            (Some(url), _) => StreamUrl::parse(&url, "url")?,
            (None, Some(template)) => template.expand(&room, &user)?,
            (None, None) => return Err(Invalid::new("url", "is required (the app has no stream_url_template)").into()),
        };
        let has_audio = request.has_audio.unwrap_or(true);
        let has_video = request.has_video.unwrap_or(true);
        if !has_audio && !has_video {
            return Err(Invalid::new("has_video", "a stream must carry audio, video or both").into());
        }
        let video_type = request.video_type.unwrap_or_default();
        Ok(self.join(&app.app_id, joining(room, user, url, video_type, has_audio, has_video)).await?)
    }

    /// Saves `stream`; a user already in the room keeps their join time and order. A user
    /// who joins now opens the room (if empty) and may start recordings; `true` then.
    async fn join(&self, app_id: &AppId, mut stream: RoomStream) -> Result<(RoomStream, bool), StoreError> {
        let existing = self.store.get_stream(app_id, &stream.room_id, &stream.user_id).await?;
        let created = match existing {
            Some(_) => Err(StoreError::Conflict),
            None => self.store.create_stream(app_id, &stream).await,
        };
        match created {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                // In the room already (or a concurrent join of the same user won): an update.
                let current = match existing {
                    Some(current) => Some(current),
                    None => self.store.get_stream(app_id, &stream.room_id, &stream.user_id).await?,
                };
                if let Some(current) = current {
                    (stream.join_time, stream.join_seq) = (current.join_time, current.join_seq);
                }
                self.store.put_stream(app_id, &stream).await?;
                return Ok((stream, false));
            }
            Err(err) => return Err(err),
        }
        // The stream is saved before the room is touched, so a concurrent last leave either
        // sees it or finds the room changed (see `leave`).
        match self.store.open_room(app_id, &stream.room_id, stream.join_seq, stream.join_time).await {
            Ok(room) => self.on_join(app_id, &stream, &room).await,
            Err(err) => tracing::error!(%app_id, room_id = %stream.room_id, error = %crate::error::error_chain(&err),
                "could not open the room; nothing is recorded automatically for this join"),
        }
        Ok((stream, true))
    }

    /// Starts what a join starts. A failure is logged, never the join's: the participant is
    /// in the room whether or not their recording could start.
    async fn on_join(&self, app_id: &AppId, stream: &RoomStream, room: &Room) {
        if let Err(err) = self.auto_record(app_id, stream, room).await {
            tracing::error!(%app_id, room_id = %stream.room_id, user_id = %stream.user_id,
                error = %crate::error::error_chain(&err), "automatic recording did not start");
        }
        if let Err(err) = self.join_recordings(app_id, stream).await {
            tracing::error!(%app_id, room_id = %stream.room_id, user_id = %stream.user_id,
                error = %crate::error::error_chain(&err), "the participant's Jocloud recording did not start");
        }
    }

    /// Starts the automatic individual job for `stream` if the app records automatically.
    async fn auto_record(&self, app_id: &AppId, stream: &RoomStream, room: &Room) -> Result<(), UseCaseError> {
        let rules = self.store.list_rules(app_id).await?;
        let Some(rule) = auto_record::rule_for(&rules, room) else { return Ok(()) };
        let filter = JobFilter { mix: false, room_id: Some(stream.room_id.clone()), state: None };
        let room_jobs = self.store.list_jobs(app_id, &filter).await?;
        let Some(job) = auto_record::job_for(app_id, rule, stream, &room_jobs, Timestamp::now()) else { return Ok(()) };
        match self.start(app_id, job).await {
            Ok(job) => {
                tracing::info!(%app_id, job_id = %job.job_id, rule_id = %rule.rule_id, "automatic recording started");
                Ok(())
            }
            // A concurrent call for the same join created it.
            Err(UseCaseError::Store(StoreError::Conflict)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Removes the room once its last stream has left, unless someone joined meanwhile.
    async fn leave(&self, app_id: &AppId, room: &RoomId) {
        let closed = async {
            let Some(current) = self.store.get_room(app_id, room).await? else { return Ok(()) };
            if self.store.list_streams(app_id, room).await?.is_empty() {
                self.store.close_room(app_id, &current).await?;
            }
            Ok::<_, StoreError>(())
        };
        if let Err(err) = closed.await {
            tracing::warn!(%app_id, room_id = %room, error = %crate::error::error_chain(&err), "could not close the room");
        }
    }

    /// Removes a participant stream (the participant left).
    pub async fn delete_stream(
        &self,
        account: &AccountId,
        app_id: &str,
        room: RoomId,
        user: UserId,
    ) -> Result<(), UseCaseError> {
        let app = self.app(account, app_id).await?;
        if !self.store.delete_stream(&app.app_id, &room, &user).await? {
            return Err(UseCaseError::not_found("user_id", "stream"));
        }
        self.leave(&app.app_id, &room).await;
        Ok(())
    }

    /// One participant stream of a room.
    pub async fn get_stream(
        &self,
        account: &AccountId,
        app_id: &str,
        room: RoomId,
        user: UserId,
    ) -> Result<RoomStream, UseCaseError> {
        let app = self.app(account, app_id).await?;
        let stream = self.store.get_stream(&app.app_id, &room, &user).await?;
        stream.ok_or_else(|| UseCaseError::not_found("user_id", "stream"))
    }

    /// A room's roster in join order.
    pub async fn list_streams(
        &self,
        account: &AccountId,
        app_id: &str,
        room: RoomId,
    ) -> Result<Vec<RoomStream>, UseCaseError> {
        let app = self.app(account, app_id).await?;
        Ok(self.store.list_streams(&app.app_id, &room).await?)
    }

    /// Applies a media server's publish / publish-done report. The hook is trusted by its
    /// deployment token, not by an account, so it names the app directly.
    pub async fn media_hook(&self, event: PublishEvent) -> Result<(), UseCaseError> {
        let PublishEvent { app_id, room_id, user_id, url } = event;
        if self.store.find_app(&app_id).await?.is_none() {
            return Err(UseCaseError::not_found("app_id", "app"));
        }
        match url {
            Some(url) => {
                self.join(&app_id, joining(room_id, user_id, url, VideoType::Camerastream, true, true)).await?;
            }
            None => {
                if self.store.delete_stream(&app_id, &room_id, &user_id).await? {
                    self.leave(&app_id, &room_id).await;
                }
            }
        }
        Ok(())
    }
}

/// A stream joining now (a user already in the room keeps their join time and order).
fn joining(
    room_id: RoomId,
    user_id: UserId,
    url: StreamUrl,
    video_type: VideoType,
    has_audio: bool,
    has_video: bool,
) -> RoomStream {
    let now = Timestamp::now();
    RoomStream {
        room_id,
        user_id,
        url,
        video_type,
        has_audio,
        has_video,
        join_time: now,
        join_seq: now_micros(),
        update_time: now,
    }
}
