//! HLS: each segment its own MPEG-TS file, cut at the first keyframe after the slice length.
//!
//! A new muxer per segment, fed the file's continuous timestamps: MPEG-TS keeps them as they
//! are, so a player going through the playlist sees one timeline.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ffmpeg_next::Dictionary;

use crate::mux::{self, FileTimes, Muxer, Reporter, Timed};
use crate::sidecar::{FileMarks, Log};
use crate::tracks::Tracks;
use crate::{Format, HlsSpec, MediaError, Output};

/// Writes the recording's HLS files (playlists of segments), one after the other.
pub(crate) struct HlsWriter {
    spec: HlsSpec,
    dir: PathBuf,
    next_index: u32,
    state: HlsState,
    log: Log,
}

enum HlsState {
    Idle,
    Open(Box<HlsFile>),
}

struct HlsFile {
    index: u32,
    times: FileTimes,
    /// Boxed: the open state would dwarf the idle one.
    marks: Box<FileMarks>,
    next_seq: u32,
    segment: SegmentState,
}

enum SegmentState {
    /// No segment open: the next cut starts one. `discontinuity` after a pause.
    Between {
        discontinuity: bool,
    },
    Open(Segment),
}

struct Segment {
    seq: u32,
    path: PathBuf,
    muxer: Muxer,
    /// Media time since the file began, in µs.
    start_us: i64,
    end_us: i64,
    discontinuity: bool,
    /// Ends at the next cut, which starts a discontinuity ([`HlsWriter::break_at_next_cut`]).
    break_next: bool,
}

impl HlsWriter {
    /// A writer for segments in `dir` under `spec`, its files' timelines from `log`; no
    /// file is open yet.
    pub(crate) fn new(spec: HlsSpec, dir: PathBuf, log: Log) -> Self {
        Self { spec, dir, next_index: 0, state: HlsState::Idle, log }
    }

    /// How long a source pause may last and still continue the open file.
    pub(crate) fn merge_window(&self) -> Duration {
        self.spec.files.merge_window
    }

    /// Whether a file (playlist) is open.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, HlsState::Open(_))
    }

    /// Writes `timed` to the current segment, cutting segments and rolling files at cuts.
    pub(crate) fn write(&mut self, timed: &Timed, tracks: &Tracks, report: &Reporter) -> Result<(), MediaError> {
        if timed.cut {
            let cycle_due = match (&self.state, self.spec.files.cycle) {
                (HlsState::Open(file), Some(cycle)) => file.times.since_start_us(timed.dts_us) >= mux::micros(cycle),
                _ => false,
            };
            if cycle_due {
                self.close(SystemTime::now(), report)?;
            }
            if let HlsState::Idle = self.state {
                let index = self.next_index;
                self.next_index += 1;
                let (width, height) = tracks.size();
                report.send(Output::FileOpened {
                    format: Format::Hls,
                    file: index,
                    started_at: SystemTime::now(),
                    width,
                    height,
                })?;
                let segment = SegmentState::Between { discontinuity: false };
                let times = FileTimes::starting_at(timed, report.quality().mark());
                let marks = Box::new(self.log.borrow().open_file(times.origin_us()));
                self.state = HlsState::Open(Box::new(HlsFile { index, times, marks, next_seq: 0, segment }));
            }
            if let HlsState::Open(file) = &mut self.state {
                file.cut(timed, self.spec.slice, tracks, &self.dir, report)?;
                let at_us = file.times.since_start_us(timed.dts_us);
                if let Some(timeline) = self.log.borrow().snapshot(&mut file.marks, at_us, file.times.duration()) {
                    report.send(Output::Timeline { format: Format::Hls, file: file.index, timeline })?;
                }
            }
        }
        let HlsState::Open(file) = &mut self.state else { return Ok(()) };
        let SegmentState::Open(segment) = &mut file.segment else { return Ok(()) };
        let Some(packet) = file.times.admit(timed) else { return Ok(()) };
        segment.end_us = segment.end_us.max(file.times.since_start_us(timed.end_us));
        segment
            .muxer
            .write(timed.kind, packet, timed.time_base)
            .map_err(|source| MediaError::Ffmpeg { context: "write an HLS segment", source })
    }

    /// The input paused: end the segment now (it is complete), and flag the next one.
    pub(crate) fn pause(&mut self, report: &Reporter) -> Result<(), MediaError> {
        let HlsState::Open(file) = &mut self.state else { return Ok(()) };
        file.end_segment(None, report)?;
        file.segment = SegmentState::Between { discontinuity: true };
        Ok(())
    }

    /// The next cut ends the open segment, whatever its length, and starts one flagged as a
    /// discontinuity.
    pub(crate) fn break_at_next_cut(&mut self) {
        let HlsState::Open(file) = &mut self.state else { return };
        match &mut file.segment {
            SegmentState::Open(segment) => segment.break_next = true,
            SegmentState::Between { discontinuity } => *discontinuity = true,
        }
    }

    /// Ends the open segment and file (`Segment`, then `FileClosed`), if any.
    pub(crate) fn close(&mut self, ended_at: SystemTime, report: &Reporter) -> Result<(), MediaError> {
        let HlsState::Open(mut file) = std::mem::replace(&mut self.state, HlsState::Idle) else { return Ok(()) };
        file.end_segment(None, report)?;
        let timeline = self.log.borrow().timeline(&file.marks, file.times.duration());
        report.send(Output::Timeline { format: Format::Hls, file: file.index, timeline })?;
        report.file_closed(Format::Hls, file.index, &file.times, ended_at)
    }
}

impl HlsFile {
    /// At a cut point: start the first segment, or the next one once `slice` has passed.
    fn cut(
        &mut self,
        timed: &Timed,
        slice: Duration,
        tracks: &Tracks,
        dir: &std::path::Path,
        report: &Reporter,
    ) -> Result<(), MediaError> {
        let at_us = self.times.since_start_us(timed.dts_us);
        let discontinuity = match &self.segment {
            SegmentState::Open(segment)
                if !segment.break_next && at_us.saturating_sub(segment.start_us) < mux::micros(slice) =>
            {
                return Ok(())
            }
            SegmentState::Open(segment) => {
                let discontinuity = segment.break_next;
                self.end_segment(Some(at_us), report)?;
                discontinuity
            }
            SegmentState::Between { discontinuity } => *discontinuity,
        };
        let seq = self.next_seq;
        let path = mux::spool_path(dir, &format!("hls-{}-{seq}.ts", self.index))?;
        let muxer = Muxer::create(&path, "mpegts", tracks, Dictionary::new())
            .map_err(|source| MediaError::Ffmpeg { context: "create an HLS segment", source })?;
        self.next_seq += 1;
        self.segment = SegmentState::Open(Segment {
            seq,
            path,
            muxer,
            start_us: at_us,
            end_us: at_us,
            discontinuity,
            break_next: false,
        });
        Ok(())
    }

    /// Closes the open segment, if any, and announces it. It lasts until `next_start_us`
    /// when the next segment follows at once, else until the end of its media.
    fn end_segment(&mut self, next_start_us: Option<i64>, report: &Reporter) -> Result<(), MediaError> {
        let SegmentState::Open(segment) =
            std::mem::replace(&mut self.segment, SegmentState::Between { discontinuity: false })
        else {
            return Ok(());
        };
        let Segment { seq, path, muxer, start_us, end_us, discontinuity, .. } = segment;
        muxer.finish().map_err(|source| MediaError::Ffmpeg { context: "finish an HLS segment", source })?;
        let duration_us = next_start_us.unwrap_or(end_us).saturating_sub(start_us);
        let duration = Duration::from_micros(u64::try_from(duration_us).unwrap_or(0));
        report.send(Output::Segment { file: self.index, seq, path, duration, discontinuity })
    }
}
