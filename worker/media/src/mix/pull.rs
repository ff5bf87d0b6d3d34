//! One participant's input thread. For as long as the participant is in the roster it opens
//! their stream (again every retry interval after it fails), demuxes, decodes, scales each
//! picture straight to its pane's size and resamples the sound to the mix format, handing
//! both to the mixer through the participant's [`Feed`], timed on the mix clock.
//!
//! Timing: each connection maps source timestamps to the mix clock with one offset for
//! audio and video (lip sync is the source's), the smallest `arrival − dts` seen, so late
//! packets do not shift it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ffmpeg_next::{media, Error, Packet, Rescale};

use super::decode::{AudioIn, VideoIn};
use super::feed::{Clock, Feed};
use crate::input::{AllowedUrl, Read, Source};
use crate::mux::MICROS;
use crate::{InputSpec, Participant};

/// How long opening a stream reads to learn its streams: short, so a joiner shows soon.
/// A stream that turns up later is picked up when its first packet comes.
const ANALYZE_DURATION: Duration = Duration::from_millis(500);
/// A participant's media is handed on at least every 50 ms (the RTMP reader's batches): the
/// mix's jitter buffer is 300 ms.
const BATCH: Duration = Duration::from_millis(50);
/// A packet this much later than the mapping expects means the source's clock jumped back
/// (or it stalled for longer than anyone waits): the mapping starts afresh from it.
const REANCHOR_AFTER: Duration = Duration::from_secs(5);

/// A participant's running input thread.
pub(crate) struct Puller {
    feed: Arc<Feed>,
    thread: Option<JoinHandle<()>>,
}

impl Puller {
    /// Starts pulling `participant`'s stream into `feed`, for a mix of `fps` frames a second
    /// (`None`: audio only, so their video is left alone); the thread adds its CPU time (ns)
    /// to `cpu` as it ends.
    pub(crate) fn start(
        participant: &Participant,
        feed: Arc<Feed>,
        clock: Clock,
        fps: Option<u32>,
        cpu: Arc<AtomicU64>,
    ) -> Self {
        let url = match AllowedUrl::parse(&participant.input.url, participant.input.allow_file) {
            Ok(url) => url,
            Err(error) => {
                tracing::error!(user_id = %participant.user_id, %error, "the participant's stream cannot be opened");
                return Self { feed, thread: None };
            }
        };
        let input = participant.input.clone();
        let shared = Arc::clone(&feed);
        let spawned = std::thread::Builder::new().name(format!("mix-input-{}", feed.id)).spawn(move || {
            pull(&url, &input, &shared, clock, fps);
            let spent = u64::try_from(crate::ingest::thread_cpu_time().as_nanos()).unwrap_or(u64::MAX);
            cpu.fetch_add(spent, Ordering::Relaxed);
        });
        match spawned {
            Ok(thread) => Self { feed, thread: Some(thread) },
            Err(error) => {
                tracing::error!(user_id = %participant.user_id, %error, "cannot start an input thread");
                Self { feed, thread: None }
            }
        }
    }

    /// Tells the thread to close the stream and end (it does within moments).
    pub(crate) fn stop(&self) {
        self.feed.stop_flag().store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    /// Whether the thread has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the thread and waits for it.
    pub(crate) fn join(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("an input thread panicked");
            }
        }
    }
}

/// The thread: connect, stream, wait, reconnect… until stopped.
fn pull(url: &AllowedUrl, input: &InputSpec, feed: &Feed, clock: Clock, fps: Option<u32>) {
    while !feed.stopped() {
        match Source::open_with(url, input, ANALYZE_DURATION, BATCH, Some(Arc::clone(feed.stop_flag()))) {
            Ok(mut source) => match Connection::new(&source, fps) {
                Ok(mut connection) => {
                    let reason = connection.stream(&mut source, feed, clock);
                    tracing::info!(feed = feed.id, %reason, "a participant's stream stopped");
                }
                Err(error) => tracing::info!(feed = feed.id, %error, "a participant's stream has nothing to mix"),
            },
            Err(error) => tracing::debug!(feed = feed.id, %error, "a participant's stream is not there yet"),
        }
        let until = Instant::now() + input.retry_interval;
        while !feed.stopped() && Instant::now() < until {
            std::thread::park_timeout(until.saturating_duration_since(Instant::now()));
        }
    }
}

/// One open stream's decoders and timing.
struct Connection {
    video: Option<VideoIn>,
    audio: Option<AudioIn>,
    anchor: Anchor,
    /// Streams looked at and not taken (a second video, data, or no decoder).
    ignored: Vec<usize>,
    /// The mix's frame rate; `None`: audio only.
    fps: Option<u32>,
}

impl Connection {
    fn new(source: &Source, fps: Option<u32>) -> Result<Self, Error> {
        let mut connection = Self { video: None, audio: None, anchor: Anchor::default(), ignored: Vec::new(), fps };
        for index in source.video.into_iter().chain(source.audio) {
            connection.adopt(source, index);
        }
        if connection.video.is_none() && connection.audio.is_none() {
            return Err(Error::StreamNotFound);
        }
        Ok(connection)
    }

    /// Takes stream `index` as the video or the audio, if it is one and that is still missing.
    fn adopt(&mut self, source: &Source, index: usize) {
        self.ignored.push(index);
        let Some(stream) = source.context().stream(index) else { return };
        match stream.parameters().medium() {
            media::Type::Video if self.video.is_none() => {
                let Some(fps) = self.fps else { return };
                self.video = VideoIn::new(&stream, fps)
                    .map_err(
                        |error| tracing::warn!(%error, "the participant's video does not decode; showing their image"),
                    )
                    .ok();
            }
            media::Type::Audio if self.audio.is_none() => {
                self.audio = AudioIn::new(&stream)
                    .map_err(|error| tracing::warn!(%error, "the participant's audio does not decode; not mixed"))
                    .ok();
            }
            _ => return,
        }
        let taken = [self.video.as_ref().map(|v| v.index), self.audio.as_ref().map(|a| a.index)];
        if taken.contains(&Some(index)) {
            self.ignored.retain(|&i| i != index);
        }
    }

    /// Reads and hands on media until the source ends or the feed is stopped; says why it ended.
    fn stream(&mut self, source: &mut Source, feed: &Feed, clock: Clock) -> String {
        loop {
            if feed.stopped() {
                return "the participant left".to_owned();
            }
            match source.read() {
                Read::Packet(packet) => {
                    let known = [self.video.as_ref().map(|v| v.index), self.audio.as_ref().map(|a| a.index)];
                    if !known.contains(&Some(packet.stream())) && !self.ignored.contains(&packet.stream()) {
                        // Live FLV announces a stream with its first packet, maybe after probing.
                        self.adopt(source, packet.stream());
                    }
                    self.push(&packet, feed, clock);
                }
                Read::End(reason) => {
                    if let Some(video) = self.video.as_mut() {
                        let _ = video.finish(feed);
                    }
                    return reason;
                }
            }
        }
    }

    fn push(&mut self, packet: &Packet, feed: &Feed, clock: Clock) {
        let index = packet.stream();
        let is_video = self.video.as_ref().is_some_and(|v| v.index == index);
        let is_audio = self.audio.as_ref().is_some_and(|a| a.index == index);
        let time_base = match (&self.video, &self.audio) {
            (Some(video), _) if is_video => video.time_base,
            (_, Some(audio)) if is_audio => audio.time_base,
            _ => return,
        };
        let now_us = clock.now_us();
        feed.mark_media(now_us);
        if let Some(dts) = packet.dts().or(packet.pts()) {
            self.anchor.arrived(now_us, dts.rescale(time_base, MICROS));
        }
        let Some(offset_us) = self.anchor.offset_us else { return };
        let result = match (&mut self.video, &mut self.audio) {
            (Some(video), _) if is_video => video.push(packet, offset_us, feed),
            (_, Some(audio)) if is_audio => audio.push(packet, offset_us, feed),
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::debug!(feed = feed.id, %error, is_video, "skipping media that does not go through");
        }
    }
}

/// Maps one connection's source time to the mix clock (µs): `mix = source + offset`, the
/// offset being the smallest `arrival − dts` seen, so a packet that comes late (jitter) does
/// not move it, and one that comes early lowers it for good.
#[derive(Debug, Default)]
struct Anchor {
    offset_us: Option<i64>,
}

impl Anchor {
    /// A packet of decode time `dts_us` arrived at `arrival_us`.
    fn arrived(&mut self, arrival_us: i64, dts_us: i64) {
        let candidate = arrival_us.saturating_sub(dts_us);
        let reanchor_us = crate::mux::micros(REANCHOR_AFTER);
        self.offset_us = match self.offset_us {
            Some(offset) if candidate.saturating_sub(offset) <= reanchor_us => Some(offset.min(candidate)),
            _ => Some(candidate),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(arrivals: &[(i64, i64)]) -> Vec<i64> {
        let mut anchor = Anchor::default();
        arrivals
            .iter()
            .map(|&(arrival, dts)| {
                anchor.arrived(arrival, dts);
                anchor.offset_us.unwrap_or(i64::MIN)
            })
            .collect()
    }

    #[test]
    fn late_packets_do_not_move_the_mapping_and_early_ones_lower_it() {
        let seen = offsets(&[(1_000_000, 0), (1_150_000, 33_000), (1_050_000, 66_000), (1_090_000, 100_000)]);
        assert_eq!(seen, [1_000_000, 1_000_000, 984_000, 984_000]);
    }

    #[test]
    fn timestamps_at_the_ends_of_the_range_never_overflow_the_mapping() {
        let seen = offsets(&[(1_000_000, i64::MIN), (1_040_000, i64::MAX), (i64::MAX, i64::MIN), (i64::MIN, i64::MAX)]);
        assert_eq!(seen, [i64::MAX, -(i64::MAX - 1_040_000), i64::MAX, i64::MIN]);
    }

    #[test]
    fn a_source_whose_clock_jumps_back_is_mapped_afresh() {
        let seen = offsets(&[(1_000_000, 90_000_000), (1_040_000, 90_040_000), (1_080_000, 0)]);
        assert_eq!(seen[..2], [-89_000_000, -89_000_000]);
        assert_eq!(seen[2], 1_080_000);
    }
}
