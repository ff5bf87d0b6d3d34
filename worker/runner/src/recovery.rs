//! Files left open, finished from what is already in storage so nothing uploaded is lost: a
//! dead worker's (the worker taking its job over finishes them, then records new files), or a
//! failed recording's.

use std::collections::HashSet;
use std::time::Duration;

use roomrec_domain::callback::EventType;
use roomrec_domain::download::playlist_segments;
use roomrec_domain::event::FileFacts;
use roomrec_domain::job::RecordFile;
use roomrec_domain::metric::Metric;
use roomrec_domain::ports::{Blobs, FilePart, IfStored};
use roomrec_domain::record::{JobRecord, Lease, Multipart, OpenUpload};
use roomrec_domain::rule::RecordFormat;

use crate::context::Ctx;
use crate::sidecar::timeline_key;
use crate::upload::{parse_pending, pending_prefix, PLAYLIST_TYPE};

/// Why files are finished from what is in storage, as their completion events say.
pub const TAKEN_OVER: &str = "file completed by the worker that took the job over";
pub const RECORDING_FAILED: &str = "file completed from what was uploaded before the recording failed";

/// Finishes the uploads left open that `which` picks (a dead worker's, a failed
/// recording's), as the claim `held`, and reports each as complete with `detail`: no
/// multipart upload is left incomplete.
pub async fn finish_abandoned(
    ctx: &Ctx,
    blobs: &dyn Blobs,
    job: &mut JobRecord,
    held: &Lease,
    which: impl Fn(&OpenUpload) -> bool,
    (region, detail): (&str, &str),
) -> anyhow::Result<()> {
    let abandoned: Vec<OpenUpload> = job.open_uploads.iter().filter(|u| which(u)).cloned().collect();
    for upload in abandoned {
        let finished = match finish(ctx, blobs, &upload).await {
            Ok(finished) => finished,
            Err(err) => {
                tracing::warn!(job_id = %job.job.job_id, key = upload.key, error = %format!("{err:#}"), "an abandoned file could not be finished");
                None
            }
        };
        let now = ctx.clock.timestamp();
        let timeline = match finished {
            Some(_) => stored_timeline(blobs, &upload).await,
            None => None,
        };
        let record = finished.map(|(bytes, duration)| RecordFile {
            record_format: upload.record_format,
            obs_bucket: upload.bucket.clone(),
            obs_object: upload.key.clone(),
            file_size: bytes,
            record_duration: duration,
            start_time: upload.start_time,
            end_time: now,
            download_url: None,
            timeline_object: timeline.clone(),
            timeline_url: None,
            quality: None,
        });
        *job = ctx
            .update(job, held, |j| {
                j.close_upload(&upload.key, record.as_ref());
                Ok(())
            })
            .await?;
        if let Some(record) = record {
            let duration = Duration::try_from_secs_f64(record.record_duration).unwrap_or_default();
            let job_id = job.job.job_id.clone();
            ctx.metrics.record(Metric::Recorded { job_id, format: upload.record_format, duration });
            let facts = FileFacts {
                download_url: Some(ctx.download_url(&upload.bucket, region, &upload.key)),
                file_size: Some(record.file_size),
                record_duration: Some(record.record_duration.round() as u64),
                start_time: upload.start_time,
                end_time: Some(now),
                width: upload.width,
                height: upload.height,
                obs_location: ctx.location(region),
                obs_bucket: upload.bucket.clone(),
                obs_object: upload.key.clone(),
                timeline_object: record.timeline_object.clone(),
                quality: None,
            };
            let (format, detail) = (Some(upload.record_format), detail.to_owned());
            ctx.emit(&job.job, EventType::RecordFileComplete, format, Some(facts), detail).await?;
        }
    }
    Ok(())
}

/// The key of the timeline sidecar `upload`'s worker last stored (10 s of media after a mark
/// was made), if any: complete up to then; what came after was in that worker's memory.
async fn stored_timeline(blobs: &dyn Blobs, upload: &OpenUpload) -> Option<String> {
    let key = timeline_key(&upload.key);
    match blobs.size(&upload.bucket, &key).await {
        Ok(Some(_)) => Some(key),
        Ok(None) => None,
        Err(err) => {
            tracing::warn!(key, error = %err, "cannot tell whether the file's timeline is stored");
            None
        }
    }
}

/// Makes what is stored of `upload` a complete object: its bytes and seconds, or `None` when
/// nothing was stored.
async fn finish(ctx: &Ctx, blobs: &dyn Blobs, upload: &OpenUpload) -> anyhow::Result<Option<(u64, f64)>> {
    match (upload.record_format, &upload.multipart) {
        (RecordFormat::Mp4, Some(multipart)) => finish_mp4(ctx, blobs, upload, multipart).await,
        (RecordFormat::Mp4, None) => Ok(None),
        (RecordFormat::Hls, _) => {
            let Some(playlist) = blobs.get(&upload.bucket, &upload.key).await? else { return Ok(None) };
            let mut text = String::from_utf8(playlist.body)?;
            if !text.contains("#EXT-X-ENDLIST") {
                text = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD");
                text.push_str("#EXT-X-ENDLIST\n");
                // Over the dead worker's last write only: if it wakes up, its next write fails.
                let when = IfStored::Matches(playlist.etag);
                blobs.put(&upload.bucket, &upload.key, text.clone().into(), PLAYLIST_TYPE, when).await?;
            }
            Ok(Some(stored_hls(blobs, upload, &text).await?))
        }
    }
}

/// The bytes and seconds of the HLS file whose playlist is `text`, as stored: its segments'
/// sizes and its `#EXTINF` durations. The job's figures are only as new as its worker's last
/// lease renewal.
async fn stored_hls(blobs: &dyn Blobs, upload: &OpenUpload, text: &str) -> anyhow::Result<(u64, f64)> {
    let extinf = |line: &str| line.strip_prefix("#EXTINF:")?.split(',').next()?.trim().parse::<f64>().ok();
    let duration = text.lines().filter_map(extinf).sum();
    let segments: HashSet<String> = playlist_segments(&upload.key, text).into_iter().collect();
    // One listing (a page per thousand segments) under the prefix the segments share.
    let Some(first) = segments.iter().next() else { return Ok((0, duration)) };
    let shared = segments.iter().fold(first.len(), |n, key| common_prefix(&first[..n], key));
    let listed = blobs.list(&upload.bucket, &first[..shared]).await?;
    let bytes = listed.iter().filter(|(key, _)| segments.contains(key)).map(|(_, size)| size).sum();
    Ok((bytes, duration))
}

/// The length in bytes of the prefix `a` and `b` share, on a character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices().zip(b.chars()).find(|((_, x), y)| x != y).map_or(a.len().min(b.len()), |((i, _), _)| i)
}

/// Completes the dead worker's multipart upload with its parts and, as the last part, the
/// pending objects that follow them, then deletes those.
async fn finish_mp4(
    ctx: &Ctx,
    blobs: &dyn Blobs,
    upload: &OpenUpload,
    multipart: &Multipart,
) -> anyhow::Result<Option<(u64, f64)>> {
    let (bucket, key) = (&upload.bucket, &upload.key);
    let prefix = pending_prefix(key);
    let mut pending: Vec<(u64, Duration, String)> = Vec::new();
    for (object, _) in blobs.list(bucket, &prefix).await? {
        pending.extend(parse_pending(&prefix, &object).map(|(offset, media)| (offset, media, object)));
    }
    pending.sort();
    let (mut end, mut seconds, mut tail) = (upload.bytes, upload.duration, Vec::new());
    for (offset, media, object) in &pending {
        if *offset != end {
            continue;
        }
        let Some(stored) = blobs.get(bucket, object).await? else { break };
        end += stored.body.len() as u64;
        seconds = seconds.max(media.as_secs_f64());
        tail.extend(stored.body);
    }
    let mut etags = multipart.etags.clone();
    if !tail.is_empty() {
        let spooled = ctx.config.spool_dir.join(format!("recovered-{}", ctx.random.hex(8)));
        tokio::fs::create_dir_all(&ctx.config.spool_dir).await?;
        tokio::fs::write(&spooled, &tail).await?;
        let part = FilePart { path: &spooled, offset: 0, length: tail.len() as u64 };
        let number = i32::try_from(etags.len() + 1)?;
        let sent = blobs.upload_part(bucket, key, &multipart.upload_id, number, part).await;
        tokio::fs::remove_file(&spooled).await.ok();
        etags.push(sent?);
    }
    if etags.is_empty() {
        blobs.abort_multipart(bucket, key, &multipart.upload_id).await?;
        return Ok(None);
    }
    blobs.complete_multipart(bucket, key, &multipart.upload_id, &etags).await?;
    let objects: Vec<String> = pending.into_iter().map(|(_, _, object)| object).collect();
    blobs.delete(bucket, &objects).await?;
    Ok(Some((end, seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomrec_domain::ports::IfStored;
    use roomrec_domain::testing::MemBlobs;
    use roomrec_domain::time::Timestamp;

    #[tokio::test]
    async fn a_dead_workers_hls_file_counts_the_bytes_and_seconds_its_playlist_lists() {
        let blobs = MemBlobs::default();
        let put =
            |key: &'static str, size: usize| blobs.put("b", key, vec![7; size].into(), "video/mp2t", IfStored::Any);
        put("rec/a_000000.ts", 1_000).await.unwrap();
        put("rec/a_000001.ts", 2_000).await.unwrap();
        // Uploaded after the playlist was last written (not in the file), and another file's.
        put("rec/a_000002.ts", 4_000).await.unwrap();
        put("rec/a_2_000000.ts", 8_000).await.unwrap();
        let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.000,\na_000000.ts\n#EXTINF:3.500,\na_000001.ts\n";
        // The job's figures, as of the worker's last lease renewal: one segment behind.
        let upload = OpenUpload {
            record_format: RecordFormat::Hls,
            bucket: "b".into(),
            key: "rec/a.m3u8".into(),
            start_time: Timestamp::from(chrono::Utc::now()),
            width: 640,
            height: 360,
            multipart: None,
            bytes: 1_000,
            duration: 4.0,
            epoch: 1,
            handed_over_until_ms: None,
        };
        assert_eq!(stored_hls(&blobs, &upload, playlist).await.unwrap(), (3_000, 7.5));
        let empty = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n";
        assert_eq!(stored_hls(&blobs, &upload, empty).await.unwrap(), (0, 0.0));
    }

    #[test]
    fn the_shared_prefix_ends_where_the_keys_differ_or_the_shorter_ends() {
        assert_eq!(common_prefix("rec/a_000001.ts", "rec/a_000010.ts"), "rec/a_0000".len());
        assert_eq!(common_prefix("rec/a", "rec/a_1"), 5);
        assert_eq!(common_prefix("é_1", "é_2"), "é_".len());
        assert_eq!(common_prefix("x", "y"), 0);
    }
}
