//! The RTMP client (`roomrec_rtmp`) on its own, against the private nginx-rtmp: our publisher
//! and our player, and our player reading what the `ffmpeg` program publishes. The player
//! joins before the publisher, so it must carry the very packets of the input.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use roomrec_rtmp::{blocking, flv, Session, Status, Target};

use crate::support::{self, make_input, RtmpServer, TempDir};

const SECONDS: u32 = 4;
const FRAMES_PER_SECOND: u32 = 25;
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a player waits for the stream's end.
const PLAY_LIMIT: Duration = Duration::from_secs(30);

/// A connection to `server` for `key`, and where on it to play or publish.
fn connect(server: &RtmpServer, key: &str) -> (TcpStream, Target) {
    let target = Target::from_url(&url::Url::parse(&server.url(key)).expect("a URL")).expect("a target");
    let stream = TcpStream::connect(("127.0.0.1", server.port())).expect("connect to nginx");
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("read timeout");
    (stream, target)
}

/// (codec, packets) per stream of a media file, as `ffprobe` counts them.
fn probe(path: &Path) -> Vec<(String, u32)> {
    let csv = support::ffprobe(
        path,
        &["-count_packets", "-show_entries", "stream=codec_name,nb_read_packets", "-of", "csv=p=0"],
    );
    csv.lines()
        .filter_map(|line| {
            let (codec, packets) = line.split_once(',')?;
            Some((codec.to_owned(), packets.trim().parse().ok()?))
        })
        .collect()
}

/// (pts, size) of the packets of `stream` (`v:0`, `a:0`), in order.
fn packets_of(path: &Path, stream: &str) -> Vec<String> {
    let csv =
        support::ffprobe(path, &["-select_streams", stream, "-show_entries", "packet=pts,size", "-of", "csv=p=0"]);
    csv.lines().map(str::to_owned).collect()
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
    let (mut stream, target) = connect(server, key);
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
    let dir = TempDir::new("rtmp-ours");
    let input = dir.join("input.flv");
    make_input(&input, SECONDS, "320x240", "aac");
    let file = std::fs::read(&input).expect("read input.flv");
    let server = RtmpServer::start();
    let player = spawn_player(&server, "ours");

    let (mut stream, target) = connect(&server, "ours");
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
    let dir = TempDir::new("rtmp-theirs");
    let input = dir.join("input.flv");
    make_input(&input, SECONDS, "320x240", "aac");
    let server = RtmpServer::start();
    let player = spawn_player(&server, "theirs");
    server.publish(&input, "theirs");
    check_played(&dir, &input, player.join().expect("the player does not panic"));
}
