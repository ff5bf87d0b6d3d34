//! The `callback-delivery` handler: a batch of events-queue messages in, the messages to
//! retry out (SQS partial batch response). Shared by the Lambda and the local deliverer.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use roomrec_domain::delivery::{Deliverer, EventMessage, Settled};
use roomrec_domain::error::error_chain;

/// Delivers every message of `event`: one job's messages one after the other in sequence
/// order, different jobs concurrently. Returns the messages SQS must deliver again.
pub async fn handle(deliverer: &Deliverer, event: SqsEvent) -> SqsBatchResponse {
    let mut jobs: BTreeMap<String, Vec<(EventMessage, SqsMessage)>> = BTreeMap::new();
    for record in event.records {
        if let Some(message) = parse(&record) {
            jobs.entry(message.job_id.to_string()).or_default().push((message, record));
        }
    }
    let batches = jobs.into_values().map(|mut messages| async move {
        messages.sort_by_key(|(message, _)| message.sequence);
        let mut retry = Vec::new();
        for (message, record) in messages {
            if !settle(deliverer, &message, &record).await {
                retry.extend(record.message_id);
            }
        }
        retry
    });
    let mut response = SqsBatchResponse::default();
    for id in futures::future::join_all(batches).await.into_iter().flatten() {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// The message's outbox reference; `None` (logged, acknowledged) when it cannot be one, since
/// no retry would change that.
fn parse(record: &SqsMessage) -> Option<EventMessage> {
    match serde_json::from_str(record.body.as_deref().unwrap_or_default()) {
        Ok(message) => Some(message),
        Err(err) => {
            tracing::error!(message_id = ?record.message_id, error = %err, "dropping a malformed events-queue message");
            None
        }
    }
}

/// Delivers one message; `true` when it is done with (acknowledge it).
async fn settle(deliverer: &Deliverer, message: &EventMessage, record: &SqsMessage) -> bool {
    match deliverer.deliver(message, record.receipt_handle.as_deref()).await {
        Ok(Settled::Done(status)) => {
            tracing::info!(job_id = %message.job_id, sequence = message.sequence, ?status, "event settled");
            true
        }
        Ok(Settled::Later(delay)) => {
            tracing::info!(job_id = %message.job_id, sequence = message.sequence, delay_secs = delay.as_secs(), "event postponed");
            false
        }
        Err(err) => {
            let chain = error_chain(&err);
            tracing::warn!(job_id = %message.job_id, sequence = message.sequence, error = %chain, "delivery failed; SQS will retry");
            false
        }
    }
}
