//! A job's events as the outbox holds them, and sending one of them again.

use std::sync::Arc;

use crate::error::UseCaseError;
use crate::event::{DeliveryStatus, DeliveryUpdate, StoredEvent};
use crate::job::JobKind;
use crate::ports::EventLog;

use super::access::OwnedApp;
use super::files::Files;
use super::jobs::Jobs;

/// The job events use cases over the outbox.
#[derive(Clone)]
pub struct JobEvents {
    jobs: Jobs,
    events: Arc<dyn EventLog>,
    /// Presigns the listed files' `download_url`s, when set.
    files: Option<Files>,
}

impl JobEvents {
    /// The job events use cases; `jobs` finds the job an event belongs to.
    pub fn new(jobs: Jobs, events: Arc<dyn EventLog>) -> Self {
        Self { jobs, events, files: None }
    }

    /// The same use cases listing each completed file with a `download_url` presigned by
    /// `files` (else the address the outbox keeps).
    pub fn with_files(self, files: Files) -> Self {
        Self { files: Some(files), ..self }
    }

    /// A job's events in sequence order, each with its delivery status and attempts.
    pub async fn list(&self, app: &OwnedApp, kind: JobKind, job_id: &str) -> Result<Vec<StoredEvent>, UseCaseError> {
        let job = self.jobs.get(app, kind, job_id).await?;
        let mut listed = self.events.list_stored(&job.job_id).await?;
        if let Some(files) = &self.files {
            files.sign_events(app.account(), &job, &mut listed).await;
        }
        Ok(listed)
    }

    /// Sends one event of a job again: back to PENDING and queued (its attempts are kept).
    pub async fn redeliver(
        &self,
        app: &OwnedApp,
        kind: JobKind,
        job_id: &str,
        event_id: &str,
    ) -> Result<StoredEvent, UseCaseError> {
        let job = self.jobs.get(app, kind, job_id).await?;
        let mut stored = self
            .events
            .list_stored(&job.job_id)
            .await?
            .into_iter()
            .find(|s| s.event.event_id == event_id)
            .ok_or_else(|| UseCaseError::not_found("event_id", "event"))?;
        let update = DeliveryUpdate::redelivery();
        self.events.record_delivery(&job.job_id, stored.event.sequence, &update).await?;
        self.events.publish(&stored.event).await?;
        stored.delivery_status = DeliveryStatus::Pending;
        stored.next_attempt_at = None;
        Ok(stored)
    }
}
