//! `roomrec-worker`: the recording worker process (ECS/Fargate service, `make up` locally).

mod config;
mod context;
mod files;
mod job;
mod keys;
mod mix;
mod recovery;
mod spec;
mod upload;
mod worker;

use std::sync::Arc;

use roomrec_adapters::{init_tracing, DynamoEventLog, DynamoStore, S3Blobs};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = config::WorkerConfig::from_env()?;
    let aws = aws_config::load_from_env().await;
    let (dynamo, sqs) = (aws_sdk_dynamodb::Client::new(&aws), aws_sdk_sqs::Client::new(&aws));
    let ctx = Arc::new(context::Ctx {
        store: Arc::new(DynamoStore::new(dynamo.clone(), config.base.tables.clone())),
        events: Arc::new(DynamoEventLog::new(
            dynamo,
            sqs.clone(),
            config.base.tables.events.clone(),
            config.base.events_queue_url.clone(),
        )),
        blobs: Arc::new(S3Blobs::new(&aws)),
        config: config.clone(),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! { _ = terminate.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
        tracing::info!("shutdown requested");
        let _ = stop.send(true);
    });
    worker::Worker::new(ctx, sqs, config.base.jobs_queue_url.clone()).run(stopped).await;
    Ok(())
}
