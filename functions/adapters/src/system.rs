//! The real clock and random source behind the core's [`Clock`] and [`Random`] ports.

use chrono::{DateTime, Utc};
use rand::Rng;
use roomrec_domain::clock::{Clock, Random};

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The operating system's randomness, through a thread-local CSPRNG seeded from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, bytes: &mut [u8]) {
        rand::rng().fill_bytes(bytes);
    }
}
