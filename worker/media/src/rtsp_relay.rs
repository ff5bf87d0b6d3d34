//! The RTSP relay: libavformat's RTSP client connects to a relay on loopback, one per open
//! input, which connects only to the stream's checked address and passes every byte on,
//! except a redirect.
//!
//! libavformat 5.1 follows a 3xx reply by itself: `ff_rtsp_connect` sets the URL to the
//! `Location` and opens a new TCP connection to that host, which no guard would see. So the
//! relay reads the server's side the way libavformat's `ff_rtsp_read_reply` does (lines,
//! `$` interleaved packets at a line start, `Content-Length` bodies) and ends the connection
//! instead of passing on a status line libavformat would read as 3xx: it never learns of the
//! redirect, the open fails, and no connection to the `Location` host is attempted.
//! Redirects are refused rather than followed: a camera or media server is named by its
//! real address, and one that moves can be saved again.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Longest line passed on; libavformat keeps 4,095 bytes of one (`buf[4096]`), and no real
/// reply comes near this.
const MAX_LINE_BYTES: usize = 8 * 1024;

/// Longest status or `Content-Length` line passed on: below libavformat's 1,023-byte word
/// buffer and its line buffer, so it reads every byte of those lines the relay judges.
const MAX_JUDGED_LINE_BYTES: usize = 1000;

/// A running RTSP relay; it stops accepting when dropped (open connections end with their
/// sockets).
pub(crate) struct RtspRelay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    refusal: Arc<Mutex<Option<String>>>,
}

impl RtspRelay {
    /// Starts a relay whose every connection goes to the first of `upstream` (checked
    /// addresses) that answers within `io_timeout`.
    pub(crate) fn start(upstream: Vec<SocketAddr>, io_timeout: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let refusal = Arc::new(Mutex::new(None));
        let (stopping, refused) = (Arc::clone(&stop), Arc::clone(&refusal));
        std::thread::Builder::new().name("rtsp-relay".into()).spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (upstream, refused) = (upstream.clone(), Arc::clone(&refused));
                let spawned = std::thread::Builder::new()
                    .name("rtsp-relay-conn".into())
                    .spawn(move || serve(client, &upstream, io_timeout, &refused));
                if let Err(error) = spawned {
                    tracing::warn!(%error, "cannot start an RTSP relay thread");
                }
            }
        })?;
        Ok(Self { addr, stop, refusal })
    }

    /// The loopback port libavformat connects to.
    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Why the relay ended a connection, if it did.
    pub(crate) fn refusal(&self) -> Option<String> {
        self.refusal.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for RtspRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// One connection from libavformat: connect to the checked address, pass requests on as
/// they are, and replies through [`Replies`].
fn serve(client: TcpStream, upstream: &[SocketAddr], io_timeout: Duration, refused: &Mutex<Option<String>>) {
    let Some(server) = upstream.iter().find_map(|a| TcpStream::connect_timeout(a, io_timeout).ok()) else {
        return;
    };
    let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else { return };
    let requests = std::thread::Builder::new().name("rtsp-relay-requests".into()).spawn(move || {
        let (mut from, mut to) = (client_reader, server_writer);
        let _ = io::copy(&mut from, &mut to);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
    if let Err(reason) = pass_replies(&server, &client) {
        let address = server.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::warn!(%address, %reason, "a stream pull was refused");
        *refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    if let Ok(requests) = requests {
        let _ = requests.join();
    }
}

/// Copies the server's bytes to the client until either side ends; why it stopped early if
/// the server sent what the relay refuses.
fn pass_replies(mut server: &TcpStream, mut client: &TcpStream) -> Result<(), String> {
    let mut replies = Replies::default();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(chunk.len());
    loop {
        let n = match server.read(&mut chunk) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => n,
        };
        out.clear();
        let verdict = replies.feed(&chunk[..n], &mut out);
        // What came before a refused line is passed on; the line itself never is.
        if client.write_all(&out).is_err() {
            return verdict;
        }
        verdict?;
    }
}

/// Where the server's byte stream is, as libavformat's reply reader sees it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Inside a line of a message head.
    #[default]
    Line,
    /// Inside the 3-byte header after `$` (channel, then a big-endian length): bytes still
    /// to come, and the length read so far.
    PacketHeader { left: u8, len: u16 },
    /// Inside an interleaved packet or a message body: bytes still to pass on.
    Payload(usize),
}

/// The server's side of an RTSP connection, split as `ff_rtsp_read_reply` splits it: lines
/// end at `\n`, every `\r` is dropped, a `$` before any other byte of a line starts an
/// interleaved packet that is skipped, an empty line (or one starting with NUL) ends a head,
/// and a positive `Content-Length` (the last one, `strtol` cast to `int`) body follows.
#[derive(Debug)]
struct Replies {
    at: At,
    /// Raw bytes of the line being read, held back until it is judged.
    raw: Vec<u8>,
    /// The line as libavformat stores it: without any `\r`.
    line: Vec<u8>,
    /// Whether the line being read is the first of a message (a status or request line).
    first: bool,
    content_length: i32,
}

impl Default for Replies {
    fn default() -> Self {
        Self { at: At::Line, raw: Vec::new(), line: Vec::new(), first: true, content_length: 0 }
    }
}

impl Replies {
    /// Appends to `out` the bytes of `input` that may go to libavformat; an error names what
    /// was refused (nothing of that line is in `out`, and nothing after it may be passed on).
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut i = 0;
        while i < input.len() {
            match self.at {
                At::Payload(left) => {
                    let n = left.min(input.len() - i);
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    self.at = if n == left { At::Line } else { At::Payload(left - n) };
                    continue;
                }
                At::PacketHeader { left, len } => {
                    let byte = input[i];
                    out.push(byte);
                    // The first header byte is the channel, the next two the length.
                    let len = if left == 3 { len } else { (len << 8) | u16::from(byte) };
                    self.at = match left {
                        1 if len > 0 => At::Payload(usize::from(len)),
                        1 => At::Line,
                        _ => At::PacketHeader { left: left - 1, len },
                    };
                }
                At::Line => self.line_byte(input[i], out)?,
            }
            i += 1;
        }
        Ok(())
    }

    fn line_byte(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), String> {
        match byte {
            b'\n' => {
                self.raw.push(byte);
                self.end_line()?;
                out.append(&mut self.raw);
                self.line.clear();
            }
            b'$' if self.line.is_empty() => {
                out.append(&mut self.raw);
                out.push(byte);
                self.at = At::PacketHeader { left: 3, len: 0 };
            }
            _ => {
                self.raw.push(byte);
                if byte != b'\r' {
                    self.line.push(byte);
                }
                if self.raw.len() > MAX_LINE_BYTES {
                    return Err("the RTSP server sent a line longer than 8 KiB".into());
                }
            }
        }
        Ok(())
    }

    /// Judges the line just ended, and moves on to the next line or to the body.
    fn end_line(&mut self) -> Result<(), String> {
        // libavformat reads the line as a C string.
        let text = self.line.split(|b| *b == 0).next().unwrap_or_default();
        if text.is_empty() {
            let body = usize::try_from(self.content_length).unwrap_or(0);
            self.at = if body > 0 { At::Payload(body) } else { At::Line };
            (self.first, self.content_length) = (true, 0);
            return Ok(());
        }
        if self.first {
            self.first = false;
            if text.len() > MAX_JUDGED_LINE_BYTES {
                return Err("the RTSP server sent an overlong status line".into());
            }
            if let Some(status) = redirect_status(text) {
                return Err(format!("the RTSP server answered {status} (a redirect, which is not followed)"));
            }
        } else if text.len() >= 15 && text[..15].eq_ignore_ascii_case(b"content-length:") {
            if text.len() > MAX_JUDGED_LINE_BYTES {
                return Err("the RTSP server sent an overlong Content-Length".into());
            }
            // `strtol` stored in an `int`: the truncation is libavformat's.
            #[allow(clippy::cast_possible_truncation)]
            let length = c_strtol(&text[15..]) as i32;
            self.content_length = length;
        }
        Ok(())
    }
}

/// The status of a reply line libavformat would read as a redirect: first word starting
/// `RTSP/`, second word's `atoi` in 300..=399.
fn redirect_status(line: &[u8]) -> Option<i32> {
    let mut words = line.split(|b| matches!(b, b' ' | b'\t')).filter(|w| !w.is_empty());
    if !words.next()?.starts_with(b"RTSP/") {
        return None;
    }
    // glibc's `atoi` is `(int) strtol(…, 10)`.
    #[allow(clippy::cast_possible_truncation)]
    let status = c_strtol(words.next().unwrap_or_default()) as i32;
    (300..400).contains(&status).then_some(status)
}

/// C's `strtol(text, NULL, 10)`: leading white space, a sign, digits; saturates on overflow.
fn c_strtol(text: &[u8]) -> i64 {
    let mut digits =
        text.iter().copied().skip_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')).peekable();
    let negative = match digits.peek() {
        Some(b'-') => {
            digits.next();
            true
        }
        Some(b'+') => {
            digits.next();
            false
        }
        _ => false,
    };
    let mut value: i64 = 0;
    for digit in digits.take_while(u8::is_ascii_digit).map(|d| i64::from(d - b'0')) {
        let next =
            value.checked_mul(10).and_then(|v| if negative { v.checked_sub(digit) } else { v.checked_add(digit) });
        match next {
            Some(next) => value = next,
            None => return if negative { i64::MIN } else { i64::MAX },
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(chunks: &[&[u8]]) -> (Vec<u8>, Result<(), String>) {
        let mut replies = Replies::default();
        let mut out = Vec::new();
        for chunk in chunks {
            if let Err(refused) = replies.feed(chunk, &mut out) {
                return (out, Err(refused));
            }
        }
        (out, Ok(()))
    }

    const DESCRIBE: &[u8] =
        b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 30\r\n\r\nv=0\r\nRTSP/1.0 302 Found\r\nx=y\r\n";

    #[test]
    fn replies_bodies_and_interleaved_packets_pass_unchanged_in_any_chunking() {
        let mut stream = DESCRIBE.to_vec();
        stream.extend_from_slice(b"$\x00\x00\x05RTSP/");
        stream.extend_from_slice(b"RTSP/1.0 200 OK\r\n$\x01\x00\x02ab\rCSeq: 3\r\n\r\n");
        for split in 0..stream.len() {
            let (out, verdict) = pass(&[&stream[..split], &stream[split..]]);
            assert_eq!(verdict, Ok(()), "split at {split}");
            assert_eq!(out, stream, "split at {split}");
        }
    }

    #[test]
    fn a_redirect_status_line_is_never_passed_on() {
        for reply in [
            &b"RTSP/1.0 302 Found\r\nLocation: rtsp://169.254.169.254/x\r\n\r\n"[..],
            b"  RTSP/1.0\t301\r\n\r\n",
            b"\r$\x00\x00\x01zRTSP/2.0 +399 x\n\n",
            b"RTSP/1.0 4294967598\r\n\r\n",
            b"RTSP/1.0 \x0b307\r\n\r\n",
        ] {
            let (out, verdict) = pass(&[reply]);
            assert!(verdict.is_err(), "{:?}", String::from_utf8_lossy(reply));
            assert!(!out.windows(5).any(|w| w == b"RTSP/"), "{:?}", String::from_utf8_lossy(&out));
        }
        let (out, verdict) = pass(&[b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nRTSP/1.0 302 Moved\r\n"]);
        assert!(verdict.unwrap_err().contains("302"));
        assert_eq!(out, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");
    }

    #[test]
    fn what_libavformat_would_not_read_as_a_redirect_passes() {
        for reply in [
            &b"RTSP/1.0 200 OK\r\nLocation: rtsp://169.254.169.254/x\r\n\r\n"[..],
            b"RTSP/1.0\x00 302\r\n\r\n",
            b"HTTP/1.0 302 Found\r\n\r\n",
            b"rtsp/1.0 302 Found\r\n\r\n",
            b"\r\nRTSP/1.0 404 Not Found\r\n\r\n",
        ] {
            let (out, verdict) = pass(&[reply]);
            assert_eq!((out.as_slice(), verdict), (reply, Ok(())));
        }
    }

    #[test]
    fn a_body_length_is_read_as_libavformat_reads_it() {
        // 2^32 + 5 in an int is 5: the 302 after five body bytes is a status line.
        let (_, verdict) = pass(&[b"RTSP/1.0 200 OK\r\ncontent-LENGTH:  4294967301\r\n\r\nabcdeRTSP/1.0 302 x\r\n"]);
        assert!(verdict.is_err());
        // A negative length has no body.
        let (_, verdict) = pass(&[b"RTSP/1.0 200 OK\r\nContent-Length: -4\r\n\r\nRTSP/1.0 302 x\r\n"]);
        assert!(verdict.is_err());
        // The last Content-Length counts, and `\r` inside a line is dropped.
        let (_, verdict) =
            pass(&[b"RTSP/1.0 200 OK\r\nContent-Length: 90\r\nContent-\rLength: 0\r\n\r\nRTSP/1.0 302 x\r\n"]);
        assert!(verdict.is_err());
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut status = b"RTSP/1.0 ".to_vec();
        status.extend(std::iter::repeat_n(b'0', 1100));
        status.extend_from_slice(b"302\r\n\r\n");
        assert!(pass(&[&status]).1.is_err());
        let endless = vec![b'a'; MAX_LINE_BYTES + 1];
        assert!(pass(&[b"RTSP/1.0 200 OK\r\n", &endless]).1.is_err());
    }

    #[test]
    fn strtol_is_c_strtol() {
        for (text, value) in [
            (&b" 42x"[..], 42),
            (b"-7", -7),
            (b"+3", 3),
            (b"", 0),
            (b"x1", 0),
            (b"99999999999999999999", i64::MAX),
            (b"-99999999999999999999", i64::MIN),
        ] {
            assert_eq!(c_strtol(text), value, "{:?}", String::from_utf8_lossy(text));
        }
    }
}
