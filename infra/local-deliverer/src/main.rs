//! `roomrec-deliverer`: what Lambda's SQS event source does for `callback-delivery`, locally.
//! Long-polls the events queue, hands each batch (with receipt handles) to the same handler
//! the Lambda runs, and deletes the messages it did not report as failures; those come back
//! when the visibility the handler set runs out.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use roomrec_adapters::{deliverer, init_tracing, Config};

/// Largest batch SQS hands out, and the event source mapping's BatchSize in template.yaml.
const BATCH_SIZE: i32 = 10;
/// Long-poll wait per receive, in seconds (SQS allows up to 20).
const RECEIVE_WAIT_SECS: i32 = 2;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = Config::from_env().context("reading the stack environment")?;
    let deliverer = deliverer(&config).await.context("wiring the deliverer")?;
    let sqs = aws_sdk_sqs::Client::new(&aws_config::load_from_env().await);
    let queue = config.events_queue_url;
    tracing::info!(%queue, "delivering callbacks");
    let mut stop = Box::pin(tokio::signal::ctrl_c());
    loop {
        let received = tokio::select! {
            _ = &mut stop => return Ok(()),
            out = sqs.receive_message().queue_url(&queue).max_number_of_messages(BATCH_SIZE).wait_time_seconds(RECEIVE_WAIT_SECS).send() => out,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = %err, "receiving from the events queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
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
