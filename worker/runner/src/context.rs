//! What every job task shares: the ports, the settings, and the job-item and event helpers.

use std::sync::Arc;

use roomrec_domain::callback::EventType;
use roomrec_domain::event::{FileFacts, RecordEvent};
use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::job::Job;
use roomrec_domain::ports::{Blobs, EventLog, Store, StoreError};
use roomrec_domain::rule::RecordFormat;
use roomrec_domain::time::Timestamp;

use crate::board::Board;
use crate::config::WorkerConfig;

/// How many times a job write is retried after losing a race (a stop request, say).
const JOB_WRITE_ATTEMPTS: usize = 10;

/// Shared by every job task of a worker.
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub events: Arc<dyn EventLog>,
    pub blobs: Arc<dyn Blobs>,
    /// The running jobs' items, read together every second.
    pub board: Arc<Board>,
    pub config: WorkerConfig,
}

/// A job write could not be made.
#[derive(Debug, thiserror::Error)]
pub enum JobWriteError {
    #[error("the job no longer exists")]
    Gone,
    #[error("the job kept changing under us")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change itself refused (e.g. the lease is someone else's).
    #[error("{0}")]
    Refused(String),
}

impl Ctx {
    /// Reads the job, applies `change`, and writes it back if nobody wrote in between;
    /// retries on a lost race. Returns the job as written.
    pub async fn update_job<F>(&self, app_id: &AppId, job_id: &JobId, mut change: F) -> Result<Job, JobWriteError>
    where
        F: FnMut(&mut Job) -> Result<(), String> + Send,
    {
        for _ in 0..JOB_WRITE_ATTEMPTS {
            let mut job = self.store.get_job(app_id, job_id).await?.ok_or(JobWriteError::Gone)?;
            change(&mut job).map_err(JobWriteError::Refused)?;
            match self.store.save_job(&job).await {
                Ok(()) => {
                    job.version += 1;
                    return Ok(job);
                }
                Err(StoreError::Conflict) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(JobWriteError::Contended)
    }

    /// Like [`update_job`](Self::update_job), starting from `job` as last read or written
    /// instead of reading it first: one write when nobody wrote in between, a read and a
    /// write more when someone did.
    pub async fn update_from<F>(&self, job: &Job, mut change: F) -> Result<Job, JobWriteError>
    where
        F: FnMut(&mut Job) -> Result<(), String> + Send,
    {
        let mut changed = job.clone();
        change(&mut changed).map_err(JobWriteError::Refused)?;
        match self.store.save_job(&changed).await {
            Ok(()) => {
                changed.version += 1;
                Ok(changed)
            }
            Err(StoreError::Conflict) => self.update_job(&job.app_id, &job.job_id, change).await,
            Err(err) => Err(err.into()),
        }
    }

    /// Records an event in the outbox and queues it; a queue failure is logged, the outbox
    /// keeps the event for redelivery.
    pub async fn emit(
        &self,
        job: &Job,
        event_type: EventType,
        record_format: Option<RecordFormat>,
        file: Option<FileFacts>,
        detail_message: String,
    ) -> Result<RecordEvent, StoreError> {
        let sequence = self.events.next_sequence(&job.job_id).await?;
        let event = RecordEvent {
            event_id: format!("{:032x}", rand::random::<u128>()),
            sequence,
            event_type,
            app_id: job.app_id.clone(),
            job_id: job.job_id.clone(),
            room_id: job.room_id.clone(),
            stream_name: job.stream_name.clone(),
            record_format,
            file,
            detail_message,
            create_time: Timestamp::now(),
        };
        self.events.append(&event).await?;
        if let Err(err) = self.events.publish(&event).await {
            tracing::warn!(job_id = %job.job_id, sequence, error = %err, "event recorded but not queued");
        }
        Ok(event)
    }

    /// The public location of an object: the endpoint override (path style) or AWS's.
    pub fn download_url(&self, bucket: &str, region: &str, key: &str) -> String {
        match std::env::var("AWS_ENDPOINT_URL") {
            Ok(endpoint) if !endpoint.is_empty() => format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/')),
            _ => format!("https://{bucket}.s3.{region}.amazonaws.com/{key}"),
        }
    }

    /// The storage endpoint reported as `obs_location`.
    pub fn location(&self, region: &str) -> String {
        match std::env::var("AWS_ENDPOINT_URL") {
            Ok(endpoint) if !endpoint.is_empty() => endpoint,
            _ => format!("https://s3.{region}.amazonaws.com"),
        }
    }
}
