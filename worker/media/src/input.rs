//! Opening a participant's stream: only allowed protocols, every blocking call bounded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next::{self as ffmpeg, format, media, Dictionary, Packet};

use crate::ffi::{self, CustomIo, CustomRead, NestedOpens};
use crate::guard::{self, Refused};
use crate::ingest::{self, End, Got, TagPackets};
use crate::playlist::Tripwire;
use crate::proxy::Proxy;
use crate::rtsp_relay::RtspRelay;
use crate::{InputSpec, MediaError, RtmpReader};

/// Protocols the network schemes need underneath (RTMP over TCP/TLS, RTSP's RTP over TCP or
/// UDP, SRT, HLS playlists and their possibly encrypted segments over HTTP(S)).
/// `file`, `concat`, `subfile`, `pipe`, `data`… are never listed: a URL is user input.
const NETWORK_PROTOCOLS: &str = "rtmp,rtmps,tcp,tls,srt,udp,rtp,rtsp,http,https,hls,crypto";

/// How long `avformat_find_stream_info` may read to learn the streams (`analyzeduration`,
/// FFmpeg's default is 5 s, too slow for a reconnect). Live FLV has no header, so probing
/// always reads this long.
pub(crate) const ANALYZE_DURATION: Duration = Duration::from_secs(2);

/// How long a recording's media may wait to be handed on in one batch: its thread wakes 4
/// times a second rather than for every message (see [`ingest`]). Not longer: what a worker
/// that dies has not demuxed yet is lost; with 500 ms batches `make chaos`'s kill -9 lost
/// 12-13 s in two runs, 10-11 s in every run before.
pub(crate) const RECORDING_BATCH: Duration = Duration::from_millis(250);

/// Extra time an open may take on top of `io_timeout`: probing reads up to
/// [`ANALYZE_DURATION`] of media after the connection is up.
const OPEN_PROBE_BUDGET: Duration = Duration::from_secs(3);

/// Default ports, as libavformat's.
const RTMP_PORT: u16 = 1935;
const RTMPS_PORT: u16 = 443;

/// Consecutive corrupt packets after which the input counts as broken.
const MAX_CORRUPT_PACKETS_IN_A_ROW: u32 = 100;

/// A demuxer that says "try again" is polled this often (bounded by the deadline).
const EAGAIN_POLL: Duration = Duration::from_millis(10);

/// A URL whose scheme is allowed; the only way to reach [`Source::open`].
#[derive(Debug, Clone)]
pub(crate) struct AllowedUrl {
    url: String,
    scheme: Scheme,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Rtmp,
    Rtmps,
    Srt,
    Rtsp,
    Http,
    Https,
    File,
}

impl AllowedUrl {
    /// Accepts rtmp, rtmps, srt, rtsp, http, https (and `file` when `allow_file`).
    ///
    /// libav treats a string without `scheme:` as a local path, and `a+b:` or `subfile,,…:`
    /// as nested protocols, so anything but an exact allowed scheme is refused.
    pub(crate) fn parse(url: &str, allow_file: bool) -> Result<Self, MediaError> {
        let refuse = || MediaError::SchemeNotAllowed(url.to_owned());
        let (scheme, _) = url.split_once(':').ok_or_else(refuse)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" => Scheme::Rtmp,
            "rtmps" => Scheme::Rtmps,
            "srt" => Scheme::Srt,
            "rtsp" => Scheme::Rtsp,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "file" if allow_file => Scheme::File,
            _ => return Err(refuse()),
        };
        if url.contains('\0') {
            return Err(refuse());
        }
        Ok(Self { url: url.to_owned(), scheme })
    }

    /// The URL to hand libavformat, checked by the input's guard: pinned to a checked
    /// address (rtmp, srt), through an RTSP relay to one (rtsp), or with a guard proxy every
    /// connection goes through (http, https, rtmps). Adds the options that needs to `options`.
    fn guarded(&self, spec: &InputSpec, options: &mut Dictionary) -> Result<(String, Tunnel), Refused> {
        let default_port = match self.scheme {
            Scheme::File => return Ok((self.url.clone(), Tunnel::Direct)),
            Scheme::Rtmp => Some(RTMP_PORT),
            Scheme::Rtsp => {
                let checked = guard::check(&spec.guard, &self.url, Some(554))?;
                let relay = RtspRelay::start(checked.addrs.clone(), spec.io_timeout)
                    .map_err(|_| Refused::Address("the stream guard cannot start".into()))?;
                let url = checked.url_at(std::net::Ipv4Addr::LOCALHOST.into(), relay.port())?;
                return Ok((url.into(), Tunnel::Rtsp(relay)));
            }
            Scheme::Srt => None,
            Scheme::Http | Scheme::Https | Scheme::Rtmps => {
                let parsed =
                    url::Url::parse(&self.url).map_err(|_| Refused::Address("the URL does not parse".into()))?;
                if let Some(reason) = spec.guard.refuse_url(&parsed) {
                    tracing::warn!(%reason, "a stream URL was refused");
                    return Err(Refused::Address(reason));
                }
                if spec.guard.bypassed_by_no_proxy() {
                    tracing::warn!("no_proxy is set: http(s) and rtmps streams are refused, it would bypass the guard");
                    return Err(Refused::Address("the worker's no_proxy setting would bypass the stream guard".into()));
                }
                let proxy = Proxy::start(spec.guard.clone(), spec.io_timeout)
                    .map_err(|_| Refused::Address("the stream guard cannot start".into()))?;
                if self.scheme == Scheme::Rtmps {
                    options.set("tls_verify", "1");
                }
                return Ok((self.url.clone(), Tunnel::Proxy(proxy)));
            }
        };
        let pinned = guard::pin(&spec.guard, &self.url, default_port)?;
        for (key, value) in &pinned.options {
            options.set(key, value);
        }
        Ok((pinned.url, Tunnel::Direct))
    }

    /// Whether the stream is pulled by the Rust RTMP reader, and then whether over TLS.
    fn rtmp_in_rust(&self, spec: &InputSpec) -> Option<bool> {
        match self.scheme {
            Scheme::Rtmp | Scheme::Rtmps if spec.rtmp_reader == RtmpReader::Buffered => {
                Some(self.scheme == Scheme::Rtmps)
            }
            _ => None,
        }
    }

    fn options(&self, io_timeout: Duration, analyze: Duration) -> Dictionary<'static> {
        let timeout_us = io_timeout.as_micros().to_string();
        let mut options = Dictionary::new();
        let whitelist = match self.scheme {
            Scheme::File => format!("{NETWORK_PROTOCOLS},file"),
            _ => NETWORK_PROTOCOLS.to_owned(),
        };
        options.set("protocol_whitelist", &whitelist);
        options.set("rw_timeout", &timeout_us);
        limit_probe(&mut options, analyze);
        match self.scheme {
            // Play only a live stream: a recorded one of the same name is not the participant.
            Scheme::Rtmp | Scheme::Rtmps => options.set("rtmp_live", "live"),
            Scheme::Rtsp => {
                // Interleaved TCP passes firewalls and NAT; `timeout` bounds its socket I/O.
                options.set("rtsp_transport", "tcp");
                options.set("timeout", &timeout_us);
            }
            // One HTTP connection per request, so each is judged by the guard proxy. It also
            // keeps the HLS demuxer from reusing a playlist's connection (`open_url_keepalive`),
            // which asserts that the connection's read function is libavformat's own: a
            // counted one (see `ffi::guarded_open`) would abort the process.
            Scheme::Http | Scheme::Https => options.set("http_persistent", "0"),
            Scheme::Srt | Scheme::File => {}
        }
        options
    }
}

/// How long `avformat_find_stream_info` may read, and that it does not wait to count frames
/// for the video's rate: for H.264 it would read 40 frames (1.6 s at 25 fps) after the
/// parameters are known, and every participant of a mix joined that much later (CI heard one
/// 2.7 s after its join; 0.5 s sooner without the count). FLV's metadata names the rate, and
/// without it libavformat still guesses one from the frames the probe read.
fn limit_probe(options: &mut Dictionary, analyze: Duration) {
    options.set("analyzeduration", &analyze.as_micros().to_string());
    options.set("fpsprobesize", "0");
}

/// What stands between libavformat and the network for one open input.
enum Tunnel {
    /// libavformat connects to the checked address itself (rtmp, srt) or reads a file.
    Direct,
    /// Every HTTP(S) and RTMPS connection goes through the guard proxy.
    Proxy(Proxy),
    /// The RTSP connection goes through the relay, which refuses redirects.
    Rtsp(RtspRelay),
    /// The Rust RTMP reader feeds the FLV demuxer, or the packets are made from its tags
    /// (see [`ingest`]).
    Rtmp { _io: CustomIo, stream: Arc<ingest::Stream>, packets: Packets },
}

/// Who makes an RTMP stream's packets.
enum Packets {
    /// libavformat's FLV demuxer, throughout: a codec other than H.264 or AAC, or a stream
    /// that may still appear (see [`TagPackets::for_streams`]).
    Demuxer,
    /// The demuxer, until it has handed on all it has read: the read callback then tells it
    /// the stream ended as soon as no byte waits, which is at the end of a tag.
    Draining(Box<TagPackets>),
    /// Made from the tags.
    Tags(Box<TagPackets>),
}

impl Tunnel {
    /// Why the proxy or relay refused something, if it did.
    fn refusal(&self) -> Option<String> {
        match self {
            Self::Direct | Self::Rtmp { .. } => None,
            Self::Proxy(proxy) => proxy.refusal(),
            Self::Rtsp(relay) => relay.refusal(),
        }
    }
}

/// A point in time after which FFmpeg's interrupt callback aborts the blocking call in progress.
///
/// `rw_timeout` only bounds a single read making no progress; this also bounds connects,
/// handshakes and probing that trickle along. An `abort` flag, once set, expires it at once.
#[derive(Debug, Clone)]
struct Deadline {
    epoch: Instant,
    at_ms: Arc<AtomicU64>,
    abort: Option<Arc<AtomicBool>>,
}

impl Deadline {
    fn new(abort: Option<Arc<AtomicBool>>) -> Self {
        Self { epoch: Instant::now(), at_ms: Arc::new(AtomicU64::new(u64::MAX)), abort }
    }

    fn arm(&self, within: Duration) {
        let at = self.epoch.elapsed().saturating_add(within);
        self.at_ms.store(u64::try_from(at.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn expired(&self) -> bool {
        if self.abort.as_ref().is_some_and(|abort| abort.load(Ordering::Relaxed)) {
            return true;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        now > self.at_ms.load(Ordering::Relaxed)
    }
}

/// What one read from the source gave.
pub(crate) enum Read {
    Packet(Packet),
    /// The source ended or failed; the text says why (for `Output::Waiting`).
    End(String),
}

/// Why a source did not open.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The guard refused the connection (or the host did not resolve): nothing was opened.
    Refused(Refused),
    /// libavformat failed.
    Failed(ffmpeg::Error),
    /// The Rust RTMP reader's connection failed or the server ended the stream; the text
    /// says why.
    Ended(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(refused) => refused.fmt(f),
            Self::Failed(error) => error.fmt(f),
            Self::Ended(reason) => f.write_str(reason),
        }
    }
}

impl From<Refused> for OpenError {
    fn from(refused: Refused) -> Self {
        Self::Refused(refused)
    }
}

/// An open input and the streams worth recording in it.
pub(crate) struct Source {
    // Dropped first: the context uses `_nested` and `tunnel` until it is closed.
    ctx: format::context::Input,
    /// The hooks of libavformat's own opens; none for the RTMP reader, which opens nothing.
    _nested: Option<Box<NestedOpens>>,
    tunnel: Tunnel,
    /// Trips when something the input reads is refused (an HLS playlist over its cap).
    tripwire: Arc<Tripwire>,
    deadline: Deadline,
    io_timeout: Duration,
    /// Index of the best video stream, if any.
    pub(crate) video: Option<usize>,
    /// Index of the best audio stream, if any.
    pub(crate) audio: Option<usize>,
}

impl Source {
    /// Opens `url` and reads enough to know its streams, within `io_timeout` plus a probe budget.
    pub(crate) fn open(url: &AllowedUrl, spec: &InputSpec) -> Result<Self, OpenError> {
        Self::open_with(url, spec, ANALYZE_DURATION, RECORDING_BATCH, None)
    }

    /// [`Source::open`] probing the streams for `analyze` (streams found later still show up
    /// in [`Source::context`]), its media handed on in batches of up to `batch` (the RTMP
    /// reader); every blocking call of the source (open and reads) gives up as soon as
    /// `abort` is set.
    pub(crate) fn open_with(
        url: &AllowedUrl,
        spec: &InputSpec,
        analyze: Duration,
        batch: Duration,
        abort: Option<Arc<AtomicBool>>,
    ) -> Result<Self, OpenError> {
        let deadline = Deadline::new(abort);
        if let Some(tls) = url.rtmp_in_rust(spec) {
            return Self::open_rtmp(url, spec, (analyze, batch), deadline, tls);
        }
        let mut options = url.options(spec.io_timeout, analyze);
        let (target, tunnel) = url.guarded(spec, &mut options)?;
        let nested_options = match &tunnel {
            // Every HTTP(S) connection through the guard proxy, certificates checked; one
            // connection per segment, so each is judged.
            Tunnel::Proxy(proxy) => vec![("http_proxy", proxy.url()), ("tls_verify", "1".to_owned())],
            Tunnel::Direct | Tunnel::Rtsp(_) | Tunnel::Rtmp { .. } => Vec::new(),
        };
        for (key, value) in &nested_options {
            options.set(key, value);
        }
        let mut nested =
            Box::new(NestedOpens::new(&target, &nested_options).ok_or(OpenError::Failed(ffmpeg::Error::InvalidData))?);
        deadline.arm(spec.io_timeout.saturating_add(OPEN_PROBE_BUDGET));
        let (watch, tripwire) = (deadline.clone(), nested.tripwire());
        let tripped = Arc::clone(&tripwire);
        let interrupt = move || watch.expired() || tripped.reason().is_some();
        let ctx = ffi::open_input(&target, options, interrupt, &mut nested).map_err(|error| {
            match tunnel.refusal().or_else(|| tripwire.reason().map(str::to_owned)) {
                Some(reason) => OpenError::Refused(Refused::Address(reason)),
                None => OpenError::Failed(error),
            }
        })?;
        let video = ctx.streams().best(media::Type::Video).map(|s| s.index());
        let audio = ctx.streams().best(media::Type::Audio).map(|s| s.index());
        Ok(Self { ctx, _nested: Some(nested), tunnel, tripwire, deadline, io_timeout: spec.io_timeout, video, audio })
    }

    /// [`Source::open_with`] through the Rust RTMP reader: the guard checks the host's
    /// addresses, the reader connects to one and libavformat's FLV demuxer reads its FLV.
    fn open_rtmp(
        url: &AllowedUrl,
        spec: &InputSpec,
        (analyze, batch): (Duration, Duration),
        deadline: Deadline,
        tls: bool,
    ) -> Result<Self, OpenError> {
        let checked = guard::check(&spec.guard, &url.url, Some(if tls { RTMPS_PORT } else { RTMP_PORT }))?;
        let stream = ingest::Stream::open(&checked.url, &checked.addrs, tls, spec.io_timeout, batch)
            .map_err(|error| OpenError::Ended(format!("cannot connect: {error}")))?;
        let (stream, drain) = (Arc::new(stream), Arc::new(AtomicBool::new(false)));
        deadline.arm(spec.io_timeout.saturating_add(OPEN_PROBE_BUDGET));
        let (watch, reader, draining) = (deadline.clone(), Arc::clone(&stream), Arc::clone(&drain));
        let read: CustomRead = Box::new(move |buf| {
            let got = match draining.load(Ordering::Relaxed) {
                true => match reader.read_now(buf) {
                    Some(got) => got,
                    None => return ffmpeg::ffi::AVERROR_EOF,
                },
                false => reader.read(buf, || watch.expired()),
            };
            match got {
                Got::Bytes(n) => i32::try_from(n).unwrap_or(i32::MAX),
                Got::End(End::Ended(_)) => ffmpeg::ffi::AVERROR_EOF,
                Got::End(End::Failed(_)) => ffmpeg::ffi::AVERROR(ffmpeg::ffi::EIO),
                Got::Interrupted => ffmpeg::ffi::AVERROR_EXIT,
            }
        });
        let mut options = Dictionary::new();
        // Only what libavformat's RTMP client hands on: a server does not choose the demuxer.
        options.set("format_whitelist", "flv,live_flv");
        limit_probe(&mut options, analyze);
        let watch = deadline.clone();
        let (ctx, io) =
            ffi::open_custom_input(read, options, move || watch.expired()).map_err(|error| match stream.ended() {
                Some(end) => OpenError::Ended(end.to_string()),
                None => OpenError::Failed(error),
            })?;
        let video = ctx.streams().best(media::Type::Video).map(|s| s.index());
        let audio = ctx.streams().best(media::Type::Audio).map(|s| s.index());
        let packets = match TagPackets::for_streams(&ctx) {
            Some(tags) => {
                drain.store(true, Ordering::Relaxed);
                Packets::Draining(Box::new(tags))
            }
            None => Packets::Demuxer,
        };
        Ok(Self {
            ctx,
            _nested: None,
            // Nothing the RTMP reader reads is a playlist: it never trips.
            tripwire: Arc::default(),
            tunnel: Tunnel::Rtmp { _io: io, stream, packets },
            deadline,
            io_timeout: spec.io_timeout,
            video,
            audio,
        })
    }

    /// Why the Rust RTMP reader's connection ended, if it did.
    fn ended(&self) -> Option<End> {
        match &self.tunnel {
            Tunnel::Rtmp { stream, .. } => stream.ended(),
            _ => None,
        }
    }

    /// Where the packets come from, for the log.
    pub(crate) fn packets_from(&self) -> &'static str {
        match &self.tunnel {
            Tunnel::Rtmp { packets: Packets::Draining(_) | Packets::Tags(_), .. } => {
                "flv tags, after the demuxer's probe"
            }
            _ => "demuxer",
        }
    }

    /// Once the FLV demuxer has handed on all it read, an RTMP stream's packets are made
    /// from its tags: `true` when the source switched to that now.
    fn switch_to_tags(&mut self) -> bool {
        let Tunnel::Rtmp { packets, .. } = &mut self.tunnel else { return false };
        match std::mem::replace(packets, Packets::Demuxer) {
            Packets::Draining(tags) => {
                *packets = Packets::Tags(tags);
                true
            }
            other => {
                *packets = other;
                false
            }
        }
    }

    /// The demuxer's view of the streams (parameters, time bases, frame rates).
    pub(crate) fn context(&self) -> &format::context::Input {
        &self.ctx
    }

    /// Reads the next packet, skipping corrupt ones; never blocks longer than `io_timeout`.
    pub(crate) fn read(&mut self) -> Read {
        let mut corrupt = 0;
        self.deadline.arm(self.io_timeout);
        if let Tunnel::Rtmp { stream, packets: Packets::Tags(tags), .. } = &mut self.tunnel {
            return read_tags(stream, tags, &self.deadline, self.io_timeout);
        }
        loop {
            let mut packet = Packet::empty();
            let read = packet.read(&mut self.ctx);
            if let (Err(_), Some(reason)) = (&read, self.tripwire.reason()) {
                return Read::End(Refused::Address(reason.to_owned()).to_string());
            }
            match read {
                Ok(()) => {
                    if let Tunnel::Rtmp { packets: Packets::Draining(tags), .. } = &mut self.tunnel {
                        tags.saw(&packet);
                    }
                    return Read::Packet(packet);
                }
                Err(ffmpeg::Error::Eof) | Err(ffmpeg::Error::Other { errno: ffmpeg::error::EIO })
                    if self.ended().is_some() =>
                {
                    let reason = self.ended().map(|end| end.to_string()).unwrap_or_default();
                    return Read::End(reason);
                }
                Err(ffmpeg::Error::Eof) if self.switch_to_tags() => return self.read(),
                Err(ffmpeg::Error::Eof) => return Read::End("the stream ended".to_owned()),
                Err(ffmpeg::Error::Exit) => {
                    return Read::End(format!("no media for {:?}", self.io_timeout));
                }
                Err(ffmpeg::Error::InvalidData) if corrupt < MAX_CORRUPT_PACKETS_IN_A_ROW => {
                    corrupt += 1;
                    tracing::warn!("skipping a corrupt input packet");
                }
                Err(ffmpeg::Error::Other { errno: ffmpeg::error::EAGAIN }) => {
                    if self.deadline.expired() {
                        return Read::End(format!("no media for {:?}", self.io_timeout));
                    }
                    std::thread::sleep(EAGAIN_POLL);
                }
                Err(error) => return Read::End(format!("reading the stream failed: {error}")),
            }
        }
    }
}

/// The next packet made from an RTMP stream's tags, waiting for more until the deadline.
fn read_tags(stream: &ingest::Stream, tags: &mut TagPackets, deadline: &Deadline, io_timeout: Duration) -> Read {
    loop {
        if let Some(packet) = tags.next_packet() {
            return Read::Packet(packet);
        }
        match stream.take(tags.refill(), || deadline.expired()) {
            Got::Bytes(_) => {}
            Got::End(end) => return Read::End(end.to_string()),
            Got::Interrupted => return Read::End(format!("no media for {io_timeout:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str, allow_file: bool) -> bool {
        matches!(AllowedUrl::parse(url, allow_file), Err(MediaError::SchemeNotAllowed(_)))
    }

    #[test]
    fn network_schemes_are_allowed() {
        for url in
            ["rtmp://h/live/k", "RTMPS://h/a/b", "srt://h:9000", "rtsp://h/s", "http://h/p.m3u8", "https://h/p.m3u8"]
        {
            assert!(AllowedUrl::parse(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_libav_protocols_and_bare_paths_are_refused() {
        for url in [
            "concat:a.ts|b.ts",
            "subfile,,start,0,end,10,,:/etc/passwd",
            "ftp://h/x",
            "/etc/passwd",
            "hls+http://h/p",
            "data:x",
            "pipe:0",
            "tcp://h:1",
        ] {
            assert!(refused(url, true), "{url}");
        }
    }

    #[test]
    fn file_is_allowed_only_when_asked() {
        assert!(refused("file:/tmp/in.flv", false));
        assert!(AllowedUrl::parse("file:/tmp/in.flv", true).is_ok());
    }

    #[test]
    fn hls_never_reuses_a_connection() {
        for url in ["http://h/p.m3u8", "HTTPS://h/p.m3u8"] {
            let options = AllowedUrl::parse(url, false).map(|u| u.options(Duration::from_secs(1), ANALYZE_DURATION));
            let persistent = options.ok().and_then(|o| o.get("http_persistent").map(str::to_owned));
            assert_eq!(persistent.as_deref(), Some("0"), "{url}");
        }
    }

    #[test]
    fn the_whitelist_names_file_only_when_allowed() {
        let network =
            AllowedUrl::parse("rtmp://h/live/k", true).map(|u| u.options(Duration::from_secs(1), ANALYZE_DURATION));
        let whitelist = network.ok().and_then(|o| o.get("protocol_whitelist").map(str::to_owned));
        assert_eq!(whitelist.as_deref(), Some(NETWORK_PROTOCOLS));
    }
}
