//! End-to-end: our player and our publisher against a private nginx-rtmp, with streams made and
//! checked by the `ffmpeg` and `ffprobe` programs.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use roomrec_rtmp::{blocking, flv, Session, Status, Target};

const SECONDS: u32 = 4;
const FRAMES_PER_SECOND: u32 = 25;
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a player waits for the stream's end.
const PLAY_LIMIT: Duration = Duration::from_secs(30);

/// A directory removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("roomrec-rtmp-{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private nginx-rtmp server on a free port, killed when dropped (as the media crate's).
struct RtmpServer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

/// Where Debian's libnginx-mod-rtmp puts the module (`make install` installs it).
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

impl RtmpServer {
    fn start() -> Self {
        assert!(Path::new(RTMP_MODULE).exists(), "{RTMP_MODULE} is missing: run `make install` (libnginx-mod-rtmp)");
        let dir = TempDir::new("nginx");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        // `access_log off`: the module's default log is under /var/log, not writable as a user.
        let conf = format!(
            "load_module {RTMP_MODULE};\ndaemon off;\nmaster_process off;\npid {pid};\nerror_log {log} warn;\nevents {{}}\n\
             rtmp {{ access_log off; server {{ listen 127.0.0.1:{port}; application live {{ live on; }} }} }}\n",
            pid = dir.join("nginx.pid").display(),
            log = dir.join("error.log").display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut server = Self { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("nginx exited: {status}");
            }
            assert!(Instant::now() < deadline, "nginx-rtmp did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    fn connect(&self, key: &str) -> (TcpStream, Target) {
        let target = Target::from_url(&url::Url::parse(&self.url(key)).expect("a URL")).expect("a target");
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to nginx");
        stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
        (stream, target)
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ffmpeg(args: &[&str]) -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-nostdin", "-v", "error", "-y"]).args(args);
    command
}

/// An FLV file of `SECONDS` of H.264 (keyframe every second) and AAC.
fn make_input(path: &Path) {
    let seconds = SECONDS.to_string();
    let video = format!("testsrc2=size=320x240:rate={FRAMES_PER_SECOND}");
    let output = ffmpeg(&["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds, "-c:v", "libx264", "-g", "25", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(path)
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&output.stderr));
}

/// (codec, packets) per stream of a media file, as `ffprobe` counts them.
fn probe(path: &Path) -> Vec<(String, u32)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries", "stream=codec_name,nb_read_packets", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(output.status.success(), "ffprobe: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (codec, packets) = line.split_once(',')?;
            Some((codec.to_owned(), packets.trim().parse().ok()?))
        })
        .collect()
}

/// (pts, size) of the packets of `stream` (`v:0`, `a:0`), in order.
fn packets_of(path: &Path, stream: &str) -> Vec<String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries", "packet=pts,size", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(output.status.success(), "ffprobe: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

/// Plays until the server ends the stream (or `PLAY_LIMIT`); returns the FLV and the status.
fn play_to_end(mut stream: TcpStream, mut session: Session, mut flv: Vec<u8>) -> (Vec<u8>, Status) {
    let deadline = Instant::now() + PLAY_LIMIT;
    let mut buffer = vec![0; 64 << 10];
    while matches!(session.status(), Status::Started) && Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                session.receive(&buffer[..n], &mut flv).expect("nginx speaks RTMP");
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
        stream.write_all(session.pending()).expect("write");
        let n = session.pending().len();
        session.sent(n);
    }
    (flv, session.status().clone())
}

/// A player started on `key`, reading on its own thread until the stream ends.
fn spawn_player(server: &RtmpServer, key: &str) -> std::thread::JoinHandle<(Vec<u8>, Status)> {
    let (mut stream, target) = server.connect(key);
    let mut session = Session::play(target);
    let mut flv = Vec::new();
    blocking::start(&mut stream, &mut session, &mut flv, START_TIMEOUT).expect("the player starts");
    std::thread::spawn(move || play_to_end(stream, session, flv))
}

/// Checks what a player wrote: H.264 and AAC, most of the frames, and the end of the stream;
/// and, as the player joined before the publisher, the very packets of the input.
fn check_played(dir: &TempDir, input: &Path, played: (Vec<u8>, Status)) {
    let (flv, status) = played;
    assert!(matches!(status, Status::Ended(_)), "the player saw the end of the stream: {status:?}");
    let path = dir.join("played.flv");
    std::fs::write(&path, &flv).expect("write played.flv");
    let streams = probe(&path);
    let packets = |codec: &str| streams.iter().find(|(c, _)| c == codec).map_or(0, |(_, n)| *n);
    let frames = SECONDS * FRAMES_PER_SECOND;
    assert!(packets("h264") >= frames * 9 / 10, "{streams:?}: at least 90% of {frames} frames");
    // AAC at 48 kHz: 1024 samples a packet, about 47 a second.
    assert!(packets("aac") >= SECONDS * 47 * 9 / 10, "{streams:?}: most of the audio");
    for stream in ["v:0", "a:0"] {
        assert_eq!(packets_of(&path, stream), packets_of(input, stream), "the {stream} packets (pts, size)");
    }
}

#[test]
fn our_publisher_and_our_player_carry_h264_and_aac_through_nginx() {
    let dir = TempDir::new("ours");
    let input = dir.join("input.flv");
    make_input(&input);
    let file = std::fs::read(&input).expect("read input.flv");
    let server = RtmpServer::start();
    let player = spawn_player(&server, "ours");

    let (mut stream, target) = server.connect("ours");
    let mut session = Session::publish(target);
    blocking::start(&mut stream, &mut session, &mut Vec::new(), START_TIMEOUT).expect("the publisher starts");
    // What nginx sends a publisher from now on (acknowledgements) needs no answer: drain it.
    let mut drain = stream.try_clone().expect("clone the socket");
    std::thread::spawn(move || std::io::copy(&mut drain, &mut std::io::sink()));
    let started = Instant::now();
    let mut tags = 0;
    for tag in flv::tags(&file) {
        let due = Duration::from_millis(u64::from(tag.timestamp));
        std::thread::sleep(due.saturating_sub(started.elapsed()));
        session.send(tag.kind, tag.timestamp, tag.data);
        stream.write_all(session.pending()).expect("publish");
        let n = session.pending().len();
        session.sent(n);
        tags += 1;
    }
    assert!(tags > SECONDS * FRAMES_PER_SECOND, "the input has its tags");
    stream.shutdown(std::net::Shutdown::Both).expect("stop publishing");
    drop(stream);

    check_played(&dir, &input, player.join().expect("the player does not panic"));
}

#[test]
fn our_player_reads_a_stream_published_by_ffmpeg() {
    let dir = TempDir::new("ffmpeg");
    let input = dir.join("input.flv");
    make_input(&input);
    let server = RtmpServer::start();
    let player = spawn_player(&server, "theirs");

    let output = ffmpeg(&["-re", "-i"])
        .arg(&input)
        .args(["-c", "copy", "-f", "flv", &server.url("theirs")])
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "ffmpeg publish: {}", String::from_utf8_lossy(&output.stderr));

    check_played(&dir, &input, player.join().expect("the player does not panic"));
}
