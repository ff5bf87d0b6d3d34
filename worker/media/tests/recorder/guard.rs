//! Hostile sources the stream guard stands up to: an RTSP server redirecting to an address
//! the worker must not reach, and an HLS playlist too large to hold.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use roomrec_media::{Guard, InputSpec, Output};

use crate::inputs::{record_until_waiting, RefusePort, Untouchable};
use crate::support;

/// An RTSP server that answers OPTIONS and redirects DESCRIBE to `location`; sends every
/// method it is asked on `seen`.
fn redirecting_rtsp_server(location: String, seen: mpsc::Sender<String>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().map(|a| a.port()).expect("port");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(4) {
            let mut reader = BufReader::new(&stream);
            loop {
                let (mut method, mut cseq, mut line) = (String::new(), String::new(), String::new());
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                    if method.is_empty() {
                        method = line.split_whitespace().next().unwrap_or_default().to_owned();
                    } else if let Some(value) = line.strip_prefix("CSeq:") {
                        cseq = value.trim().to_owned();
                    }
                    line.clear();
                }
                if method.is_empty() {
                    break;
                }
                let answer = match method.as_str() {
                    "OPTIONS" => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"),
                    _ => format!("RTSP/1.0 302 Moved Temporarily\r\nCSeq: {cseq}\r\nLocation: {location}\r\n\r\n"),
                };
                let _ = seen.send(method);
                if (&stream).write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    port
}

#[test]
fn an_rtsp_redirect_is_refused_and_its_target_never_connected_to() {
    let forbidden = Untouchable::bind();
    let (seen_tx, seen) = mpsc::channel();
    let port = redirecting_rtsp_server(format!("rtsp://127.0.0.1:{}/x", forbidden.port()), seen_tx);
    let input = InputSpec {
        allow_file: false,
        guard: Guard::new(Arc::new(RefusePort(forbidden.port()))),
        ..support::input(&format!("rtsp://127.0.0.1:{port}/cam"), Duration::from_secs(30))
    };
    let recording = record_until_waiting(input, "rtsp-redirect-out");
    assert!(recording.result.is_ok(), "{:?}", recording.result);
    assert_eq!(
        recording.waiting_reasons(),
        ["cannot open the stream: refused: the RTSP server answered 302 (a redirect, which is not followed)"]
    );
    assert_eq!(recording.count(|o| matches!(o, Output::FileOpened { .. })), 0);
    let methods: Vec<String> = seen.try_iter().collect();
    assert_eq!(methods, ["OPTIONS", "DESCRIBE"], "the relay passed the dialogue on up to the redirect");
    assert!(!forbidden.accepted(), "the redirect target saw a connection");
}

/// A VOD playlist of `bytes` or a little more, every entry the same real 4-second segment.
fn write_playlist(dir: &support::TempDir, name: &str, bytes: usize) {
    let source = dir.join("in.flv");
    support::make_input(&source, 4, "320x240", "aac");
    let segment = dir.join("seg.ts");
    support::ffmpeg(&[
        "-i",
        &source.display().to_string(),
        "-c",
        "copy",
        "-f",
        "mpegts",
        &segment.display().to_string(),
    ]);
    let mut playlist = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n");
    while playlist.len() < bytes {
        playlist.push_str("#EXTINF:4.0,\nseg.ts\n");
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(dir.join(name), playlist).expect("write playlist");
}

#[test]
fn an_hls_playlist_over_one_mib_is_refused_and_a_small_one_records() {
    let dir = support::TempDir::new("big-playlist");
    write_playlist(&dir, "big.m3u8", 5 * 1024 * 1024);
    write_playlist(&dir, "small.m3u8", 150);
    let server = support::HttpServer::serve(dir.path());
    let elsewhere = Untouchable::bind();
    let input = |name: &str| InputSpec {
        allow_file: false,
        guard: Guard::new(Arc::new(RefusePort(elsewhere.port()))),
        ..support::input(&server.url(name), Duration::from_secs(30))
    };

    let big = record_until_waiting(input("big.m3u8"), "big-playlist-out");
    assert!(big.result.is_ok(), "{:?}", big.result);
    assert_eq!(big.waiting_reasons(), ["cannot open the stream: refused: the HLS playlist is larger than 1024 KiB"]);
    assert_eq!(big.count(|o| matches!(o, Output::FileOpened { .. })), 0, "{:?}", big.outputs);

    // The same segments under a short playlist are recorded.
    let small = record_until_waiting(input("small.m3u8"), "small-playlist-out");
    assert!(small.result.is_ok(), "{:?}", small.result);
    assert!(small.count(|o| matches!(o, Output::FileOpened { .. })) > 0, "{:?}", small.outputs);
}
