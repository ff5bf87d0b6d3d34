//! Time and randomness as ports: the core never reads the system clock or a random source
//! itself, so a test can freeze the one and script the other.

use chrono::{DateTime, Utc};

use crate::time::Timestamp;

/// Where the core reads the time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// The current time to the second, as the API shows and stores it.
    fn timestamp(&self) -> Timestamp {
        Timestamp::at(self.now())
    }

    /// Milliseconds since the Unix epoch.
    fn millis(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Microseconds since the Unix epoch: an ordering key finer than [`Timestamp`].
    fn micros(&self) -> i64 {
        self.now().timestamp_micros()
    }
}

/// Where the core gets random bytes (ids, secrets, jitter).
pub trait Random: Send + Sync {
    /// Fills `bytes` with random bytes.
    fn fill(&self, bytes: &mut [u8]);

    /// `bytes` random bytes as lowercase hex.
    fn hex(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.fill(&mut buf);
        hex::encode(buf)
    }

    /// A number in [0, 1).
    fn unit(&self) -> f64 {
        let mut buf = [0u8; 8];
        self.fill(&mut buf);
        // The top 53 bits make an evenly spread f64 in [0, 1).
        (u64::from_le_bytes(buf) >> 11) as f64 / (1u64 << 53) as f64
    }
}
