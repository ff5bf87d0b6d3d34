//! Fixtures with fixed ids, so the events in `events/` can be replayed as they are
//! (`cargo lambda invoke --data-file`, `sam local invoke -e`, and the replay test): the API
//! Gateway events' credential, app, rule and jobs, and the outbox event that
//! `events/callback-delivery/` delivers.

use std::sync::Arc;

use roomrec_adapters::{event_log, Config, DynamoEventLog, DynamoStore, OsRandom, SystemClock};
use roomrec_domain::app::{App, AppRequest};
use roomrec_domain::clock::Clock;
use roomrec_domain::event::RecordEvent;
use roomrec_domain::ids::{AccountId, AppId, JobId, KeyId, RoomId, RuleId, UserId};
use roomrec_domain::job::Job;
use roomrec_domain::ports::{AppStore, CallbackStore, JobStore, QuotaStore, RoomStore, RuleStore, StoreError};
use roomrec_domain::quota::{QuotaSettings, Quotas};
use roomrec_domain::room::VideoType;
use roomrec_domain::rule::RecordRule;
use roomrec_domain::usecases::Access;

/// Key id of the fixture credential (the events' `authorization` header).
pub const KEY_ID: &str = "0000000000000000e7e7";
/// Secret of the fixture credential.
pub const SECRET: &str = "replay-secret-0123456789abcdef0123456789abcdef";
/// The fixture app: the seeds' own app id.
pub const APP_ID: &str = "5ff9701f2346968bb306cb43";
/// The fixture record rule: the seeds' own rule id.
pub const RULE_ID: &str = "5d0ec2c53a2c15625017adb8bbbcd9ab";
/// A fixture individual job: the seeds' own job id.
pub const INDIVIDUAL_JOB_ID: &str = "607f87cf00d861eeefffa6c88054cdab";
/// A fixture mix job: the seeds' own job id.
pub const MIX_JOB_ID: &str = "607f9fc100d861eeefff9b300b388dab";
/// The fixture account.
pub const ACCOUNT: &str = "replay";
/// The fixture outbox event: the individual job's first event (`CLOUD_RECORD_OVER`). The
/// fixture app has no record callback, so delivering it settles as `SKIPPED`.
pub const EVENT_ID: &str = "607f87cf00d861eeefffa6c8e7e70001";
/// The fixture event's sequence in its job.
pub const EVENT_SEQUENCE: u64 = 1;

fn id<T>(parsed: Option<T>, what: &str) -> anyhow::Result<T> {
    parsed.ok_or_else(|| anyhow::anyhow!("fixture {what} id is malformed"))
}

/// What the operator commands work on: the credentials (through [`Access`]), the store and
/// the outbox of the configured deployment.
pub struct Admin {
    pub access: Access,
    pub store: Arc<DynamoStore>,
    pub events: DynamoEventLog,
    /// Whether this deployment is a local stack, where the public fixture credential may be
    /// written: its AWS endpoint is on loopback ([`is_local_endpoint`]), or the operator said so.
    pub local: bool,
}

/// Whether `endpoint`, the AWS endpoint the SDK was pointed at (`AWS_ENDPOINT_URL`), is an
/// emulator on this machine: `localhost` or a loopback address. No endpoint means AWS.
pub fn is_local_endpoint(endpoint: Option<&str>) -> bool {
    let Some(url) = endpoint.and_then(|e| url::Url::parse(e).ok()) else { return false };
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Admin {
    /// Wires the deployment named by the environment.
    pub async fn from_env() -> anyhow::Result<Self> {
        let config = Config::from_env()?;
        let aws = aws_config::load_from_env().await;
        let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.tables.clone()));
        let access = Access::new(store.clone(), store.clone(), Arc::new(SystemClock), Arc::new(OsRandom));
        let local = is_local_endpoint(aws.endpoint_url());
        Ok(Self { access, store, events: event_log(&config).await, local })
    }
}

/// Sets what `changes` sets of the account's quotas, keeping the rest; returns the limits
/// that apply from now on.
pub async fn set_quotas(admin: &Admin, account: &AccountId, changes: QuotaSettings) -> anyhow::Result<Quotas> {
    let settings = admin.store.get_quotas(account).await?.merged(changes);
    admin.store.put_quotas(account, &settings).await?;
    Ok(settings.limits())
}

/// Writes the fixture credential, app, rule and jobs; running it again resets them. Only into
/// a local stack: the credential's secret is public (every event in `events/` carries it), so
/// in a real deployment it would be a key anyone can use.
pub async fn seed(admin: &Admin) -> anyhow::Result<()> {
    anyhow::ensure!(
        admin.local,
        "refusing to write the fixtures: their credential is public (events/), and AWS_ENDPOINT_URL \
         does not name a local stack on loopback (pass --local if this is a local emulator elsewhere)"
    );
    let account = AccountId::try_from(ACCOUNT)?;
    admin.access.register_credential(account.clone(), id(KeyId::parse(KEY_ID), "key")?, SECRET).await?;
    let store = admin.store.as_ref();
    let now = SystemClock.timestamp();
    let random = &OsRandom;
    let name = Some("replay".to_owned().try_into()?);
    let mut app = App::create(AppRequest { app_name: name, stream_url_template: None }, random, now)?;
    app.app_id = id(AppId::parse(APP_ID), "app")?;
    store.put_app(&account, &app).await?;
    let rule_request = serde_json::from_str(
        r#"{"obs_addr":{"bucket":"obsName","location":"cn-north-4","object":"Record/"},"record_formats":["MP4"]}"#,
    )?;
    let mut rule = RecordRule::create(app.app_id.clone(), rule_request, random, now)?;
    rule.rule_id = id(RuleId::parse(RULE_ID), "rule")?;
    store.put_rule(&rule).await?;
    let room = RoomId::try_from("room001")?;
    for user in ["user001", "user002"] {
        for video_type in [VideoType::Camerastream, VideoType::Substream] {
            store.delete_stream(&app.app_id, &room, &UserId::try_from(user)?, video_type).await?;
        }
    }
    let individual = serde_json::from_str(&format!(
        r#"{{"room_id":"room001","user_id":"user001","record_param":{{"record_rule_id":"{RULE_ID}"}}}}"#
    ))?;
    let mix = serde_json::from_str(&format!(
        r#"{{"mix_param":{{"room_id":"room001","encode_template":"1920x1080_30_4620"}},"record_param":{{"record_rule_id":"{RULE_ID}"}}}}"#
    ))?;
    for (mut job, job_id) in [
        (Job::individual(app.app_id.clone(), individual, random, now)?, INDIVIDUAL_JOB_ID),
        (Job::mix(app.app_id.clone(), mix, random, now)?, MIX_JOB_ID),
    ] {
        job.job_id = id(JobId::parse(job_id), "job")?;
        job.stream_name = job.stream_name.replacen(&job.stream_name[2..34], job_id, 1);
        store.delete_job(&job.app_id, &job.job_id).await?;
        match store.create_job(&account, &job).await {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(err) => return Err(err.into()),
        }
    }
    // No callback (record-callback-api's events may have set one), and the outbox event back
    // to PENDING with no attempts: delivering it is skipped, every time.
    store.delete_callback(&app.app_id).await?;
    admin.events.overwrite(&fixture_event()?).await?;
    Ok(())
}

/// The fixture outbox event, with fixed ids and times.
pub fn fixture_event() -> anyhow::Result<RecordEvent> {
    Ok(serde_json::from_value(serde_json::json!({
        "event_id": EVENT_ID,
        "sequence": EVENT_SEQUENCE,
        "event_type": "CLOUD_RECORD_OVER",
        "app_id": APP_ID,
        "job_id": INDIVIDUAL_JOB_ID,
        "room_id": "room001",
        "stream_name": format!("s_{INDIVIDUAL_JOB_ID}_room001_user001"),
        "detail_message": "TENANT_STOP",
        "create_time": "2021-04-21T10:29:33Z",
    }))?)
}

#[cfg(test)]
mod tests {
    use super::is_local_endpoint;

    #[test]
    fn only_a_loopback_endpoint_is_a_local_stack() {
        for local in ["http://127.0.0.1:5000", "http://localhost:4566", "http://[::1]:5000/", "http://127.8.0.1"] {
            assert!(is_local_endpoint(Some(local)), "{local}");
        }
        let remote = [
            "https://dynamodb.eu-west-1.amazonaws.com",
            "http://10.0.0.5:4566",
            "http://localhost.example.com",
            "not a url",
        ];
        for endpoint in remote.map(Some).into_iter().chain([None]) {
            assert!(!is_local_endpoint(endpoint), "{endpoint:?}");
        }
    }
}
