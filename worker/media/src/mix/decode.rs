//! Decoding one participant's streams on their input thread, into what the mixer takes:
//! pictures scaled straight to the pane's size, and sound resampled to 48 kHz stereo, each
//! placed on the mix clock.

use ffmpeg_next::codec::{self, decoder};
use ffmpeg_next::format::{sample, stream, Sample};
use ffmpeg_next::software::resampling;
use ffmpeg_next::util::error::EAGAIN;
use ffmpeg_next::{frame, ChannelLayout, Error, Packet, Rational, Rescale};

use super::feed::{Feed, JITTER_BUFFER};
use super::geometry::place;
use super::picture::{self, Scaler};
use super::sound::SAMPLE_RATE;
use crate::mux::{micros, MICROS};

/// Sound that maps within this many samples (20 ms) of where the last chunk ended continues
/// it seamlessly; further off, it is placed where it maps.
const CONTINUITY_SAMPLES: i64 = 960;
/// Room for resampled sound beyond the input's own length, in samples.
const RESAMPLE_SLACK_SAMPLES: usize = 256;
/// The sound follows the pictures' average lag ([`Feed::picture_lag_us`]) once this many
/// pictures came under one mapping (before, it is not delayed for them): soon after a
/// participant joins, within the jumps of their sound while the new mapping settles.
const LAG_SETTLE_PICTURES: u32 = 10;
/// The pictures' average lag is taken afresh when the connection's mapping moves by more
/// than this, in µs.
const LAG_OFFSET_MOVE_US: i64 = 1_000;
/// The sound's shift (the connection's mapping plus the pictures' lag) follows the pictures
/// once it is off by more than this, in µs: each move is a jump in the participant's sound,
/// and while a mapping settles it moves often by a little.
const SOUND_STEP_US: i64 = 10_000;
/// Weight of the newest picture in the average lag (an exponential moving average). Slow:
/// while the connection's mapping settles the lag of each picture wanders over a whole
/// output frame, and the sound is not to jump with it.
const LAG_WEIGHT: f64 = 1.0 / 64.0;

/// A decoder told the time base of its packets, on one thread: an input thread per
/// participant already spreads decoding over the cores, and more would oversubscribe them.
fn open_decoder(stream: &stream::Stream) -> Result<decoder::Decoder, Error> {
    let mut decoder = crate::transcode::decoder_for(stream)?;
    decoder.set_threading(codec::threading::Config::count(1));
    Ok(decoder)
}

/// Sends `packet` to `decoder`, taking frames out with `drain` (also when it is full).
fn decode(
    decoder: &mut decoder::Opened,
    packet: &Packet,
    mut drain: impl FnMut(&mut decoder::Opened) -> Result<(), Error>,
) -> Result<(), Error> {
    for _ in 0..2 {
        match decoder.send_packet(packet) {
            Ok(()) => return drain(decoder),
            Err(Error::Other { errno: EAGAIN }) => drain(decoder)?,
            Err(error) => return Err(error),
        }
    }
    Err(Error::Other { errno: EAGAIN })
}

/// A participant's video: decoded, scaled for their pane, queued on the mix clock.
pub(crate) struct VideoIn {
    /// The stream's index and the time base of its packets.
    pub index: usize,
    pub time_base: Rational,
    decoder: decoder::Video,
    decoded: frame::Video,
    pacer: Pacer,
    /// Packets before the first keyframe cannot be decoded: they are skipped.
    keyframe_seen: bool,
}

impl VideoIn {
    /// The video `stream`, for a mix of `fps` frames per second.
    pub(crate) fn new(stream: &stream::Stream, fps: u32) -> Result<Self, Error> {
        Ok(Self {
            index: stream.index(),
            time_base: stream.time_base(),
            decoder: open_decoder(stream)?.video()?,
            decoded: frame::Video::empty(),
            pacer: Pacer::new(fps),
            keyframe_seen: false,
        })
    }

    /// Decodes `packet` (source time + `offset_us` = mix clock) and hands its pictures on.
    pub(crate) fn push(&mut self, packet: &Packet, offset_us: i64, feed: &Feed) -> Result<(), Error> {
        if !self.keyframe_seen {
            if !packet.is_key() {
                return Ok(());
            }
            self.keyframe_seen = true;
        }
        let Self { decoder, decoded, pacer, time_base, .. } = self;
        decode(decoder, packet, |decoder| loop {
            match decoder.receive_frame(decoded) {
                Ok(()) => {
                    if let Some(pts) = decoded.timestamp() {
                        let at_us = pts.rescale(*time_base, MICROS).saturating_add(offset_us);
                        pacer.offer(decoded, at_us, offset_us, feed)?;
                    }
                }
                Err(Error::Other { errno: EAGAIN } | Error::Eof) => return Ok(()),
                Err(error) => return Err(error),
            }
        })
    }

    /// Hands on the picture held back, if any (the stream ended).
    pub(crate) fn finish(&mut self, feed: &Feed) -> Result<(), Error> {
        self.pacer.release(feed)
    }
}

/// Scales only pictures that will be shown: from a source faster than the mix, a picture
/// that the next one replaces within the same output frame is dropped unscaled. To know, each
/// picture is held back until the next one is decoded — only when the source's pictures
/// come closer together than the mix's, so the wait stays under one output frame.
struct Pacer {
    fps: i64,
    scaler: Scaler,
    held: frame::Video,
    held_at_us: Option<i64>,
    last_at_us: Option<i64>,
    /// The average lag of the pictures handed over, and the value last told the feed.
    lag_us: Option<f64>,
    lag_count: u32,
    /// The mapping the average was taken under.
    lag_offset_us: Option<i64>,
    told_lag_us: i64,
}

impl Pacer {
    fn new(fps: u32) -> Self {
        Self {
            fps: i64::from(fps.max(1)),
            scaler: Scaler::default(),
            held: frame::Video::empty(),
            held_at_us: None,
            last_at_us: None,
            lag_us: None,
            lag_count: 0,
            lag_offset_us: None,
            told_lag_us: 0,
        }
    }

    /// Takes the picture in `decoded` (which may come back holding another decoded buffer).
    fn offer(&mut self, decoded: &mut frame::Video, at_us: i64, offset_us: i64, feed: &Feed) -> Result<(), Error> {
        self.note_lag(at_us, offset_us, feed);
        let interval_us = self.last_at_us.map(|last| at_us.saturating_sub(last));
        self.last_at_us = Some(at_us);
        if let Some(held_at_us) = self.held_at_us.take() {
            if self.output_frame(held_at_us) != self.output_frame(at_us) {
                hand_over(&self.held, held_at_us, &mut self.scaler, feed)?;
            }
        }
        let faster_than_the_mix =
            interval_us.is_some_and(|interval| interval > 0 && interval.saturating_mul(self.fps) < 1_000_000);
        if faster_than_the_mix {
            std::mem::swap(decoded, &mut self.held);
            self.held_at_us = Some(at_us);
            Ok(())
        } else {
            hand_over(decoded, at_us, &mut self.scaler, feed)
        }
    }

    fn release(&mut self, feed: &Feed) -> Result<(), Error> {
        match self.held_at_us.take() {
            Some(at_us) => hand_over(&self.held, at_us, &mut self.scaler, feed),
            None => Ok(()),
        }
    }

    /// A picture at `at_us` came: what it shows is seen from its output frame on (in it, or
    /// in a later picture that replaces it there), that much after its time. Tells the feed
    /// the average (for the sound once settled, see [`LAG_SETTLE_PICTURES`]).
    fn note_lag(&mut self, at_us: i64, offset_us: i64, feed: &Feed) {
        let shown_us = self.output_frame(at_us).saturating_mul(1_000_000) / self.fps;
        let lag = shown_us.saturating_sub(at_us.saturating_add(micros(JITTER_BUFFER))) as f64;
        // A plain mean over the first pictures, then a slow moving average; afresh whenever
        // the mapping moved (it does while a new connection drains what it read ahead).
        if self.lag_offset_us.is_none_or(|last| (offset_us - last).abs() > LAG_OFFSET_MOVE_US) {
            self.lag_us = None;
            self.lag_count = 0;
        }
        self.lag_offset_us = Some(offset_us);
        self.lag_count += 1;
        let weight = (1.0 / self.lag_count as f64).max(LAG_WEIGHT);
        let average = self.lag_us.map_or(lag, |average| average + (lag - average) * weight);
        self.lag_us = Some(average);
        let average = average.round() as i64;
        if self.lag_count >= LAG_SETTLE_PICTURES {
            self.told_lag_us = average;
        }
        feed.set_picture_lag(self.told_lag_us, offset_us.saturating_add(average));
    }

    /// The first output frame a picture at `at_us` shows in: frame n shows what is due at
    /// n/fps − the jitter buffer.
    fn output_frame(&self, at_us: i64) -> i64 {
        let scaled = at_us.saturating_add(micros(JITTER_BUFFER)).saturating_mul(self.fps);
        (scaled + 999_999).div_euclid(1_000_000)
    }
}

/// Scales `decoded` for the participant's pane (if shown) and queues it to show at `at_us`.
fn hand_over(decoded: &frame::Video, at_us: i64, scaler: &mut Scaler, feed: &Feed) -> Result<(), Error> {
    let Some((target, spare)) = feed.prepare_picture() else { return Ok(()) };
    let placement = place((decoded.width(), decoded.height()), target.size, target.fill);
    let mut frame = match spare {
        Some(frame) if (frame.width(), frame.height()) == placement.size => frame,
        _ => picture::blank(placement.size),
    };
    match scaler.scale(decoded, placement.crop, &mut frame) {
        Ok(()) => {
            feed.push_picture(at_us, target, frame);
            Ok(())
        }
        Err(error) => {
            feed.recycle(frame);
            Err(error)
        }
    }
}

/// A participant's sound: decoded, resampled, written to be played on the mix clock.
pub(crate) struct AudioIn {
    /// The stream's index and the time base of its packets.
    pub index: usize,
    pub time_base: Rational,
    decoder: decoder::Audio,
    decoded: frame::Audio,
    resampler: Option<resampling::Context>,
    resampled: frame::Audio,
    /// Where the last chunk of sound ended, in samples of the source's time (unshifted).
    next_position: Option<i64>,
    /// How far the sound is moved from its source time, in µs (see [`SOUND_STEP_US`]).
    shift_us: Option<i64>,
}

impl AudioIn {
    /// The audio `stream`.
    pub(crate) fn new(stream: &stream::Stream) -> Result<Self, Error> {
        Ok(Self {
            index: stream.index(),
            time_base: stream.time_base(),
            decoder: open_decoder(stream)?.audio()?,
            decoded: frame::Audio::empty(),
            resampler: None,
            resampled: frame::Audio::empty(),
            next_position: None,
            shift_us: None,
        })
    }

    /// Decodes `packet` (source time + `offset_us` = mix clock) and hands its sound on.
    pub(crate) fn push(&mut self, packet: &Packet, offset_us: i64, feed: &Feed) -> Result<(), Error> {
        let Self { decoder, decoded, time_base, .. } = self;
        let mut sound = Resample {
            resampler: &mut self.resampler,
            resampled: &mut self.resampled,
            next_position: &mut self.next_position,
            shift_us: &mut self.shift_us,
        };
        decode(decoder, packet, |decoder| loop {
            match decoder.receive_frame(decoded) {
                Ok(()) => {
                    let Some(pts) = decoded.timestamp() else { continue };
                    // Played after the jitter buffer, the mapping and the pictures' lag, like
                    // the pictures.
                    let wanted = offset_us.saturating_add(feed.picture_lag_us());
                    let shift_us = match *sound.shift_us {
                        Some(shift) if (wanted - shift).abs() <= SOUND_STEP_US => shift,
                        _ => wanted,
                    };
                    *sound.shift_us = Some(shift_us);
                    feed.set_sound_shift(shift_us);
                    let source_us = pts.rescale(*time_base, MICROS).saturating_add(micros(JITTER_BUFFER));
                    sound.hand_over(decoded, source_us, shift_us, feed)?;
                }
                Err(Error::Other { errno: EAGAIN } | Error::Eof) => return Ok(()),
                Err(error) => return Err(error),
            }
        })
    }
}

/// The resampling half of [`AudioIn`], borrowed apart from its decoder.
struct Resample<'a> {
    resampler: &'a mut Option<resampling::Context>,
    resampled: &'a mut frame::Audio,
    next_position: &'a mut Option<i64>,
    shift_us: &'a mut Option<i64>,
}

impl Resample<'_> {
    /// Resamples `decoded` to 48 kHz stereo planar float and writes it to be played from
    /// `source_us` + `shift_us` on the mix clock. Continuity is judged on the source's own
    /// time: the shift moves the sound exactly as much as it changes.
    fn hand_over(&mut self, decoded: &frame::Audio, source_us: i64, shift_us: i64, feed: &Feed) -> Result<(), Error> {
        let layout = match decoded.channel_layout() {
            layout if layout.is_empty() => ChannelLayout::default(i32::from(decoded.channels())),
            layout => layout,
        };
        let fits = |r: &resampling::Context| {
            let input = r.input();
            (input.format, input.channel_layout, input.rate) == (decoded.format(), layout, decoded.rate())
        };
        if !self.resampler.as_ref().is_some_and(fits) {
            *self.resampler = Some(resampling::Context::get(
                decoded.format(),
                layout,
                decoded.rate(),
                Sample::F32(sample::Type::Planar),
                ChannelLayout::STEREO,
                SAMPLE_RATE,
            )?);
        }
        let resampler = self.resampler.as_mut().ok_or(Error::Bug)?;
        let room = decoded.samples() * SAMPLE_RATE as usize / decoded.rate().max(1) as usize + RESAMPLE_SLACK_SAMPLES;
        // swr_convert_frame takes `nb_samples` as the room it may fill, and sets it to what it wrote.
        let capacity = match self.resampled.planes() {
            2 => self.resampled.data(0).len() / std::mem::size_of::<f32>(),
            _ => 0,
        };
        if capacity < room {
            *self.resampled = frame::Audio::new(Sample::F32(sample::Type::Planar), room, ChannelLayout::STEREO);
        } else {
            self.resampled.set_samples(capacity);
        }
        resampler.run(decoded, self.resampled)?;
        let count = self.resampled.samples();
        let to_samples = |us: i64| us.saturating_mul(i64::from(SAMPLE_RATE)) / 1_000_000;
        let mapped = to_samples(source_us);
        let position = match *self.next_position {
            Some(next) if (mapped - next).abs() <= CONTINUITY_SAMPLES => next,
            _ => mapped,
        };
        *self.next_position = Some(position + count as i64);
        let position = position.saturating_add(to_samples(shift_us));
        // Sound mapped before the mix began is not played.
        let skip = usize::try_from(-position).unwrap_or(0).min(count);
        let start = u64::try_from(position.max(0)).unwrap_or(0);
        let (left, right) = (self.resampled.plane::<f32>(0), self.resampled.plane::<f32>(1));
        feed.write_sound(start, &left[skip..count], &right[skip..count]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::feed::Target;
    use super::super::geometry::Fill;
    use super::*;

    /// How many of `count` pictures at `source_fps` a mix at `fps` gets scaled.
    fn scaled(fps: u32, source_fps: i64, count: i64) -> u64 {
        let feed = Feed::new(0, 0);
        feed.set_target(Some(Target { size: (16, 8), fill: Fill::Cover }));
        let mut pacer = Pacer::new(fps);
        let at = |i: i64| i * 1_000_000 / source_fps;
        for i in 0..count {
            let mut decoded = picture::blank((32, 18));
            pacer.offer(&mut decoded, at(i), 0, &feed).expect("scales");
        }
        pacer.release(&feed).expect("scales");
        feed.with_picture(at(count - 1), |latest, _| latest.map_or(0, |p| p.seq + 1))
    }

    #[test]
    fn from_a_source_twice_as_fast_as_the_mix_every_other_picture_is_scaled() {
        // 30 output frames' worth, and the very first picture, which has no spacing to judge by.
        assert_eq!(scaled(15, 30, 60), 31);
    }

    #[test]
    fn a_source_as_fast_as_the_mix_or_slower_has_every_picture_scaled() {
        assert_eq!(scaled(30, 30, 60), 60);
        assert_eq!(scaled(30, 10, 20), 20);
        assert_eq!(scaled(15, 1, 3), 3);
    }
}
