//! Keeps the messages of the jobs this worker runs invisible while they run: each message is
//! extended every third of the visibility timeout from when its job started, as its job's
//! lease is renewed, but the extensions due within one turn go out together, one
//! `ChangeMessageVisibilityBatch` call per ten messages rather than one
//! `ChangeMessageVisibility` call per job (at 50 recordings, about 2 calls a second where
//! there were 19).
//!
//! Why each message keeps its own phase: the message coming back is what hands a dead
//! worker's job to another, and the job's lease must have run out by then. Extended in step
//! with its lease, a message comes back about when the lease ends; extended on one clock for
//! all, it would come back up to a third of the visibility after, every takeover that late.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use aws_sdk_sqs::Client;
use tokio::time::Instant;

/// Most entries SQS takes in one batch call.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibilityBatch.html>
const BATCH: usize = 10;

/// Turns per extension period: a message is extended up to a turn before it is due.
const TURNS: u32 = 3;

/// The messages held, by a number unique in this worker (which is also their entry id in a
/// batch call).
#[derive(Debug)]
pub struct Keepalive {
    held: Mutex<Held>,
    visibility: Duration,
}

#[derive(Debug, Default)]
struct Held {
    next_id: u64,
    messages: BTreeMap<u64, Message>,
}

#[derive(Debug)]
struct Message {
    receipt: String,
    /// When its visibility is next due to be extended.
    due: Instant,
}

/// One message kept invisible until this is dropped.
#[derive(Debug)]
pub struct Hold {
    keepalive: Arc<Keepalive>,
    id: u64,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.keepalive.held().messages.remove(&self.id);
    }
}

/// `duration` in whole seconds, as SQS takes a visibility timeout or a delay.
pub(crate) fn secs(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

impl Keepalive {
    /// Keeps messages invisible for `visibility` at a time.
    pub fn new(visibility: Duration) -> Self {
        Self { held: Mutex::new(Held::default()), visibility }
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How often each message is extended.
    fn period(&self) -> Duration {
        self.visibility / 3
    }

    /// Keeps the message with `receipt`, received just now, invisible until the returned
    /// [`Hold`] is dropped.
    pub fn hold(self: &Arc<Self>, receipt: &str) -> Hold {
        let mut held = self.held();
        let id = held.next_id;
        held.next_id += 1;
        held.messages.insert(id, Message { receipt: receipt.to_owned(), due: Instant::now() + self.period() });
        Hold { keepalive: self.clone(), id }
    }

    /// The extensions due before the turn after `now`, as batch entries of at most
    /// [`BATCH`]; each message is next due a period after it was due now (or after the
    /// turns it missed).
    fn due(&self, now: Instant) -> Vec<Vec<ChangeMessageVisibilityBatchRequestEntry>> {
        let seconds = secs(self.visibility);
        let (period, horizon) = (self.period(), now + self.period() / TURNS);
        let mut held = self.held();
        let entries: Vec<_> = held
            .messages
            .iter_mut()
            .filter(|(_, message)| message.due <= horizon)
            .filter_map(|(id, message)| {
                // Turns missed (calls held up by an outage) are skipped, in the same phase.
                while message.due <= horizon {
                    message.due += period;
                }
                let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(id.to_string())
                    .receipt_handle(&message.receipt)
                    .visibility_timeout(seconds);
                entry.build().ok()
            })
            .collect();
        entries.chunks(BATCH).map(<[_]>::to_vec).collect()
    }

    /// Extends the held messages as they fall due, a turn at a time, until the task is
    /// aborted. A failed extension is logged; the next one is a period later.
    pub async fn run(self: Arc<Self>, sqs: Client, queue: String) {
        let mut turn = tokio::time::interval(self.period() / TURNS);
        turn.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            turn.tick().await;
            let calls = self.due(Instant::now()).into_iter().map(|entries| {
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

    const VISIBILITY: Duration = Duration::from_secs(9);
    const PERIOD: Duration = Duration::from_secs(3);

    #[test]
    fn each_message_is_extended_a_period_after_its_hold_in_batches_of_ten_until_released() {
        let keepalive = Arc::new(Keepalive::new(VISIBILITY));
        let start = Instant::now();
        let holds: Vec<Hold> = (0..23).map(|i| keepalive.hold(&format!("r{i}"))).collect();
        assert!(keepalive.due(start).is_empty(), "nothing is due at once");

        let batches = keepalive.due(start + PERIOD - Duration::from_millis(500));
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3], "due within the turn");
        let all: Vec<&ChangeMessageVisibilityBatchRequestEntry> = batches.iter().flatten().collect();
        assert!(all.iter().all(|e| e.visibility_timeout == Some(9)));
        let ids: std::collections::HashSet<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 23, "entry ids are unique");
        assert!(keepalive.due(start + PERIOD).is_empty(), "extended once per period");

        let mut holds = holds.into_iter();
        drop(holds.by_ref().take(20).collect::<Vec<_>>());
        assert_eq!(receipts(&keepalive.due(start + PERIOD * 2)), [["r20", "r21", "r22"]]);
        drop(holds);
        assert!(keepalive.due(start + PERIOD * 3).is_empty(), "nothing is extended once released");
    }

    #[test]
    fn after_missed_turns_a_message_is_extended_once_and_keeps_its_phase() {
        let keepalive = Arc::new(Keepalive::new(VISIBILITY));
        let start = Instant::now();
        let _held = keepalive.hold("r");
        assert_eq!(receipts(&keepalive.due(start + PERIOD * 5)), [["r"]], "five periods late");
        assert!(keepalive.due(start + PERIOD * 5 + Duration::from_millis(500)).is_empty());
        assert_eq!(receipts(&keepalive.due(start + PERIOD * 6)), [["r"]], "on its own phase again");
    }

    #[test]
    fn a_message_held_later_keeps_its_own_phase() {
        let keepalive = Arc::new(Keepalive::new(VISIBILITY));
        let start = Instant::now();
        let _first = keepalive.hold("first");
        let _second = keepalive.hold("second");
        // As if the second was held 2 s after the first.
        keepalive.held().messages.get_mut(&1).unwrap().due += Duration::from_secs(2);

        let ms = Duration::from_millis;
        assert_eq!(receipts(&keepalive.due(start + PERIOD)), [["first"]]);
        assert_eq!(receipts(&keepalive.due(start + PERIOD + ms(1500))), [["second"]]);
        assert_eq!(receipts(&keepalive.due(start + PERIOD * 2 + ms(500))), [["first"]]);
    }
}
