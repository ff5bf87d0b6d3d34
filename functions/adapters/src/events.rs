//! The event outbox in DynamoDB (`job_id`, `sequence`) and its delivery queue on SQS.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use roomrec_domain::event::{Attempt, DeliveryStatus, DeliveryUpdate, RecordEvent, StoredEvent};
use roomrec_domain::ids::JobId;
use roomrec_domain::ports::{EventLog, QueueError, StoreError};

use crate::dynamo::{batch_get, write_error};

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

/// An outbox item lacks an attribute it must have.
#[derive(Debug, thiserror::Error)]
#[error("outbox item without a readable {0}")]
struct Unreadable(&'static str);

type Item = HashMap<String, AttributeValue>;

/// Reads an outbox item: the event (`doc`) and its delivery log.
fn stored_event(item: &Item) -> Result<StoredEvent, StoreError> {
    let text = |name: &'static str| item.get(name).and_then(|v| v.as_s().ok());
    let doc = text("doc").ok_or_else(|| backend(Unreadable("doc")))?;
    let event = serde_json::from_str(doc).map_err(backend)?;
    let delivery_status = DeliveryStatus::parse(text("delivery_status").map_or("PENDING", String::as_str))
        .ok_or_else(|| backend(Unreadable("delivery_status")))?;
    let attempts = match item.get("attempts").and_then(|v| v.as_l().ok()) {
        Some(list) => list
            .iter()
            .map(|v| {
                v.as_s()
                    .map_err(|_| backend(Unreadable("attempts")))
                    .and_then(|s| serde_json::from_str(s).map_err(backend))
            })
            .collect::<Result<Vec<Attempt>, _>>()?,
        None => Vec::new(),
    };
    let next_attempt_at = match text("next_attempt_at") {
        Some(t) => Some(serde_json::from_value(serde_json::Value::String(t.clone())).map_err(backend)?),
        None => None,
    };
    let retry_from = match item.get("retry_from").and_then(|v| v.as_n().ok()) {
        Some(n) => n.parse().map_err(|_| backend(Unreadable("retry_from")))?,
        None => 0,
    };
    Ok(StoredEvent { event, delivery_status, attempts, next_attempt_at, retry_from })
}

impl DynamoEventLog {
    /// The put of `event` as a fresh `PENDING` outbox item.
    fn put_pending(&self, event: &RecordEvent) -> Result<PutItemFluentBuilder, StoreError> {
        let doc = serde_json::to_string(event).map_err(backend)?;
        Ok(self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .item("job_id", AttributeValue::S(event.job_id.to_string()))
            .item("sequence", AttributeValue::N(event.sequence.to_string()))
            .item("event_id", AttributeValue::S(event.event_id.clone()))
            .item("app_id", AttributeValue::S(event.app_id.to_string()))
            .item("delivery_status", AttributeValue::S("PENDING".into()))
            .item("doc", AttributeValue::S(doc)))
    }

    /// An outbox in `table` feeding `queue_url`.
    pub fn new(dynamo: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client, table: String, queue_url: String) -> Self {
        Self { dynamo, sqs, table, queue_url }
    }

    /// Writes `event` as a fresh `PENDING` outbox item, replacing whatever was stored under its
    /// job and sequence (delivery log included), and raises the job's counter to at least its
    /// sequence. For fixtures that must be reset to the same state on every run; recorders
    /// use [`EventLog::append`], which never overwrites.
    pub async fn overwrite(&self, event: &RecordEvent) -> Result<(), StoreError> {
        self.put_pending(event)?.send().await.map_err(backend)?;
        let raised = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("job_id", AttributeValue::S(event.job_id.to_string()))
            .key("sequence", AttributeValue::N(COUNTER_SEQUENCE.into()))
            .update_expression("SET last_sequence = :seq")
            .condition_expression("attribute_not_exists(last_sequence) OR last_sequence < :seq")
            .expression_attribute_values(":seq", AttributeValue::N(event.sequence.to_string()))
            .send()
            .await;
        match raised {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(backend(err)),
        }
    }

    /// The conditional update recording `update` on event `sequence` of `job_id`: refused
    /// (ConditionalCheckFailed) when the item is missing, or settled and `update` is no
    /// redelivery, so a late record never undoes a settlement.
    fn delivery_update(
        &self,
        job_id: &JobId,
        sequence: u64,
        update: &DeliveryUpdate,
    ) -> Result<UpdateItemFluentBuilder, StoreError> {
        let condition = if update.restart_schedule {
            "attribute_exists(event_id)"
        } else {
            "attribute_exists(event_id) AND (attribute_not_exists(delivery_status) OR delivery_status = :pending)"
        };
        let mut set = vec!["delivery_status = :status"];
        let mut request = self
            .dynamo
            .update_item()
            .table_name(&self.table)
            .key("job_id", AttributeValue::S(job_id.to_string()))
            .key("sequence", AttributeValue::N(sequence.to_string()))
            .condition_expression(condition)
            .expression_attribute_values(":status", AttributeValue::S(update.status.as_str().into()));
        if !update.restart_schedule {
            let pending = DeliveryStatus::Pending.as_str();
            request = request.expression_attribute_values(":pending", AttributeValue::S(pending.into()));
        }
        if let Some(attempt) = &update.attempt {
            set.push("attempts = list_append(if_not_exists(attempts, :none), :attempt)");
            set.push("attempt_count = if_not_exists(attempt_count, :zero) + :one");
            let entry = AttributeValue::S(serde_json::to_string(attempt).map_err(backend)?);
            request = request
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":attempt", AttributeValue::L(vec![entry]))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()));
        }
        if update.restart_schedule {
            // The attempts made so far no longer count towards the schedule.
            set.push("retry_from = if_not_exists(attempt_count, :zero)");
            request = request.expression_attribute_values(":zero", AttributeValue::N("0".into()));
        }
        let mut expression = format!("SET {}", set.join(", "));
        match update.next_attempt_at {
            Some(due) => {
                expression.push_str(", next_attempt_at = :due");
                request = request.expression_attribute_values(":due", AttributeValue::S(due.to_string()));
            }
            None => expression.push_str(" REMOVE next_attempt_at"),
        }
        Ok(request.update_expression(expression))
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
        self.put_pending(event)?
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

    async fn list_stored(&self, job_id: &JobId) -> Result<Vec<StoredEvent>, StoreError> {
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
                events.push(stored_event(&item)?);
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(events),
            }
        }
    }

    async fn get_many(&self, job_id: &JobId, sequences: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let keys = sequences
            .iter()
            .map(|sequence| {
                HashMap::from([
                    ("job_id".to_owned(), AttributeValue::S(job_id.to_string())),
                    ("sequence".to_owned(), AttributeValue::N(sequence.to_string())),
                ])
            })
            .collect();
        let mut found = batch_get(&self.dynamo, &self.table, keys, &[])
            .await?
            .iter()
            .map(stored_event)
            .collect::<Result<Vec<_>, _>>()?;
        found.sort_by_key(|stored| stored.event.sequence);
        Ok(found)
    }

    async fn get(&self, job_id: &JobId, sequence: u64) -> Result<Option<StoredEvent>, StoreError> {
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key("job_id", AttributeValue::S(job_id.to_string()))
            .key("sequence", AttributeValue::N(sequence.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item.as_ref().map(stored_event).transpose()
    }

    async fn record_delivery(&self, job_id: &JobId, sequence: u64, update: &DeliveryUpdate) -> Result<(), StoreError> {
        let request = self.delivery_update(job_id, sequence, update)?;
        request.send().await.map_err(|err| write_error(err, UpdateItemError::is_conditional_check_failed_exception))?;
        Ok(())
    }

    async fn publish(&self, event: &RecordEvent) -> Result<(), QueueError> {
        let body =
            serde_json::json!({ "job_id": event.job_id, "sequence": event.sequence, "event_id": event.event_id });
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

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use roomrec_domain::event::Attempt;

    use super::*;
    use crate::OsRandom;

    fn log() -> DynamoEventLog {
        let dynamo = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .build();
        let sqs = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
            .build();
        DynamoEventLog::new(
            aws_sdk_dynamodb::Client::from_conf(dynamo),
            aws_sdk_sqs::Client::from_conf(sqs),
            "events".into(),
            "http://sqs.invalid/events".into(),
        )
    }

    /// The condition of the update recording `update`, and its placeholders with values.
    fn condition(update: &DeliveryUpdate) -> (String, Vec<String>) {
        let request = log().delivery_update(&JobId::generate(&OsRandom), 1, update).unwrap();
        let input = request.as_input();
        let mut values: Vec<String> =
            input.get_expression_attribute_values().iter().flatten().map(|(name, _)| name.clone()).collect();
        values.sort();
        (input.get_condition_expression().clone().unwrap(), values)
    }

    #[test]
    fn a_delivery_record_is_written_only_while_the_event_is_pending() {
        let at = roomrec_domain::time::Timestamp::at(chrono::Utc::now());
        let failed = Attempt { at, status: Some(503), latency_ms: 3, error: Some("HTTP 503".into()) };
        let retry = DeliveryUpdate {
            status: DeliveryStatus::Pending,
            attempt: Some(failed),
            next_attempt_at: Some(at),
            restart_schedule: false,
        };
        let (expression, values) = condition(&retry);
        assert_eq!(
            expression,
            "attribute_exists(event_id) AND (attribute_not_exists(delivery_status) OR delivery_status = :pending)"
        );
        assert!(values.contains(&":pending".to_owned()), "{values:?}");
        let request = log().delivery_update(&JobId::generate(&OsRandom), 1, &retry).unwrap();
        let pending = request.as_input().get_expression_attribute_values().as_ref().unwrap()[":pending"].clone();
        assert_eq!(pending, AttributeValue::S("PENDING".into()));
    }

    #[test]
    fn a_redelivery_is_written_whatever_the_events_status() {
        let (expression, values) = condition(&DeliveryUpdate::redelivery());
        assert_eq!(expression, "attribute_exists(event_id)");
        // DynamoDB refuses a request with a value its expressions do not use.
        assert_eq!(values, [":status", ":zero"]);
    }

    #[test]
    fn a_refused_delivery_record_is_a_conflict_and_other_failures_are_not() {
        let answer = || HttpResponse::new(400u16.try_into().unwrap(), "".into());
        let refused =
            UpdateItemError::ConditionalCheckFailedException(ConditionalCheckFailedException::builder().build());
        let refused = write_error(
            SdkError::service_error(refused, answer()),
            UpdateItemError::is_conditional_check_failed_exception,
        );
        assert!(matches!(refused, StoreError::Conflict), "{refused:?}");
        let throttled = UpdateItemError::unhandled("ProvisionedThroughputExceededException");
        let throttled = write_error(
            SdkError::service_error(throttled, answer()),
            UpdateItemError::is_conditional_check_failed_exception,
        );
        assert!(matches!(throttled, StoreError::Backend(_)), "{throttled:?}");
    }
}
