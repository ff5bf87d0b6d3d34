//! Where a stream may be pulled from, enforced when connecting: the host is resolved once,
//! every address is judged by the runner's [`Reach`], and libavformat connects to a checked
//! address only.
//!
//! - rtmp, srt: the URL handed to libavformat names the checked IP literal (RTMP's `tcUrl`
//!   keeps the host name, for servers that route on it).
//! - rtsp: libavformat connects to an [`RtspRelay`](crate::rtsp_relay::RtspRelay) on
//!   loopback, which connects to a checked address only and refuses redirects (libavformat
//!   would follow one to any host by itself).
//! - http, https (HLS playlists, segments, keys, redirects) and rtmps: every TCP connection
//!   libavformat makes goes through a [`Proxy`](crate::proxy::Proxy) on loopback that
//!   resolves, judges and connects for it, so TLS keeps the real host name (SNI and
//!   certificate check, `tls_verify=1`), and a redirect or a segment on another host is
//!   judged like the first request.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use url::Url;

/// The runner's judgement of where a stream may be pulled from.
pub trait Reach: Send + Sync {
    /// Why `url` may not be opened at all, before any lookup (it asks to listen, or names a
    /// forbidden address literally); `None` if it may.
    fn refuse_url(&self, url: &Url) -> Option<String>;
    /// Why `host:port` may not be reached at `ip`, one of the addresses it resolved to.
    fn refuse_address(&self, host: &str, port: u16, ip: IpAddr) -> Option<String>;
}

/// A shared [`Reach`], part of an [`InputSpec`](crate::InputSpec).
#[derive(Clone)]
pub struct Guard {
    reach: Arc<dyn Reach>,
    /// Built by [`Guard::allow_all`]: nothing is refused, so nothing can be bypassed.
    everywhere: bool,
}

impl Guard {
    /// Judges every pull by `reach`.
    pub fn new(reach: Arc<dyn Reach>) -> Self {
        Self { reach, everywhere: false }
    }

    /// Lets every address through: for tests against servers on loopback, never for URLs a
    /// user gave.
    pub fn allow_all() -> Self {
        struct Everywhere;
        impl Reach for Everywhere {
            fn refuse_url(&self, _: &Url) -> Option<String> {
                None
            }
            fn refuse_address(&self, _: &str, _: u16, _: IpAddr) -> Option<String> {
                None
            }
        }
        Self { reach: Arc::new(Everywhere), everywhere: true }
    }

    pub(crate) fn refuse_url(&self, url: &Url) -> Option<String> {
        self.reach.refuse_url(url)
    }

    /// Whether libavformat would connect around the guard proxy: it skips `http_proxy` for
    /// the hosts the `no_proxy` environment variable names (redirect targets and segment
    /// hosts included), so a guard that refuses anything cannot work while it is set.
    pub(crate) fn bypassed_by_no_proxy(&self) -> bool {
        !self.everywhere && std::env::var_os("no_proxy").is_some_and(|v| !v.is_empty())
    }

    /// Resolves `host:port` once and judges every address; the checked ones, in the
    /// resolver's order, or why not.
    pub(crate) fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (bare, port).to_socket_addrs().map_err(|_| Refused::Unresolved)?.collect(),
        };
        if addrs.is_empty() {
            return Err(Refused::Unresolved);
        }
        for addr in &addrs {
            if let Some(reason) = self.reach.refuse_address(host, port, addr.ip()) {
                tracing::warn!(host, port, address = %addr.ip(), %reason, "a stream pull was refused");
                return Err(Refused::Address(reason));
            }
        }
        Ok(addrs)
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guard")
    }
}

impl PartialEq for Guard {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.reach, &other.reach)
    }
}

impl Eq for Guard {}

/// Why a connection was not attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The host has no address (yet): like an unreachable source, retried.
    Unresolved,
    /// The runner's [`Reach`] refused it; its short reason.
    Address(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unresolved => f.write_str("the stream's host does not resolve"),
            Self::Address(reason) => write!(f, "refused: {reason}"),
        }
    }
}

/// A URL to hand libavformat for a directly connecting protocol, and the options it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pinned {
    pub url: String,
    pub options: Vec<(&'static str, String)>,
}

/// A stream URL whose host was resolved once and every address judged.
#[derive(Debug)]
pub(crate) struct Checked {
    pub url: Url,
    pub host: String,
    pub port: u16,
    /// The checked addresses, in the resolver's order (never empty).
    pub addrs: Vec<SocketAddr>,
}

impl Checked {
    /// `url` naming `ip:port` instead of its host.
    pub(crate) fn url_at(&self, ip: IpAddr, port: u16) -> Result<Url, Refused> {
        let mut url = self.url.clone();
        url.set_ip_host(ip).map_err(|()| Refused::Address("the stream URL cannot name an address".into()))?;
        url.set_port(Some(port)).map_err(|()| Refused::Address("the stream URL cannot name a port".into()))?;
        Ok(url)
    }
}

/// Parses a directly connecting stream's URL, refuses it if it asks to listen, and resolves
/// and judges its host.
pub(crate) fn check(guard: &Guard, text: &str, default_port: Option<u16>) -> Result<Checked, Refused> {
    let url = Url::parse(text).map_err(|_| Refused::Address("the stream URL does not parse".into()))?;
    if let Some(reason) = guard.refuse_url(&url) {
        tracing::warn!(%reason, "a stream URL was refused");
        return Err(Refused::Address(reason));
    }
    let host = url.host_str().ok_or_else(|| Refused::Address("the stream URL names no host".into()))?.to_owned();
    let port = url.port().or(default_port).ok_or_else(|| Refused::Address("the stream URL names no port".into()))?;
    let addrs = guard.resolve(&host, port)?;
    Ok(Checked { url, host, port, addrs })
}

/// Pins an rtmp or srt URL to a checked address of its host.
pub(crate) fn pin(guard: &Guard, text: &str, default_port: Option<u16>) -> Result<Pinned, Refused> {
    let checked = check(guard, text, default_port)?;
    let (url, host, port) = (&checked.url, &checked.host, checked.port);
    let mut options = Vec::new();
    if url.scheme() == "rtmp" {
        // libavformat's default tcUrl is scheme://host[:port]/app, app the first path segment.
        if let Some(app) = url.path_segments().and_then(|mut s| s.next()).filter(|a| !a.is_empty()) {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            options.push(("rtmp_tcurl", format!("rtmp://{host}{port}/{app}")));
        }
    }
    let url = checked.url_at(checked.addrs[0].ip(), port)?;
    Ok(Pinned { url: url.into(), options })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refuses loopback unless its port is 1935, like an allow-list of the local media server.
    struct LoopbackOn1935;
    impl Reach for LoopbackOn1935 {
        fn refuse_url(&self, url: &Url) -> Option<String> {
            url.query().is_some_and(|q| q.contains("listen")).then(|| "listener".into())
        }
        fn refuse_address(&self, _: &str, port: u16, ip: IpAddr) -> Option<String> {
            (ip.is_loopback() && port != 1935).then(|| "not public".into())
        }
    }

    fn guard() -> Guard {
        Guard::new(Arc::new(LoopbackOn1935))
    }

    #[test]
    fn names_are_pinned_to_their_checked_address_and_rtmp_keeps_its_tc_url() {
        let pinned = pin(&guard(), "rtmp://localhost/live/key", Some(1935)).unwrap();
        assert!(["rtmp://127.0.0.1:1935/live/key", "rtmp://[::1]:1935/live/key"].contains(&pinned.url.as_str()));
        assert_eq!(pinned.options, [("rtmp_tcurl", "rtmp://localhost/live".to_owned())]);
        let srt = pin(&guard(), "srt://127.0.0.1:1935?streamid=a", None).unwrap();
        assert_eq!((srt.url.as_str(), srt.options.len()), ("srt://127.0.0.1:1935?streamid=a", 0));
    }

    #[test]
    fn a_name_resolving_to_a_refused_address_is_refused_before_connecting() {
        let refused = pin(&guard(), "rtsp://localhost:8554/cam", Some(554)).unwrap_err();
        assert_eq!(refused, Refused::Address("not public".into()));
        assert_eq!(pin(&guard(), "srt://localhost:1935?mode=listener", None), Err(Refused::Address("listener".into())));
        assert_eq!(
            pin(&guard(), "srt://localhost", None),
            Err(Refused::Address("the stream URL names no port".into()))
        );
    }

    #[test]
    fn a_name_that_does_not_resolve_is_unresolved_not_refused() {
        assert_eq!(guard().resolve("no-such-host.invalid", 1935), Err(Refused::Unresolved));
    }
}
