//! Rooms: the roster, the media server's hook, and what a join starts without an API call:
//! an automatic recording (seed 000) and a Jocloud source recording's next participant.

use std::sync::Arc;

use chrono::DateTime;

use crate::auto_record;
use crate::clock::{Clock, Random};
use crate::error::{error_chain, Invalid, StoreError, UseCaseError};
use crate::ids::{AppId, RoomId, UserId};
use crate::job::JobKind;
use crate::ports::{AppStore, RoomJobs, RoomStore, RuleStore};
use crate::publish::{PublishBase, PublishGrant, PublishRefused, PublishSecret, PublishUrl, PublishUrlRequest};
use crate::reach::StreamPolicy;
use crate::room::{MediaSession, Room, RoomStream, StreamRequest, VideoType};
use crate::time::Timestamp;
use crate::url::{StreamUrl, StreamUrlTemplate};

use super::access::OwnedApp;
use super::jobs::Jobs;
use super::jocloud::Jocloud;

/// Logs why a recording a join would start did not. A quota is the customer's to act on,
/// so its refusal is a warning carrying the API's error code and the quota's name (the same
/// words a create through the API answers with); anything else is our error.
fn not_started(app_id: &AppId, stream: &RoomStream, err: &UseCaseError, what: &str) {
    let (room_id, user_id) = (&stream.room_id, &stream.user_id);
    match err {
        UseCaseError::QuotaExceeded(refused) => tracing::warn!(%app_id, %room_id, %user_id,
            error_code = "QUOTA_EXCEEDED", quota = refused.quota, error = %refused, "{what}"),
        err => tracing::error!(%app_id, %room_id, %user_id, error = %error_chain(err), "{what}"),
    }
}

/// A refused publish as the hook answers it (any non-2xx makes nginx-rtmp drop the publisher).
fn refusal(refused: PublishRefused) -> UseCaseError {
    match refused {
        PublishRefused::BadSignature => Invalid::new("signature", refused.to_string()).into(),
        PublishRefused::Expired => UseCaseError::Expired { field: "expires", reason: refused.to_string() },
    }
}

/// A media-server report that a stream started or stopped publishing.
#[derive(Debug, Clone)]
pub struct PublishEvent {
    pub app_id: AppId,
    pub room_id: RoomId,
    pub user_id: UserId,
    /// Which of the participant's streams, as its stream key names it.
    pub video_type: VideoType,
    /// The media server's connection that publishes (or published) the stream.
    pub session: MediaSession,
    pub call: PublishCall,
}

/// What the media server reports.
#[derive(Debug, Clone)]
pub enum PublishCall {
    /// A publisher asks to start; it is let in only with a valid minted signature.
    Publish {
        /// Where the worker can pull the stream from.
        url: StreamUrl,
        /// The publish URL's signed fields, as the publisher presented them.
        video_type: VideoType,
        expires: i64,
        signature: String,
    },
    /// A publishing connection still publishes (nginx-rtmp's periodic `on_update`).
    Update,
    /// A publishing connection ended.
    PublishDone,
}

/// The rooms use cases.
#[derive(Clone)]
pub struct Rooms {
    ports: RoomsPorts,
    streams: StreamPolicy,
}

/// The ports and use cases [`Rooms`] works with.
#[derive(Clone)]
pub struct RoomsPorts {
    pub rooms: Arc<dyn RoomStore>,
    /// For the media hook, which names an app without an account.
    pub apps: Arc<dyn AppStore>,
    /// For automatic recording.
    pub rules: Arc<dyn RuleStore>,
    pub jobs: Jobs,
    pub jocloud: Jocloud,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl Rooms {
    /// The rooms use cases.
    pub fn new(ports: RoomsPorts) -> Self {
        Self { ports, streams: StreamPolicy::default() }
    }

    /// The same use cases judging stream URLs by `streams` (default: no allow-list).
    pub fn with_stream_policy(mut self, streams: StreamPolicy) -> Self {
        self.streams = streams;
        self
    }

    /// Registers or updates a participant's stream of the request's video type (camera by
    /// default); `true` when it joined now.
    pub async fn put_stream(
        &self,
        app: &OwnedApp,
        room: RoomId,
        user: UserId,
        request: StreamRequest,
    ) -> Result<(RoomStream, bool), UseCaseError> {
        let video_type = request.video_type.unwrap_or_default();
        let url = match (request.url, &app.app().stream_url_template) {
            (Some(url), _) => {
                let url = StreamUrl::parse(&url, "url")?;
                self.streams.check(url.as_str(), "url")?;
                url
            }
            // The template names one URL per user: the camera's.
            (None, Some(_)) if video_type == VideoType::Substream => {
                return Err(
                    Invalid::new("url", "is required for a SUBSTREAM (stream_url_template names cameras)").into()
                )
            }
            (None, Some(template)) => {
                let url = template.expand(&room, &user)?;
                self.streams.check(url.as_str(), StreamUrlTemplate::FIELD)?;
                url
            }
            (None, None) => return Err(Invalid::new("url", "is required (the app has no stream_url_template)").into()),
        };
        let has_audio = request.has_audio.unwrap_or(true);
        let has_video = request.has_video.unwrap_or(true);
        if !has_audio && !has_video {
            return Err(Invalid::new("has_video", "a stream must carry audio, video or both").into());
        }
        let stream = self.joining(room, user, url, video_type, has_audio, has_video);
        self.join(app.id(), stream).await
    }

    /// Removes `user`'s stream of `video_type` (it left); their other stream stays.
    pub async fn delete_stream(
        &self,
        app: &OwnedApp,
        room: RoomId,
        user: UserId,
        video_type: VideoType,
    ) -> Result<(), UseCaseError> {
        if !self.ports.rooms.delete_stream(app.id(), &room, &user, video_type).await? {
            return Err(UseCaseError::not_found("user_id", "stream"));
        }
        self.leave(app.id(), &room).await;
        Ok(())
    }

    /// `user`'s stream of `video_type` in a room.
    pub async fn get_stream(
        &self,
        app: &OwnedApp,
        room: RoomId,
        user: UserId,
        video_type: VideoType,
    ) -> Result<RoomStream, UseCaseError> {
        let stream = self.ports.rooms.get_stream(app.id(), &room, &user, video_type).await?;
        stream.ok_or_else(|| UseCaseError::not_found("user_id", "stream"))
    }

    /// A room's roster in join order.
    pub async fn list_streams(&self, app: &OwnedApp, room: RoomId) -> Result<Vec<RoomStream>, UseCaseError> {
        Ok(self.ports.rooms.list_streams(app.id(), &room).await?)
    }

    /// Mints a URL that lets one publisher in as `user` of `room` until it expires. An app
    /// stored before publish URLs existed gets its secret now.
    pub async fn publish_url(
        &self,
        app: &OwnedApp,
        room: RoomId,
        user: UserId,
        request: PublishUrlRequest,
        base: &PublishBase,
    ) -> Result<PublishUrl, UseCaseError> {
        let grant = request.grant(app.id().clone(), room, user, self.ports.clock.now())?;
        let secret = match &app.app().publish_secret {
            Some(secret) => secret.clone(),
            None => self.first_publish_secret(app).await?,
        };
        let expires_at = Timestamp::at(DateTime::from_timestamp(grant.expires, 0).unwrap_or_default());
        Ok(PublishUrl { url: base.url(&grant, &secret), expires_at })
    }

    /// Replaces the app's publish secret: every URL minted before stops letting publishers
    /// in (those publishing now stay). Returns the new secret, which no response shows.
    pub async fn rotate_publish_secret(&self, app: &OwnedApp) -> Result<PublishSecret, UseCaseError> {
        let secret = PublishSecret::generate(self.ports.random.as_ref());
        if !self.ports.apps.set_publish_secret(app.account(), app.id(), &secret, false).await? {
            return Err(UseCaseError::not_found("app_id", "app"));
        }
        Ok(secret)
    }

    /// The secret of an app that had none: ours, or the one a concurrent first mint stored
    /// (so the URL it answered stays valid).
    async fn first_publish_secret(&self, app: &OwnedApp) -> Result<PublishSecret, UseCaseError> {
        let secret = PublishSecret::generate(self.ports.random.as_ref());
        if self.ports.apps.set_publish_secret(app.account(), app.id(), &secret, true).await? {
            return Ok(secret);
        }
        let stored = self.ports.apps.find_app(app.id()).await?.and_then(|found| found.publish_secret);
        stored.ok_or_else(|| UseCaseError::not_found("app_id", "app"))
    }

    /// Applies a media server's publish / publish-done report. The hook is trusted by its
    /// deployment token, not by an account, so it names the app directly. A publish joins
    /// only with a valid, unexpired signature for the stream key's video type, and only if
    /// the participant has no stream of that type in the room already (a camera and a screen
    /// share are two streams); a publish-done removes that stream only if its session
    /// registered it.
    pub async fn media_hook(&self, event: PublishEvent) -> Result<(), UseCaseError> {
        let PublishEvent { app_id, room_id, user_id, video_type: keyed, session, call } = event;
        // Every live publisher's, every 30 s: it needs no app read, and no store failure may
        // answer it non-2xx, which would disconnect the publisher.
        if let PublishCall::Update = call {
            let now = self.ports.clock.timestamp();
            return match self.ports.rooms.touch_session_stream(&app_id, &room_id, &user_id, keyed, &session, now).await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(UseCaseError::Conflict(format!(
                    "clientid: this connection's {} is not in the room (removed, or replaced once silent)",
                    keyed.as_str()
                ))),
                Err(err) => {
                    tracing::warn!(%app_id, error = %err, "a publisher's update was not recorded");
                    Ok(())
                }
            };
        }
        let Some(app) = self.ports.apps.find_app(&app_id).await? else {
            return Err(UseCaseError::not_found("app_id", "app"));
        };
        match call {
            PublishCall::Publish { url, video_type, expires, signature } => {
                if video_type != keyed {
                    let reason = format!("is {}, but the stream key names a {}", video_type.as_str(), keyed.as_str());
                    return Err(Invalid::new("video_type", reason).into());
                }
                let grant = PublishGrant { app_id, room_id, user_id, video_type, expires };
                let secret = app.publish_secret.as_ref().ok_or(PublishRefused::BadSignature);
                secret
                    .and_then(|secret| grant.verify(&signature, secret, self.ports.clock.as_ref()))
                    .map_err(refusal)?;
                let PublishGrant { app_id, room_id, user_id, .. } = grant;
                let mut stream = self.joining(room_id, user_id, url, video_type, true, true);
                stream.media_session = Some(session);
                stream.media_seen = Some(stream.join_time);
                match self.ports.rooms.create_stream(&app_id, &stream).await {
                    Ok(()) => self.opened(&app_id, &stream).await,
                    Err(StoreError::Conflict) if self.replaced_silent(&app_id, &stream).await? => {
                        self.opened(&app_id, &stream).await
                    }
                    Err(StoreError::Conflict) => {
                        return Err(UseCaseError::Conflict(format!(
                        "user_id: the participant's {} is in the room already; a second publisher cannot replace it",
                        video_type.as_str()
                    )))
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            PublishCall::Update => {} // answered above
            PublishCall::PublishDone => {
                if self.ports.rooms.delete_session_stream(&app_id, &room_id, &user_id, keyed, &session).await? {
                    self.leave(&app_id, &room_id).await;
                }
            }
        }
        Ok(())
    }

    /// Puts hook-registered `stream` in place of the same stream of a media session that has
    /// been silent too long to be alive (its media server died without a `publish_done`);
    /// `false` if the stream there is alive, or the API's.
    async fn replaced_silent(&self, app_id: &AppId, stream: &RoomStream) -> Result<bool, UseCaseError> {
        let rooms = &self.ports.rooms;
        let (room, user, video_type) = (&stream.room_id, &stream.user_id, stream.video_type);
        let Some(current) = rooms.get_stream(app_id, room, user, video_type).await? else { return Ok(false) };
        let (Some(silent), true) = (&current.media_session, current.is_silent(&self.ports.clock.timestamp())) else {
            return Ok(false);
        };
        tracing::info!(%app_id, room_id = %room, user_id = %user, silent_session = silent.as_str(), "a silent publisher replaced");
        // Conditional on the silent session, so of two publishers replacing it one wins.
        if !rooms.delete_session_stream(app_id, room, user, video_type, silent).await? {
            return Ok(false);
        }
        match rooms.create_stream(app_id, stream).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Saves `stream`; a stream already in the room keeps its join time and order (and one
    /// that left meanwhile is not found: a leave is never undone). A stream that joins now
    /// opens the room (if empty) and may start recordings; `true` then.
    async fn join(&self, app_id: &AppId, mut stream: RoomStream) -> Result<(RoomStream, bool), UseCaseError> {
        let (user, video_type) = (stream.user_id.clone(), stream.video_type);
        let existing = self.ports.rooms.get_stream(app_id, &stream.room_id, &user, video_type).await?;
        let created = match existing {
            Some(_) => Err(StoreError::Conflict),
            None => self.ports.rooms.create_stream(app_id, &stream).await,
        };
        match created {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                // In the room already (or a concurrent join of the same stream won): an update.
                let current = match existing {
                    Some(current) => Some(current),
                    None => self.ports.rooms.get_stream(app_id, &stream.room_id, &user, video_type).await?,
                };
                if let Some(current) = current {
                    (stream.join_time, stream.join_seq) = (current.join_time, current.join_seq);
                    // A hook-registered publisher still publishing: its publish_done removes it.
                    (stream.media_session, stream.media_seen) = (current.media_session, current.media_seen);
                }
                if !self.ports.rooms.update_stream(app_id, &stream).await? {
                    return Err(UseCaseError::not_found("user_id", "stream"));
                }
                return Ok((stream, false));
            }
            Err(err) => return Err(err.into()),
        }
        self.opened(app_id, &stream).await;
        Ok((stream, true))
    }

    /// What follows a new join once the stream is saved. The stream is saved before the room
    /// is touched, so a concurrent last leave either sees it or finds the room changed (see
    /// `leave`).
    async fn opened(&self, app_id: &AppId, stream: &RoomStream) {
        match self.ports.rooms.open_room(app_id, &stream.room_id, stream.join_seq, stream.join_time).await {
            Ok(room) => self.on_join(app_id, stream, &room).await,
            Err(err) => tracing::error!(%app_id, room_id = %stream.room_id, error = %error_chain(&err),
                "could not open the room; nothing is recorded automatically for this join"),
        }
    }

    /// Starts what a join starts. A failure is logged, never the join's: the participant is
    /// in the room whether or not their recording could start.
    async fn on_join(&self, app_id: &AppId, stream: &RoomStream, room: &Room) {
        if let Err(err) = self.auto_record(app_id, stream, room).await {
            not_started(app_id, stream, &err, "automatic recording did not start");
        }
        if let Err(err) = self.ports.jocloud.join_recordings(app_id, stream).await {
            not_started(app_id, stream, &err, "the participant's Jocloud recording did not start");
        }
    }

    /// Starts the automatic individual job for `stream` if the app records automatically.
    async fn auto_record(&self, app_id: &AppId, stream: &RoomStream, room: &Room) -> Result<(), UseCaseError> {
        let rules = self.ports.rules.list_rules(app_id).await?;
        let Some(rule) = auto_record::rule_for(&rules, room) else { return Ok(()) };
        let room_jobs = self.ports.jobs.in_room(app_id, JobKind::Individual, &stream.room_id, RoomJobs::Active).await?;
        let now = self.ports.clock.timestamp();
        let Some(job) = auto_record::job_for(app_id, rule, stream, &room_jobs, self.ports.random.as_ref(), now) else {
            return Ok(());
        };
        match self.ports.jobs.start(job).await {
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
            let Some(current) = self.ports.rooms.get_room(app_id, room).await? else { return Ok(()) };
            if self.ports.rooms.list_streams(app_id, room).await?.is_empty() {
                self.ports.rooms.close_room(app_id, &current).await?;
            }
            Ok::<_, StoreError>(())
        };
        if let Err(err) = closed.await {
            tracing::warn!(%app_id, room_id = %room, error = %error_chain(&err), "could not close the room");
        }
    }

    /// A stream joining now (a user already in the room keeps their join time and order).
    fn joining(
        &self,
        room_id: RoomId,
        user_id: UserId,
        url: StreamUrl,
        video_type: VideoType,
        has_audio: bool,
        has_video: bool,
    ) -> RoomStream {
        let now = self.ports.clock.timestamp();
        RoomStream {
            room_id,
            user_id,
            url,
            video_type,
            has_audio,
            has_video,
            join_time: now,
            join_seq: self.ports.clock.micros(),
            update_time: now,
            media_session: None,
            media_seen: None,
        }
    }
}
