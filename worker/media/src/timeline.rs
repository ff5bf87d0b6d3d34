//! How one connection's timestamps map onto the recording's timeline: one offset for all
//! streams (A/V sync kept), chosen so the connection's first packet lands right where the
//! written media ends. A file continued after a pause has no gap and no overlap.

use std::collections::VecDeque;

use ffmpeg_next::{Packet, Rescale};

use crate::mux::{Reporter, MICROS};
use crate::outputs::Outputs;
use crate::tracks::{Kind, Tracks};
use crate::MediaError;

/// Audio packets kept while waiting for the first video keyframe (about 1.4 s of AAC at
/// 48 kHz): those not earlier than the keyframe are written after it.
const MAX_EARLY_PACKETS: usize = 64;

/// The timeline mapping of one connection.
pub(crate) struct Link {
    offset_us: Option<i64>,
    early: VecDeque<Packet>,
}

impl Link {
    /// A mapping decided by the connection's first packet that can start a file.
    pub(crate) fn new() -> Self {
        Self { offset_us: None, early: VecDeque::new() }
    }

    /// Retimes the packets in `batch` (each in its track's time base) onto the timeline and
    /// writes them.
    pub(crate) fn deliver(
        &mut self,
        batch: &mut Vec<(Kind, Packet)>,
        tracks: &Tracks,
        outputs: &mut Outputs,
        report: &Reporter,
    ) -> Result<(), MediaError> {
        for (kind, mut packet) in batch.drain(..) {
            if packet.dts().is_none() {
                packet.set_dts(packet.pts());
            }
            let (Some(dts), Some(track)) = (packet.dts(), tracks.get(kind)) else {
                tracing::debug!(?kind, "dropping a packet without timestamps");
                continue;
            };
            if self.offset_us.is_some() {
                self.write(kind, packet, tracks, outputs, report)?;
                continue;
            }
            // Files and segments start with a video keyframe (audio only: any packet): what
            // comes before cannot be decoded on its own.
            let starts_file = !tracks.has_video() || (kind == Kind::Video && packet.is_key());
            if !starts_file {
                // Pictures before the first keyframe cannot be decoded: lost (to an open file).
                report.quality().dropped(u64::from(kind == Kind::Video));
                if kind == Kind::Audio {
                    if self.early.len() == MAX_EARLY_PACKETS {
                        self.early.pop_front();
                    }
                    self.early.push_back(packet);
                }
                continue;
            }
            let start_us = dts.rescale(track.time_base, MICROS);
            self.offset_us = Some(outputs.end_us().saturating_sub(start_us));
            self.write(kind, packet, tracks, outputs, report)?;
            let audio_base = tracks.audio.as_ref().map(|t| t.time_base);
            for early in std::mem::take(&mut self.early) {
                let at_us = early.dts().zip(audio_base).map(|(dts, base)| dts.rescale(base, MICROS));
                if at_us.is_some_and(|at_us| at_us >= start_us) {
                    self.write(Kind::Audio, early, tracks, outputs, report)?;
                }
            }
        }
        Ok(())
    }

    fn write(
        &self,
        kind: Kind,
        mut packet: Packet,
        tracks: &Tracks,
        outputs: &mut Outputs,
        report: &Reporter,
    ) -> Result<(), MediaError> {
        let (Some(offset_us), Some(track), Some(dts)) = (self.offset_us, tracks.get(kind), packet.dts()) else {
            return Ok(());
        };
        let shift = offset_us.rescale(MICROS, track.time_base);
        if kind == Kind::Video && tracks.audio.is_some() {
            // One shift for every stream: the audio's is the video's (the report's A/V offset).
            report.quality().shifted(offset_us, offset_us);
        }
        // A source's timestamps are its own to choose: saturate rather than overflow.
        packet.set_dts(Some(dts.saturating_add(shift)));
        packet.set_pts(packet.pts().map(|pts| pts.saturating_add(shift)));
        outputs.write(kind, &packet, report)
    }
}
