//! Streaming uploads of one recording file while it is recorded: HLS segments and a growing
//! playlist as whole objects, fragmented MP4 as a multipart upload whose every part ends on a
//! fragment boundary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roomrec_domain::ports::{Blobs, FilePart, StoreError};

/// S3's smallest part except the last: https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html
pub const MIN_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024;

/// Uploading failed, or the spool file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload to object storage failed")]
    Store(#[from] StoreError),
    #[error("reading the spooled file failed")]
    Spool(#[from] std::io::Error),
}

/// One HLS recording: the segments uploaded so far and the playlist that lists them.
pub struct HlsUpload {
    blobs: Arc<dyn Blobs>,
    bucket: String,
    playlist_key: String,
    entries: Vec<PlaylistEntry>,
    /// Bytes of every segment uploaded, the file's size as reported to the customer.
    pub bytes: u64,
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
        Self { blobs, bucket, playlist_key, entries: Vec::new(), bytes: 0 }
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
        self.blobs.put(&self.bucket, key, body, "video/mp2t").await?;
        tokio::fs::remove_file(path).await?;
        self.entries.push(PlaylistEntry { uri, duration, discontinuity });
        self.put_playlist(false).await
    }

    /// Writes the final playlist (`#EXT-X-ENDLIST`).
    pub async fn finish(&mut self) -> Result<(), UploadError> {
        self.put_playlist(true).await
    }

    async fn put_playlist(&self, ended: bool) -> Result<(), UploadError> {
        let text = playlist(&self.entries, ended);
        self.blobs.put(&self.bucket, &self.playlist_key, text.into_bytes(), "application/vnd.apple.mpegurl").await?;
        Ok(())
    }
}

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
    /// Nothing sent yet; the multipart upload starts with the first part.
    Idle,
    /// Parts are being sent; `uploaded` bytes of the file are in S3 as parts.
    InProgress { upload_id: String, etags: Vec<String>, uploaded: u64 },
    /// The object is complete; `size` bytes.
    Completed { size: u64 },
}

/// Drives one [`Mp4Upload`] for the file at `key`.
pub struct Mp4Stream {
    blobs: Arc<dyn Blobs>,
    bucket: String,
    key: String,
    pub state: Mp4Upload,
}

impl Mp4Stream {
    /// A new upload of the file to `bucket`/`key`.
    pub fn new(blobs: Arc<dyn Blobs>, bucket: String, key: String) -> Self {
        Self { blobs, bucket, key, state: Mp4Upload::Idle }
    }

    fn uploaded(&self) -> u64 {
        match &self.state {
            Mp4Upload::InProgress { uploaded, .. } => *uploaded,
            Mp4Upload::Completed { size } => *size,
            Mp4Upload::Idle => 0,
        }
    }

    /// The file at `path` is final up to `ready` bytes (a fragment boundary): sends a part
    /// once at least [`MIN_PART_SIZE_BYTES`] are waiting. `true` when a part was sent.
    pub async fn progress(&mut self, path: &Path, ready: u64) -> Result<bool, UploadError> {
        if ready.saturating_sub(self.uploaded()) < MIN_PART_SIZE_BYTES {
            return Ok(false);
        }
        self.send_part(path, ready).await?;
        Ok(true)
    }

    /// The multipart upload under way and the bytes it holds, once a part was sent.
    pub fn multipart(&self) -> Option<(roomrec_domain::record::Multipart, u64)> {
        match &self.state {
            Mp4Upload::InProgress { upload_id, etags, uploaded } => Some((
                roomrec_domain::record::Multipart { upload_id: upload_id.clone(), etags: etags.clone() },
                *uploaded,
            )),
            _ => None,
        }
    }

    /// The file is complete at `size` bytes: sends the rest and completes the object.
    pub async fn finish(&mut self, path: &Path, size: u64) -> Result<u64, UploadError> {
        if size > self.uploaded() || matches!(self.state, Mp4Upload::Idle) {
            self.send_part(path, size).await?;
        }
        if let Mp4Upload::InProgress { upload_id, etags, uploaded } = &self.state {
            self.blobs.complete_multipart(&self.bucket, &self.key, upload_id, etags).await?;
            self.state = Mp4Upload::Completed { size: *uploaded };
        }
        tokio::fs::remove_file(path).await?;
        Ok(self.uploaded())
    }

    async fn send_part(&mut self, path: &Path, to: u64) -> Result<(), UploadError> {
        if matches!(self.state, Mp4Upload::Idle) {
            let upload_id = self.blobs.start_multipart(&self.bucket, &self.key, "video/mp4").await?;
            self.state = Mp4Upload::InProgress { upload_id, etags: Vec::new(), uploaded: 0 };
        }
        let Mp4Upload::InProgress { upload_id, etags, uploaded } = &mut self.state else { return Ok(()) };
        let part = FilePart { path, offset: *uploaded, length: to - *uploaded };
        let number = i32::try_from(etags.len() + 1).unwrap_or(i32::MAX);
        let etag = self.blobs.upload_part(&self.bucket, &self.key, upload_id, number, part).await?;
        etags.push(etag);
        *uploaded = to;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
