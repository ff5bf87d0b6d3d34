//! The event outbox in DynamoDB (`job_id`, `sequence`) and its delivery queue on SQS.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use roomrec_domain::event::RecordEvent;
use roomrec_domain::ids::JobId;
use roomrec_domain::ports::{EventLog, QueueError, StoreError};

/// The per-job counter lives in the item with sequence 0, before every event.
const COUNTER_SEQUENCE: &str = "0";

/// [`EventLog`] over the events table and queue.
#[derive(Debug, Clone)]
pub struct DynamoEventLog {
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    table: String,
    queue_url: String,
}

fn backend<E: std::error::Error + Send + Sync + 'static>(err: E) -> StoreError {
    StoreError::Backend(Box::new(err))
}

/// The counter update answered without the counter.
#[derive(Debug, thiserror::Error)]
#[error("the event counter update returned no value")]
struct NoCounter;

impl DynamoEventLog {
    /// An outbox in `table` feeding `queue_url`.
    pub fn new(dynamo: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client, table: String, queue_url: String) -> Self {
        Self { dynamo, sqs, table, queue_url }
    }
}

#[async_trait]
impl EventLog for DynamoEventLog {
    async fn next_sequence(&self, job_id: &JobId) -> Result<u64, StoreError> {
        let out = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("job_id", AttributeValue::S(job_id.to_string()))
            .key("sequence", AttributeValue::N(COUNTER_SEQUENCE.into()))
            .update_expression("ADD last_sequence :one")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(backend)?;
        let value = out.attributes.and_then(|a| a.get("last_sequence").and_then(|v| v.as_n().ok()).cloned());
        value.and_then(|v| v.parse().ok()).ok_or_else(|| backend(NoCounter))
    }

    async fn append(&self, event: &RecordEvent) -> Result<(), StoreError> {
        let doc = serde_json::to_string(event).map_err(backend)?;
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .item("job_id", AttributeValue::S(event.job_id.to_string()))
            .item("sequence", AttributeValue::N(event.sequence.to_string()))
            .item("event_id", AttributeValue::S(event.event_id.clone()))
            .item("app_id", AttributeValue::S(event.app_id.to_string()))
            .item("delivery_status", AttributeValue::S("PENDING".into()))
            .item("doc", AttributeValue::S(doc))
            .condition_expression("attribute_not_exists(#seq)")
            .expression_attribute_names("#seq", "sequence")
            .send()
            .await
            .map_err(|err| match err.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => StoreError::Conflict,
                _ => backend(err),
            })?;
        Ok(())
    }

    async fn list(&self, job_id: &JobId) -> Result<Vec<RecordEvent>, StoreError> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .query()
                .table_name(&self.table)
                .key_condition_expression("job_id = :job AND #seq > :counter")
                .expression_attribute_names("#seq", "sequence")
                .expression_attribute_values(":job", AttributeValue::S(job_id.to_string()))
                .expression_attribute_values(":counter", AttributeValue::N(COUNTER_SEQUENCE.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                let doc = item.get("doc").and_then(|v| v.as_s().ok()).ok_or_else(|| backend(NoCounter))?;
                events.push(serde_json::from_str(doc).map_err(backend)?);
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(events),
            }
        }
    }

    async fn publish(&self, event: &RecordEvent) -> Result<(), QueueError> {
        let body = serde_json::json!({ "job_id": event.job_id, "sequence": event.sequence, "event_id": event.event_id });
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body.to_string())
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }
}
