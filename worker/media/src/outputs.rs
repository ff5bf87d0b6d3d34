//! The recording's outputs (HLS and/or MP4) and its timeline: where the written media ends,
//! so a source that comes back can continue right after it.

use std::time::{Duration, SystemTime};

use ffmpeg_next::{Packet, Rescale};

use crate::hls::HlsWriter;
use crate::mp4::Mp4Writer;
use crate::mux::{Reporter, Timed, MICROS};
use crate::sidecar::{Log, Mark};
use crate::tracks::{Kind, Tracks};
use crate::{FilePolicy, HlsSpec, MediaError};

/// Assumed length of a packet without a duration before a second one shows its spacing, in µs.
const FALLBACK_PACKET_US: i64 = 1_000;

/// Every output of the recording, fed the same packets.
pub(crate) struct Outputs {
    hls: Option<HlsWriter>,
    mp4: Option<Mp4Writer>,
    /// The tracks the open files were opened with (or will be, at the next cut).
    tracks: Tracks,
    /// Where the media written so far ends on the timeline, in µs.
    end_us: i64,
    /// Per kind: last decode time and spacing, for packets that carry no duration.
    last_dts_us: [Option<i64>; 2],
    spacing_us: [i64; 2],
    /// What happened, for each file's timeline sidecar.
    log: Log,
}

impl Outputs {
    /// HLS and/or MP4 outputs writing into `spool_dir`, none open yet.
    pub(crate) fn new(hls: Option<HlsSpec>, mp4: Option<FilePolicy>, spool_dir: &std::path::Path) -> Self {
        let log = Log::default();
        Self {
            hls: hls.map(|hls| HlsWriter::new(hls, spool_dir.to_owned(), log.clone())),
            mp4: mp4.map(|policy| Mp4Writer::new(policy, spool_dir.to_owned(), log.clone())),
            tracks: Tracks::default(),
            end_us: 0,
            last_dts_us: [None, None],
            spacing_us: [FALLBACK_PACKET_US; 2],
            log,
        }
    }

    /// Records `mark` where the written media ends now, for the timelines of the files open
    /// now or opening next (e.g. `Mark::Pause` as a pause begins, `Mark::Resume` as it ends).
    pub(crate) fn mark(&mut self, mark: Mark) {
        self.mark_at(self.end_us, mark);
    }

    /// Records `mark` at `at_us` on the recording's timeline.
    pub(crate) fn mark_at(&mut self, at_us: i64, mark: Mark) {
        self.log.borrow_mut().push(at_us, mark);
    }

    /// Where the written media ends on the timeline, in µs.
    pub(crate) fn end_us(&self) -> i64 {
        self.end_us
    }

    /// The source has been away for `paused` (its media ended at `since`): close the files
    /// whose merge window has passed.
    pub(crate) fn expire(&mut self, paused: Duration, since: SystemTime, report: &Reporter) -> Result<(), MediaError> {
        if let Some(hls) = self.hls.as_mut().filter(|hls| hls.is_open() && paused >= hls.merge_window()) {
            hls.close(since, report)?;
        }
        if let Some(mp4) = self.mp4.as_mut().filter(|mp4| mp4.is_open() && paused >= mp4.merge_window()) {
            mp4.close(since, report)?;
        }
        Ok(())
    }

    /// How long until [`Outputs::expire`] will close an open file, if one is open.
    pub(crate) fn until_expiry(&self, paused: Duration) -> Option<Duration> {
        let hls = self.hls.as_ref().filter(|hls| hls.is_open()).map(HlsWriter::merge_window);
        let mp4 = self.mp4.as_ref().filter(|mp4| mp4.is_open()).map(Mp4Writer::merge_window);
        hls.into_iter().chain(mp4).min().map(|window| window.saturating_sub(paused))
    }

    /// The source is back after `paused` with `tracks`: files still in their merge window go
    /// on (unless the tracks changed: a decoder could not follow), the others were closed
    /// and new ones open at the next cut.
    pub(crate) fn resume(
        &mut self,
        tracks: &Tracks,
        paused: Duration,
        since: SystemTime,
        report: &Reporter,
    ) -> Result<(), MediaError> {
        self.expire(paused, since, report)?;
        if !self.tracks.fits(tracks) {
            self.close(since, report)?;
        }
        self.tracks = tracks.clone();
        self.last_dts_us = [None, None];
        Ok(())
    }

    /// Recording goes on after a tenant's pause with `tracks` (a new pipeline's): the files
    /// stay open whatever their merge window (unless the tracks changed: a decoder could not
    /// follow), and the next packets continue them where the written media ends.
    pub(crate) fn continue_after_hold(
        &mut self,
        tracks: &Tracks,
        at: SystemTime,
        report: &Reporter,
    ) -> Result<(), MediaError> {
        if !self.tracks.fits(tracks) {
            self.close(at, report)?;
        }
        self.tracks = tracks.clone();
        self.last_dts_us = [None, None];
        Ok(())
    }

    /// The next cut starts a new HLS segment marked as a discontinuity (media written before
    /// it may still arrive: an encoder's held-back frames).
    pub(crate) fn break_at_next_cut(&mut self) {
        if let Some(hls) = self.hls.as_mut() {
            hls.break_at_next_cut();
        }
    }

    /// Writes one packet (timestamps on the timeline, in its track's time base) to every output.
    pub(crate) fn write(&mut self, kind: Kind, packet: &Packet, report: &Reporter) -> Result<(), MediaError> {
        let Some(track) = self.tracks.get(kind) else { return Ok(()) };
        let time_base = track.time_base;
        let Some(dts) = packet.dts() else { return Ok(()) };
        let dts_us = dts.rescale(time_base, MICROS);
        let pts_us = packet.pts().map_or(dts_us, |pts| pts.rescale(time_base, MICROS));
        let slot = kind as usize;
        if let Some(last) = self.last_dts_us[slot].filter(|last| dts_us > *last) {
            self.spacing_us[slot] = dts_us.saturating_sub(last);
        }
        self.last_dts_us[slot] = Some(dts_us);
        let duration_us = match packet.duration() {
            d if d > 0 => d.rescale(time_base, MICROS),
            _ => self.spacing_us[slot],
        };
        let end_us = pts_us.max(dts_us).saturating_add(duration_us);
        let cut = !self.tracks.has_video() || (kind == Kind::Video && packet.is_key());
        let timed = Timed { kind, packet, time_base, dts_us, end_us, cut };
        if let Some(hls) = self.hls.as_mut() {
            hls.write(&timed, &self.tracks, report)?;
        }
        if let Some(mp4) = self.mp4.as_mut() {
            mp4.write(&timed, &self.tracks, report)?;
        }
        self.end_us = self.end_us.max(end_us);
        Ok(())
    }

    /// The source stopped: make everything written so far complete on disk and announced.
    pub(crate) fn pause(&mut self, report: &Reporter) -> Result<(), MediaError> {
        if let Some(hls) = self.hls.as_mut() {
            hls.pause(report)?;
        }
        if let Some(mp4) = self.mp4.as_mut() {
            mp4.pause(report)?;
        }
        Ok(())
    }

    /// Closes every open file; `ended_at` is when its media ended.
    pub(crate) fn close(&mut self, ended_at: SystemTime, report: &Reporter) -> Result<(), MediaError> {
        if let Some(hls) = self.hls.as_mut() {
            hls.close(ended_at, report)?;
        }
        if let Some(mp4) = self.mp4.as_mut() {
            mp4.close(ended_at, report)?;
        }
        Ok(())
    }
}
