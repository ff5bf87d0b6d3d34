//! AWS adapters: [`DynamoStore`] and [`SqsJobQueue`] implement the core's ports; [`Config`]
//! reads the deployment's settings once from the environment (names match `template.yaml`).

mod config;
mod dynamo;
mod events;
mod s3;
mod sqs;

use std::sync::Arc;

pub use config::{env, Config, ConfigError, Tables};
pub use dynamo::DynamoStore;
pub use events::DynamoEventLog;
pub use s3::S3Blobs;
use roomrec_domain::service::Settings;
use roomrec_domain::url::PrivateAddresses;
use roomrec_domain::Service;
pub use sqs::SqsJobQueue;

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
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), config.tables.clone());
    let queue = SqsJobQueue::new(aws_sdk_sqs::Client::new(&aws), config.jobs_queue_url.clone());
    let private_callbacks =
        if config.allow_private_callbacks { PrivateAddresses::Allow } else { PrivateAddresses::Refuse };
    Service::new(Arc::new(store), Arc::new(queue), Settings { private_callbacks })
}
