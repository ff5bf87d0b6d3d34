//! `roomrec-deliverer`: what Lambda's SQS event source does for `callback-delivery`, locally.
//! Several pollers long-poll the events queue, as Lambda's do, each handing its batches (with
//! receipt handles) to the same handler the Lambda runs, and delete the messages it did not
//! report as failures; those come back when the visibility the handler set runs out.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use roomrec_adapters::{deliverer, init_tracing, Config};
use roomrec_domain::delivery::Deliverer;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Largest batch SQS hands out, and the event source mapping's BatchSize in template.yaml.
const BATCH_SIZE: i32 = 10;
/// Long-poll wait per receive, in seconds (SQS allows up to 20).
const RECEIVE_WAIT_SECS: i32 = 2;
/// Batches handled at once: Lambda's SQS event source starts with five concurrent pollers.
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html>
const POLLERS: usize = 5;
/// Pause after a failed receive before the next one.
const RECEIVE_RETRY_PAUSE: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = Config::from_env().context("reading the stack environment")?;
    let deliverer = deliverer(&config).await.context("wiring the deliverer")?;
    let sqs = aws_sdk_sqs::Client::new(&aws_config::load_from_env().await);
    let queue = config.events_queue_url;
    tracing::info!(%queue, pollers = POLLERS, "delivering callbacks");
    let (stop, stopped) = watch::channel(false);
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..POLLERS {
        pollers.spawn(poll(deliverer.clone(), sqs.clone(), queue.clone(), stopped.clone()));
    }
    // SIGINT or SIGTERM: each poller finishes the batch in hand, then stops.
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    let _ = stop.send(true);
    while pollers.join_next().await.is_some() {}
    Ok(())
}

/// One poller: receive a batch, hand it to the handler, delete what it settled; until `stop`.
async fn poll(deliverer: Deliverer, sqs: aws_sdk_sqs::Client, queue: String, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let received = tokio::select! {
            _ = stop.changed() => return,
            out = sqs.receive_message().queue_url(&queue).max_number_of_messages(BATCH_SIZE).wait_time_seconds(RECEIVE_WAIT_SECS).send() => out,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = %err, "receiving from the events queue failed");
                tokio::time::sleep(RECEIVE_RETRY_PAUSE).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(lambda_message).collect();
        let response = callback_delivery::handle(&deliverer, event).await;
        let failed: HashSet<_> = response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
        let done: Vec<_> = messages
            .iter()
            .filter(|m| m.message_id.as_ref().is_some_and(|id| !failed.contains(id)))
            .filter_map(|m| {
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(m.message_id.clone()?)
                    .receipt_handle(m.receipt_handle.clone()?);
                entry.build().ok()
            })
            .collect();
        if !done.is_empty() {
            if let Err(err) = sqs.delete_message_batch().queue_url(&queue).set_entries(Some(done)).send().await {
                tracing::warn!(error = %err, "deleting delivered messages failed; they will be seen again");
            }
        }
    }
}

/// The message as Lambda's event source would hand it over.
fn lambda_message(message: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut out = SqsMessage::default();
    out.message_id = message.message_id.clone();
    out.receipt_handle = message.receipt_handle.clone();
    out.body = message.body.clone();
    out.md5_of_body = message.md5_of_body.clone();
    out.event_source = Some("aws:sqs".into());
    out
}
