//! The accept loop: it accepts while the mode lets it and, in `refuse`, closes the listener
//! while holding its port, so connects are refused until the mode changes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::{relay, reset, Counters, Listener, Mode, Shared};

/// Pending connections the listener queues; what `TcpListener::bind` uses.
const LISTEN_BACKLOG: u32 = 1024;
/// Pause before binding the listen address again after a failed bind.
const REBIND_RETRY: Duration = Duration::from_millis(100);
/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// What woke the accept loop.
enum Event {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    Refusing,
}

/// Accepts connections while listening; in `refuse` closes the listener, so the kernel
/// refuses connects, and listens on the same address again when the mode leaves `refuse`.
/// A mode change wins over a pending connect.
pub(crate) async fn run(shared: Arc<Shared>, mut listener: TcpListener) {
    let mut mode = shared.mode.subscribe();
    loop {
        let event = tokio::select! {
            biased;
            Ok(_) = mode.wait_for(|mode| *mode == Mode::Refuse) => Event::Refusing,
            accepted = listener.accept() => Event::Accepted(accepted),
        };
        match event {
            Event::Accepted(Ok((stream, peer))) => admit(&shared, stream, peer),
            Event::Accepted(Err(err)) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
            Event::Refusing => {
                drop(listener);
                let held = hold(shared.listen);
                shared.listener.send_replace(Listener::Closed);
                tracing::info!(listen = %shared.listen, "not listening: connects are refused");
                if mode.wait_for(|mode| *mode != Mode::Refuse).await.is_err() {
                    return;
                }
                listener = listen_again(held, shared.listen).await;
                shared.listener.send_replace(Listener::Listening);
                tracing::info!(listen = %shared.listen, "listening again");
            }
        }
    }
}

/// A socket bound to `addr` but not listening: connects to it are refused, and the port stays
/// ours, so no other socket (an outgoing connect's, say) takes it before `listen_again`.
fn hold(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As `TcpListener::bind` does, so the closed connections' TIME_WAIT does not block it.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Listens on the `held` socket or, when the port could not be held, binds `addr` anew.
async fn listen_again(held: io::Result<TcpSocket>, addr: SocketAddr) -> TcpListener {
    match held.and_then(|socket| socket.listen(LISTEN_BACKLOG)) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!(%addr, error = %err, "the port was not held: binding it anew");
            rebind(addr).await
        }
    }
}

/// Binds `addr`, retrying until it is free.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let mut warned = false;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err) if !warned => {
                tracing::warn!(%addr, error = %err, "cannot listen again yet; retrying");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(REBIND_RETRY).await;
    }
}

/// Starts relaying a new connection, or resets it when the mode says so.
fn admit(shared: &Arc<Shared>, client: TcpStream, peer: SocketAddr) {
    let mode = *shared.mode.borrow();
    tracing::debug!(%peer, %mode, "accepted");
    let counters = &shared.counters;
    match mode {
        Mode::Pass | Mode::Stall => {
            Counters::bump(if mode == Mode::Pass { &counters.accepted_pass } else { &counters.accepted_stall });
            tokio::spawn(relay::run(shared.clone(), client));
        }
        // A connect that came in just as `refuse` began is treated as one in `reset`.
        Mode::Reset | Mode::Refuse => {
            Counters::bump(&counters.accepted_reset);
            Counters::bump(&counters.reset);
            reset(client);
        }
    }
}
