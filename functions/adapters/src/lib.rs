//! AWS adapters: [`DynamoStore`], [`SqsJobQueue`] and the others implement the core's ports;
//! [`Config`] reads the deployment's settings once from the environment (names match
//! `template.yaml`); [`Deps`] wires the use cases every API function serves.

mod config;
mod dynamo;
mod events;
mod logging;
mod metrics;
mod notifier;
mod preflights;
mod presign;
mod recordings;
mod retrying;
mod s3;
mod sqs;
mod sts;
mod system;

use std::sync::Arc;

pub use config::{env, Config, ConfigError, Tables};
pub use dynamo::DynamoStore;
pub use events::DynamoEventLog;
pub use logging::{init_cli_tracing, init_tracing, FlatJson, LogFormat};
pub use metrics::EmfMetrics;
pub use notifier::{HttpNotifier, Resolve, SystemResolver, Target};
pub use preflights::DynamoPreflightStore;
pub use presign::S3Presigner;
pub use recordings::DynamoRecordingStore;
pub use retrying::Retrying;
use roomrec_domain::clock::{Clock, Random};
use roomrec_domain::delivery::{Deliverer, DelivererPorts};
use roomrec_domain::download::EventDownloads;
use roomrec_domain::ports::{DeliveryQueue, EventLog};
use roomrec_domain::retry::Backoff;
use roomrec_domain::url::PrivateAddresses;
use roomrec_domain::usecases::{
    Access, Apps, AppsPorts, Callbacks, Files, FilesPorts, JobEvents, Jobs, Jocloud, JocloudPorts, Metering, Preflight,
    PreflightPorts, QuotaPorts, Rooms, RoomsPorts, Rules, Sweeper,
};
pub use s3::{endpoint_override as s3_endpoint_override, S3Blobs};
pub use sqs::{SqsDeliveryQueue, SqsJobQueue};
pub use sts::{StsBlobsProvider, WrapBlobs};
pub use system::{OsRandom, SystemClock};

/// What every API function needs: the use cases over DynamoDB and SQS, and the settings.
#[derive(Clone)]
pub struct Deps {
    pub access: Access,
    pub apps: Apps,
    pub rules: Rules,
    pub callbacks: Callbacks,
    pub rooms: Rooms,
    pub jobs: Jobs,
    pub events: JobEvents,
    /// Jobs' files: presigned URLs and playable playlists.
    pub files: Files,
    pub jocloud: Jocloud,
    pub preflight: Preflight,
    pub metering: Metering,
    pub config: Config,
}

impl Deps {
    /// Reads the configuration and wires the use cases; call once per process. Endpoint and
    /// credentials come from the standard AWS environment (`AWS_ENDPOINT_URL` points it at
    /// moto locally).
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::with_aws(&aws_config::load_from_env().await)
    }

    /// [`Deps::from_env`] calling AWS as `aws` says (the local gateway gives each function the
    /// credentials of its own role).
    pub fn with_aws(aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let jocloud_table = config.tables.jocloud.clone().ok_or(ConfigError::Missing(env::JOCLOUD_TABLE))?;
        let (dynamo, sqs) = (aws_sdk_dynamodb::Client::new(aws), aws_sdk_sqs::Client::new(aws));
        let store = Arc::new(DynamoStore::new(dynamo.clone(), config.tables.clone()));
        let queue = Arc::new(SqsJobQueue::new(sqs.clone(), config.jobs_queue_url.clone()));
        let events = Arc::new(DynamoEventLog::new(
            dynamo.clone(),
            sqs,
            config.tables.events.clone(),
            config.events_queue_url.clone(),
        ));
        let notifier = Arc::new(HttpNotifier::new(Arc::new(SystemResolver), private_callbacks(&config)));
        let (clock, random): (Arc<dyn Clock>, Arc<dyn Random>) = (Arc::new(SystemClock), Arc::new(OsRandom));
        // Storage as the deployment or, for a rule naming a tenant's role, as that role.
        let blobs = Arc::new(StsBlobsProvider::new(aws, Arc::new(|blobs| blobs)));
        let preflight = Preflight::new(PreflightPorts {
            rules: store.clone(),
            callbacks: store.clone(),
            rooms: store.clone(),
            blobs: blobs.clone(),
            notifier: notifier.clone(),
            preflights: Arc::new(DynamoPreflightStore::new(dynamo.clone(), jocloud_table.clone())),
            probes: queue.clone(),
            clock: clock.clone(),
            random: random.clone(),
            deployment_bucket: config.recordings_bucket.clone(),
        });
        let quotas = QuotaPorts { apps: store.clone(), quotas: store.clone(), rooms: store.clone() };
        let jobs = Jobs::new(store.clone(), store.clone(), queue, quotas, clock.clone(), random.clone());
        let files = Files::new(FilesPorts {
            jobs: jobs.clone(),
            rules: store.clone(),
            presigner: Arc::new(S3Presigner::new(aws)),
            blobs,
        })
        .with_lifetime(config.download_lifetime);
        let jocloud = Jocloud::new(JocloudPorts {
            recordings: Arc::new(DynamoRecordingStore::new(dynamo, jocloud_table)),
            rooms: store.clone(),
            rules: store.clone(),
            jobs: jobs.clone(),
            files: files.clone(),
            clock: clock.clone(),
            random: random.clone(),
        });
        Ok(Self {
            access: Access::new(store.clone(), store.clone(), clock.clone(), random.clone())
                .with_token_key(config.token_key.clone()),
            apps: Apps::new(AppsPorts {
                apps: store.clone(),
                rules: store.clone(),
                callbacks: store.clone(),
                rooms: store.clone(),
                job_store: store.clone(),
                jobs: jobs.clone(),
                clock: clock.clone(),
                random: random.clone(),
            })
            .with_stream_policy(config.stream_policy.clone()),
            rules: Rules::new(store.clone(), clock.clone(), random.clone()),
            callbacks: Callbacks::new(store.clone(), notifier, private_callbacks(&config), clock.clone()),
            rooms: Rooms::new(RoomsPorts {
                rooms: store.clone(),
                apps: store.clone(),
                rules: store.clone(),
                jobs: jobs.clone(),
                jocloud: jocloud.clone(),
                clock,
                random,
            })
            .with_stream_policy(config.stream_policy.clone()),
            events: JobEvents::new(jobs.clone(), events).with_files(files.clone()),
            files,
            jobs,
            jocloud,
            preflight,
            metering: Metering::new(store),
            config,
        })
    }
}

/// The event outbox and events queue of the deployment.
pub async fn event_log(config: &Config) -> DynamoEventLog {
    let aws = aws_config::load_from_env().await;
    DynamoEventLog::new(
        aws_sdk_dynamodb::Client::new(&aws),
        aws_sdk_sqs::Client::new(&aws),
        config.tables.events.clone(),
        config.events_queue_url.clone(),
    )
}

fn private_callbacks(config: &Config) -> PrivateAddresses {
    if config.allow_private_callbacks {
        PrivateAddresses::Allow
    } else {
        PrivateAddresses::Refuse
    }
}

/// The sweeper wired to the jobs table and the jobs queue.
pub async fn sweeper(config: &Config) -> Sweeper {
    let aws = aws_config::load_from_env().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.tables.clone());
    let queue = SqsJobQueue::new(aws_sdk_sqs::Client::new(&aws), config.jobs_queue_url.clone());
    Sweeper::new(Arc::new(store), Arc::new(queue), Arc::new(SystemClock)).with_init_grace(config.sweep_init_grace)
}

/// The callback deliverer wired to the outbox, the callbacks table, HTTP and the events
/// queues; the dead-letter queue URL is required here.
pub async fn deliverer(config: &Config) -> Result<Deliverer, ConfigError> {
    let dead_letter_url = config.callback_dlq_url.clone().ok_or(ConfigError::Missing(env::CALLBACK_DLQ_URL))?;
    let aws = aws_config::load_from_env().await;
    let (dynamo, sqs) = (aws_sdk_dynamodb::Client::new(&aws), aws_sdk_sqs::Client::new(&aws));
    let events =
        DynamoEventLog::new(dynamo.clone(), sqs.clone(), config.tables.events.clone(), config.events_queue_url.clone());
    let store = Arc::new(DynamoStore::new(dynamo, config.tables.clone()));
    let notifier = HttpNotifier::new(Arc::new(SystemResolver), private_callbacks(config));
    let queue = SqsDeliveryQueue::new(sqs, config.events_queue_url.clone(), dead_letter_url);
    let random: Arc<dyn Random> = Arc::new(OsRandom);
    let ports = DelivererPorts {
        events: Arc::new(Retrying::new(Arc::new(events) as Arc<dyn EventLog>, Backoff::IN_LAMBDA, random.clone())),
        callbacks: store.clone(),
        notifier: Arc::new(notifier),
        queue: Arc::new(Retrying::new(Arc::new(queue) as Arc<dyn DeliveryQueue>, Backoff::IN_LAMBDA, random.clone())),
        clock: Arc::new(SystemClock),
        random,
        metrics: Arc::new(EmfMetrics::CALLBACK_DELIVERY),
    };
    let downloads = EventDownloads {
        jobs: store.clone(),
        rules: store.clone(),
        apps: store.clone(),
        presigner: Arc::new(S3Presigner::new(&aws)),
        lifetime: config.download_lifetime,
    };
    Ok(Deliverer::new(ports).with_schedule(config.retry_schedule).with_downloads(downloads))
}
