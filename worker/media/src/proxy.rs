//! The guard proxy: an HTTP proxy on loopback, one per open input, through which libavformat
//! makes every HTTP(S) and RTMPS connection (`http_proxy`). For each one it reads the target
//! (`CONNECT host:port`, or an absolute `GET http://host/...`), resolves the host once, has
//! the [`Guard`] judge every address, connects to a checked one and then only relays bytes.
//! TLS runs end to end inside the tunnel, so certificates are checked against the real name.
//! A refused target answers 403, which libavformat reports as a failed open.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use url::Url;

use crate::guard::{Guard, Refused};

/// Longest request head read from libavformat (its heads are a few hundred bytes).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A running guard proxy; it stops accepting when dropped (open tunnels end with their
/// connections).
pub(crate) struct Proxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    refusal: Arc<Mutex<Option<String>>>,
}

impl Proxy {
    /// Starts a proxy judging targets with `guard`; connects and head reads give up after
    /// `io_timeout`.
    pub(crate) fn start(guard: Guard, io_timeout: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let refusal = Arc::new(Mutex::new(None));
        let (stopping, refused) = (Arc::clone(&stop), Arc::clone(&refusal));
        std::thread::Builder::new().name("stream-guard".into()).spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (guard, refused) = (guard.clone(), Arc::clone(&refused));
                let spawned = std::thread::Builder::new()
                    .name("stream-guard-tunnel".into())
                    .spawn(move || serve(client, &guard, io_timeout, &refused));
                if let Err(error) = spawned {
                    tracing::warn!(%error, "cannot start a stream proxy thread");
                }
            }
        })?;
        Ok(Self { addr, stop, refusal })
    }

    /// The `http_proxy` option value that sends libavformat through this proxy.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The last target refused, if any was.
    pub(crate) fn refusal(&self) -> Option<String> {
        self.refusal.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// One connection from libavformat: judge its target, then relay.
fn serve(mut client: TcpStream, guard: &Guard, io_timeout: Duration, refused: &Mutex<Option<String>>) {
    let _ = client.set_read_timeout(Some(io_timeout));
    let Some((head, rest)) = read_head(&mut client) else { return };
    let Some(target) = Target::parse(&head) else {
        let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let addrs = match guard.resolve(&target.host, target.port) {
        Ok(addrs) => addrs,
        Err(refusal) => {
            if let Refused::Address(reason) = &refusal {
                *refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason.clone());
            }
            let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
    };
    let Some(mut upstream) = addrs.iter().find_map(|a| TcpStream::connect_timeout(a, io_timeout).ok()) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let greeting = match &target.request {
        None => client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n"),
        Some(request) => upstream.write_all(request.as_bytes()),
    };
    if greeting.and_then(|()| upstream.write_all(&rest)).is_err() {
        return;
    }
    let _ = client.set_read_timeout(None);
    relay(client, upstream);
}

/// Reads up to the blank line ending a request head; the head and any bytes after it.
fn read_head(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return String::from_utf8(buf).ok().map(|head| (head, rest));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return None;
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Where a proxied request goes, and for a plain HTTP one the head to send there.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    /// `None` for CONNECT (a tunnel); the rewritten head for plain HTTP.
    request: Option<String>,
}

impl Target {
    fn parse(head: &str) -> Option<Self> {
        let (line, headers) = head.split_once("\r\n")?;
        let mut parts = line.split(' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        if method == "CONNECT" {
            let (host, port) = target.rsplit_once(':')?;
            return Some(Self { host: host.to_owned(), port: port.parse().ok()?, request: None });
        }
        // Plain HTTP: absolute form, sent on in origin form (not every server reads the other).
        let url = Url::parse(target).ok()?;
        if url.scheme() != "http" {
            return None;
        }
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let request = format!("{method} {path} {version}\r\n{headers}");
        Some(Self { host: url.host_str()?.to_owned(), port: url.port_or_known_default()?, request: Some(request) })
    }
}

/// Copies both ways until either side ends, then closes both.
fn relay(client: TcpStream, upstream: TcpStream) {
    let (Ok(client_reader), Ok(upstream_writer)) = (client.try_clone(), upstream.try_clone()) else { return };
    let forward = std::thread::Builder::new().name("stream-guard-relay".into()).spawn(move || {
        pump(client_reader, upstream_writer);
    });
    pump(upstream, client);
    if let Ok(forward) = forward {
        let _ = forward.join();
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_requests_name_their_target() {
        let connect = Target::parse("CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((connect.host.as_str(), connect.port, connect.request), ("example.com", 443, None));
        let get = Target::parse("GET http://example.com:80/a/b.m3u8?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
        let get = get.unwrap();
        assert_eq!((get.host.as_str(), get.port), ("example.com", 80));
        assert_eq!(get.request.as_deref(), Some("GET /a/b.m3u8?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"));
        let v6 = Target::parse("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("[::1]", 8443));
        assert_eq!(Target::parse("GET /relative HTTP/1.1\r\n\r\n"), None);
        assert_eq!(Target::parse("GET ftp://example.com/x HTTP/1.1\r\n\r\n"), None);
    }
}
