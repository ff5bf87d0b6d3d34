//! The elementary streams of a recording file, as the muxers see them.

use ffmpeg_next::codec::{self, Parameters};
use ffmpeg_next::Rational;

use crate::ffi::{self, ParamsInfo};

/// Which stream of the recording a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Video = 0,
    Audio = 1,
}

/// One output stream: the codec parameters muxers are opened with, and the time base its
/// packets arrive in.
#[derive(Clone)]
pub(crate) struct Track {
    pub params: Parameters,
    pub time_base: Rational,
    codec: codec::Id,
    info: ParamsInfo,
}

impl Track {
    /// A track carrying packets described by `params`, timed in `time_base`.
    pub(crate) fn new(mut params: Parameters, time_base: Rational) -> Self {
        ffi::clear_codec_tag(&mut params);
        let info = ffi::describe(&params);
        Self { codec: params.id(), params, time_base, info }
    }
}

/// The streams of one recording file: video (if recorded and present) first, then audio.
#[derive(Clone, Default)]
pub(crate) struct Tracks {
    pub video: Option<Track>,
    pub audio: Option<Track>,
}

impl Tracks {
    /// The tracks in muxer stream order; a track's position is its stream index.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Kind, &Track)> {
        let video = self.video.as_ref().map(|t| (Kind::Video, t));
        let audio = self.audio.as_ref().map(|t| (Kind::Audio, t));
        video.into_iter().chain(audio)
    }

    /// The muxer stream index of `kind`, if the file has it.
    pub(crate) fn index(&self, kind: Kind) -> Option<usize> {
        self.iter().position(|(k, _)| k == kind)
    }

    /// The track of `kind`, if any.
    pub(crate) fn get(&self, kind: Kind) -> Option<&Track> {
        match kind {
            Kind::Video => self.video.as_ref(),
            Kind::Audio => self.audio.as_ref(),
        }
    }

    /// Picture size; 0x0 for audio only.
    pub(crate) fn size(&self) -> (u32, u32) {
        self.video.as_ref().map_or((0, 0), |t| (t.info.width, t.info.height))
    }

    /// Whether a new source's packets can go on in a file opened for `self`: same streams,
    /// codecs, sizes, rates, decoder configuration and time bases.
    pub(crate) fn fits(&self, other: &Tracks) -> bool {
        fn same(a: Option<&Track>, b: Option<&Track>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    let (x, y) = (&a.info, &b.info);
                    a.codec == b.codec
                        && a.time_base == b.time_base
                        && (x.width, x.height, x.sample_rate, x.channels)
                            == (y.width, y.height, y.sample_rate, y.channels)
                        && x.extradata == y.extradata
                }
                _ => false,
            }
        }
        same(self.video.as_ref(), other.video.as_ref()) && same(self.audio.as_ref(), other.audio.as_ref())
    }

    /// Whether cuts must wait for a video keyframe.
    pub(crate) fn has_video(&self) -> bool {
        self.video.is_some()
    }
}
