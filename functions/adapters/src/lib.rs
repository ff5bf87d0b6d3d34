//! AWS adapters: [`DynamoStore`] and [`SqsJobQueue`] implement the core's ports; [`Config`]
//! reads the deployment's settings once from the environment (names match `template.yaml`).

mod config;
mod dynamo;
mod events;
mod notifier;
mod recordings;
mod s3;
mod sqs;

use std::sync::Arc;

pub use config::{env, Config, ConfigError, Tables};
pub use dynamo::DynamoStore;
pub use events::DynamoEventLog;
pub use notifier::{HttpNotifier, Resolve, SystemResolver, Target};
pub use recordings::DynamoRecordingStore;
use roomrec_domain::delivery::Deliverer;
use roomrec_domain::service::Settings;
use roomrec_domain::url::PrivateAddresses;
use roomrec_domain::Service;
pub use s3::S3Blobs;
pub use sqs::{SqsDeliveryQueue, SqsJobQueue};

/// What every function needs: the core service and the deployment's settings.
#[derive(Clone)]
pub struct Deps {
    pub service: Service,
    pub config: Config,
}

impl Deps {
    /// Reads the configuration and wires the service; call once per process.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        Ok(Self { service: service(&config).await, config })
    }
}

/// Logs to stderr (CloudWatch in Lambda), filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second call (tests, the local gateway) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr).try_init();
}

/// The core service wired to DynamoDB and SQS. Endpoint and credentials come from the standard
/// AWS environment (`AWS_ENDPOINT_URL` points it at moto locally).
pub async fn service(config: &Config) -> Service {
    let aws = aws_config::load_from_env().await;
    let (dynamo, sqs) = (aws_sdk_dynamodb::Client::new(&aws), aws_sdk_sqs::Client::new(&aws));
    let store = DynamoStore::new(dynamo.clone(), config.tables.clone());
    let queue = SqsJobQueue::new(sqs.clone(), config.jobs_queue_url.clone());
    let events =
        DynamoEventLog::new(dynamo.clone(), sqs, config.tables.events.clone(), config.events_queue_url.clone());
    let settings =
        Settings { private_callbacks: private_callbacks(config), s3_endpoint: aws.endpoint_url().map(str::to_owned) };
    let service = Service::new(Arc::new(store), Arc::new(queue), settings)
        .with_events(Arc::new(events))
        .with_notifier(Arc::new(HttpNotifier::new(Arc::new(SystemResolver), private_callbacks(config))));
    match &config.tables.jocloud {
        Some(table) => service.with_recordings(Arc::new(DynamoRecordingStore::new(dynamo, table.clone()))),
        None => service,
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

/// The callback deliverer wired to the outbox, the callbacks table, HTTP and the events
/// queues; the dead-letter queue URL is required here.
pub async fn deliverer(config: &Config) -> Result<Deliverer, ConfigError> {
    let dead_letter_url = config.callback_dlq_url.clone().ok_or(ConfigError::Missing(env::CALLBACK_DLQ_URL))?;
    let aws = aws_config::load_from_env().await;
    let (dynamo, sqs) = (aws_sdk_dynamodb::Client::new(&aws), aws_sdk_sqs::Client::new(&aws));
    let events =
        DynamoEventLog::new(dynamo.clone(), sqs.clone(), config.tables.events.clone(), config.events_queue_url.clone());
    let store = DynamoStore::new(dynamo, config.tables.clone());
    let notifier = HttpNotifier::new(Arc::new(SystemResolver), private_callbacks(config));
    let queue = SqsDeliveryQueue::new(sqs, config.events_queue_url.clone(), dead_letter_url);
    Ok(Deliverer::new(Arc::new(events), Arc::new(store), Arc::new(notifier), Arc::new(queue))
        .with_schedule(config.retry_schedule))
}
