//! Minted publish URLs: the media server lets a publisher in only with a signature the API
//! issued for one app, room, user and video type, until it expires. The signature is
//! HMAC-SHA256 keyed by the app's publish secret, which the app's owner can rotate.
//!
//! The signed fields travel in the RTMP URL's query string. nginx-rtmp passes a publish URL's
//! query arguments to its `on_publish` hook as form fields, while the stream name it reports
//! (and serves players) leaves them out, so the name a worker pulls stays the stream key
//! whatever the signature and expiry: `<app_id>.<room_id>.<user_id>` for a camera,
//! `<app_id>.<room_id>.<user_id>.SUBSTREAM` for a screen share, so that one participant can
//! publish both at once (a media server lets one publisher per stream name in).

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::clock::{Clock, Random};
use crate::error::Invalid;
use crate::ids::{AppId, RoomId, UserId};
use crate::room::VideoType;
use crate::time::Timestamp;

/// Shortest lifetime of a minted URL: long enough to hand it to a publisher.
pub const MIN_TTL_SECONDS: i64 = 60;
/// Longest lifetime of a minted URL: a leaked one is useless after a day.
pub const MAX_TTL_SECONDS: i64 = 86_400;
/// Lifetime of a minted URL when the request does not say.
pub const DEFAULT_TTL_SECONDS: i64 = 3_600;
/// Random bytes in a publish secret (HMAC-SHA256 keys gain nothing past the hash's 32).
const SECRET_BYTES: usize = 32;
/// Domain separation: a signature for anything else never verifies as a publish grant.
const SIGNATURE_CONTEXT: &str = "roomrec-publish-v1";

/// Query parameter of a publish URL: the video type signed for.
pub const VIDEO_TYPE_PARAM: &str = "video_type";
/// Query parameter of a publish URL: the expiry signed for, in Unix seconds.
pub const EXPIRES_PARAM: &str = "expires";
/// Query parameter of a publish URL: the signature, lowercase hex.
pub const SIGNATURE_PARAM: &str = "signature";

/// An app's key for publish signatures: 32 random bytes as hex. Never serialised and never
/// printed, so no response or log can carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublishSecret(String);

impl std::fmt::Debug for PublishSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishSecret(..)")
    }
}

impl PublishSecret {
    /// A new secret from `random`.
    pub fn generate(random: &dyn Random) -> Self {
        Self(random.hex(SECRET_BYTES))
    }

    /// A secret as the store keeps it; `None` if it is not one.
    pub fn from_stored(text: &str) -> Option<Self> {
        let well_formed = text.len() == SECRET_BYTES * 2 && text.bytes().all(|b| b.is_ascii_hexdigit());
        well_formed.then(|| Self(text.to_owned()))
    }

    /// The text the store keeps.
    pub fn stored(&self) -> &str {
        &self.0
    }
}

/// What a publish URL allows: one participant's stream of one video type, until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishGrant {
    pub app_id: AppId,
    pub room_id: RoomId,
    pub user_id: UserId,
    pub video_type: VideoType,
    /// Unix seconds; the grant is refused from this instant on.
    pub expires: i64,
}

/// Why a publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    /// The signature is malformed or was not made with the app's current secret for these
    /// fields (tampered, forged, or signed before a rotation).
    #[error("does not match; publish with a URL from POST .../publish-url")]
    BadSignature,
    /// The grant expired.
    #[error("the publish URL has expired; mint a new one")]
    Expired,
}

/// The stream key's last part naming a screen share (a camera's key has none).
const SUBSTREAM_KEY_SUFFIX: &str = "SUBSTREAM";

/// The stream a stream key names: app, room, user and video type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKey {
    pub app_id: AppId,
    pub room_id: RoomId,
    pub user_id: UserId,
    pub video_type: VideoType,
}

impl StreamKey {
    /// Splits `<app_id>.<room_id>.<user_id>[.SUBSTREAM]` (ids contain no dot).
    pub fn parse(name: &str) -> Result<Self, Invalid> {
        let shape = || Invalid::new("name", "stream key must be <app_id>.<room_id>.<user_id>[.SUBSTREAM]");
        let parts: Vec<&str> = name.split('.').collect();
        let (ids, video_type) = match parts.as_slice() {
            [app, room, user] => ([*app, *room, *user], VideoType::Camerastream),
            [app, room, user, SUBSTREAM_KEY_SUFFIX] => ([*app, *room, *user], VideoType::Substream),
            _ => return Err(shape()),
        };
        let app_id = AppId::parse(ids[0]).ok_or_else(shape)?;
        Ok(Self { app_id, room_id: RoomId::try_from(ids[1])?, user_id: UserId::try_from(ids[2])?, video_type })
    }
}

impl PublishGrant {
    /// The stream key a grant publishes to (and a worker pulls): `<app_id>.<room_id>.<user_id>`
    /// for a camera, with `.SUBSTREAM` after it for a screen share.
    pub fn stream_key(&self) -> String {
        let camera = format!("{}.{}.{}", self.app_id, self.room_id, self.user_id);
        match self.video_type {
            VideoType::Camerastream => camera,
            VideoType::Substream => format!("{camera}.{SUBSTREAM_KEY_SUFFIX}"),
        }
    }

    /// The grant's signature with `secret`, lowercase hex.
    pub fn sign(&self, secret: &PublishSecret) -> String {
        hex::encode(self.mac(secret).finalize().into_bytes())
    }

    /// Accepts `signature` if `secret` made it for exactly these fields and the grant has not
    /// expired by the clock's now. The comparison takes the same time whatever the bytes.
    pub fn verify(&self, signature: &str, secret: &PublishSecret, clock: &dyn Clock) -> Result<(), PublishRefused> {
        let given = hex::decode(signature).map_err(|_| PublishRefused::BadSignature)?;
        self.mac(secret).verify_slice(&given).map_err(|_| PublishRefused::BadSignature)?;
        if clock.now().timestamp() >= self.expires {
            return Err(PublishRefused::Expired);
        }
        Ok(())
    }

    /// HMAC-SHA256 over every field, one per line after a context label; ids cannot contain
    /// a newline, so no two grants share a message.
    fn mac(&self, secret: &PublishSecret) -> Hmac<Sha256> {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(secret.0.as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        let message = format!(
            "{SIGNATURE_CONTEXT}\n{}\n{}\n{}\n{}\n{}",
            self.app_id,
            self.room_id,
            self.user_id,
            self.video_type.as_str(),
            self.expires
        );
        mac.update(message.as_bytes());
        mac
    }
}

/// Where publishers reach the media server: an `rtmp://` or `rtmps://` URL naming the RTMP
/// application, e.g. `rtmp://media.example.com:1935/live`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishBase(String);

impl PublishBase {
    /// Checks `text` is an RTMP(S) URL with a host and no query or fragment.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let invalid = || Invalid::new("publish_base", "must be rtmp[s]://host[:port]/<application>");
        let url = url::Url::parse(text).map_err(|_| invalid())?;
        let scheme_ok = matches!(url.scheme(), "rtmp" | "rtmps");
        let path = url.path().trim_matches('/');
        if !scheme_ok
            || url.host_str().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || path.is_empty()
        {
            return Err(invalid());
        }
        Ok(Self(text.trim_end_matches('/').to_owned()))
    }

    /// The URL that publishes `grant`: the stream key, then the signed fields as its query.
    pub fn url(&self, grant: &PublishGrant, secret: &PublishSecret) -> String {
        format!(
            "{}/{}?{VIDEO_TYPE_PARAM}={}&{EXPIRES_PARAM}={}&{SIGNATURE_PARAM}={}",
            self.0,
            grant.stream_key(),
            grant.video_type.as_str(),
            grant.expires,
            grant.sign(secret)
        )
    }
}

/// Body of `POST .../streams/{user_id}/publish-url`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishUrlRequest {
    pub video_type: Option<VideoType>,
    pub ttl_seconds: Option<i64>,
}

impl PublishUrlRequest {
    /// The grant this request asks for at `now`: the default video type and lifetime filled in.
    pub fn grant(
        &self,
        app_id: AppId,
        room_id: RoomId,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<PublishGrant, Invalid> {
        let ttl = self.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
            return Err(Invalid::new("ttl_seconds", format!("must be {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS} seconds")));
        }
        let video_type = self.video_type.unwrap_or_default();
        Ok(PublishGrant { app_id, room_id, user_id, video_type, expires: now.timestamp() + ttl })
    }
}

/// A minted publish URL, as returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishUrl {
    /// The RTMP URL to publish to, signature included.
    pub url: String,
    /// When the URL stops letting a publisher in (one already publishing stays).
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{random, ManualClock};
    use std::time::Duration;

    fn grant(clock: &ManualClock, ttl: i64) -> PublishGrant {
        let request = PublishUrlRequest { video_type: None, ttl_seconds: Some(ttl) };
        let app = AppId::parse("5ff9701f2346968bb306cb43").unwrap();
        let (room, user) = (RoomId::try_from("room001").unwrap(), UserId::try_from("user001").unwrap());
        request.grant(app, room, user, clock.now()).unwrap()
    }

    #[test]
    fn a_grant_verifies_with_the_secret_that_signed_it_until_it_expires() {
        let clock = ManualClock::default();
        let secret = PublishSecret::generate(random());
        let grant = grant(&clock, 60);
        let signature = grant.sign(&secret);
        assert_eq!(grant.verify(&signature, &secret, &clock), Ok(()));
        clock.advance(Duration::from_secs(59));
        assert_eq!(grant.verify(&signature, &secret, &clock), Ok(()));
        clock.advance(Duration::from_secs(1));
        assert_eq!(grant.verify(&signature, &secret, &clock), Err(PublishRefused::Expired));
    }

    #[test]
    fn changing_any_signed_field_or_the_signature_is_refused() {
        let clock = ManualClock::default();
        let secret = PublishSecret::generate(random());
        let grant = grant(&clock, 3600);
        let signature = grant.sign(&secret);
        let tampered = [
            PublishGrant { app_id: AppId::parse("0123456789abcdef01234567").unwrap(), ..grant.clone() },
            PublishGrant { room_id: RoomId::try_from("room002").unwrap(), ..grant.clone() },
            PublishGrant { user_id: UserId::try_from("mallory").unwrap(), ..grant.clone() },
            PublishGrant { video_type: VideoType::Substream, ..grant.clone() },
            PublishGrant { expires: grant.expires + 86_400, ..grant.clone() },
        ];
        for other in tampered {
            assert_eq!(other.verify(&signature, &secret, &clock), Err(PublishRefused::BadSignature), "{other:?}");
        }
        let mut flipped = signature.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        for bad in [String::from_utf8(flipped).unwrap(), signature[..62].to_owned(), "zz".into(), String::new()] {
            assert_eq!(grant.verify(&bad, &secret, &clock), Err(PublishRefused::BadSignature), "{bad}");
        }
    }

    #[test]
    fn a_signature_made_before_a_rotation_is_refused_after_it() {
        let clock = ManualClock::default();
        let (old, new) = (PublishSecret::generate(random()), PublishSecret::generate(random()));
        let grant = grant(&clock, 3600);
        assert_eq!(grant.verify(&grant.sign(&old), &new, &clock), Err(PublishRefused::BadSignature));
        assert_eq!(grant.verify(&grant.sign(&new), &new, &clock), Ok(()));
    }

    #[test]
    fn the_url_keeps_the_stream_key_and_carries_the_signed_fields_as_its_query() {
        let clock = ManualClock::default();
        let secret = PublishSecret::generate(random());
        let grant = grant(&clock, 3600);
        let url = PublishBase::parse("rtmp://media.example.com:1935/live/").unwrap().url(&grant, &secret);
        let expected = format!(
            "rtmp://media.example.com:1935/live/5ff9701f2346968bb306cb43.room001.user001?video_type=CAMERASTREAM&expires={}&signature={}",
            clock.now().timestamp() + 3600,
            grant.sign(&secret)
        );
        assert_eq!(url, expected);
    }

    #[test]
    fn a_screen_share_publishes_to_its_own_key_and_keys_parse_back_to_their_stream() {
        let clock = ManualClock::default();
        let camera = grant(&clock, 3600);
        let screen = PublishGrant { video_type: VideoType::Substream, ..camera.clone() };
        assert_eq!(camera.stream_key(), "5ff9701f2346968bb306cb43.room001.user001");
        assert_eq!(screen.stream_key(), "5ff9701f2346968bb306cb43.room001.user001.SUBSTREAM");
        for grant in [camera, screen] {
            let key = StreamKey::parse(&grant.stream_key()).unwrap();
            let back = (key.app_id, key.room_id, key.user_id, key.video_type);
            assert_eq!(back, (grant.app_id, grant.room_id, grant.user_id, grant.video_type));
        }
    }

    #[test]
    fn malformed_stream_keys_name_the_field() {
        let app = "5ff9701f2346968bb306cb43";
        for bad in [
            "room001_user".to_owned(),
            format!("{app}.room"),
            "x.room.user".to_owned(),
            format!("{app}.r.u.extra"),
            format!("{app}.r.u.CAMERASTREAM"),
            format!("{app}.r.u.SUBSTREAM.x"),
        ] {
            assert_eq!(StreamKey::parse(&bad).unwrap_err().field, "name", "{bad}");
        }
    }

    #[test]
    fn lifetimes_outside_a_minute_to_a_day_name_ttl_seconds() {
        let clock = ManualClock::default();
        for ttl in [0, 59, 86_401, -5] {
            let request = PublishUrlRequest { video_type: None, ttl_seconds: Some(ttl) };
            let app = AppId::parse("5ff9701f2346968bb306cb43").unwrap();
            let refused =
                request.grant(app, RoomId::try_from("r").unwrap(), UserId::try_from("u").unwrap(), clock.now());
            assert_eq!(refused.unwrap_err().field, "ttl_seconds", "{ttl}");
        }
        assert_eq!(grant(&clock, 86_400).expires, clock.now().timestamp() + 86_400);
    }

    #[test]
    fn publish_bases_must_be_rtmp_urls_naming_an_application() {
        for good in ["rtmp://127.0.0.1:1935/live", "rtmps://media.example.com/live/"] {
            assert!(PublishBase::parse(good).is_ok(), "{good}");
        }
        for bad in ["http://h/live", "rtmp://h", "rtmp://h/live?x=1", "not a url"] {
            assert!(PublishBase::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output_and_round_trip_through_the_store() {
        let secret = PublishSecret::generate(random());
        assert!(!format!("{secret:?}").contains(secret.stored()));
        assert_eq!(PublishSecret::from_stored(secret.stored()), Some(secret));
        assert_eq!(PublishSecret::from_stored("abc"), None);
    }
}
