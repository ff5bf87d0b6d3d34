//! The Markdown the benchmark prints: one row per N, and the goals judged on them.

use std::path::PathBuf;

use roomrec_testkit::markdown::{self, verdict};
use roomrec_testkit::procs::Usage;

use crate::inputs::FPS;

/// Cores the real-time goal is stated for.
pub const GOAL_CORES: f64 = 2.0;
/// Largest CPU ratio (ours / ffmpeg) that meets the goal.
pub const GOAL_CPU_RATIO: f64 = 0.8;
/// How much lower than ffmpeg's our SSIM may be and still count as equal.
pub const SSIM_TOLERANCE: f64 = 0.005;
/// The N at which the real-time goal is stated.
pub const REALTIME_N: usize = 25;
/// Share of the expected frames a side must make in its window to have kept up.
pub const KEPT_UP_SHARE: f64 = 0.99;

/// One side measured over its window at one N.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    pub usage: Usage,
    /// Output frames made during the window.
    pub frames: u64,
    /// Frames the wall clock called for during the window (its length × 30).
    pub expected: u64,
    /// The window's first frame in the output file, counting 30 fps from the file's start.
    pub first_frame: u64,
    /// The recording.
    pub file: PathBuf,
    /// `/proc/loadavg` just before the side started.
    pub load_before: String,
    /// CPU seconds over the window per group of threads: (group, threads, seconds).
    pub threads: Vec<(String, usize, f64)>,
    /// Anything odd about how the window was taken.
    pub remark: Option<String>,
}

impl Side {
    /// Seconds of output made during the window.
    pub fn output_seconds(&self) -> f64 {
        self.frames as f64 / f64::from(FPS)
    }

    /// CPU seconds per second of output.
    pub fn cpu_per_output_second(&self) -> f64 {
        self.usage.cpu_seconds / self.output_seconds().max(1e-9)
    }

    /// Seconds of output [`GOAL_CORES`] cores make per second if busy with nothing else:
    /// above 1, two cores' worth of CPU time sustains the mix in real time.
    pub fn realtime_factor(&self) -> f64 {
        GOAL_CORES / self.cpu_per_output_second().max(1e-9)
    }

    /// Whether the side made (nearly) every frame the wall clock called for.
    pub fn kept_up(&self) -> bool {
        self.frames as f64 >= KEPT_UP_SHARE * self.expected as f64
    }
}

/// A recording's likeness to the uncompressed composite of the same inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// SSIM over the window: all planes (ffmpeg's `All`) and luma only.
    pub ssim_all: f64,
    pub ssim_y: f64,
    /// The composite frame (of its 20 s loop) that the window's first frame matched.
    pub offset: u64,
    /// PSNR (dB) of the alignment probe at that offset, and at the best offset at least
    /// [`crate::quality::DISTINCT_OFFSET_FRAMES`] away: the gap shows the match is unambiguous.
    pub probe_psnr: f64,
    pub runner_up_psnr: f64,
}

/// Both sides at one N; whatever could not be measured holds why.
#[derive(Debug, Clone)]
pub struct Row {
    pub n: usize,
    pub ours: Result<Side, String>,
    pub reference: Result<Side, String>,
    pub ours_quality: Result<Quality, String>,
    pub reference_quality: Result<Quality, String>,
}

impl Row {
    /// CPU per output second, ours / ffmpeg.
    pub fn cpu_ratio(&self) -> Option<f64> {
        let (ours, reference) = (self.ours.as_ref().ok()?, self.reference.as_ref().ok()?);
        Some(ours.cpu_per_output_second() / reference.cpu_per_output_second())
    }

    /// SSIM (All), ours − ffmpeg.
    pub fn ssim_difference(&self) -> Option<f64> {
        Some(self.ours_quality.as_ref().ok()?.ssim_all - self.reference_quality.as_ref().ok()?.ssim_all)
    }
}

/// A cell of a side, or "failed" when it was not measured.
fn cell<T>(value: &Result<T, String>, show: impl Fn(&T) -> String) -> String {
    value.as_ref().map_or_else(|_| "failed".into(), show)
}

/// The results table, one row per N.
pub fn table(rows: &[Row]) -> String {
    let titles = [
        "N",
        "ours CPU-s per output s",
        "ffmpeg CPU-s per output s",
        "CPU ratio (ours/ffmpeg)",
        "ours realtime factor (2 cores)",
        "frames in window: ours / expected",
        "frames in window: ffmpeg / expected",
        "SSIM ours",
        "SSIM ffmpeg",
        "SSIM ours − ffmpeg",
    ];
    let mut lines = vec![markdown::header(&titles)];
    for row in rows {
        let frames = |s: &Side| format!("{} / {}", s.frames, s.expected);
        let ssim = |q: &Quality| format!("{:.4}", q.ssim_all);
        lines.push(markdown::row(&[
            row.n.to_string(),
            cell(&row.ours, |s| format!("{:.3}", s.cpu_per_output_second())),
            cell(&row.reference, |s| format!("{:.3}", s.cpu_per_output_second())),
            row.cpu_ratio().map_or("n/a".into(), |r| format!("{r:.2}")),
            cell(&row.ours, |s| format!("{:.2}", s.realtime_factor())),
            cell(&row.ours, frames),
            cell(&row.reference, frames),
            cell(&row.ours_quality, ssim),
            cell(&row.reference_quality, ssim),
            row.ssim_difference().map_or("n/a".into(), |d| format!("{d:+.4}")),
        ]));
    }
    lines.join("\n")
}

/// The two goals, judged on the rows.
pub fn goals(rows: &[Row]) -> Vec<String> {
    let mut lines = Vec::new();
    for row in rows {
        let stated = format!(
            "N = {}: at most {GOAL_CPU_RATIO}× the ffmpeg CPU at equal SSIM (ours no more than {SSIM_TOLERANCE} below)",
            row.n
        );
        lines.push(match (row.cpu_ratio(), row.ssim_difference()) {
            (Some(ratio), Some(difference)) => {
                let (cpu_ok, ssim_ok) = (ratio <= GOAL_CPU_RATIO, difference >= -SSIM_TOLERANCE);
                format!(
                    "{stated}: {}. CPU ratio {ratio:.2} ({}), SSIM difference {difference:+.4} ({}).",
                    verdict(cpu_ok && ssim_ok),
                    verdict(cpu_ok),
                    verdict(ssim_ok)
                )
            }
            _ => format!("{stated}: FAIL (not measured: {}).", failures(row)),
        });
    }
    let stated = format!("{REALTIME_N} panes at 1080p30 faster than real time on {GOAL_CORES} cores");
    lines.push(match rows.iter().find(|r| r.n == REALTIME_N) {
        None => format!("{stated}: NOT MEASURED (N = {REALTIME_N} was not run)."),
        Some(Row { ours: Ok(side), .. }) => {
            let (factor, kept_up) = (side.realtime_factor(), side.kept_up());
            format!(
                "{stated}: {}. Realtime factor {factor:.2} ({}), {} of {} frames made in the window ({}).",
                verdict(factor > 1.0 && kept_up),
                verdict(factor > 1.0),
                side.frames,
                side.expected,
                verdict(kept_up)
            )
        }
        Some(row) => format!("{stated}: FAIL (not measured: {}).", failures(row)),
    });
    lines
}

/// Why a row's figures are missing.
fn failures(row: &Row) -> String {
    let sides = [
        ("ours", row.ours.as_ref().err()),
        ("ffmpeg", row.reference.as_ref().err()),
        ("SSIM ours", row.ours_quality.as_ref().err()),
        ("SSIM ffmpeg", row.reference_quality.as_ref().err()),
    ];
    sides.iter().filter_map(|(side, why)| why.map(|why| format!("{side}: {why}"))).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn side(cpu_seconds: f64, frames: u64) -> Result<Side, String> {
        Ok(Side {
            usage: Usage { cpu_seconds, wall: Duration::from_secs(60), other_cores: 0.1 },
            frames,
            expected: 1800,
            first_frame: 180,
            file: PathBuf::from("out.mp4"),
            load_before: "0.50 0.40 0.30".into(),
            threads: Vec::new(),
            remark: None,
        })
    }

    fn quality(ssim_all: f64) -> Result<Quality, String> {
        Ok(Quality { ssim_all, ssim_y: ssim_all, offset: 42, probe_psnr: 40.0, runner_up_psnr: 30.0 })
    }

    #[test]
    fn figures_are_per_output_second_and_the_realtime_factor_is_for_two_cores() {
        let ours = side(48.0, 1800).expect("measured");
        assert!((ours.cpu_per_output_second() - 0.8).abs() < 1e-9);
        assert!((ours.realtime_factor() - 2.5).abs() < 1e-9);
        assert!(ours.kept_up());
        assert!(!side(48.0, 1700).expect("measured").kept_up());
    }

    #[test]
    fn the_table_shows_the_ratio_and_the_ssim_difference() {
        let row = Row {
            n: 25,
            ours: side(48.0, 1800),
            reference: side(72.0, 1800),
            ours_quality: quality(0.9512),
            reference_quality: quality(0.9530),
        };
        let table = table(std::slice::from_ref(&row));
        assert!(
            table.contains(
                "| 25 | 0.800 | 1.200 | 0.67 | 2.50 | 1800 / 1800 | 1800 / 1800 | 0.9512 | 0.9530 | -0.0018 |"
            ),
            "{table}"
        );
        let judged = goals(&[row]);
        assert!(judged[0].contains("N = 25") && judged[0].contains(": PASS."), "{judged:?}");
        assert!(judged[1].contains("real time on 2 cores: PASS."), "{judged:?}");
    }

    #[test]
    fn worse_ssim_or_a_failed_side_fails_the_goal() {
        let blurry = Row {
            n: 9,
            ours: side(30.0, 1800),
            reference: side(60.0, 1800),
            ours_quality: quality(0.940),
            reference_quality: quality(0.950),
        };
        let judged = goals(&[blurry]);
        assert!(judged[0].contains(": FAIL. CPU ratio 0.50 (PASS), SSIM difference -0.0100 (FAIL)"), "{judged:?}");
        assert!(judged[1].contains("NOT MEASURED"));
        let broken = Row {
            n: 25,
            ours: Err("the mixer thread panicked".into()),
            reference: side(60.0, 1800),
            ours_quality: Err("no recording".into()),
            reference_quality: quality(0.95),
        };
        assert!(table(std::slice::from_ref(&broken)).contains("| 25 | failed | 1.000 | n/a | failed |"));
        let judged = goals(&[broken]);
        assert!(judged[1].contains("FAIL (not measured: ours: the mixer thread panicked; SSIM ours: no recording)"));
    }
}
