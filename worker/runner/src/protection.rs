//! ECS task scale-in protection: on while the worker runs a job, off when it is idle, so the
//! service's scale-in (and a deployment) never stops a task that records. Protection is set
//! for [`PROTECTION_MINUTES`] and renewed at half of it while jobs run, so a worker that
//! froze loses it by itself. A failed call is retried with backoff and never touches a
//! recording: at worst the task is unprotected for a while, as it was before.
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html>

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use roomrec_domain::clock::Random;
use roomrec_domain::retry::Backoff;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::capacity::Load;

/// How long one call protects the task, in minutes (ECS allows 1 to 2,880).
pub const PROTECTION_MINUTES: u32 = 10;
/// When protection is renewed: half its length, so one failed renewal still leaves minutes of
/// retries before it lapses.
const RENEW_AFTER: Duration = Duration::from_secs(PROTECTION_MINUTES as u64 * 60 / 2);
/// How long a stopping worker tries to clear protection before it exits anyway.
pub const CLEAR_WAIT: Duration = Duration::from_secs(10);
/// How a failed call is retried: until it succeeds or the wanted state changes.
const RETRY: Backoff = Backoff { first: Duration::from_secs(1), max: Duration::from_secs(60), deadline: Duration::MAX };

/// The agent could not set the task's protection.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ProtectionError(pub Box<dyn std::error::Error + Send + Sync>);

/// The task's scale-in protection (the ECS agent's endpoint on ECS).
#[async_trait]
pub trait TaskProtection: Send + Sync {
    /// Protects the task from scale-in for `minutes` from now.
    async fn protect(&self, minutes: u32) -> Result<(), ProtectionError>;
    /// Makes the task eligible for scale-in again.
    async fn unprotect(&self) -> Result<(), ProtectionError>;
}

/// What this worker last got the agent to set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not protected (a new task is not).
    Off,
    /// Protected; renewed at `renew_at`.
    On { renew_at: Instant },
    /// The last call failed: the agent may or may not have set it, so it is set again.
    Unknown,
}

/// Keeps the task protected exactly while it runs jobs.
pub struct Protector {
    agent: Arc<dyn TaskProtection>,
    random: Arc<dyn Random>,
    state: State,
    /// Calls failed in a row.
    failures: u32,
}

impl Protector {
    /// A protector of an unprotected task, through `agent`.
    pub fn new(agent: Arc<dyn TaskProtection>, random: Arc<dyn Random>) -> Self {
        Self { agent, random, state: State::Off, failures: 0 }
    }

    /// Follows the jobs `load` reports until it closes (the worker has stopped), then clears
    /// protection and returns.
    pub async fn run(mut self, mut load: watch::Receiver<Load>) {
        let mut open = true;
        loop {
            let busy = open && load.borrow_and_update().jobs > 0;
            let wake = self.step(busy).await;
            if !open && self.state == State::Off {
                return;
            }
            tokio::select! {
                changed = load.changed(), if open => open = changed.is_ok(),
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
    }

    /// Brings protection to what `busy` asks, if it is not there; returns when to look again
    /// with no news: a renewal or a retry.
    async fn step(&mut self, busy: bool) -> Option<Instant> {
        let now = Instant::now();
        let called = match (busy, self.state) {
            (true, State::On { renew_at }) if now < renew_at => return Some(renew_at),
            (false, State::Off) => return None,
            (true, _) => self.agent.protect(PROTECTION_MINUTES).await,
            (false, _) => self.agent.unprotect().await,
        };
        match called {
            Ok(()) => {
                self.failures = 0;
                let renewing = matches!(self.state, State::On { .. }) && busy;
                self.state = if busy { State::On { renew_at: now + RENEW_AFTER } } else { State::Off };
                if !renewing {
                    tracing::info!(protected = busy, "task scale-in protection set");
                }
                busy.then_some(now + RENEW_AFTER)
            }
            Err(err) => {
                self.state = State::Unknown;
                self.failures += 1;
                let wait = RETRY.wait(self.failures, self.random.unit());
                let retry_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(error = %err, protect = busy, retry_ms, "could not set task scale-in protection");
                Some(Instant::now() + wait)
            }
        }
    }
}

/// Sleeps until `at`; never returns without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::capacity::Capacity;
    use roomrec_domain::testing::SeqRandom;

    /// An agent that records each call (`Some(minutes)` protects, `None` clears) and when,
    /// failing the first `failures` of them.
    #[derive(Default)]
    struct FakeAgent {
        calls: Mutex<Vec<(Duration, Option<u32>)>>,
        failures: Mutex<usize>,
        started: Mutex<Option<Instant>>,
    }

    impl FakeAgent {
        fn new(failures: usize) -> Arc<Self> {
            let agent = Self { failures: Mutex::new(failures), ..Self::default() };
            *agent.started.lock().unwrap() = Some(Instant::now());
            Arc::new(agent)
        }

        fn call(&self, protect: Option<u32>) -> Result<(), ProtectionError> {
            let at = self.started.lock().unwrap().unwrap().elapsed();
            self.calls.lock().unwrap().push((at, protect));
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(ProtectionError("connection refused".into()));
            }
            Ok(())
        }

        fn calls(&self) -> Vec<Option<u32>> {
            self.calls.lock().unwrap().iter().map(|(_, protect)| *protect).collect()
        }
    }

    #[async_trait]
    impl TaskProtection for FakeAgent {
        async fn protect(&self, minutes: u32) -> Result<(), ProtectionError> {
            self.call(Some(minutes))
        }
        async fn unprotect(&self) -> Result<(), ProtectionError> {
            self.call(None)
        }
    }

    fn start(agent: &Arc<FakeAgent>, capacity: &Capacity) -> tokio::task::JoinHandle<()> {
        let protector = Protector::new(agent.clone(), Arc::new(SeqRandom::new(7)));
        tokio::spawn(protector.run(capacity.watch()))
    }

    /// Lets the protector act on what just changed.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    const ON: Option<u32> = Some(PROTECTION_MINUTES);

    #[tokio::test(start_paused = true)]
    async fn protection_is_on_from_the_first_job_renewed_while_jobs_run_and_off_after_the_last() {
        let (agent, capacity) = (FakeAgent::new(0), Capacity::new(10));
        let _protector = start(&agent, &capacity);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let looking = capacity.reserve().await;
        settle().await;
        assert_eq!(agent.calls(), [], "an idle task, or one reading a message, is left unprotected");

        let mut first = looking;
        first.claim(1).unwrap();
        settle().await;
        assert_eq!(agent.calls(), [ON], "protected as soon as a job is claimed");
        let mut second = capacity.reserve().await;
        second.claim(3).unwrap();
        drop(first);
        settle().await;
        assert_eq!(agent.calls(), [ON], "a second job and the end of one change nothing");

        tokio::time::sleep(RENEW_AFTER * 3).await;
        assert_eq!(agent.calls(), [ON, ON, ON, ON], "renewed every half protection while a job runs");
        let renewals: Vec<Duration> = agent.calls.lock().unwrap().windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(renewals.iter().all(|gap| *gap == RENEW_AFTER), "{renewals:?}");

        drop(second);
        settle().await;
        assert_eq!(agent.calls().last(), Some(&None), "cleared when the last job ends");
        tokio::time::sleep(RENEW_AFTER * 3).await;
        assert_eq!(agent.calls().len(), 5, "nothing more while idle");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_the_agent_fails_is_retried_with_backoff_until_it_succeeds() {
        let (agent, capacity) = (FakeAgent::new(3), Capacity::new(10));
        let _protector = start(&agent, &capacity);
        let mut job = capacity.reserve().await;
        job.claim(1).unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(agent.calls(), [ON, ON, ON, ON], "three failures, then success");
        let at: Vec<Duration> = agent.calls.lock().unwrap().iter().map(|(at, _)| *at).collect();
        assert!(at.windows(2).all(|w| w[1] > w[0]) && at[3] < Duration::from_secs(10), "backing off: {at:?}");
        tokio::time::sleep(RENEW_AFTER).await;
        let renewed = agent.calls.lock().unwrap().get(4).map(|(at, _)| *at);
        assert_eq!(renewed, Some(at[3] + RENEW_AFTER), "renewed half a protection after the call that succeeded");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_ends_while_protection_is_failing_leaves_the_task_cleared() {
        let (agent, capacity) = (FakeAgent::new(2), Capacity::new(10));
        let _protector = start(&agent, &capacity);
        let mut job = capacity.reserve().await;
        job.claim(1).unwrap();
        settle().await;
        drop(job);
        tokio::time::sleep(Duration::from_secs(60)).await;
        // The first attempt failed; the retry found the worker idle and cleared it instead.
        assert_eq!(agent.calls(), [ON, None, None]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_worker_clears_protection_before_the_protector_ends() {
        let (agent, capacity) = (FakeAgent::new(0), Capacity::new(10));
        let protector = start(&agent, &capacity);
        let mut job = capacity.reserve().await;
        job.claim(1).unwrap();
        settle().await;
        // A SIGTERM hand-over: the job ends, then the worker drops its capacity and waits.
        drop(job);
        drop(capacity);
        tokio::time::timeout(Duration::from_secs(10), protector).await.unwrap().unwrap();
        assert_eq!(agent.calls(), [ON, None]);
    }
}
