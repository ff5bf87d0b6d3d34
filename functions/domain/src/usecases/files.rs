//! A job's files as its owner fetches them: each completed file with a presigned
//! `download_url`, the files a running job records now, and an HLS playlist (live or
//! finished) with every segment presigned, for a browser to play.

use std::collections::HashMap;
use std::sync::Arc;

use crate::download::{file_access, playlist_segments, sign_playlist, DownloadLifetime};
use crate::error::{error_chain, StoreError, UseCaseError};
use crate::ids::AccountId;
use crate::job::{Job, JobKind, LiveFile};
use crate::ports::{BlobsProvider, Presigner, RuleStore};
use crate::rule::{RecordFormat, RecordRule};
use crate::storage::{Access, AccessError};

use super::access::OwnedApp;
use super::jobs::Jobs;

/// The ports [`Files`] works with.
#[derive(Clone)]
pub struct FilesPorts {
    pub jobs: Jobs,
    /// The job's rule says whose bucket its files are in.
    pub rules: Arc<dyn RuleStore>,
    pub presigner: Arc<dyn Presigner>,
    /// Reads playlists, as the deployment or as the tenant's role.
    pub blobs: Arc<dyn BlobsProvider>,
}

/// The job files use cases.
#[derive(Clone)]
pub struct Files {
    ports: FilesPorts,
    lifetime: DownloadLifetime,
}

impl Files {
    /// The job files use cases, signing URLs for [`DownloadLifetime::default`].
    pub fn new(ports: FilesPorts) -> Self {
        Self { ports, lifetime: DownloadLifetime::default() }
    }

    /// The same, signing URLs for `lifetime`.
    pub fn with_lifetime(self, lifetime: DownloadLifetime) -> Self {
        Self { lifetime, ..self }
    }

    /// One job of `kind` as its owner sees it: completed files with a `download_url`, and
    /// the files it records now (`recording_files`).
    pub async fn get(&self, app: &OwnedApp, kind: JobKind, job_id: &str) -> Result<Job, UseCaseError> {
        let record = self.ports.jobs.record(app.id(), kind, job_id).await?;
        let live: Vec<LiveFile> = record
            .open_uploads
            .iter()
            .map(|u| LiveFile {
                record_format: u.record_format,
                obs_bucket: u.bucket.clone(),
                obs_object: u.key.clone(),
                start_time: u.start_time,
                file_size: u.bytes,
                record_duration: u.duration,
            })
            .collect();
        let mut job = record.job;
        job.recording_files = (!live.is_empty()).then_some(live);
        Ok(self.signed(app, job).await)
    }

    /// `job` with a presigned `download_url` on each completed file.
    pub async fn signed(&self, app: &OwnedApp, mut job: Job) -> Job {
        let rule = self.rule(&job).await;
        self.sign(app.account(), rule.as_ref(), &mut job).await;
        job
    }

    /// Sets the `download_url` (and `timeline_url`) of `job`'s completed files, `rule` being
    /// the job's; a file that cannot be signed (its rule's role refused, say) keeps none, and
    /// is logged.
    pub(crate) async fn sign(&self, account: &AccountId, rule: Option<&RecordRule>, job: &mut Job) {
        let Some(files) = job.record_files.as_mut() else { return };
        let signing = files.iter().map(|f| async {
            let access = || file_access(rule, account, &job.app_id, &job.job_id, &f.obs_bucket, &f.obs_object);
            let timeline = async {
                match &f.timeline_object {
                    Some(key) => self.url(access(), &f.obs_bucket, key).await,
                    None => None,
                }
            };
            futures::join!(self.url(access(), &f.obs_bucket, &f.obs_object), timeline)
        });
        let urls = futures::future::join_all(signing).await;
        for (file, (url, timeline_url)) in files.iter_mut().zip(urls) {
            file.download_url = url;
            file.timeline_url = timeline_url;
        }
    }

    /// A URL of `key` signed with `access`, or `None` (logged) when it cannot be signed.
    async fn url(&self, access: Option<Access>, bucket: &str, key: &str) -> Option<String> {
        let access = access?;
        match self.ports.presigner.presign_get(&access, bucket, key, self.lifetime.duration()).await {
            Ok(url) => Some(url),
            Err(err) => {
                tracing::warn!(bucket, key, error = %error_chain(&err), "could not presign a file's URL");
                None
            }
        }
    }

    /// The job's rule, if it still exists (a failed read is logged and counts as gone).
    async fn rule(&self, job: &Job) -> Option<RecordRule> {
        let rule_id = job.rule_id()?;
        match self.ports.rules.get_rule(&job.app_id, &rule_id).await {
            Ok(rule) => rule,
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "could not read the job's rule to sign its files");
                None
            }
        }
    }

    /// The HLS playlist `object` of the job, finished or as uploaded so far, with every
    /// segment URI replaced by a presigned URL. Not found unless `object` is one of the job's
    /// HLS playlists.
    pub async fn playback(
        &self,
        app: &OwnedApp,
        kind: JobKind,
        job_id: &str,
        object: &str,
    ) -> Result<String, UseCaseError> {
        let not_found = || UseCaseError::not_found("object", "HLS playlist of the job");
        let record = self.ports.jobs.record(app.id(), kind, job_id).await?;
        let done = record.job.record_files.iter().flatten().map(|f| (f.record_format, &f.obs_bucket, &f.obs_object));
        // A file with nothing stored yet has no playlist to read.
        let open = record.open_uploads.iter().filter(|u| u.bytes > 0).map(|u| (u.record_format, &u.bucket, &u.key));
        let bucket = done
            .chain(open)
            .find(|(format, _, key)| *format == RecordFormat::Hls && key.as_str() == object)
            .map(|(_, bucket, _)| bucket.clone())
            .ok_or_else(not_found)?;
        let job = &record.job;
        let rule = self.rule(job).await;
        let access = file_access(rule.as_ref(), app.account(), &job.app_id, &job.job_id, &bucket, object)
            .ok_or_else(not_found)?;
        let blobs = self.ports.blobs.blobs(&access).await.map_err(unavailable)?;
        let playlist = blobs.get(&bucket, object).await?.ok_or_else(not_found)?;
        let text = String::from_utf8_lossy(&playlist.body);
        let keys = playlist_segments(object, &text);
        let signing = keys.iter().map(|key| self.url(Some(access.clone()), &bucket, key));
        let urls: HashMap<&String, String> =
            keys.iter().zip(futures::future::join_all(signing).await).filter_map(|(k, u)| Some((k, u?))).collect();
        Ok(sign_playlist(object, &text, |key| urls.get(&key.to_owned()).cloned()))
    }
}

/// A role that could not be assumed, as a storage failure (its cause only in the log).
fn unavailable(err: AccessError) -> UseCaseError {
    match err {
        AccessError::Denied(source) => UseCaseError::Store(StoreError::Rejected(source)),
        AccessError::Unavailable(source) => UseCaseError::Store(StoreError::Backend(source)),
    }
}
