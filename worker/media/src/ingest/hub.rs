//! The ingest thread: every RTMP connection of the process on one thread and one epoll
//! instance (mio). It wakes at most once per [`TICK`], reads every socket that has data in
//! large reads into one reused buffer, parses the chunks (`roomrec_rtmp::Session`) straight
//! into each stream's [`Feed`] and wakes each stream's media thread once per batch — where
//! libavformat's own client wakes its thread for every chunk header and body.

use std::collections::HashMap;
use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use roomrec_rtmp::{Session, Status};

use super::feed::{End, Feed, MAX_UNREAD_BYTES};
use super::transport::Transport;

/// The longest a batch waits: bytes that arrive within it are read together, where a live
/// stream sends a message every ~13 ms (30 fps and 48 kHz AAC). Each stream's reader is woken
/// less often still (see `feed::Feed::new`).
const TICK: Duration = Duration::from_millis(50);

/// Bytes read from one connection per batch, so one fast server cannot hold up the others.
const MAX_READ_PER_TICK: usize = 1 << 20;

/// The size of each socket read.
const READ_BYTES: usize = 64 << 10;

const WAKER: Token = Token(usize::MAX);

/// A connection handed to the ingest thread.
pub(crate) struct Connection {
    pub transport: Transport,
    pub session: Session,
    pub feed: Arc<Feed>,
}

/// The process's ingest thread, started with the first connection.
struct Hub {
    new: Mutex<Sender<Connection>>,
    waker: Waker,
}

/// Hands `connection` to the ingest thread, which serves it until it ends or its feed is
/// abandoned.
pub(crate) fn serve(connection: Connection) -> io::Result<()> {
    let hub = hub()?;
    let sent = hub.new.lock().unwrap_or_else(PoisonError::into_inner).send(connection);
    sent.map_err(|_| io::Error::other("the ingest thread stopped"))?;
    hub.waker.wake()
}

/// Has the ingest thread look at its connections now (a feed was abandoned).
pub(crate) fn nudge() {
    if let Ok(hub) = hub() {
        let _ = hub.waker.wake();
    }
}

fn hub() -> io::Result<&'static Hub> {
    static HUB: OnceLock<Result<Hub, String>> = OnceLock::new();
    HUB.get_or_init(|| start().map_err(|e| e.to_string())).as_ref().map_err(|e| io::Error::other(e.clone()))
}

fn start() -> io::Result<Hub> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let (new, arrivals) = mpsc::channel();
    std::thread::Builder::new().name("rtmp-ingest".into()).spawn(move || run(poll, arrivals))?;
    Ok(Hub { new: Mutex::new(new), waker })
}

/// What the thread knows of one connection.
struct Served {
    connection: Connection,
    /// Read or write again at the next batch without waiting for an event: a read stopped
    /// at [`MAX_READ_PER_TICK`] or before the socket said it had no more, a feed over
    /// [`MAX_UNREAD_BYTES`], bytes the socket did not take.
    again: bool,
}

fn run(mut poll: Poll, arrivals: Receiver<Connection>) {
    let mut events = Events::with_capacity(1024);
    let mut served: HashMap<Token, Served> = HashMap::new();
    let mut next_token = 0usize;
    let mut buf = vec![0; READ_BYTES];
    let mut due = Vec::new();
    let mut fed = Vec::new();
    loop {
        let batch = Instant::now();
        let waiting = served.values().any(|s| s.again);
        // The previous batch ended with a tick's sleep: what is due is served at once.
        if let Err(error) = poll.poll(&mut events, waiting.then_some(Duration::ZERO)) {
            if error.kind() != io::ErrorKind::Interrupted {
                tracing::error!(%error, "the ingest thread cannot poll; its streams end");
                for (_, s) in served.drain() {
                    s.connection.feed.end(End::Failed("the worker's ingest failed".into()));
                }
                return;
            }
        }
        due.clear();
        due.extend(events.iter().map(|e| e.token()).filter(|t| *t != WAKER));
        while let Ok(mut connection) = arrivals.try_recv() {
            let token = Token(next_token);
            next_token = next_token.wrapping_add(1) % WAKER.0;
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(error) = poll.registry().register(connection.transport.socket(), token, interest) {
                connection.feed.end(End::Failed(format!("the connection cannot be watched: {error}")));
                continue;
            }
            served.insert(token, Served { connection, again: true });
        }
        due.extend(served.iter().filter(|(_, s)| s.again).map(|(t, _)| *t));
        due.sort_unstable();
        due.dedup();
        let before = crate::ffi::thread_cpu_time();
        for token in &due {
            let Some(s) = served.get_mut(token) else { continue };
            match service(s, &mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    s.connection.feed.wake_if_due();
                    fed.push((Arc::clone(&s.connection.feed), n));
                }
                Err(end) => {
                    if let Some(mut s) = served.remove(token) {
                        let _ = poll.registry().deregister(s.connection.transport.socket());
                        s.connection.feed.end(end);
                    }
                }
            }
        }
        charge(crate::ffi::thread_cpu_time().saturating_sub(before), &mut fed);
        served.retain(|_, s| {
            let keep = !s.connection.feed.abandoned();
            if !keep {
                let _ = poll.registry().deregister(s.connection.transport.socket());
            }
            keep
        });
        // One batch per tick: what arrives meanwhile waits in the sockets.
        if let Some(rest) = TICK.checked_sub(batch.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// Charges the CPU of a batch to the streams it read, by their share of the bytes (metering);
/// empties `fed`. One clock read per batch, where one per stream was a syscall pair each.
fn charge(cpu: Duration, fed: &mut Vec<(Arc<Feed>, usize)>) {
    let total: usize = fed.iter().map(|(_, n)| n).sum();
    for (feed, n) in fed.drain(..) {
        feed.charge(cpu.mul_f64(n as f64 / total as f64));
    }
}

/// Sends what the session has to say, then reads what the server sent into the feed; how
/// many bytes were read.
fn service(s: &mut Served, buf: &mut [u8]) -> Result<usize, End> {
    let Connection { transport, session, feed } = &mut s.connection;
    s.again = false;
    send(transport, session, &mut s.again)?;
    let mut read = 0;
    while read < MAX_READ_PER_TICK {
        if feed.abandoned() {
            return Ok(read);
        }
        if feed.unread() >= MAX_UNREAD_BYTES {
            s.again = true;
            break;
        }
        let n = match transport.read(buf) {
            Ok(0) => return Err(End::Failed("the server closed the connection".into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(End::Failed(format!("reading the stream failed: {e}"))),
        };
        read += n;
        let status = feed.append(|flv| session.receive(&buf[..n], flv));
        match status {
            Ok(Status::Ended(reason)) => return Err(End::Ended(reason)),
            Ok(Status::Starting | Status::Started) => {}
            Err(error) => return Err(End::Failed(format!("the server broke the RTMP protocol: {error}"))),
        }
        if n < buf.len() && transport.drained_by_short_read() {
            // Most likely all there was. Rather than a read now that only says so, the next
            // batch reads again without waiting for an event, by when a live stream has more.
            s.again = true;
            break;
        }
    }
    s.again |= read >= MAX_READ_PER_TICK;
    // Acknowledgements, ping responses and the next commands.
    send(transport, session, &mut s.again)?;
    Ok(read)
}

fn send(transport: &mut Transport, session: &mut Session, again: &mut bool) -> Result<(), End> {
    let failed = |e: io::Error| End::Failed(format!("writing to the server failed: {e}"));
    transport
        .flush()
        .or_else(|e| if e.kind() == io::ErrorKind::WouldBlock { Ok(()) } else { Err(e) })
        .map_err(failed)?;
    while !session.pending().is_empty() {
        match transport.write(session.pending()) {
            Ok(0) => return Err(End::Failed("the server closed the connection".into())),
            Ok(n) => session.sent(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *again = true;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(())
}
