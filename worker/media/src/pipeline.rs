//! One connection's path from input packets to output packets: copied when the codec fits
//! MPEG-TS and MP4 (H.264, AAC with its config) and no scaling applies, transcoded otherwise.

use std::time::Duration;

use ffmpeg_next::{self as ffmpeg, codec, format, Packet};

use crate::input::Source;
use crate::tracks::{Kind, Track, Tracks};
use crate::transcode::{AudioTranscoder, VideoTranscoder};
use crate::{MediaError, RecordSpec, ScalePolicy, ScaleSpec};

/// Keyframe spacing of transcoded video when no HLS slice asks for one.
const DEFAULT_KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);

/// Why a connection's streams cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    #[error("the stream has nothing to record (wanted: {0})")]
    NothingToRecord(&'static str),
    #[error("cannot set up {context}: {source}")]
    Ffmpeg {
        context: &'static str,
        #[source]
        source: ffmpeg::Error,
    },
}

#[derive(Debug, Clone, Copy)]
enum Route {
    Skip,
    Copy(Kind),
    Transcode(Kind),
}

/// Routes each input stream to its output track, transcoding where needed.
pub(crate) struct Pipeline {
    /// Indexed by input stream index.
    routes: Vec<Route>,
    tracks: Tracks,
    video: Option<VideoTranscoder>,
    audio: Option<AudioTranscoder>,
    scratch: Vec<Packet>,
}

impl Pipeline {
    /// Plans the tracks for `source` under `spec`, opening transcoders where needed.
    pub(crate) fn new(source: &Source, spec: &RecordSpec) -> Result<Self, PipelineError> {
        let ctx = source.context();
        let mut pipeline = Self {
            routes: vec![Route::Skip; ctx.nb_streams() as usize],
            tracks: Tracks::default(),
            video: None,
            audio: None,
            scratch: Vec::new(),
        };
        if let Some(stream) = source.video.filter(|_| spec.record_video).and_then(|i| ctx.stream(i)) {
            pipeline.add_video(&stream, spec)?;
        }
        if let Some(stream) = source.audio.filter(|_| spec.record_audio).and_then(|i| ctx.stream(i)) {
            pipeline.add_audio(&stream)?;
        }
        if pipeline.tracks.video.is_none() && pipeline.tracks.audio.is_none() {
            let wanted = match (spec.record_video, spec.record_audio) {
                (true, true) => "video or audio",
                (true, false) => "video",
                (false, true) => "audio",
                (false, false) => "nothing",
            };
            return Err(PipelineError::NothingToRecord(wanted));
        }
        Ok(pipeline)
    }

    fn add_video(&mut self, stream: &format::stream::Stream, spec: &RecordSpec) -> Result<(), PipelineError> {
        let params = stream.parameters();
        let info = crate::ffi::describe(&params);
        let size = output_size(spec.scale, (info.width, info.height));
        if params.id() == codec::Id::H264 && size == (info.width, info.height) {
            self.tracks.video = Some(Track::new(params, stream.time_base()));
            self.routes[stream.index()] = Route::Copy(Kind::Video);
            return Ok(());
        }
        if size.0 == 0 || size.1 == 0 {
            return Err(PipelineError::NothingToRecord("video of a known size"));
        }
        let key_interval = spec.hls.map_or(DEFAULT_KEYFRAME_INTERVAL, |hls| hls.slice);
        let transcoder = VideoTranscoder::new(stream, &info, size, key_interval)
            .map_err(|source| PipelineError::Ffmpeg { context: "the video transcoder", source })?;
        self.tracks.video = Some(Track::new(transcoder.parameters(), transcoder.time_base()));
        self.routes[stream.index()] = Route::Transcode(Kind::Video);
        self.video = Some(transcoder);
        Ok(())
    }

    fn add_audio(&mut self, stream: &format::stream::Stream) -> Result<(), PipelineError> {
        let params = stream.parameters();
        // AAC is copied when it comes with its AudioSpecificConfig (RTMP, RTSP, MP4). ADTS
        // AAC (MPEG-TS: SRT, HLS) has none, and the fragmented MP4 header needs it before
        // the first packet; ffmpeg-next has no bitstream filter API to convert it, so such
        // audio is re-encoded (cheap, and only audio).
        if params.id() == codec::Id::AAC && !crate::ffi::describe(&params).extradata.is_empty() {
            self.tracks.audio = Some(Track::new(params, stream.time_base()));
            self.routes[stream.index()] = Route::Copy(Kind::Audio);
            return Ok(());
        }
        let transcoder = AudioTranscoder::new(stream)
            .map_err(|source| PipelineError::Ffmpeg { context: "the audio transcoder", source })?;
        self.tracks.audio = Some(Track::new(transcoder.parameters(), transcoder.time_base()));
        self.routes[stream.index()] = Route::Transcode(Kind::Audio);
        self.audio = Some(transcoder);
        Ok(())
    }

    /// The output tracks this connection produces.
    pub(crate) fn tracks(&self) -> &Tracks {
        &self.tracks
    }

    /// Appends the output packets `packet` yields (none, one, or several) to `out`, each in
    /// its track's time base.
    pub(crate) fn push(&mut self, packet: Packet, out: &mut Vec<(Kind, Packet)>) -> Result<(), MediaError> {
        match self.routes.get(packet.stream()).copied().unwrap_or(Route::Skip) {
            Route::Skip => {}
            Route::Copy(kind) => out.push((kind, packet)),
            Route::Transcode(Kind::Video) => {
                if let Some(video) = self.video.as_mut() {
                    video
                        .push(&packet, &mut self.scratch)
                        .map_err(|source| MediaError::Ffmpeg { context: "encode video", source })?;
                    out.extend(self.scratch.drain(..).map(|p| (Kind::Video, p)));
                }
            }
            Route::Transcode(Kind::Audio) => {
                if let Some(audio) = self.audio.as_mut() {
                    audio
                        .push(&packet, &mut self.scratch)
                        .map_err(|source| MediaError::Ffmpeg { context: "encode audio", source })?;
                    out.extend(self.scratch.drain(..).map(|p| (Kind::Audio, p)));
                }
            }
        }
        Ok(())
    }

    /// Appends what the transcoders still hold at the end of the input to `out`.
    pub(crate) fn drain(&mut self, out: &mut Vec<(Kind, Packet)>) -> Result<(), MediaError> {
        if let Some(video) = self.video.as_mut() {
            video
                .drain(&mut self.scratch)
                .map_err(|source| MediaError::Ffmpeg { context: "flush the video encoder", source })?;
            out.extend(self.scratch.drain(..).map(|p| (Kind::Video, p)));
        }
        if let Some(audio) = self.audio.as_mut() {
            audio
                .drain(&mut self.scratch)
                .map_err(|source| MediaError::Ffmpeg { context: "flush the audio encoder", source })?;
            out.extend(self.scratch.drain(..).map(|p| (Kind::Audio, p)));
        }
        Ok(())
    }
}

/// The picture size to record a `source`-sized stream at: `scale` fitted inside its box
/// (aspect ratio kept, even dimensions) when its policy applies, else the source size.
fn output_size(scale: Option<ScaleSpec>, source: (u32, u32)) -> (u32, u32) {
    let Some(scale) = scale else { return source };
    let (width, height) = source;
    let applies = match scale.policy {
        ScalePolicy::Downward => width > scale.width || height > scale.height,
        ScalePolicy::Upward => width < scale.width && height < scale.height,
        ScalePolicy::Fixed => true,
    };
    if !applies || width == 0 || height == 0 || scale.width == 0 || scale.height == 0 {
        return source;
    }
    let factor = f64::min(f64::from(scale.width) / f64::from(width), f64::from(scale.height) / f64::from(height));
    let even = |side: u32| ((f64::from(side) * factor / 2.0).round() as u32 * 2).max(2);
    (even(width), even(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width: u32, height: u32, policy: ScalePolicy) -> Option<ScaleSpec> {
        Some(ScaleSpec { width, height, policy })
    }

    #[test]
    fn downward_scales_only_a_larger_source_keeping_its_aspect() {
        assert_eq!(output_size(spec(1280, 720, ScalePolicy::Downward), (1920, 1080)), (1280, 720));
        assert_eq!(output_size(spec(320, 240, ScalePolicy::Downward), (640, 360)), (320, 180));
        assert_eq!(output_size(spec(1280, 720, ScalePolicy::Downward), (640, 360)), (640, 360));
    }

    #[test]
    fn upward_scales_only_a_smaller_source() {
        assert_eq!(output_size(spec(1280, 720, ScalePolicy::Upward), (640, 360)), (1280, 720));
        assert_eq!(output_size(spec(1280, 720, ScalePolicy::Upward), (1920, 1080)), (1920, 1080));
    }

    #[test]
    fn fixed_always_fits_the_box() {
        assert_eq!(output_size(spec(1280, 720, ScalePolicy::Fixed), (640, 480)), (960, 720));
        assert_eq!(output_size(spec(640, 360, ScalePolicy::Fixed), (640, 360)), (640, 360));
        assert_eq!(output_size(None, (640, 360)), (640, 360));
    }
}
