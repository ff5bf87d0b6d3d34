//! Metering: what a job used — seconds recorded per format and bytes stored (from its files),
//! CPU-seconds of its media threads and pane-seconds of its mix (measured by the workers that
//! held it, added up across hand-overs) — and the per-app, per-day sums `GET /v2/usage` reads.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::Invalid;
use crate::ids::AppId;
use crate::rule::RecordFormat;

/// Longest range `GET /v2/usage` sums, in days (both ends included).
pub const MAX_RANGE_DAYS: i64 = 366;

/// Seconds of media recorded, per format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedSeconds {
    pub hls: f64,
    pub mp4: f64,
}

/// What a job used, or a sum of jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub recorded_seconds: RecordedSeconds,
    /// Bytes of the media objects stored: HLS segments and MP4 files (playlists not counted).
    pub bytes_stored: u64,
    /// CPU time of the job's media threads (the recorder or mixer and its input threads).
    pub cpu_seconds: f64,
    /// Sum over the mix's output time of the panes showing a participant.
    pub mixed_pane_seconds: f64,
}

/// What the media threads of one holder of a job spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    pub cpu_seconds: f64,
    pub mixed_pane_seconds: f64,
}

impl Usage {
    /// This usage with the recorded seconds and bytes of `files` — each its format, media
    /// seconds and size — in place of any before (what is stored decides them, so counting
    /// the files again never counts them twice).
    pub fn with_files(self, files: impl IntoIterator<Item = (RecordFormat, f64, u64)>) -> Self {
        let (mut recorded, mut bytes_stored) = (RecordedSeconds::default(), 0);
        for (format, seconds, bytes) in files {
            match format {
                RecordFormat::Hls => recorded.hls += seconds,
                RecordFormat::Mp4 => recorded.mp4 += seconds,
            }
            bytes_stored += bytes;
        }
        Self { recorded_seconds: recorded, bytes_stored, ..self }
    }

    /// This usage with `spent` added (another holder's media threads).
    pub fn with_spent(self, spent: Spent) -> Self {
        Self {
            cpu_seconds: self.cpu_seconds + spent.cpu_seconds,
            mixed_pane_seconds: self.mixed_pane_seconds + spent.mixed_pane_seconds,
            ..self
        }
    }

    /// The sum of two usages.
    pub fn plus(self, other: &Usage) -> Self {
        Self {
            recorded_seconds: RecordedSeconds {
                hls: self.recorded_seconds.hls + other.recorded_seconds.hls,
                mp4: self.recorded_seconds.mp4 + other.recorded_seconds.mp4,
            },
            bytes_stored: self.bytes_stored + other.bytes_stored,
            cpu_seconds: self.cpu_seconds + other.cpu_seconds,
            mixed_pane_seconds: self.mixed_pane_seconds + other.mixed_pane_seconds,
        }
    }
}

/// One app's usage on one day (UTC) of jobs that ended that day.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyUsage {
    pub app_id: AppId,
    pub day: NaiveDate,
    pub usage: Usage,
}

/// The days `GET /v2/usage?from=&to=` covers, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl UsageRange {
    /// Parses `from` and `to`, each a date (`2026-11-29`) or an RFC 3339 time (its UTC day);
    /// `to` defaults to `from`. A 400 names the field that is wrong.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, Invalid> {
        let from = day(from.ok_or_else(|| Invalid::new("from", "is required (a date, e.g. 2026-11-29)"))?, "from")?;
        let to = match to {
            Some(text) => day(text, "to")?,
            None => from,
        };
        if to < from {
            return Err(Invalid::new("to", "must not be before from"));
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS {
            return Err(Invalid::new("to", format!("the range may cover at most {MAX_RANGE_DAYS} days")));
        }
        Ok(Self { from, to })
    }
}

fn day(text: &str, field: &'static str) -> Result<NaiveDate, Invalid> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc).date_naive())
        .map_err(|_| Invalid::new(field, "must be a date (2026-11-29) or an RFC 3339 time"))
}

/// `GET /v2/usage`'s answer: the range and each app's sum over it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageSummary {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub apps: Vec<AppUsage>,
    pub total: Usage,
}

/// One app's sum over the range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppUsage {
    pub app_id: AppId,
    pub usage: Usage,
}

impl UsageSummary {
    /// Sums `days` per app (in app id order) over `range`.
    pub fn of(range: UsageRange, days: &[DailyUsage]) -> Self {
        let mut apps: std::collections::BTreeMap<&AppId, Usage> = std::collections::BTreeMap::new();
        let inside = days.iter().filter(|d| d.day >= range.from && d.day <= range.to);
        for daily in inside {
            let sum = apps.entry(&daily.app_id).or_default();
            *sum = sum.plus(&daily.usage);
        }
        let total = apps.values().fold(Usage::default(), |sum, u| sum.plus(u));
        let apps = apps.into_iter().map(|(app_id, usage)| AppUsage { app_id: app_id.clone(), usage }).collect();
        Self { from: range.from, to: range.to, apps, total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::random;

    #[test]
    fn recorded_seconds_and_bytes_come_from_the_files_and_spent_adds_up() {
        let files = [(RecordFormat::Hls, 10.0, 100), (RecordFormat::Mp4, 9.5, 50), (RecordFormat::Hls, 2.0, 7)];
        let spent = Spent { cpu_seconds: 1.5, mixed_pane_seconds: 4.0 };
        let usage = Usage::default().with_spent(spent).with_files(files).with_files(files).with_spent(spent);
        assert_eq!(usage.recorded_seconds, RecordedSeconds { hls: 12.0, mp4: 9.5 });
        assert_eq!(usage.bytes_stored, 157, "the files decide, however often they are counted");
        assert_eq!((usage.cpu_seconds, usage.mixed_pane_seconds), (3.0, 8.0), "each holder's spending adds");
    }

    #[test]
    fn a_range_takes_dates_or_rfc3339_times_and_names_the_bad_field() {
        let range = UsageRange::parse(Some("2026-11-01"), Some("2026-11-29T23:59:59+00:00")).unwrap();
        assert_eq!((range.from.to_string(), range.to.to_string()), ("2026-11-01".into(), "2026-11-29".into()));
        assert_eq!(UsageRange::parse(Some("2026-11-01"), None).unwrap().to, range.from);
        assert_eq!(UsageRange::parse(None, Some("2026-11-01")).unwrap_err().field, "from");
        assert_eq!(UsageRange::parse(Some("yesterday"), None).unwrap_err().field, "from");
        assert_eq!(UsageRange::parse(Some("2026-11-02"), Some("2026-11-01")).unwrap_err().field, "to");
        assert_eq!(UsageRange::parse(Some("2025-01-01"), Some("2026-11-01")).unwrap_err().field, "to");
    }

    #[test]
    fn a_summary_adds_each_apps_days_inside_the_range_only() {
        let (a, b) = (AppId::generate(random()), AppId::generate(random()));
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let used = |cpu: f64| Usage { cpu_seconds: cpu, bytes_stored: 10, ..Usage::default() };
        let days = [
            DailyUsage { app_id: a.clone(), day: day(1), usage: used(1.0) },
            DailyUsage { app_id: a.clone(), day: day(2), usage: used(2.0) },
            DailyUsage { app_id: b.clone(), day: day(2), usage: used(4.0) },
            DailyUsage { app_id: b.clone(), day: day(9), usage: used(8.0) },
        ];
        let summary = UsageSummary::of(UsageRange { from: day(1), to: day(2) }, &days);
        let of = |app: &AppId| summary.apps.iter().find(|u| &u.app_id == app).unwrap().usage;
        assert_eq!((of(&a).cpu_seconds, of(&a).bytes_stored), (3.0, 20));
        assert_eq!(of(&b).cpu_seconds, 4.0);
        assert_eq!((summary.total.cpu_seconds, summary.total.bytes_stored), (7.0, 30));
    }
}
