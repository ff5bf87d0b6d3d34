//! Test helpers: temp dirs, inputs made with the `ffmpeg` program, `ffprobe` checks, a
//! recorder on its own thread, and a private nginx-rtmp server.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Program, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomrec_media::{
    Command, FilePolicy, Format, Guard, HlsSpec, InputSpec, MediaError, Output, RecordSpec, Recorder, RtmpReader,
};
use serde_json::Value;

/// A directory removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("roomrec-media-{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the `ffmpeg` program (inputs only; the crate itself never spawns it).
pub fn ffmpeg(args: &[&str]) {
    let output =
        Program::new("ffmpeg").args(["-nostdin", "-v", "error", "-y"]).args(args).output().expect("run ffmpeg");
    assert!(output.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Writes an FLV test input: `seconds` of a 25 fps picture (keyframe every second) with a
/// 48 kHz tone, H.264 + `audio_codec`.
pub fn make_input(path: &Path, seconds: u32, size: &str, audio_codec: &str) {
    let video = format!("testsrc2=size={size}:rate=25");
    let seconds = seconds.to_string();
    let path = path.to_str().expect("utf-8 path");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &seconds,
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        audio_codec,
        "-f",
        "flv",
        path,
    ]);
}

/// `ffprobe`'s view of a media file: duration and streams.
#[derive(Debug)]
pub struct Probe {
    pub duration: f64,
    /// (codec_name, width, height) per stream; width/height 0 for audio.
    pub streams: Vec<(String, u64, u64)>,
}

impl Probe {
    pub fn codecs(&self) -> Vec<&str> {
        self.streams.iter().map(|(codec, _, _)| codec.as_str()).collect()
    }
}

pub fn probe(path: &Path) -> Probe {
    let json = ffprobe(path, &["-show_entries", "format=duration:stream=codec_name,width,height", "-of", "json"]);
    let value: Value = serde_json::from_str(&json).expect("ffprobe json");
    let duration = value["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    let streams = value["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .map(|s| {
                    (
                        s["codec_name"].as_str().unwrap_or("").to_owned(),
                        s["width"].as_u64().unwrap_or(0),
                        s["height"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Probe { duration, streams }
}

/// The sizes of the packets of `stream` (`v:0`, `a:0`), in order.
pub fn packets(path: &Path, stream: &str) -> Vec<u64> {
    let csv = ffprobe(path, &["-select_streams", stream, "-show_entries", "packet=size", "-of", "csv=p=0"]);
    csv.lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect()
}

/// The presentation times of the packets of `stream` (`v:0`, `a:0`), in seconds, in order.
pub fn packet_times(path: &Path, stream: &str) -> Vec<f64> {
    let csv = ffprobe(path, &["-select_streams", stream, "-show_entries", "packet=pts_time", "-of", "csv=p=0"]);
    csv.lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect()
}

/// Whether every frame of `path` decodes without an error.
pub fn decodes(path: &Path) -> bool {
    let output = Program::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    output.status.success() && output.stderr.is_empty()
}

/// What `ffprobe -v error {args} {path}` prints; fails the test if it fails.
pub fn ffprobe(path: &Path, args: &[&str]) -> String {
    let output = Program::new("ffprobe").args(["-v", "error"]).args(args).arg(path).output().expect("run ffprobe");
    assert!(output.status.success(), "ffprobe {path:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Input settings for tests: short timeouts, `file:` allowed.
pub fn input(url: &str, retry: Duration) -> InputSpec {
    InputSpec {
        url: url.to_owned(),
        allow_file: true,
        guard: Guard::allow_all(),
        io_timeout: Duration::from_secs(2),
        retry_interval: retry,
        rtmp_reader: rtmp_reader(),
    }
}

/// The RTMP reader the tests run on: `ROOMREC_RTMP_READER` (`buffered`, the default, or
/// `libav`), so `make test` runs every recording test on both.
pub fn rtmp_reader() -> RtmpReader {
    std::env::var("ROOMREC_RTMP_READER")
        .map_or(RtmpReader::default(), |name| name.parse().expect("ROOMREC_RTMP_READER"))
}

pub fn file_url(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Audio + video, HLS with `slice` and MP4, one file each, no merging.
pub fn spec(dir: &Path, slice: Duration) -> RecordSpec {
    let files = FilePolicy { cycle: None, merge_window: Duration::ZERO };
    RecordSpec {
        record_audio: true,
        record_video: true,
        hls: Some(HlsSpec { slice, files }),
        mp4: Some(files),
        scale: None,
        spool_dir: dir.to_owned(),
    }
}

/// What a recording produced.
pub struct Recording {
    pub outputs: Vec<Output>,
    pub result: Result<(), MediaError>,
}

impl Recording {
    pub fn segments(&self, file: u32) -> Vec<(PathBuf, Duration, bool)> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Segment { file: f, path, duration, discontinuity, .. } if *f == file => {
                    Some((path.clone(), *duration, *discontinuity))
                }
                _ => None,
            })
            .collect()
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

    pub fn closed(&self, format: Format) -> Vec<(u32, Duration)> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::FileClosed { format: f, file, duration, .. } if *f == format => Some((*file, *duration)),
                _ => None,
            })
            .collect()
    }

    /// The MP4 file `file` and its last announced size.
    pub fn mp4(&self, file: u32) -> (PathBuf, u64) {
        self.outputs
            .iter()
            .rev()
            .find_map(|o| match o {
                Output::Mp4Progress { file: f, path, bytes } if *f == file => Some((path.clone(), *bytes)),
                _ => None,
            })
            .expect("an Mp4Progress for the file")
    }

    pub fn count(&self, wanted: impl Fn(&Output) -> bool) -> usize {
        self.outputs.iter().filter(|o| wanted(o)).count()
    }

    /// Why the recorder said it waits, in order.
    pub fn waiting_reasons(&self) -> Vec<&str> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Waiting { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Longest a test recording may take before it is stopped and the test fails.
const RECORDING_LIMIT: Duration = Duration::from_secs(60);

/// Runs a recorder on its own thread; after each output (and every 200 ms),
/// `stop_now(outputs so far)` decides whether to send `Stop`. Collects everything until the recorder returns.
pub fn record(
    input: InputSpec,
    spec: RecordSpec,
    capacity: usize,
    mut stop_now: impl FnMut(&[Output]) -> bool,
) -> Recording {
    record_with(input, spec, capacity, |outputs| stop_now(outputs).then_some(Command::Stop))
}

/// As [`record`], with `next(outputs so far)` choosing any command to send (until a `Stop`).
pub fn record_with(
    input: InputSpec,
    spec: RecordSpec,
    capacity: usize,
    mut next: impl FnMut(&[Output]) -> Option<Command>,
) -> Recording {
    let (command_tx, command_rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::sync_channel(capacity);
    let recorder = std::thread::spawn(move || Recorder::new(input, spec).run(command_rx, out_tx));
    let started = Instant::now();
    let mut outputs = Vec::new();
    let mut stopped = false;
    loop {
        match out_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(output) => {
                outputs.push(output);
                if let Some(command) = next(&outputs).filter(|_| !stopped) {
                    stopped = command == Command::Stop;
                    let _ = command_tx.send(command);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !stopped && started.elapsed() > RECORDING_LIMIT => {
                let _ = command_tx.send(Command::Stop);
                stopped = true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !stopped => {
                if let Some(command) = next(&outputs) {
                    stopped = command == Command::Stop;
                    let _ = command_tx.send(command);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let result = recorder.join().expect("the recorder thread does not panic");
    assert!(started.elapsed() <= RECORDING_LIMIT + Duration::from_secs(10), "the recording hit the test limit");
    Recording { outputs, result }
}

pub fn is_waiting(output: &Output) -> bool {
    matches!(output, Output::Waiting { .. })
}

/// A private RTMP server on a free port (`rtmp://127.0.0.1:<port>/live/<key>`), killed when
/// dropped: nginx-rtmp, or Node-Media-Server for a second implementation.
pub struct RtmpServer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

/// Where Debian's libnginx-mod-rtmp puts the module (`make install` installs it).
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Node-Media-Server's launcher, whose npm packages `make install` installs.
const NODE_MEDIA_SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node-media-server/serve.js");

impl RtmpServer {
    /// nginx-rtmp.
    pub fn start() -> Self {
        assert!(Path::new(RTMP_MODULE).exists(), "{RTMP_MODULE} is missing: run `make install` (libnginx-mod-rtmp)");
        let dir = TempDir::new("nginx");
        let port = free_port();
        // `access_log off`: the module's default log is under /var/log, not writable as a user.
        let conf = format!(
            "load_module {RTMP_MODULE};\ndaemon off;\nmaster_process off;\npid {pid};\nerror_log {log} warn;\nevents {{}}\n\
             rtmp {{ access_log off; server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
            pid = dir.join("nginx.pid").display(),
            log = dir.join("error.log").display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let mut nginx = Program::new("nginx");
        nginx.arg("-e").arg(dir.join("error.log")).arg("-p").arg(dir.path()).arg("-c").arg(dir.join("nginx.conf"));
        nginx.stdout(Stdio::null()).stderr(Stdio::null());
        Self::listening(nginx, port, dir, "error.log")
    }

    /// Node-Media-Server (npm), which sends a new player the last GOP at once and tells it
    /// nothing when the publisher leaves.
    pub fn node_media_server() -> Self {
        let launcher = Path::new(NODE_MEDIA_SERVER);
        let installed = launcher.with_file_name("node_modules").join("node-media-server");
        assert!(installed.exists(), "{installed:?} is missing: run `make install`");
        let dir = TempDir::new("node-media-server");
        let port = free_port();
        let log = std::fs::File::create(dir.join("server.log")).expect("create server.log");
        let mut node = Program::new("node");
        node.arg(launcher).arg(port.to_string()).arg(dir.join("data"));
        node.stdout(log.try_clone().expect("clone the log")).stderr(log);
        Self::listening(node, port, dir, "server.log")
    }

    /// Starts `program` and waits until it listens on `port`; its log is `log` in `dir`.
    fn listening(mut program: Program, port: u16, dir: TempDir, log: &str) -> Self {
        let child = program.stdin(Stdio::null()).spawn().unwrap_or_else(|e| panic!("start {program:?}: {e}"));
        let log = dir.join(log);
        let mut server = Self { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the RTMP server exited: {status}; see {log:?}");
            }
            assert!(Instant::now() < deadline, "the RTMP server did not start listening; see {log:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Publishes `file` in real time until it ends (blocking).
    pub fn publish(&self, file: &Path, key: &str) {
        ffmpeg(&["-re", "-i", file.to_str().expect("utf-8 path"), "-c", "copy", "-f", "flv", &self.url(key)]);
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A static file server for `dir` on a free port (`http://127.0.0.1:<port>/<name>`), stopped
/// when dropped. One request per connection, enough for FFmpeg's HLS demuxer.
pub struct HttpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    pub fn serve(dir: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().map(|a| a.port()).expect("port");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, stopping) = (dir.to_owned(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &dir),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { port, stop, thread: Some(thread) }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

fn answer(stream: TcpStream, dir: &Path) {
    let _ = stream.set_nonblocking(false);
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    let _ = reader.read_line(&mut request);
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let name = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/');
    let body = (!name.contains("..")).then(|| std::fs::read(dir.join(name)).ok()).flatten();
    let mut stream = &stream;
    let _ = match body {
        Some(body) => stream
            .write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes(),
            )
            .and_then(|()| stream.write_all(&body)),
        None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
