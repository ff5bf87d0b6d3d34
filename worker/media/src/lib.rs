//! Synchronous media code for the worker. One [`Recorder`] owns one participant stream on one
//! thread: it opens the input (only allowed protocols, with network timeouts), remuxes (or
//! transcodes when asked) into HLS segments and fragmented MP4 files in a local spool
//! directory, and reports every file event to the runner over a bounded channel. The runner
//! uploads what it is told about and sends [`Command`]s back.
//!
//! The contract with the runner (worker/runner) is the types in this file.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

mod ffi;
mod hls;
mod input;
mod mp4;
mod mux;
mod outputs;
mod pipeline;
mod recorder;
mod timeline;
mod tracks;
mod transcode;

pub use recorder::Recorder;

/// Where to read the participant's media from, and how patiently.
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The stream URL (rtmp, rtmps, srt, rtsp, http(s) HLS). Checked again here: any other
    /// scheme is refused before libav sees it.
    pub url: String,
    /// Also allow `file:` URLs (tests only; never from a user).
    pub allow_file: bool,
    /// A read or connect that makes no progress for this long fails (libav `rw_timeout`).
    pub io_timeout: Duration,
    /// How long to wait between attempts to (re)open the input.
    pub retry_interval: Duration,
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
    /// A recording file ended; `duration` is its media duration.
    FileClosed { format: Format, file: u32, duration: Duration, ended_at: SystemTime },
    /// Media is flowing (sent at most once a second while packets arrive).
    Alive,
    /// The input is gone or not there yet; the recorder keeps retrying. `since` is when media stopped.
    Waiting { since: SystemTime, reason: String },
    /// The recorder finished (after a Stop, or a fatal error reported just before).
    Finished,
}

/// What the runner tells the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Close open files cleanly (trailer written, last segment emitted) and finish.
    Stop,
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
