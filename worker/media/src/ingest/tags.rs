//! An RTMP stream's FLV tags turned into packets here rather than by libavformat's FLV
//! demuxer, once the demuxer has probed the stream and handed on what it read ahead (see
//! `crate::input::Source`). Only for H.264 video and AAC audio, the streams a publisher
//! sends almost always; the packets are the demuxer's (payload, times, keyframe flag, a later
//! sequence header as new-extradata side data), without its per-tag parsing, its buffer
//! copies, its per-packet parameter allocations or libavformat's H.264 parser.

use ffmpeg_next::codec::Id;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::{media, packet, Packet};
use roomrec_rtmp::flv::{self, Tag};

/// FLV audio format AAC (high nibble of an audio tag's first byte).
const SOUND_AAC: u8 = 10;
/// FLV video codec AVC (low nibble of a video tag's first byte).
const CODEC_AVC: u8 = 7;
/// FLV video frame types (high nibble): a keyframe, and a video info / command frame, which
/// carries no picture.
const FRAME_KEY: u8 = 1;
const FRAME_COMMAND: u8 = 5;
/// AVC and AAC packet type 0: a sequence header (the decoder configuration).
const SEQUENCE_HEADER: u8 = 0;
/// Bytes before the payload: the flags byte and the packet type, and for AVC the 24-bit
/// composition time.
const AAC_HEADER: usize = 2;
const AVC_HEADER: usize = 5;
/// A composition time further than this from the decode time is not believed (as the
/// demuxer: both times are dropped), in milliseconds.
const MAX_CTS_MS: i64 = 15 * 60 * 1000;
/// FLV timestamps are 32-bit milliseconds.
const WRAP: i64 = 1 << 32;

/// Turns FLV tags into packets of the streams libavformat's demuxer found.
#[derive(Debug, Default)]
pub(crate) struct TagPackets {
    video: Option<Track>,
    audio: Option<Track>,
    /// Tags taken from the stream and not yet turned into packets, from `at`.
    bytes: Vec<u8>,
    at: usize,
}

/// One stream the tags of a kind go to.
#[derive(Debug)]
struct Track {
    index: usize,
    /// Every packet's duration: the demuxer's last one (libavformat computes it from the
    /// stream's frame rate or the audio frame size, the same for every packet).
    duration: i64,
    /// Added to a tag's 32-bit timestamp: the demuxer's unwrapping, carried on.
    offset: i64,
    last: Option<u32>,
    /// A sequence header after the first, for the next packet, as the demuxer hands it on.
    new_extradata: Option<Vec<u8>>,
}

impl Track {
    fn new(index: usize) -> Self {
        Self { index, duration: 0, offset: 0, last: None, new_extradata: None }
    }

    /// A tag's timestamp on the stream's time line, going on past 2^32 ms.
    fn time_of(&mut self, timestamp: u32) -> i64 {
        if self.last.is_some_and(|last| timestamp < last && last - timestamp > u32::MAX / 2) {
            self.offset += WRAP;
        }
        self.last = Some(timestamp);
        self.offset + i64::from(timestamp)
    }
}

impl TagPackets {
    /// For `ctx`'s streams, when its video is H.264 and its audio AAC (either may be absent)
    /// and no other stream can appear; `None` otherwise: the demuxer goes on reading. A stream
    /// whose FLV header names only audio or video may bring the other later (a publisher's
    /// camera sent after its sound), which only the demuxer adds to the streams.
    pub(crate) fn for_streams(ctx: &Input) -> Option<Self> {
        if crate::ffi::streams_may_appear(ctx) {
            return None;
        }
        let mut tags = Self::default();
        for stream in ctx.streams() {
            let params = stream.parameters();
            let has_config = !crate::ffi::describe(&params).extradata.is_empty();
            let slot = match (params.medium(), params.id()) {
                (media::Type::Video, Id::H264) if has_config => &mut tags.video,
                (media::Type::Audio, Id::AAC) if has_config => &mut tags.audio,
                (media::Type::Video | media::Type::Audio, _) => return None,
                _ => continue,
            };
            if slot.is_some() {
                return None;
            }
            *slot = Some(Track::new(stream.index()));
        }
        (tags.video.is_some() || tags.audio.is_some()).then_some(tags)
    }

    /// Learns from a packet the demuxer handed on its stream's packet duration and where its
    /// times stand.
    pub(crate) fn saw(&mut self, packet: &Packet) {
        let track = [&mut self.video, &mut self.audio].into_iter().flatten().find(|t| t.index == packet.stream());
        let Some(track) = track else { return };
        track.duration = packet.duration();
        if let Some(dts) = packet.dts() {
            let timestamp = dts.rem_euclid(WRAP);
            track.offset = dts - timestamp;
            track.last = u32::try_from(timestamp).ok();
        }
    }

    /// The buffer the next tags are taken into (whole tags, see `Feed::take`); what was
    /// left of the last ones is dropped.
    pub(crate) fn refill(&mut self) -> &mut Vec<u8> {
        self.at = 0;
        &mut self.bytes
    }

    /// The next packet of the tags taken, if any is left.
    pub(crate) fn next_packet(&mut self) -> Option<Packet> {
        while self.at < self.bytes.len() {
            let rest = &self.bytes[self.at..];
            let mut tags = flv::body_tags(rest);
            let tag = tags.next()?;
            self.at += rest.len() - tags.rest().len();
            if let Some(packet) = packet_of(&mut self.video, &mut self.audio, tag) {
                return Some(packet);
            }
        }
        None
    }
}

/// The packet a tag carries, if it carries one of a known stream.
fn packet_of(video: &mut Option<Track>, audio: &mut Option<Track>, tag: Tag) -> Option<Packet> {
    let (track, header, cts, kind) = match (tag.kind, tag.data) {
        (flv::AUDIO, [flags, kind, ..]) if flags >> 4 == SOUND_AAC => (audio.as_mut()?, AAC_HEADER, 0, *kind),
        (flv::VIDEO, [flags, kind, c0, c1, c2, ..]) if flags & 0x0f == CODEC_AVC && flags >> 4 != FRAME_COMMAND => {
            // A signed 24-bit composition time.
            let cts = i64::from(i32::from_be_bytes([*c0, *c1, *c2, 0]) >> 8);
            let track = video.as_mut()?;
            (track, AVC_HEADER, cts, *kind)
        }
        _ => return None,
    };
    let payload = &tag.data[header..];
    if payload.is_empty() {
        return None;
    }
    if kind == SEQUENCE_HEADER {
        track.new_extradata = Some(payload.to_vec());
        return None;
    }
    let dts = track.time_of(tag.timestamp);
    let pts = dts + cts;
    let times = (cts < 0 || (pts - dts).abs() <= MAX_CTS_MS).then_some((pts, dts));
    let mut packet = Packet::copy(payload);
    packet.set_stream(track.index);
    packet.set_pts(times.map(|(pts, _)| pts));
    packet.set_dts(times.map(|(_, dts)| dts));
    packet.set_duration(track.duration);
    let keyframe = tag.kind == flv::AUDIO || tag.data[0] >> 4 == FRAME_KEY;
    if keyframe {
        packet.set_flags(packet::Flags::KEY);
    }
    if let Some(extradata) = track.new_extradata.take() {
        // Only an allocation failure; the packet goes on without it, as the demuxer's would.
        let _ = crate::ffi::add_new_extradata(&mut packet, &extradata);
    }
    Some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Video as stream 0, audio as stream 1, and these tags taken.
    fn tags(with: &[(u8, u32, &[u8])]) -> TagPackets {
        let mut tags = TagPackets { video: Some(Track::new(0)), audio: Some(Track::new(1)), ..Default::default() };
        for (kind, timestamp, data) in with {
            flv::write_tag(&mut tags.bytes, *kind, *timestamp, data);
        }
        tags
    }

    fn all(tags: &mut TagPackets) -> Vec<Packet> {
        std::iter::from_fn(|| tags.next_packet()).collect()
    }

    fn new_extradata(packet: &Packet) -> Option<Vec<u8>> {
        let side = packet.side_data().find(|s| s.kind() == packet::side_data::Type::NewExtraData);
        side.map(|s| s.data().to_vec())
    }

    #[test]
    fn avc_and_aac_tags_become_the_demuxers_packets() {
        let mut tags = tags(&[
            (flv::VIDEO, 0, &[0x17, 1, 0, 0, 0, 1, 2, 3][..]),
            (flv::AUDIO, 10, &[0xaf, 1, 9, 9][..]),
            // An inter frame shown 80 ms after it is decoded, then one with a negative offset.
            (flv::VIDEO, 40, &[0x27, 1, 0, 0, 80, 4][..]),
            (flv::VIDEO, 80, &[0x27, 1, 0xff, 0xff, 0xd8, 5][..]),
        ]);
        tags.video.as_mut().unwrap().duration = 40;
        tags.audio.as_mut().unwrap().duration = 23;
        let packets = all(&mut tags);
        let seen: Vec<_> = packets
            .iter()
            .map(|p| (p.stream(), p.pts(), p.dts(), p.is_key(), p.duration(), p.data().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                (0, Some(0), Some(0), true, 40, &[1, 2, 3][..]),
                (1, Some(10), Some(10), true, 23, &[9, 9][..]),
                (0, Some(120), Some(40), false, 40, &[4][..]),
                (0, Some(40), Some(80), false, 40, &[5][..]),
            ]
        );
        assert!(packets.iter().all(|p| new_extradata(p).is_none()));
    }

    #[test]
    fn a_later_sequence_header_rides_on_the_next_packet_and_empty_or_foreign_tags_give_none() {
        let mut tags = tags(&[
            (flv::VIDEO, 0, &[0x17, 0, 0, 0, 0, 0xaa, 0xbb][..]),
            (flv::VIDEO, 0, &[0x57, 0][..]),          // a command frame
            (flv::VIDEO, 0, &[0x17, 2, 0, 0, 0][..]), // end of sequence: no payload
            (flv::VIDEO, 0, &[0x12, 1][..]),          // another codec (H.263)
            (flv::AUDIO, 0, &[0x2f, 1, 1][..]),       // MP3
            (flv::DATA, 0, b"\x02\x00\x0aonMetaData"),
            (flv::VIDEO, 0, &[0x17, 1, 0][..]), // cut short
            (flv::VIDEO, 40, &[0x17, 1, 0, 0, 0, 7][..]),
            (flv::VIDEO, 80, &[0x27, 1, 0, 0, 0, 8][..]),
        ]);
        let packets = all(&mut tags);
        assert_eq!(packets.iter().map(|p| p.data().unwrap()[0]).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(new_extradata(&packets[0]), Some(vec![0xaa, 0xbb]));
        assert_eq!(new_extradata(&packets[1]), None, "once");
    }

    #[test]
    fn times_carry_on_from_the_demuxers_and_past_32_bits() {
        let near_wrap = u32::MAX - 20;
        let mut tags = tags(&[(flv::AUDIO, near_wrap, &[0xaf, 1, 1][..]), (flv::AUDIO, 3, &[0xaf, 1, 2][..])]);
        let mut from_demuxer = Packet::copy(&[0]);
        from_demuxer.set_stream(1);
        from_demuxer.set_dts(Some(WRAP + i64::from(near_wrap) - 23));
        from_demuxer.set_duration(23);
        tags.saw(&from_demuxer);
        let dts: Vec<_> = all(&mut tags).iter().map(|p| (p.dts(), p.duration())).collect();
        assert_eq!(dts, [(Some(WRAP + i64::from(near_wrap)), 23), (Some(2 * WRAP + 3), 23)]);
    }
}
