//! Percentiles of a sample of durations, and how the tables print them.

use std::time::Duration;

/// A sample with no durations in it has no percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no latencies were recorded")]
pub struct EmptySample;

/// A sorted, non-empty sample of latencies.
#[derive(Debug, Clone)]
pub struct Sample(Vec<Duration>);

impl Sample {
    /// Sorts `durations`; an empty sample is an error of the caller's making.
    pub fn new(mut durations: Vec<Duration>) -> Result<Self, EmptySample> {
        if durations.is_empty() {
            return Err(EmptySample);
        }
        durations.sort_unstable();
        Ok(Self(durations))
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: a sample holds at least one latency.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The nearest-rank percentile `p` (0–100): the smallest latency that at least `p`% of the
    /// sample does not exceed.
    pub fn percentile(&self, p: f64) -> Duration {
        let rank = (p / 100.0 * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// The fastest.
    pub fn min(&self) -> Duration {
        self.0[0]
    }

    /// The slowest.
    pub fn max(&self) -> Duration {
        self.0[self.0.len() - 1]
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// `a − b` in milliseconds with two decimals; negative when `b` is slower.
pub fn ms_diff(a: Duration, b: Duration) -> String {
    format!("{:.2}", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(millis: impl IntoIterator<Item = u64>) -> Sample {
        Sample::new(millis.into_iter().map(Duration::from_millis).collect()).expect("not empty")
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = sample((1..=250).rev());
        assert_eq!(s.percentile(50.0), Duration::from_millis(125));
        assert_eq!(s.percentile(99.0), Duration::from_millis(248));
        assert_eq!((s.min(), s.max()), (Duration::from_millis(1), Duration::from_millis(250)));
        assert_eq!(s.len(), 250);
        let s = sample([7]);
        assert_eq!((s.percentile(50.0), s.percentile(99.0)), (Duration::from_millis(7), Duration::from_millis(7)));
    }

    #[test]
    fn empty_sample_is_an_error() {
        assert_eq!(Sample::new(Vec::new()).map(|s| s.len()), Err(EmptySample));
    }

    #[test]
    fn milliseconds_have_two_decimals_and_differences_can_be_negative() {
        assert_eq!(ms(Duration::from_micros(1234)), "1.23");
        assert_eq!(ms_diff(Duration::from_micros(1500), Duration::from_millis(2)), "-0.50");
    }
}
