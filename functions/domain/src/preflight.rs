//! Preflight: what `POST /v2/apps/{app_id}/preflight` checks without recording, and how each
//! check answers — a status and, when it is not ok, a stable reason code with a short text a
//! tenant can act on (never a backend's error text).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::failure::FailureCode;
use crate::ids::{AppId, RoomId, RuleId};
use crate::room::VideoType;
use crate::time::Timestamp;
use crate::webhook::AttemptResult;

/// The `event_type` of the test event a preflight sends to the callback URL.
pub const PREFLIGHT_EVENT: &str = "PREFLIGHT";

/// Body of `POST /v2/apps/{app_id}/preflight`; an empty body checks the app's rule and
/// callback.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightRequest {
    /// The rule whose bucket is checked; the app's rule when absent.
    pub record_rule_id: Option<String>,
    /// The room whose streams are checked; none when absent.
    pub room_id: Option<RoomId>,
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Failed,
    /// Not finished when the answer was sent: the streams' media probe by a worker;
    /// `GET .../preflight/{preflight_id}` tells it later.
    Pending,
    /// Nothing to check (no rule, no callback, no room asked for).
    Skipped,
}

/// Why a check did not pass, as clients may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A storage failure, with the code a job would fail with.
    Storage(FailureCode),
    NoRule,
    NoCallback,
    /// The callback URL resolves to an address deliveries may not call.
    CallbackRefused,
    /// The receiver answered with a status other than 2xx.
    CallbackStatus,
    CallbackTimeout,
    CallbackUnreachable,
    NoRoom,
    RoomEmpty,
    /// A stream failed its probe; the stream's own entry says why.
    StreamFailed,
}

impl Reason {
    /// The code as clients see it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Storage(code) => code.as_str(),
            Self::NoRule => "NO_RECORD_RULE",
            Self::NoCallback => "NO_RECORD_CALLBACK",
            Self::CallbackRefused => "CALLBACK_REFUSED",
            Self::CallbackStatus => "CALLBACK_STATUS",
            Self::CallbackTimeout => "CALLBACK_TIMEOUT",
            Self::CallbackUnreachable => "CALLBACK_UNREACHABLE",
            Self::NoRoom => "NO_ROOM",
            Self::RoomEmpty => "ROOM_EMPTY",
            Self::StreamFailed => "STREAM_FAILED",
        }
    }

    /// A short explanation.
    pub fn message(self) -> &'static str {
        match self {
            Self::Storage(code) => code.message(),
            Self::NoRule => "the app has no record rule",
            Self::NoCallback => "the app has no record callback",
            Self::CallbackRefused => "the callback URL resolves to an address deliveries may not call",
            Self::CallbackStatus => "the callback URL did not answer the test event with a 2xx status",
            Self::CallbackTimeout => "the callback URL did not answer the test event in time",
            Self::CallbackUnreachable => "the callback URL could not be reached (DNS, connection or TLS)",
            Self::NoRoom => "no room_id was given",
            Self::RoomEmpty => "nobody publishes in the room",
            Self::StreamFailed => "a stream of the room cannot be recorded; its entry in `streams` says why",
        }
    }
}

/// One check's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `bucket`, `callback` or `streams` (owned once read back from the preflight's item).
    pub name: Cow<'static, str>,
    pub status: CheckStatus,
    /// The reason code, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'static, str>>,
    /// The reason in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The callback's answer status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The room's streams, for the streams check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<Vec<StreamFacts>>,
}

impl Check {
    /// A passed check.
    pub fn ok(name: &'static str) -> Self {
        Self {
            name: Cow::Borrowed(name),
            status: CheckStatus::Ok,
            reason: None,
            message: None,
            http_status: None,
            streams: None,
        }
    }

    /// A check that ended `status` for `reason`.
    pub fn not_ok(name: &'static str, status: CheckStatus, reason: Reason) -> Self {
        Self {
            reason: Some(Cow::Borrowed(reason.code())),
            message: Some(reason.message().to_owned()),
            status,
            ..Self::ok(name)
        }
    }

    /// A failed check: `reason`, told `message` instead of its own text when given.
    pub fn failed(name: &'static str, reason: Reason, message: Option<String>) -> Self {
        let check = Self::not_ok(name, CheckStatus::Failed, reason);
        Self { message: message.or(check.message.clone()), ..check }
    }

    /// The reason code, when not ok.
    pub fn reason_code(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The streams check over `streams`: failed if one failed, pending while one is not
    /// probed, ok when all passed.
    pub fn streams(streams: Vec<StreamFacts>) -> Self {
        const NAME: &str = "streams";
        let statuses = || streams.iter().map(|s| s.status.unwrap_or(CheckStatus::Pending));
        let check = if statuses().any(|s| s == CheckStatus::Failed) {
            Self::failed(NAME, Reason::StreamFailed, None)
        } else if statuses().all(|s| s == CheckStatus::Ok) {
            Self::ok(NAME)
        } else {
            Self { message: Some(PROBE_PENDING.to_owned()), ..Self::ok(NAME) }.with_status(CheckStatus::Pending)
        };
        Self { streams: Some(streams), ..check }
    }

    fn with_status(self, status: CheckStatus) -> Self {
        Self { status, ..self }
    }

    /// The callback check after one attempt answered `result`.
    pub fn callback(result: &AttemptResult) -> Self {
        const NAME: &str = "callback";
        let reason = match result {
            AttemptResult::Answered { status: 200..=299, .. } => None,
            AttemptResult::Answered { .. } => Some(Reason::CallbackStatus),
            AttemptResult::TimedOut => Some(Reason::CallbackTimeout),
            AttemptResult::Unreachable(_) => Some(Reason::CallbackUnreachable),
            AttemptResult::Refused(_) => Some(Reason::CallbackRefused),
        };
        let check = match reason {
            None => Self::ok(NAME),
            Some(reason) => Self::failed(NAME, reason, None),
        };
        Self { http_status: result.status(), ..check }
    }
}

/// What a pending streams check says while the worker's probe is under way.
const PROBE_PENDING: &str = "a worker is opening the streams; GET this preflight by its id for the result";

/// A stream of the room as the roster lists it, and what the worker's probe found in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamFacts {
    pub user_id: String,
    pub video_type: VideoType,
    pub has_audio: bool,
    pub has_video: bool,
    /// The probe's outcome: ok, failed, or pending until a worker opened the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CheckStatus>,
    /// The video the stream carries, when probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoFacts>,
    /// The audio the stream carries, when probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioFacts>,
    /// Why the probe failed ([`ProbeFailure::code`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl StreamFacts {
    /// A stream as the roster lists it, `pending` until probed.
    pub fn listed(user_id: String, video_type: VideoType, has_audio: bool, has_video: bool) -> Self {
        let status = Some(CheckStatus::Pending);
        Self {
            user_id,
            video_type,
            has_audio,
            has_video,
            status,
            video: None,
            audio: None,
            reason: None,
            message: None,
        }
    }

    /// This stream after a probe that found `video` and `audio`, all recordable.
    pub fn probed_ok(self, video: Option<VideoFacts>, audio: Option<AudioFacts>) -> Self {
        Self { status: Some(CheckStatus::Ok), video, audio, reason: None, message: None, ..self }
    }

    /// This stream after a probe that failed for `failure`, with what it found.
    pub fn probed_failed(self, failure: ProbeFailure, video: Option<VideoFacts>, audio: Option<AudioFacts>) -> Self {
        let (reason, message) = (Some(failure.code().to_owned()), Some(failure.message().to_owned()));
        Self { status: Some(CheckStatus::Failed), video, audio, reason, message, ..self }
    }
}

/// A stream's video as the probe read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoFacts {
    /// FFmpeg's codec name (`h264`, `hevc`, …).
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second the stream declares (0 when it declares none).
    pub fps: f64,
}

/// A stream's audio as the probe read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioFacts {
    /// FFmpeg's codec name (`aac`, `opus`, `mp3`, …).
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
}

/// Why a stream failed its probe, as clients may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// Nothing answered at the stream's URL, or it sent no media in time.
    Unreachable,
    /// The deployment's stream policy refuses the URL's address.
    Refused,
    /// The stream left the room before it was probed.
    Gone,
    /// The stream carries neither audio nor video.
    NoMedia,
    /// A codec the recorder can neither copy nor decode.
    CodecNotRecordable,
}

impl ProbeFailure {
    /// The code as clients see it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unreachable => "STREAM_UNREACHABLE",
            Self::Refused => "STREAM_REFUSED",
            Self::Gone => "STREAM_GONE",
            Self::NoMedia => "STREAM_NO_MEDIA",
            Self::CodecNotRecordable => "CODEC_NOT_RECORDABLE",
        }
    }

    /// A short explanation.
    pub fn message(self) -> &'static str {
        match self {
            Self::Unreachable => "the stream could not be opened, or sent no media in time",
            Self::Refused => "the stream's address is refused by this deployment's stream policy",
            Self::Gone => "the stream left the room before it was probed",
            Self::NoMedia => "the stream carries neither audio nor video",
            Self::CodecNotRecordable => "the stream's codec can be neither copied nor transcoded by the recorder",
        }
    }
}

/// A preflight's id: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PreflightId(String);

impl PreflightId {
    /// The id in `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        hex.then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PreflightId {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text).ok_or("not a preflight id")
    }
}

impl From<PreflightId> for String {
    fn from(id: PreflightId) -> Self {
        id.0
    }
}

impl std::fmt::Display for PreflightId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The message that asks a worker to probe a preflight's streams, on the jobs queue beside
/// the job messages (it has no `job_id`, they have no `preflight_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeMessage {
    pub app_id: AppId,
    pub preflight_id: PreflightId,
}

/// A preflight as stored for a day: its answer, the streams check as the worker left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightRecord {
    pub view: PreflightView,
    /// When the item expires (unix seconds; the table's TTL attribute).
    pub expires_at: i64,
}

impl PreflightRecord {
    /// The streams of the streams check, if it lists any.
    pub fn streams(&self) -> &[StreamFacts] {
        let check = self.view.checks.iter().find(|c| c.name == "streams");
        check.and_then(|c| c.streams.as_deref()).unwrap_or_default()
    }

    /// Whether the streams check still waits on a worker's probe.
    pub fn pending(&self) -> bool {
        self.view.checks.iter().any(|c| c.status == CheckStatus::Pending)
    }

    /// The record with its streams check over `streams`, as probed.
    pub fn probed(mut self, streams: Vec<StreamFacts>) -> Self {
        for check in &mut self.view.checks {
            if check.name == "streams" {
                *check = Check::streams(streams.clone());
            }
        }
        self
    }
}

/// The answer of a preflight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightView {
    pub preflight_id: String,
    pub app_id: AppId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_rule_id: Option<RuleId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<RoomId>,
    pub create_time: Timestamp,
    pub checks: Vec<Check>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_answering_500_fails_with_its_status_and_a_stable_code() {
        let check = Check::callback(&AttemptResult::Answered { status: 500, retry_after: None });
        assert_eq!(
            (check.status, check.reason_code(), check.http_status),
            (CheckStatus::Failed, Some("CALLBACK_STATUS"), Some(500))
        );
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["status"], "failed");
    }

    #[test]
    fn an_unreachable_callback_never_tells_the_connection_error() {
        let check = Check::callback(&AttemptResult::Unreachable("tcp connect error: 10.0.0.7:443".into()));
        assert_eq!(check.reason_code(), Some("CALLBACK_UNREACHABLE"));
        assert!(!check.message.unwrap().contains("10.0.0.7"));
    }

    #[test]
    fn an_ok_check_carries_no_reason() {
        let json = serde_json::to_value(Check::callback(&AttemptResult::Answered { status: 204, retry_after: None }));
        assert_eq!(json.unwrap(), serde_json::json!({"name": "callback", "status": "ok", "http_status": 204}));
    }
}
