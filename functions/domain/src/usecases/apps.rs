//! Apps: the unit a customer configures recording for.

use std::sync::Arc;

use crate::app::{App, AppRequest};
use crate::clock::{Clock, Random};
use crate::error::UseCaseError;
use crate::ids::AccountId;
use crate::ports::AppStore;
use crate::reach::StreamPolicy;
use crate::url::StreamUrlTemplate;

use super::access::{Access, OwnedApp};

/// Creates, lists, changes and deletes an account's apps.
#[derive(Clone)]
pub struct Apps {
    apps: Arc<dyn AppStore>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    streams: StreamPolicy,
}

impl Apps {
    /// The apps use cases over the app store.
    pub fn new(apps: Arc<dyn AppStore>, clock: Arc<dyn Clock>, random: Arc<dyn Random>) -> Self {
        Self { apps, clock, random, streams: StreamPolicy::default() }
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
        let app = App::create(request, self.random.as_ref(), self.clock.timestamp())?;
        self.apps.put_app(account, &app).await?;
        Ok(app)
    }

    /// Lists the account's apps, oldest first.
    pub async fn list(&self, account: &AccountId) -> Result<Vec<App>, UseCaseError> {
        Ok(self.apps.list_apps(account).await?)
    }

    /// Updates an app's name or stream URL template.
    pub async fn update(&self, app: OwnedApp, request: AppRequest) -> Result<OwnedApp, UseCaseError> {
        self.check_template(&request)?;
        let account = app.account().clone();
        let mut changed = app.app().clone();
        changed.update(request, self.clock.timestamp());
        self.apps.put_app(&account, &changed).await?;
        Ok(Access::owned(account, changed))
    }

    /// Deletes an app.
    pub async fn delete(&self, app: OwnedApp) -> Result<(), UseCaseError> {
        self.apps.delete_app(app.account(), app.id()).await?;
        Ok(())
    }
}
