//! Taking over a job whose worker died: the files it left open are finished from what is
//! already in storage, so nothing uploaded is lost, then recording continues in new files.

use roomrec_domain::callback::EventType;
use roomrec_domain::event::FileFacts;
use roomrec_domain::job::RecordFile;
use roomrec_domain::record::{JobRecord, OpenUpload};
use roomrec_domain::rule::RecordFormat;

use crate::context::Ctx;

/// Finishes every upload the previous worker left open and reports each as complete.
pub async fn finish_abandoned(ctx: &Ctx, job: &mut JobRecord, region: &str) -> anyhow::Result<()> {
    for upload in job.open_uploads.clone() {
        let finished = match finish(ctx, &upload).await {
            Ok(finished) => finished,
            Err(err) => {
                tracing::warn!(job_id = %job.job.job_id, key = upload.key, error = %err, "an abandoned file could not be finished");
                false
            }
        };
        let now = ctx.clock.timestamp();
        let record = RecordFile {
            record_format: upload.record_format,
            obs_bucket: upload.bucket.clone(),
            obs_object: upload.key.clone(),
            file_size: upload.bytes,
            record_duration: upload.duration,
            start_time: upload.start_time,
            end_time: now,
        };
        *job = ctx
            .update_stored(&job.job.app_id, &job.job.job_id, |j| {
                j.open_uploads.retain(|u| u.key != upload.key);
                if finished {
                    j.job.record_files.get_or_insert_with(Vec::new).push(record.clone());
                }
                Ok(())
            })
            .await?;
        if finished {
            let facts = FileFacts {
                download_url: Some(ctx.download_url(&upload.bucket, region, &upload.key)),
                file_size: Some(upload.bytes),
                record_duration: Some(upload.duration.round() as u64),
                start_time: upload.start_time,
                end_time: Some(now),
                width: upload.width,
                height: upload.height,
                obs_location: ctx.location(region),
                obs_bucket: upload.bucket.clone(),
                obs_object: upload.key.clone(),
            };
            let detail = "file completed by the worker that took the job over".to_owned();
            ctx.emit(&job.job, EventType::RecordFileComplete, Some(upload.record_format), Some(facts), detail).await?;
        }
    }
    Ok(())
}

/// Makes the stored part of `upload` a complete object; `false` when nothing was stored.
async fn finish(ctx: &Ctx, upload: &OpenUpload) -> anyhow::Result<bool> {
    match (upload.record_format, &upload.multipart) {
        (RecordFormat::Mp4, Some(multipart)) if !multipart.etags.is_empty() => {
            ctx.blobs.complete_multipart(&upload.bucket, &upload.key, &multipart.upload_id, &multipart.etags).await?;
            Ok(true)
        }
        (RecordFormat::Mp4, _) => Ok(false),
        (RecordFormat::Hls, _) => {
            let Ok(playlist) = ctx.blobs.get(&upload.bucket, &upload.key).await else { return Ok(false) };
            let mut text = String::from_utf8(playlist)?;
            if !text.contains("#EXT-X-ENDLIST") {
                text = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD");
                text.push_str("#EXT-X-ENDLIST\n");
                ctx.blobs.put(&upload.bucket, &upload.key, text.into_bytes(), "application/vnd.apple.mpegurl").await?;
            }
            Ok(true)
        }
    }
}
