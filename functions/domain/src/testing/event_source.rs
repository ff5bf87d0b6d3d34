//! Lambda's SQS event source over the events queue, in memory: follows callbacks through
//! retries and waits of hours or days on a [`ManualClock`], in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::delivery::{Deliverer, EventMessage, Queued, Settled};

use super::{ManualClock, MemDeliveryQueue, MemEventLog};

/// Largest batch SQS hands out: the event source mapping's BatchSize in template.yaml.
const BATCH_SIZE: usize = 10;

/// How long a received message the deliverer did not postpone stays hidden: EventsQueue's
/// VisibilityTimeout in template.yaml.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(360);

/// A message on the queue.
struct Message {
    id: u64,
    body: EventMessage,
    visible_at: DateTime<Utc>,
    receives: u32,
}

/// Takes what a [`MemEventLog`] publishes onto a queue, hands the visible messages in batches
/// to a [`Deliverer`] (whose queue port is the [`MemDeliveryQueue`] given here), deletes the
/// messages it settled and hides the others for the postponement it asked for (or the
/// queue's visibility timeout), moving the clock on to the next visible message.
pub struct MemEventSource {
    clock: Arc<ManualClock>,
    events: Arc<MemEventLog>,
    queue: Arc<MemDeliveryQueue>,
    deliverer: Deliverer,
    messages: Vec<Message>,
    /// How many of the published events are on the queue.
    taken: usize,
    next_id: u64,
    max_receives: u32,
}

impl MemEventSource {
    /// An empty queue between `events` and `deliverer`, on `clock`.
    pub fn new(
        clock: Arc<ManualClock>,
        events: Arc<MemEventLog>,
        queue: Arc<MemDeliveryQueue>,
        deliverer: Deliverer,
    ) -> Self {
        Self { clock, events, queue, deliverer, messages: Vec::new(), taken: 0, next_id: 0, max_receives: 0 }
    }

    /// Delivers batch after batch until the queue is empty or its next message becomes visible
    /// only after `until`.
    pub async fn run_until(&mut self, until: DateTime<Utc>) {
        loop {
            self.take_published();
            let now = self.clock.now();
            let mut visible: Vec<usize> =
                (0..self.messages.len()).filter(|&i| self.messages[i].visible_at <= now).collect();
            visible.sort_by_key(|&i| (self.messages[i].visible_at, self.messages[i].id));
            visible.truncate(BATCH_SIZE);
            if visible.is_empty() {
                match self.messages.iter().map(|m| m.visible_at).min() {
                    Some(next) if next <= until => self.clock.advance((next - now).to_std().unwrap_or_default()),
                    _ => return,
                }
                continue;
            }
            self.receive(&visible).await;
        }
    }

    /// Messages on the queue, visible or not.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The most times any one message was received (SQS's redrive policy counts them).
    pub fn max_receives(&self) -> u32 {
        self.max_receives
    }

    fn take_published(&mut self) {
        let published = self.events.published();
        for event in &published[self.taken.min(published.len())..] {
            let body = EventMessage {
                job_id: event.job_id.clone(),
                sequence: event.sequence,
                event_id: Some(event.event_id.clone()),
            };
            self.next_id += 1;
            self.messages.push(Message { id: self.next_id, body, visible_at: self.clock.now(), receives: 0 });
        }
        self.taken = published.len();
    }

    /// Hands the messages at `indices` to the deliverer as one batch and settles each.
    async fn receive(&mut self, indices: &[usize]) {
        let batch: Vec<Queued> = indices
            .iter()
            .map(|&i| {
                let message = &mut self.messages[i];
                message.receives += 1;
                self.max_receives = self.max_receives.max(message.receives);
                // A fresh receipt handle per receive, as SQS gives.
                let receipt = format!("{}/{}", message.id, message.receives);
                Queued { message: message.body.clone(), receipt: Some(receipt) }
            })
            .collect();
        let results = self.deliverer.deliver_batch(&batch).await;
        let postponed = self.queue.postponed();
        let now = self.clock.now();
        let mut done = Vec::new();
        for ((&i, queued), result) in indices.iter().zip(&batch).zip(results) {
            if let Ok(Settled::Done(_)) = result {
                done.push(i);
                continue;
            }
            let receipt = queued.receipt.as_deref();
            let hidden = postponed.iter().rev().find(|(r, _)| Some(r.as_str()) == receipt).map(|(_, delay)| *delay);
            let hidden = chrono::Duration::from_std(hidden.unwrap_or(VISIBILITY_TIMEOUT)).unwrap_or_default();
            self.messages[i].visible_at = now + hidden;
        }
        done.sort_unstable();
        for i in done.into_iter().rev() {
            self.messages.remove(i);
        }
    }
}
