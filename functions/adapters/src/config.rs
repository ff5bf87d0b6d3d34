//! Typed configuration, read once at start-up.

use roomrec_domain::download::DownloadLifetime;
use roomrec_domain::publish::PublishBase;
use roomrec_domain::reach::StreamPolicy;
use roomrec_domain::token::TokenKey;
use roomrec_domain::webhook::RetrySchedule;

/// Environment variable names; `template.yaml` sets exactly these, but for the test-only
/// [`RETRY_SCHEDULE_SCALE`](env::RETRY_SCHEDULE_SCALE).
pub mod env {
    /// DynamoDB table of API credentials.
    pub const ACCOUNTS_TABLE: &str = "ROOMREC_ACCOUNTS_TABLE";
    /// DynamoDB table of apps.
    pub const APPS_TABLE: &str = "ROOMREC_APPS_TABLE";
    /// DynamoDB table of record rules.
    pub const RULES_TABLE: &str = "ROOMREC_RULES_TABLE";
    /// DynamoDB table of record callbacks.
    pub const CALLBACKS_TABLE: &str = "ROOMREC_CALLBACKS_TABLE";
    /// DynamoDB table of room rosters.
    pub const ROOMS_TABLE: &str = "ROOMREC_ROOMS_TABLE";
    /// DynamoDB table of recording jobs.
    pub const JOBS_TABLE: &str = "ROOMREC_JOBS_TABLE";
    /// DynamoDB table of Jocloud reservations and recordings (the API functions need it;
    /// the worker does not).
    pub const JOCLOUD_TABLE: &str = "ROOMREC_JOCLOUD_TABLE";
    /// SQS queue URL workers take jobs from.
    pub const JOBS_QUEUE_URL: &str = "ROOMREC_JOBS_QUEUE_URL";
    /// DynamoDB table of job events (the callback outbox).
    pub const EVENTS_TABLE: &str = "ROOMREC_EVENTS_TABLE";
    /// SQS queue URL events are queued on for delivery.
    pub const EVENTS_QUEUE_URL: &str = "ROOMREC_EVENTS_QUEUE_URL";
    /// SQS queue URL undeliverable events are parked on (the callback deliverer's).
    pub const CALLBACK_DLQ_URL: &str = "ROOMREC_CALLBACK_DLQ_URL";
    /// `true` lets callback URLs name private addresses (local development only).
    pub const ALLOW_PRIVATE_CALLBACKS: &str = "ROOMREC_ALLOW_PRIVATE_CALLBACKS";
    /// Host:port pairs stream pulls may reach although they resolve to private addresses,
    /// comma-separated (the local stack's media server); metadata addresses stay refused.
    pub const STREAM_ALLOW: &str = "ROOMREC_STREAM_ALLOW";
    /// Shared secret the media server's hook calls must carry; unset disables the hook.
    pub const HOOK_TOKEN: &str = "ROOMREC_HOOK_TOKEN";
    /// The deployment's key for `X-Auth-Token` signatures, at least 32 characters; unset, no
    /// token is issued or accepted.
    pub const TOKEN_KEY: &str = "ROOMREC_TOKEN_KEY";
    /// Base URL workers pull hook-reported streams from, e.g. `rtmp://media.internal:1935`.
    pub const MEDIA_PULL_BASE: &str = "ROOMREC_MEDIA_PULL_BASE";
    /// Where publishers reach the media server, the RTMP application included, e.g.
    /// `rtmp://media.example.com:1935/live`: the base of minted publish URLs. Unset, no
    /// publish URL can be minted.
    pub const MEDIA_PUBLISH_BASE: &str = "ROOMREC_MEDIA_PUBLISH_BASE";
    /// Seconds a presigned `download_url` works, 1 to 604800 (SigV4's 7 days); default 3600.
    pub const DOWNLOAD_URL_SECONDS: &str = "ROOMREC_DOWNLOAD_URL_SECONDS";
    /// Tests only: a factor in (0, 1] applied to the callback retry schedule (default 1).
    /// Never set in template.yaml.
    pub const RETRY_SCHEDULE_SCALE: &str = "ROOMREC_RETRY_SCHEDULE_SCALE";
    /// Tests only: seconds a job may stay INIT before the sweeper queues it again (default
    /// 60). Never set in template.yaml.
    pub const SWEEP_INIT_GRACE_SECONDS: &str = "ROOMREC_SWEEP_INIT_GRACE_SECONDS";
}

/// Physical names of the DynamoDB tables.
#[derive(Debug, Clone)]
pub struct Tables {
    pub accounts: String,
    pub apps: String,
    pub rules: String,
    pub callbacks: String,
    pub rooms: String,
    pub jobs: String,
    pub events: String,
    /// Jocloud reservations and recordings; the worker runs without it.
    pub jocloud: Option<String>,
}

/// The deployment's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Tables,
    pub jobs_queue_url: String,
    pub events_queue_url: String,
    /// Needed by the callback deliverer only.
    pub callback_dlq_url: Option<String>,
    pub allow_private_callbacks: bool,
    /// Where stream pulls may go, with the deployment's allow-list.
    pub stream_policy: StreamPolicy,
    pub hook_token: Option<String>,
    /// Signs and checks `X-Auth-Token`s; `None` disables them.
    pub token_key: Option<TokenKey>,
    pub media_pull_base: Option<String>,
    /// The base of minted publish URLs.
    pub media_publish_base: Option<PublishBase>,
    /// The callback retry schedule: the standard one unless a test compresses it.
    pub retry_schedule: RetrySchedule,
    /// How long a job may stay INIT before the sweeper queues it again.
    pub sweep_init_grace: std::time::Duration,
    /// How long a presigned `download_url` works.
    pub download_lifetime: DownloadLifetime,
}

/// A required setting is missing or unreadable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable is not set.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// The variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: &'static str },
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name))
}

fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Config {
    /// Reads every setting from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let allow_private_callbacks = match optional(env::ALLOW_PRIVATE_CALLBACKS).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ConfigError::Invalid { name: env::ALLOW_PRIVATE_CALLBACKS, reason: "use true or false" })
            }
        };
        let stream_policy = StreamPolicy::parse_allow_list(&optional(env::STREAM_ALLOW).unwrap_or_default())
            .map_err(|reason| ConfigError::Invalid { name: env::STREAM_ALLOW, reason })?;
        let retry_schedule = match optional(env::RETRY_SCHEDULE_SCALE) {
            None => RetrySchedule::STANDARD,
            Some(text) => text.trim().parse().ok().and_then(RetrySchedule::scaled).ok_or(ConfigError::Invalid {
                name: env::RETRY_SCHEDULE_SCALE,
                reason: "use a number greater than 0 and at most 1",
            })?,
        };
        Ok(Self {
            tables: Tables {
                accounts: required(env::ACCOUNTS_TABLE)?,
                apps: required(env::APPS_TABLE)?,
                rules: required(env::RULES_TABLE)?,
                callbacks: required(env::CALLBACKS_TABLE)?,
                rooms: required(env::ROOMS_TABLE)?,
                jobs: required(env::JOBS_TABLE)?,
                events: required(env::EVENTS_TABLE)?,
                jocloud: optional(env::JOCLOUD_TABLE),
            },
            jobs_queue_url: required(env::JOBS_QUEUE_URL)?,
            events_queue_url: required(env::EVENTS_QUEUE_URL)?,
            callback_dlq_url: optional(env::CALLBACK_DLQ_URL),
            allow_private_callbacks,
            stream_policy,
            hook_token: optional(env::HOOK_TOKEN),
            token_key: optional(env::TOKEN_KEY)
                .map(|text| TokenKey::parse(&text))
                .map(|key| {
                    key.ok_or(ConfigError::Invalid { name: env::TOKEN_KEY, reason: "use at least 32 characters" })
                })
                .transpose()?,
            media_pull_base: optional(env::MEDIA_PULL_BASE),
            media_publish_base: optional(env::MEDIA_PUBLISH_BASE)
                .map(|text| PublishBase::parse(&text))
                .transpose()
                .map_err(|_| ConfigError::Invalid {
                    name: env::MEDIA_PUBLISH_BASE,
                    reason: "use rtmp[s]://host[:port]/<application>",
                })?,
            retry_schedule,
            download_lifetime: match optional(env::DOWNLOAD_URL_SECONDS) {
                None => DownloadLifetime::default(),
                Some(text) => text.trim().parse::<u64>().ok().and_then(|s| DownloadLifetime::try_from(s).ok()).ok_or(
                    ConfigError::Invalid { name: env::DOWNLOAD_URL_SECONDS, reason: "use 1 to 604800 seconds" },
                )?,
            },
            sweep_init_grace: match optional(env::SWEEP_INIT_GRACE_SECONDS) {
                None => roomrec_domain::usecases::INIT_GRACE,
                Some(text) => {
                    std::time::Duration::from_secs(text.trim().parse().map_err(|_| ConfigError::Invalid {
                        name: env::SWEEP_INIT_GRACE_SECONDS,
                        reason: "use a whole number of seconds",
                    })?)
                }
            },
        })
    }
}
