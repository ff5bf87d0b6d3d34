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

use crate::chunk::{self, Header, Message};
use crate::handshake::{self, Handshake};
use crate::{amf, flv, ProtocolError, Status, Target};
use commands::Call;

mod commands;

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
/// A data message published as `@setDataFrame` + the tag (libav's `rtmp_write`), which is how
/// nginx-rtmp knows to keep it as the stream's metadata.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// Replies (acknowledgements, pongs) are dropped while more than this waits to be sent: a
/// server's pings cannot grow the queue of a caller that stopped writing.
const MAX_PENDING_REPLY_BYTES: usize = 1 << 20;
/// Sent bytes are dropped from the front of the queue once they are this many.
const COMPACT_AFTER_BYTES: usize = 64 << 10;
/// Longest text of a Status::Ended.
const MAX_STATUS_CHARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Player,
    Publisher,
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

    /// Marks the first `n` bytes of `pending` as written.
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

    /// Where the session stands after the last `receive`.
    pub fn status(&self) -> &Status {
        &self.core.status
    }

    /// Publisher only, once Started: queue one media message (kind 8 audio, 9 video, 18 data)
    /// with a 32-bit ms timestamp, chunked at the session's chunk size. Ignored otherwise.
    /// Data goes out as `@setDataFrame` + the payload, as libav publishes an FLV data tag.
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
            flv::write_file_header(flv, header_flags(kind, payload));
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

    fn end(&mut self, text: &str) {
        let printable = text.chars().filter(|c| (' '..='~').contains(c)).take(MAX_STATUS_CHARS).collect();
        tracing::debug!(status = %text, "the server ended the stream");
        self.status = Status::Ended(printable);
    }
}

/// The FLV header's audio and video flags, as libav's `rtmp_open` sets them from what comes
/// first: an `onMetaData` ECMA array names the streams by their `audiocodecid` and
/// `videocodecid` properties, else the first media message is the only stream known. The FLV
/// demuxer waits for the streams the flags name before it stops probing.
fn header_flags(kind: u8, payload: &[u8]) -> u8 {
    const HAS_AUDIO: u8 = 4;
    const HAS_VIDEO: u8 = 1;
    match kind {
        flv::AUDIO => HAS_AUDIO,
        flv::VIDEO => HAS_VIDEO,
        flv::DATA => {
            let data = payload.strip_prefix(SET_DATA_FRAME).unwrap_or(payload);
            let mut reader = amf::Reader::new(data);
            let named = reader.value().ok().and_then(|name| name.as_str().map(|n| n == b"onMetaData"));
            match reader.value() {
                Ok(metadata @ amf::Value::EcmaArray(_)) if named == Some(true) => {
                    let audio = metadata.get("audiocodecid").map_or(0, |_| HAS_AUDIO);
                    let video = metadata.get("videocodecid").map_or(0, |_| HAS_VIDEO);
                    audio | video
                }
                _ => HAS_AUDIO | HAS_VIDEO,
            }
        }
        _ => HAS_AUDIO | HAS_VIDEO,
    }
}
