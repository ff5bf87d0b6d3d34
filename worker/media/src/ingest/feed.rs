//! One stream's bytes between the ingest thread, which appends FLV as it arrives, and the
//! stream's media thread, which reads them through libavformat's FLV demuxer, then takes
//! them whole (see `crate::ingest`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// FLV not yet read by the demuxer above which the ingest thread stops reading the socket
/// (TCP then slows the server down): a stream's media thread that falls this far behind is
/// not kept up with by buffering more.
pub(crate) const MAX_UNREAD_BYTES: usize = 8 << 20;

/// How often a waiting reader looks at its deadline (and its abort flag): longer than a
/// recording's batches (`input::RECORDING_BATCH`), so a reader is woken by bytes, not by its
/// own timer.
const WAIT_STEP: Duration = Duration::from_millis(300);

/// Read bytes are dropped from the front once this many have gathered.
const COMPACT_AFTER: usize = 256 << 10;

/// Room a drained buffer keeps: more than a batch of a stream of several Mbit/s. What it grew
/// past that while its reader was away (opening the input, probing) is given back, or every
/// stream would hold its worst moment's bytes for the rest of the recording.
const KEPT_CAPACITY: usize = 512 << 10;

#[derive(Debug)]
struct State {
    bytes: Vec<u8>,
    /// When the reader was last woken for bytes.
    woken: Instant,
    read: usize,
    /// Why the connection ended; the reader sees it once the bytes before it are read.
    end: Option<End>,
    /// The reader is gone: the ingest thread closes the connection.
    abandoned: bool,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The server ended the stream (the publisher stopped, or the server refused it).
    Ended(String),
    /// The connection or the protocol failed.
    Failed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ended(reason) => write!(f, "the server ended the stream: {reason}"),
            Self::Failed(reason) => f.write_str(reason),
        }
    }
}

/// What a read gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Got {
    Bytes(usize),
    End(End),
    /// `expired` said to stop waiting.
    Interrupted,
}

/// The shared state of one stream's bytes.
#[derive(Debug)]
pub(crate) struct Feed {
    state: Mutex<State>,
    ready: Condvar,
    /// The reader is woken for bytes at most this often.
    batch: Duration,
    /// CPU the ingest thread spent on this stream, in nanoseconds (metering).
    cpu_ns: AtomicU64,
}

impl Feed {
    /// A feed whose reader is woken for new bytes at most every `batch` (a wake-up of the
    /// reader's thread costs more than handing it a batch of bytes at once).
    pub(crate) fn new(batch: Duration) -> Self {
        let state = State { bytes: Vec::new(), woken: Instant::now(), read: 0, end: None, abandoned: false };
        Self { state: Mutex::new(state), ready: Condvar::new(), batch, cpu_ns: AtomicU64::new(0) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends what `fill` writes to the unread bytes (ingest thread); the reader is woken
    /// by [`Feed::wake_if_due`], once per batch.
    pub(crate) fn append<T>(&self, fill: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        let mut state = self.state();
        if state.read >= COMPACT_AFTER {
            let read = state.read;
            state.bytes.drain(..read);
            state.read = 0;
        }
        fill(&mut state.bytes)
    }

    /// Counts CPU the ingest thread spent on this stream.
    pub(crate) fn charge(&self, cpu: Duration) {
        self.cpu_ns.fetch_add(u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// CPU the ingest thread spent on this stream so far.
    pub(crate) fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_ns.load(Ordering::Relaxed))
    }

    /// Wakes the reader if it waits and was last woken a batch ago.
    pub(crate) fn wake_if_due(&self) {
        let mut state = self.state();
        if state.woken.elapsed() >= self.batch {
            state.woken = Instant::now();
            self.ready.notify_one();
        }
    }

    /// Bytes appended and not read yet.
    pub(crate) fn unread(&self) -> usize {
        let state = self.state();
        state.bytes.len() - state.read
    }

    /// The connection ended (ingest thread); the reader gets `end` after the bytes before it.
    pub(crate) fn end(&self, end: End) {
        self.state().end.get_or_insert(end);
        self.ready.notify_one();
    }

    /// How the connection ended, if it did.
    pub(crate) fn ended(&self) -> Option<End> {
        self.state().end.clone()
    }

    /// Whether the reader is gone.
    pub(crate) fn abandoned(&self) -> bool {
        self.state().abandoned
    }

    /// The reader is gone (media thread).
    pub(crate) fn abandon(&self) {
        let mut state = self.state();
        state.abandoned = true;
        state.bytes = Vec::new();
        state.read = 0;
    }

    /// Copies unread bytes into `buf`, waiting for some until the connection ends or
    /// `expired` says to stop (asked every [`WAIT_STEP`]).
    pub(crate) fn read(&self, buf: &mut [u8], expired: impl Fn() -> bool) -> Got {
        self.wait_for(expired, |state| Self::copy_out(state, buf))
    }

    /// As [`Feed::read`] without waiting: `None` while there is nothing to read. Bytes are
    /// appended a whole FLV tag at a time, so a reader that finds none has read whole tags.
    pub(crate) fn read_now(&self, buf: &mut [u8]) -> Option<Got> {
        let mut state = self.state();
        Self::copy_out(&mut state, buf).or_else(|| state.end.clone().map(Got::End))
    }

    /// Moves the unread bytes into `into` (emptied first), waiting as [`Feed::read`] does.
    /// Read from the start, the two buffers are swapped rather than copied: a reader that
    /// takes into the same buffer every time passes two allocations back and forth.
    pub(crate) fn take(&self, into: &mut Vec<u8>, expired: impl Fn() -> bool) -> Got {
        into.clear();
        into.shrink_to(KEPT_CAPACITY);
        self.wait_for(expired, |state| {
            if state.read == state.bytes.len() {
                return None;
            }
            match state.read {
                0 => std::mem::swap(into, &mut state.bytes),
                read => {
                    into.extend_from_slice(&state.bytes[read..]);
                    state.bytes.clear();
                    state.read = 0;
                }
            }
            Some(Got::Bytes(into.len()))
        })
    }

    /// What `give` takes from the unread bytes, else the end, else `Interrupted` once
    /// `expired`; waits for bytes meanwhile.
    fn wait_for(&self, expired: impl Fn() -> bool, mut give: impl FnMut(&mut State) -> Option<Got>) -> Got {
        let mut state = self.state();
        loop {
            if let Some(got) = give(&mut state) {
                return got;
            }
            if let Some(end) = &state.end {
                return Got::End(end.clone());
            }
            if expired() {
                return Got::Interrupted;
            }
            state = self.ready.wait_timeout(state, WAIT_STEP).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Copies unread bytes into `buf`, if there are any.
    fn copy_out(state: &mut State, buf: &mut [u8]) -> Option<Got> {
        let unread = &state.bytes[state.read..];
        if unread.is_empty() {
            return None;
        }
        let n = unread.len().min(buf.len());
        buf[..n].copy_from_slice(&unread[..n]);
        state.read += n;
        if state.read == state.bytes.len() {
            state.bytes.clear();
            state.bytes.shrink_to(KEPT_CAPACITY);
            state.read = 0;
        }
        Some(Got::Bytes(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn bytes_are_read_in_order_then_the_end() {
        let feed = Feed::new(Duration::ZERO);
        feed.append(|b| b.extend_from_slice(b"abcdef"));
        feed.end(End::Ended("unpublished".into()));
        let mut buf = [0; 4];
        assert_eq!(feed.read(&mut buf, || false), Got::Bytes(4));
        assert_eq!(&buf, b"abcd");
        assert_eq!(feed.read(&mut buf, || false), Got::Bytes(2));
        assert_eq!(&buf[..2], b"ef");
        assert_eq!(feed.read(&mut buf, || false), Got::End(End::Ended("unpublished".into())));
    }

    #[test]
    fn a_waiting_reader_gets_bytes_appended_later_or_gives_up_when_told() {
        let feed = Arc::new(Feed::new(Duration::ZERO));
        let writer = Arc::clone(&feed);
        let appender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.append(|b| b.push(7));
            writer.wake_if_due();
        });
        let mut buf = [0; 8];
        assert_eq!(feed.read(&mut buf, || false), Got::Bytes(1));
        appender.join().unwrap();
        assert_eq!(feed.read(&mut buf, || true), Got::Interrupted);
    }

    #[test]
    fn taken_bytes_move_whole_and_the_two_buffers_are_reused() {
        let feed = Feed::new(Duration::ZERO);
        let mut mine = Vec::with_capacity(1000);
        let first = mine.as_ptr();
        feed.append(|b| b.extend_from_slice(b"abc"));
        assert_eq!(feed.take(&mut mine, || false), Got::Bytes(3));
        assert_eq!(mine, b"abc");
        let second = mine.as_ptr();
        feed.append(|b| b.extend_from_slice(b"de"));
        assert_eq!(feed.take(&mut mine, || false), Got::Bytes(2));
        assert_eq!((mine.as_slice(), mine.as_ptr()), (&b"de"[..], first), "the first buffer came back");
        // Partly read: the rest is copied out.
        feed.append(|b| b.extend_from_slice(b"fgh"));
        assert_eq!(feed.read(&mut [0; 1], || false), Got::Bytes(1));
        assert_eq!(feed.take(&mut mine, || false), Got::Bytes(2));
        assert_eq!(mine, b"gh");
        assert_ne!(second, first);
        feed.end(End::Failed("reset".into()));
        assert_eq!(feed.take(&mut mine, || false), Got::End(End::Failed("reset".into())));
        assert!(mine.is_empty());
    }

    #[test]
    fn reading_now_never_waits() {
        let feed = Feed::new(Duration::ZERO);
        let mut buf = [0; 4];
        assert_eq!(feed.read_now(&mut buf), None);
        feed.append(|b| b.push(1));
        assert_eq!(feed.read_now(&mut buf), Some(Got::Bytes(1)));
        assert_eq!(feed.read_now(&mut buf), None);
        feed.end(End::Ended("unpublished".into()));
        assert_eq!(feed.read_now(&mut buf), Some(Got::End(End::Ended("unpublished".into()))));
    }

    #[test]
    fn a_buffer_grown_while_its_reader_was_away_is_given_back_once_drained() {
        let feed = Feed::new(Duration::ZERO);
        feed.append(|b| b.resize(4 * KEPT_CAPACITY, 1));
        let mut buf = vec![0; 64 << 10];
        while feed.unread() > 0 {
            assert!(matches!(feed.read(&mut buf, || false), Got::Bytes(_)));
        }
        assert!(feed.state().bytes.capacity() <= KEPT_CAPACITY, "{}", feed.state().bytes.capacity());
    }

    #[test]
    fn read_bytes_are_dropped_and_an_abandoned_feed_holds_nothing() {
        let feed = Feed::new(Duration::ZERO);
        let mut buf = vec![0; COMPACT_AFTER];
        feed.append(|b| b.resize(COMPACT_AFTER + 10, 1));
        assert_eq!(feed.read(&mut buf, || false), Got::Bytes(COMPACT_AFTER));
        feed.append(|b| b.push(2));
        assert_eq!(feed.unread(), 11);
        feed.abandon();
        assert!(feed.abandoned());
        assert_eq!(feed.unread(), 0);
    }
}
