//! The record callback: where an app's recording events are sent.

use std::sync::Arc;

use crate::callback::{CallbackRequest, RecordCallback};
use crate::clock::Clock;
use crate::error::{Invalid, UseCaseError};
use crate::ports::{CallbackStore, Notifier};
use crate::url::PrivateAddresses;

use super::access::OwnedApp;

/// Sets, reads and removes an app's record callback.
#[derive(Clone)]
pub struct Callbacks {
    callbacks: Arc<dyn CallbackStore>,
    notifier: Arc<dyn Notifier>,
    /// Whether callback URLs may name private addresses (local development only).
    private: PrivateAddresses,
    clock: Arc<dyn Clock>,
}

impl Callbacks {
    /// The callback use cases; `notifier` checks where a saved URL resolves.
    pub fn new(
        callbacks: Arc<dyn CallbackStore>,
        notifier: Arc<dyn Notifier>,
        private: PrivateAddresses,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { callbacks, notifier, private, clock }
    }

    /// Sets the app's record callback: creates it, or replaces the one that was read — if
    /// that one is deleted meanwhile (the callback or its app), it stays deleted.
    pub async fn put(&self, app: &OwnedApp, request: CallbackRequest) -> Result<RecordCallback, UseCaseError> {
        let callback = RecordCallback::from_request(request, self.private, self.clock.timestamp())?;
        if let Some(reason) = self.notifier.refusal(&callback.url).await {
            return Err(Invalid::new("url", format!("must not point to a private address ({reason})")).into());
        }
        if self.callbacks.get_callback(app.id()).await?.is_none() {
            self.callbacks.put_callback(app.id(), &callback).await?;
        } else if !self.callbacks.update_callback(app.id(), &callback).await? {
            return Err(UseCaseError::not_found("record-callback", "record callback"));
        }
        Ok(callback)
    }

    /// The app's record callback.
    pub async fn get(&self, app: &OwnedApp) -> Result<RecordCallback, UseCaseError> {
        let callback = self.callbacks.get_callback(app.id()).await?;
        callback.ok_or_else(|| UseCaseError::not_found("record-callback", "record callback"))
    }

    /// Removes the app's record callback.
    pub async fn delete(&self, app: &OwnedApp) -> Result<(), UseCaseError> {
        if !self.callbacks.delete_callback(app.id()).await? {
            return Err(UseCaseError::not_found("record-callback", "record callback"));
        }
        Ok(())
    }
}
