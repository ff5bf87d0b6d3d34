//! Preflight probes: a message on the jobs queue naming a preflight whose room's streams a
//! worker opens, as a recording would, to tell whether they are reachable and their codecs
//! recordable; what it finds is written into the preflight's item, which the API reads.

use std::time::Duration;

use roomrec_domain::ids::UserId;
use roomrec_domain::ports::{JobMessage, StoreError};
use roomrec_domain::preflight::{AudioFacts, PreflightRecord, ProbeFailure, ProbeMessage, StreamFacts, VideoFacts};
use roomrec_media::{InputSpec, ProbeError, Probed};
use serde::Deserialize;

use crate::context::Ctx;

/// How long a probe's read may make no progress; with the open's probe budget (3 s), a
/// stream answers or fails within 5 s, inside the preflight's 8 s wait.
const PROBE_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What the jobs queue carries: a job's wake-up or a preflight's probe.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum QueueMessage {
    Probe(ProbeMessage),
    Job(JobMessage),
}

/// Probes the streams of the preflight `message` names and writes the results into its item;
/// a preflight already probed (a second delivery) or gone is left alone.
pub async fn run(ctx: &Ctx, message: &ProbeMessage) -> Result<(), StoreError> {
    let preflights = ctx.preflights.as_ref();
    let Some(record) = preflights.get_preflight(&message.app_id, &message.preflight_id).await? else {
        tracing::info!(preflight_id = %message.preflight_id, "the preflight to probe is gone");
        return Ok(());
    };
    if !record.pending() {
        return Ok(());
    }
    let probes = record.streams().iter().cloned().map(|stream| probe_stream(ctx, &record, stream));
    let streams = futures::future::join_all(probes).await;
    let written = preflights.update_preflight(&record.probed(streams)).await?;
    tracing::info!(preflight_id = %message.preflight_id, written, "preflight streams probed");
    Ok(())
}

/// One stream of the roster, probed where the roster says it publishes now.
async fn probe_stream(ctx: &Ctx, record: &PreflightRecord, stream: StreamFacts) -> StreamFacts {
    let (Some(room), Some(user)) = (record.view.room_id.as_ref(), UserId::try_from(stream.user_id.as_str()).ok())
    else {
        return stream.probed_failed(ProbeFailure::Gone, None, None);
    };
    let listed = ctx.store.get_stream(&record.view.app_id, room, &user, stream.video_type).await;
    let url = match listed {
        Ok(Some(listed)) => listed.url.as_str().to_owned(),
        Ok(None) => return stream.probed_failed(ProbeFailure::Gone, None, None),
        Err(err) => {
            tracing::warn!(error = %roomrec_domain::error::error_chain(&err), "reading a probed stream failed");
            return stream.probed_failed(ProbeFailure::Gone, None, None);
        }
    };
    let input = InputSpec { io_timeout: PROBE_IO_TIMEOUT, retry_interval: PROBE_IO_TIMEOUT, ..ctx.stream_input(url) };
    // Media code is synchronous: on a blocking thread of its own, as a recorder's is.
    let probed = tokio::task::spawn_blocking(move || roomrec_media::probe(&input)).await;
    match probed {
        Ok(Ok(probed)) => judged(stream, probed),
        Ok(Err(err)) => {
            tracing::info!(error = %err, user_id = %stream.user_id, "a preflight stream did not open");
            let failure = match err {
                ProbeError::Refused(_) | ProbeError::SchemeNotAllowed => ProbeFailure::Refused,
                ProbeError::Unreachable(_) => ProbeFailure::Unreachable,
            };
            stream.probed_failed(failure, None, None)
        }
        Err(_) => stream.probed_failed(ProbeFailure::Unreachable, None, None),
    }
}

/// The stream as `probed` found it: ok when every track it carries can be recorded.
fn judged(stream: StreamFacts, probed: Probed) -> StreamFacts {
    let recordable = probed.video.iter().all(|v| v.recordable) && probed.audio.iter().all(|a| a.recordable);
    let video = probed.video.map(|v| VideoFacts { codec: v.codec, width: v.width, height: v.height, fps: v.fps });
    let audio = probed.audio.map(|a| AudioFacts { codec: a.codec, sample_rate: a.sample_rate, channels: a.channels });
    match (video.is_some() || audio.is_some(), recordable) {
        (false, _) => stream.probed_failed(ProbeFailure::NoMedia, None, None),
        (true, false) => stream.probed_failed(ProbeFailure::CodecNotRecordable, video, audio),
        (true, true) => stream.probed_ok(video, audio),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomrec_domain::room::VideoType;
    use roomrec_media::{ProbedAudio, ProbedVideo};

    fn listed() -> StreamFacts {
        StreamFacts::listed("u1".into(), VideoType::Camerastream, true, true)
    }

    fn video(codec: &str, recordable: bool) -> Option<ProbedVideo> {
        Some(ProbedVideo { codec: codec.into(), width: 640, height: 360, fps: 30.0, recordable })
    }

    #[test]
    fn a_job_message_and_a_probe_message_are_told_apart() {
        let job = r#"{"app_id":"a1b2c3d4e5f6a7b8c9d0e1f2","job_id":"0123456789abcdef0123456789abcdef"}"#;
        let probe = r#"{"app_id":"a1b2c3d4e5f6a7b8c9d0e1f2","preflight_id":"0123456789abcdef0123456789abcdef"}"#;
        assert!(matches!(serde_json::from_str(job), Ok(QueueMessage::Job(_))));
        assert!(matches!(serde_json::from_str(probe), Ok(QueueMessage::Probe(_))));
    }

    #[test]
    fn a_stream_with_a_codec_nothing_decodes_fails_and_keeps_what_was_read() {
        let judged = judged(listed(), Probed { video: video("vp6", false), audio: None });
        assert_eq!(judged.reason.as_deref(), Some("CODEC_NOT_RECORDABLE"));
        assert_eq!(judged.video.map(|v| v.codec), Some("vp6".to_owned()));
    }

    #[test]
    fn a_stream_with_no_tracks_fails_and_a_recordable_one_is_ok() {
        assert_eq!(judged(listed(), Probed { video: None, audio: None }).reason.as_deref(), Some("STREAM_NO_MEDIA"));
        let audio = Some(ProbedAudio { codec: "opus".into(), sample_rate: 48000, channels: 2, recordable: true });
        let ok = judged(listed(), Probed { video: video("h264", true), audio });
        assert_eq!((ok.status, ok.reason), (Some(roomrec_domain::preflight::CheckStatus::Ok), None));
    }
}
