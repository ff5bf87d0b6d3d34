//! The record callback of an app: where events are POSTed and the key that signs them.

use serde::{Deserialize, Serialize};

use crate::ids::AppId;
use crate::time::Timestamp;
use crate::url::{CallbackUrl, PrivateAddresses};
use crate::Invalid;

/// `auth_key` length bounds, in characters (SparkRTC: 32 to 64).
pub const AUTH_KEY_CHARS: std::ops::RangeInclusive<usize> = 32..=64;

/// Events a callback can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// A recording file was opened.
    RecordNewFileStart,
    /// A recording file was completed and uploaded.
    RecordFileComplete,
    /// The recording job ended.
    CloudRecordOver,
    /// The recording job failed.
    CloudRecordFailed,
    /// The worker stopped writing: the tenant paused the job (ours, opt-in).
    RecordPaused,
    /// The worker writes again, into the same files (ours, opt-in).
    RecordResumed,
}

impl EventType {
    /// Every event.
    pub const ALL: [EventType; 6] = [
        Self::RecordNewFileStart,
        Self::RecordFileComplete,
        Self::CloudRecordOver,
        Self::CloudRecordFailed,
        Self::RecordPaused,
        Self::RecordResumed,
    ];
    /// The subscription of a callback that names none: seed 002's three events. Ours (the
    /// failure, pause and resume events) are opt-in, so a receiver written for SparkRTC gets only what it knows.
    pub const DEFAULT: [EventType; 3] = [Self::RecordNewFileStart, Self::RecordFileComplete, Self::CloudRecordOver];
}

/// The HMAC key for callback signatures: 32–64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuthKey(String);

impl AuthKey {
    /// The key's bytes, as the HMAC key.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for AuthKey {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        if !AUTH_KEY_CHARS.contains(&text.chars().count()) {
            return Err(Invalid::new("auth_key", format!("must be 32 to 64 characters, got {}", text.chars().count())));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Invalid::new("auth_key", "must be printable ASCII without spaces"));
        }
        Ok(Self(text))
    }
}

impl From<AuthKey> for String {
    fn from(value: AuthKey) -> String {
        value.0
    }
}

/// The callback settings as stored and returned (inside `record_callback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordCallback {
    pub url: CallbackUrl,
    pub auth_key: AuthKey,
    pub notify_event_subscription: Vec<EventType>,
    pub update_time: Timestamp,
}

/// Body of `PUT .../record-callback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    pub url: Option<String>,
    pub auth_key: Option<AuthKey>,
    pub notify_event_subscription: Option<Vec<EventType>>,
}

/// The response shape of the seed: `{"app_id", "record_callback": {...}}`.
#[derive(Debug, Serialize)]
pub struct CallbackView {
    pub app_id: AppId,
    pub record_callback: RecordCallback,
}

impl RecordCallback {
    /// Builds the settings from a request; `url` and `auth_key` are required.
    pub fn from_request(request: CallbackRequest, policy: PrivateAddresses, now: Timestamp) -> Result<Self, Invalid> {
        let url = request.url.ok_or_else(|| Invalid::new("url", "is required"))?;
        let auth_key = request.auth_key.ok_or_else(|| Invalid::new("auth_key", "is required"))?;
        let events = request.notify_event_subscription.unwrap_or_else(|| EventType::DEFAULT.to_vec());
        let distinct: std::collections::HashSet<_> = events.iter().collect();
        if events.is_empty() || distinct.len() != events.len() {
            return Err(Invalid::new(
                "notify_event_subscription",
                "must list each event at most once, and at least one",
            ));
        }
        Ok(Self {
            url: CallbackUrl::parse(&url, policy)?,
            auth_key,
            notify_event_subscription: events,
            update_time: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::now;

    fn parse(json: &str) -> Result<RecordCallback, Invalid> {
        let req: CallbackRequest = serde_json::from_str(json).map_err(|e| Invalid::new("body", e.to_string()))?;
        RecordCallback::from_request(req, PrivateAddresses::Refuse, now())
    }

    #[test]
    fn seed_callback_defaults_to_the_seeds_three_events_and_the_failure_and_pause_events_are_opt_in() {
        let cb =
            parse(r#"{"url":"http://mydomain.com/callback","auth_key":"8923ab8c2dcef4538923ab8c2dcef453"}"#).unwrap();
        let seed_002 = [EventType::RecordNewFileStart, EventType::RecordFileComplete, EventType::CloudRecordOver];
        assert_eq!(cb.notify_event_subscription, seed_002);
        assert!(!cb.notify_event_subscription.contains(&EventType::RecordPaused));
        let every = parse(
            r#"{"url":"http://mydomain.com/callback","auth_key":"8923ab8c2dcef4538923ab8c2dcef453","notify_event_subscription":["RECORD_NEW_FILE_START","RECORD_FILE_COMPLETE","CLOUD_RECORD_OVER","CLOUD_RECORD_FAILED","RECORD_PAUSED","RECORD_RESUMED"]}"#,
        )
        .unwrap();
        assert_eq!(every.notify_event_subscription, EventType::ALL);
    }

    #[test]
    fn short_auth_keys_are_refused() {
        let err = parse(r#"{"url":"http://mydomain.com/callback","auth_key":"short"}"#).unwrap_err();
        assert!(err.to_string().contains("auth_key"), "{err}");
    }

    #[test]
    fn duplicate_subscriptions_are_refused() {
        let err = parse(
            r#"{"url":"https://a.example/cb","auth_key":"8923ab8c2dcef4538923ab8c2dcef453","notify_event_subscription":["CLOUD_RECORD_OVER","RECORD_FILE_COMPLETE","CLOUD_RECORD_OVER"]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "notify_event_subscription");
    }
}
