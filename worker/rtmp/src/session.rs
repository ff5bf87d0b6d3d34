//! The client session: handshake, then the command exchange libavformat's rtmp client has with
//! a server (rtmpproto.c: `gen_connect`, `handle_invoke_result`, `handle_invoke_status`...),
//! then media. Commands go out in libav's order and shape, so a server treats us as it treats
//! `ffmpeg`:
//!
//! - player: connect → (on its _result) Window Acknowledgement Size, createStream, FCSubscribe
//!   → (on createStream's _result) play (start -1000: libav's `rtmp_live=live` times 1000),
//!   SetBufferLength 3000 ms;
//! - publisher: Set Chunk Size 65536, connect → releaseStream, FCPublish, createStream →
//!   publish "live".

use crate::amf::{self, Value};
use crate::chunk::{self, Header, Message};
use crate::handshake::{self, Handshake};
use crate::{flv, ProtocolError, Status, Target};

/// Chunk streams, as libavformat uses them (rtmppkt.h `RTMPChannel`).
const NETWORK_CHANNEL: u32 = 2;
const SYSTEM_CHANNEL: u32 = 3;
const AUDIO_CHANNEL: u32 = 4;
const VIDEO_CHANNEL: u32 = 6;
const SOURCE_CHANNEL: u32 = 8;

/// Message types (RTMP specification, sections 5.4 and 7.1).
const SET_CHUNK_SIZE: u8 = 1;
const ACKNOWLEDGEMENT: u8 = 3;
const USER_CONTROL: u8 = 4;
const WINDOW_ACK_SIZE: u8 = 5;
const COMMAND_AMF0: u8 = 20;
const AGGREGATE: u8 = 22;

/// User control events (RTMP specification, section 7.1.7).
const STREAM_EOF: u16 = 1;
const SET_BUFFER_LENGTH: u16 = 3;
const PING_REQUEST: u16 = 6;
const PING_RESPONSE: u16 = 7;

/// The chunk size a publisher announces before connect: media goes out in few, large chunks.
const PUBLISH_CHUNK_SIZE: u32 = 65536;
/// Window Acknowledgement Size a player announces when the server named none (libav's default
/// `server_bw`).
const DEFAULT_WINDOW_BYTES: u32 = 2_500_000;
/// The play buffer announced with SetBufferLength (libav's `rtmp_buffer` default).
const BUFFER_LENGTH_MS: u32 = 3000;
/// libav's play start for live streams: `rtmp_live=live` (-1) times 1000.
const PLAY_START_LIVE: f64 = -1000.0;
/// What libav announces as flashVer when playing (`RTMP_CLIENT_PLATFORM` and version).
const PLAYER_FLASH_VERSION: &str = "LNX 9,0,124,2";
const PUBLISHER_FLASH_VERSION: &str = "FMLE/3.0 (compatible; roomrec-rtmp)";
/// A data message published as `@setDataFrame` + the tag (libav's `rtmp_write`), which is how
/// nginx-rtmp knows to keep it as the stream's metadata.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// Replies (acknowledgements, pongs) are dropped while more than this waits to be sent: a
/// server's pings cannot grow the queue of a caller that stopped writing.
const MAX_PENDING_REPLY_BYTES: usize = 1 << 20;
/// Sent bytes are dropped from the front of the queue once they are this many.
const COMPACT_AFTER_BYTES: usize = 64 << 10;
/// Calls awaiting a reply that are remembered (we make at most five).
const MAX_CALLS: usize = 16;
/// Longest text of a Status::Ended.
const MAX_STATUS_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Player,
    Publisher,
}

/// A call whose _result or _error we wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Connect,
    ReleaseStream,
    FcPublish,
    CreateStream,
    FcSubscribe,
    Play,
    Publish,
    CheckBandwidth,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Connect => "connect",
            Call::ReleaseStream => "releaseStream",
            Call::FcPublish => "FCPublish",
            Call::CreateStream => "createStream",
            Call::FcSubscribe => "FCSubscribe",
            Call::Play => "play",
            Call::Publish => "publish",
            Call::CheckBandwidth => "_checkbw",
        }
    }

    /// Errors libav ignores: Adobe-specific calls many servers do not know
    /// (`handle_invoke_error`).
    fn optional(self) -> bool {
        matches!(self, Call::ReleaseStream | Call::FcPublish | Call::FcSubscribe | Call::CheckBandwidth)
    }
}

/// A client session, sans-IO: bytes in, bytes out.
#[derive(Debug)]
pub struct Session {
    reader: chunk::Reader,
    core: Core,
}

/// Everything but the chunk reader, so the reader's messages can be handled while it is
/// borrowed.
#[derive(Debug)]
struct Core {
    role: Role,
    target: Target,
    /// Some until S2 is received.
    handshake: Option<Handshake>,
    status: Status,
    writer: chunk::Writer,
    out: Vec<u8>,
    out_sent: usize,
    /// A reusable buffer for command bodies.
    body: Vec<u8>,
    transactions: u32,
    calls: Vec<(u32, Call)>,
    stream_id: u32,
    flv_started: bool,
    /// Bytes received after the handshake, and when the last Acknowledgement was queued.
    received: u64,
    acknowledged: u64,
    window: Option<u32>,
}

impl Session {
    /// A player of `target` (live only: play start = -1 second, like libav's rtmp_live=live;
    /// sends connect (flashVer "LNX 9,0,124,2", tcUrl, app, fpad false, capabilities 15,
    /// audioCodecs 4071, videoCodecs 252, videoFunction 1), FCSubscribe, createStream,
    /// SetBufferLength, play). C0+C1 are queued at once.
    pub fn play(target: Target) -> Session {
        Session::new(Role::Player, target)
    }

    /// A publisher of `target` (releaseStream, FCPublish, createStream, publish "live").
    /// Sends Set Chunk Size 65536 first.
    pub fn publish(target: Target) -> Session {
        Session::new(Role::Publisher, target)
    }

    fn new(role: Role, target: Target) -> Session {
        let mut out = Vec::new();
        handshake::client_hello(&mut out);
        let core = Core {
            role,
            target,
            handshake: Some(Handshake::default()),
            status: Status::Starting,
            writer: chunk::Writer { chunk_size: chunk::DEFAULT_CHUNK_SIZE },
            out,
            out_sent: 0,
            body: Vec::new(),
            transactions: 0,
            calls: Vec::new(),
            stream_id: 0,
            flv_started: false,
            received: 0,
            acknowledged: 0,
            window: None,
        };
        Session { reader: chunk::Reader::default(), core }
    }

    /// Bytes waiting to be sent. After writing `n` of them call `sent(n)`.
    pub fn pending(&self) -> &[u8] {
        &self.core.out[self.core.out_sent..]
    }

    pub fn sent(&mut self, n: usize) {
        let core = &mut self.core;
        core.out_sent = (core.out_sent + n).min(core.out.len());
        if core.out_sent == core.out.len() {
            core.out.clear();
            core.out_sent = 0;
        } else if core.out_sent >= COMPACT_AFTER_BYTES {
            core.out.drain(..core.out_sent);
            core.out_sent = 0;
        }
    }

    /// Feeds bytes read from the server. For a player, every media message once started is
    /// appended to `flv` as FLV: the 13-byte FLV header (flags 5) before the first tag, then
    /// per message an 11-byte tag header, the payload, the 4-byte previous-tag size. Audio (8),
    /// video (9) and data (18) messages are passed (data as-is, like libav: only a leading
    /// `@setDataFrame` is dropped); aggregate messages (22) are unpacked into their tags with
    /// timestamps rebased onto the message's. Timestamps are the message's 32-bit absolute ms.
    /// Acknowledgements (after the server's window), ping responses and replies are queued
    /// in `pending`. Buffers are reused: no allocation per message in steady state.
    pub fn receive(&mut self, mut bytes: &[u8], flv: &mut Vec<u8>) -> Result<Status, ProtocolError> {
        let core = &mut self.core;
        if core.ended() {
            return Ok(core.status.clone());
        }
        if let Some(handshake) = &mut core.handshake {
            let (used, c2) = handshake.feed(bytes)?;
            bytes = &bytes[used..];
            if let Some(c2) = c2 {
                core.handshake = None;
                core.out.extend_from_slice(&c2);
                core.connect();
            }
        }
        if bytes.is_empty() {
            return Ok(core.status.clone());
        }
        core.received += bytes.len() as u64;
        let result = self.reader.feed(bytes, |message| core.on_message(message, flv));
        core.acknowledge();
        match result {
            // Bytes after the end are of no interest, well-formed or not.
            Err(error) if !core.ended() => Err(error),
            _ => Ok(core.status.clone()),
        }
    }

    pub fn status(&self) -> &Status {
        &self.core.status
    }

    /// Publisher only, once Started: queue one media message (kind 8 audio, 9 video, 18 data)
    /// with a 32-bit ms timestamp, chunked at the session's chunk size. Ignored otherwise.
    pub fn send(&mut self, kind: u8, timestamp: u32, payload: &[u8]) {
        let core = &mut self.core;
        if core.role != Role::Publisher || core.status != Status::Started {
            return;
        }
        let chunk_stream = if kind == flv::VIDEO { VIDEO_CHANNEL } else { AUDIO_CHANNEL };
        let header = Header { chunk_stream, kind, timestamp, stream_id: core.stream_id };
        let parts: &[&[u8]] = if kind == flv::DATA { &[SET_DATA_FRAME, payload] } else { &[payload] };
        core.writer.write(&mut core.out, header, parts);
    }

    #[cfg(test)]
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.reader.buffered_bytes()
    }
}

impl Core {
    fn ended(&self) -> bool {
        matches!(self.status, Status::Ended(_))
    }

    /// After the handshake: the publisher's chunk size, then connect.
    fn connect(&mut self) {
        if self.role == Role::Publisher {
            self.control(SET_CHUNK_SIZE, &PUBLISH_CHUNK_SIZE.to_be_bytes());
            self.writer.chunk_size = PUBLISH_CHUNK_SIZE as usize;
        }
        let mut body = self.start_call("connect", Call::Connect);
        amf::write_object_start(&mut body);
        amf::write_key(&mut body, "app");
        amf::write_string(&mut body, &self.target.app);
        if self.role == Role::Publisher {
            amf::write_key(&mut body, "type");
            amf::write_string(&mut body, "nonprivate");
        }
        amf::write_key(&mut body, "flashVer");
        let version = if self.role == Role::Player { PLAYER_FLASH_VERSION } else { PUBLISHER_FLASH_VERSION };
        amf::write_string(&mut body, version);
        amf::write_key(&mut body, "tcUrl");
        amf::write_string(&mut body, &self.target.tc_url);
        if self.role == Role::Player {
            amf::write_key(&mut body, "fpad");
            amf::write_bool(&mut body, false);
            let numbers =
                [("capabilities", 15.0), ("audioCodecs", 4071.0), ("videoCodecs", 252.0), ("videoFunction", 1.0)];
            for (key, value) in numbers {
                amf::write_key(&mut body, key);
                amf::write_number(&mut body, value);
            }
        }
        amf::write_object_end(&mut body);
        self.finish_call(SYSTEM_CHANNEL, 0, body);
    }

    /// Starts a command body: name, a new transaction id (remembered with `call`).
    fn start_call(&mut self, name: &str, call: Call) -> Vec<u8> {
        self.transactions += 1;
        if self.calls.len() == MAX_CALLS {
            self.calls.remove(0);
        }
        self.calls.push((self.transactions, call));
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        amf::write_string(&mut body, name);
        amf::write_number(&mut body, f64::from(self.transactions));
        body
    }

    fn finish_call(&mut self, chunk_stream: u32, stream_id: u32, body: Vec<u8>) {
        let header = Header { chunk_stream, kind: COMMAND_AMF0, timestamp: 0, stream_id };
        self.writer.write(&mut self.out, header, &[&body]);
        self.body = body;
    }

    /// A call whose arguments are null and one string (releaseStream, FCPublish, FCSubscribe).
    fn call_with_name(&mut self, name: &str, call: Call) {
        let mut body = self.start_call(name, call);
        amf::write_null(&mut body);
        amf::write_string(&mut body, &self.target.stream);
        self.finish_call(SYSTEM_CHANNEL, 0, body);
    }

    /// A protocol control or user control message on the network chunk stream.
    fn control(&mut self, kind: u8, payload: &[u8]) {
        let header = Header { chunk_stream: NETWORK_CHANNEL, kind, timestamp: 0, stream_id: 0 };
        self.writer.write(&mut self.out, header, &[payload]);
    }

    /// A reply to the server, unless the caller has stopped sending what is queued.
    fn reply(&mut self, kind: u8, payload: &[u8]) {
        if self.out.len() - self.out_sent <= MAX_PENDING_REPLY_BYTES {
            self.control(kind, payload);
        }
    }

    fn acknowledge(&mut self) {
        let Some(window) = self.window else { return };
        if self.received - self.acknowledged >= u64::from(window) {
            self.acknowledged = self.received;
            // The sequence number wraps at 32 bits (RTMP specification, section 5.4.3).
            self.reply(ACKNOWLEDGEMENT, &(self.received as u32).to_be_bytes());
        }
    }

    fn on_message(&mut self, message: Message<'_>, flv: &mut Vec<u8>) -> Result<(), ProtocolError> {
        if self.ended() {
            return Ok(());
        }
        let payload = message.payload;
        match message.kind {
            USER_CONTROL => {
                let event = payload.get(..2).ok_or(ProtocolError::ShortControl { kind: USER_CONTROL })?;
                match u16::from_be_bytes([event[0], event[1]]) {
                    STREAM_EOF => self.end("StreamEOF"),
                    PING_REQUEST => {
                        let time = payload.get(2..6).ok_or(ProtocolError::ShortControl { kind: USER_CONTROL })?;
                        let mut pong = [0; 6];
                        pong[..2].copy_from_slice(&PING_RESPONSE.to_be_bytes());
                        pong[2..].copy_from_slice(time);
                        self.reply(USER_CONTROL, &pong);
                    }
                    _ => {}
                }
            }
            WINDOW_ACK_SIZE => {
                let size = payload.get(..4).ok_or(ProtocolError::ShortControl { kind: WINDOW_ACK_SIZE })?;
                self.window = Some(u32::from_be_bytes([size[0], size[1], size[2], size[3]])).filter(|&w| w > 0);
            }
            COMMAND_AMF0 => self.on_command(payload),
            kind if self.role == Role::Player && self.status == Status::Started => {
                self.on_media(kind, message.timestamp, payload, flv)
            }
            _ => {}
        }
        Ok(())
    }

    /// Media after Play.Start goes to the FLV stream, as libav's `get_packet` passes it: empty
    /// messages are dropped, data loses a leading `@setDataFrame`, aggregates are unpacked.
    fn on_media(&mut self, kind: u8, timestamp: u32, payload: &[u8], flv: &mut Vec<u8>) {
        if payload.is_empty() || !matches!(kind, flv::AUDIO | flv::VIDEO | flv::DATA | AGGREGATE) {
            return;
        }
        if !self.flv_started {
            flv::write_file_header(flv);
            self.flv_started = true;
        }
        match kind {
            AGGREGATE => flv::write_aggregate(flv, timestamp, payload),
            flv::DATA => {
                let data = payload.strip_prefix(SET_DATA_FRAME).unwrap_or(payload);
                flv::write_tag(flv, kind, timestamp, data);
            }
            _ => flv::write_tag(flv, kind, timestamp, payload),
        }
    }

    fn on_command(&mut self, payload: &[u8]) {
        let mut reader = amf::Reader::new(payload);
        let Ok(Value::String(name)) = reader.value() else { return };
        let transaction = reader.value().ok().and_then(|v| v.as_number()).unwrap_or(0.0);
        // Lenient like libav: the values up to the first one we cannot read.
        let mut args = Vec::new();
        while let Ok(value) = reader.value() {
            args.push(value);
        }
        match name {
            b"_result" => self.on_result(transaction, &args),
            b"_error" => {
                let call = self.take_call(transaction);
                if !call.is_some_and(Call::optional) {
                    let what = call.map_or("a call", Call::name);
                    let (code, description) = status_fields(&args);
                    self.end(&format!("{what} failed: {code}: {description}"));
                }
            }
            b"onStatus" => self.on_status(&args),
            b"onBWDone" => {
                let mut body = self.start_call("_checkbw", Call::CheckBandwidth);
                amf::write_null(&mut body);
                self.finish_call(SYSTEM_CHANNEL, 0, body);
            }
            _ => {}
        }
    }

    fn take_call(&mut self, transaction: f64) -> Option<Call> {
        let index = self.calls.iter().position(|(id, _)| f64::from(*id) == transaction)?;
        Some(self.calls.remove(index).1)
    }

    fn on_result(&mut self, transaction: f64, args: &[Value<'_>]) {
        match (self.take_call(transaction), self.role) {
            (Some(Call::Connect), Role::Player) => {
                let window = self.window.unwrap_or(DEFAULT_WINDOW_BYTES);
                self.control(WINDOW_ACK_SIZE, &window.to_be_bytes());
                self.create_stream();
                self.call_with_name("FCSubscribe", Call::FcSubscribe);
            }
            (Some(Call::Connect), Role::Publisher) => {
                self.call_with_name("releaseStream", Call::ReleaseStream);
                self.call_with_name("FCPublish", Call::FcPublish);
                self.create_stream();
            }
            (Some(Call::CreateStream), role) => {
                // The stream id is the reply's first number (after the null command object).
                if let Some(id) = args.iter().find_map(Value::as_number) {
                    self.stream_id = id as u32;
                }
                match role {
                    Role::Player => self.play(),
                    Role::Publisher => {
                        let mut body = self.start_call("publish", Call::Publish);
                        amf::write_null(&mut body);
                        amf::write_string(&mut body, &self.target.stream);
                        amf::write_string(&mut body, "live");
                        self.finish_call(SOURCE_CHANNEL, self.stream_id, body);
                    }
                }
            }
            _ => {}
        }
    }

    fn create_stream(&mut self) {
        let mut body = self.start_call("createStream", Call::CreateStream);
        amf::write_null(&mut body);
        self.finish_call(SYSTEM_CHANNEL, 0, body);
    }

    fn play(&mut self) {
        let mut body = self.start_call("play", Call::Play);
        amf::write_null(&mut body);
        amf::write_string(&mut body, &self.target.stream);
        amf::write_number(&mut body, PLAY_START_LIVE);
        self.finish_call(SOURCE_CHANNEL, self.stream_id, body);
        let mut buffer = [0; 10];
        buffer[..2].copy_from_slice(&SET_BUFFER_LENGTH.to_be_bytes());
        buffer[2..6].copy_from_slice(&self.stream_id.to_be_bytes());
        buffer[6..].copy_from_slice(&BUFFER_LENGTH_MS.to_be_bytes());
        self.control(USER_CONTROL, &buffer);
    }

    fn on_status(&mut self, args: &[Value<'_>]) {
        let Some(info) = args.iter().find(|v| matches!(v, Value::Object(_) | Value::EcmaArray(_))) else { return };
        let text = |key| info.get(key).and_then(Value::as_str).unwrap_or_default();
        let code = text("code");
        if text("level") == b"error".as_slice() {
            let (code, description) = status_fields(args);
            self.end(&format!("{code}: {description}"));
            return;
        }
        match (code, self.role) {
            (b"NetStream.Play.Start", Role::Player) | (b"NetStream.Publish.Start", Role::Publisher)
                if self.status == Status::Starting =>
            {
                self.status = Status::Started;
            }
            (b"NetStream.Play.Stop" | b"NetStream.Play.UnpublishNotify", _) => {
                let (code, description) = status_fields(args);
                self.end(&format!("{code}: {description}"));
            }
            _ => {}
        }
    }

    fn end(&mut self, text: &str) {
        let printable = text.chars().filter(|c| (' '..='~').contains(c)).take(MAX_STATUS_CHARS).collect();
        tracing::debug!(status = %text, "the server ended the stream");
        self.status = Status::Ended(printable);
    }
}

/// The code and description of a status or error reply's info object.
fn status_fields(args: &[Value<'_>]) -> (String, String) {
    let info = args.iter().find(|v| matches!(v, Value::Object(_) | Value::EcmaArray(_)));
    let text = |key| {
        let value = info.and_then(|i| i.get(key)).and_then(Value::as_str).unwrap_or_default();
        String::from_utf8_lossy(value).into_owned()
    };
    (text("code"), text("description"))
}
