//! The quality report of each recording file ([`Quality`]): a running tally of what happened
//! on the recording's timeline (gaps, frames dropped, repeated or skipped, how the input's
//! rate and size went, the shift each stream's timing was given), and each file's share
//! of it, taken from a [`Mark`] made when the file opened.

use std::time::{Duration, Instant};

use crate::{InputChange, Quality};

/// The input's bit rate and frame rate are measured over windows of this much media, in µs.
const METER_WINDOW_US: i64 = 5_000_000;
/// A bit rate that moves by more than this fraction of the last one reported is a change.
const BITRATE_CHANGE: f64 = 0.25;
/// A frame rate that moves by more than this fraction of the last one reported is a change.
const FPS_CHANGE: f64 = 0.1;
/// How long a new connection is watched for media it read ahead (probing takes ≤ 2 s).
const READ_AHEAD_WATCH: Duration = Duration::from_secs(4);

/// Everything counted so far on the recording's timeline (µs).
#[derive(Default)]
pub(crate) struct Tally {
    gaps: Vec<(i64, Duration)>,
    /// A gap under way since then (the mix: no participant sending).
    open_gap_us: Option<i64>,
    dropped: u64,
    duplicated: u64,
    late_skipped: u64,
    /// Sum and count of the A/V offset's samples (audio's shift minus video's, µs).
    offset_sum_us: i128,
    offset_count: u64,
    /// Each with its time on the timeline.
    changes: Vec<(i64, Change)>,
    meter: Meter,
    /// The input as last reported.
    reported_kbps: Option<u32>,
    reported_fps: Option<f64>,
    reported_size: Option<(u32, u32)>,
}

/// Where the tally stood when a file opened.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mark {
    gaps: usize,
    dropped: u64,
    duplicated: u64,
    late_skipped: u64,
    offset_sum_us: i128,
    offset_count: u64,
    changes: usize,
}

/// What changed about the input.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// A connection with pictures of this size (none: no video).
    Size(Option<(u32, u32)>),
    /// The measured rates; only those that moved are set.
    Rates { kbps: Option<u32>, fps: Option<f64> },
}

impl Change {
    /// `state` (or nothing yet) with this change applied.
    fn apply(self, state: Option<InputChange>) -> InputChange {
        let mut state = state.unwrap_or_default();
        match self {
            Change::Size(size) => (state.width, state.height) = (size.map(|s| s.0), size.map(|s| s.1)),
            Change::Rates { kbps, fps } => {
                state.bitrate_kbps = kbps.or(state.bitrate_kbps);
                state.fps = fps.or(state.fps);
            }
        }
        state
    }

    /// Only what changed, at `at_ms`.
    fn report(self, at_ms: u64) -> InputChange {
        let unchanged = InputChange { at_ms, ..InputChange::default() };
        match self {
            Change::Size(size) => InputChange { width: size.map(|s| s.0), height: size.map(|s| s.1), ..unchanged },
            Change::Rates { kbps, fps } => InputChange { bitrate_kbps: kbps, fps, ..unchanged },
        }
    }
}

/// How far a connection's media ran ahead of the wall clock while it drained what was read
/// before its first packet came out: that much of a gap before it was not lost.
#[derive(Default)]
pub(crate) struct ReadAhead {
    first: Option<(Instant, i64)>,
    lead_us: i64,
}

impl ReadAhead {
    /// A packet at `media_us` (the source's time) came out at `now`: how much further ahead
    /// of the wall clock the media now is than before (watched for [`READ_AHEAD_WATCH`]).
    pub(crate) fn packet(&mut self, now: Instant, media_us: i64) -> i64 {
        let (since, first_us) = *self.first.get_or_insert((now, media_us));
        let wall_us = i64::try_from(now.duration_since(since).as_micros()).unwrap_or(i64::MAX);
        if wall_us >= i64::try_from(READ_AHEAD_WATCH.as_micros()).unwrap_or(i64::MAX) {
            return 0;
        }
        let lead_us = media_us.saturating_sub(first_us).saturating_sub(wall_us);
        let grown = lead_us.saturating_sub(self.lead_us).max(0);
        self.lead_us += grown;
        grown
    }
}

/// Bytes and video frames in the current window of the input.
#[derive(Default)]
struct Meter {
    start_us: Option<i64>,
    bytes: u64,
    frames: u64,
}

impl Tally {
    /// Where the tally stands now (a file opens).
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            gaps: self.gaps.len(),
            dropped: self.dropped,
            duplicated: self.duplicated,
            late_skipped: self.late_skipped,
            offset_sum_us: self.offset_sum_us,
            offset_count: self.offset_count,
            changes: self.changes.len(),
        }
    }

    /// The media missed `length` at `at_us` (the timeline goes on without a hole).
    pub(crate) fn gap(&mut self, at_us: i64, length: Duration) {
        self.gaps.push((at_us, length));
    }

    /// The last gap was `buffered_us` shorter than it seemed: media the new connection read
    /// ahead (while probing the stream) before its first packet came out.
    pub(crate) fn shorten_last_gap(&mut self, buffered_us: i64) {
        if let Some((_, length)) = self.gaps.last_mut() {
            *length = length.saturating_sub(Duration::from_micros(u64::try_from(buffered_us).unwrap_or(0)));
        }
    }

    /// A gap begins at `at_us`, unless one is under way.
    pub(crate) fn gap_begins(&mut self, at_us: i64) {
        self.open_gap_us.get_or_insert(at_us);
    }

    /// The gap under way, if any, ends at `at_us`.
    pub(crate) fn gap_ends(&mut self, at_us: i64) {
        if let Some(from) = self.open_gap_us.take() {
            self.gap(from, Duration::from_micros(u64::try_from(at_us - from).unwrap_or(0)));
        }
    }

    /// `count` source frames never reached the file.
    pub(crate) fn dropped(&mut self, count: u64) {
        self.dropped += count;
    }

    /// `count` output frames showed a picture again that was shown already.
    pub(crate) fn duplicated(&mut self, count: u64) {
        self.duplicated += count;
    }

    /// The mixer skipped an output frame to catch up with the clock.
    pub(crate) fn late_frame_skipped(&mut self) {
        self.late_skipped += 1;
    }

    /// At this point the timing moved the audio by `audio_us` and the video by `video_us`
    /// (relative to the source's own timestamps); the file's A/V offset is the mean of the
    /// differences.
    pub(crate) fn shifted(&mut self, audio_us: i64, video_us: i64) {
        self.offset_sum_us += i128::from(audio_us) - i128::from(video_us);
        self.offset_count += 1;
    }

    /// A connection to the input opened at `at_us` with pictures of `size` (none: no video).
    pub(crate) fn input_opened(&mut self, at_us: i64, size: Option<(u32, u32)>) {
        self.meter = Meter::default();
        if self.changes.is_empty() || size != self.reported_size {
            self.reported_size = size;
            self.changes.push((at_us, Change::Size(size)));
        }
    }

    /// An input packet of `bytes` at `at_us` on the timeline (`video_frame`: a picture).
    pub(crate) fn input_packet(&mut self, at_us: i64, bytes: usize, video_frame: bool) {
        let start_us = *self.meter.start_us.get_or_insert(at_us);
        if at_us - start_us >= METER_WINDOW_US {
            let seconds = (at_us - start_us) as f64 / 1e6;
            let kbps = (self.meter.bytes as f64 * 8.0 / 1000.0 / seconds).round() as u32;
            let fps = (self.meter.frames > 0).then(|| (self.meter.frames as f64 / seconds * 10.0).round() / 10.0);
            self.measured(start_us, kbps, fps);
            self.meter = Meter { start_us: Some(at_us), bytes: 0, frames: 0 };
        }
        self.meter.bytes += bytes as u64;
        self.meter.frames += u64::from(video_frame);
    }

    fn measured(&mut self, at_us: i64, kbps: u32, fps: Option<f64>) {
        let moved = |old: Option<f64>, new: f64, by: f64| old.is_none_or(|old| (new - old).abs() > old * by);
        let kbps = moved(self.reported_kbps.map(f64::from), f64::from(kbps), BITRATE_CHANGE).then_some(kbps);
        let fps = fps.filter(|&fps| moved(self.reported_fps, fps, FPS_CHANGE));
        if kbps.is_none() && fps.is_none() {
            return;
        }
        self.reported_kbps = kbps.or(self.reported_kbps);
        self.reported_fps = fps.or(self.reported_fps);
        self.changes.push((at_us, Change::Rates { kbps, fps }));
    }

    /// The report of a file that opened at `mark`, its media from `origin_us` to `end_us` on
    /// the timeline; `file_dropped` frames it refused itself.
    pub(crate) fn since(&self, mark: &Mark, origin_us: i64, end_us: i64, file_dropped: u64) -> Quality {
        let to_file_ms = |at_us: i64| u64::try_from((at_us - origin_us).max(0) / 1000).unwrap_or(0);
        let mut gaps: Vec<Duration> = self.gaps[mark.gaps.min(self.gaps.len())..].iter().map(|g| g.1).collect();
        if let Some(from) = self.open_gap_us.filter(|&from| from < end_us) {
            gaps.push(Duration::from_micros(u64::try_from(end_us - from.max(origin_us)).unwrap_or(0)));
        }
        let count = self.offset_count - mark.offset_count;
        let sum = self.offset_sum_us - mark.offset_sum_us;
        let av_offset_ms = (count > 0).then(|| (sum as f64 / count as f64 / 100.0).round() / 10.0);
        // The input as it was when the file opened, then what changed while it was open.
        let before = mark.changes.min(self.changes.len());
        // A change stamped at or before the file's start (a rate measured over a window that
        // began there) is part of how the input was when it opened.
        let opening = self.changes[before..].iter().take_while(|(at_us, _)| *at_us <= origin_us).count();
        let state_at_open =
            self.changes[..before + opening].iter().fold(None, |state, (_, change)| Some(change.apply(state)));
        let later = self.changes[before + opening..].iter().filter(|(at_us, _)| *at_us < end_us.max(origin_us + 1));
        let input_changes =
            state_at_open.into_iter().chain(later.map(|(at_us, change)| change.report(to_file_ms(*at_us)))).collect();
        Quality {
            av_offset_ms,
            gaps: u32::try_from(gaps.len()).unwrap_or(u32::MAX),
            // `+ 0.0`: an empty sum is −0.0.
            gap_seconds: (gaps.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0).round() / 1000.0 + 0.0,
            dropped_frames: self.dropped - mark.dropped + file_dropped,
            duplicated_frames: self.duplicated - mark.duplicated,
            input_changes,
            late_frames_skipped: self.late_skipped - mark.late_skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reports_only_what_happened_while_it_was_open() {
        let mut tally = Tally::default();
        tally.gap(1_000_000, Duration::from_secs(2));
        tally.dropped(3);
        let mark = tally.mark();
        tally.gap(5_000_000, Duration::from_millis(1500));
        tally.dropped(2);
        tally.late_frame_skipped();
        let quality = tally.since(&mark, 4_000_000, 9_000_000, 1);
        assert_eq!((quality.gaps, quality.gap_seconds), (1, 1.5));
        assert_eq!((quality.dropped_frames, quality.late_frames_skipped), (3, 1));
    }

    #[test]
    fn the_av_offset_is_the_mean_of_the_audio_shifts_minus_the_video_shifts() {
        let mut tally = Tally::default();
        let mark = tally.mark();
        for _ in 0..10 {
            tally.shifted(8_000, 20_000);
        }
        tally.shifted(1_000_000, 1_000_000);
        assert_eq!(tally.since(&mark, 0, 1, 0).av_offset_ms, Some(-10.9));
        let nothing_shifted = Tally::default();
        assert_eq!(nothing_shifted.since(&Mark::default(), 0, 1, 0).av_offset_ms, None, "no pair: no offset");
    }

    #[test]
    fn a_gap_under_way_counts_up_to_the_end_of_the_file() {
        let mut tally = Tally::default();
        let mark = tally.mark();
        tally.gap_begins(2_000_000);
        tally.gap_begins(3_000_000);
        let quality = tally.since(&mark, 0, 5_000_000, 0);
        assert_eq!((quality.gaps, quality.gap_seconds), (1, 3.0));
        tally.gap_ends(4_000_000);
        assert_eq!(tally.since(&mark, 0, 5_000_000, 0).gap_seconds, 2.0);
    }

    #[test]
    fn the_input_is_reported_at_the_start_and_when_its_rate_or_size_changes() {
        let mut tally = Tally::default();
        tally.input_opened(0, Some((640, 360)));
        // 25 fps at 40 kB/s (320 kbit/s) for 10 s, then 12.5 fps at the same rate.
        for frame in 0..250 {
            tally.input_packet(frame * 40_000, 1600, true);
        }
        let mark = tally.mark();
        for frame in 0..125 {
            tally.input_packet(10_000_000 + frame * 80_000, 3200, true);
        }
        tally.input_packet(20_000_000, 0, false);
        let quality = tally.since(&mark, 9_000_000, 21_000_000, 0);
        let changes = &quality.input_changes;
        assert_eq!(changes[0].at_ms, 0, "{changes:?}");
        assert_eq!((changes[0].width, changes[0].height, changes[0].fps), (Some(640), Some(360), Some(25.0)));
        assert_eq!(changes[0].bitrate_kbps, Some(320));
        let later: Vec<_> = changes[1..].iter().map(|c| (c.at_ms, c.fps, c.bitrate_kbps)).collect();
        assert_eq!(later, [(1000, Some(12.5), None)], "{changes:?}");
    }
}
