//! Streaming uploads of one recording file while it is recorded: HLS segments and a growing
//! playlist as whole objects, fragmented MP4 as a multipart upload whose every part ends on a
//! fragment boundary, with the bytes not yet in a part sent every few seconds as small
//! "pending" objects beside it, so a worker that dies leaves at most seconds only on its disk.
//!
//! Fencing: the playlist is replaced only over the ETag this upload last wrote, so once a
//! worker that took the job over has closed it, a late write of the old worker fails
//! ([`UploadError::Fenced`]) instead of overwriting it. The MP4 object is only ever made by
//! completing the one multipart upload, whoever completes it first.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roomrec_domain::ports::{Blobs, FilePart, IfStored, StoreError};
use tokio::time::Instant;

/// S3's smallest part except the last: https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
pub const MIN_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024;

/// How often the MP4 bytes not yet in a part are sent as a pending object.
pub const PENDING_INTERVAL: Duration = Duration::from_secs(2);

/// Uploading failed, or the spool file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload to object storage failed")]
    Store(#[from] StoreError),
    #[error("reading the spooled file failed")]
    Spool(#[from] std::io::Error),
    /// Another worker wrote the file's playlist: the job was taken over.
    #[error("another worker replaced the file's playlist")]
    Fenced,
}

/// Where the pending objects of the MP4 file at `key` go.
pub fn pending_prefix(key: &str) -> String {
    format!("{key}.pending/")
}

/// The pending object holding the MP4 bytes from `offset`, ending `media` into the file.
fn pending_key(key: &str, offset: u64, media: Duration) -> String {
    format!("{}{offset:016}_{}", pending_prefix(key), media.as_millis())
}

/// A pending object's offset and media end, from its key.
pub fn parse_pending(prefix: &str, key: &str) -> Option<(u64, Duration)> {
    let (offset, millis) = key.strip_prefix(prefix)?.split_once('_')?;
    Some((offset.parse().ok()?, Duration::from_millis(millis.parse().ok()?)))
}

/// One HLS recording: the segments uploaded so far and the playlist that lists them.
pub struct HlsUpload {
    blobs: Arc<dyn Blobs>,
    bucket: String,
    playlist_key: String,
    entries: Vec<PlaylistEntry>,
    /// The ETag of the playlist this upload last wrote.
    playlist_etag: Option<String>,
    /// Bytes of every segment uploaded, the file's size as reported to the customer.
    pub bytes: u64,
    /// Media in the segments uploaded.
    pub duration: Duration,
}

#[derive(Debug)]
struct PlaylistEntry {
    uri: String,
    duration: Duration,
    discontinuity: bool,
}

impl HlsUpload {
    /// A new, empty HLS recording at `playlist_key`.
    pub fn new(blobs: Arc<dyn Blobs>, bucket: String, playlist_key: String) -> Self {
        let duration = Duration::ZERO;
        Self { blobs, bucket, playlist_key, entries: Vec::new(), playlist_etag: None, bytes: 0, duration }
    }

    /// Uploads a finished segment and the playlist that now includes it; deletes the spool file.
    pub async fn segment(
        &mut self,
        path: &Path,
        key: &str,
        uri: String,
        duration: Duration,
        discontinuity: bool,
    ) -> Result<(), UploadError> {
        let body = tokio::fs::read(path).await?;
        self.bytes += body.len() as u64;
        self.blobs.put(&self.bucket, key, body.into(), "video/mp2t", IfStored::Any).await?;
        tokio::fs::remove_file(path).await?;
        self.duration += duration;
        self.entries.push(PlaylistEntry { uri, duration, discontinuity });
        self.put_playlist(false).await
    }

    /// Writes the final playlist (`#EXT-X-ENDLIST`).
    pub async fn finish(&mut self) -> Result<(), UploadError> {
        self.put_playlist(true).await
    }

    /// Writes the playlist over the one this upload wrote last (any, the first time).
    async fn put_playlist(&mut self, ended: bool) -> Result<(), UploadError> {
        let text = bytes::Bytes::from(playlist(&self.entries, ended));
        let when = self.playlist_etag.clone().map_or(IfStored::Any, IfStored::Matches);
        let put = self.blobs.put(&self.bucket, &self.playlist_key, text.clone(), PLAYLIST_TYPE, when).await;
        self.playlist_etag = Some(match put {
            Ok(etag) => etag,
            // Our own write whose answer was lost (a retry) stores what we sent; anything
            // else is another worker's.
            Err(StoreError::Conflict) => match self.blobs.get(&self.bucket, &self.playlist_key).await? {
                Some(stored) if stored.body == text => stored.etag,
                _ => return Err(UploadError::Fenced),
            },
            Err(err) => return Err(err.into()),
        });
        Ok(())
    }
}

/// The content type of HLS playlists.
pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

fn playlist(entries: &[PlaylistEntry], ended: bool) -> String {
    let target = entries.iter().map(|e| e.duration.as_secs_f64().ceil() as u64).max().unwrap_or(1).max(1);
    let kind = if ended { "VOD" } else { "EVENT" };
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:{kind}\n"
    );
    for entry in entries {
        if entry.discontinuity {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        text.push_str(&format!("#EXTINF:{:.3},\n{}\n", entry.duration.as_secs_f64(), entry.uri));
    }
    if ended {
        text.push_str("#EXT-X-ENDLIST\n");
    }
    text
}

/// A fragmented MP4 file on its way to S3.
#[derive(Debug)]
pub enum Mp4Upload {
    /// Nothing sent yet; the multipart upload starts with the first bytes.
    Idle,
    /// The multipart upload is open; `uploaded` bytes of the file are in S3 as parts.
    InProgress { upload_id: String, etags: Vec<String>, uploaded: u64 },
    /// The object is complete; `size` bytes.
    Completed { size: u64 },
}

/// Drives one [`Mp4Upload`] for the file at `key`, with its pending objects.
pub struct Mp4Stream {
    blobs: Arc<dyn Blobs>,
    bucket: String,
    key: String,
    pub state: Mp4Upload,
    /// Bytes in S3, as parts or pending objects.
    sent: u64,
    /// When pending bytes were last sent.
    last_pending: Option<Instant>,
    /// Pending objects sent, by key and offset.
    pending: Vec<(String, u64)>,
}

impl Mp4Stream {
    /// A new upload of the file to `bucket`/`key`.
    pub fn new(blobs: Arc<dyn Blobs>, bucket: String, key: String) -> Self {
        Self { blobs, bucket, key, state: Mp4Upload::Idle, sent: 0, last_pending: None, pending: Vec::new() }
    }

    fn uploaded(&self) -> u64 {
        match &self.state {
            Mp4Upload::InProgress { uploaded, .. } => *uploaded,
            Mp4Upload::Completed { size } => *size,
            Mp4Upload::Idle => 0,
        }
    }

    /// The file at `path` is final up to `ready` bytes (a fragment boundary), `media` into
    /// the recording: opens the multipart upload with the first bytes, sends a part once at
    /// least [`MIN_PART_SIZE_BYTES`] are waiting, or else the new bytes as a pending object
    /// every [`PENDING_INTERVAL`]. `true` when the multipart upload changed (opened, or a part
    /// sent): the job should record it, for a worker that takes over.
    pub async fn progress(&mut self, path: &Path, ready: u64, media: Duration) -> Result<bool, UploadError> {
        if ready == 0 {
            return Ok(false);
        }
        if matches!(self.state, Mp4Upload::Idle) {
            let upload_id = self.blobs.start_multipart(&self.bucket, &self.key, "video/mp4").await?;
            self.state = Mp4Upload::InProgress { upload_id, etags: Vec::new(), uploaded: 0 };
            return Ok(true);
        }
        if ready.saturating_sub(self.uploaded()) >= MIN_PART_SIZE_BYTES {
            self.send_part(path, ready).await?;
            self.sent = ready;
            return Ok(true);
        }
        if ready > self.sent && self.last_pending.is_none_or(|at| at.elapsed() >= PENDING_INTERVAL) {
            self.send_pending(path, ready, media).await?;
        }
        Ok(false)
    }

    /// Sends the bytes from what is in S3 to `ready` as a pending object, and deletes the
    /// pending objects a part holds now (recorded in the job by then).
    async fn send_pending(&mut self, path: &Path, ready: u64, media: Duration) -> Result<(), UploadError> {
        let body = read_range(path, self.sent, ready - self.sent).await?;
        let key = pending_key(&self.key, self.sent, media);
        self.blobs.put(&self.bucket, &key, body.into(), "application/octet-stream", IfStored::Any).await?;
        self.pending.push((key, self.sent));
        (self.sent, self.last_pending) = (ready, Some(Instant::now()));
        self.delete_held_pending().await
    }

    /// Deletes, in one call, the pending objects whose bytes the parts (or the completed
    /// object) hold now.
    async fn delete_held_pending(&mut self) -> Result<(), UploadError> {
        let uploaded = self.uploaded();
        let held: Vec<String> =
            self.pending.extract_if(.., |(_, offset)| *offset < uploaded).map(|(key, _)| key).collect();
        self.blobs.delete(&self.bucket, &held).await?;
        Ok(())
    }

    /// The multipart upload under way and the bytes its parts hold.
    pub fn multipart(&self) -> Option<(roomrec_domain::record::Multipart, u64)> {
        match &self.state {
            Mp4Upload::InProgress { upload_id, etags, uploaded } => Some((
                roomrec_domain::record::Multipart { upload_id: upload_id.clone(), etags: etags.clone() },
                *uploaded,
            )),
            _ => None,
        }
    }

    /// The file is complete at `size` bytes: sends the rest, completes the object and
    /// deletes the pending objects.
    pub async fn finish(&mut self, path: &Path, size: u64) -> Result<u64, UploadError> {
        if matches!(self.state, Mp4Upload::Idle) {
            let upload_id = self.blobs.start_multipart(&self.bucket, &self.key, "video/mp4").await?;
            self.state = Mp4Upload::InProgress { upload_id, etags: Vec::new(), uploaded: 0 };
        }
        let no_part = matches!(&self.state, Mp4Upload::InProgress { etags, .. } if etags.is_empty());
        if size > self.uploaded() || no_part {
            self.send_part(path, size).await?;
        }
        if let Mp4Upload::InProgress { upload_id, etags, uploaded } = &self.state {
            self.blobs.complete_multipart(&self.bucket, &self.key, upload_id, etags).await?;
            self.state = Mp4Upload::Completed { size: *uploaded };
        }
        self.delete_held_pending().await?;
        tokio::fs::remove_file(path).await?;
        Ok(self.uploaded())
    }

    async fn send_part(&mut self, path: &Path, to: u64) -> Result<(), UploadError> {
        let Mp4Upload::InProgress { upload_id, etags, uploaded } = &mut self.state else { return Ok(()) };
        let part = FilePart { path, offset: *uploaded, length: to - *uploaded };
        let number = i32::try_from(etags.len() + 1).unwrap_or(i32::MAX);
        let etag = self.blobs.upload_part(&self.bucket, &self.key, upload_id, number, part).await?;
        etags.push(etag);
        *uploaded = to;
        Ok(())
    }
}

/// `length` bytes of the file at `path` from `offset`.
/// `length` bytes of the file at `path` from `offset`, in one trip to the blocking pool
/// (`tokio::fs::File` makes one each for the open, the seek and every read).
async fn read_range(path: &Path, offset: u64, length: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let path = path.to_owned();
    let read = tokio::task::spawn_blocking(move || {
        let mut body = vec![0; usize::try_from(length).unwrap_or(usize::MAX)];
        std::fs::File::open(path)?.read_exact_at(&mut body, offset)?;
        Ok(body)
    });
    read.await.map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomrec_domain::testing::MemBlobs;

    /// A spool file holding `bytes`, removed when the test's directory is.
    fn spooled(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("roomrec-upload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    async fn pending(blobs: &MemBlobs) -> Vec<(u64, u64)> {
        let prefix = pending_prefix("rec.mp4");
        let listed = blobs.list("b", &prefix).await.unwrap();
        listed.iter().map(|(key, size)| (parse_pending(&prefix, key).unwrap().0, *size)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn mp4_bytes_not_yet_in_a_part_are_in_storage_within_seconds_and_gone_once_finished() {
        let blobs = Arc::new(MemBlobs::default());
        let file: Vec<u8> = (0..MIN_PART_SIZE_BYTES + 3_000).map(|i| (i % 251) as u8).collect();
        let path = spooled("pending.mp4", &file);
        let mut stream = Mp4Stream::new(blobs.clone(), "b".into(), "rec.mp4".into());

        assert!(stream.progress(&path, 1_000, Duration::from_secs(1)).await.unwrap(), "the upload opens at once");
        assert!(!stream.progress(&path, 1_000, Duration::from_secs(1)).await.unwrap());
        assert_eq!(pending(&blobs).await, [(0, 1_000)], "the first bytes are stored");
        // Within the interval nothing more is sent; after it, the new bytes are.
        stream.progress(&path, 2_000, Duration::from_secs(2)).await.unwrap();
        assert_eq!(pending(&blobs).await, [(0, 1_000)]);
        tokio::time::advance(PENDING_INTERVAL).await;
        stream.progress(&path, 2_000, Duration::from_secs(3)).await.unwrap();
        assert_eq!(pending(&blobs).await, [(0, 1_000), (1_000, 1_000)]);

        // A part takes everything so far; the pending objects it holds go with the next send,
        // in one call.
        let part_end = MIN_PART_SIZE_BYTES + 2_000;
        assert!(stream.progress(&path, part_end, Duration::from_secs(40)).await.unwrap(), "a part was sent");
        tokio::time::advance(PENDING_INTERVAL).await;
        stream.progress(&path, part_end + 500, Duration::from_secs(42)).await.unwrap();
        assert_eq!(pending(&blobs).await, [(part_end, 500)]);
        assert_eq!(blobs.deletes(), 1, "two pending objects, one delete");

        let size = stream.finish(&path, file.len() as u64).await.unwrap();
        assert_eq!(size, file.len() as u64);
        assert_eq!(blobs.object("b", "rec.mp4"), Some(file), "the object is the whole file");
        assert!(pending(&blobs).await.is_empty(), "no pending object is left behind");
        assert_eq!(blobs.deletes(), 2);
        assert_eq!(blobs.open_uploads(), 0);
    }

    #[tokio::test]
    async fn a_playlist_replaced_by_another_worker_is_never_overwritten() {
        let blobs = Arc::new(MemBlobs::default());
        let mut hls = HlsUpload::new(blobs.clone(), "b".into(), "rec.m3u8".into());
        let segment = spooled("seg0.ts", b"ts");
        hls.segment(&segment, "rec_000000.ts", "rec_000000.ts".into(), Duration::from_secs(2), false).await.unwrap();
        // Retrying our own write (its answer was lost) is not a conflict.
        let ours = blobs.get("b", "rec.m3u8").await.unwrap().unwrap();
        blobs
            .put("b", "rec.m3u8", ours.body.clone().into(), PLAYLIST_TYPE, IfStored::Matches(ours.etag.clone()))
            .await
            .unwrap();
        hls.put_playlist(false).await.unwrap();

        // The worker that took the job over closes the playlist.
        let current = blobs.get("b", "rec.m3u8").await.unwrap().unwrap();
        let closed = [current.body, b"#EXT-X-ENDLIST\n".to_vec()].concat();
        blobs
            .put("b", "rec.m3u8", closed.clone().into(), PLAYLIST_TYPE, IfStored::Matches(current.etag))
            .await
            .unwrap();
        let segment = spooled("seg1.ts", b"ts");
        let late = hls.segment(&segment, "rec_000001.ts", "rec_000001.ts".into(), Duration::from_secs(2), false).await;
        assert!(matches!(late, Err(UploadError::Fenced)), "{late:?}");
        assert_eq!(blobs.object("b", "rec.m3u8"), Some(closed), "the closed playlist stands");
    }

    #[test]
    fn playlists_list_segments_with_discontinuities_and_end_when_done() {
        let entries = vec![
            PlaylistEntry { uri: "a_000000.ts".into(), duration: Duration::from_millis(4000), discontinuity: false },
            PlaylistEntry { uri: "a_000001.ts".into(), duration: Duration::from_millis(4480), discontinuity: true },
        ];
        let live = playlist(&entries, false);
        assert!(live.contains("#EXT-X-TARGETDURATION:5\n"));
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(live.contains("#EXT-X-DISCONTINUITY\n#EXTINF:4.480,\na_000001.ts\n"));
        assert!(!live.contains("ENDLIST"));
        assert!(playlist(&entries, true).ends_with("#EXT-X-ENDLIST\n"));
    }
}
