//! The job queue, and the events queue as the callback deliverer sees it, on SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use roomrec_domain::event::RecordEvent;
use roomrec_domain::ports::{DeliveryQueue, JobMessage, JobQueue, ProbeQueue, QueueError};
use roomrec_domain::preflight::ProbeMessage;

/// Sends job messages to one SQS queue.
#[derive(Debug, Clone)]
pub struct SqsJobQueue {
    client: Client,
    queue_url: String,
}

impl SqsJobQueue {
    /// A queue adapter for `queue_url`.
    pub fn new(client: Client, queue_url: String) -> Self {
        Self { client, queue_url }
    }
}

#[async_trait]
impl JobQueue for SqsJobQueue {
    async fn enqueue(&self, message: &JobMessage) -> Result<(), QueueError> {
        self.send(message).await
    }
}

#[async_trait]
impl ProbeQueue for SqsJobQueue {
    async fn enqueue_probe(&self, message: &ProbeMessage) -> Result<(), QueueError> {
        self.send(message).await
    }
}

impl SqsJobQueue {
    /// Sends `message` as JSON.
    async fn send(&self, message: &impl serde::Serialize) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(Box::new(e)))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }
}

/// The events queue and its dead-letter queue, as the callback deliverer uses them.
#[derive(Debug, Clone)]
pub struct SqsDeliveryQueue {
    client: Client,
    events_queue_url: String,
    dead_letter_url: String,
}

impl SqsDeliveryQueue {
    /// Postpones messages of `events_queue_url`, parks failures on `dead_letter_url`.
    pub fn new(client: Client, events_queue_url: String, dead_letter_url: String) -> Self {
        Self { client, events_queue_url, dead_letter_url }
    }
}

#[async_trait]
impl DeliveryQueue for SqsDeliveryQueue {
    async fn postpone(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        // Whole seconds, rounded up: a message back a fraction early would only be postponed again.
        let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        let secs = i32::try_from(secs.max(1)).unwrap_or(i32::MAX);
        self.client
            .change_message_visibility()
            .queue_url(&self.events_queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }

    async fn dead_letter(&self, event: &RecordEvent) -> Result<(), QueueError> {
        let body = serde_json::to_string(event).map_err(|e| QueueError(Box::new(e)))?;
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| QueueError(Box::new(e)))?;
        Ok(())
    }
}
