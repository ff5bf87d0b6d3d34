//! Preflight: what `POST /v2/apps/{app_id}/preflight` checks without recording, and how each
//! check answers — a status and, when it is not ok, a stable reason code with a short text a
//! tenant can act on (never a backend's error text).

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Failed,
    /// Not finished when the answer was sent (no check answers it yet: the streams' media
    /// probe is to come).
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
    /// Streams are listed, their media is not opened (no worker probe yet).
    StreamsNotProbed,
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
            Self::StreamsNotProbed => "STREAMS_NOT_PROBED",
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
            Self::StreamsNotProbed => "the streams are registered; their media and codecs are not probed",
        }
    }
}

/// One check's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `bucket`, `callback` or `streams`.
    pub name: &'static str,
    pub status: CheckStatus,
    /// The reason code, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The reason in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The callback's answer status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The room's streams, for the streams check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams: Option<Vec<StreamFacts>>,
}

impl Check {
    /// A passed check.
    pub fn ok(name: &'static str) -> Self {
        Self { name, status: CheckStatus::Ok, reason: None, message: None, http_status: None, streams: None }
    }

    /// A check that ended `status` for `reason`.
    pub fn not_ok(name: &'static str, status: CheckStatus, reason: Reason) -> Self {
        Self { reason: Some(reason.code()), message: Some(reason.message().to_owned()), status, ..Self::ok(name) }
    }

    /// A failed check: `reason`, told `message` instead of its own text when given.
    pub fn failed(name: &'static str, reason: Reason, message: Option<String>) -> Self {
        let check = Self::not_ok(name, CheckStatus::Failed, reason);
        Self { message: message.or(check.message.clone()), ..check }
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

/// A stream of the room as the roster lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamFacts {
    pub user_id: String,
    pub video_type: VideoType,
    pub has_audio: bool,
    pub has_video: bool,
}

/// The answer of a preflight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreflightView {
    pub preflight_id: String,
    pub app_id: AppId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_rule_id: Option<RuleId>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
            (check.status, check.reason, check.http_status),
            (CheckStatus::Failed, Some("CALLBACK_STATUS"), Some(500))
        );
        let json = serde_json::to_value(&check).unwrap();
        assert_eq!(json["status"], "failed");
    }

    #[test]
    fn an_unreachable_callback_never_tells_the_connection_error() {
        let check = Check::callback(&AttemptResult::Unreachable("tcp connect error: 10.0.0.7:443".into()));
        assert_eq!(check.reason, Some("CALLBACK_UNREACHABLE"));
        assert!(!check.message.unwrap().contains("10.0.0.7"));
    }

    #[test]
    fn an_ok_check_carries_no_reason() {
        let json = serde_json::to_value(Check::callback(&AttemptResult::Answered { status: 204, retry_after: None }));
        assert_eq!(json.unwrap(), serde_json::json!({"name": "callback", "status": "ok", "http_status": 204}));
    }
}
