//! The `callback-delivery` handler: a batch of events-queue messages in, the messages to
//! retry out (SQS partial batch response). Shared by the Lambda and the local deliverer.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use roomrec_domain::delivery::{Deliverer, DeliveryError, EventMessage, Queued, Settled};
use roomrec_domain::error::error_chain;

/// Delivers every message of `event`: one job's messages one after the other in sequence
/// order, different jobs concurrently. Returns the messages SQS must deliver again.
pub async fn handle(deliverer: &Deliverer, event: SqsEvent) -> SqsBatchResponse {
    let (batch, ids): (Vec<Queued>, Vec<Option<String>>) = event
        .records
        .into_iter()
        .filter_map(|record| {
            let message = parse(&record)?;
            Some((Queued { message, receipt: record.receipt_handle }, record.message_id))
        })
        .unzip();
    let results = deliverer.deliver_batch(&batch).await;
    let mut response = SqsBatchResponse::default();
    for ((queued, id), result) in batch.iter().zip(ids).zip(results) {
        if let (false, Some(id)) = (settled(&queued.message, result), id) {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
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

/// Logs what became of one message; `true` when it is done with (acknowledge it).
fn settled(message: &EventMessage, result: Result<Settled, DeliveryError>) -> bool {
    match result {
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
