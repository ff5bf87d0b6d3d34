//! A TCP fault-injection proxy for the chaos tests: it sits between a client (the worker) and
//! an upstream (the local AWS endpoint) and, switched at run time, passes, refuses, resets or
//! stalls their connections. A switch reaches live connections too, so a keep-alive pool is hit.
//!
//! What each [`Mode`] does on the wire:
//! - `pass`: bytes flow both ways.
//! - `refuse`: the proxy stops listening, so a new connect gets a real `ECONNREFUSED`; live
//!   connections are closed the way a dying server's kernel closes them (FIN, or RST when the
//!   client's bytes are still unread). Meanwhile the port stays bound, not listening, so no
//!   other socket takes it; leaving `refuse` listens on it again.
//! - `reset`: live connections, and each new one right after its accept, are closed with
//!   `SO_LINGER` 0, so the client sees `ECONNRESET`.
//! - `stall`: connections are accepted and kept, but no byte flows either way. `pass` resumes
//!   them where they stopped, as a healed partition would; `reset` or `refuse` end them as above.

mod accept;
mod control;
mod relay;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use control::{serve_control, ControlError, ModeChange};

/// How long a mode change waits for the listener to close (`refuse`) or to listen again.
const LISTENER_SWITCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How the proxy treats connections; see the crate docs for what each does on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bytes flow both ways.
    Pass,
    /// Not listening; live connections closed.
    Refuse,
    /// Live and new connections reset.
    Reset,
    /// Connections kept, no byte flows.
    Stall,
}

/// A name that is not a [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?}: pass, refuse, reset or stall")]
pub struct UnknownMode(String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "pass" => Ok(Self::Pass),
            "refuse" => Ok(Self::Refuse),
            "reset" => Ok(Self::Reset),
            "stall" => Ok(Self::Stall),
            _ => Err(UnknownMode(name.to_owned())),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Refuse => "refuse",
            Self::Reset => "reset",
            Self::Stall => "stall",
        })
    }
}

/// The listener did not follow a mode change in time (another process took the port).
#[derive(Debug, thiserror::Error)]
#[error("the listener on {addr} did not {action} within {LISTENER_SWITCH_TIMEOUT:?}")]
pub struct ListenerStuck {
    addr: SocketAddr,
    action: &'static str,
}

/// Counts since the start, as `GET /stats` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// The mode now.
    pub mode: Mode,
    /// Proxied connections open now.
    pub open: u64,
    /// Connections accepted, by the mode at their accept; `refuse` ones never reach the proxy.
    pub accepted: Accepted,
    /// Client connections the proxy reset, new or live.
    pub reset: u64,
    /// Live connections closed by `refuse`.
    pub closed_by_refuse: u64,
}

/// Connections accepted in each mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// Accepted in `pass`.
    pub pass: u64,
    /// Accepted in `stall`.
    pub stall: u64,
    /// Accepted in `reset` (or just as `refuse` began), then reset at once.
    pub reset: u64,
}

#[derive(Debug, Default)]
struct Counters {
    open: AtomicU64,
    accepted_pass: AtomicU64,
    accepted_stall: AtomicU64,
    accepted_reset: AtomicU64,
    reset: AtomicU64,
    closed_by_refuse: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The state of the proxy's listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// Accepting connections.
    Listening,
    /// Closed for `refuse`: connects are refused.
    Closed,
}

/// What the accept loop, the connections and the handles of one proxy share.
#[derive(Debug)]
struct Shared {
    listen: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    /// What the accept loop's listener is now; it follows `mode` (closed in `refuse`).
    listener: watch::Sender<Listener>,
    /// The pending return to `pass` of the last `set_mode` that asked for one.
    revert: Mutex<Option<AbortHandle>>,
    counters: Counters,
}

/// A running proxy; clones are handles to the same one. It runs until its runtime stops.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on `listen` (port 0 picks a free one) and forwards to `upstream`, in `pass`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let shared = Arc::new(Shared {
            listen: listener.local_addr()?,
            upstream,
            mode: watch::Sender::new(Mode::Pass),
            listener: watch::Sender::new(Listener::Listening),
            revert: Mutex::new(None),
            counters: Counters::default(),
        });
        tokio::spawn(accept::run(shared.clone(), listener));
        Ok(Self { shared })
    }

    /// The address clients connect to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// The mode now.
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Switches to `mode`, and back to `pass` after `revert_after` when given (a later switch
    /// cancels that return). Returns once the listener has followed, so a connect made after
    /// it sees the new mode; live connections follow within moments.
    pub async fn set_mode(&self, mode: Mode, revert_after: Option<Duration>) -> Result<(), ListenerStuck> {
        {
            let mut revert = self.shared.revert.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(pending) = revert.take() {
                pending.abort();
            }
            self.shared.mode.send_replace(mode);
            *revert = revert_after.map(|after| {
                let shared = self.shared.clone();
                let revert = async move {
                    tokio::time::sleep(after).await;
                    tracing::info!(after = ?after, "back to pass");
                    shared.mode.send_replace(Mode::Pass);
                };
                tokio::spawn(revert).abort_handle()
            });
        }
        tracing::info!(%mode, revert_after = ?revert_after, "mode switched");
        let wanted = if mode == Mode::Refuse { Listener::Closed } else { Listener::Listening };
        let (mut listener, mut now) = (self.shared.listener.subscribe(), self.shared.mode.subscribe());
        let followed = async {
            tokio::select! {
                _ = listener.wait_for(|listener| *listener == wanted) => {}
                // A later switch (a short `for` ending, say) supersedes this one.
                _ = now.wait_for(|now| *now != mode) => {}
            }
        };
        if tokio::time::timeout(LISTENER_SWITCH_TIMEOUT, followed).await.is_ok() {
            return Ok(());
        }
        let action = if wanted == Listener::Closed { "close" } else { "listen again" };
        Err(ListenerStuck { addr: self.shared.listen, action })
    }

    /// The counts since the start.
    pub fn stats(&self) -> Stats {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.shared.counters;
        Stats {
            mode: self.mode(),
            open: count(&counters.open),
            accepted: Accepted {
                pass: count(&counters.accepted_pass),
                stall: count(&counters.accepted_stall),
                reset: count(&counters.accepted_reset),
            },
            reset: count(&counters.reset),
            closed_by_refuse: count(&counters.closed_by_refuse),
        }
    }
}

/// Closes `stream` with an RST: with `SO_LINGER` 0, close drops unsent bytes and resets.
pub(crate) fn reset(stream: TcpStream) {
    if let Err(err) = stream.set_zero_linger() {
        tracing::warn!(error = %err, "SO_LINGER 0 not set: the connection closes with a FIN");
    }
}
