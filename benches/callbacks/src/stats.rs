//! Percentiles of a sample of durations, and how the tables print them.

use std::time::Duration;

/// A sorted sample of latencies.
#[derive(Debug, Clone)]
pub struct Sample(Vec<Duration>);

impl Sample {
    /// Sorts `durations`; an empty sample is an error of the caller's making.
    pub fn new(mut durations: Vec<Duration>) -> anyhow::Result<Self> {
        anyhow::ensure!(!durations.is_empty(), "no latencies were recorded");
        durations.sort_unstable();
        Ok(Self(durations))
    }

    /// The nearest-rank percentile `p` (0–100): the smallest latency that at least `p`% of the
    /// sample does not exceed.
    pub fn percentile(&self, p: f64) -> Duration {
        let rank = (p / 100.0 * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
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

/// A Markdown table row.
pub fn row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// A Markdown table header and its separator line.
pub fn header(titles: &[&str]) -> String {
    let separator: Vec<String> = titles.iter().map(|_| "---".to_owned()).collect();
    let titles: Vec<String> = titles.iter().map(|t| (*t).to_owned()).collect();
    format!("{}\n{}", row(&titles), row(&separator))
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
        assert_eq!(s.max(), Duration::from_millis(250));
        let s = sample([7]);
        assert_eq!((s.percentile(50.0), s.percentile(99.0)), (Duration::from_millis(7), Duration::from_millis(7)));
    }

    #[test]
    fn empty_sample_is_an_error() {
        assert!(Sample::new(Vec::new()).is_err());
    }
}
