//! Synchronous media code for the worker. One [`Recorder`] owns one participant stream on one
//! thread: it opens the input (only allowed protocols, with network timeouts), remuxes (or
//! transcodes when asked) into HLS segments and fragmented MP4 files in a local spool
//! directory, and reports every file event to the runner over a bounded channel. The runner
//! uploads what it is told about and sends [`Command`]s back. A [`Mixer`] does the same for
//! a whole room: every participant decoded on their own thread, composed into one canvas
//! with one mixed soundtrack, encoded (H.264 + AAC) into the same kinds of files; it takes
//! [`MixCommand`]s.
//!
//! The contract with the runner (worker/runner) is the types in this file.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

mod ffi;
mod guard;
mod hls;
mod ingest;
mod input;
mod mix;
mod mp4;
mod mux;
mod outputs;
mod pipeline;
mod playlist;
mod probe;
mod proxy;
mod quality;
mod recorder;
mod rtsp_relay;
mod sidecar;
mod timeline;
mod tracks;
mod transcode;

pub use guard::{Guard, Reach};
pub use mix::Mixer;
pub use probe::{probe, ProbeError, Probed, ProbedAudio, ProbedVideo};
pub use recorder::Recorder;
pub use sidecar::{FileTimeline, Mark, PlacedPane, Who};

/// Where to read the participant's media from, and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// The stream URL (rtmp, rtmps, srt, rtsp, http(s) HLS). Checked again here: any other
    /// scheme is refused before libav sees it.
    pub url: String,
    /// Also allow `file:` URLs (tests only; never from a user).
    pub allow_file: bool,
    /// Judges where the stream may be pulled from, at every connection.
    pub guard: Guard,
    /// A read or connect that makes no progress for this long fails (libav `rw_timeout`).
    pub io_timeout: Duration,
    /// How long to wait between attempts to (re)open the input.
    pub retry_interval: Duration,
    /// Which client pulls rtmp and rtmps URLs.
    pub rtmp_reader: RtmpReader,
}

/// Which client pulls rtmp and rtmps URLs. Both hand the same FLV to the same demuxer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RtmpReader {
    /// The worker's own: one thread reads every stream's socket with large reads.
    #[default]
    Buffered,
    /// libavformat's client: a thread per stream reading each chunk with small reads.
    Libav,
}

impl std::str::FromStr for RtmpReader {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "buffered" => Ok(Self::Buffered),
            "libav" => Ok(Self::Libav),
            other => Err(format!("unknown RTMP reader {other:?} (buffered or libav)")),
        }
    }
}

/// When a recording file ends and the next begins, per format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePolicy {
    /// Roll to a new file after this much media (`record_cycle`); `None` is one file.
    pub cycle: Option<Duration>,
    /// A source pause up to this long continues the same file (`record_max_duration_to_merge_file`);
    /// a longer one closes it, and the next media opens a new file. Zero: any pause closes it.
    pub merge_window: Duration,
}

/// HLS output settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsSpec {
    /// Target segment length (`record_slice_duration`); segments are cut at the first video
    /// keyframe at or after it (audio-only: at the target).
    pub slice: Duration,
    pub files: FilePolicy,
}

/// Requested output picture size, when the job asks for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleSpec {
    pub width: u32,
    pub height: u32,
    /// Scale only when the source is larger (`DOWNWARD`), only when smaller (`UPWARD`), or always.
    pub policy: ScalePolicy,
}

/// How [`ScaleSpec`] applies to the source size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalePolicy {
    Downward,
    Upward,
    Fixed,
}

/// What to record and how.
#[derive(Debug, Clone)]
pub struct RecordSpec {
    pub record_audio: bool,
    pub record_video: bool,
    /// HLS output, if the rule lists HLS.
    pub hls: Option<HlsSpec>,
    /// Fragmented MP4 output, if the rule lists MP4.
    pub mp4: Option<FilePolicy>,
    /// Transcode video to this size when it applies; otherwise video is copied.
    pub scale: Option<ScaleSpec>,
    /// Directory for segment and MP4 files; the runner deletes what it has uploaded.
    pub spool_dir: PathBuf,
}

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Hls,
    Mp4,
}

/// Where a media thread's [`Output`]s go, in order, from that thread: a channel, or a sink of
/// the runner's own that acts on some at once rather than waking another thread for each.
pub trait Report: Send + 'static {
    /// Takes `output`; `false` when the runner is gone (the recording ends).
    fn report(&mut self, output: Output) -> bool;
}

impl Report for std::sync::mpsc::SyncSender<Output> {
    /// Blocks while the channel is full.
    fn report(&mut self, output: Output) -> bool {
        self.send(output).is_ok()
    }
}

/// What the recorder tells the runner, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A recording file began (`file` counts from 0 per format).
    FileOpened { format: Format, file: u32, started_at: SystemTime, width: u32, height: u32 },
    /// An HLS segment is complete in `path`. `seq` counts from 0 within the file.
    /// `discontinuity` is true for the first segment after a merged pause.
    Segment { file: u32, seq: u32, path: PathBuf, duration: Duration, discontinuity: bool },
    /// The fragmented MP4 file `path` has grown to `bytes`, ending on a fragment boundary:
    /// every byte up to there is final and may be uploaded.
    Mp4Progress { file: u32, path: PathBuf, bytes: u64 },
    /// The timeline of a recording file so far: sent every 10 s of media while it records,
    /// and complete just before its `FileClosed`.
    Timeline { format: Format, file: u32, timeline: FileTimeline },
    /// How well the file `file` was recorded; sent just before its `FileClosed`.
    FileQuality { format: Format, file: u32, quality: Quality },
    /// A recording file ended; `duration` is its media duration.
    FileClosed { format: Format, file: u32, duration: Duration, ended_at: SystemTime },
    /// Media is flowing (sent at most once a second while packets arrive).
    Alive,
    /// The input is gone or not there yet; the recorder keeps retrying. `since` is when media stopped.
    Waiting { since: SystemTime, reason: String },
    /// Recording is held after a [`Command::Pause`] (or [`MixCommand::Pause`]): nothing more
    /// is written until resumed. `position` is where the pause falls on the recording's
    /// timeline (µs of media written so far, the same clock file starts are measured on).
    Paused { at: SystemTime, position: Duration },
    /// Recording goes on after a resume, at `position` on the timeline: the next media
    /// written continues the open files there (HLS after a discontinuity).
    Resumed { at: SystemTime, position: Duration },
    /// What the media thread (and a mixer's input threads) spent, sent once as it ends,
    /// before its files close: metering.
    Spent { cpu: Duration, pane_seconds: f64 },
    /// The recorder finished (after a Stop, or a fatal error reported just before).
    Finished,
}

/// The quality report of one recording file (README "Quality report").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quality {
    /// Audio minus video, in ms, that the recording's timing put between the streams
    /// relative to the source's own timestamps: a remux shifts both alike; a mix shows a
    /// picture at the first output frame after its time and delays the sound to match, so
    /// this is what that matching left over. `None` without both audio and video.
    pub av_offset_ms: Option<f64>,
    /// Stretches in which the source sent nothing (a pause merged into the file; in a mix,
    /// no participant sending for over a second), and their total length.
    pub gaps: u32,
    pub gap_seconds: f64,
    /// Source video frames that did not reach the file (before a keyframe after a reconnect,
    /// refused by the muxer; in a mix, never shown: replaced before their output frame).
    pub dropped_frames: u64,
    /// Output frames that showed a participant's picture again (mix only: a source slower
    /// than the canvas, or stalled).
    pub duplicated_frames: u64,
    /// The input's bit rate, frame rate and picture size when the file opened (at 0), then
    /// each change (individual recordings only).
    pub input_changes: Vec<InputChange>,
    /// Output frames the mixer skipped because it fell behind the clock.
    pub late_frames_skipped: u64,
}

/// How the input was, or what changed about it, at `at_ms` into the file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InputChange {
    pub at_ms: u64,
    /// Measured over 5 s windows of media; reported when it moves by more than 25 %.
    pub bitrate_kbps: Option<u32>,
    /// Measured over the same windows; reported when it moves by more than 10 %.
    pub fps: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// What the runner tells the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Close open files cleanly (trailer written, last segment emitted) and finish.
    Stop,
    /// Stop writing (the source is still read, and dropped) and keep the files open,
    /// however long; reported with [`Output::Paused`]. Pausing a held recorder does nothing.
    Pause,
    /// Write again into the same files from the next keyframe; reported with
    /// [`Output::Resumed`]. Resuming a recording recorder does nothing.
    Resume,
}

/// One participant stream of a mix, as the room's roster lists them. A user may be in the
/// mix twice: with their camera and with their screen share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The participant's user id (what `Layout::pinned` and `Layout::user_images` name).
    pub user_id: String,
    /// A screen share (`SUBSTREAM`) rather than a camera: with the user id, what a
    /// [`Pin`] names.
    pub screen_share: bool,
    pub input: InputSpec,
}

/// A pane reserved for one participant stream: a user's camera, or their screen share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// From 1; pane 1 is the large one in the screen-share layouts.
    pub pane: u32,
    pub user_id: String,
    pub screen_share: bool,
}

/// An encoded picture (PNG or JPEG) to show on the canvas, as fetched from S3.
#[derive(Clone, PartialEq, Eq)]
pub struct Image(pub std::sync::Arc<[u8]>);

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({} bytes)", self.0.len())
    }
}

/// The picture layouts of seed 004.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    /// `nine_grids_view`: equal panes in an adaptive grid, up to 25, cropped to fill.
    Grid,
    /// `screen_share_left`: the large pane on the left, the others in a column on the right.
    ScreenShareLeft,
    /// `screen_share_right`: the large pane on the right, the others in a column on the left.
    ScreenShareRight,
}

/// How the canvas is laid out; may change while recording ([`MixCommand::Layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub kind: LayoutKind,
    /// Streams pinned to panes. In the screen-share layouts only the stream pinned to pane 1
    /// shows in the large pane; without one (or while it is away) the pane is background.
    pub pinned: Vec<Pin>,
    /// The colour of the canvas and of empty panes, as RGB.
    pub background: [u8; 3],
    /// Shown on the canvas (under the panes, and in empty ones) instead of the colour.
    pub background_image: Option<Image>,
    /// Shown in the pane of a participant without video (audio only, or stalled).
    pub default_user_image: Option<Image>,
    /// Per user id, shown instead of `default_user_image`.
    pub user_images: Vec<(String, Image)>,
}

/// The encoded picture of a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// H.264 bit rate in kbit/s.
    pub kbps: u32,
}

/// What a mix records and how.
#[derive(Debug, Clone)]
pub struct MixSpec {
    /// The picture, or `None` for an audio-only mix.
    pub canvas: Option<Canvas>,
    pub layout: Layout,
    /// HLS output, if the rule lists HLS.
    pub hls: Option<HlsSpec>,
    /// Fragmented MP4 output, if the rule lists MP4.
    pub mp4: Option<FilePolicy>,
    /// Directory for segment and MP4 files; the runner deletes what it has uploaded.
    pub spool_dir: PathBuf,
}

/// What the runner tells a [`Mixer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MixCommand {
    /// Close open files cleanly and finish.
    Stop,
    /// Lay the canvas out this way from now on, in the same file.
    Layout(Layout),
    /// The participants now in the room, in join order.
    Participants(Vec<Participant>),
    /// Stop writing the mix and keep the files open (the inputs stay connected).
    Pause,
    /// Write the mix again into the same files.
    Resume,
}

/// Why a recording could not go on.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The URL's scheme is not allowed.
    #[error("input scheme not allowed: {0}")]
    SchemeNotAllowed(String),
    /// FFmpeg failed in a way retrying will not fix.
    #[error("ffmpeg: {context}")]
    Ffmpeg {
        context: &'static str,
        #[source]
        source: ffmpeg_next::Error,
    },
    /// The spool directory could not be used.
    #[error("spool directory: {0}")]
    Spool(#[source] std::io::Error),
    /// The runner went away.
    #[error("the runner's channel closed")]
    ChannelClosed,
}
