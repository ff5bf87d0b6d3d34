//! Which inputs are opened at all, and inputs that are not there or never answer.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use roomrec_media::{Guard, InputSpec, MediaError, Output, Reach, Recorder};

use roomrec_media::Format;

use crate::support::{self, decodes, is_waiting, make_input, probe, record, HttpServer, TempDir};

#[test]
fn refused_schemes_fail_with_scheme_not_allowed_before_any_output() {
    let dir = TempDir::new("scheme");
    let urls = [
        "concat:/etc/hostname|/etc/hostname",
        "subfile,,start,0,end,10,,:/etc/hostname",
        "file:/etc/hostname",
        "ftp://127.0.0.1/x.flv",
        "/etc/hostname",
        "tcp://127.0.0.1:1",
    ];
    for url in urls {
        let input = InputSpec { allow_file: false, ..support::input(url, Duration::from_secs(1)) };
        let (_commands, command_rx) = mpsc::channel();
        let (out_tx, out_rx) = mpsc::sync_channel(16);
        let result = Recorder::new(input, support::spec(dir.path(), Duration::from_secs(4))).run(command_rx, out_tx);
        assert!(
            matches!(result, Err(MediaError::SchemeNotAllowed(ref refused)) if refused == url),
            "{url}: {result:?}"
        );
        assert!(out_rx.try_recv().is_err(), "{url}: nothing reported");
    }
}

#[test]
fn an_unreachable_source_is_reported_waiting_once_and_stop_still_finishes() {
    let dir = TempDir::new("unreachable");
    let port = support::free_port();
    let input = support::input(&format!("rtmp://127.0.0.1:{port}/live/nobody"), Duration::from_millis(100));
    let started = Instant::now();
    // Let it retry for a while, then stop.
    let recording = record(input, support::spec(dir.path(), Duration::from_secs(4)), 100, |_| {
        started.elapsed() > Duration::from_millis(1500)
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    assert_eq!(recording.outputs.first().map(is_waiting), Some(true), "{:?}", recording.outputs);
    assert_eq!(recording.count(is_waiting), 1, "once per pause, not per retry");
    assert_eq!(recording.outputs.last(), Some(&Output::Finished));
    assert_eq!(recording.count(|o| matches!(o, Output::FileOpened { .. })), 0);
}

/// Accepts connections and never says a word.
fn silent_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(1);
    listener.set_nonblocking(true).expect("nonblocking");
    let server = std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
            // Drain what the client says so it never blocks on a full socket buffer.
            for stream in &mut held {
                let _ = stream.set_nonblocking(true);
                let _ = stream.read(&mut [0; 4096]);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (port, server)
}

/// A server that accepts and never answers must cost at most the io timeout (plus the open's
/// probe budget) per attempt, and Stop must still be honoured promptly.
fn a_silent_server_does_not_hang_the_recorder(scheme: &str) {
    let dir = TempDir::new("silent");
    let (port, _server) = silent_server();
    let input = InputSpec {
        io_timeout: Duration::from_secs(1),
        ..support::input(&format!("{scheme}://127.0.0.1:{port}/live/x"), Duration::from_millis(100))
    };
    let started = Instant::now();
    let mut waiting_after = None;
    let recording = record(input, support::spec(dir.path(), Duration::from_secs(4)), 100, |seen| {
        let stop = seen.last().is_some_and(is_waiting);
        if stop {
            waiting_after = Some(started.elapsed());
        }
        stop
    });
    let total = started.elapsed();
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    let waiting_after = waiting_after.expect("Waiting is reported");
    assert!(waiting_after < Duration::from_secs(6), "{scheme}: the first attempt took {waiting_after:?}");
    assert!(total - waiting_after < Duration::from_secs(6), "{scheme}: Stop took {:?}", total - waiting_after);
    assert_eq!(recording.outputs.last(), Some(&Output::Finished));
}

#[test]
fn a_silent_rtmp_server_does_not_hang_the_recorder() {
    a_silent_server_does_not_hang_the_recorder("rtmp");
}

#[test]
fn a_silent_rtsp_server_does_not_hang_the_recorder() {
    a_silent_server_does_not_hang_the_recorder("rtsp");
}

#[test]
fn a_silent_http_server_does_not_hang_the_recorder() {
    a_silent_server_does_not_hang_the_recorder("http");
}

#[test]
fn an_hls_stream_over_http_is_recorded() {
    let dir = TempDir::new("http-hls");
    let source = dir.join("in.flv");
    make_input(&source, 12, "640x360", "aac");
    let playlist = dir.join("in.m3u8");
    support::ffmpeg(&[
        "-i",
        source.to_str().unwrap_or_default(),
        "-c",
        "copy",
        "-f",
        "hls",
        "-hls_time",
        "2",
        "-hls_playlist_type",
        "vod",
        playlist.to_str().unwrap_or_default(),
    ]);
    let server = HttpServer::serve(dir.path());
    let input = InputSpec { allow_file: false, ..support::input(&server.url("in.m3u8"), Duration::from_secs(30)) };
    let out = TempDir::new("http-hls-out");
    let recording = record(input, support::spec(out.path(), Duration::from_secs(4)), 10_000, |seen| {
        seen.last().is_some_and(is_waiting)
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);

    assert_eq!(recording.opened(Format::Mp4), vec![(0, 640, 360)]);
    let (path, _) = recording.mp4(0);
    let probed = probe(&path);
    assert_eq!(probed.codecs(), ["h264", "aac"], "MPEG-TS input copied into MP4");
    assert!((probed.duration - 12.0).abs() < 0.5, "{probed:?}");
    assert!(decodes(&path));
}

#[test]
fn an_hls_playlist_pointing_at_local_files_is_not_followed() {
    let dir = TempDir::new("http-file");
    let source = dir.join("in.flv");
    make_input(&source, 4, "640x360", "aac");
    let segment = dir.join("local.ts");
    support::ffmpeg(&[
        "-i",
        source.to_str().unwrap_or_default(),
        "-c",
        "copy",
        "-f",
        "mpegts",
        segment.to_str().unwrap_or_default(),
    ]);
    let playlist =
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nfile:{}\n#EXT-X-ENDLIST\n", segment.display());
    std::fs::write(dir.join("evil.m3u8"), playlist).expect("write playlist");
    let server = HttpServer::serve(dir.path());
    let input = InputSpec { allow_file: false, ..support::input(&server.url("evil.m3u8"), Duration::from_secs(30)) };
    let out = TempDir::new("http-file-out");
    let recording = record(input, support::spec(out.path(), Duration::from_secs(4)), 10_000, |seen| {
        seen.last().is_some_and(is_waiting)
    });
    assert!(recording.result.is_ok(), "{:?}", recording.result);

    assert_eq!(recording.count(|o| matches!(o, Output::FileOpened { .. })), 0, "{:?}", recording.outputs);
    assert_eq!(recording.count(is_waiting), 1);
}

/// Refuses one port, as the runner's policy refuses a forbidden address.
pub struct RefusePort(pub u16);

impl Reach for RefusePort {
    fn refuse_url(&self, _: &url::Url) -> Option<String> {
        None
    }
    fn refuse_address(&self, _: &str, port: u16, _: std::net::IpAddr) -> Option<String> {
        (port == self.0).then(|| "the stream's address is not public".to_owned())
    }
}

/// A listener that must never be connected to; `accepted` says whether it was.
pub struct Untouchable(TcpListener);

impl Untouchable {
    pub fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Self(listener)
    }
    pub fn port(&self) -> u16 {
        self.0.local_addr().map(|a| a.port()).unwrap_or(1)
    }
    pub fn accepted(&self) -> bool {
        self.0.accept().is_ok()
    }
}

pub fn record_until_waiting(input: InputSpec, name: &str) -> support::Recording {
    let out = TempDir::new(name);
    record(input, support::spec(out.path(), Duration::from_secs(4)), 10_000, |seen| seen.last().is_some_and(is_waiting))
}

#[test]
fn an_hls_segment_on_a_refused_host_is_never_connected_to() {
    let dir = TempDir::new("refused-segment");
    let forbidden = Untouchable::bind();
    let playlist = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nhttp://127.0.0.1:{}/seg.ts\n#EXT-X-ENDLIST\n",
        forbidden.port()
    );
    std::fs::write(dir.join("in.m3u8"), playlist).expect("write playlist");
    let server = HttpServer::serve(dir.path());
    let input = InputSpec {
        allow_file: false,
        guard: Guard::new(Arc::new(RefusePort(forbidden.port()))),
        ..support::input(&server.url("in.m3u8"), Duration::from_secs(30))
    };
    let recording = record_until_waiting(input, "refused-segment-out");
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    assert_eq!(recording.count(|o| matches!(o, Output::FileOpened { .. })), 0, "{:?}", recording.outputs);
    assert!(!forbidden.accepted(), "the refused host saw a connection");
}

#[test]
fn a_redirect_to_a_refused_host_is_not_followed() {
    let forbidden = Untouchable::bind();
    let redirector = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = redirector.local_addr().map(|a| a.port()).unwrap_or(1);
    let target = format!("http://127.0.0.1:{}/in.m3u8", forbidden.port());
    std::thread::spawn(move || {
        for mut stream in redirector.incoming().flatten().take(4) {
            let _ = stream.read(&mut [0; 4096]);
            let answer = format!("HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n");
            let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
        }
    });
    let input = InputSpec {
        allow_file: false,
        guard: Guard::new(Arc::new(RefusePort(forbidden.port()))),
        ..support::input(&format!("http://127.0.0.1:{port}/in.m3u8"), Duration::from_secs(30))
    };
    let recording = record_until_waiting(input, "redirect-out");
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    assert_eq!(recording.waiting_reasons(), ["cannot open the stream: refused: the stream's address is not public"]);
    assert!(!forbidden.accepted(), "the redirect target saw a connection");
}
