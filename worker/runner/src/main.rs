//! `roomrec-worker`: the recording worker process (ECS/Fargate service, `make up` locally).

mod agent;
mod board;
mod capacity;
mod config;
mod context;
mod files;
mod job;
mod keepalive;
mod mix;
mod pause;
mod probe;
mod protection;
mod quality;
mod reach;
mod recovery;
mod sidecar;
mod spec;
mod spool;
mod storage;
mod upload;
mod worker;

use std::sync::Arc;

use agent::EcsAgent;
use board::Board;
use capacity::Capacity;
use protection::Protector;
use roomrec_adapters::{
    env, init_tracing, ConfigError, DynamoEventLog, DynamoPreflightStore, DynamoStore, EmfMetrics, OsRandom, Retrying,
    SqsJobQueue, StsBlobsProvider, SystemClock, WrapBlobs,
};
use roomrec_domain::clock::Random;
use roomrec_domain::metric::Metrics;
use roomrec_domain::ports::{Blobs, EventLog, Store};
use roomrec_domain::retry::Backoff;
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
    // Every outbox and S3 call rides out an outage of minutes; the spool holds the media.
    let random: Arc<dyn Random> = Arc::new(OsRandom);
    let (dynamo_preflights, preflights_table) =
        (dynamo.clone(), config.base.tables.jocloud.clone().ok_or(ConfigError::Missing(env::JOCLOUD_TABLE))?);
    let events: Arc<dyn EventLog> = Arc::new(DynamoEventLog::new(
        dynamo,
        sqs.clone(),
        config.base.tables.events.clone(),
        config.base.events_queue_url.clone(),
    ));
    let metrics: Arc<dyn Metrics> = Arc::new(EmfMetrics::WORKER);
    let (retry_random, retry_metrics) = (random.clone(), metrics.clone());
    let wrap: WrapBlobs = Arc::new(move |blobs: Arc<dyn Blobs>| {
        Arc::new(Retrying::new(blobs, Backoff::AWS, retry_random.clone()).measured(retry_metrics.clone()))
    });
    let ctx = Arc::new(context::Ctx {
        store,
        events: Arc::new(Retrying::new(events, Backoff::AWS, random.clone())),
        storage: Arc::new(StsBlobsProvider::new(&aws, wrap)),
        queue: Arc::new(SqsJobQueue::new(sqs.clone(), config.base.jobs_queue_url.clone())),
        preflights: Arc::new(DynamoPreflightStore::new(dynamo_preflights, preflights_table)),
        board,
        clock: Arc::new(SystemClock),
        random,
        metrics,
        config: config.clone(),
    });
    let capacity = Capacity::new(config.max_jobs);
    // On ECS, the task is protected from scale-in while it runs a job.
    let protector = match &config.ecs_agent_uri {
        Some(uri) => {
            let protector = Protector::new(Arc::new(EcsAgent::new(uri)?), ctx.random.clone());
            Some(tokio::spawn(protector.run(capacity.watch())))
        }
        None => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! { _ = terminate.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
        tracing::info!("shutdown requested");
        let _ = stop.send(true);
    });
    worker::Worker::new(ctx, capacity, sqs, config.base.jobs_queue_url.clone()).run(stopped).await;
    // Every job has ended or been handed back, and the capacity is dropped: protection is cleared.
    if let Some(protector) = protector {
        if tokio::time::timeout(protection::CLEAR_WAIT, protector).await.is_err() {
            tracing::warn!("scale-in protection not cleared before exit; it lapses by itself");
        }
    }
    Ok(())
}
