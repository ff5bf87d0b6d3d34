//! `roomrec-worker`: the recording worker process (ECS/Fargate service, `make up` locally).

mod board;
mod config;
mod context;
mod files;
mod job;
mod mix;
mod recovery;
mod spec;
mod upload;
mod worker;

use std::sync::Arc;

use board::Board;
use roomrec_adapters::{init_tracing, DynamoEventLog, DynamoStore, OsRandom, S3Blobs, SystemClock};
use roomrec_domain::ports::Store;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = config::WorkerConfig::from_env()?;
    let aws = aws_config::load_from_env().await;
    let (dynamo, sqs) = (aws_sdk_dynamodb::Client::new(&aws), aws_sdk_sqs::Client::new(&aws));
    let store: Arc<dyn Store> = Arc::new(DynamoStore::new(dynamo.clone(), config.base.tables.clone()));
    let board = Board::new(store.clone() as Arc<dyn roomrec_domain::ports::JobStore>);
    tokio::spawn(board.clone().run());
    let ctx = Arc::new(context::Ctx {
        store,
        events: Arc::new(DynamoEventLog::new(
            dynamo,
            sqs.clone(),
            config.base.tables.events.clone(),
            config.base.events_queue_url.clone(),
        )),
        blobs: Arc::new(S3Blobs::new(&aws)),
        board,
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
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
