//! Rooms: who is in a room and where their media is. The roster is kept in join order.

use serde::{Deserialize, Serialize};

use crate::error::Invalid;
use crate::ids::{RoomId, UserId};
use crate::time::Timestamp;
use crate::url::StreamUrl;

/// Which of a participant's streams: the camera or the screen share. A participant may have
/// one of each in a room at once; the roster is keyed by user and video type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VideoType {
    /// The main (camera) stream.
    #[default]
    Camerastream,
    /// The auxiliary (screen share) stream.
    Substream,
}

impl VideoType {
    /// The name the API and publish URLs use (`CAMERASTREAM`, `SUBSTREAM`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Camerastream => "CAMERASTREAM",
            Self::Substream => "SUBSTREAM",
        }
    }

    /// The video type `text` names; `None` if it names none.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Camerastream, Self::Substream].into_iter().find(|v| v.as_str() == text)
    }

    /// The video type a `video_type` query parameter names (CAMERASTREAM when absent).
    pub fn from_query(text: Option<&str>) -> Result<Self, Invalid> {
        match text {
            None => Ok(Self::default()),
            Some(text) => {
                Self::parse(text).ok_or_else(|| Invalid::new("video_type", "must be CAMERASTREAM or SUBSTREAM"))
            }
        }
    }
}

/// One participant stream in a room's roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomStream {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub url: StreamUrl,
    pub video_type: VideoType,
    pub has_audio: bool,
    pub has_video: bool,
    /// When the participant joined; kept across updates, renewed after a leave.
    pub join_time: Timestamp,
    /// Join order key: microseconds since the epoch at join.
    pub join_seq: i64,
    pub update_time: Timestamp,
    /// The media server's connection that published the stream, when its hook registered
    /// it: only that connection's `publish_done` removes it. Kept by the store beside the
    /// stream, never in responses.
    #[serde(skip)]
    pub media_session: Option<MediaSession>,
    /// When the media server last said that session still publishes (its publish, then every
    /// `on_update`): one silent for [`SILENT_SESSION_SECS`] may be replaced. Kept like
    /// `media_session`.
    #[serde(skip)]
    pub media_seen: Option<Timestamp>,
}

/// How long a hook-registered stream may go without news from the media server before a new
/// publish of it replaces it: three of nginx-rtmp's `on_update` periods (30 s by default), so
/// a media server that died without a `publish_done` locks nobody out for longer.
pub const SILENT_SESSION_SECS: i64 = 90;

impl RoomStream {
    /// Whether the media session that registered this stream has been silent too long to be
    /// alive at `now`; never for a stream the API registered.
    pub fn is_silent(&self, now: &Timestamp) -> bool {
        match (&self.media_session, &self.media_seen) {
            (Some(_), Some(seen)) => {
                now.as_datetime().signed_duration_since(seen.as_datetime()).num_seconds() >= SILENT_SESSION_SECS
            }
            _ => false,
        }
    }
}

impl RoomStream {
    /// Whether this is `user`'s stream of `video_type`.
    pub fn is(&self, user: &UserId, video_type: VideoType) -> bool {
        self.user_id == *user && self.video_type == video_type
    }

    /// Roster order: join order, then user and video type for joins in the same microsecond.
    pub fn roster_order(&self) -> (i64, &UserId, VideoType) {
        (self.join_seq, &self.user_id, self.video_type)
    }
}

/// Body of `PUT .../rooms/{room_id}/streams/{user_id}`: the stream of `video_type` (camera by
/// default). Without `url`, the app's `stream_url_template` decides a camera's URL.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRequest {
    pub url: Option<String>,
    pub video_type: Option<VideoType>,
    pub has_audio: Option<bool>,
    pub has_video: Option<bool>,
}

/// The roster as returned by `GET .../rooms/{room_id}/streams`.
#[derive(Debug, Serialize)]
pub struct Roster {
    pub room_id: RoomId,
    pub streams: Vec<RoomStream>,
}

/// A room while anyone is in it: it is created when a stream joins an empty roster and
/// removed when the last one leaves. Automatic recording applies to rooms created after it
/// was turned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub room_id: RoomId,
    pub create_time: Timestamp,
    /// `join_seq` of the latest join: a leave removes the room only if nobody joined since.
    pub last_join_seq: i64,
}

/// The media server's id for one publishing connection (nginx-rtmp's `clientid`): a
/// `publish_done` removes a roster entry only if the entry's session is the one that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSession(String);

/// Longest session id accepted (nginx-rtmp's are decimal counters).
const MAX_SESSION_CHARS: usize = 64;

impl MediaSession {
    /// A session id as the media server sends it: 1–64 of `[A-Za-z0-9_.:-]`.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let ok = (1..=MAX_SESSION_CHARS).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if !ok {
            return Err(Invalid::new("clientid", format!("must be 1 to {MAX_SESSION_CHARS} of [A-Za-z0-9_.:-]")));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
