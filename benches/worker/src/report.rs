//! The Markdown the benchmark prints: one row per N, the goal at N = 50 and its
//! real-time goal at N = 200.

use roomrec_testkit::markdown::{self, verdict};
use roomrec_testkit::procs::{Memory, Usage, MIB};

use crate::media::SLICE_SECONDS;

/// The N at which the issue states its goal.
pub const GOAL_N: usize = 50;
/// Largest CPU ratio (ours / ffmpeg) that meets the goal.
pub const GOAL_CPU_RATIO: f64 = 0.5;
/// Largest memory ratio (ours / ffmpeg) that meets the goal.
pub const GOAL_RSS_RATIO: f64 = 0.1;
/// The N at which every stream of ours must keep real time.
pub const REAL_TIME_N: usize = 200;

/// One side measured at one N.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// The CPU its processes used during the window.
    pub usage: Usage,
    /// The most memory its processes held at once during the window.
    pub memory: Memory,
    /// HLS segments completed during the window per stream: uploaded to S3 (ours), written
    /// to disk (ffmpeg).
    pub segments: Segments,
    /// Ours: segments its recorders began in the spool during the window, uploaded or not, so
    /// a slow S3 is told apart from a slow recorder. None for ffmpeg (on disk once written).
    pub recorded: Option<Segments>,
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

    /// One line of figures, printed as soon as the side is measured.
    pub fn summary(&self, n: usize, window_secs: u64) -> String {
        let recorded = self.recorded.as_ref().map_or_else(String::new, |r| {
            format!("; begun by the recorders: {} behind (min {})", r.behind(window_secs), r.min())
        });
        format!(
            "{:.4} CPU-s per s per stream, {:.1} MiB RSS per stream; segments {} in all, {} streams behind (min \
             {}){recorded}",
            self.cpu_per_stream(n),
            self.rss_mib_per_stream(n),
            self.segments.total(),
            self.segments.behind(window_secs),
            self.segments.min()
        )
    }

    /// Peak private resident memory (`RssAnon`) per stream, in MiB.
    pub fn anon_mib_per_stream(&self, n: usize) -> f64 {
        self.memory.peak_anon_bytes as f64 / MIB / n as f64
    }
}

/// Segments per stream over the window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Segments(pub Vec<usize>);

impl Segments {
    /// Over all streams.
    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }

    /// The fewest of one stream.
    pub fn min(&self) -> usize {
        self.0.iter().copied().min().unwrap_or(0)
    }

    /// How many streams fell behind real time over a window of `window_secs`: fewer segments
    /// than [`expected_segments`] less one (a segment may end just outside the window).
    pub fn behind(&self, window_secs: u64) -> usize {
        let least = expected_segments(window_secs).saturating_sub(1);
        self.0.iter().filter(|&&count| count < least).count()
    }

    /// "behind (min)", as the table shows it.
    fn cell(&self, window_secs: u64) -> String {
        format!("{} ({})", self.behind(window_secs), self.min())
    }

    /// A sentence for the goal.
    fn sentence(&self, window_secs: u64) -> String {
        let (behind, n, min) = (self.behind(window_secs), self.0.len(), self.min());
        format!("{behind} of {n} streams behind, the fewest segments of one stream {min}")
    }
}

/// Segments one stream in real time completes in a window of `window_secs`, at least.
pub fn expected_segments(window_secs: u64) -> usize {
    (window_secs / SLICE_SECONDS) as usize
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
        "streams behind real time (min segments of one stream): ours uploaded / ours recorded / ffmpeg",
        "private RssAnon MiB per stream: ours / ffmpeg",
    ];
    let mut lines = vec![markdown::header(&titles)];
    for row in rows {
        let side =
            |side: &Result<Side, String>, f: &dyn Fn(&Side) -> String| side.as_ref().map_or_else(|e| failed(e), f);
        let (cpu_ratio, rss_ratio) =
            row.ratios().map_or(("n/a".into(), "n/a".into()), |(c, r)| (format!("{c:.2}"), format!("{r:.3}")));
        let segments = |s: &Side| s.segments.total().to_string();
        let behind = |s: &Side| s.segments.cell(window_secs);
        let recorded = |s: &Side| s.recorded.as_ref().map_or_else(|| "n/a".into(), |r| r.cell(window_secs));
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
            format!(
                "{} / {} / {}",
                side(&row.ours, &behind),
                side(&row.ours, &recorded),
                side(&row.reference, &behind)
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

/// The real-time goal, judged on ours in the N = 200 row; ffmpeg's figure beside it.
pub fn real_time_goal(rows: &[Row], window_secs: u64) -> String {
    let least = expected_segments(window_secs).saturating_sub(1);
    let stated = format!(
        "Goal (issue): at N = {REAL_TIME_N}, every stream in real time (at least {least} segments of {SLICE_SECONDS} s \
         in the {window_secs} s window)"
    );
    let Some(row) = rows.iter().find(|r| r.n == REAL_TIME_N) else {
        return format!("{stated}: NOT MEASURED (N = {REAL_TIME_N} was not run).");
    };
    let uploaded = |side: &Result<Side, String>| match side {
        Ok(s) => s.segments.sentence(window_secs),
        Err(why) => format!("not measured: {why}"),
    };
    let recorded = match row.ours.as_ref().map(|s| s.recorded.as_ref()) {
        Ok(Some(recorded)) => recorded.sentence(window_secs),
        _ => "not measured".into(),
    };
    let met = row.ours.as_ref().is_ok_and(|s| s.segments.0.len() == row.n && s.segments.behind(window_secs) == 0);
    format!(
        "{stated}: {}. Ours, uploaded to S3: {}; begun by the recorders: {recorded}. ffmpeg: {}.",
        verdict(met),
        uploaded(&row.ours),
        uploaded(&row.reference)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn side(cpu_seconds: f64, rss_mib: u64) -> Result<Side, String> {
        with_segments(cpu_seconds, rss_mib, vec![7; 50])
    }

    fn with_segments(cpu_seconds: f64, rss_mib: u64, segments: Vec<usize>) -> Result<Side, String> {
        let (peak_rss_bytes, peak_anon_bytes) = (rss_mib * 1024 * 1024, rss_mib * 1024 * 1024 / 4);
        let usage = Usage { cpu_seconds, wall: Duration::from_secs(30), other_cores: 0.0 };
        let memory = Memory { peak_rss_bytes, peak_anon_bytes };
        let recorded = Some(Segments(vec![8; segments.len()]));
        Ok(Side { usage, memory, segments: Segments(segments), recorded, load: "1.00 1.00 1.00".into() })
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
            table.contains(
                "| 50 | 0.0100 | 0.0400 | 0.25 | 2.0 | 30.0 | 0.067 | 350 / 350 / ~350 | 0 (7) / 0 (8) / 0 (7) | 0.5 / 7.5 |"
            ),
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

    #[test]
    fn a_stream_two_segments_short_of_the_window_is_behind_and_fails_the_real_time_goal() {
        let mut segments = vec![8; 200];
        segments[3] = 6;
        let row = Row { n: 200, ours: with_segments(60.0, 1000, segments), reference: side(60.0, 1500) };
        let ours = row.ours.as_ref().expect("measured");
        assert_eq!((ours.segments.behind(30), ours.segments.min()), (0, 6), "6 of ~7.5 is one segment short");
        assert!(real_time_goal(std::slice::from_ref(&row), 30)
            .contains(": PASS. Ours, uploaded to S3: 0 of 200 streams behind"));
        let mut segments = vec![8; 200];
        segments[3] = 5;
        segments[9] = 0;
        let row = Row { n: 200, ours: with_segments(60.0, 1000, segments), reference: side(60.0, 1500) };
        let goal = real_time_goal(std::slice::from_ref(&row), 30);
        let uploads_behind =
            "FAIL. Ours, uploaded to S3: 2 of 200 streams behind, the fewest segments of one stream 0; \
                              begun by the recorders: 0 of 200 streams behind, the fewest segments of one stream 8.";
        assert!(goal.contains(uploads_behind), "{goal}");
        assert!(table(std::slice::from_ref(&row), 30).contains("| 2 (0) / 0 (8) / 0 (7) |"));
        assert!(real_time_goal(&[], 30).contains("NOT MEASURED"));
    }
}
