//! Retrying a call that failed for a passing reason (a refused or reset connection, a timeout,
//! throttling) with exponential backoff, jitter and a deadline: how the worker and the
//! deliverer ride out an AWS outage of minutes instead of failing a recording or a delivery.

use std::future::Future;
use std::time::Duration;

use crate::clock::Random;
use crate::error::{QueueError, StoreError};

/// How a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure; doubled after each further one.
    pub first: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
    /// No attempt starts later than this after the first.
    pub deadline: Duration,
}

impl Backoff {
    /// For the worker's AWS calls: 200 ms doubling to 5 s, for up to 5 minutes (the spool
    /// holds the media meanwhile).
    pub const AWS: Self =
        Self { first: Duration::from_millis(200), max: Duration::from_secs(5), deadline: Duration::from_secs(300) };

    /// For a Lambda function's AWS calls: as [`AWS`](Self::AWS) for up to 20 s, well within
    /// its timeout; past that its queue message comes back and it is tried again then.
    pub const IN_LAMBDA: Self = Self { deadline: Duration::from_secs(20), ..Self::AWS };

    /// The wait before attempt `attempt` (from 1 for the first retry): the doubled delay,
    /// capped, then scaled by `unit` in [0, 1) to between half and all of it ("equal jitter"),
    /// so workers that failed together do not come back together.
    pub fn wait(&self, attempt: u32, unit: f64) -> Duration {
        let doubled = self.first.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        doubled.min(self.max).mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0)
    }
}

/// Whether an error may pass if the call is made again.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for StoreError {
    /// A backend failure may pass; a lost condition will not.
    fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend(_))
    }
}

impl Transient for QueueError {
    fn is_transient(&self) -> bool {
        true
    }
}

/// Calls `call` until it succeeds, fails for good (not [`Transient`]), or `backoff`'s
/// deadline has passed; returns the last result. Each retry is logged with `what`.
pub async fn retry<T, E, F, Fut>(backoff: &Backoff, random: &dyn Random, what: &str, mut call: F) -> Result<T, E>
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut attempt = 0;
    loop {
        let err = match call().await {
            Err(err) if err.is_transient() => err,
            done => return done,
        };
        attempt += 1;
        let wait = backoff.wait(attempt, random.unit());
        if started.elapsed() + wait > backoff.deadline {
            tracing::error!(what, attempt, error = %err, "giving up after retrying until the deadline");
            return Err(err);
        }
        tracing::warn!(what, attempt, error = %err, wait_ms = wait.as_millis() as u64, "call failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn waits_double_up_to_the_cap_with_at_most_half_taken_off() {
        let backoff = Backoff::AWS;
        assert_eq!(backoff.wait(1, 0.999_999).as_millis(), 199);
        assert_eq!(backoff.wait(1, 0.0), Duration::from_millis(100));
        assert_eq!(backoff.wait(3, 0.0), Duration::from_millis(400));
        assert_eq!(backoff.wait(30, 0.0), Duration::from_millis(2_500), "capped at 5 s, half off");
    }

    fn backend() -> StoreError {
        StoreError::Backend(Box::new(std::io::Error::other("connection reset")))
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_until_it_passes_and_a_conflict_is_not() {
        let calls = AtomicU32::new(0);
        let passes = retry(&Backoff::AWS, random(), "test", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 5 {
                Err(backend())
            } else {
                Ok(7)
            }
        });
        assert_eq!(passes.await.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 6);

        calls.store(0, Ordering::SeqCst);
        let conflict = retry(&Backoff::AWS, random(), "test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(StoreError::Conflict)
        });
        assert!(matches!(conflict.await, Err(StoreError::Conflict)));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a lost condition is final");
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_longer_than_the_deadline_fails_after_it() {
        let started = tokio::time::Instant::now();
        let outage = retry(&Backoff::AWS, random(), "test", || async { Err::<(), _>(backend()) });
        assert!(outage.await.is_err());
        let waited = started.elapsed();
        assert!(
            waited <= Backoff::AWS.deadline && waited > Backoff::AWS.deadline - Duration::from_secs(6),
            "{waited:?}"
        );
    }
}
