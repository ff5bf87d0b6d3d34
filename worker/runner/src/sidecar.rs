//! A file's timeline sidecar stored beside it: `<file>.timeline.json` and, for a mix,
//! `<file>.speakers.vtt` (format in the README, "Timeline sidecar"). Written once, when the
//! file completes; a sidecar that cannot be stored is logged and left out of the file's
//! completion, never a reason to fail the recording.

use roomrec_domain::error::error_chain;
use roomrec_domain::ports::{Blobs, IfStored};
use roomrec_media::FileTimeline;

const JSON_TYPE: &str = "application/json";
const VTT_TYPE: &str = "text/vtt";

/// The key of the timeline of the file at `key`.
pub fn timeline_key(key: &str) -> String {
    format!("{key}.timeline.json")
}

/// The key of the speaker track of the mix file at `key`.
pub fn speakers_key(key: &str) -> String {
    format!("{key}.speakers.vtt")
}

/// Stores `timeline` beside the file at `bucket`/`key` (with the speaker track when `mix`);
/// the timeline's key, or `None` when it could not be stored.
pub async fn store(blobs: &dyn Blobs, bucket: &str, key: &str, timeline: &FileTimeline, mix: bool) -> Option<String> {
    let json_key = timeline_key(key);
    let json = timeline.json(key);
    if let Err(err) = blobs.put(bucket, &json_key, json.into(), JSON_TYPE, IfStored::Any).await {
        tracing::warn!(key = json_key, error = %error_chain(&err), "the file's timeline could not be stored");
        return None;
    }
    if mix {
        let vtt_key = speakers_key(key);
        let vtt = timeline.speakers_vtt();
        if let Err(err) = blobs.put(bucket, &vtt_key, vtt.into(), VTT_TYPE, IfStored::Any).await {
            tracing::warn!(key = vtt_key, error = %error_chain(&err), "the file's speaker track could not be stored");
        }
    }
    Some(json_key)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use roomrec_domain::testing::MemBlobs;
    use roomrec_media::Mark;

    use super::*;

    fn timeline() -> FileTimeline {
        FileTimeline {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_secs(4),
            entries: vec![(Duration::from_secs(1), Mark::Speaker(Some("a".into())))],
        }
    }

    #[tokio::test]
    async fn a_mix_files_timeline_and_speaker_track_are_stored_beside_it() {
        let blobs = MemBlobs::default();
        let stored = store(&blobs, "b", "app/m.mp4", &timeline(), true).await;
        assert_eq!(stored.as_deref(), Some("app/m.mp4.timeline.json"));
        let json: serde_json::Value =
            serde_json::from_slice(&blobs.object("b", "app/m.mp4.timeline.json").unwrap()).unwrap();
        assert_eq!(json["object"], "app/m.mp4");
        assert_eq!(json["entries"][0]["user_id"], "a");
        let vtt = String::from_utf8(blobs.object("b", "app/m.mp4.speakers.vtt").unwrap()).unwrap();
        assert!(vtt.starts_with("WEBVTT\n") && vtt.contains("00:00:01.000 --> 00:00:04.000\na\n"), "{vtt}");
    }

    #[tokio::test]
    async fn an_individual_file_gets_no_speaker_track() {
        let blobs = MemBlobs::default();
        assert!(store(&blobs, "b", "app/s.m3u8", &timeline(), false).await.is_some());
        assert!(blobs.object("b", "app/s.m3u8.speakers.vtt").is_none());
    }
}
