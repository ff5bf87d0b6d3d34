//! Video: decode, scale, encode H.264 with libx264.

use std::time::Duration;

use ffmpeg_next::codec::{self, decoder, encoder, Parameters};
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::error::EAGAIN;
use ffmpeg_next::{format, frame, picture, Dictionary, Error, Packet, Rational, Rescale};

use super::{decoder_for, receive_packets};
use crate::ffi::ParamsInfo;
use crate::mux;

/// Bit rate when the source does not say, in bits per second.
const DEFAULT_BIT_RATE_BPS: i64 = 2_000_000;
/// Bounds for a bit rate derived from the source's, in bits per second.
const BIT_RATE_RANGE_BPS: (i64, i64) = (300_000, 8_000_000);
/// Frame rate assumed when the source does not say.
const DEFAULT_FRAME_RATE: Rational = Rational(25, 1);
/// libx264 speed/quality trade-off ("veryfast" keeps a 720p stream real time on one core).
const X264_PRESET: &str = "veryfast";
/// Upper bound of the GOP, in frames, whatever the slice.
const MAX_GOP_FRAMES: f64 = 600.0;

/// Decodes video, scales it to `size` and encodes H.264 with a keyframe at least every
/// `key_interval`, so HLS can cut there.
pub(crate) struct VideoTranscoder {
    decoder: decoder::Video,
    scaler: Option<scaling::Context>,
    encoder: encoder::video::Encoder,
    size: (u32, u32),
    time_base: Rational,
    /// Keyframe spacing and the next forced keyframe, in `time_base`.
    key_interval: i64,
    next_key: Option<i64>,
}

impl VideoTranscoder {
    /// A transcoder for `stream` (described by `source`), producing `size` pictures timed in
    /// the stream's time base.
    pub(crate) fn new(
        stream: &format::stream::Stream,
        source: &ParamsInfo,
        size: (u32, u32),
        key_interval: Duration,
    ) -> Result<Self, Error> {
        let time_base = stream.time_base();
        let decoder = decoder_for(stream)?.video()?;
        let frame_rate = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0)
            .unwrap_or(DEFAULT_FRAME_RATE);
        let gop = (key_interval.as_secs_f64() * f64::from(frame_rate)).round().clamp(1.0, MAX_GOP_FRAMES) as u32;
        let settings = X264 { size, time_base, frame_rate, gop, bit_rate: bit_rate(source, size), max_rate: None };
        let encoder = open_x264(&settings)?;
        let key_interval = mux::micros(key_interval).rescale(mux::MICROS, time_base);
        Ok(Self { decoder, scaler: None, encoder, size, time_base, key_interval: key_interval.max(1), next_key: None })
    }

    /// The encoder's output, for the muxers.
    pub(crate) fn parameters(&self) -> Parameters {
        Parameters::from(&self.encoder)
    }

    /// The time base of the packets produced.
    pub(crate) fn time_base(&self) -> Rational {
        self.time_base
    }

    /// Decodes `packet` and appends whatever the encoder has ready to `out`.
    pub(crate) fn push(&mut self, packet: &Packet, out: &mut Vec<Packet>) -> Result<(), Error> {
        for _ in 0..2 {
            match self.decoder.send_packet(packet) {
                Ok(()) => return self.receive_frames(out),
                // The decoder holds frames not taken yet: take them, then send again.
                Err(Error::Other { errno: EAGAIN }) => self.receive_frames(out)?,
                Err(error) => {
                    tracing::warn!(%error, "skipping a video packet the decoder refuses");
                    return Ok(());
                }
            }
        }
        tracing::warn!("skipping a video packet the decoder has no room for");
        Ok(())
    }

    /// Flushes decoder and encoder at the end of the input.
    pub(crate) fn drain(&mut self, out: &mut Vec<Packet>) -> Result<(), Error> {
        // An error here only means the decoder was drained already.
        let _ = self.decoder.send_eof();
        self.receive_frames(out)?;
        match self.encoder.send_eof() {
            Ok(()) | Err(Error::Eof) => receive_packets(&mut self.encoder, out),
            Err(error) => Err(error),
        }
    }

    fn receive_frames(&mut self, out: &mut Vec<Packet>) -> Result<(), Error> {
        let mut decoded = frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => self.encode(&decoded, out)?,
                Err(Error::Other { errno: EAGAIN }) | Err(Error::Eof) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "skipping a video frame that does not decode");
                    return Ok(());
                }
            }
        }
    }

    fn encode(&mut self, decoded: &frame::Video, out: &mut Vec<Packet>) -> Result<(), Error> {
        let Some(pts) = decoded.timestamp() else {
            tracing::warn!("skipping a decoded video frame without a timestamp");
            return Ok(());
        };
        let mut scaled = frame::Video::empty();
        self.scaler_for(decoded)?.run(decoded, &mut scaled)?;
        scaled.set_pts(Some(pts));
        // Keyframes at the slice length, whatever the source's GOP, so segments cut there.
        let key = self.next_key.is_none_or(|next| pts >= next);
        if key {
            self.next_key = Some(pts.saturating_add(self.key_interval));
        }
        scaled.set_kind(if key { picture::Type::I } else { picture::Type::None });
        self.encoder.send_frame(&scaled)?;
        receive_packets(&mut self.encoder, out)
    }

    /// The scaler for `frame`'s size and format; the source may change them mid-stream, the
    /// output size never changes.
    fn scaler_for(&mut self, frame: &frame::Video) -> Result<&mut scaling::Context, Error> {
        let source = (frame.width(), frame.height(), frame.format());
        let fits = |s: &scaling::Context| (s.input().width, s.input().height, s.input().format) == source;
        match &mut self.scaler {
            Some(scaler) if fits(scaler) => {}
            stale => {
                let (width, height) = self.size;
                *stale = Some(scaling::Context::get(
                    source.2,
                    source.0,
                    source.1,
                    format::Pixel::YUV420P,
                    width,
                    height,
                    scaling::Flags::BILINEAR,
                )?);
            }
        }
        self.scaler.as_mut().ok_or(Error::Bug)
    }
}

/// What an H.264 stream is encoded at.
pub(crate) struct X264 {
    pub size: (u32, u32),
    /// Of the frames sent, and of the packets produced.
    pub time_base: Rational,
    pub frame_rate: Rational,
    /// Keyframe spacing in frames (an upper bound; forced keyframes come on top).
    pub gop: u32,
    /// Average bit rate, in bits per second.
    pub bit_rate: i64,
    /// Peak bit rate over a two-second buffer (VBV), in bits per second; `None`: unconstrained.
    pub max_rate: Option<i64>,
}

/// VBV buffer size in seconds of `X264::max_rate`.
const VBV_BUFFER_SECONDS: i64 = 2;

/// Opens libx264 for YUV420P frames with `settings`: no B-frames, SPS/PPS out of band,
/// forced keyframes as IDR.
pub(crate) fn open_x264(settings: &X264) -> Result<encoder::video::Encoder, Error> {
    let codec = encoder::find_by_name("libx264").ok_or(Error::EncoderNotFound)?;
    let mut context = codec::context::Context::new_with_codec(codec).encoder().video()?;
    context.set_width(settings.size.0);
    context.set_height(settings.size.1);
    context.set_format(format::Pixel::YUV420P);
    context.set_time_base(settings.time_base);
    context.set_frame_rate(Some(settings.frame_rate));
    // The forced keyframes do the cutting; the GOP only bounds them if timestamps stall.
    context.set_gop(settings.gop);
    // No B-frames: packets leave in presentation order, so a cut at a keyframe's timestamp
    // splits audio and video at the same instant.
    context.set_max_b_frames(0);
    context.set_bit_rate(usize::try_from(settings.bit_rate).unwrap_or(0));
    // SPS/PPS out of band: MP4 needs them in avcC; the MPEG-TS muxer re-inserts them before IDRs.
    context.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut options = Dictionary::new();
    options.set("preset", X264_PRESET);
    // Forced keyframes must be IDR for a segment to decode on its own.
    options.set("forced-idr", "1");
    if let Some(max_rate) = settings.max_rate {
        // AVCodecContext options (`maxrate`, `bufsize`), which libx264 maps to its VBV.
        options.set("maxrate", &max_rate.to_string());
        options.set("bufsize", &(max_rate * VBV_BUFFER_SECONDS).to_string());
    }
    context.open_with(options)
}

/// The source's bit rate scaled by the change in picture area, within bounds; a default
/// when the source does not say.
fn bit_rate(source: &ParamsInfo, size: (u32, u32)) -> i64 {
    let source_area = i64::from(source.width) * i64::from(source.height);
    if source.bit_rate <= 0 || source_area == 0 {
        return DEFAULT_BIT_RATE_BPS;
    }
    let area = i64::from(size.0) * i64::from(size.1);
    (source.bit_rate.saturating_mul(area) / source_area).clamp(BIT_RATE_RANGE_BPS.0, BIT_RATE_RANGE_BPS.1)
}
