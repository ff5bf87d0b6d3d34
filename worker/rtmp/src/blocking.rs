//! The start of a session over a blocking stream (a `TcpStream`, a TLS stream over one): enough
//! for tools, tests and the benchmark's publisher; the worker drives sessions from its own
//! event loop instead.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::{Session, Status};

/// Bytes asked of the stream per read.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// Drives `session` over a blocking stream until it is Started (or ended/failed), within
/// `timeout`. The deadline is checked between reads, so the caller sets the stream's read
/// timeout (a fraction of `timeout`); a read that times out is retried until the deadline.
/// Bytes of media already received go to `flv`.
///
/// Errors: `TimedOut` at the deadline, `UnexpectedEof` when the server closes, `InvalidData`
/// for a [`ProtocolError`](crate::ProtocolError), `ConnectionRefused` when the server ended
/// the stream (the text says why), and the stream's own errors.
pub fn start<S: Read + Write>(
    stream: &mut S,
    session: &mut Session,
    flv: &mut Vec<u8>,
    timeout: Duration,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut buffer = vec![0; READ_BUFFER_BYTES];
    loop {
        flush(stream, session)?;
        match session.status() {
            Status::Started => return Ok(()),
            Status::Ended(text) => {
                return Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("the server ended: {text}")))
            }
            Status::Starting => {}
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the RTMP session did not start in time"));
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection")),
            Ok(n) => {
                session.receive(&buffer[..n], flv).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes everything the session has queued.
fn flush<S: Write>(stream: &mut S, session: &mut Session) -> io::Result<()> {
    while !session.pending().is_empty() {
        let n = stream.write(session.pending())?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the server stopped taking bytes"));
        }
        session.sent(n);
    }
    stream.flush()
}
