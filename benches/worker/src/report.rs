//! The Markdown the benchmark prints: one row per N and the goal at N = 50.

use roomrec_testkit::markdown::{self, verdict};
use roomrec_testkit::procs::{Memory, Usage, MIB};

use crate::media::SLICE_SECONDS;

/// The N at which the issue states its goal.
pub const GOAL_N: usize = 50;
/// Largest CPU ratio (ours / ffmpeg) that meets the goal.
pub const GOAL_CPU_RATIO: f64 = 0.5;
/// Largest memory ratio (ours / ffmpeg) that meets the goal.
pub const GOAL_RSS_RATIO: f64 = 0.1;

/// One side measured at one N.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// The CPU its processes used during the window.
    pub usage: Usage,
    /// The most memory its processes held at once during the window.
    pub memory: Memory,
    /// HLS segments completed during the window, over all N streams.
    pub segments: usize,
    /// `/proc/loadavg` when the window opened.
    pub load: String,
}

impl Side {
    /// CPU seconds per recorded second per stream.
    pub fn cpu_per_stream(&self, n: usize) -> f64 {
        self.usage.cpu_seconds / (self.usage.wall.as_secs_f64() * n as f64)
    }

    /// Peak resident memory per stream, in MiB.
    pub fn rss_mib_per_stream(&self, n: usize) -> f64 {
        self.memory.peak_rss_bytes as f64 / MIB / n as f64
    }

    /// Peak private resident memory (`RssAnon`) per stream, in MiB.
    pub fn anon_mib_per_stream(&self, n: usize) -> f64 {
        self.memory.peak_anon_bytes as f64 / MIB / n as f64
    }
}

/// Both sides at one N; a side that could not be measured holds why.
#[derive(Debug, Clone)]
pub struct Row {
    pub n: usize,
    pub ours: Result<Side, String>,
    pub reference: Result<Side, String>,
}

impl Row {
    /// (CPU ratio, RSS ratio) of ours to ffmpeg, when both sides were measured.
    pub fn ratios(&self) -> Option<(f64, f64)> {
        let (ours, reference) = (self.ours.as_ref().ok()?, self.reference.as_ref().ok()?);
        Some((
            ours.cpu_per_stream(self.n) / reference.cpu_per_stream(self.n),
            ours.rss_mib_per_stream(self.n) / reference.rss_mib_per_stream(self.n),
        ))
    }
}

/// A short cell for a side that was not measured.
fn failed(why: &str) -> String {
    if why.starts_with("not sustainable") {
        "not sustainable".into()
    } else {
        "failed".into()
    }
}

/// The table, one row per N; `window_secs` gives the expected segment count.
pub fn table(rows: &[Row], window_secs: u64) -> String {
    let titles = [
        "N",
        "ours CPU-s per recorded s per stream",
        "ffmpeg CPU-s per recorded s per stream",
        "CPU ratio (ours/ffmpeg)",
        "ours RSS MiB per stream",
        "ffmpeg RSS MiB per stream",
        "RSS ratio",
        "segments in window: ours / ffmpeg / expected",
        "private RssAnon MiB per stream: ours / ffmpeg",
    ];
    let mut lines = vec![markdown::header(&titles)];
    for row in rows {
        let side =
            |side: &Result<Side, String>, f: &dyn Fn(&Side) -> String| side.as_ref().map_or_else(|e| failed(e), f);
        let (cpu_ratio, rss_ratio) =
            row.ratios().map_or(("n/a".into(), "n/a".into()), |(c, r)| (format!("{c:.2}"), format!("{r:.3}")));
        let segments = |s: &Side| s.segments.to_string();
        let anon = |s: &Side| format!("{:.1}", s.anon_mib_per_stream(row.n));
        lines.push(markdown::row(&[
            row.n.to_string(),
            side(&row.ours, &|s| format!("{:.4}", s.cpu_per_stream(row.n))),
            side(&row.reference, &|s| format!("{:.4}", s.cpu_per_stream(row.n))),
            cpu_ratio,
            side(&row.ours, &|s| format!("{:.1}", s.rss_mib_per_stream(row.n))),
            side(&row.reference, &|s| format!("{:.1}", s.rss_mib_per_stream(row.n))),
            rss_ratio,
            format!(
                "{} / {} / ~{}",
                side(&row.ours, &segments),
                side(&row.reference, &segments),
                window_secs / SLICE_SECONDS * row.n as u64
            ),
            format!("{} / {}", side(&row.ours, &anon), side(&row.reference, &anon)),
        ]));
    }
    lines.join("\n")
}

/// The goal, judged on the N = 50 row.
pub fn goal(rows: &[Row]) -> String {
    let stated = format!(
        "Goal (issue): at N = {GOAL_N}, at most {:.0} % of the CPU and {:.0} % of the memory of the ffmpeg processes",
        GOAL_CPU_RATIO * 100.0,
        GOAL_RSS_RATIO * 100.0
    );
    let Some(row) = rows.iter().find(|r| r.n == GOAL_N) else {
        return format!("{stated}: NOT MEASURED (N = {GOAL_N} was not run).");
    };
    let Some((cpu, rss)) = row.ratios() else {
        let why = [&row.ours, &row.reference]
            .into_iter()
            .filter_map(|s| s.as_ref().err())
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        return format!("{stated}: FAIL (not measured at N = {GOAL_N}: {why}).");
    };
    let (cpu_ok, rss_ok) = (cpu <= GOAL_CPU_RATIO, rss <= GOAL_RSS_RATIO);
    format!(
        "{stated}: {}. CPU ratio {cpu:.2} (≤ {GOAL_CPU_RATIO}: {}), RSS ratio {rss:.3} (≤ {GOAL_RSS_RATIO}: {}).",
        verdict(cpu_ok && rss_ok),
        verdict(cpu_ok),
        verdict(rss_ok)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn side(cpu_seconds: f64, rss_mib: u64) -> Result<Side, String> {
        let (peak_rss_bytes, peak_anon_bytes) = (rss_mib * 1024 * 1024, rss_mib * 1024 * 1024 / 4);
        let usage = Usage { cpu_seconds, wall: Duration::from_secs(30), other_cores: 0.0 };
        let memory = Memory { peak_rss_bytes, peak_anon_bytes };
        Ok(Side { usage, memory, segments: 375, load: "1.00 1.00 1.00".into() })
    }

    #[test]
    fn figures_are_per_recorded_second_and_per_stream() {
        let row = Row { n: 50, ours: side(15.0, 100), reference: side(60.0, 1500) };
        let ours = row.ours.as_ref().expect("measured");
        assert!((ours.cpu_per_stream(50) - 0.01).abs() < 1e-9);
        assert!((ours.rss_mib_per_stream(50) - 2.0).abs() < 1e-9);
        let (cpu, rss) = row.ratios().expect("both measured");
        assert!((cpu - 0.25).abs() < 1e-9 && (rss - 100.0 / 1500.0).abs() < 1e-9);
        let table = table(std::slice::from_ref(&row), 30);
        assert!(
            table.contains("| 50 | 0.0100 | 0.0400 | 0.25 | 2.0 | 30.0 | 0.067 | 375 / 375 / ~350 | 0.5 / 7.5 |"),
            "{table}"
        );
        assert!(goal(&[row]).contains(": PASS."));
    }

    #[test]
    fn the_goal_fails_when_memory_is_too_high_or_n50_was_not_sustainable() {
        let heavy = Row { n: 50, ours: side(15.0, 500), reference: side(60.0, 1500) };
        assert!(goal(&[heavy]).contains(": FAIL. CPU ratio 0.25 (≤ 0.5: PASS), RSS ratio 0.333 (≤ 0.1: FAIL)"));
        let stuck = Row {
            n: 50,
            ours: Err("not sustainable: after 60 s 20/50 jobs RUNNING".into()),
            reference: side(60.0, 1500),
        };
        assert!(table(std::slice::from_ref(&stuck), 30).contains("| 50 | not sustainable | 0.0400 | n/a |"));
        assert!(goal(&[stuck]).contains("FAIL (not measured at N = 50: not sustainable"));
        assert!(goal(&[]).contains("NOT MEASURED"));
    }
}
