//! One proxied connection: bytes flow while the mode is `pass`, wait in `stall`, and the
//! connection ends when the mode turns to `reset` or `refuse`.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::{reset, Counters, Mode, Shared};

/// Bytes moved per read.
const CHUNK_BYTES: usize = 16 * 1024;

/// How relaying a connection ended.
enum Outcome {
    /// Both sides closed their half.
    Finished,
    /// One side failed (reset, broken pipe); the other is reset too, as through a plain hop.
    Failed(io::Error),
    /// The mode turned to `reset` or `refuse`.
    Ended(Mode),
}

/// Counts a connection as open while it lives.
struct OpenGuard<'a>(&'a AtomicU64);

impl<'a> OpenGuard<'a> {
    fn new(open: &'a AtomicU64) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Relays `client` to the upstream until either side ends or the mode ends the connection.
pub(crate) async fn run(shared: Arc<Shared>, mut client: TcpStream) {
    let counters = &shared.counters;
    let _open = OpenGuard::new(&counters.open);
    let mut mode = shared.mode.subscribe();
    let connected = tokio::select! {
        biased;
        Ok(ending) = ending(&mut mode) => return end(counters, ending, client, None),
        connected = TcpStream::connect(shared.upstream) => connected,
    };
    let mut upstream = match connected {
        Ok(upstream) => upstream,
        Err(err) => {
            // The client sees what it would see connected straight to a failing upstream.
            tracing::debug!(upstream = %shared.upstream, error = %err, "upstream connect failed: reset");
            Counters::bump(&counters.reset);
            return reset(client);
        }
    };
    match relay(&mut client, &mut upstream, &mode).await {
        Outcome::Finished => tracing::debug!("connection finished"),
        Outcome::Failed(err) => {
            tracing::debug!(error = %err, "one side failed: reset both");
            Counters::bump(&counters.reset);
            reset(client);
            reset(upstream);
        }
        Outcome::Ended(ending) => end(counters, ending, client, Some(upstream)),
    }
}

/// Ends a connection as `mode` (`reset` or `refuse`) says.
fn end(counters: &Counters, mode: Mode, client: TcpStream, upstream: Option<TcpStream>) {
    if mode == Mode::Refuse {
        // Dropped as a dying server's sockets are: FIN, or RST where bytes are unread.
        Counters::bump(&counters.closed_by_refuse);
        return;
    }
    Counters::bump(&counters.reset);
    reset(client);
    if let Some(upstream) = upstream {
        reset(upstream);
    }
}

/// Waits until the mode is one that ends connections, and returns it.
async fn ending(mode: &mut watch::Receiver<Mode>) -> Result<Mode, watch::error::RecvError> {
    mode.wait_for(|mode| matches!(mode, Mode::Reset | Mode::Refuse)).await.map(|mode| *mode)
}

/// Pumps both directions until both ends close, one fails, or the mode ends the connection
/// (which wins over bytes in flight).
async fn relay(client: &mut TcpStream, upstream: &mut TcpStream, mode: &watch::Receiver<Mode>) -> Outcome {
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let both = async {
        tokio::try_join!(
            pump(&mut client_read, &mut upstream_write, mode.clone()),
            pump(&mut upstream_read, &mut client_write, mode.clone()),
        )
    };
    let mut watcher = mode.clone();
    tokio::select! {
        biased;
        Ok(ending) = ending(&mut watcher) => Outcome::Ended(ending),
        pumped = both => match pumped {
            Ok(_) => Outcome::Finished,
            Err(err) => Outcome::Failed(err),
        },
    }
}

/// Copies `from` to `to` while the mode is `pass`, and shuts `to` for writing at `from`'s end.
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    mut mode: watch::Receiver<Mode>,
) -> io::Result<()> {
    let stopped = |_| io::Error::other("the proxy stopped");
    let mut buf = vec![0; CHUNK_BYTES];
    loop {
        mode.wait_for(|mode| *mode == Mode::Pass).await.map_err(stopped)?;
        // A mode change wins over bytes waiting to be read, and a socket read is cancel-safe:
        // leaving it on a mode change loses no byte.
        let read = tokio::select! {
            biased;
            changed = mode.changed() => {
                changed.map_err(stopped)?;
                continue;
            }
            read = from.read(&mut buf) => read?,
        };
        if read == 0 {
            return to.shutdown().await;
        }
        // Bytes already read are delivered even if `stall` begins meanwhile.
        to.write_all(&buf[..read]).await?;
    }
}
