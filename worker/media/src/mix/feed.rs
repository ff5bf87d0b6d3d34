//! What one participant's input thread hands to the mixer, and the clock they share.
//!
//! Pictures arrive already scaled for the participant's pane and wait in a short queue,
//! each stamped with the time on the mix clock its source timestamp maps to; the mixer shows
//! the latest one at least [`JITTER_BUFFER`] old. Sound waits in a [`Ring`] at the output
//! sample position it is to be played at (its mapped time plus the same buffer), so pictures
//! and sound leave together. Frames travel by moving buffers, never by copying them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ffmpeg_next::frame;

use super::geometry::Fill;
use super::sound::Ring;

/// How far behind the wall clock the mix plays its inputs: network and decoding jitter up to
/// this much does not show. Pictures and sound are delayed alike.
pub(crate) const JITTER_BUFFER: Duration = Duration::from_millis(300);
/// A participant whose pictures stop for this long shows their image instead of the last one.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Most pictures waiting per participant (a second at 60 fps): the oldest go first. Pictures
/// never map later than they arrive, so only a stalled mixer lets the queue grow past the
/// jitter buffer's worth.
const MAX_QUEUED_PICTURES: usize = 60;
/// Most spare picture buffers kept per participant (the jitter buffer's worth at 50 fps).
const MAX_SPARE_PICTURES: usize = 16;

/// The mix's time: microseconds since the mix began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock starting now.
    pub(crate) fn start() -> Self {
        Self { epoch: Instant::now() }
    }

    /// Microseconds since the start.
    pub(crate) fn now_us(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    /// The instant `us` after the start.
    pub(crate) fn instant(&self, us: i64) -> Instant {
        self.epoch + Duration::from_micros(u64::try_from(us).unwrap_or(0))
    }
}

/// The pane a participant's pictures are scaled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub size: (u32, u32),
    pub fill: Fill,
}

/// A picture scaled for `target`, to be shown from `at_us` on the mix clock.
pub(crate) struct Picture {
    pub at_us: i64,
    /// Counts the participant's pictures: the mixer repaints a pane only for a new one.
    pub seq: u64,
    pub target: Target,
    pub frame: frame::Video,
    /// Whether it has been on screen.
    shown: bool,
}

#[derive(Default)]
struct Pictures {
    /// Where the mixer shows this participant now; `None`: nowhere, so nothing is scaled.
    target: Option<Target>,
    /// Oldest first; the front one is on screen once due.
    queue: VecDeque<Picture>,
    /// Buffers of pictures no longer needed, for the next ones.
    spare: Vec<frame::Video>,
    next_seq: u64,
}

impl Pictures {
    /// Keeps `frame`'s buffer for a later picture, unless enough are kept already.
    fn keep_spare(&mut self, frame: frame::Video) {
        if self.spare.len() < MAX_SPARE_PICTURES {
            self.spare.push(frame);
        }
    }
}

/// One participant's media on its way to the mixer.
pub(crate) struct Feed {
    /// Tells feeds apart (user ids may come back with a new input).
    pub id: u64,
    pictures: Mutex<Pictures>,
    sound: Mutex<Ring>,
    /// When media last arrived, on the mix clock (`i64::MIN`: never).
    last_media_us: AtomicI64,
    /// How much later than they map to this participant's pictures show, on average: the
    /// mix shows a picture from the first output frame at or after its time, so a picture
    /// lands up to a frame late. Their sound is played as much later, so both leave
    /// together. Zero until a picture has been handed over.
    picture_lag_us: AtomicI64,
    /// Where the pictures show relative to their source time (the connection's mapping plus
    /// their average lag), and where the sound is played relative to its own: the sound
    /// follows the pictures in steps, so the two differ by what the quality report calls
    /// the A/V offset. `i64::MIN`: not yet.
    picture_shift_us: AtomicI64,
    sound_shift_us: AtomicI64,
    /// Pictures let go without ever being shown, not yet counted by the mixer.
    dropped: AtomicU64,
    /// Set to make the input thread close its source and end.
    stop: Arc<AtomicBool>,
}

impl Feed {
    /// An empty feed whose sound starts at output sample `play_position`.
    pub(crate) fn new(id: u64, play_position: u64) -> Self {
        Self {
            id,
            pictures: Mutex::new(Pictures::default()),
            sound: Mutex::new(Ring::new(play_position)),
            last_media_us: AtomicI64::new(i64::MIN),
            picture_lag_us: AtomicI64::new(0),
            picture_shift_us: AtomicI64::new(i64::MIN),
            sound_shift_us: AtomicI64::new(i64::MIN),
            dropped: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that stops the input thread (its blocking calls watch it too).
    pub(crate) fn stop_flag(&self) -> &Arc<AtomicBool> {
        &self.stop
    }

    /// Whether the input thread is to end.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Media arrived at `now_us`.
    pub(crate) fn mark_media(&self, now_us: i64) {
        self.last_media_us.store(now_us, Ordering::Relaxed);
    }

    /// When media last arrived, if ever.
    pub(crate) fn last_media_us(&self) -> Option<i64> {
        Some(self.last_media_us.load(Ordering::Relaxed)).filter(|&us| us != i64::MIN)
    }

    /// How much later than they map to this participant's pictures show (see the field).
    pub(crate) fn picture_lag_us(&self) -> i64 {
        self.picture_lag_us.load(Ordering::Relaxed)
    }

    /// How far the sound and the pictures are moved from their source time, once both came.
    pub(crate) fn shifts_us(&self) -> Option<(i64, i64)> {
        let sound = self.sound_shift_us.load(Ordering::Relaxed);
        let pictures = self.picture_shift_us.load(Ordering::Relaxed);
        (sound != i64::MIN && pictures != i64::MIN).then_some((sound, pictures))
    }

    /// How many pictures were let go unseen since the last call.
    pub(crate) fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    // The input thread's side.

    /// This participant's sound is to follow their pictures' lag `lag_us`; the pictures
    /// show `shift_us` after their source time.
    pub(crate) fn set_picture_lag(&self, lag_us: i64, shift_us: i64) {
        self.picture_lag_us.store(lag_us, Ordering::Relaxed);
        self.picture_shift_us.store(shift_us, Ordering::Relaxed);
    }

    /// This participant's sound is played `shift_us` after its source time.
    pub(crate) fn set_sound_shift(&self, shift_us: i64) {
        self.sound_shift_us.store(shift_us, Ordering::Relaxed);
    }

    /// Where to scale the next picture for, and a spare buffer to scale it into; `None`
    /// when the participant is not shown.
    pub(crate) fn prepare_picture(&self) -> Option<(Target, Option<frame::Video>)> {
        let mut pictures = lock(&self.pictures);
        let target = pictures.target?;
        Some((target, pictures.spare.pop()))
    }

    /// Queues `frame`, scaled for `target`, to be shown from `at_us`.
    pub(crate) fn push_picture(&self, at_us: i64, target: Target, frame: frame::Video) {
        let mut pictures = lock(&self.pictures);
        // A reconnected source may map a little before what is queued: keep the queue in order.
        let at_us = pictures.queue.back().map_or(at_us, |last| at_us.max(last.at_us));
        let seq = pictures.next_seq;
        pictures.next_seq += 1;
        if pictures.queue.len() >= MAX_QUEUED_PICTURES {
            if let Some(oldest) = pictures.queue.pop_front() {
                self.dropped.fetch_add(u64::from(!oldest.shown), Ordering::Relaxed);
                pictures.keep_spare(oldest.frame);
            }
        }
        pictures.queue.push_back(Picture { at_us, seq, target, frame, shown: false });
    }

    /// Gives a buffer back unused.
    pub(crate) fn recycle(&self, frame: frame::Video) {
        lock(&self.pictures).keep_spare(frame);
    }

    /// Puts sound to be played from output sample `position` on.
    pub(crate) fn write_sound(&self, position: u64, left: &[f32], right: &[f32]) {
        lock(&self.sound).write(position, left, right);
    }

    // The mixer's side.

    /// Shows this participant in a pane of `target` from now on (`None`: not shown, and
    /// their pictures are let go).
    pub(crate) fn set_target(&self, target: Option<Target>) {
        let mut pictures = lock(&self.pictures);
        pictures.target = target;
        if target.is_none() {
            pictures.queue.clear();
            pictures.spare.clear();
        }
    }

    /// Calls `show` with the picture on screen at `due_us`: the latest one due, unless it is
    /// older than [`STALL_TIMEOUT`]; `None` if there is none. Older pictures are let go.
    /// The second argument says whether the picture was shown before (a repeat).
    pub(crate) fn with_picture<R>(&self, due_us: i64, show: impl FnOnce(Option<&Picture>, bool) -> R) -> R {
        let mut guard = lock(&self.pictures);
        let pictures = &mut *guard;
        while pictures.queue.get(1).is_some_and(|next| next.at_us <= due_us) {
            if let Some(done) = pictures.queue.pop_front() {
                self.dropped.fetch_add(u64::from(!done.shown), Ordering::Relaxed);
                pictures.keep_spare(done.frame);
            }
        }
        let stall_us = i64::try_from(STALL_TIMEOUT.as_micros()).unwrap_or(i64::MAX);
        let current =
            pictures.queue.front_mut().filter(|p| p.at_us <= due_us && due_us.saturating_sub(p.at_us) <= stall_us);
        let repeat = current.as_ref().is_some_and(|p| p.shown);
        if let Some(current) = current {
            current.shown = true;
            show(Some(current), repeat)
        } else {
            show(None, false)
        }
    }

    /// Adds the sound from output sample `position` on into `left`/`right`.
    pub(crate) fn play_into(&self, position: u64, left: &mut [f32], right: &mut [f32]) {
        lock(&self.sound).play_into(position, left, right);
    }
}

/// Locks `mutex`; a panic elsewhere while it was held left plain data behind, still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::super::picture;
    use super::*;

    const TARGET: Target = Target { size: (4, 2), fill: Fill::Cover };

    fn feed_with(times: &[i64]) -> Feed {
        let feed = Feed::new(1, 0);
        feed.set_target(Some(TARGET));
        for &at in times {
            feed.push_picture(at, TARGET, picture::blank(TARGET.size));
        }
        feed
    }

    fn shown(feed: &Feed, due_us: i64) -> Option<i64> {
        feed.with_picture(due_us, |p, _| p.map(|p| p.at_us))
    }

    #[test]
    fn the_latest_picture_that_is_due_is_shown_and_held() {
        let feed = feed_with(&[0, 33_000, 66_000, 100_000]);
        assert_eq!(shown(&feed, -1), None, "nothing is due yet");
        assert_eq!(shown(&feed, 50_000), Some(33_000));
        assert_eq!(shown(&feed, 1_000_000), Some(100_000), "the last picture holds");
    }

    #[test]
    fn a_stalled_participant_stops_showing_their_last_picture_after_the_timeout() {
        let feed = feed_with(&[0]);
        let stall_us = STALL_TIMEOUT.as_micros() as i64;
        assert_eq!(shown(&feed, stall_us), Some(0));
        assert_eq!(shown(&feed, stall_us + 1), None);
    }

    #[test]
    fn pictures_stay_in_time_order_and_their_buffers_come_back() {
        let feed = feed_with(&[100, 50]);
        assert_eq!(shown(&feed, 100), Some(100));
        assert!(feed.prepare_picture().is_some_and(|(_, spare)| spare.is_some()), "the passed picture's buffer");
    }

    #[test]
    fn a_participant_who_is_not_shown_gets_nothing_scaled() {
        let feed = Feed::new(1, 0);
        assert!(feed.prepare_picture().is_none());
    }
}
