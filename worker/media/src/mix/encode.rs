//! The mix's encoders and their way into the files: H.264 (libx264) of the canvas at the
//! template's size, rate and bit rate with a keyframe every slice, and AAC of the mixed
//! sound. x264 holds frames back for its look-ahead, so audio packets wait until the video
//! has caught up: the files get them interleaved, and segments cut at a keyframe hold the
//! audio of their own time span.

use std::collections::VecDeque;
use std::time::Duration;

use ffmpeg_next::codec::{encoder, Parameters};
use ffmpeg_next::format::{sample, Sample};
use ffmpeg_next::{frame, picture, ChannelLayout, Error, Packet, Rational, Rescale};

use super::sound::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::mux::{Reporter, MICROS};
use crate::outputs::Outputs;
use crate::tracks::{Kind, Track, Tracks};
use crate::transcode::{open_aac, open_x264, receive_packets, X264};
use crate::{Canvas, MediaError};

/// Encodes the canvas and the mixed sound, and writes the packets to the outputs.
pub(crate) struct Encoders {
    video: Option<VideoOut>,
    audio: AudioOut,
    tracks: Tracks,
    /// AAC packets not yet written: the video has not reached their time.
    waiting_audio: VecDeque<Packet>,
    /// Decode time of the last video packet written, in µs.
    video_at_us: i64,
    scratch: Vec<Packet>,
}

struct VideoOut {
    encoder: encoder::video::Encoder,
    /// Frames between forced keyframes.
    gop: i64,
    /// The frame index from which the next frame is a keyframe.
    next_key: i64,
}

struct AudioOut {
    encoder: encoder::audio::Encoder,
    frame: frame::Audio,
    next_pts: i64,
}

impl Encoders {
    /// Encoders for `canvas` (none: audio only) with a keyframe every `key_interval`.
    pub(crate) fn open(canvas: Option<Canvas>, key_interval: Duration) -> Result<Self, MediaError> {
        let ffmpeg = |context| move |source| MediaError::Ffmpeg { context, source };
        let video =
            canvas.map(|canvas| open_video(canvas, key_interval)).transpose().map_err(ffmpeg("open libx264"))?;
        let audio = open_audio().map_err(ffmpeg("open the AAC encoder"))?;
        let tracks = Tracks {
            video: video.as_ref().map(|v| Track::new(Parameters::from(&v.encoder), v.encoder.time_base())),
            audio: Some(Track::new(Parameters::from(&audio.encoder), audio.encoder.time_base())),
        };
        Ok(Self { video, audio, tracks, waiting_audio: VecDeque::new(), video_at_us: i64::MIN, scratch: Vec::new() })
    }

    /// The tracks of the files.
    pub(crate) fn tracks(&self) -> &Tracks {
        &self.tracks
    }

    /// Encodes `canvas` as frame `index` (at `index`/fps) and writes what comes out.
    pub(crate) fn video(
        &mut self,
        canvas: &mut frame::Video,
        index: i64,
        outputs: &mut Outputs,
        report: &Reporter,
    ) -> Result<(), MediaError> {
        let Some(video) = self.video.as_mut() else { return Ok(()) };
        canvas.set_pts(Some(index));
        // Keyframes at the slice length, so HLS segments are cut there (the first frame after
        // the boundary, should the mixer have skipped the one on it).
        let key = index >= video.next_key;
        if key {
            video.next_key = (index / video.gop + 1) * video.gop;
        }
        canvas.set_kind(if key { picture::Type::I } else { picture::Type::None });
        video.encoder.send_frame(canvas).map_err(|source| MediaError::Ffmpeg { context: "encode video", source })?;
        receive_packets(&mut video.encoder, &mut self.scratch)
            .map_err(|source| MediaError::Ffmpeg { context: "encode video", source })?;
        self.write_video(outputs, report)
    }

    /// Makes the next video frame a keyframe (a resumed recording's first).
    pub(crate) fn force_keyframe(&mut self) {
        if let Some(video) = self.video.as_mut() {
            video.next_key = i64::MIN;
        }
    }

    /// Encodes the next [`FRAME_SAMPLES`] samples of sound and writes what comes out.
    pub(crate) fn audio(
        &mut self,
        left: &[f32],
        right: &[f32],
        outputs: &mut Outputs,
        report: &Reporter,
    ) -> Result<(), MediaError> {
        let audio = &mut self.audio;
        let encode = |source| MediaError::Ffmpeg { context: "encode audio", source };
        crate::ffi::make_writable(&mut audio.frame).map_err(encode)?;
        for (plane, samples) in [left, right].into_iter().enumerate() {
            let out = audio.frame.plane_mut::<f32>(plane);
            let len = out.len().min(samples.len());
            out[..len].copy_from_slice(&samples[..len]);
        }
        audio.frame.set_pts(Some(audio.next_pts));
        audio.next_pts += FRAME_SAMPLES as i64;
        audio.encoder.send_frame(&audio.frame).map_err(encode)?;
        receive_packets(&mut audio.encoder, &mut self.scratch).map_err(encode)?;
        self.waiting_audio.extend(self.scratch.drain(..));
        self.write_audio(outputs, report, false)
    }

    /// Drains both encoders into the files (at the end of the mix).
    pub(crate) fn finish(&mut self, outputs: &mut Outputs, report: &Reporter) -> Result<(), MediaError> {
        let flush = |context| move |source| MediaError::Ffmpeg { context, source };
        if let Some(video) = self.video.as_mut() {
            match video.encoder.send_eof() {
                Ok(()) | Err(Error::Eof) => {}
                Err(error) => return Err(flush("flush the video encoder")(error)),
            }
            receive_packets(&mut video.encoder, &mut self.scratch).map_err(flush("flush the video encoder"))?;
            self.write_video(outputs, report)?;
        }
        match self.audio.encoder.send_eof() {
            Ok(()) | Err(Error::Eof) => {}
            Err(error) => return Err(flush("flush the audio encoder")(error)),
        }
        receive_packets(&mut self.audio.encoder, &mut self.scratch).map_err(flush("flush the audio encoder"))?;
        self.waiting_audio.extend(self.scratch.drain(..));
        self.write_audio(outputs, report, true)
    }

    fn write_video(&mut self, outputs: &mut Outputs, report: &Reporter) -> Result<(), MediaError> {
        let time_base = self.tracks.video.as_ref().map_or(Rational(1, 1), |t| t.time_base);
        let mut packets = std::mem::take(&mut self.scratch);
        for packet in packets.drain(..) {
            if let Some(dts) = packet.dts().or(packet.pts()) {
                self.video_at_us = self.video_at_us.max(dts.rescale(time_base, MICROS));
            }
            outputs.write(Kind::Video, &packet, report)?;
            self.write_audio(outputs, report, false)?;
        }
        // Kept for the next frame's packets, capacity and all.
        self.scratch = packets;
        Ok(())
    }

    /// Writes the waiting audio the video has caught up with (all of it when `all`, or
    /// without video).
    fn write_audio(&mut self, outputs: &mut Outputs, report: &Reporter, all: bool) -> Result<(), MediaError> {
        let time_base = Rational(1, SAMPLE_RATE as i32);
        let all = all || self.video.is_none();
        while let Some(packet) = self.waiting_audio.front() {
            let at_us = packet.dts().or(packet.pts()).map_or(i64::MIN, |dts| dts.rescale(time_base, MICROS));
            if !all && at_us > self.video_at_us {
                break;
            }
            if let Some(packet) = self.waiting_audio.pop_front() {
                outputs.write(Kind::Audio, &packet, report)?;
            }
        }
        Ok(())
    }
}

/// Average bit rate is the template's; the peak is held to it over a short buffer (CBR-ish).
fn open_video(canvas: Canvas, key_interval: Duration) -> Result<VideoOut, Error> {
    let fps = i32::try_from(canvas.fps.max(1)).map_err(|_| Error::InvalidData)?;
    let gop = (key_interval.as_secs_f64() * f64::from(fps)).round().max(1.0) as u32;
    let bit_rate = i64::from(canvas.kbps) * 1000;
    let encoder = open_x264(&X264 {
        size: (canvas.width, canvas.height),
        time_base: Rational(1, fps),
        frame_rate: Rational(fps, 1),
        gop,
        bit_rate,
        max_rate: Some(bit_rate),
    })?;
    Ok(VideoOut { encoder, gop: i64::from(gop), next_key: 0 })
}

fn open_audio() -> Result<AudioOut, Error> {
    let encoder = open_aac(SAMPLE_RATE, ChannelLayout::STEREO)?;
    if usize::try_from(encoder.frame_size()).ok() != Some(FRAME_SAMPLES) {
        return Err(Error::InvalidData);
    }
    let mut frame = frame::Audio::new(Sample::F32(sample::Type::Planar), FRAME_SAMPLES, ChannelLayout::STEREO);
    frame.set_rate(SAMPLE_RATE);
    Ok(AudioOut { encoder, frame, next_pts: 0 })
}
