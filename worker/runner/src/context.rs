//! What every job task shares: the ports, the settings, and the job-item and event helpers.

use std::sync::Arc;
use std::time::Duration;

use roomrec_domain::callback::EventType;
use roomrec_domain::change::{change_job, ChangeError};
use roomrec_domain::clock::{Clock, Random};
use roomrec_domain::event::{FileFacts, RecordEvent};
use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::job::Job;
use roomrec_domain::metric::Metrics;
use roomrec_domain::naming;
use roomrec_domain::ports::{BlobsProvider, EventLog, JobQueue, PreflightStore, Store, StoreError};
use roomrec_domain::record::{JobRecord, Lease};
use roomrec_domain::retry::{retry, Backoff};
use roomrec_domain::rule::RecordFormat;
use roomrec_media::{Guard, InputSpec};

use crate::board::Board;
use crate::config::WorkerConfig;
use crate::reach::PolicyReach;

/// How many times a job write is retried after losing a race (a stop request, say).
const JOB_WRITE_ATTEMPTS: usize = 10;

/// Shared by every job task of a worker.
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub events: Arc<dyn EventLog>,
    /// Object storage as the worker or as a tenant's role (see `storage.rs`).
    pub storage: Arc<dyn BlobsProvider>,
    /// The jobs queue, to wake the next worker at a hand-over.
    pub queue: Arc<dyn JobQueue>,
    /// Preflights whose streams this worker probes (see `probe.rs`).
    pub preflights: Arc<dyn PreflightStore>,
    /// The running jobs' items, read together every second.
    pub board: Arc<Board>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    /// Jobs started and ended, takeovers, recorded seconds, slots in use.
    pub metrics: Arc<dyn Metrics>,
    pub config: WorkerConfig,
}

/// A job write could not be made: the job is gone, kept changing, the store failed, or the
/// change refused (e.g. [`LEASE_LOST`]).
pub type JobWriteError = ChangeError<String>;

/// Why [`Ctx::update`] refuses a write: the job is held under another lease now.
pub const LEASE_LOST: &str = "the job was claimed under another lease";

/// Whether `err`, from handling the job, means the job is no longer this worker's: a job
/// write refused by its lease, or an object another worker replaced (see the uploads).
pub fn lost_job(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(cause.downcast_ref::<JobWriteError>(), Some(ChangeError::Refused(why)) if why == LEASE_LOST)
            || matches!(cause.downcast_ref::<crate::upload::UploadError>(), Some(crate::upload::UploadError::Fenced))
    })
}

/// A read or connect to the source that makes no progress for this long fails and is retried.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts to reach a source that is not there.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

impl Ctx {
    /// How the worker opens `url` to record from it: the deployment's stream policy judges
    /// every connection (a preflight's probe opens streams the same way, with shorter waits).
    pub fn stream_input(&self, url: String) -> InputSpec {
        InputSpec {
            url,
            allow_file: self.config.allow_file_inputs,
            guard: Guard::new(Arc::new(PolicyReach(self.config.base.stream_policy.clone()))),
            io_timeout: IO_TIMEOUT,
            retry_interval: RETRY_INTERVAL,
            rtmp_reader: self.config.rtmp_reader,
        }
    }

    /// Applies `change` to the job this worker holds, starting from `record` as last read or
    /// written, and writes it back conditionally: one write when nobody wrote in between, a
    /// read and a write more when someone did; a store outage is retried for minutes, so
    /// `change` may be applied to a record that has it already and must not apply it twice.
    /// Fenced: refused with [`LEASE_LOST`] unless the job is still held under the claim
    /// `held`, so a worker that was frozen past its lease changes nothing of the new holder's.
    /// Returns the job as written.
    pub async fn update<F>(&self, record: &JobRecord, held: &Lease, change: F) -> Result<JobRecord, JobWriteError>
    where
        F: Fn(&mut JobRecord) -> Result<(), String> + Send + Sync,
    {
        self.fenced_write(record, |r| r.holds(held), change).await
    }

    /// Like [`update`](Self::update), for a change to the upload of `key` only: also allowed
    /// to the claim that opened it and handed the job over, while its grace lasts.
    pub async fn update_upload<F>(
        &self,
        record: &JobRecord,
        held: &Lease,
        key: &str,
        change: F,
    ) -> Result<JobRecord, JobWriteError>
    where
        F: Fn(&mut JobRecord) -> Result<(), String> + Send + Sync,
    {
        self.fenced_write(record, |r| r.may_close_upload(held, key, self.clock.now()), change).await
    }

    /// Writes `change` if `allowed` says the job as stored may still be changed by this
    /// worker, else refuses with [`LEASE_LOST`]; store outages are retried.
    async fn fenced_write<A, F>(&self, record: &JobRecord, allowed: A, change: F) -> Result<JobRecord, JobWriteError>
    where
        A: Fn(&JobRecord) -> bool + Send + Sync,
        F: Fn(&mut JobRecord) -> Result<(), String> + Send + Sync,
    {
        let key = (&record.job.app_id, &record.job.job_id);
        let fenced = |r: &mut JobRecord| match allowed(r) {
            true => change(r).map(|()| true),
            false => Err(LEASE_LOST.to_owned()),
        };
        retry(&Backoff::AWS, self.random.as_ref(), "job write", || {
            change_job(self.store.as_ref(), key, Some(record), JOB_WRITE_ATTEMPTS, &fenced)
        })
        .await
    }

    /// Claims the job: `claim` is applied to it as stored, nothing being known yet.
    pub async fn claim<F>(&self, app_id: &AppId, job_id: &JobId, mut claim: F) -> Result<JobRecord, JobWriteError>
    where
        F: FnMut(&mut JobRecord) -> Result<(), String> + Send,
    {
        change_job(self.store.as_ref(), (app_id, job_id), None, JOB_WRITE_ATTEMPTS, |r| claim(r).map(|()| true)).await
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
            event_id: self.random.hex(16),
            sequence,
            event_type,
            app_id: job.app_id.clone(),
            job_id: job.job_id.clone(),
            room_id: job.room_id.clone(),
            stream_name: job.stream_name.clone(),
            record_format,
            file,
            detail_message,
            create_time: self.clock.timestamp(),
            // The job's last event says what it used.
            usage: matches!(event_type, EventType::CloudRecordOver | EventType::CloudRecordFailed)
                .then_some(job.usage)
                .flatten(),
        };
        self.events.append(&event).await?;
        if let Err(err) = self.events.publish(&event).await {
            tracing::warn!(job_id = %job.job_id, sequence, error = %err, "event recorded but not queued");
        }
        Ok(event)
    }

    /// Where an object can be downloaded (`download_url`).
    pub fn download_url(&self, bucket: &str, region: &str, key: &str) -> String {
        naming::download_url(self.config.s3_endpoint.as_deref(), bucket, Some(region), key)
    }

    /// The storage endpoint reported as `obs_location`.
    pub fn location(&self, region: &str) -> String {
        naming::location(self.config.s3_endpoint.as_deref(), region)
    }
}
