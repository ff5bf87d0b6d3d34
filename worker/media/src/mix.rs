//! The mixer: every participant of a room composed into one picture with one soundtrack.
//!
//! One input thread per participant opens, demuxes, decodes, scales (straight to its pane's
//! size) and resamples; this thread composes the canvas, mixes the sound, encodes and
//! writes. The output runs on the wall clock: frame n is composed at start + n/fps and
//! timed n/fps, and AAC frames of 1024 samples are counted the same way, so picture and
//! sound cannot drift apart. Inputs are shown [`feed::JITTER_BUFFER`] behind the clock.
//!
//! A pause ([`MixCommand::Pause`]) holds the output, not the room: the inputs stay connected
//! and their sound keeps being mixed (and dropped), so a resume shows the room at once, with
//! no reconnection and no decoder waiting for a keyframe. Held frames are skipped, not
//! timed: the files go on with no hole, from a forced keyframe (a new HLS segment flagged
//! as a discontinuity). Sound is skipped to match the skipped picture within half an AAC
//! frame over the whole recording, so pauses never add up to an A/V offset.

mod compose;
mod decode;
mod encode;
mod feed;
mod geometry;
mod picture;
mod pull;
mod room;
mod seating;
mod sound;
mod speakers;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::mux::{micros, Reporter};
use crate::outputs::Outputs;
use crate::recorder::init_ffmpeg;
use crate::{Canvas, Mark, MediaError, MixCommand, MixSpec, Output, Report};
use encode::Encoders;
use feed::{Clock, JITTER_BUFFER};
use room::Room;
use sound::{Limiter, FRAME_SAMPLES, SAMPLE_RATE};
use speakers::{Meter, Speakers};

/// `Output::Alive` is sent at most this often while any participant sends media.
const ALIVE_EVERY: Duration = Duration::from_secs(1);
/// Keyframe spacing when no HLS slice asks for one (MP4 only).
const DEFAULT_KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
/// Behind the clock by more than this, video frames are skipped (sound never is) until the
/// mixer has caught up.
const MAX_LAG: Duration = Duration::from_millis(500);
/// The length of one AAC frame of the mix.
const SOUND_FRAME: Duration = Duration::from_nanos(FRAME_SAMPLES as u64 * 1_000_000_000 / SAMPLE_RATE as u64);
/// No participant's media for this long is a gap in the mix (it shows the background).
const GAP_AFTER: Duration = Duration::from_secs(1);

/// Records a room's mix until stopped.
#[derive(Debug)]
pub struct Mixer {
    spec: MixSpec,
}

impl Mixer {
    /// A mixer with `spec`; nothing is opened until [`Mixer::run`].
    pub fn new(spec: MixSpec) -> Self {
        Self { spec }
    }

    /// Mixes on the calling thread until `MixCommand::Stop` or a fatal error; reports to `out`.
    pub fn run(self, commands: Receiver<MixCommand>, out: impl Report) -> Result<(), MediaError> {
        init_ffmpeg()?;
        std::fs::create_dir_all(&self.spec.spool_dir).map_err(MediaError::Spool)?;
        let report = Reporter::new(out);
        let mut outputs = Outputs::new(self.spec.hls, self.spec.mp4, &self.spec.spool_dir);
        let inputs_cpu = Arc::new(AtomicU64::new(0));
        let mut pane_seconds = 0.0;
        let mixed = Session::open(&self.spec, Arc::clone(&inputs_cpu)).and_then(|mut session| {
            let mixed = session.mix(&commands, &report, &mut outputs);
            // The encoders hold the last frames: whatever happened, get them into the files.
            let flushed = session.encoders.finish(&mut outputs, &report);
            pane_seconds = session.pane_seconds;
            mixed.and(flushed)
        });
        // The session is gone, its input threads joined: each has added its CPU time.
        let cpu = crate::ffi::thread_cpu_time() + Duration::from_nanos(inputs_cpu.load(Ordering::Relaxed));
        // Metering; a runner that is gone shows up in the closing below.
        let _ = report.send(Output::Spent { cpu, pane_seconds });
        match mixed.and_then(|()| outputs.close(SystemTime::now(), &report)) {
            Ok(()) => report.send(Output::Finished),
            Err(MediaError::ChannelClosed) => Err(MediaError::ChannelClosed),
            Err(error) => {
                tracing::error!(error = &error as &dyn std::error::Error, "mixing failed");
                // Best effort: leave what was recorded playable and announced.
                if let Err(close) = outputs.close(SystemTime::now(), &report) {
                    tracing::warn!(
                        error = &close as &dyn std::error::Error,
                        "closing the files after a failure failed"
                    );
                }
                let _ = report.send(Output::Finished);
                Err(error)
            }
        }
    }
}

/// A running mix: the room, the encoders, and the output's clock.
struct Session {
    clock: Clock,
    room: Room,
    encoders: Encoders,
    /// Frames per second of the picture; `None`: audio only.
    fps: Option<u32>,
    /// The next video frame and the next AAC frame.
    next_frame: i64,
    next_sound_frame: u64,
    sound: Mixdown,
    speakers: Speakers,
    last_alive: Option<Instant>,
    /// The output is held (the tenant paused).
    held: bool,
    /// When the hold began.
    held_since: Instant,
    /// Video frames and AAC frames held so far: the files' time is the clock's minus these.
    skipped_frames: i64,
    skipped_sound_frames: u64,
    /// Sum over the frames produced of the panes showing a participant, times a frame's
    /// duration: metering's pane-seconds.
    pane_seconds: f64,
}

impl Session {
    /// A session whose input threads add their CPU time (ns) to `inputs_cpu` as they end.
    fn open(spec: &MixSpec, inputs_cpu: Arc<AtomicU64>) -> Result<Self, MediaError> {
        let canvas = spec.canvas.map(even_canvas);
        let key_interval = spec.hls.map_or(DEFAULT_KEYFRAME_INTERVAL, |hls| hls.slice);
        let encoders = Encoders::open(canvas, key_interval)?;
        let clock = Clock::start();
        let room = Room::new(clock, canvas, spec.layout.clone(), inputs_cpu);
        Ok(Self {
            clock,
            room,
            encoders,
            fps: canvas.map(|c| c.fps.max(1)),
            next_frame: 0,
            next_sound_frame: 0,
            sound: Mixdown::new(),
            speakers: Speakers::default(),
            last_alive: None,
            held: false,
            held_since: Instant::now(),
            skipped_frames: 0,
            skipped_sound_frames: 0,
            pane_seconds: 0.0,
        })
    }

    /// Mixes until stopped (or the runner is gone): waits for the next output frame's time,
    /// taking commands meanwhile, then produces it.
    fn mix(
        &mut self,
        commands: &Receiver<MixCommand>,
        report: &Reporter,
        outputs: &mut Outputs,
    ) -> Result<(), MediaError> {
        outputs.resume(self.encoders.tracks(), Duration::ZERO, SystemTime::now(), report)?;
        loop {
            let tick_us = self.next_tick_us();
            loop {
                let wait = self.clock.instant(tick_us).saturating_duration_since(Instant::now());
                let command = if wait.is_zero() {
                    match commands.try_recv() {
                        Ok(command) => command,
                        Err(TryRecvError::Empty) => break,
                        // A runner that dropped its sender can no longer stop us: finish now.
                        Err(TryRecvError::Disconnected) => return Ok(()),
                    }
                } else {
                    match commands.recv_timeout(wait) {
                        Ok(command) => command,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                };
                match command {
                    MixCommand::Stop => return Ok(()),
                    MixCommand::Layout(layout) => self.room.set_layout(layout),
                    MixCommand::Participants(participants) => {
                        let play_position = self.next_sound_frame * FRAME_SAMPLES as u64;
                        self.room.set_participants(participants, play_position);
                    }
                    MixCommand::Pause if !self.held => {
                        self.held = true;
                        self.held_since = Instant::now();
                        outputs.mark_at(micros(self.position()), Mark::Pause);
                        report.send(Output::Paused { at: SystemTime::now(), position: self.position() })?;
                    }
                    MixCommand::Resume if self.held => {
                        self.held = false;
                        self.encoders.force_keyframe();
                        outputs.break_at_next_cut();
                        outputs.mark_at(micros(self.position()), Mark::Resume { paused: self.held_since.elapsed() });
                        report.send(Output::Resumed { at: SystemTime::now(), position: self.position() })?;
                    }
                    MixCommand::Pause | MixCommand::Resume => {}
                }
            }
            // What changed shows from this frame on.
            for mark in self.room.take_marks() {
                outputs.mark_at(tick_us - self.held_us(), mark);
            }
            self.tick(tick_us, outputs, report)?;
            self.report_alive(report)?;
        }
    }

    /// When the next output frame is due, in µs on the mix clock.
    fn next_tick_us(&self) -> i64 {
        match self.fps {
            Some(fps) => self.next_frame * 1_000_000 / i64::from(fps),
            None => sound_time_us(self.next_sound_frame + 1),
        }
    }

    /// Where the output stands on the files' timeline: the clock's time less what was held.
    fn position(&self) -> Duration {
        let us = match self.fps {
            Some(fps) => (self.next_frame - self.skipped_frames) * 1_000_000 / i64::from(fps),
            None => sound_time_us(self.next_sound_frame - self.skipped_sound_frames),
        };
        Duration::from_micros(u64::try_from(us).unwrap_or(0))
    }

    /// How far the files' timeline is behind the mix clock: the time held so far.
    fn held_us(&self) -> i64 {
        match self.fps {
            Some(fps) => self.skipped_frames * 1_000_000 / i64::from(fps),
            None => sound_time_us(self.skipped_sound_frames),
        }
    }

    /// Whether the next AAC frame is held: while paused without picture; with a picture,
    /// whenever the sound held so far is more than half a frame short of the picture held.
    fn sound_held(&self) -> bool {
        match self.fps {
            None => self.held,
            Some(fps) => {
                let picture_us = self.skipped_frames * 1_000_000 / i64::from(fps);
                let half_frame_us = sound_time_us(1) / 2;
                sound_time_us(self.skipped_sound_frames) + half_frame_us < picture_us
            }
        }
    }

    /// Produces the video frame due at `tick_us` and the sound up to it.
    fn tick(&mut self, tick_us: i64, outputs: &mut Outputs, report: &Reporter) -> Result<(), MediaError> {
        if self.fps.is_some() {
            let lag_us = self.clock.now_us() - tick_us;
            if self.held {
                self.skipped_frames += 1;
            } else if lag_us > micros(MAX_LAG) {
                tracing::warn!(frame = self.next_frame, lag_us, "the mixer is behind the clock; skipping a frame");
                report.quality().late_frame_skipped();
            } else if let Some(canvas) = self.room.compose(tick_us - micros(JITTER_BUFFER)) {
                let canvas = canvas.map_err(|source| MediaError::Ffmpeg { context: "compose the canvas", source })?;
                self.encoders.video(canvas, self.next_frame - self.skipped_frames, outputs, report)?;
                if let Some(fps) = self.fps {
                    self.pane_seconds += self.room.panes_shown() as f64 / f64::from(fps);
                }
            }
            self.next_frame += 1;
        }
        self.tally(tick_us, report);
        while sound_time_us(self.next_sound_frame + 1) <= tick_us {
            let position = self.next_sound_frame * FRAME_SAMPLES as u64;
            // Mixed even when held: the participants' sound is played (and let go) on time.
            let held = self.sound_held();
            let (left, right) = self.sound.mix(&self.room, position);
            if held {
                self.skipped_sound_frames += 1;
            } else {
                self.encoders.audio(left, right, outputs, report)?;
                let at_us = sound_time_us(self.next_sound_frame);
                if let Some((since_us, speaker)) = self.speakers.observe(at_us, SOUND_FRAME, self.sound.meter.levels())
                {
                    outputs.mark_at(since_us - self.held_us(), Mark::Speaker(speaker));
                }
            }
            self.next_sound_frame += 1;
        }
        Ok(())
    }

    /// Counts what the quality report of the files open at `tick_us` tells.
    fn tally(&mut self, tick_us: i64, report: &Reporter) {
        let mut quality = report.quality();
        let (dropped, repeated) = self.room.take_dropped_and_repeated();
        quality.dropped(dropped);
        quality.duplicated(repeated);
        for (sound_us, pictures_us) in self.room.shifts_us() {
            quality.shifted(sound_us, pictures_us);
        }
        // Media shows the jitter buffer after it arrives: so do gaps. Before any media came
        // the recording has not begun to receive: waiting for it is no gap.
        let Some(last_media_us) = self.room.last_media_us() else { return };
        let silent_since = last_media_us + micros(JITTER_BUFFER);
        if tick_us - silent_since > micros(GAP_AFTER) {
            quality.gap_begins(silent_since);
        } else {
            quality.gap_ends(silent_since);
        }
    }

    fn report_alive(&mut self, report: &Reporter) -> Result<(), MediaError> {
        let now = Instant::now();
        if self.last_alive.is_some_and(|last| now - last < ALIVE_EVERY) {
            return Ok(());
        }
        let recent = self.room.last_media_us().is_some_and(|at| self.clock.now_us() - at < micros(ALIVE_EVERY));
        if recent {
            report.send(Output::Alive)?;
            self.last_alive = Some(now);
        }
        Ok(())
    }
}

/// When AAC frame `index` starts, in µs since the mix began.
fn sound_time_us(index: u64) -> i64 {
    let samples = index * FRAME_SAMPLES as u64;
    i64::try_from(samples * 1_000_000 / u64::from(SAMPLE_RATE)).unwrap_or(i64::MAX)
}

/// The canvas with even sides, as 4:2:0 needs.
fn even_canvas(canvas: Canvas) -> Canvas {
    Canvas { width: (canvas.width & !1).max(2), height: (canvas.height & !1).max(2), ..canvas }
}

/// Sums the participants' sound frame by frame and limits it.
struct Mixdown {
    left: Vec<f32>,
    right: Vec<f32>,
    limiter: Limiter,
    /// Each participant's level in the last frame.
    meter: Meter,
}

impl Mixdown {
    fn new() -> Self {
        Self {
            left: vec![0.0; FRAME_SAMPLES],
            right: vec![0.0; FRAME_SAMPLES],
            limiter: Limiter::new(SAMPLE_RATE),
            meter: Meter::default(),
        }
    }

    /// The mixed frame of sound starting at output sample `position`. The limiter delays
    /// what it is given by its look-ahead, so it is given the sound that far ahead: what
    /// leaves it is in time with the pictures.
    fn mix(&mut self, room: &Room, position: u64) -> (&[f32], &[f32]) {
        self.left.fill(0.0);
        self.right.fill(0.0);
        room.play_into(position + self.limiter.delay_samples(), &mut self.left, &mut self.right, &mut self.meter);
        self.limiter.process(&mut self.left, &mut self.right);
        (&self.left, &self.right)
    }
}
