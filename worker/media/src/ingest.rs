//! RTMP and RTMPS pulled in Rust (the default; libavformat's own client stays selectable, see
//! [`crate::RtmpReader`]). The connection is made here, on the stream's thread, to an address
//! the guard checked; from then on the process's one ingest thread ([`hub`]) serves it with
//! large buffered reads. The stream's thread probes the FLV it produces with libavformat's FLV
//! demuxer, so the streams are libavformat's on both paths; for H.264 and AAC it then turns
//! the tags into packets itself ([`tags`]), and reads through the demuxer otherwise.

mod feed;
mod hub;
mod tags;
mod transport;

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use roomrec_rtmp::{Session, Target};

pub(crate) use feed::{End, Got};
pub(crate) use tags::TagPackets;

use feed::Feed;
use hub::Connection;
use transport::Transport;

/// One RTMP stream being played; dropping it closes the connection.
pub(crate) struct Stream {
    feed: Arc<Feed>,
}

impl Stream {
    /// Connects to the first of `addrs` that answers within `io_timeout` and has the ingest
    /// thread play `url` (its host names the TLS certificate when `tls`), waking the reader
    /// for its bytes at most every `batch`.
    pub(crate) fn open(
        url: &url::Url,
        addrs: &[SocketAddr],
        tls: bool,
        io_timeout: Duration,
        batch: Duration,
    ) -> io::Result<Self> {
        let target = Target::from_url(url)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the URL names no application and stream"))?;
        let socket = connect(addrs, io_timeout)?;
        socket.set_nodelay(true)?;
        socket.set_nonblocking(true)?;
        let socket = mio::net::TcpStream::from_std(socket);
        let transport = match url.host_str() {
            Some(host) if tls => Transport::tls(socket, host)?,
            _ => Transport::Plain(socket),
        };
        let feed = Arc::new(Feed::new(batch));
        hub::serve(Connection { transport, session: Session::play(target), feed: Arc::clone(&feed) })?;
        Ok(Self { feed })
    }

    /// How the connection ended, if it did.
    pub(crate) fn ended(&self) -> Option<End> {
        self.feed.ended()
    }

    /// The stream's FLV bytes, as [`feed::Feed::read`].
    pub(crate) fn read(&self, buf: &mut [u8], expired: impl Fn() -> bool) -> Got {
        self.feed.read(buf, expired)
    }

    /// The stream's FLV bytes if there are any, as [`feed::Feed::read_now`].
    pub(crate) fn read_now(&self, buf: &mut [u8]) -> Option<Got> {
        self.feed.read_now(buf)
    }

    /// The stream's FLV tags, whole, as [`feed::Feed::take`].
    pub(crate) fn take(&self, into: &mut Vec<u8>, expired: impl Fn() -> bool) -> Got {
        self.feed.take(into, expired)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.feed.abandon();
        hub::nudge();
        CHARGED.with(|charged| charged.set(charged.get() + self.feed.cpu()));
    }
}

thread_local! {
    /// CPU the ingest thread spent on the streams this thread read and closed.
    static CHARGED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// CPU the calling thread used, plus what the ingest thread spent on the streams it read
/// (and has closed): a recording's whole cost, for metering.
pub(crate) fn thread_cpu_time() -> Duration {
    crate::ffi::thread_cpu_time() + CHARGED.with(Cell::get)
}

fn connect(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(socket) => return Ok(socket),
            Err(error) => last = error,
        }
    }
    Err(last)
}
