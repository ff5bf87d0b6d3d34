//! What the HLS and MP4 writers share: a muxer over the recording's tracks, the timing of
//! one recording file, and the channel to the runner.

use std::cell::{RefCell, RefMut};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ffmpeg_next::util::error::EINVAL;
use ffmpeg_next::{self as ffmpeg, codec, encoder, format, Dictionary, Packet, Rational, Rescale};

use crate::quality::{Mark, Tally};
use crate::tracks::{Kind, Tracks};
use crate::{Format, MediaError, Output, Report};

/// Microseconds: the unit of every decision about time (cuts, cycles, durations).
pub(crate) const MICROS: Rational = Rational(1, 1_000_000);

/// Sends [`Output`]s to the runner, and keeps the tally their quality reports come from.
pub(crate) struct Reporter {
    out: RefCell<Box<dyn Report>>,
    quality: RefCell<Tally>,
}

impl Reporter {
    pub(crate) fn new(out: impl Report) -> Self {
        Self { out: RefCell::new(Box::new(out)), quality: RefCell::new(Tally::default()) }
    }

    /// The recording's quality tally.
    pub(crate) fn quality(&self) -> RefMut<'_, Tally> {
        self.quality.borrow_mut()
    }

    /// Reports the end of the `format` file `file` with `times`: its quality, then `FileClosed`.
    pub(crate) fn file_closed(
        &self,
        format: Format,
        file: u32,
        times: &FileTimes,
        ended_at: SystemTime,
    ) -> Result<(), MediaError> {
        let quality = self.quality.borrow().since(&times.mark, times.origin_us, times.end_us(), times.dropped_video);
        self.send(Output::FileQuality { format, file, quality })?;
        self.send(Output::FileClosed { format, file, duration: times.duration(), ended_at })
    }

    /// Sends `output` (a channel's sender blocks while it is full).
    pub(crate) fn send(&self, output: Output) -> Result<(), MediaError> {
        self.out.borrow_mut().report(output).then_some(()).ok_or(MediaError::ChannelClosed)
    }
}

/// A packet on its way into the files, its timestamps on the recording's timeline.
pub(crate) struct Timed<'a> {
    pub kind: Kind,
    /// Timestamps in `time_base`, already shifted onto the timeline.
    pub packet: &'a Packet,
    pub time_base: Rational,
    pub dts_us: i64,
    /// Where the packet's media ends (presentation time plus duration).
    pub end_us: i64,
    /// A file or segment may begin with this packet (video keyframe; audio only: any).
    pub cut: bool,
}

/// Where one recording file starts on the timeline, and what it has taken so far.
pub(crate) struct FileTimes {
    origin_us: i64,
    end_us: i64,
    last_dts: [Option<i64>; 2],
    /// Where the quality tally stood when the file opened (boxed: the writers' states stay small).
    mark: Box<Mark>,
    /// Video packets this file refused.
    dropped_video: u64,
}

impl FileTimes {
    /// A file beginning with `first`, whose timestamps become zero in the file; its quality
    /// counts from `mark` on.
    pub(crate) fn starting_at(first: &Timed, mark: Mark) -> Self {
        Self { origin_us: first.dts_us, end_us: 0, last_dts: [None, None], mark: Box::new(mark), dropped_video: 0 }
    }

    /// Where the file's media ends, on the timeline.
    fn end_us(&self) -> i64 {
        self.origin_us.saturating_add(self.end_us)
    }

    /// Where the file's media time 0 is on the timeline, in µs.
    pub(crate) fn origin_us(&self) -> i64 {
        self.origin_us
    }

    /// `us` (on the timeline) as media time since the file began.
    pub(crate) fn since_start_us(&self, us: i64) -> i64 {
        us.saturating_sub(self.origin_us)
    }

    /// How much media the file holds.
    pub(crate) fn duration(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.end_us).unwrap_or(0))
    }

    /// `timed`'s packet retimed to the file (its data shared, not copied), or `None` (logged)
    /// when its decode time would not move forward, which the muxers refuse (overlap after a
    /// reconnect, or the tail of the previous file).
    pub(crate) fn admit(&mut self, timed: &Timed) -> Option<Packet> {
        // Exact: every time base in use (1/1000, 1/90000, 1/sample rate) is coarser than 1 µs.
        let shift = self.origin_us.rescale(MICROS, timed.time_base);
        let dts = timed.packet.dts()?.saturating_sub(shift);
        let last = &mut self.last_dts[timed.kind as usize];
        if dts < 0 || last.is_some_and(|last| dts <= last) {
            tracing::debug!(kind = ?timed.kind, dts, "dropping a packet that would go back in time");
            self.dropped_video += u64::from(timed.kind == Kind::Video);
            return None;
        }
        let mut packet = match crate::ffi::share_packet(timed.packet) {
            Ok(packet) => packet,
            Err(error) => {
                tracing::warn!(%error, kind = ?timed.kind, "could not reference a packet; skipped");
                return None;
            }
        };
        *last = Some(dts);
        self.end_us = self.end_us.max(timed.end_us.saturating_sub(self.origin_us));
        packet.set_dts(Some(dts));
        packet.set_pts(timed.packet.pts().map(|pts| pts.saturating_sub(shift)));
        Some(packet)
    }
}

/// One open output file (an MPEG-TS segment or a fragmented MP4) over the recording's tracks.
pub(crate) struct Muxer {
    ctx: format::context::Output,
    time_bases: Vec<Rational>,
    /// Muxer stream index per [`Kind`].
    indices: [Option<usize>; 2],
}

impl Muxer {
    /// Creates `path` as `format_name` with one stream per track and writes its header.
    pub(crate) fn create(
        path: &Path,
        format_name: &str,
        tracks: &Tracks,
        options: Dictionary,
    ) -> Result<Self, ffmpeg::Error> {
        let mut ctx = format::output_as(path, format_name)?;
        for (_, track) in tracks.iter() {
            let mut stream = ctx.add_stream(encoder::find(codec::Id::None))?;
            stream.set_parameters(track.params.clone());
            stream.set_time_base(track.time_base);
        }
        {
            let unused = ctx.write_header_with(options)?;
            for (key, value) in unused.iter() {
                tracing::warn!(key, value, format_name, "muxer option not used");
            }
        }
        let time_bases = ctx.streams().map(|s| s.time_base()).collect();
        let indices = [tracks.index(Kind::Video), tracks.index(Kind::Audio)];
        Ok(Self { ctx, time_bases, indices })
    }

    /// Writes `packet` (in `time_base`) to the `kind` stream. A packet the muxer refuses as
    /// invalid is logged and skipped; other errors (disk full…) are returned.
    pub(crate) fn write(&mut self, kind: Kind, mut packet: Packet, time_base: Rational) -> Result<(), ffmpeg::Error> {
        let Some(index) = self.indices[kind as usize] else { return Ok(()) };
        packet.rescale_ts(time_base, self.time_bases[index]);
        packet.set_stream(index);
        packet.set_position(-1);
        match packet.write_interleaved(&mut self.ctx) {
            Ok(()) => Ok(()),
            Err(error @ (ffmpeg::Error::InvalidData | ffmpeg::Error::Other { errno: EINVAL })) => {
                tracing::warn!(%error, ?kind, "the muxer refused a packet; skipped");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Puts everything written so far on disk (for MP4: closes the fragment being built).
    pub(crate) fn flush(&mut self) -> Result<(), ffmpeg::Error> {
        crate::ffi::flush_muxer(&mut self.ctx)
    }

    /// Bytes written to the file so far (see [`crate::ffi::bytes_written`]).
    pub(crate) fn bytes_written(&mut self) -> u64 {
        crate::ffi::bytes_written(&mut self.ctx)
    }

    /// Writes the trailer and closes the file.
    pub(crate) fn finish(mut self) -> Result<(), ffmpeg::Error> {
        self.ctx.write_trailer()
        // Dropping `ctx` closes the AVIOContext, so the file is complete on return.
    }
}

/// `dir/name`, checked to be UTF-8 (libav takes C strings; ffmpeg-next panics otherwise).
pub(crate) fn spool_path(dir: &Path, name: &str) -> Result<PathBuf, MediaError> {
    let path = dir.join(name);
    match path.to_str() {
        Some(_) => Ok(path),
        None => {
            Err(MediaError::Spool(std::io::Error::new(std::io::ErrorKind::InvalidInput, "spool path is not UTF-8")))
        }
    }
}

/// The length of `path` on disk.
pub(crate) fn file_len(path: &Path) -> Result<u64, MediaError> {
    std::fs::metadata(path).map(|m| m.len()).map_err(MediaError::Spool)
}

/// `duration` in µs, saturating.
pub(crate) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(packet: &Packet, dts_us: i64, end_us: i64) -> Timed<'_> {
        Timed { kind: Kind::Video, packet, time_base: Rational::new(1, 1_000_000), dts_us, end_us, cut: true }
    }

    fn packet_at(ts: i64) -> Packet {
        let mut packet = Packet::empty();
        packet.set_dts(Some(ts));
        packet.set_pts(Some(ts));
        packet
    }

    #[test]
    fn timestamps_jumping_to_either_end_of_the_range_never_overflow() {
        let first = packet_at(i64::MIN + 1);
        let mut times = FileTimes::starting_at(&timed(&first, i64::MIN + 1, i64::MIN + 2), Mark::default());
        assert!(times.admit(&timed(&first, i64::MIN + 1, i64::MIN + 2)).is_some());
        let far = packet_at(i64::MAX);
        let admitted = times.admit(&timed(&far, i64::MAX, i64::MAX)).expect("a later packet is admitted");
        assert_eq!(admitted.dts(), Some(i64::MAX), "saturated, not wrapped");
        assert!(times.admit(&timed(&far, i64::MAX, i64::MAX)).is_none(), "no longer moves forward");
        assert_eq!(times.since_start_us(i64::MAX), i64::MAX);
        assert!(times.duration() > Duration::ZERO);
    }
}
