//! The recorder: one input, its outputs, one thread.
//!
//! It alternates between two phases until stopped: *waiting* (no source; retry every
//! `retry_interval`, close files whose merge window passed) and *streaming* (read, remux or
//! transcode, write). Each connection's timestamps are shifted to start right where the
//! written media ends, so a file continued after a pause has no gap and no overlap.
//!
//! The tenant's pause ([`Command::Pause`]) holds the recording the same way a source that
//! went away does, by our choice: the written media is made complete, packets are read and
//! dropped, and on resume the next keyframe continues the files where they end. Unlike a
//! source's absence, a hold never ends a file, and its time does not count towards the
//! merge window.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use ffmpeg_next::{self as ffmpeg, Rescale};

use crate::input::{AllowedUrl, Read, Source};
use crate::mux::Reporter;
use crate::outputs::Outputs;
use crate::pipeline::Pipeline;
use crate::quality::ReadAhead;
use crate::timeline::Link;
use crate::{Command, InputSpec, Mark, MediaError, Output, RecordSpec, Report};

/// `Output::Alive` is sent at most this often while packets arrive.
const ALIVE_EVERY: Duration = Duration::from_secs(1);

/// Records one participant stream until stopped.
#[derive(Debug)]
pub struct Recorder {
    input: InputSpec,
    spec: RecordSpec,
}

/// How a connection to the source ended.
enum Ended {
    /// The runner asked to stop.
    Stopped,
    /// The source ended or failed; its last media arrived then (`None`: none came at all).
    Lost { reason: String, last_media: Option<(SystemTime, Instant)> },
}

/// The source is away: since when, and whether the runner has been told.
struct Pause {
    since: SystemTime,
    at: Instant,
    announced: bool,
    /// Time of the absence the recording was held anyway (not counted towards the merge window).
    held_for: Duration,
}

impl Pause {
    fn new(since: SystemTime, at: Instant, announced: bool) -> Self {
        Self { since, at, announced, held_for: Duration::ZERO }
    }

    /// How long the source has been away while the recording was not held.
    fn away(&self, hold: &Hold) -> Duration {
        let away = self.at.elapsed();
        let holding = hold.since.map_or(Duration::ZERO, |since| since.elapsed().min(away));
        away.saturating_sub(self.held_for + holding)
    }
}

/// The tenant's pause: since when recording is held, if it is.
#[derive(Default)]
struct Hold {
    since: Option<Instant>,
}

impl Hold {
    fn held(&self) -> bool {
        self.since.is_some()
    }
}

/// An open source and the path its packets take.
struct Connection {
    source: Source,
    pipeline: Pipeline,
}

impl Recorder {
    /// A recorder for `input` with `spec`; nothing is opened until [`Recorder::run`].
    pub fn new(input: InputSpec, spec: RecordSpec) -> Self {
        Self { input, spec }
    }

    /// Records on the calling thread until `Command::Stop` or a fatal error; reports to `out`.
    pub fn run(self, commands: Receiver<Command>, out: impl Report) -> Result<(), MediaError> {
        let url = AllowedUrl::parse(&self.input.url, self.input.allow_file)?;
        init_ffmpeg()?;
        std::fs::create_dir_all(&self.spec.spool_dir).map_err(MediaError::Spool)?;
        let report = Reporter::new(out);
        let mut outputs = Outputs::new(self.spec.hls, self.spec.mp4, &self.spec.spool_dir);
        let recorded = self.record(&url, &commands, &report, &mut outputs);
        // Metering; a runner that is gone shows up in the closing below.
        let _ = report.send(Output::Spent { cpu: crate::ingest::thread_cpu_time(), pane_seconds: 0.0 });
        match recorded.and_then(|ended_at| outputs.close(ended_at, &report)) {
            Ok(()) => report.send(Output::Finished),
            Err(MediaError::ChannelClosed) => Err(MediaError::ChannelClosed),
            Err(error) => {
                tracing::error!(error = &error as &dyn std::error::Error, "recording failed");
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

    /// Connects, streams, waits, reconnects… until stopped; returns when the media ended.
    fn record(
        &self,
        url: &AllowedUrl,
        commands: &Receiver<Command>,
        report: &Reporter,
        outputs: &mut Outputs,
    ) -> Result<SystemTime, MediaError> {
        let mut pause = Pause::new(SystemTime::now(), Instant::now(), false);
        let mut hold = Hold::default();
        let mut next_attempt = Instant::now();
        // Whether media came before: then a connection is the source coming back.
        let mut came_before = false;
        loop {
            let reconnected = self.reconnect(url, commands, report, outputs, (&mut pause, &mut hold), next_attempt)?;
            let Some(connection) = reconnected else { return Ok(pause.since) };
            let away = pause.away(&hold);
            outputs.resume(connection.pipeline.tracks(), away, pause.since, report)?;
            // A file still open has a gap here; a file opened next starts with the join.
            outputs.mark(if came_before { Mark::Gap { away } } else { Mark::Join(None) });
            match self.stream(connection, commands, report, outputs, &mut hold)? {
                Ended::Stopped => return Ok(SystemTime::now()),
                Ended::Lost { reason, last_media: Some((since, at)) } => {
                    tracing::info!(%reason, "the source stopped");
                    came_before = true;
                    report.send(Output::Waiting { since, reason })?;
                    pause = Pause::new(since, at, true);
                    next_attempt = Instant::now() + self.input.retry_interval;
                }
                // Opened but sent nothing: the pause simply goes on.
                Ended::Lost { reason, last_media: None } => {
                    if !pause.announced {
                        report.send(Output::Waiting { since: pause.since, reason })?;
                        pause.announced = true;
                    }
                    next_attempt = Instant::now() + self.input.retry_interval;
                }
            }
        }
    }

    /// Waits for the source to come back, closing files whose merge window passes meanwhile
    /// (not while held). `None` when stopped first.
    fn reconnect(
        &self,
        url: &AllowedUrl,
        commands: &Receiver<Command>,
        report: &Reporter,
        outputs: &mut Outputs,
        (pause, hold): (&mut Pause, &mut Hold),
        mut next_attempt: Instant,
    ) -> Result<Option<Connection>, MediaError> {
        loop {
            outputs.expire(pause.away(hold), pause.since, report)?;
            if Instant::now() >= next_attempt {
                match self.connect(url) {
                    Ok(connection) => return Ok(Some(connection)),
                    Err(reason) if !pause.announced => {
                        tracing::info!(%reason, "waiting for the source");
                        report.send(Output::Waiting { since: pause.since, reason })?;
                        pause.announced = true;
                    }
                    Err(reason) => tracing::debug!(%reason, "the source is still away"),
                }
                next_attempt = Instant::now() + self.input.retry_interval;
            }
            let mut wait = next_attempt.saturating_duration_since(Instant::now());
            if let Some(expiry) = outputs.until_expiry(pause.away(hold)).filter(|_| !hold.held()) {
                wait = wait.min(expiry);
            }
            match commands.recv_timeout(wait) {
                // A runner that dropped its sender can no longer stop us: finish cleanly now.
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return Ok(None),
                // The source is away: what was written is complete already.
                Ok(Command::Pause) if !hold.held() => {
                    hold.since = Some(Instant::now());
                    outputs.mark(Mark::Pause);
                    report.send(Output::Paused { at: SystemTime::now(), position: position(outputs) })?;
                }
                Ok(Command::Resume) => {
                    if let Some(since) = hold.since.take() {
                        pause.held_for += since.elapsed().min(pause.at.elapsed());
                        outputs.mark(Mark::Resume { paused: since.elapsed() });
                        report.send(Output::Resumed { at: SystemTime::now(), position: position(outputs) })?;
                    }
                }
                Ok(Command::Pause) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn connect(&self, url: &AllowedUrl) -> Result<Connection, String> {
        let started = Instant::now();
        let source = Source::open(url, &self.input).map_err(|error| format!("cannot open the stream: {error}"))?;
        let (opened_in_ms, packets) = (started.elapsed().as_millis() as u64, source.packets_from());
        tracing::info!(opened_in_ms, packets, "the source is open");
        let pipeline = Pipeline::new(&source, &self.spec).map_err(|error| error.to_string())?;
        Ok(Connection { source, pipeline })
    }

    /// Records from `connection` until the source ends or the runner says stop; while held,
    /// reads and drops.
    fn stream(
        &self,
        connection: Connection,
        commands: &Receiver<Command>,
        report: &Reporter,
        outputs: &mut Outputs,
        hold: &mut Hold,
    ) -> Result<Ended, MediaError> {
        let Connection { mut source, mut pipeline } = connection;
        let mut tracks = pipeline.tracks().clone();
        // The source's own picture size (the tracks' may be scaled).
        let size = source.video.filter(|_| tracks.has_video()).and_then(|index| source.context().stream(index)).map(
            |stream| {
                let info = crate::ffi::describe(&stream.parameters());
                (info.width, info.height)
            },
        );
        report.quality().input_opened(outputs.end_us(), size);
        // A file continued after a pause counted the pause as a gap (see `Outputs::resume`).
        let mut read_ahead = outputs.is_open().then(ReadAhead::default);
        let mut link = Link::new();
        let mut batch = Vec::new();
        let mut last_alive: Option<Instant> = None;
        let mut last_media = None;
        // Whether the pipeline was drained by a pause (its encoders cannot take more).
        let mut drained = false;
        loop {
            match commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                    pipeline.drain(&mut batch)?;
                    link.deliver(&mut batch, &tracks, outputs, report)?;
                    return Ok(Ended::Stopped);
                }
                Ok(Command::Pause) if !hold.held() => {
                    // As when the source stops: everything written complete and announced.
                    pipeline.drain(&mut batch)?;
                    link.deliver(&mut batch, &tracks, outputs, report)?;
                    outputs.pause(report)?;
                    drained = true;
                    hold.since = Some(Instant::now());
                    outputs.mark(Mark::Pause);
                    report.send(Output::Paused { at: SystemTime::now(), position: position(outputs) })?;
                }
                Ok(Command::Resume) if hold.held() => {
                    if drained {
                        pipeline = match Pipeline::new(&source, &self.spec) {
                            Ok(pipeline) => pipeline,
                            Err(error) => return Ok(Ended::Lost { reason: error.to_string(), last_media }),
                        };
                        tracks = pipeline.tracks().clone();
                        drained = false;
                    }
                    // A new mapping: the next keyframe lands where the written media ends.
                    link = Link::new();
                    outputs.continue_after_hold(&tracks, SystemTime::now(), report)?;
                    if let Some(since) = hold.since.take() {
                        outputs.mark(Mark::Resume { paused: since.elapsed() });
                    }
                    report.send(Output::Resumed { at: SystemTime::now(), position: position(outputs) })?;
                }
                Ok(Command::Pause | Command::Resume) | Err(TryRecvError::Empty) => {}
            }
            match source.read() {
                Read::Packet(packet) => {
                    let now = Instant::now();
                    last_media = Some((SystemTime::now(), now));
                    if last_alive.is_none_or(|last| now - last >= ALIVE_EVERY) {
                        report.send(Output::Alive)?;
                        last_alive = Some(now);
                    }
                    if hold.held() {
                        continue;
                    }
                    let picture = source.video == Some(packet.stream());
                    report.quality().input_packet(outputs.end_us(), packet.size(), picture);
                    let media_us = packet
                        .dts()
                        .zip(source.context().stream(packet.stream()))
                        .map(|(dts, stream)| dts.rescale(stream.time_base(), crate::mux::MICROS));
                    if let Some((ahead, media_us)) = read_ahead.as_mut().zip(media_us) {
                        report.quality().shorten_last_gap(ahead.packet(now, media_us));
                    }
                    pipeline.push(packet, &mut batch)?;
                    link.deliver(&mut batch, &tracks, outputs, report)?;
                }
                Read::End(reason) => {
                    pipeline.drain(&mut batch)?;
                    link.deliver(&mut batch, &tracks, outputs, report)?;
                    outputs.pause(report)?;
                    return Ok(Ended::Lost { reason, last_media });
                }
            }
        }
    }
}

/// Where the written media ends on the recording's timeline.
fn position(outputs: &Outputs) -> Duration {
    Duration::from_micros(u64::try_from(outputs.end_us()).unwrap_or(0))
}

/// Initialises libav once per process. Its log goes to stderr, outside `tracing`, so only
/// errors are let through; what matters is reported through `tracing` here.
pub(crate) fn init_ffmpeg() -> Result<(), MediaError> {
    static INIT: OnceLock<Result<(), ffmpeg::Error>> = OnceLock::new();
    let result = *INIT.get_or_init(|| {
        ffmpeg::init()?;
        ffmpeg::log::set_level(ffmpeg::log::Level::Error);
        Ok(())
    });
    result.map_err(|source| MediaError::Ffmpeg { context: "initialise libav", source })
}
