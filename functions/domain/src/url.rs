//! URLs a client gives us. All of them are untrusted: each kind allows only the schemes the
//! spec names, and callback URLs may not point into private networks unless allowed.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::ids::{RoomId, UserId};
pub use crate::reach::is_private_ip;
use crate::Invalid;

/// Longest URL accepted anywhere in the API.
pub const MAX_URL_CHARS: usize = 2048;

/// Schemes a participant stream may use (DESIGN §4 inputs).
pub const STREAM_SCHEMES: &[&str] = &["rtmp", "rtmps", "srt", "rtsp", "http", "https"];

fn parse_url(text: &str, field: &str, schemes: &[&str]) -> Result<Url, Invalid> {
    if text.len() > MAX_URL_CHARS {
        return Err(Invalid::new(field, format!("must be at most {MAX_URL_CHARS} characters")));
    }
    let url = Url::parse(text).map_err(|e| Invalid::new(field, format!("is not a URL ({e})")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(Invalid::new(
            field,
            format!("scheme '{}' is not allowed; use one of {}", url.scheme(), schemes.join(", ")),
        ));
    }
    if url.host().is_none() {
        return Err(Invalid::new(field, "must name a host"));
    }
    Ok(url)
}

/// Where a participant's live media can be pulled from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct StreamUrl(Url);

impl StreamUrl {
    /// Parses `text` as the stream URL in field `field`.
    pub fn parse(text: &str, field: &str) -> Result<Self, Invalid> {
        parse_url(text, field, STREAM_SCHEMES).map(Self)
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for StreamUrl {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        Self::parse(&text, "url")
    }
}

impl From<StreamUrl> for String {
    fn from(value: StreamUrl) -> String {
        value.0.into()
    }
}

/// An app's rule for where a participant's stream lives, e.g.
/// `rtmp://media.example.com/live/{room_id}_{user_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct StreamUrlTemplate(String);

impl StreamUrlTemplate {
    /// The request field this value comes from.
    pub const FIELD: &'static str = "stream_url_template";

    /// The URL of a sample room and user, to judge what the template names.
    pub fn sample(&self) -> Result<StreamUrl, Invalid> {
        self.expand(&RoomId::try_from("room")?, &UserId::try_from("user")?)
    }

    /// The stream URL of `user` in `room`.
    pub fn expand(&self, room: &RoomId, user: &UserId) -> Result<StreamUrl, Invalid> {
        let text = self.0.replace("{room_id}", room.as_str()).replace("{user_id}", user.as_str());
        StreamUrl::parse(&text, Self::FIELD)
    }
}

impl TryFrom<String> for StreamUrlTemplate {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        let rest = text.replace("{room_id}", "").replace("{user_id}", "");
        if rest.contains('{') || rest.contains('}') {
            return Err(Invalid::new(Self::FIELD, "may use only the variables {room_id} and {user_id}"));
        }
        let template = Self(text);
        template.sample()?;
        Ok(template)
    }
}

impl From<StreamUrlTemplate> for String {
    fn from(value: StreamUrlTemplate) -> String {
        value.0
    }
}

/// Whether callback URLs may name loopback or private hosts (local development only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrivateAddresses {
    /// Refuse them (every real deployment).
    #[default]
    Refuse,
    /// Allow them (`ROOMREC_ALLOW_PRIVATE_CALLBACKS=true`, set by `make up`).
    Allow,
}

/// The customer's endpoint for recording callbacks: http or https only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct CallbackUrl(Url);

impl CallbackUrl {
    /// Parses `text` and, unless `policy` allows it, refuses hosts that are private addresses.
    ///
    /// Only literal addresses and `localhost` are judged here; names that *resolve* to a
    /// private address are caught by the deliverer, which connects to the checked address.
    pub fn parse(text: &str, policy: PrivateAddresses) -> Result<Self, Invalid> {
        let url = parse_url(text, "url", &["http", "https"])?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Invalid::new("url", "must not carry credentials"));
        }
        if policy == PrivateAddresses::Refuse && host_is_private(&url) {
            return Err(Invalid::new("url", "must not point to a loopback, private, link-local or metadata address"));
        }
        Ok(Self(url))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl TryFrom<String> for CallbackUrl {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        // Stored values were checked when saved; reading them back must not re-judge policy.
        Self::parse(&text, PrivateAddresses::Allow)
    }
}

impl From<CallbackUrl> for String {
    fn from(value: CallbackUrl) -> String {
        value.0.into()
    }
}

fn host_is_private(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => is_private_ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_private_ip(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost") || name.ends_with(".internal")
        }
        None => true,
    }
}

/// An image in object storage, written `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct S3Uri {
    bucket: String,
    key: String,
}

impl S3Uri {
    /// Parses `text` as the image location in field `field`.
    pub fn parse(text: &str, field: &str) -> Result<Self, Invalid> {
        let rest =
            text.strip_prefix("s3://").ok_or_else(|| Invalid::new(field, "must be an s3://bucket/key location"))?;
        let (bucket, key) =
            rest.split_once('/').ok_or_else(|| Invalid::new(field, "must name a key after the bucket"))?;
        if !crate::rule::is_bucket_name(bucket) || key.is_empty() || key.len() > 1024 {
            return Err(Invalid::new(field, "must be an s3://bucket/key location with a valid bucket name"));
        }
        Ok(Self { bucket: bucket.to_owned(), key: key.to_owned() })
    }

    /// The bucket part.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key part.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl TryFrom<String> for S3Uri {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        Self::parse(&text, "image")
    }
}

impl From<S3Uri> for String {
    fn from(value: S3Uri) -> String {
        format!("s3://{}/{}", value.bucket, value.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_allow_only_media_protocols() {
        for ok in ["rtmp://h/live/a", "rtmps://h/a", "srt://h:9000", "rtsp://h/a", "https://h/a.m3u8"] {
            assert!(StreamUrl::parse(ok, "url").is_ok(), "{ok}");
        }
        for bad in ["file:///etc/passwd", "concat:a|b", "subfile:,,start,0,end,0,,:x", "ftp://h/a", "gopher://h"] {
            let err = StreamUrl::parse(bad, "url").unwrap_err();
            assert_eq!(err.field, "url", "{bad}");
        }
    }

    #[test]
    fn callback_urls_refuse_private_hosts_unless_allowed() {
        for bad in [
            "http://127.0.0.1/cb",
            "http://10.1.2.3/cb",
            "http://169.254.169.254/latest",
            "http://[::1]/cb",
            "http://[fd00:ec2::23]/",
            "http://100.64.0.1/",
            "http://localhost:8080/",
        ] {
            assert!(CallbackUrl::parse(bad, PrivateAddresses::Refuse).is_err(), "{bad}");
            assert!(CallbackUrl::parse(bad, PrivateAddresses::Allow).is_ok(), "{bad}");
        }
        assert!(CallbackUrl::parse("https://hooks.example.com/rec", PrivateAddresses::Refuse).is_ok());
        assert!(CallbackUrl::parse("rtmp://hooks.example.com/rec", PrivateAddresses::Allow).is_err());
        assert!(CallbackUrl::parse("https://u:p@hooks.example.com/", PrivateAddresses::Allow).is_err());
    }

    #[test]
    fn stream_url_templates_expand_room_and_user() {
        let t = StreamUrlTemplate::try_from("rtmp://media.example.com/live/{room_id}_{user_id}".to_owned()).unwrap();
        let url = t.expand(&RoomId::try_from("r1").unwrap(), &UserId::try_from("u1").unwrap()).unwrap();
        assert_eq!(url.as_str(), "rtmp://media.example.com/live/r1_u1");
        assert!(StreamUrlTemplate::try_from("rtmp://h/{stream}".to_owned()).is_err());
        assert!(StreamUrlTemplate::try_from("file:///{room_id}".to_owned()).is_err());
    }

    #[test]
    fn s3_uris_need_bucket_and_key() {
        let uri = S3Uri::parse("s3://my-bucket/bg/1.png", "background_image").unwrap();
        assert_eq!((uri.bucket(), uri.key()), ("my-bucket", "bg/1.png"));
        assert!(S3Uri::parse("https://x/y", "background_image").is_err());
        assert!(S3Uri::parse("s3://bucket-only", "background_image").is_err());
    }
}
