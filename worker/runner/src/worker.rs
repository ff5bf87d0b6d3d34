//! The queue loop: long-polls the jobs queue while the worker has a unit of capacity free,
//! runs each job in its own task if its cost fits (see [`crate::capacity`]), keeps each job's
//! message invisible while it records ([`Keepalive`]), and settles the message by the job's
//! outcome. On shutdown every recording is finished and handed back.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use roomrec_domain::clock::Random;
use roomrec_domain::ids::JobId;
use roomrec_domain::metric::Metric;
use roomrec_domain::ports::QueueError;
use roomrec_domain::preflight::ProbeMessage;
use roomrec_domain::retry::{retry, Backoff};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::capacity::Capacity;
use crate::context::Ctx;
use crate::job::{self, MessageFate};
use crate::keepalive::{secs, Keepalive};
use crate::probe::{self, QueueMessage};

/// How often the slots in use are reported when nothing changes, so the metric has a value in
/// every minute (the period of CloudWatch alarms and scaling policies).
const SLOTS_REPORT_EVERY: Duration = Duration::from_secs(60);

/// Long-poll wait for new messages (SQS allows up to 20 s).
const RECEIVE_WAIT_SECS: i32 = 2;

/// The worker process's main loop.
pub struct Worker {
    ctx: Arc<Ctx>,
    capacity: Arc<Capacity>,
    sqs: Client,
    queue_url: String,
    /// When receiving from the queue last failed.
    last_failure: Mutex<Option<Instant>>,
}

impl Worker {
    /// A worker taking jobs from `queue_url` as far as `capacity` allows.
    pub fn new(ctx: Arc<Ctx>, capacity: Arc<Capacity>, sqs: Client, queue_url: String) -> Self {
        Self { ctx, capacity, sqs, queue_url, last_failure: Mutex::new(None) }
    }

    /// Takes and runs jobs until `shutdown` turns true, then waits for the running ones to
    /// hand back.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut running = JoinSet::new();
        let here = Local::default();
        tracing::info!(worker = %self.ctx.config.worker_id, capacity = self.capacity.budget(), "worker started");
        let reporter = tokio::spawn(report_slots_every_minute(self.ctx.clone(), self.capacity.clone()));
        let keepalive = Arc::new(Keepalive::new(self.ctx.config.visibility));
        let keeper = tokio::spawn(keepalive.clone().run(self.sqs.clone(), self.queue_url.clone()));
        while !*shutdown.borrow() {
            // A full worker does not even receive: the message stays for a worker with room.
            let mut slot = tokio::select! {
                _ = shutdown.changed() => break,
                slot = self.capacity.reserve() => slot,
            };
            let received = tokio::select! {
                _ = shutdown.changed() => break,
                received = self.receive() => received,
            };
            let Some((message, receipt)) = received else { continue };
            let message = match message {
                QueueMessage::Job(message) => message,
                QueueMessage::Probe(message) => {
                    running.spawn(self.probe(message, receipt, slot));
                    continue;
                }
            };
            if let Some(wait) = self.after_outage() {
                // The jobs' holders were cut off too, and their leases may have run out
                // meanwhile: they renew first, and this message comes back after.
                self.postpone(&receipt, wait).await;
                continue;
            }
            // A second delivery of a job this worker runs already: the lease is ours, so a
            // claim would succeed and start a second recorder. The message is left to
            // reappear; by then the job has ended and the message is dropped.
            let Some(entry) = here.enter(&message.job_id) else {
                tracing::info!(job_id = %message.job_id, "ignoring a duplicate delivery of a running job");
                continue;
            };
            let (ctx, sqs, queue) = (self.ctx.clone(), self.sqs.clone(), self.queue_url.clone());
            let stop = shutdown.clone();
            report_slots(&self.ctx, &self.capacity);
            let capacity = self.capacity.clone();
            let hold = keepalive.hold(&receipt);
            running.spawn(async move {
                let random = ctx.random.clone();
                let fate = job::run(ctx.clone(), message, &mut slot, stop).await;
                drop(hold);
                settle(&sqs, &queue, &receipt, fate, random.as_ref()).await;
                drop((entry, slot));
                report_slots(&ctx, &capacity);
            });
            while running.try_join_next().is_some() {}
        }
        tracing::info!(jobs = running.len(), "shutting down: handing back running jobs");
        while running.join_next().await.is_some() {}
        reporter.abort();
        keeper.abort();
    }

    /// How long messages are still put back after the queue failed: a lease, so that every
    /// live holder cut off by the same outage renews before anyone takes its job over.
    fn after_outage(&self) -> Option<Duration> {
        let failed = (*self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner))?;
        self.ctx.config.lease.checked_sub(failed.elapsed()).filter(|left| !left.is_zero())
    }

    /// Probes a preflight's streams (a few seconds, holding `slot`), then deletes its message;
    /// a store failure leaves it to come back.
    fn probe(&self, message: ProbeMessage, receipt: String, slot: impl Send + 'static) -> impl Future<Output = ()> {
        let (ctx, sqs, queue) = (self.ctx.clone(), self.sqs.clone(), self.queue_url.clone());
        async move {
            let fate = match probe::run(&ctx, &message).await {
                Ok(()) => MessageFate::Delete,
                Err(err) => {
                    tracing::warn!(error = %roomrec_domain::error::error_chain(&err), "probing a preflight failed");
                    MessageFate::Leave
                }
            };
            settle(&sqs, &queue, &receipt, fate, ctx.random.as_ref()).await;
            drop(slot);
        }
    }

    /// Makes a received message visible again after `wait`.
    async fn postpone(&self, receipt: &str, wait: Duration) {
        let hidden = self.sqs.change_message_visibility().queue_url(&self.queue_url).receipt_handle(receipt);
        if let Err(err) = hidden.visibility_timeout(secs(wait).max(1)).send().await {
            tracing::warn!(error = %err, "could not postpone a job message; it comes back with its visibility");
        }
    }

    /// One message, if one arrives within the long-poll wait.
    async fn receive(&self) -> Option<(QueueMessage, String)> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(RECEIVE_WAIT_SECS)
            .visibility_timeout(secs(self.ctx.config.visibility))
            .send()
            .await;
        let message = match out {
            Ok(out) => out.messages?.into_iter().next()?,
            Err(err) => {
                *self.last_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                tracing::warn!(error = %err, "receiving from the jobs queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return None;
            }
        };
        let receipt = message.receipt_handle?;
        match serde_json::from_str(message.body.as_deref().unwrap_or_default()) {
            Ok(job) => Some((job, receipt)),
            Err(err) => {
                // A message that is not a job never will be: drop it rather than retry it forever.
                tracing::error!(error = %err, "dropping a malformed job message");
                let delete = self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(&receipt).send();
                if let Err(err) = delete.await {
                    tracing::warn!(error = %err, "could not delete a malformed job message");
                }
                None
            }
        }
    }
}

/// The jobs this worker is running.
#[derive(Default, Clone)]
struct Local(Arc<Mutex<HashSet<JobId>>>);

/// Records how many of the worker's capacity units are in use.
fn report_slots(ctx: &Ctx, capacity: &Capacity) {
    ctx.metrics.record(Metric::SlotsInUse { used: capacity.in_use() as usize, total: capacity.budget() as usize });
}

/// [`report_slots`] every [`SLOTS_REPORT_EVERY`], for as long as the worker runs.
async fn report_slots_every_minute(ctx: Arc<Ctx>, capacity: Arc<Capacity>) {
    let mut tick = tokio::time::interval(SLOTS_REPORT_EVERY);
    loop {
        tick.tick().await;
        report_slots(&ctx, &capacity);
    }
}

/// A job's place in [`Local`], given up when dropped.
struct Entry {
    local: Local,
    job_id: JobId,
}

impl Local {
    /// Marks `job_id` as running here; `None` if it is already.
    fn enter(&self, job_id: &JobId) -> Option<Entry> {
        let mut jobs = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.insert(job_id.clone()).then(|| Entry { local: self.clone(), job_id: job_id.clone() })
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.local.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.job_id);
    }
}

fn queue_error<E: std::error::Error + Send + Sync + 'static>(err: E) -> QueueError {
    QueueError(Box::new(err))
}

/// Longest delay SQS puts on a message; a lease outliving it is refused again then.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-timers.html>
const MAX_DELAY: Duration = Duration::from_secs(900);

/// Deletes, or replaces and deletes, the received message as `fate` says; SQS failures are
/// retried for minutes, then left to the message's visibility timeout.
async fn settle(sqs: &Client, queue: &str, receipt: &str, fate: MessageFate, random: &dyn Random) {
    let delete = || async {
        sqs.delete_message().queue_url(queue).receipt_handle(receipt).send().await.map(drop).map_err(queue_error)
    };
    let settled = match &fate {
        MessageFate::Delete => retry(&Backoff::AWS, random, "jobs queue delete", delete).await,
        MessageFate::Requeue(fresh, delay) => {
            let body = serde_json::to_string(fresh).unwrap_or_default();
            let delay = secs((*delay).min(MAX_DELAY));
            let send = || async {
                let sent = sqs.send_message().queue_url(queue).message_body(&body).delay_seconds(delay).send().await;
                sent.map(drop).map_err(queue_error)
            };
            // Once the fresh message is out, the received one has served; until then it is
            // left to reappear when its visibility ends: a later receive, not a lost job.
            match retry(&Backoff::AWS, random, "jobs queue send", send).await {
                Ok(()) => retry(&Backoff::AWS, random, "jobs queue delete", delete).await,
                Err(err) => Err(err),
            }
        }
        MessageFate::Leave => Ok(()),
    };
    if let Err(error) = settled {
        tracing::warn!(%error, ?fate, "could not settle a job message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_once_per_worker_until_its_run_ends() {
        let local = Local::default();
        let job = JobId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let first = local.enter(&job);
        assert!(first.is_some());
        assert!(local.enter(&job).is_none(), "a duplicate delivery must not start a second run");
        drop(first);
        assert!(local.enter(&job).is_some(), "after the run ends, a new delivery is handled");
    }
}
