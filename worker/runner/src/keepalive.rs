//! Keeps the messages of the jobs this worker runs invisible while they run: every third of
//! the visibility timeout, one `ChangeMessageVisibilityBatch` call per ten messages rather
//! than one `ChangeMessageVisibility` call per job (at 50 recordings, 2 calls where there
//! were 17 each time).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use aws_sdk_sqs::Client;

/// Most entries SQS takes in one batch call.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibilityBatch.html>
const BATCH: usize = 10;

/// The receipt handles of the messages held, by a number unique in this worker (which is
/// also their entry id in a batch call).
#[derive(Debug, Default)]
pub struct Keepalive {
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    next_id: u64,
    receipts: BTreeMap<u64, String>,
}

/// One message kept invisible until this is dropped.
#[derive(Debug)]
pub struct Hold {
    keepalive: Arc<Keepalive>,
    id: u64,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.keepalive.held().receipts.remove(&self.id);
    }
}

impl Keepalive {
    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the message with `receipt` invisible until the returned [`Hold`] is dropped.
    pub fn hold(self: &Arc<Self>, receipt: &str) -> Hold {
        let mut held = self.held();
        let id = held.next_id;
        held.next_id += 1;
        held.receipts.insert(id, receipt.to_owned());
        Hold { keepalive: self.clone(), id }
    }

    /// The held messages as batch entries of at most [`BATCH`], each extending its message's
    /// visibility to `visibility` from now.
    fn batches(&self, visibility: Duration) -> Vec<Vec<ChangeMessageVisibilityBatchRequestEntry>> {
        let seconds = i32::try_from(visibility.as_secs()).unwrap_or(i32::MAX);
        let held = self.held();
        let entries: Vec<_> = held
            .receipts
            .iter()
            .filter_map(|(id, receipt)| {
                let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(seconds);
                entry.build().ok()
            })
            .collect();
        entries.chunks(BATCH).map(<[_]>::to_vec).collect()
    }

    /// Extends every held message's visibility to `visibility`, every third of it, until the
    /// task is aborted. A failed extension is logged and tried again at the next turn.
    pub async fn run(self: Arc<Self>, sqs: Client, queue: String, visibility: Duration) {
        let mut tick = tokio::time::interval(visibility / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let calls = self.batches(visibility).into_iter().map(|entries| {
                sqs.change_message_visibility_batch().queue_url(&queue).set_entries(Some(entries)).send()
            });
            for result in futures::future::join_all(calls).await {
                match result {
                    Ok(out) => {
                        for failed in out.failed {
                            tracing::warn!(code = %failed.code, "could not extend a job message's visibility");
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "could not extend job messages' visibility"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipts(batches: &[Vec<ChangeMessageVisibilityBatchRequestEntry>]) -> Vec<Vec<&str>> {
        batches.iter().map(|b| b.iter().map(|e| e.receipt_handle.as_str()).collect()).collect()
    }

    #[test]
    fn every_held_message_is_extended_in_batches_of_ten_until_released() {
        let keepalive = Arc::new(Keepalive::default());
        let holds: Vec<Hold> = (0..23).map(|i| keepalive.hold(&format!("r{i}"))).collect();
        let batches = keepalive.batches(Duration::from_secs(8));
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
        let all: Vec<&ChangeMessageVisibilityBatchRequestEntry> = batches.iter().flatten().collect();
        assert!(all.iter().all(|e| e.visibility_timeout == Some(8)));
        let ids: std::collections::HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 23, "entry ids are unique");

        let mut holds = holds.into_iter();
        drop(holds.by_ref().take(20).collect::<Vec<_>>());
        assert_eq!(receipts(&keepalive.batches(Duration::from_secs(8))), [["r20", "r21", "r22"]]);
        drop(holds);
        assert!(keepalive.batches(Duration::from_secs(8)).is_empty(), "nothing is extended once released");
    }
}
