//! The use cases the HTTP functions call. Each takes parsed input, checks ownership through
//! the account, talks to the ports and returns domain values. Rooms (and what a join
//! starts) are in [`rooms`], the Jocloud verbs in [`jocloud`].

mod jocloud;
mod rooms;

use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::{App, AppRequest};
use crate::callback::{CallbackRequest, RecordCallback};
use crate::delivery::{DeliveryStatus, DeliveryUpdate, StoredEvent};
use crate::ids::{AccountId, AppId, JobId, KeyId, RoomId, RuleId, UserId};
use crate::job::{IndividualJobRequest, Job, JobSpec, MixJobRequest, MixUpdateRequest, StopOutcome, UpdateError};
use crate::ports::{
    Credential, EventLog, JobFilter, JobMessage, JobQueue, Notifier, RecordingStore, Store, StoreError,
};
use crate::rule::{RecordRule, RuleRequest};
use crate::time::Timestamp;
use crate::url::{PrivateAddresses, StreamUrl};
use crate::{Invalid, UseCaseError};

/// How many times a job write is retried after losing a race with a worker.
const JOB_WRITE_ATTEMPTS: usize = 5;
/// Bytes of randomness in an API secret.
const SECRET_BYTES: usize = 32;
/// Shortest secret accepted when registering a known one.
const MIN_SECRET_CHARS: usize = 32;

/// Deployment settings the use cases depend on.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Whether callback URLs may point at private addresses.
    pub private_callbacks: PrivateAddresses,
    /// The S3 endpoint download URLs name (`AWS_ENDPOINT_URL`); AWS's own when `None`.
    pub s3_endpoint: Option<String>,
}

/// A newly issued credential; the secret is shown once and stored only as a hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedCredential {
    pub key_id: KeyId,
    pub secret: String,
}

/// A media-server report that a stream started or stopped publishing.
#[derive(Debug, Clone)]
pub struct PublishEvent {
    pub app_id: AppId,
    pub room_id: RoomId,
    pub user_id: UserId,
    /// Where the worker can pull the stream from (set on publish).
    pub url: Option<StreamUrl>,
}

/// The core's entry point: one per process, shared by every request.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    queue: Arc<dyn JobQueue>,
    settings: Settings,
    /// The event outbox, for the job events endpoints; `None` where no function needs it.
    events: Option<Arc<dyn EventLog>>,
    notifier: Option<Arc<dyn Notifier>>,
    /// Jocloud reservations and recordings; `None` where no function needs them.
    recordings: Option<Arc<dyn RecordingStore>>,
}

fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Service {
    /// A service over the given ports.
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn JobQueue>, settings: Settings) -> Self {
        Self { store, queue, settings, events: None, notifier: None, recordings: None }
    }

    /// The same service with Jocloud's reservations and recordings.
    pub fn with_recordings(mut self, recordings: Arc<dyn RecordingStore>) -> Self {
        self.recordings = Some(recordings);
        self
    }

    /// The same service with the event outbox (job events and redelivery).
    pub fn with_events(mut self, events: Arc<dyn EventLog>) -> Self {
        self.events = Some(events);
        self
    }

    /// The service with a notifier, so saving a callback URL checks where its name resolves.
    pub fn with_notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    fn events(&self) -> Result<&dyn EventLog, UseCaseError> {
        self.events.as_deref().ok_or_else(|| UseCaseError::Conflict("this function has no event outbox".into()))
    }

    /// A job's events in sequence order, each with its delivery status and attempts.
    pub async fn job_events(
        &self,
        account: &AccountId,
        app_id: &str,
        job_id: &str,
        mix: bool,
    ) -> Result<Vec<StoredEvent>, UseCaseError> {
        let job = self.get_job(account, app_id, job_id, mix).await?;
        Ok(self.events()?.list_stored(&job.job_id).await?)
    }

    /// Sends one event of a job again: back to PENDING and queued (its attempts are kept).
    pub async fn redeliver_event(
        &self,
        account: &AccountId,
        app_id: &str,
        job_id: &str,
        mix: bool,
        event_id: &str,
    ) -> Result<StoredEvent, UseCaseError> {
        let job = self.get_job(account, app_id, job_id, mix).await?;
        let events = self.events()?;
        let mut stored = events
            .list_stored(&job.job_id)
            .await?
            .into_iter()
            .find(|s| s.event.event_id == event_id)
            .ok_or_else(|| UseCaseError::not_found("event_id", "event"))?;
        let update = DeliveryUpdate::redelivery();
        events.record_delivery(&job.job_id, stored.event.sequence, &update).await?;
        events.publish(&stored.event).await?;
        stored.delivery_status = DeliveryStatus::Pending;
        stored.next_attempt_at = None;
        Ok(stored)
    }

    /// The account a key id and secret belong to, or `None` when they do not match.
    pub async fn authenticate(&self, key_id: &str, secret: &str) -> Result<Option<AccountId>, StoreError> {
        let Some(key_id) = KeyId::parse(key_id) else { return Ok(None) };
        let Some(credential) = self.store.get_credential(&key_id).await? else { return Ok(None) };
        // The secret is 256 random bits, so one SHA-256 suffices (no password stretching needed);
        // the comparison is constant-time so timing reveals nothing about the stored hash.
        let matches: bool = sha256_hex(secret).as_bytes().ct_eq(credential.secret_sha256.as_bytes()).into();
        Ok(matches.then_some(credential.account_id))
    }

    /// Issues a new credential for `account`.
    pub async fn issue_credential(&self, account: AccountId) -> Result<IssuedCredential, UseCaseError> {
        let mut secret = [0u8; SECRET_BYTES];
        rand::thread_rng().fill_bytes(&mut secret);
        self.register_credential(account, KeyId::generate(), &hex::encode(secret)).await
    }

    /// Registers a known key id and secret for `account` (re-creating a saved credential);
    /// an existing key id is replaced only if it belongs to the same account.
    pub async fn register_credential(
        &self,
        account: AccountId,
        key_id: KeyId,
        secret: &str,
    ) -> Result<IssuedCredential, UseCaseError> {
        if secret.len() < MIN_SECRET_CHARS {
            return Err(Invalid::new("secret", format!("must be at least {MIN_SECRET_CHARS} characters")).into());
        }
        if let Some(existing) = self.store.get_credential(&key_id).await? {
            if existing.account_id != account {
                return Err(UseCaseError::Conflict("key_id: belongs to another account".into()));
            }
            self.store.delete_credential(&key_id).await?;
        }
        let credential = Credential {
            key_id: key_id.clone(),
            account_id: account,
            secret_sha256: sha256_hex(secret),
            create_time: Timestamp::now(),
        };
        self.store.create_credential(&credential).await?;
        Ok(IssuedCredential { key_id, secret: secret.to_owned() })
    }

    /// The store, for operator tools that write fixtures.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    // ---- apps ----

    /// The app `app_id` of `account`; foreign and malformed ids are simply not found.
    pub async fn app(&self, account: &AccountId, app_id: &str) -> Result<App, UseCaseError> {
        let not_found = || UseCaseError::not_found("app_id", "app");
        let app_id = AppId::parse(app_id).ok_or_else(not_found)?;
        self.store.get_app(account, &app_id).await?.ok_or_else(not_found)
    }

    /// Creates an app.
    pub async fn create_app(&self, account: &AccountId, request: AppRequest) -> Result<App, UseCaseError> {
        let app = App::create(request, Timestamp::now())?;
        self.store.put_app(account, &app).await?;
        Ok(app)
    }

    /// Lists the account's apps.
    pub async fn list_apps(&self, account: &AccountId) -> Result<Vec<App>, UseCaseError> {
        Ok(self.store.list_apps(account).await?)
    }

    /// Updates an app's name or stream URL template.
    pub async fn update_app(
        &self,
        account: &AccountId,
        app_id: &str,
        request: AppRequest,
    ) -> Result<App, UseCaseError> {
        let mut app = self.app(account, app_id).await?;
        app.update(request, Timestamp::now());
        self.store.put_app(account, &app).await?;
        Ok(app)
    }

    /// Deletes an app.
    pub async fn delete_app(&self, account: &AccountId, app_id: &str) -> Result<(), UseCaseError> {
        let app = self.app(account, app_id).await?;
        self.store.delete_app(account, &app.app_id).await?;
        Ok(())
    }

    // ---- record rules ----

    async fn rule_of(&self, app_id: &AppId, rule_id: &str, field: &'static str) -> Result<RecordRule, UseCaseError> {
        let not_found = || UseCaseError::not_found(field, "record rule");
        let rule_id = RuleId::parse(rule_id).ok_or_else(not_found)?;
        self.store.get_rule(app_id, &rule_id).await?.ok_or_else(not_found)
    }

    /// Refuses a second rule of the app with `auto_record` on: joins must know which rule applies.
    async fn check_single_auto_rule(&self, rule: &RecordRule) -> Result<(), UseCaseError> {
        if !rule.auto_record {
            return Ok(());
        }
        let rules = self.store.list_rules(&rule.app_id).await?;
        match rules.iter().find(|other| other.auto_record && other.rule_id != rule.rule_id) {
            Some(other) => Err(UseCaseError::Conflict(format!(
                "auto_record: rule {} already records automatically; turn it off there first",
                other.rule_id
            ))),
            None => Ok(()),
        }
    }

    /// Creates a record rule.
    pub async fn create_rule(
        &self,
        account: &AccountId,
        app_id: &str,
        request: RuleRequest,
    ) -> Result<RecordRule, UseCaseError> {
        let app = self.app(account, app_id).await?;
        let rule = RecordRule::create(app.app_id, request, Timestamp::now())?;
        self.check_single_auto_rule(&rule).await?;
        self.store.put_rule(&rule).await?;
        Ok(rule)
    }

    /// Lists an app's rules.
    pub async fn list_rules(&self, account: &AccountId, app_id: &str) -> Result<Vec<RecordRule>, UseCaseError> {
        let app = self.app(account, app_id).await?;
        Ok(self.store.list_rules(&app.app_id).await?)
    }

    /// One rule.
    pub async fn get_rule(&self, account: &AccountId, app_id: &str, rule_id: &str) -> Result<RecordRule, UseCaseError> {
        let app = self.app(account, app_id).await?;
        self.rule_of(&app.app_id, rule_id, "rule_id").await
    }

    /// Updates a rule; absent fields keep their values.
    pub async fn update_rule(
        &self,
        account: &AccountId,
        app_id: &str,
        rule_id: &str,
        request: RuleRequest,
    ) -> Result<RecordRule, UseCaseError> {
        let app = self.app(account, app_id).await?;
        let mut rule = self.rule_of(&app.app_id, rule_id, "rule_id").await?;
        rule.update(request, Timestamp::now())?;
        self.check_single_auto_rule(&rule).await?;
        self.store.put_rule(&rule).await?;
        Ok(rule)
    }

    /// Deletes a rule.
    pub async fn delete_rule(&self, account: &AccountId, app_id: &str, rule_id: &str) -> Result<(), UseCaseError> {
        let app = self.app(account, app_id).await?;
        let rule = self.rule_of(&app.app_id, rule_id, "rule_id").await?;
        self.store.delete_rule(&app.app_id, &rule.rule_id).await?;
        Ok(())
    }

    // ---- record callback ----

    /// Sets the app's record callback.
    pub async fn put_callback(
        &self,
        account: &AccountId,
        app_id: &str,
        request: CallbackRequest,
    ) -> Result<(AppId, RecordCallback), UseCaseError> {
        let app = self.app(account, app_id).await?;
        let callback = RecordCallback::from_request(request, self.settings.private_callbacks, Timestamp::now())?;
        if let Some(reason) = match &self.notifier {
            Some(notifier) => notifier.refusal(&callback.url).await,
            None => None,
        } {
            return Err(Invalid::new("url", format!("must not point to a private address ({reason})")).into());
        }
        self.store.put_callback(&app.app_id, &callback).await?;
        Ok((app.app_id, callback))
    }

    /// The app's record callback.
    pub async fn get_callback(
        &self,
        account: &AccountId,
        app_id: &str,
    ) -> Result<(AppId, RecordCallback), UseCaseError> {
        let app = self.app(account, app_id).await?;
        let callback = self.store.get_callback(&app.app_id).await?;
        let callback = callback.ok_or_else(|| UseCaseError::not_found("record-callback", "record callback"))?;
        Ok((app.app_id, callback))
    }

    /// Removes the app's record callback.
    pub async fn delete_callback(&self, account: &AccountId, app_id: &str) -> Result<(), UseCaseError> {
        let app = self.app(account, app_id).await?;
        if !self.store.delete_callback(&app.app_id).await? {
            return Err(UseCaseError::not_found("record-callback", "record callback"));
        }
        Ok(())
    }

    // ---- jobs ----

    /// Saves `job` (its rule must exist) and queues it; `Store(Conflict)` if its id exists.
    async fn start(&self, app_id: &AppId, job: Job) -> Result<Job, UseCaseError> {
        let rule_id = job.rule_id();
        let rule_id = rule_id.ok_or_else(|| UseCaseError::not_found("record_param.record_rule_id", "record rule"))?;
        self.rule_of(app_id, rule_id.as_str(), "record_param.record_rule_id").await?;
        self.store.create_job(&job).await?;
        let message = JobMessage { app_id: job.app_id.clone(), job_id: job.job_id.clone() };
        if let Err(err) = self.queue.enqueue(&message).await {
            // Without a message no worker would ever see the job: undo it rather than leave it in INIT.
            self.store.delete_job(&job.app_id, &job.job_id).await?;
            return Err(err.into());
        }
        Ok(job)
    }

    /// Creates an individual-stream job in INIT and queues it.
    pub async fn create_individual_job(
        &self,
        account: &AccountId,
        app_id: &str,
        request: IndividualJobRequest,
    ) -> Result<Job, UseCaseError> {
        let app = self.app(account, app_id).await?;
        let job = Job::individual(app.app_id.clone(), request, Timestamp::now())?;
        self.start(&app.app_id, job).await
    }

    /// Creates a mix-stream job in INIT and queues it.
    pub async fn create_mix_job(
        &self,
        account: &AccountId,
        app_id: &str,
        request: MixJobRequest,
    ) -> Result<Job, UseCaseError> {
        let app = self.app(account, app_id).await?;
        let job = Job::mix(app.app_id.clone(), request, Timestamp::now())?;
        self.start(&app.app_id, job).await
    }

    /// One job of the given kind (`mix`); a job of the other kind is not found.
    pub async fn get_job(
        &self,
        account: &AccountId,
        app_id: &str,
        job_id: &str,
        mix: bool,
    ) -> Result<Job, UseCaseError> {
        let app = self.app(account, app_id).await?;
        self.job_of(&app.app_id, job_id, mix).await
    }

    async fn job_of(&self, app_id: &AppId, job_id: &str, mix: bool) -> Result<Job, UseCaseError> {
        let not_found = || UseCaseError::not_found("job_id", "job");
        let job_id = JobId::parse(job_id).ok_or_else(not_found)?;
        let job = self.store.get_job(app_id, &job_id).await?.ok_or_else(not_found)?;
        match (&job.spec, mix) {
            (JobSpec::Mix { .. }, true) | (JobSpec::Individual(_), false) => Ok(job),
            _ => Err(not_found()),
        }
    }

    /// Jobs of an app matching `filter`.
    pub async fn list_jobs(
        &self,
        account: &AccountId,
        app_id: &str,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, UseCaseError> {
        let app = self.app(account, app_id).await?;
        Ok(self.store.list_jobs(&app.app_id, filter).await?)
    }

    /// Stops a job; idempotent. A job no worker claimed stops at once, a running one goes to
    /// STOPPING for its worker to finalise.
    pub async fn stop_job(
        &self,
        account: &AccountId,
        app_id: &str,
        job_id: &str,
        mix: bool,
    ) -> Result<Job, UseCaseError> {
        let app = self.app(account, app_id).await?;
        self.change_job(
            &app.app_id,
            job_id,
            mix,
            |job| Ok(job.request_stop(Timestamp::now()) != StopOutcome::Unchanged),
        )
        .await
    }

    /// Applies a live layout update to a mix job.
    pub async fn update_mix_job(
        &self,
        account: &AccountId,
        app_id: &str,
        job_id: &str,
        request: MixUpdateRequest,
    ) -> Result<Job, UseCaseError> {
        let app = self.app(account, app_id).await?;
        self.change_job(&app.app_id, job_id, true, |job| match job.update_mix(request.clone(), Timestamp::now()) {
            Ok(()) => Ok(true),
            Err(UpdateError::Invalid(invalid)) => Err(invalid.into()),
            Err(err) => Err(UseCaseError::Conflict(err.to_string())),
        })
        .await
    }

    /// Reads the job, applies `change` (which says whether it changed anything), and writes
    /// it back conditionally on its version; a write that loses a race is retried.
    async fn change_job<F>(&self, app_id: &AppId, job_id: &str, mix: bool, mut change: F) -> Result<Job, UseCaseError>
    where
        F: FnMut(&mut Job) -> Result<bool, UseCaseError>,
    {
        for _ in 0..JOB_WRITE_ATTEMPTS {
            let mut job = self.job_of(app_id, job_id, mix).await?;
            if !change(&mut job)? {
                return Ok(job);
            }
            match self.store.save_job(&job).await {
                Ok(()) => return Ok(job),
                Err(StoreError::Conflict) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(UseCaseError::Conflict("job_id: the job is changing too often; try again".into()))
    }
}
