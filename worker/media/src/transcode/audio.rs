//! Audio: decode, resample, encode AAC (FFmpeg's native encoder).

use ffmpeg_next::codec::{self, decoder, encoder, Parameters};
use ffmpeg_next::format::{self, sample};
use ffmpeg_next::util::error::EAGAIN;
use ffmpeg_next::{filter, frame, ChannelLayout, Error, Packet, Rational, Rescale};

use super::{decoder_for, receive_packets};

/// AAC bit rate per channel, in bits per second.
const BIT_RATE_PER_CHANNEL_BPS: usize = 64_000;
/// Sample rates AAC can signal (ISO 14496-3 sampling_frequency_index).
const AAC_SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
/// Sample rate when the source's is not one of [`AAC_SAMPLE_RATES`].
const FALLBACK_SAMPLE_RATE: u32 = 48000;

/// Decodes audio, resamples it and encodes AAC in the encoder's frame size (1024 samples).
pub(crate) struct AudioTranscoder {
    decoder: decoder::Audio,
    /// abuffer "in" → abuffersink "out", resampling to the encoder's format.
    filter: filter::Graph,
    encoder: encoder::audio::Encoder,
    filtered_time_base: Rational,
}

impl AudioTranscoder {
    /// A transcoder for `stream`, producing AAC timed in 1/sample rate.
    pub(crate) fn new(stream: &format::stream::Stream) -> Result<Self, Error> {
        let decoder = decoder_for(stream)?.audio()?;
        let rate = if AAC_SAMPLE_RATES.contains(&decoder.rate()) { decoder.rate() } else { FALLBACK_SAMPLE_RATE };
        let layout = if decoder.channels() == 1 { ChannelLayout::MONO } else { ChannelLayout::STEREO };
        let encoder = open_aac(rate, layout)?;
        let mut filter = resampler(&decoder, stream.time_base(), &encoder)?;
        let filtered_time_base = filter.get("out").ok_or(Error::Bug)?.sink().time_base();
        Ok(Self { decoder, filter, encoder, filtered_time_base })
    }

    /// The encoder's output, for the muxers.
    pub(crate) fn parameters(&self) -> Parameters {
        Parameters::from(&self.encoder)
    }

    /// The time base of the packets produced.
    pub(crate) fn time_base(&self) -> Rational {
        self.encoder.time_base()
    }

    /// Decodes `packet` and appends whatever the encoder has ready to `out`.
    pub(crate) fn push(&mut self, packet: &Packet, out: &mut Vec<Packet>) -> Result<(), Error> {
        for _ in 0..2 {
            match self.decoder.send_packet(packet) {
                Ok(()) => return self.receive_frames(out),
                // The decoder holds frames not taken yet: take them, then send again.
                Err(Error::Other { errno: EAGAIN }) => self.receive_frames(out)?,
                Err(error) => {
                    tracing::warn!(%error, "skipping an audio packet the decoder refuses");
                    return Ok(());
                }
            }
        }
        tracing::warn!("skipping an audio packet the decoder has no room for");
        Ok(())
    }

    /// Flushes decoder, resampler and encoder at the end of the input.
    pub(crate) fn drain(&mut self, out: &mut Vec<Packet>) -> Result<(), Error> {
        // Errors here only mean the decoder or filter was drained already.
        let _ = self.decoder.send_eof();
        self.receive_frames(out)?;
        if let Some(mut source) = self.filter.get("in") {
            let _ = source.source().flush();
        }
        self.encode_filtered(out)?;
        match self.encoder.send_eof() {
            Ok(()) | Err(Error::Eof) => receive_packets(&mut self.encoder, out),
            Err(error) => Err(error),
        }
    }

    fn receive_frames(&mut self, out: &mut Vec<Packet>) -> Result<(), Error> {
        let mut decoded = frame::Audio::empty();
        loop {
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => {
                    let pts = decoded.timestamp();
                    decoded.set_pts(pts);
                    let added = self.filter.get("in").ok_or(Error::Bug)?.source().add(&decoded);
                    if let Err(error) = added {
                        tracing::warn!(%error, "skipping an audio frame the resampler refuses");
                        continue;
                    }
                    self.encode_filtered(out)?;
                }
                Err(Error::Other { errno: EAGAIN }) | Err(Error::Eof) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "skipping an audio frame that does not decode");
                    return Ok(());
                }
            }
        }
    }

    fn encode_filtered(&mut self, out: &mut Vec<Packet>) -> Result<(), Error> {
        let mut filtered = frame::Audio::empty();
        loop {
            let got = self.filter.get("out").ok_or(Error::Bug)?.sink().frame(&mut filtered);
            match got {
                Ok(()) => {
                    let pts = filtered.pts().map(|pts| pts.rescale(self.filtered_time_base, self.encoder.time_base()));
                    filtered.set_pts(pts);
                    self.encoder.send_frame(&filtered)?;
                    receive_packets(&mut self.encoder, out)?;
                }
                Err(Error::Other { errno: EAGAIN }) | Err(Error::Eof) => return Ok(()),
                Err(error) => return Err(error),
            }
        }
    }
}

/// AAC (FFmpeg's native encoder, planar float input in frames of 1024 samples) at `rate`
/// with `layout`, timed in 1/`rate`.
pub(crate) fn open_aac(rate: u32, layout: ChannelLayout) -> Result<encoder::audio::Encoder, Error> {
    let codec = encoder::find(codec::Id::AAC).ok_or(Error::EncoderNotFound)?;
    let mut settings = codec::context::Context::new_with_codec(codec).encoder().audio()?;
    let rate = i32::try_from(rate).map_err(|_| Error::InvalidData)?;
    settings.set_rate(rate);
    settings.set_channel_layout(layout);
    settings.set_channels(layout.channels());
    settings.set_format(format::Sample::F32(sample::Type::Planar));
    settings.set_bit_rate(BIT_RATE_PER_CHANNEL_BPS * usize::try_from(layout.channels()).unwrap_or(2));
    settings.set_time_base(Rational(1, rate));
    // AudioSpecificConfig out of band: MP4 needs it; the MPEG-TS muxer writes ADTS from it.
    settings.set_flags(codec::Flags::GLOBAL_HEADER);
    settings.open_as(codec)
}

/// abuffer → (automatic aresample/aformat) → abuffersink cutting the encoder's frame size.
fn resampler(
    decoder: &decoder::Audio,
    time_base: Rational,
    encoder: &encoder::audio::Encoder,
) -> Result<filter::Graph, Error> {
    let layout = match decoder.channel_layout() {
        layout if layout.is_empty() => ChannelLayout::default(i32::from(decoder.channels())),
        layout => layout,
    };
    let args = format!(
        "time_base={time_base}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
        decoder.rate(),
        decoder.format().name(),
        layout.bits()
    );
    let mut graph = filter::Graph::new();
    graph.add(&filter::find("abuffer").ok_or(Error::FilterNotFound)?, "in", &args)?;
    graph.add(&filter::find("abuffersink").ok_or(Error::FilterNotFound)?, "out", "")?;
    {
        let mut out = graph.get("out").ok_or(Error::Bug)?;
        out.set_sample_format(encoder.format());
        out.set_channel_layout(encoder.channel_layout());
        out.set_sample_rate(encoder.rate());
    }
    graph.output("in", 0)?.input("out", 0)?.parse("anull")?;
    graph.validate()?;
    graph.get("out").ok_or(Error::Bug)?.sink().set_frame_size(encoder.frame_size());
    Ok(graph)
}
