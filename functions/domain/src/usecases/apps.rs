//! Apps: the unit a customer configures recording for.

use std::sync::Arc;

use crate::app::{App, AppRequest};
use crate::clock::{Clock, Random};
use crate::error::{error_chain, UseCaseError};
use crate::ids::{AccountId, AppId};
use crate::job::Job;
use crate::ports::{AppStore, CallbackStore, JobStore, RoomStore, RuleStore};
use crate::reach::StreamPolicy;
use crate::url::StreamUrlTemplate;

use super::access::{Access, OwnedApp};
use super::jobs::Jobs;

/// Creates, lists, changes and deletes an account's apps.
#[derive(Clone)]
pub struct Apps {
    ports: AppsPorts,
    streams: StreamPolicy,
}

/// The ports and use cases [`Apps`] works with: deleting an app removes what hangs off it.
#[derive(Clone)]
pub struct AppsPorts {
    pub apps: Arc<dyn AppStore>,
    pub rules: Arc<dyn RuleStore>,
    pub callbacks: Arc<dyn CallbackStore>,
    pub rooms: Arc<dyn RoomStore>,
    /// The account's jobs that have not ended, to refuse deleting an app that records.
    pub job_store: Arc<dyn JobStore>,
    pub jobs: Jobs,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl Apps {
    /// The apps use cases.
    pub fn new(ports: AppsPorts) -> Self {
        Self { ports, streams: StreamPolicy::default() }
    }

    /// The same use cases judging stream URL templates by `streams` (default: no allow-list).
    pub fn with_stream_policy(mut self, streams: StreamPolicy) -> Self {
        self.streams = streams;
        self
    }

    /// Refuses a template whose URLs point somewhere the worker may not pull from.
    fn check_template(&self, request: &AppRequest) -> Result<(), UseCaseError> {
        if let Some(Some(template)) = &request.stream_url_template {
            self.streams.check(template.sample()?.as_str(), StreamUrlTemplate::FIELD)?;
        }
        Ok(())
    }

    /// Creates an app of `account`.
    pub async fn create(&self, account: &AccountId, request: AppRequest) -> Result<App, UseCaseError> {
        self.check_template(&request)?;
        let app = App::create(request, self.ports.random.as_ref(), self.ports.clock.timestamp())?;
        self.ports.apps.put_app(account, &app).await?;
        Ok(app)
    }

    /// Lists the account's apps, oldest first.
    pub async fn list(&self, account: &AccountId) -> Result<Vec<App>, UseCaseError> {
        Ok(self.ports.apps.list_apps(account).await?)
    }

    /// Updates an app's name or stream URL template; an app deleted meanwhile stays deleted.
    pub async fn update(&self, app: OwnedApp, request: AppRequest) -> Result<OwnedApp, UseCaseError> {
        self.check_template(&request)?;
        let account = app.account().clone();
        let mut changed = app.app().clone();
        changed.update(request, self.ports.clock.timestamp());
        if !self.ports.apps.update_app(&account, &changed).await? {
            return Err(UseCaseError::not_found("app_id", "app"));
        }
        Ok(Access::owned(account, changed))
    }

    /// Deletes an app with its rules, record callback and rooms. Refused (409) while any of
    /// its jobs has not ended: deleting would end recordings the customer may not know are
    /// running, so they stop them first and keep what was recorded.
    pub async fn delete(&self, app: OwnedApp) -> Result<(), UseCaseError> {
        let active = self.active_jobs(&app).await?;
        if !active.is_empty() {
            return Err(UseCaseError::Conflict(format!(
                "app_id: {} recording job(s) of the app have not ended (first: {}); stop them before deleting the app",
                active.len(),
                active[0].job_id
            )));
        }
        // The app first: from now on no request finds it, so nothing new is added under it.
        if !self.ports.apps.delete_app(app.account(), app.id()).await? {
            return Err(UseCaseError::not_found("app_id", "app"));
        }
        self.remove_contents(app.id()).await?;
        // A create that found the app just before it went may have added a job since the
        // check above: stop it rather than leave it recording for an app nobody can reach.
        for job in self.active_jobs(&app).await? {
            if let Err(err) = self.ports.jobs.stop_job(app.id(), job.kind(), job.job_id.as_str()).await {
                tracing::warn!(app_id = %app.id(), job_id = %job.job_id, error = %error_chain(&err),
                    "could not stop a job of a deleted app");
            }
        }
        Ok(())
    }

    async fn active_jobs(&self, app: &OwnedApp) -> Result<Vec<Job>, UseCaseError> {
        let jobs = self.ports.job_store.account_jobs(app.account()).await?;
        Ok(jobs.into_iter().filter(|job| job.app_id == *app.id()).collect())
    }

    /// Removes the app's rules, record callback and rooms.
    async fn remove_contents(&self, app_id: &AppId) -> Result<(), UseCaseError> {
        for rule in self.ports.rules.list_rules(app_id).await? {
            self.ports.rules.delete_rule(app_id, &rule.rule_id).await?;
        }
        self.ports.callbacks.delete_callback(app_id).await?;
        self.ports.rooms.delete_app_rooms(app_id).await?;
        Ok(())
    }
}
