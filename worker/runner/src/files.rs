//! The files of one recording as the recorder reports them: each is uploaded while it
//! grows, announced when it starts, and added to the job with a completion event when it ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use roomrec_domain::callback::EventType;
use roomrec_domain::event::FileFacts;
use roomrec_domain::job::{JobSpec, RecordFile};
use roomrec_domain::metric::Metric;
use roomrec_domain::naming::{file_keys, FileKeys};
use roomrec_domain::quality::QualityReport;
use roomrec_domain::record::{JobRecord, Lease, OpenUpload, Progress};
use roomrec_domain::rule::{RecordFormat, RecordRule};
use roomrec_domain::time::Timestamp;
use roomrec_media::{Format, Output};

use crate::context::{Ctx, JobWriteError};
use crate::spool::Backlog;
use crate::storage::JobStorage;
use crate::upload::{HlsUpload, Mp4Stream};

/// Open files by format and index.
type FileMap<T> = HashMap<(RecordFormat, u32), T>;

/// The format of a media output, as the rule names it.
fn record_format(format: Format) -> RecordFormat {
    match format {
        Format::Hls => RecordFormat::Hls,
        Format::Mp4 => RecordFormat::Mp4,
    }
}

/// A file being recorded.
struct OpenFile {
    keys: FileKeys,
    started: DateTime<Utc>,
    width: u32,
    height: u32,
    upload: Upload,
    /// Where the file's timeline sidecar was last stored.
    timeline_object: Option<String>,
    /// What the recorder measured, told just before the file closes.
    quality: Option<QualityReport>,
}

enum Upload {
    Hls(HlsUpload),
    Mp4(Mp4Stream, std::path::PathBuf, u64),
}

/// Every open file of one recording.
pub struct OpenFiles {
    rule: RecordRule,
    /// Where the files go: the rule's storage, reached.
    storage: JobStorage,
    stream_url: String,
    open: FileMap<OpenFile>,
    /// What the recording holds on the spool, not uploaded yet.
    pub backlog: Arc<Backlog>,
}

fn utc(time: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(time)
}

impl OpenFiles {
    /// No files yet, for a recording under `rule` into `storage` of the stream at
    /// `stream_url`, which may hold `spool_budget` bytes on the spool not uploaded yet.
    pub fn new(rule: RecordRule, storage: JobStorage, stream_url: String, spool_budget: u64) -> Self {
        let backlog = Arc::new(Backlog::new(spool_budget));
        Self { rule, storage, stream_url, open: FileMap::new(), backlog }
    }

    /// What the open HLS files hold in storage now, for the job's view of them (its
    /// `recording_files`): written with the lease renewals, not a job write per segment.
    pub fn progress(&self) -> Vec<Progress> {
        let hls = self.open.values().filter_map(|open| match &open.upload {
            Upload::Hls(hls) => Some((open.keys.main(RecordFormat::Hls), hls)),
            Upload::Mp4(..) => None,
        });
        hls.map(|(key, hls)| Progress { key, bytes: hls.bytes, duration: hls.duration.as_secs_f64() }).collect()
    }

    fn facts(&self, ctx: &Ctx, file: &OpenFile, format: RecordFormat) -> FileFacts {
        let bucket = &self.storage.storage.bucket;
        let region = &self.rule.obs_addr.location;
        let key = file.keys.main(format);
        FileFacts {
            download_url: None,
            file_size: None,
            record_duration: None,
            start_time: Timestamp::from(file.started),
            end_time: None,
            width: file.width,
            height: file.height,
            obs_location: ctx.location(region),
            obs_bucket: bucket.clone(),
            obs_object: key,
            timeline_object: None,
            quality: None,
        }
    }

    /// Acts on one recorder output; job writes are made under the claim `held`.
    pub async fn handle(&mut self, ctx: &Ctx, job: &mut JobRecord, held: &Lease, output: Output) -> anyhow::Result<()> {
        let (bucket, blobs) = (self.storage.storage.bucket.clone(), &self.storage.blobs);
        match output {
            Output::FileOpened { format, file, started_at, width, height } => {
                let format = record_format(format);
                let started = utc(started_at);
                let keys = file_keys(job, &self.rule, format, started, &self.stream_url);
                let upload = match format {
                    RecordFormat::Hls => Upload::Hls(HlsUpload::new(blobs.clone(), bucket, keys.main(format))),
                    RecordFormat::Mp4 => {
                        Upload::Mp4(Mp4Stream::new(blobs.clone(), bucket, keys.main(format)), Default::default(), 0)
                    }
                };
                tracing::info!(key = keys.main(format), "file started");
                let opened = OpenFile { keys, started, width, height, upload, timeline_object: None, quality: None };
                let facts = self.facts(ctx, &opened, format);
                let tracked = OpenUpload {
                    record_format: format,
                    bucket: facts.obs_bucket.clone(),
                    key: facts.obs_object.clone(),
                    start_time: facts.start_time,
                    width,
                    height,
                    multipart: None,
                    bytes: 0,
                    duration: 0.0,
                    epoch: held.epoch,
                    handed_over_until_ms: None,
                };
                self.open.insert((format, file), opened);
                *job = ctx
                    .update(job, held, |j| {
                        j.open_upload(&tracked);
                        Ok(())
                    })
                    .await?;
                ctx.emit(&job.job, EventType::RecordNewFileStart, Some(format), Some(facts), "file started".into())
                    .await?;
            }
            Output::Segment { file, seq, path, duration, discontinuity } => {
                let open = self
                    .open
                    .get_mut(&(RecordFormat::Hls, file))
                    .ok_or_else(|| anyhow::anyhow!("segment of an unknown file"))?;
                let (key, uri) = (open.keys.segment(seq), open.keys.segment_uri(seq));
                // The job learns the file's new size and length with its next lease renewal
                // (see `progress`): a takeover reads them from the playlist and the segments.
                if let Upload::Hls(hls) = &mut open.upload {
                    let before = hls.bytes;
                    hls.segment(&path, &key, uri, duration, discontinuity).await?;
                    self.backlog.uploaded(hls.bytes - before);
                }
            }
            Output::Mp4Progress { file, path, bytes } => {
                let open = self
                    .open
                    .get_mut(&(RecordFormat::Mp4, file))
                    .ok_or_else(|| anyhow::anyhow!("MP4 data of an unknown file"))?;
                if let Upload::Mp4(stream, spool, size) = &mut open.upload {
                    let elapsed = (ctx.clock.now() - open.started).to_std().unwrap_or_default();
                    let changed = stream.progress(&path, bytes, elapsed).await?;
                    self.backlog.uploaded(bytes.saturating_sub(*size));
                    (*spool, *size) = (path, bytes);
                    if let (true, Some((multipart, uploaded))) = (changed, stream.multipart()) {
                        // What a worker taking over would complete: the parts in S3 so far
                        // (and the pending objects after them).
                        *job = track(ctx, job, held, &open.keys.main(RecordFormat::Mp4), |u| {
                            u.multipart = Some(multipart.clone());
                            u.bytes = uploaded;
                            u.duration = if uploaded == 0 { 0.0 } else { elapsed.as_secs_f64() };
                        })
                        .await?;
                    }
                }
            }
            Output::Timeline { format, file, timeline } => {
                let format = record_format(format);
                if let Some(open) = self.open.get_mut(&(format, file)) {
                    // Stored again each time: the last one, just before the file closes, is complete.
                    let (key, mix) = (open.keys.main(format), matches!(job.job.spec, JobSpec::Mix { .. }));
                    let stored = crate::sidecar::store(blobs.as_ref(), &bucket, &key, &timeline, mix).await;
                    open.timeline_object = stored.or(open.timeline_object.take());
                }
            }
            Output::FileClosed { format, file, duration, ended_at } => {
                let format = record_format(format);
                let Some(mut open) = self.open.remove(&(format, file)) else { return Ok(()) };
                let size = match &mut open.upload {
                    Upload::Hls(hls) => {
                        hls.finish().await?;
                        hls.bytes
                    }
                    Upload::Mp4(stream, spool, size) => stream.finish(spool, *size).await?,
                };
                self.complete(ctx, job, held, format, open, size, duration, utc(ended_at)).await?;
            }
            Output::FileQuality { format, file, quality } => {
                if let Some(open) = self.open.get_mut(&(record_format(format), file)) {
                    open.quality = Some(crate::quality::report(&quality));
                }
            }
            Output::Alive | Output::Waiting { .. } | Output::Spent { .. } | Output::Finished => {}
            // The job task reports these (events); the files stay as they are.
            Output::Paused { .. } | Output::Resumed { .. } => {}
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn complete(
        &self,
        ctx: &Ctx,
        job: &mut JobRecord,
        held: &Lease,
        format: RecordFormat,
        open: OpenFile,
        size: u64,
        duration: Duration,
        ended: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut facts = self.facts(ctx, &open, format);
        facts.download_url = Some(ctx.download_url(&facts.obs_bucket, &self.rule.obs_addr.location, &facts.obs_object));
        facts.file_size = Some(size);
        facts.record_duration = Some(duration.as_secs_f64().round() as u64);
        facts.end_time = Some(Timestamp::from(ended));
        facts.timeline_object = open.timeline_object.clone();
        facts.quality = open.quality.clone();
        let record = RecordFile {
            record_format: format,
            obs_bucket: facts.obs_bucket.clone(),
            obs_object: facts.obs_object.clone(),
            file_size: size,
            record_duration: duration.as_secs_f64(),
            start_time: facts.start_time,
            end_time: Timestamp::from(ended),
            download_url: None,
            timeline_object: facts.timeline_object.clone(),
            timeline_url: None,
            quality: open.quality,
        };
        let updated = ctx
            .update_upload(job, held, &record.obs_object, |j| {
                j.close_upload(&record.obs_object, Some(&record));
                Ok(())
            })
            .await?;
        *job = updated;
        ctx.metrics.record(Metric::Recorded { job_id: job.job.job_id.clone(), format, duration });
        ctx.emit(&job.job, EventType::RecordFileComplete, Some(format), Some(facts), "file complete".into()).await?;
        Ok(())
    }
}

/// Updates the job's record of the open upload at `key`.
async fn track(
    ctx: &Ctx,
    job: &JobRecord,
    held: &Lease,
    key: &str,
    change: impl Fn(&mut OpenUpload) + Send + Sync,
) -> Result<JobRecord, JobWriteError> {
    ctx.update_upload(job, held, key, |j| {
        j.open_uploads.iter_mut().filter(|u| u.key == key).for_each(&change);
        Ok(())
    })
    .await
}
