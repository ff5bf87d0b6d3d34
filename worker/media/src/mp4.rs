//! Fragmented MP4 files: playable up to their last complete fragment, uploaded while they grow.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use ffmpeg_next::Dictionary;

use crate::mux::{self, FileTimes, Muxer, Reporter, Timed};
use crate::sidecar::{FileMarks, Log};
use crate::tracks::Tracks;
use crate::{FilePolicy, Format, MediaError, Output};

/// Fragment at every video keyframe; moov first and empty, so the file is valid from its
/// first fragment on and never rewritten (<https://ffmpeg.org/ffmpeg-formats.html#mov_002c-mp4_002c-ismv>).
const MOVFLAGS: &str = "frag_keyframe+empty_moov+default_base_moof";
/// Without video there are no keyframes to fragment at: fragment by duration instead, in µs.
const AUDIO_ONLY_FRAGMENT_US: i64 = 2_000_000;

/// Writes the recording's MP4 files, one after the other.
pub(crate) struct Mp4Writer {
    policy: FilePolicy,
    dir: PathBuf,
    next_index: u32,
    state: Mp4State,
    log: Log,
}

enum Mp4State {
    Idle,
    Open(Mp4File),
}

struct Mp4File {
    index: u32,
    path: PathBuf,
    muxer: Muxer,
    times: FileTimes,
    /// Boxed: the open state would dwarf the idle one.
    marks: Box<FileMarks>,
    /// Bytes already announced in `Output::Mp4Progress`.
    reported: u64,
}

impl Mp4Writer {
    /// A writer for files in `dir` under `policy`, their timelines from `log`; no file is
    /// open yet.
    pub(crate) fn new(policy: FilePolicy, dir: PathBuf, log: Log) -> Self {
        Self { policy, dir, next_index: 0, state: Mp4State::Idle, log }
    }

    /// How long a source pause may last and still continue the open file.
    pub(crate) fn merge_window(&self) -> Duration {
        self.policy.merge_window
    }

    /// Whether a file is open.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, Mp4State::Open(_))
    }

    /// Writes `timed` to the current file, opening (or, at the cycle, rolling to) a file at a cut.
    pub(crate) fn write(&mut self, timed: &Timed, tracks: &Tracks, report: &Reporter) -> Result<(), MediaError> {
        if timed.cut {
            let cycle_due = match (&self.state, self.policy.cycle) {
                (Mp4State::Open(file), Some(cycle)) => file.times.since_start_us(timed.dts_us) >= mux::micros(cycle),
                _ => false,
            };
            if cycle_due {
                self.close(SystemTime::now(), report)?;
            }
            if let Mp4State::Idle = self.state {
                self.open(timed, tracks, report)?;
            }
            if let Mp4State::Open(file) = &mut self.state {
                let at_us = file.times.since_start_us(timed.dts_us);
                if let Some(timeline) = self.log.borrow().snapshot(&mut file.marks, at_us, file.times.duration()) {
                    report.send(Output::Timeline { format: Format::Mp4, file: file.index, timeline })?;
                }
            }
        }
        // Before the first cut there is no file: the packet could not start one.
        let Mp4State::Open(file) = &mut self.state else { return Ok(()) };
        let Some(packet) = file.times.admit(timed) else { return Ok(()) };
        file.muxer
            .write(timed.kind, packet, timed.time_base)
            .map_err(|source| MediaError::Ffmpeg { context: "write to the MP4 file", source })?;
        file.report_progress(report)
    }

    fn open(&mut self, first: &Timed, tracks: &Tracks, report: &Reporter) -> Result<(), MediaError> {
        let index = self.next_index;
        let path = mux::spool_path(&self.dir, &format!("mp4-{index}.mp4"))?;
        let mut options = Dictionary::new();
        options.set("movflags", MOVFLAGS);
        // Flush the AVIOContext after every packet: the muxer holds the fragment being built
        // in memory and writes it whole, so the file on disk always ends between boxes.
        options.set("flush_packets", "1");
        if !tracks.has_video() {
            options.set("frag_duration", &AUDIO_ONLY_FRAGMENT_US.to_string());
        }
        let muxer = Muxer::create(&path, "mp4", tracks, options)
            .map_err(|source| MediaError::Ffmpeg { context: "create an MP4 file", source })?;
        self.next_index += 1;
        let (width, height) = tracks.size();
        report.send(Output::FileOpened {
            format: Format::Mp4,
            file: index,
            started_at: SystemTime::now(),
            width,
            height,
        })?;
        let times = FileTimes::starting_at(first, report.quality().mark());
        let marks = Box::new(self.log.borrow().open_file(times.origin_us()));
        let mut file = Mp4File { index, path, muxer, times, marks, reported: 0 };
        file.report_progress(report)?;
        self.state = Mp4State::Open(file);
        Ok(())
    }

    /// The input paused: put the fragment being built on disk, so it can be uploaded now.
    pub(crate) fn pause(&mut self, report: &Reporter) -> Result<(), MediaError> {
        let Mp4State::Open(file) = &mut self.state else { return Ok(()) };
        file.muxer.flush().map_err(|source| MediaError::Ffmpeg { context: "flush the MP4 file", source })?;
        file.report_progress(report)
    }

    /// Finishes the open file (trailer, final size, `FileClosed`), if any.
    pub(crate) fn close(&mut self, ended_at: SystemTime, report: &Reporter) -> Result<(), MediaError> {
        let Mp4State::Open(file) = std::mem::replace(&mut self.state, Mp4State::Idle) else { return Ok(()) };
        let Mp4File { index, path, muxer, times, marks, .. } = file;
        muxer.finish().map_err(|source| MediaError::Ffmpeg { context: "finish the MP4 file", source })?;
        let bytes = mux::file_len(&path)?;
        report.send(Output::Mp4Progress { file: index, path, bytes })?;
        let timeline = self.log.borrow().timeline(&marks, times.duration());
        report.send(Output::Timeline { format: Format::Mp4, file: index, timeline })?;
        report.file_closed(Format::Mp4, index, &times, ended_at)
    }
}

impl Mp4File {
    /// Announces the file's new length, which always ends on a fragment boundary (see
    /// `flush_packets` in [`Mp4Writer::open`]). Asked of the muxer, not the file system: this
    /// runs after every packet.
    fn report_progress(&mut self, report: &Reporter) -> Result<(), MediaError> {
        let bytes = self.muxer.bytes_written();
        if bytes > self.reported {
            self.reported = bytes;
            report.send(Output::Mp4Progress { file: self.index, path: self.path.clone(), bytes })?;
        }
        Ok(())
    }
}
