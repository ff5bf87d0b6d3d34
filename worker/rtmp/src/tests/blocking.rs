//! `blocking::start` over an in-memory stream standing in for a socket.

use std::io::{self, Read, Write};
use std::time::Duration;

use super::play::{started, target};
use super::server::{handshake, head, Script};
use crate::{blocking, Session};

/// Serves `input` in reads of at most 1000 bytes, then times out (or ends, if `closes`).
struct FakeSocket {
    input: Vec<u8>,
    at: usize,
    closes: bool,
    written: Vec<u8>,
}

impl FakeSocket {
    fn new(script: Script, closes: bool) -> Self {
        let mut input = handshake();
        input.extend_from_slice(&script.out);
        Self { input, at: 0, closes, written: Vec::new() }
    }
}

impl Read for FakeSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.at..];
        if rest.is_empty() && !self.closes {
            std::thread::sleep(Duration::from_millis(5));
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len()).min(1000);
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for FakeSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const TIMEOUT: Duration = Duration::from_millis(300);

#[test]
fn start_returns_once_playing_with_the_media_read_so_far() {
    let mut script = started(4096);
    script.message(head(0, 6, 0, 9), b"first frame");
    let mut socket = FakeSocket::new(script, false);
    let (mut session, mut flv) = (Session::play(target()), Vec::new());
    blocking::start(&mut socket, &mut session, &mut flv, TIMEOUT).unwrap();
    assert_eq!(socket.written[..9], [3, 0, 0, 0, 0, 0, 0, 0, 0], "C0 and C1 went out first");
    let tags: Vec<_> = crate::flv::tags(&flv).map(|t| t.data.to_vec()).collect();
    assert_eq!(tags, [b"first frame".to_vec()]);
}

#[test]
fn start_fails_at_the_deadline_when_the_server_is_silent() {
    let mut socket = FakeSocket::new(Script::new(), false);
    let error = blocking::start(&mut socket, &mut Session::play(target()), &mut Vec::new(), TIMEOUT).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
}

#[test]
fn start_fails_when_the_server_closes_or_refuses() {
    let mut socket = FakeSocket::new(Script::new(), true);
    let error = blocking::start(&mut socket, &mut Session::play(target()), &mut Vec::new(), TIMEOUT).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);

    let mut refused = Script::new();
    refused.status("error", "NetConnection.Connect.Rejected", "Go away");
    let mut socket = FakeSocket::new(refused, false);
    let error = blocking::start(&mut socket, &mut Session::play(target()), &mut Vec::new(), TIMEOUT).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    assert!(error.to_string().contains("NetConnection.Connect.Rejected: Go away"), "{error}");
}
