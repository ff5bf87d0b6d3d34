//! Fetching a recording without access to its bucket: how long a presigned `download_url`
//! lives, whose credentials sign it (the deployment's for its own bucket, the tenant's role
//! for a bucket of the tenant's), and an HLS playlist with every segment URI presigned so a
//! browser can play it.

use std::sync::Arc;
use std::time::Duration;

use crate::callback::EventType;
use crate::error::{error_chain, Invalid};
use crate::event::RecordEvent;
use crate::ids::{AccountId, AppId, JobId};
use crate::naming;
use crate::ports::{AppStore, JobStore, Presigner, RuleStore};
use crate::rule::RecordRule;
use crate::storage::{storage, Access};

/// Longest lifetime of a SigV4 presigned URL: seven days
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html>).
pub const MAX_DOWNLOAD_URL_SECONDS: u64 = 7 * 24 * 3600;
/// Lifetime of a presigned URL when the deployment does not set one.
pub const DEFAULT_DOWNLOAD_URL_SECONDS: u64 = 3600;

/// How long a presigned `download_url` works: 1 second to [`MAX_DOWNLOAD_URL_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadLifetime(Duration);

impl DownloadLifetime {
    /// The lifetime as a duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl Default for DownloadLifetime {
    fn default() -> Self {
        Self(Duration::from_secs(DEFAULT_DOWNLOAD_URL_SECONDS))
    }
}

impl TryFrom<u64> for DownloadLifetime {
    type Error = Invalid;
    fn try_from(seconds: u64) -> Result<Self, Invalid> {
        if !(1..=MAX_DOWNLOAD_URL_SECONDS).contains(&seconds) {
            return Err(Invalid::new("DownloadUrlSeconds", "must be between 1 and 604800 (7 days)"));
        }
        Ok(Self(Duration::from_secs(seconds)))
    }
}

/// Whose credentials sign a URL of `key` in `bucket`, a file of `job` of `app` (owned by
/// `account`) recorded under `rule`: the tenant's role for the rule's own bucket, the
/// deployment's for a key under the app's prefix; `None` for anything else (the rule changed
/// or is gone and the file is not the deployment's to sign), which gets no URL.
pub fn file_access(
    rule: Option<&RecordRule>,
    account: &AccountId,
    app: &AppId,
    job: &JobId,
    bucket: &str,
    key: &str,
) -> Option<Access> {
    if let Some(rule) = rule.filter(|r| r.obs_addr.role_arn.is_some() && r.obs_addr.bucket == bucket) {
        return storage(rule, "", account, job).ok().map(|s| s.access);
    }
    // The deployment's credentials reach its recordings bucket only, where every key of an
    // app is under its prefix: a key elsewhere is not one of this app's there.
    naming::is_under_app(key, app).then_some(Access::Worker)
}

/// Signs the file of a `RECORD_FILE_COMPLETE` event when it is sent, so a callback's
/// `download_url` lives its whole lifetime from delivery (a retry hours later gets a fresh
/// one): whose credentials sign it is decided as for the job's view ([`file_access`]), from
/// the job's rule and owner as they are now.
#[derive(Clone)]
pub struct EventDownloads {
    pub jobs: Arc<dyn JobStore>,
    pub rules: Arc<dyn RuleStore>,
    /// The owner of an app whose job was stored before jobs named their account.
    pub apps: Arc<dyn AppStore>,
    pub presigner: Arc<dyn Presigner>,
    pub lifetime: DownloadLifetime,
}

impl EventDownloads {
    /// Presigned URLs of `event`'s file and its timeline sidecar, if it is a completed file
    /// and can be signed (a failure is logged: the event keeps the object's plain address).
    pub async fn signed(&self, event: &RecordEvent) -> Option<SignedFile> {
        let file = event.file.as_ref().filter(|_| event.event_type == EventType::RecordFileComplete)?;
        let (app, job) = (&event.app_id, &event.job_id);
        let record = self.jobs.get_jobs(&[(app.clone(), job.clone())]).await.map_err(|e| warn(event, &e)).ok()?;
        let record = record.into_iter().next()?;
        let account = match record.account {
            Some(account) => account,
            None => self.apps.app_owner(app).await.map_err(|e| warn(event, &e)).ok()??,
        };
        let rule = match record.job.rule_id() {
            Some(rule_id) => self.rules.get_rule(app, &rule_id).await.map_err(|e| warn(event, &e)).ok()?,
            None => None,
        };
        let access = file_access(rule.as_ref(), &account, app, job, &file.obs_bucket, &file.obs_object)?;
        let (presigner, lifetime) = (&self.presigner, self.lifetime.duration());
        let sign = |key| presigner.presign_get(&access, &file.obs_bucket, key, lifetime);
        let download_url = sign(&file.obs_object).await.map_err(|e| warn(event, &e)).ok()?;
        let timeline_url = match &file.timeline_object {
            Some(key) => sign(key).await.map_err(|e| warn(event, &e)).ok(),
            None => None,
        };
        Some(SignedFile { download_url, timeline_url })
    }
}

/// The presigned URLs of a completed file's callback.
pub struct SignedFile {
    pub download_url: String,
    /// The file's timeline sidecar, when it has one.
    pub timeline_url: Option<String>,
}

fn warn(event: &RecordEvent, err: &dyn std::error::Error) {
    tracing::warn!(job_id = %event.job_id, sequence = event.sequence, error = %error_chain(err),
        "could not presign the event's download_url; it keeps the object's address");
}

/// One line of a playlist: a tag or comment kept as it is, a URI, or an `EXT-X-MAP` whose
/// `URI` attribute names the initialisation segment.
enum Line<'a> {
    Kept(&'a str),
    Uri(&'a str),
    Map { before: &'a str, uri: &'a str, after: &'a str },
}

fn parse_line(line: &str) -> Line<'_> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Kept(line);
    }
    if !trimmed.starts_with('#') {
        return Line::Uri(trimmed);
    }
    if trimmed.starts_with("#EXT-X-MAP:") {
        if let Some(start) = trimmed.find("URI=\"").map(|at| at + "URI=\"".len()) {
            if let Some(len) = trimmed[start..].find('"') {
                let (before, rest) = trimmed.split_at(start);
                let (uri, after) = rest.split_at(len);
                return Line::Map { before, uri, after };
            }
        }
    }
    Line::Kept(line)
}

/// The key a playlist at `playlist_key` names with `uri`: relative URIs resolve beside it;
/// `None` for an absolute URL, a query, or a `.`/`..` segment (never anything our workers
/// write, and never a way out of the playlist's folder).
pub fn segment_key(playlist_key: &str, uri: &str) -> Option<String> {
    if uri.is_empty() || uri.contains("://") || uri.starts_with('/') || uri.contains(['?', '#']) {
        return None;
    }
    if uri.split('/').any(|s| matches!(s, "" | "." | "..")) {
        return None;
    }
    let folder = playlist_key.rfind('/').map_or("", |at| &playlist_key[..=at]);
    Some(format!("{folder}{uri}"))
}

/// The keys of the segments (and initialisation segment) `playlist` names, in order.
pub fn playlist_segments(playlist_key: &str, playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|line| match parse_line(line) {
            Line::Uri(uri) | Line::Map { uri, .. } => segment_key(playlist_key, uri),
            Line::Kept(_) => None,
        })
        .collect()
}

/// `playlist` with each segment URI replaced by what `signed` gives for its key; a URI with
/// no signed URL (one [`segment_key`] refuses, or one not signed) is left as written.
pub fn sign_playlist(playlist_key: &str, playlist: &str, signed: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(playlist.len() * 4);
    for line in playlist.lines() {
        let url = |uri: &str| segment_key(playlist_key, uri).and_then(|key| signed(&key));
        match parse_line(line) {
            Line::Kept(text) => out.push_str(text),
            Line::Uri(uri) => out.push_str(&url(uri).unwrap_or_else(|| uri.to_owned())),
            Line::Map { before, uri, after } => {
                out.push_str(before);
                out.push_str(&url(uri).unwrap_or_else(|| uri.to_owned()));
                out.push_str(after);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"a_init.mp4\",BYTERANGE=\"1@0\"\n#EXTINF:2.000,\na_000001.ts\n#EXTINF:2.000,\n\na_000002.ts\n";

    #[test]
    fn lifetimes_past_sigv4s_seven_days_or_of_zero_seconds_are_refused() {
        assert_eq!(DownloadLifetime::default().duration(), Duration::from_secs(3600));
        assert_eq!(DownloadLifetime::try_from(604_800).unwrap().duration(), Duration::from_secs(604_800));
        assert!(DownloadLifetime::try_from(604_801).is_err());
        assert!(DownloadLifetime::try_from(0).is_err());
    }

    #[test]
    fn segments_resolve_beside_the_playlist_and_never_climb_out_of_its_folder() {
        assert_eq!(segment_key("app/rec/a.m3u8", "a_000001.ts").as_deref(), Some("app/rec/a_000001.ts"));
        assert_eq!(segment_key("a.m3u8", "a_000001.ts").as_deref(), Some("a_000001.ts"));
        for bad in ["../b.ts", "x/../../b.ts", "/b.ts", "https://evil.example/b.ts", "b.ts?x=1", "./b.ts", ""] {
            assert_eq!(segment_key("app/rec/a.m3u8", bad), None, "{bad}");
        }
    }

    #[test]
    fn a_signed_playlist_names_every_segment_and_the_map_by_its_signed_url() {
        let keys = playlist_segments("app/a.m3u8", PLAYLIST);
        assert_eq!(keys, ["app/a_init.mp4", "app/a_000001.ts", "app/a_000002.ts"]);
        let signed = sign_playlist("app/a.m3u8", PLAYLIST, |key| Some(format!("https://s/{key}?sig=1")));
        assert!(signed.contains("#EXT-X-MAP:URI=\"https://s/app/a_init.mp4?sig=1\",BYTERANGE=\"1@0\"\n"), "{signed}");
        assert!(signed.contains("#EXTINF:2.000,\nhttps://s/app/a_000001.ts?sig=1\n"), "{signed}");
        assert!(signed.contains("\nhttps://s/app/a_000002.ts?sig=1\n"), "{signed}");
        assert!(signed.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
    }

    #[test]
    fn a_uri_that_cannot_be_signed_is_left_as_written() {
        let signed = sign_playlist("app/a.m3u8", "#EXTM3U\n../x.ts\n", |key| Some(format!("https://s/{key}")));
        assert_eq!(signed, "#EXTM3U\n../x.ts\n");
    }
}
