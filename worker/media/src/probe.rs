//! Probing a participant's stream without recording it (preflight): the input is opened as a
//! recording opens it (allowed schemes, the guard, the same options and deadlines) and only
//! its streams' parameters are read, then it is closed.

use ffmpeg_next::{codec, decoder, format, media};

use crate::guard::Refused;
use crate::input::{AllowedUrl, OpenError, Source};
use crate::InputSpec;

/// A stream's video as a probe read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedVideo {
    /// FFmpeg's codec name (`h264`, `hevc`, …).
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second the stream declares; 0 when it declares none.
    pub fps: f64,
    /// Whether a recording can take it: copied (H.264) or decoded and re-encoded.
    pub recordable: bool,
}

/// A stream's audio as a probe read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedAudio {
    /// FFmpeg's codec name (`aac`, `opus`, `mp3`, …).
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    /// Whether a recording can take it: copied (AAC with its config) or decoded and re-encoded.
    pub recordable: bool,
}

/// What a probe found in a stream: the tracks a recording would take.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub video: Option<ProbedVideo>,
    pub audio: Option<ProbedAudio>,
}

/// Why a stream could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL's scheme is not one a recording opens.
    #[error("input scheme not allowed")]
    SchemeNotAllowed,
    /// The stream guard refused the stream's address.
    #[error("refused: {0}")]
    Refused(String),
    /// Nothing answered, or it sent no media within the open's deadline.
    #[error("cannot open the stream: {0}")]
    Unreachable(String),
}

/// Opens `input` and reads its best video and audio stream's parameters; gives up after
/// `input.io_timeout` plus the open's probe budget (3 s), as a recording's open does.
pub fn probe(input: &InputSpec) -> Result<Probed, ProbeError> {
    crate::recorder::init_ffmpeg().map_err(|err| ProbeError::Unreachable(err.to_string()))?;
    let url = AllowedUrl::parse(&input.url, input.allow_file).map_err(|_| ProbeError::SchemeNotAllowed)?;
    let source = Source::open(&url, input).map_err(|err| match err {
        OpenError::Refused(Refused::Address(reason)) => ProbeError::Refused(reason),
        OpenError::Refused(unresolved @ Refused::Unresolved) => ProbeError::Unreachable(unresolved.to_string()),
        OpenError::Failed(error) => ProbeError::Unreachable(error.to_string()),
        OpenError::Ended(reason) => ProbeError::Unreachable(reason),
    })?;
    let ctx = source.context();
    let video = source.video.and_then(|i| ctx.stream(i)).map(|s| video(&s));
    let audio = source.audio.and_then(|i| ctx.stream(i)).map(|s| audio(&s));
    Ok(Probed { video, audio })
}

fn video(stream: &format::stream::Stream) -> ProbedVideo {
    let params = stream.parameters();
    let info = crate::ffi::describe(&params);
    let rate = Some(stream.avg_frame_rate()).filter(|r| r.numerator() > 0).unwrap_or_else(|| stream.rate());
    let fps = if rate.denominator() > 0 { f64::from(rate.numerator()) / f64::from(rate.denominator()) } else { 0.0 };
    let sized = info.width > 0 && info.height > 0;
    let recordable = sized && (params.id() == codec::Id::H264 || decoder::find(params.id()).is_some());
    ProbedVideo { codec: codec_name(params.id()), width: info.width, height: info.height, fps, recordable }
}

fn audio(stream: &format::stream::Stream) -> ProbedAudio {
    let params = stream.parameters();
    let info = crate::ffi::describe(&params);
    let recordable = params.medium() == media::Type::Audio && decoder::find(params.id()).is_some();
    ProbedAudio { codec: codec_name(params.id()), sample_rate: info.sample_rate, channels: info.channels, recordable }
}

/// FFmpeg's short name of `id` (`h264`, `aac`).
fn codec_name(id: codec::Id) -> String {
    id.name().to_owned()
}
