//! Preflight: checks an app's rule, callback and room without recording — a probe object put
//! into and deleted from the rule's bucket with the rule's credentials, a signed `PREFLIGHT`
//! event posted to the callback URL through the deliveries' guard, the room's streams opened
//! by a worker (the API links no media code): the preflight is stored, a probe message sent
//! on the jobs queue, and the answer waits a few seconds for the worker's results; what is not
//! probed by then is `pending`, and [`Preflight::get`] tells it later.

use std::sync::Arc;
use std::time::Duration;

use crate::callback::RecordCallback;
use crate::clock::{Clock, Random};
use crate::error::{StoreError, UseCaseError};
use crate::failure::FailureCode;
use crate::ids::{AccountId, RoomId, RuleId};
use crate::ports::{
    BlobsProvider, CallbackStore, IfStored, Notifier, PreflightStore, ProbeQueue, RoomStore, RuleStore,
};
use crate::preflight::{
    Check, CheckStatus, PreflightId, PreflightRecord, PreflightRequest, PreflightView, ProbeMessage, Reason,
    StreamFacts, PREFLIGHT_EVENT,
};
use crate::rule::RecordRule;
use crate::storage::{self, AccessError, Forbidden};
use crate::webhook;

use super::access::OwnedApp;

/// Length of a preflight's id, in hex characters (as a job's).
const PREFLIGHT_ID_HEX: usize = 32;
/// What the probe object holds.
const PROBE_BODY: &[u8] = b"roomrec preflight probe; deleted at once\n";
/// How long a preflight is kept for `GET .../preflight/{preflight_id}` (the table's TTL).
const KEPT_SECS: i64 = 24 * 60 * 60;
/// How long the answer waits for the worker's stream probe: a worker's receive (long poll
/// of 2 s) and probe (≤ 5 s per stream, all at once), inside API Gateway's 29 s with the
/// other checks.
pub const PROBE_WAIT: Duration = Duration::from_secs(8);
/// How often the preflight's item is read while waiting for the probe.
const PROBE_POLL: Duration = Duration::from_millis(250);

/// The ports a preflight reads and calls.
#[derive(Clone)]
pub struct PreflightPorts {
    pub rules: Arc<dyn RuleStore>,
    pub callbacks: Arc<dyn CallbackStore>,
    pub rooms: Arc<dyn RoomStore>,
    pub blobs: Arc<dyn BlobsProvider>,
    pub notifier: Arc<dyn Notifier>,
    /// Preflights kept a day, the worker's probe results in them.
    pub preflights: Arc<dyn PreflightStore>,
    /// The jobs queue, for the probe message.
    pub probes: Arc<dyn ProbeQueue>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
    /// The deployment's recordings bucket; `None` when this function was not told it.
    pub deployment_bucket: Option<String>,
}

/// Runs preflights.
#[derive(Clone)]
pub struct Preflight {
    ports: PreflightPorts,
    probe_wait: Duration,
}

impl Preflight {
    /// The preflight use case over `ports`.
    pub fn new(ports: PreflightPorts) -> Self {
        Self { ports, probe_wait: PROBE_WAIT }
    }

    /// The same, its answer waiting `wait` for the streams' probe.
    pub fn with_probe_wait(self, wait: Duration) -> Self {
        Self { probe_wait: wait, ..self }
    }

    /// A preflight of `app` as it stands now: 404 naming `preflight_id` for an id the app
    /// has not run (or not within a day).
    pub async fn get(&self, app: &OwnedApp, preflight_id: &str) -> Result<PreflightView, UseCaseError> {
        let not_found = || UseCaseError::not_found("preflight_id", "preflight");
        let id = PreflightId::parse(preflight_id).ok_or_else(not_found)?;
        let record = self.ports.preflights.get_preflight(app.id(), &id).await?.ok_or_else(not_found)?;
        Ok(record.view)
    }

    /// Checks what `request` names for `app`: 404 naming `record_rule_id` for a rule the app
    /// does not have.
    pub async fn run(&self, app: &OwnedApp, request: PreflightRequest) -> Result<PreflightView, UseCaseError> {
        let rule = self.rule(app, request.record_rule_id.as_deref()).await?;
        let preflight_id = self.ports.random.hex(PREFLIGHT_ID_HEX / 2);
        let bucket = async {
            match &rule {
                Some(rule) => self.bucket(rule, app.account(), &preflight_id).await,
                None => Check::not_ok("bucket", CheckStatus::Skipped, Reason::NoRule),
            }
        };
        // Each may wait on the tenant's side (STS and S3, the callback receiver): at once.
        let (bucket, callback, streams) =
            futures::join!(bucket, self.callback(app, &preflight_id), self.streams(app, request.room_id.as_ref()));
        let view = PreflightView {
            preflight_id,
            app_id: app.id().clone(),
            record_rule_id: rule.map(|r| r.rule_id),
            room_id: request.room_id,
            create_time: self.ports.clock.timestamp(),
            checks: vec![bucket, callback?, streams?],
        };
        let expires_at = self.ports.clock.now().timestamp() + KEPT_SECS;
        let record = PreflightRecord { view, expires_at };
        self.ports.preflights.put_preflight(&record).await?;
        if !record.pending() {
            return Ok(record.view);
        }
        self.probe(record).await
    }

    /// Asks a worker to probe `record`'s streams and answers what it found within the
    /// probe wait: the streams check `pending` if it has not answered by then.
    async fn probe(&self, record: PreflightRecord) -> Result<PreflightView, UseCaseError> {
        let Some(id) = PreflightId::parse(&record.view.preflight_id) else {
            return Ok(record.view);
        };
        let message = ProbeMessage { app_id: record.view.app_id.clone(), preflight_id: id.clone() };
        self.ports.probes.enqueue_probe(&message).await?;
        let deadline = tokio::time::Instant::now() + self.probe_wait;
        loop {
            let latest = self.ports.preflights.get_preflight(&message.app_id, &id).await?;
            let latest = latest.unwrap_or_else(|| record.clone());
            if !latest.pending() || tokio::time::Instant::now() >= deadline {
                return Ok(latest.view);
            }
            tokio::time::sleep(PROBE_POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }

    /// The rule named, or the app's rule when none is named (`None` if it has none).
    async fn rule(&self, app: &OwnedApp, named: Option<&str>) -> Result<Option<RecordRule>, UseCaseError> {
        let not_found = || UseCaseError::not_found("record_rule_id", "record rule");
        match named {
            Some(text) => {
                let id = RuleId::parse(text).ok_or_else(not_found)?;
                Ok(Some(self.ports.rules.get_rule(app.id(), &id).await?.ok_or_else(not_found)?))
            }
            None => Ok(self.ports.rules.list_rules(app.id()).await?.into_iter().next()),
        }
    }

    /// Puts a probe object where the rule's jobs write, with their credentials, and deletes it.
    async fn bucket(&self, rule: &RecordRule, account: &AccountId, preflight_id: &str) -> Check {
        const NAME: &str = "bucket";
        let Some(deployment_bucket) = self.ports.deployment_bucket.as_deref() else {
            tracing::error!("the deployment's recordings bucket is not configured");
            return Check::failed(NAME, Reason::Storage(FailureCode::InternalError), None);
        };
        let session = format!("roomrec-preflight-{preflight_id}");
        let wanted = match storage::storage_as(rule, deployment_bucket, account, session) {
            Ok(wanted) => wanted,
            Err(_) => return Check::failed(NAME, Reason::Storage(FailureCode::StorageRoleRequired), None),
        };
        let blobs = match self.ports.blobs.blobs(&wanted.access).await {
            Ok(blobs) => blobs,
            Err(err) => return role_refused(&err),
        };
        let key = format!("{}roomrec-preflight-{preflight_id}", wanted.key_root);
        let written = blobs.put(&wanted.bucket, &key, PROBE_BODY.into(), "text/plain", IfStored::Any).await;
        if let Err(err) = written.and(Ok(())) {
            return storage_refused(NAME, &err);
        }
        match blobs.delete(&wanted.bucket, std::slice::from_ref(&key)).await {
            Ok(()) => Check::ok(NAME),
            Err(err) => storage_refused(NAME, &err),
        }
    }

    /// Posts a signed `PREFLIGHT` event to the app's callback URL, once, as a delivery would.
    async fn callback(&self, app: &OwnedApp, preflight_id: &str) -> Result<Check, UseCaseError> {
        let Some(callback) = self.ports.callbacks.get_callback(app.id()).await? else {
            return Ok(Check::not_ok("callback", CheckStatus::Skipped, Reason::NoCallback));
        };
        let (body, headers) = self.signed_event(app, &callback, preflight_id);
        let result = self.ports.notifier.post(&callback.url, &headers, body).await;
        if let Some(error) = result.error() {
            tracing::info!(error, "preflight callback failed");
        }
        Ok(Check::callback(&result))
    }

    /// The test event's body and its headers, signed both ways with the app's `auth_key`.
    fn signed_event(
        &self,
        app: &OwnedApp,
        callback: &RecordCallback,
        preflight_id: &str,
    ) -> (Vec<u8>, webhook::SignedHeaders) {
        let now = self.ports.clock.now();
        let body = serde_json::json!({
            "event_type": PREFLIGHT_EVENT,
            "event_id": format!("preflight-{preflight_id}"),
            "app_id": app.id(),
            "timestamp": now.timestamp(),
            "detail_message": "roomrec preflight: a test event; nothing is recorded",
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let rand = webhook::rtc_rand(self.ports.random.as_ref());
        let id = format!("preflight-{preflight_id}");
        let headers = webhook::sign(callback.auth_key.as_bytes(), &id, now.timestamp(), &rand, &body);
        (body, headers)
    }

    /// The room's roster: who publishes what, each stream `pending` until a worker opened it.
    async fn streams(&self, app: &OwnedApp, room: Option<&RoomId>) -> Result<Check, UseCaseError> {
        const NAME: &str = "streams";
        let Some(room) = room else {
            return Ok(Check::not_ok(NAME, CheckStatus::Skipped, Reason::NoRoom));
        };
        let roster = self.ports.rooms.list_streams(app.id(), room).await?;
        if roster.is_empty() {
            return Ok(Check::failed(NAME, Reason::RoomEmpty, None));
        }
        let streams = roster
            .into_iter()
            .map(|s| StreamFacts::listed(s.user_id.to_string(), s.video_type, s.has_audio, s.has_video))
            .collect();
        Ok(Check::streams(streams))
    }
}

/// The bucket check when the rule's role could not be assumed.
fn role_refused(err: &AccessError) -> Check {
    tracing::info!(error = %crate::error::error_chain(err), "preflight could not assume the rule's role");
    match err {
        AccessError::Denied(_) => Check::failed(
            "bucket",
            Reason::Storage(FailureCode::StorageAccessDenied),
            Some(
                "the role in obs_addr.role_arn could not be assumed; its trust policy must allow this deployment's \
                 worker and preflight roles with sts:ExternalId equal to your account id"
                    .to_owned(),
            ),
        ),
        AccessError::Unavailable(_) => Check::failed("bucket", Reason::Storage(FailureCode::StorageUnavailable), None),
    }
}

/// The check `name` when object storage refused or failed, coded as a job's upload would be.
fn storage_refused(name: &'static str, err: &StoreError) -> Check {
    tracing::info!(error = %crate::error::error_chain(err), "preflight probe failed");
    let forbidden = std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| e.source())
        .any(|e| e.is::<Forbidden>());
    let code = match err {
        StoreError::Rejected(_) if forbidden => FailureCode::StorageAccessDenied,
        StoreError::Rejected(_) => FailureCode::StorageRejected,
        StoreError::Backend(_) | StoreError::Conflict => FailureCode::StorageUnavailable,
    };
    Check::failed(name, Reason::Storage(code), None)
}
