//! Where the service itself may connect on a tenant's behalf: the one address classification
//! that both callbacks (the deliverer) and stream pulls (the worker) apply, and the stream
//! policy with the deployment's allow-list.
//!
//! A tenant names the host; the service connects from inside its own network. So loopback,
//! private, link-local, CGNAT, multicast and reserved addresses are refused, and so are the
//! forms that smuggle an IPv4 address inside IPv6 (mapped, compatible, NAT64, 6to4). Cloud
//! metadata endpoints (all of link-local, AWS's `fd00:ec2::/32`, Alibaba's `100.100.100.200`)
//! are a class of their own: no allow-list reaches them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::Invalid;

/// What an address is, for deciding whether the service may connect to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// A routable public address.
    Public,
    /// Loopback, private, CGNAT, multicast, reserved, or an IPv4-in-IPv6 form: reachable only
    /// when the deployment allow-lists the host and port.
    Private,
    /// A cloud metadata or link-local address: never reachable.
    Metadata,
}

/// Classifies `ip`.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether `ip` is anything but a public address.
pub fn is_private_ip(ip: IpAddr) -> bool {
    classify(ip) != AddressClass::Public
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_link_local() || ip == Ipv4Addr::new(100, 100, 100, 200) || ip == Ipv4Addr::new(192, 0, 0, 192) {
        // 169.254.169.254 (AWS, GCP, Azure, OCI), 169.254.170.2 (ECS task credentials),
        // 100.100.100.200 (Alibaba), 192.0.0.192 (Oracle).
        return AddressClass::Metadata;
    }
    let private = ip.is_loopback()
        || ip.is_private()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || a >= 240; // reserved 240.0.0.0/4
    if private {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if (s[0] & 0xffc0) == 0xfe80 || (s[0] == 0xfd00 && s[1] == 0x0ec2) {
        // Link-local, and AWS's IPv6 metadata, DNS and time endpoints (fd00:ec2::254, ::23, ::123).
        return AddressClass::Metadata;
    }
    if let Some(v4) = embedded_v4(ip) {
        // Whatever the IPv4 address inside, these forms are not how a public stream is named,
        // and a metadata address inside stays one.
        return match classify_v4(v4) {
            AddressClass::Metadata => AddressClass::Metadata,
            _ => AddressClass::Private,
        };
    }
    let private = ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only 100::/64
    if private {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address an IPv6 one carries: mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d` and `64:ff9b:1::/48`, 6to4 `2002:aabb:ccdd::`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        return Some(low);
    }
    if (s[0] == 0x64 && s[1] == 0xff9b) && (s[2..6] == [0; 4] || s[2] == 1) {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

/// Why a stream may not be pulled from somewhere; short and stable, fit for logs and reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The address is a metadata endpoint.
    #[error("the stream's address is a cloud metadata address")]
    Metadata,
    /// The address is loopback, private or otherwise internal, and not allow-listed.
    #[error("the stream's address is not public")]
    Private,
    /// The URL asks the client to listen instead of connect.
    #[error("the stream URL asks to listen for a connection")]
    Listener,
}

/// Where stream pulls may go: public addresses, plus the host:port pairs the deployment lists
/// in `ROOMREC_STREAM_ALLOW` (its own media server, locally); metadata addresses never.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPolicy {
    allow: Vec<(String, u16)>,
}

impl StreamPolicy {
    /// Reads an allow-list written `host:port,host:port` (`[v6]:port` for IPv6 literals).
    pub fn parse_allow_list(text: &str) -> Result<Self, &'static str> {
        let mut allow = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (host, port) = entry.rsplit_once(':').ok_or("write each entry as host:port")?;
            let port = port.parse().map_err(|_| "each entry needs a port number")?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err("each entry needs a host");
            }
            allow.push((host.to_ascii_lowercase(), port));
        }
        Ok(Self { allow })
    }

    /// Whether `host:port`, as a URL names it, is on the allow-list.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
        self.allow.iter().any(|(h, p)| *p == port && h.eq_ignore_ascii_case(host))
    }

    /// Connect time: may `host:port` be reached at `ip`, one of the addresses it resolved to?
    pub fn refuse_address(&self, host: &str, port: u16, ip: IpAddr) -> Option<Refusal> {
        match classify(ip) {
            AddressClass::Public => None,
            AddressClass::Metadata => Some(Refusal::Metadata),
            AddressClass::Private if self.allows(host, port) => None,
            AddressClass::Private => Some(Refusal::Private),
        }
    }

    /// Save and connect time: what the URL itself says, before any lookup — options that
    /// make a client listen, a literal forbidden address, or `localhost`.
    pub fn refuse_url(&self, url: &Url) -> Option<Refusal> {
        if asks_to_listen(url) {
            return Some(Refusal::Listener);
        }
        let port = default_port(url)?;
        let host = url.host_str().unwrap_or_default();
        match url.host()? {
            Host::Ipv4(ip) => self.refuse_address(host, port, ip.into()),
            Host::Ipv6(ip) => self.refuse_address(host, port, ip.into()),
            Host::Domain(name) => {
                // Non-http schemes keep the host opaque, but the resolver reads `0x7f000001`
                // or `2130706433` as an IPv4 address: judge it the way a browser parses it.
                if let Some(Host::Ipv4(ip)) =
                    Url::parse(&format!("http://{name}/")).ok().and_then(|u| u.host().map(|h| h.to_owned()))
                {
                    return self.refuse_address(host, port, ip.into());
                }
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let local = name == "localhost" || name.ends_with(".localhost");
                (local && !self.allows(&name, port)).then_some(Refusal::Private)
            }
        }
    }

    /// Save time: refuses the stream URL `url` (from request field `field`) when
    /// [`Self::refuse_url`] does. Names that resolve to a forbidden address are the worker's
    /// to catch when it connects.
    pub fn check(&self, url: &str, field: &str) -> Result<(), Invalid> {
        let parsed = Url::parse(url).map_err(|_| Invalid::new(field, "is not a URL"))?;
        match self.refuse_url(&parsed) {
            None => Ok(()),
            Some(Refusal::Listener) => Err(Invalid::new(field, "must not ask to listen (mode=listener, listen)")),
            Some(_) => Err(Invalid::new(
                field,
                "must not point to a loopback, private, link-local or metadata address, or localhost",
            )),
        }
    }
}

/// The port a stream URL connects to: its own, or the protocol's default as libavformat uses
/// it (rtmps: 443). `None` for SRT without a port, which libavformat cannot open anyway.
pub fn default_port(url: &Url) -> Option<u16> {
    url.port().or(match url.scheme() {
        "rtmp" => Some(1935),
        "rtmps" | "https" => Some(443),
        "rtsp" => Some(554),
        "http" => Some(80),
        _ => None,
    })
}

/// Whether the query carries an option that turns a libavformat client into a server: SRT's
/// `mode=listener` (or rendezvous, which binds a port too), TCP's and RTMP's `listen`,
/// RTSP's `rtsp_flags=listen`.
fn asks_to_listen(url: &Url) -> bool {
    url.query_pairs().any(|(key, value)| {
        let (key, value) = (key.to_ascii_lowercase(), value.to_ascii_lowercase());
        key.contains("listen")
            || (key == "mode" && value != "caller")
            || (key.contains("flags") && value.contains("listen"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_and_smuggled_addresses_are_not_public() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "2002:7f00:1::",
        ] {
            assert_eq!(classify(ip(text)), AddressClass::Private, "{text}");
        }
    }

    #[test]
    fn metadata_addresses_are_their_own_class_even_inside_ipv6() {
        for text in [
            "169.254.169.254",
            "169.254.170.2",
            "100.100.100.200",
            "192.0.0.192",
            "fd00:ec2::254",
            "fd00:ec2::23",
            "fe80::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert_eq!(classify(ip(text)), AddressClass::Metadata, "{text}");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for text in ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "2001:4860:4860::8888"] {
            assert_eq!(classify(ip(text)), AddressClass::Public, "{text}");
        }
    }

    #[test]
    fn the_allow_list_opens_its_host_and_port_only_and_never_metadata() {
        let policy = StreamPolicy::parse_allow_list("127.0.0.1:1935, Media.Internal:1935,[::1]:8080").unwrap();
        assert_eq!(policy.refuse_address("127.0.0.1", 1935, ip("127.0.0.1")), None);
        assert_eq!(policy.refuse_address("127.0.0.1", 5000, ip("127.0.0.1")), Some(Refusal::Private));
        assert_eq!(policy.refuse_address("media.internal", 1935, ip("10.0.0.7")), None);
        assert_eq!(policy.refuse_address("[::1]", 8080, ip("::1")), None);
        assert_eq!(policy.refuse_address("media.internal", 1935, ip("169.254.169.254")), Some(Refusal::Metadata));
        assert_eq!(StreamPolicy::default().refuse_address("h", 1935, ip("10.0.0.7")), Some(Refusal::Private));
        assert!(StreamPolicy::parse_allow_list("127.0.0.1").is_err());
        assert!(StreamPolicy::parse_allow_list(":1935").is_err());
        assert_eq!(StreamPolicy::parse_allow_list(""), Ok(StreamPolicy::default()));
    }

    #[test]
    fn urls_that_ask_to_listen_are_refused() {
        let policy = StreamPolicy::default();
        for text in [
            "srt://media.example.com:9000?mode=listener",
            "srt://media.example.com:9000?MODE=rendezvous",
            "rtsp://media.example.com/s?rtsp_flags=listen",
            "rtmp://media.example.com/live/x?listen=1",
            "rtmp://media.example.com/live/x?rtmp_listen=1",
            "http://media.example.com/a.m3u8?listen",
        ] {
            assert_eq!(policy.refuse_url(&Url::parse(text).unwrap()), Some(Refusal::Listener), "{text}");
        }
        let caller = Url::parse("srt://media.example.com:9000?mode=caller&latency=200").unwrap();
        assert_eq!(policy.refuse_url(&caller), None);
    }

    #[test]
    fn literal_forbidden_hosts_are_refused_in_urls() {
        let policy = StreamPolicy::parse_allow_list("127.0.0.1:1935").unwrap();
        for text in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:5000/bucket/key",
            "rtmp://127.0.0.1:1936/live/x",
            "rtmp://[::1]/live/x",
            "rtsp://[::ffff:10.0.0.1]/s",
            "https://[64:ff9b::7f00:1]/a.m3u8",
            "rtmp://localhost/live/x",
            "rtmp://a.localhost./live/x",
            "rtmp://0x7f000001/live/x",
        ] {
            assert!(policy.refuse_url(&Url::parse(text).unwrap()).is_some(), "{text}");
        }
        for text in ["rtmp://127.0.0.1:1935/live/x", "rtmp://media.example.com/live/x", "srt://8.8.8.8:9000"] {
            assert_eq!(policy.refuse_url(&Url::parse(text).unwrap()), None, "{text}");
        }
    }
}
