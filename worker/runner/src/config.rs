//! The worker's settings, read once: the functions' [`Config`] plus its own.

use std::path::PathBuf;
use std::time::Duration;

use roomrec_adapters::{Config, ConfigError};
use roomrec_media::RtmpReader;

/// Environment variable names the worker adds to the functions' ones.
pub mod env {
    /// Unique name of this worker (default: host name and process id).
    pub const WORKER_ID: &str = "ROOMREC_WORKER_ID";
    /// Local directory for segments and MP4 files before upload.
    pub const SPOOL_DIR: &str = "ROOMREC_SPOOL_DIR";
    /// The worker's capacity in recording units: an individual recording takes one, a mix
    /// its encode and decodes (see `capacity.rs`), so it is still how many individual
    /// recordings one worker runs at once.
    pub const MAX_JOBS: &str = "ROOMREC_MAX_JOBS";
    /// Most MiB one recording may hold on the spool not yet uploaded (while uploads wait out
    /// an outage); past it the recording stops and the job fails.
    pub const SPOOL_BUDGET_MB: &str = "ROOMREC_SPOOL_BUDGET_MB";
    /// `true` lets jobs read `file:` URLs (tests only).
    pub const ALLOW_FILE_INPUTS: &str = "ROOMREC_ALLOW_FILE_INPUTS";
    /// Lease length in seconds; renewed every third of it. A worker that dies or freezes
    /// holds its jobs this long at most.
    pub const LEASE_SECONDS: &str = "ROOMREC_LEASE_SECONDS";
    /// How long a received job message stays invisible, in seconds (extended every third of
    /// it while the job runs): after a worker dies, its jobs' messages come back this long
    /// after its last keepalive.
    pub const VISIBILITY_SECONDS: &str = "ROOMREC_VISIBILITY_SECONDS";
    /// The deployment's recordings bucket: the only one a rule without `obs_addr.role_arn`
    /// may name, its keys under the app's prefix.
    pub const RECORDINGS_BUCKET: &str = "ROOMREC_RECORDINGS_BUCKET";
    /// Set by ECS in every task's containers: the agent's endpoint, through which the worker
    /// turns task scale-in protection on and off. Unset (local runs): no protection.
    pub const ECS_AGENT_URI: &str = "ECS_AGENT_URI";
    /// Which client pulls rtmp(s) streams: `buffered` (the worker's own, the default) or
    /// `libav` (libavformat's).
    pub const RTMP_READER: &str = "ROOMREC_RTMP_READER";
}

/// Default spool budget per recording: about 30 minutes of a 2 Mbit/s stream.
const DEFAULT_SPOOL_BUDGET_MB: u64 = 512;
/// Default capacity in recording units, for the template's 2 vCPU task: a remuxed recording
/// (one unit) took 0.0075 CPU-s a second in the benchmarks, so 200 units keep about 1.5 of the
/// 2 vCPU busy, and a 1080p grid mix (138 units) fits beside 60 recordings rather than waiting
/// for an idle worker.
const DEFAULT_MAX_JOBS: u32 = 200;
/// Default message visibility, as long as the lease: a dead worker's message comes back about
/// when its lease runs out, so another worker resumes its jobs within about 10 s.
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(8);
/// Default lease: renewed when a third of it has passed and retried every second, so a few
/// slow or failed DynamoDB calls in a row do not lose it; short, for a quick takeover.
const DEFAULT_LEASE: Duration = Duration::from_secs(8);

/// Everything the worker needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub base: Config,
    pub worker_id: String,
    pub spool_dir: PathBuf,
    /// Bytes one recording may hold on the spool, not yet uploaded.
    pub spool_budget: u64,
    /// The capacity in recording units (see `capacity.rs`).
    pub max_jobs: u32,
    pub allow_file_inputs: bool,
    pub lease: Duration,
    pub visibility: Duration,
    /// The deployment's recordings bucket ([`env::RECORDINGS_BUCKET`]).
    pub recordings_bucket: String,
    /// The S3 endpoint object locations name (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`); AWS's
    /// own when `None`.
    pub s3_endpoint: Option<String>,
    /// The ECS agent's endpoint (`ECS_AGENT_URI`); no scale-in protection when `None`.
    pub ecs_agent_uri: Option<String>,
    /// Which client pulls rtmp(s) streams ([`env::RTMP_READER`]).
    pub rtmp_reader: RtmpReader,
}

fn parsed<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| ConfigError::Invalid { name, reason: "not a valid value" }),
    }
}

impl WorkerConfig {
    /// Reads every setting from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let default_id =
            format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()), std::process::id());
        Ok(Self {
            base: Config::from_env()?,
            worker_id: parsed(env::WORKER_ID, default_id)?,
            spool_dir: parsed(env::SPOOL_DIR, std::env::temp_dir().join("roomrec-spool"))?,
            spool_budget: parsed(env::SPOOL_BUDGET_MB, DEFAULT_SPOOL_BUDGET_MB)?.saturating_mul(1024 * 1024),
            max_jobs: match parsed(env::MAX_JOBS, DEFAULT_MAX_JOBS)? {
                0 => return Err(ConfigError::Invalid { name: env::MAX_JOBS, reason: "must be at least 1" }),
                units => units,
            },
            allow_file_inputs: parsed(env::ALLOW_FILE_INPUTS, false)?,
            lease: Duration::from_secs(parsed(env::LEASE_SECONDS, DEFAULT_LEASE.as_secs())?),
            visibility: Duration::from_secs(parsed(env::VISIBILITY_SECONDS, DEFAULT_VISIBILITY.as_secs())?),
            recordings_bucket: std::env::var(env::RECORDINGS_BUCKET)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing(env::RECORDINGS_BUCKET))?,
            s3_endpoint: roomrec_adapters::s3_endpoint_override(),
            ecs_agent_uri: std::env::var(env::ECS_AGENT_URI).ok().filter(|v| !v.is_empty()),
            rtmp_reader: parsed(env::RTMP_READER, RtmpReader::default())?,
        })
    }
}
