//! Test helpers for mixes: participants published to a private nginx-rtmp with the `ffmpeg`
//! program (a solid colour and a tone each), a mixer on its own thread driven by a script of
//! commands, and the output read back with `ffmpeg`/`ffprobe` (pixels and tones).

use std::path::Path;
use std::process::{Child, Command as Program, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use roomrec_media::{
    Canvas, FilePolicy, Format, Guard, HlsSpec, Image, InputSpec, Layout, LayoutKind, MediaError, MixCommand, MixSpec,
    Mixer, Output, Participant,
};
use serde_json::Value;

pub use crate::recorder_support::{ffmpeg, RtmpServer, TempDir};

/// The canvas of most tests: small, so the machine's two cores keep up.
pub const CANVAS: Canvas = Canvas { width: 640, height: 360, fps: 15, kbps: 500 };
/// The background colour of most tests.
pub const BACKGROUND: u32 = 0x202020;
/// Publishers' picture size.
const SOURCE_SIZE: &str = "320x180";

/// One mix at a time: each is real time, and two at once would starve each other.
static MIXING: Mutex<()> = Mutex::new(());

pub fn one_mix_at_a_time() -> MutexGuard<'static, ()> {
    MIXING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a publisher sends as video.
#[derive(Debug, Clone, Copy)]
pub enum Look {
    /// A solid colour, 0xRRGGBB.
    Colour(u32),
    /// Moving noise that no encoder can squeeze below its bit rate.
    Noise,
    /// No video stream at all.
    Nothing,
}

/// An `ffmpeg` program publishing to nginx-rtmp in real time until dropped.
pub struct Publisher(Child);

impl Publisher {
    /// Publishes `look` and a sine tone of `tone_hz` (half of full scale) as `key`.
    pub fn start(server: &RtmpServer, key: &str, look: Look, tone_hz: u32) -> Self {
        Self::with_sound(server, key, look, &format!("sine=frequency={tone_hz}:sample_rate=48000,volume=4"))
    }

    /// Publishes `look` and the sound of the lavfi graph `sound` (48 kHz) as `key`.
    pub fn with_sound(server: &RtmpServer, key: &str, look: Look, sound: &str) -> Self {
        let mut args: Vec<String> = ["-nostdin", "-v", "error"].map(String::from).to_vec();
        let video = match look {
            Look::Colour(rgb) => Some(format!("color=c=0x{rgb:06X}:s={SOURCE_SIZE}:r=30")),
            Look::Noise => Some(format!("testsrc2=s={SOURCE_SIZE}:r=30,noise=alls=100:allf=t+u")),
            Look::Nothing => None,
        };
        if let Some(video) = &video {
            args.extend(["-re", "-f", "lavfi", "-i", video].map(String::from));
        }
        args.extend(["-re", "-f", "lavfi", "-i", sound].map(String::from));
        if video.is_some() {
            let x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30"];
            args.extend(x264.map(String::from));
            args.extend(["-pix_fmt", "yuv420p"].map(String::from));
        }
        args.extend(["-c:a", "aac", "-f", "flv", &server.url(key)].map(String::from));
        Self::spawn(&args)
    }

    /// Runs the `ffmpeg` program with `args`, which end with where it publishes.
    pub fn spawn(args: &[String]) -> Self {
        let child = Program::new("ffmpeg")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start an ffmpeg publisher");
        Self(child)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A participant reading `key` from `server`, quick to retry.
pub fn participant(server: &RtmpServer, key: &str, screen_share: bool) -> Participant {
    let input = InputSpec {
        url: server.url(key),
        allow_file: false,
        guard: Guard::allow_all(),
        io_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_millis(200),
        rtmp_reader: crate::recorder_support::rtmp_reader(),
    };
    Participant { user_id: key.to_owned(), screen_share, input }
}

pub fn layout(kind: LayoutKind) -> Layout {
    Layout {
        kind,
        pinned: Vec::new(),
        background: rgb(BACKGROUND),
        background_image: None,
        default_user_image: None,
        user_images: Vec::new(),
    }
}

pub fn rgb(value: u32) -> [u8; 3] {
    [(value >> 16) as u8, (value >> 8) as u8, value as u8]
}

/// MP4 only, one file, with `canvas` (`None`: audio only).
pub fn spec(dir: &Path, canvas: Option<Canvas>, layout: Layout) -> MixSpec {
    let files = FilePolicy { cycle: None, merge_window: Duration::ZERO };
    MixSpec { canvas, layout, hls: None, mp4: Some(files), spool_dir: dir.to_owned() }
}

/// [`spec`] with HLS segments of `slice` too.
pub fn spec_with_hls(dir: &Path, canvas: Option<Canvas>, layout: Layout, slice: Duration) -> MixSpec {
    let files = FilePolicy { cycle: None, merge_window: Duration::ZERO };
    MixSpec { hls: Some(HlsSpec { slice, files }), ..spec(dir, canvas, layout) }
}

/// A still image of one colour, made with the `ffmpeg` program: PNG or JPEG as `name` ends.
pub fn still(dir: &TempDir, name: &str, colour: u32) -> Image {
    let path = dir.join(name);
    let source = format!("color=c=0x{colour:06X}:s=64x36");
    let source = if name.ends_with(".jpg") { format!("{source},format=yuvj420p") } else { source };
    ffmpeg(&["-f", "lavfi", "-i", &source, "-frames:v", "1", path.to_str().expect("utf-8 path")]);
    Image(std::fs::read(&path).expect("read the image").into())
}

/// What the tests look at in a finished mix, read from its files before they are removed.
pub struct Seen {
    pub outputs: Vec<Output>,
    pub result: Result<(), MediaError>,
    /// The MP4 file's pictures at the times asked for.
    pictures: Vec<(f64, Picture)>,
    /// The MP4 file's sound (left channel, 48 kHz).
    pub sound: Vec<f32>,
    /// `ffprobe`'s view of the MP4 file.
    pub probe: Value,
    /// Sizes of the MP4 file's video packets.
    pub video_packets: Vec<u64>,
    /// The MP4 file's size on disk.
    pub mp4_bytes: u64,
    /// Per HLS segment: the duration reported, and the one `ffprobe` finds.
    pub segments: Vec<(Duration, f64)>,
}

impl Seen {
    /// Reads what the tests need from the files of `outputs`, with pictures at `times`.
    fn read(outputs: Vec<Output>, result: Result<(), MediaError>, times: &[f64]) -> Self {
        let mp4 = outputs.iter().find_map(|o| match o {
            Output::Mp4Progress { file: 0, path, .. } => Some(path.clone()),
            _ => None,
        });
        let segments = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Segment { path, duration, .. } => Some((*duration, duration_of(&probe(path)))),
                _ => None,
            })
            .collect();
        let Some(mp4) = mp4 else {
            return Self {
                outputs,
                result,
                pictures: Vec::new(),
                sound: Vec::new(),
                probe: Value::Null,
                video_packets: Vec::new(),
                mp4_bytes: 0,
                segments,
            };
        };
        Self {
            pictures: times.iter().map(|&at| (at, picture_at(&mp4, at))).collect(),
            sound: sound(&mp4),
            probe: probe(&mp4),
            video_packets: packet_sizes(&mp4, "v:0"),
            mp4_bytes: std::fs::metadata(&mp4).map_or(0, |m| m.len()),
            segments,
            outputs,
            result,
        }
    }

    /// The picture read at `at` seconds.
    pub fn picture(&self, at: f64) -> &Picture {
        self.pictures.iter().find(|(t, _)| *t == at).map(|(_, p)| p).expect("a picture read at that time")
    }

    pub fn opened(&self, format: Format) -> Vec<(u32, u32, u32)> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::FileOpened { format: f, file, width, height, .. } if *f == format => {
                    Some((*file, *width, *height))
                }
                _ => None,
            })
            .collect()
    }

    pub fn closed(&self, format: Format) -> usize {
        self.outputs.iter().filter(|o| matches!(o, Output::FileClosed { format: f, .. } if *f == format)).count()
    }

    /// The streams of the MP4 file: (codec, width or channel layout).
    pub fn streams(&self) -> Vec<(String, String)> {
        let streams = self.probe["streams"].as_array().cloned().unwrap_or_default();
        streams
            .iter()
            .map(|s| {
                let codec = s["codec_name"].as_str().unwrap_or_default().to_owned();
                let detail = match s["codec_type"].as_str() {
                    Some("video") => format!("{}x{}", s["width"], s["height"]),
                    _ => s["channel_layout"].as_str().unwrap_or_default().to_owned(),
                };
                (codec, detail)
            })
            .collect()
    }

    /// The video's average frame rate (frames over duration), in frames per second.
    pub fn frame_rate(&self) -> f64 {
        let streams = self.probe["streams"].as_array().cloned().unwrap_or_default();
        let video = streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream");
        let rate = video["avg_frame_rate"].as_str().unwrap_or_default();
        let (num, den) = rate.split_once('/').unwrap_or((rate, "1"));
        num.parse::<f64>().unwrap_or(0.0) / den.parse::<f64>().unwrap_or(1.0)
    }

    /// The MP4 file's duration, in seconds.
    pub fn duration(&self) -> f64 {
        duration_of(&self.probe)
    }

    /// Asserts the mix ended well: `Ok`, every file closed, `Finished` last.
    pub fn assert_finished_cleanly(&self) {
        assert!(self.result.is_ok(), "{:?}", self.result);
        assert_eq!(self.outputs.last(), Some(&Output::Finished));
        for format in [Format::Hls, Format::Mp4] {
            assert_eq!(self.opened(format).len(), self.closed(format), "{format:?} files opened and closed");
        }
    }
}

fn duration_of(probed: &Value) -> f64 {
    probed["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0)
}

/// Something a test does to a running mix.
pub enum Step {
    Send(MixCommand),
    Do(Box<dyn FnOnce() + Send>),
}

/// Runs a mixer for `stop_at` seconds, taking each scripted step at its time (seconds after
/// the start), then sends `Stop`; reads its output (pictures at `look_at` seconds), then
/// removes `dir`.
pub fn run_mix(dir: TempDir, spec: MixSpec, script: Vec<(f64, Step)>, stop_at: f64, look_at: &[f64]) -> Seen {
    run_mix_keeping(dir, spec, script, stop_at, look_at, None)
}

/// [`run_mix`], copying the MP4 file to `keep` (if given) before `dir` is removed.
pub fn run_mix_keeping(
    dir: TempDir,
    spec: MixSpec,
    script: Vec<(f64, Step)>,
    stop_at: f64,
    look_at: &[f64],
    keep: Option<&Path>,
) -> Seen {
    let (command_tx, command_rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::sync_channel(10_000);
    let started = Instant::now();
    let mixer = std::thread::spawn(move || Mixer::new(spec).run(command_rx, out_tx));
    let mut script = script.into_iter().peekable();
    let mut outputs = Vec::new();
    let mut stopped = false;
    loop {
        let elapsed = started.elapsed().as_secs_f64();
        while script.peek().is_some_and(|(at, _)| *at <= elapsed) {
            match script.next() {
                Some((_, Step::Send(command))) => {
                    let _ = command_tx.send(command);
                }
                Some((_, Step::Do(action))) => action(),
                None => {}
            }
        }
        if !stopped && elapsed >= stop_at {
            let _ = command_tx.send(MixCommand::Stop);
            stopped = true;
        }
        match out_rx.recv_timeout(Duration::from_millis(10)) {
            Ok(output) => outputs.push(output),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        assert!(started.elapsed().as_secs_f64() < stop_at + 20.0, "the mixer did not stop");
    }
    let result = mixer.join().expect("the mixer thread does not panic");
    let seen = Seen::read(outputs, result, look_at);
    if let Some(keep) = keep {
        let mp4 = seen.outputs.iter().find_map(|o| match o {
            Output::Mp4Progress { file: 0, path, .. } => Some(path.clone()),
            _ => None,
        });
        std::fs::copy(mp4.expect("an MP4 file"), keep).expect("keep the MP4 file");
    }
    drop(dir);
    seen
}

/// One decoded picture, as RGB.
pub struct Picture {
    pub width: usize,
    pub rgb: Vec<u8>,
}

impl Picture {
    pub fn pixel(&self, (x, y): (u32, u32)) -> [u8; 3] {
        let at = (y as usize * self.width + x as usize) * 3;
        [self.rgb[at], self.rgb[at + 1], self.rgb[at + 2]]
    }
}

/// The picture of `path` at `seconds`.
fn picture_at(path: &Path, seconds: f64) -> Picture {
    let (width, _) = video_size(path);
    let at = format!("{seconds:.3}");
    let output = Program::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-ss", &at, "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&output.stderr));
    assert!(!output.stdout.is_empty(), "no picture at {seconds} s in {path:?}");
    Picture { width: width as usize, rgb: output.stdout }
}

/// Whether `actual` is `expected` (0xRRGGBB) give or take what two encodings do to a colour.
pub fn looks_like(actual: [u8; 3], expected: u32) -> bool {
    actual.iter().zip(rgb(expected)).all(|(a, e)| a.abs_diff(e) <= 40)
}

/// Asserts that the pixel at each point is the colour named with it.
pub fn assert_colours(picture: &Picture, expected: &[((u32, u32), u32)], when: &str) {
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(at, colour)| !looks_like(picture.pixel(*at), *colour))
        .map(|(at, colour)| format!("{at:?}: {:?}, expected {:06X}", picture.pixel(*at), colour))
        .collect();
    assert!(wrong.is_empty(), "{when}: {wrong:?}");
}

/// The sound of `path` as 48 kHz samples of the left channel, in -1..1.
fn sound(path: &Path) -> Vec<f32> {
    let output = Program::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-ac", "2", "-ar", "48000", "-f", "s16le", "pipe:1"])
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout.chunks_exact(4).map(|frame| f32::from(i16::from_le_bytes([frame[0], frame[1]])) / 32768.0).collect()
}

/// The amplitude of the `hz` tone in the whole seconds `from..to` of `samples` (48 kHz).
pub fn tone_level(samples: &[f32], hz: u32, from: u32, to: u32) -> f32 {
    let window = &samples[(from * 48_000) as usize..(to * 48_000) as usize];
    let step = std::f64::consts::TAU * f64::from(hz) / 48_000.0;
    let (re, im) = window.iter().enumerate().fold((0.0f64, 0.0f64), |(re, im), (n, &x)| {
        let phase = step * n as f64;
        (re + f64::from(x) * phase.cos(), im - f64::from(x) * phase.sin())
    });
    (2.0 * (re * re + im * im).sqrt() / window.len() as f64) as f32
}

/// The `ffprobe` JSON of `path`'s streams and format.
fn probe(path: &Path) -> Value {
    let output = Program::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(output.status.success(), "ffprobe: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("ffprobe json")
}

fn video_size(path: &Path) -> (u64, u64) {
    let probed = probe(path);
    let streams = probed["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream");
    (video["width"].as_u64().unwrap_or(0), video["height"].as_u64().unwrap_or(0))
}

/// The sizes of the packets of `stream` (`v:0`, `a:0`) in `path`.
fn packet_sizes(path: &Path, stream: &str) -> Vec<u64> {
    let output = Program::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries", "packet=size", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}
