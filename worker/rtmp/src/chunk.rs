//! The RTMP chunk stream (RTMP specification, section 5.3): messages cut into chunks of at most
//! the chunk size, chunks of different chunk streams interleaved, headers that only carry what
//! changed since the previous message of the same chunk stream.
//!
//! The reader copies chunk payloads straight from the caller's bytes into one reusable
//! assembly buffer per chunk stream, so a 64 KiB socket read costs one copy and no allocation;
//! only a header split across reads is stashed (at most 18 bytes). Header semantics follow
//! libavformat's `rtmp_packet_read_one_chunk` (rtmppkt.c): a type-3 chunk starting a message
//! adds the chunk stream's last timestamp field again, and the extended timestamp is read on
//! every chunk whose stream's last field was 0xFFFFFF, continuation chunks included (as
//! nginx-rtmp sends them with `play_time_fix`, its default).

use crate::{ProtocolError, MAX_MESSAGE_BYTES};

/// Most chunk streams a server may open on one connection (real servers use fewer than ten).
pub const MAX_CHUNK_STREAMS: usize = 64;

/// Most bytes held in unfinished messages at once, over all chunk streams.
pub const MAX_BUFFERED_BYTES: usize = 2 * MAX_MESSAGE_BYTES;

/// An assembly buffer that grew past this is released after its message, so one huge message
/// does not pin its memory for the rest of the session.
pub const KEEP_CAPACITY_BYTES: usize = 1 << 20;

/// The chunk size both sides start with (RTMP specification, section 5.4.1).
pub const DEFAULT_CHUNK_SIZE: usize = 128;

/// Longest chunk header: 3-byte basic header, 11-byte message header, 4-byte extended timestamp.
const MAX_HEADER_BYTES: usize = 18;

/// The timestamp field value that announces an extended timestamp.
const EXTENDED: u32 = 0xFF_FFFF;

/// Protocol control message types handled by the chunk layer itself.
const SET_CHUNK_SIZE: u8 = 1;
const ABORT: u8 = 2;

/// A complete message, borrowing its chunk stream's assembly buffer.
#[derive(Debug)]
pub struct Message<'a> {
    pub kind: u8,
    pub timestamp: u32,
    /// Unused by the client (libav does not filter media by message stream either); the
    /// tests' fake server checks the client's.
    #[cfg_attr(not(test), allow(dead_code))]
    pub stream_id: u32,
    pub payload: &'a [u8],
}

/// What a chunk stream remembers from its last header, and the message being assembled.
#[derive(Debug, Default)]
struct ChunkStream {
    id: u32,
    timestamp: u32,
    /// The last timestamp field (delta, or absolute after a type-0 header), resolved.
    delta: u32,
    /// The last timestamp field was 0xFFFFFF: every chunk carries 4 extended bytes.
    extended: bool,
    length: usize,
    kind: u8,
    stream_id: u32,
    /// Payload bytes still expected for the message in `buffer` (0: no message under way).
    remaining: usize,
    buffer: Vec<u8>,
}

impl ChunkStream {
    /// No message under way; the buffer kept for the next one unless it grew unusually large.
    fn reset(&mut self) {
        self.remaining = 0;
        self.buffer.clear();
        if self.buffer.capacity() > KEEP_CAPACITY_BYTES {
            self.buffer = Vec::new();
        }
    }
}

/// Turns the server's bytes into messages.
#[derive(Debug)]
pub struct Reader {
    chunk_size: usize,
    streams: Vec<ChunkStream>,
    header: [u8; MAX_HEADER_BYTES],
    header_len: usize,
    /// The chunk stream whose chunk payload is being read, and how much of the chunk is left.
    current: usize,
    chunk_left: usize,
    /// Sum of the lengths of the messages under way.
    buffered: usize,
}

impl Default for Reader {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER_BYTES],
            header_len: 0,
            current: 0,
            chunk_left: 0,
            buffered: 0,
        }
    }
}

impl Reader {
    /// Parses `input`, calling `on_message` for each complete message other than Set Chunk Size
    /// and Abort (applied here, as they change how the next chunk is read).
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on_message: impl FnMut(Message<'_>) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        while !input.is_empty() {
            if self.chunk_left == 0 {
                let Some(used) = self.read_header(input)? else { return Ok(()) };
                input = &input[used..];
            } else {
                let stream = &mut self.streams[self.current];
                let n = self.chunk_left.min(input.len());
                stream.buffer.extend_from_slice(&input[..n]);
                stream.remaining -= n;
                self.chunk_left -= n;
                input = &input[n..];
            }
            if self.chunk_left == 0 && self.header_len == 0 && self.streams[self.current].remaining == 0 {
                self.complete(&mut on_message)?;
            }
        }
        Ok(())
    }

    /// Bytes held by the assembly buffers.
    #[cfg(test)]
    pub fn buffered_bytes(&self) -> usize {
        self.streams.iter().map(|s| s.buffer.capacity()).sum()
    }

    /// Takes header bytes from `input` into the stash; once the header is whole, applies it
    /// and returns how many bytes of `input` it used. `None`: all of `input` went to the stash.
    fn read_header(&mut self, input: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let mut used = 0;
        loop {
            let needed = self.header_needed();
            if self.header_len >= needed {
                break;
            }
            if used == input.len() {
                return Ok(None);
            }
            // Take what is known to be needed, then look again: a header's length depends on
            // its first bytes (basic header size, format, timestamp field).
            let take = (needed - self.header_len).min(input.len() - used);
            self.header[self.header_len..self.header_len + take].copy_from_slice(&input[used..used + take]);
            self.header_len += take;
            used += take;
        }
        self.apply_header()?;
        self.header_len = 0;
        Ok(Some(used))
    }

    /// How long the stashed header is, as far as its bytes so far tell.
    fn header_needed(&self) -> usize {
        let h = &self.header[..self.header_len];
        let Some(&first) = h.first() else { return 1 };
        let basic = match first & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if h.len() < basic {
            return basic;
        }
        let fmt = first >> 6;
        let message = [11, 7, 3, 0][usize::from(fmt)];
        let without_extended = basic + message;
        if fmt < 3 {
            if h.len() < basic + 3 {
                return without_extended;
            }
            if be24(&h[basic..]) == EXTENDED {
                return without_extended + 4;
            }
            return without_extended;
        }
        match self.streams.iter().find(|s| s.id == chunk_stream_id(h)) {
            Some(stream) if stream.extended => without_extended + 4,
            _ => without_extended,
        }
    }

    fn apply_header(&mut self) -> Result<(), ProtocolError> {
        let h = self.header;
        let h = &h[..self.header_len];
        let id = chunk_stream_id(h);
        let fmt = h[0] >> 6;
        let mut at = match h[0] & 0x3f {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let index = self.stream_index(id)?;
        let stream = &mut self.streams[index];
        let starting = stream.remaining == 0;
        if !starting && fmt != 3 {
            return Err(ProtocolError::HeaderInsideMessage { chunk_stream: id });
        }
        let mut field = stream.delta;
        let mut extended = stream.extended;
        if fmt < 3 {
            field = be24(&h[at..]);
            extended = field == EXTENDED;
            at += 3;
            if fmt < 2 {
                stream.length = be24(&h[at..]) as usize;
                stream.kind = h[at + 3];
                at += 4;
            }
            if fmt == 0 {
                stream.stream_id = u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
                at += 4;
            }
        }
        if extended {
            field = u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        }
        if starting {
            stream.timestamp = if fmt == 0 { field } else { stream.timestamp.wrapping_add(field) };
            if fmt < 3 {
                stream.delta = field;
                stream.extended = extended;
            }
            // A 24-bit length stays under the limit today; the check keeps it a limit if
            // either changes.
            if stream.length > MAX_MESSAGE_BYTES {
                return Err(ProtocolError::MessageTooLarge { length: stream.length });
            }
            if self.buffered + stream.length > MAX_BUFFERED_BYTES {
                return Err(ProtocolError::TooMuchBuffered);
            }
            self.buffered += stream.length;
            stream.remaining = stream.length;
            stream.buffer.clear();
            stream.buffer.reserve(stream.length);
        }
        self.current = index;
        self.chunk_left = stream.remaining.min(self.chunk_size);
        Ok(())
    }

    fn stream_index(&mut self, id: u32) -> Result<usize, ProtocolError> {
        if let Some(index) = self.streams.iter().position(|s| s.id == id) {
            return Ok(index);
        }
        if self.streams.len() == MAX_CHUNK_STREAMS {
            return Err(ProtocolError::TooManyChunkStreams { limit: MAX_CHUNK_STREAMS });
        }
        self.streams.push(ChunkStream { id, ..ChunkStream::default() });
        Ok(self.streams.len() - 1)
    }

    /// The message of the current chunk stream is whole: apply or deliver it.
    fn complete(
        &mut self,
        on_message: &mut impl FnMut(Message<'_>) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let stream = &self.streams[self.current];
        self.buffered -= stream.length.min(self.buffered);
        let result = match stream.kind {
            SET_CHUNK_SIZE => {
                be32(SET_CHUNK_SIZE, &stream.buffer).map(|size| size & 0x7fff_ffff).and_then(|size| match size {
                    0 => Err(ProtocolError::ChunkSize { size }),
                    _ => {
                        self.chunk_size = size as usize;
                        Ok(())
                    }
                })
            }
            ABORT => be32(ABORT, &stream.buffer).map(|id| {
                if let Some(aborted) = self.streams.iter_mut().find(|s| s.id == id && s.remaining > 0) {
                    self.buffered -= aborted.length.min(self.buffered);
                    aborted.reset();
                }
            }),
            kind => on_message(Message {
                kind,
                timestamp: stream.timestamp,
                stream_id: stream.stream_id,
                payload: &stream.buffer,
            }),
        };
        self.streams[self.current].reset();
        result
    }
}

/// The 32-bit field that starts a protocol control message.
fn be32(kind: u8, payload: &[u8]) -> Result<u32, ProtocolError> {
    match payload {
        [a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(ProtocolError::ShortControl { kind }),
    }
}

/// The chunk stream id of a basic header (at least its whole basic header).
fn chunk_stream_id(h: &[u8]) -> u32 {
    match h[0] & 0x3f {
        0 => 64 + u32::from(h[1]),
        1 => 64 + u32::from(h[1]) + 256 * u32::from(h[2]),
        id => u32::from(id),
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Writes messages as chunks: a type-0 header, then type-3 continuation headers (repeating
/// the extended timestamp, as libavformat's `ff_rtmp_packet_write` does and nginx-rtmp reads).
#[derive(Debug)]
pub struct Writer {
    pub chunk_size: usize,
}

/// The header fields of one outgoing message.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub chunk_stream: u32,
    pub kind: u8,
    pub timestamp: u32,
    pub stream_id: u32,
}

impl Writer {
    /// Appends the message whose payload is `parts` concatenated to `out`.
    pub fn write(&self, out: &mut Vec<u8>, header: Header, parts: &[&[u8]]) {
        let length: usize = parts.iter().map(|p| p.len()).sum();
        write_basic_header(out, 0, header.chunk_stream);
        let extended = header.timestamp >= EXTENDED;
        out.extend_from_slice(&header.timestamp.min(EXTENDED).to_be_bytes()[1..]);
        out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
        out.push(header.kind);
        out.extend_from_slice(&header.stream_id.to_le_bytes());
        if extended {
            out.extend_from_slice(&header.timestamp.to_be_bytes());
        }
        let chunk_size = self.chunk_size.max(1);
        let mut in_chunk = 0;
        for part in parts {
            let mut part = *part;
            while !part.is_empty() {
                if in_chunk == chunk_size {
                    write_basic_header(out, 3, header.chunk_stream);
                    if extended {
                        out.extend_from_slice(&header.timestamp.to_be_bytes());
                    }
                    in_chunk = 0;
                }
                let n = (chunk_size - in_chunk).min(part.len());
                out.extend_from_slice(&part[..n]);
                in_chunk += n;
                part = &part[n..];
            }
        }
    }
}

/// A basic header: the format in the top two bits, then the chunk stream id in 1 to 3 bytes.
pub fn write_basic_header(out: &mut Vec<u8>, fmt: u8, chunk_stream: u32) {
    let fmt = fmt << 6;
    match chunk_stream {
        2..=63 => out.push(fmt | chunk_stream as u8),
        64..=319 => out.extend_from_slice(&[fmt, (chunk_stream - 64) as u8]),
        _ => {
            let id = chunk_stream.saturating_sub(64).min(0xffff) as u16;
            out.push(fmt | 1);
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(reader: &mut Reader, input: &[u8]) -> Vec<(u8, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        reader
            .feed(input, |m| {
                out.push((m.kind, m.timestamp, m.stream_id, m.payload.to_vec()));
                Ok(())
            })
            .unwrap();
        out
    }

    #[test]
    fn written_messages_read_back_whole_or_byte_by_byte() {
        let writer = Writer { chunk_size: 128 };
        let mut bytes = Vec::new();
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let header = Header { chunk_stream: 6, kind: 9, timestamp: 0x0100_0000, stream_id: 1 };
        writer.write(&mut bytes, header, &[&payload[..10], &payload[10..]]);
        writer.write(&mut bytes, Header { chunk_stream: 400, kind: 8, timestamp: 5, stream_id: 1 }, &[b"abc"]);
        let expected = vec![(9, 0x0100_0000, 1, payload.clone()), (8, 5, 1, b"abc".to_vec())];

        assert_eq!(messages(&mut Reader::default(), &bytes), expected);
        let mut reader = Reader::default();
        let mut one_by_one = Vec::new();
        for byte in &bytes {
            one_by_one.extend(messages(&mut reader, std::slice::from_ref(byte)));
        }
        assert_eq!(one_by_one, expected);
    }

    #[test]
    fn type_3_header_starting_a_message_adds_the_last_delta_again() {
        let mut bytes = vec![0x04, 0, 0, 10, 0, 0, 1, 8, 1, 0, 0, 0, b'a'];
        bytes.extend_from_slice(&[0x84, 0, 0, 20, b'b']); // type 2: delta 20
        bytes.extend_from_slice(&[0xc4, b'c']); // type 3: delta 20 again
        let got: Vec<u32> = messages(&mut Reader::default(), &bytes).iter().map(|m| m.1).collect();
        assert_eq!(got, [10, 30, 50]);
    }

    #[test]
    fn an_abort_drops_the_unfinished_message_of_its_chunk_stream() {
        let mut bytes = vec![0x06, 0, 0, 1, 0, 1, 0x2c, 9, 1, 0, 0, 0]; // 300 bytes announced
        bytes.extend_from_slice(&[b'x'; DEFAULT_CHUNK_SIZE]);
        bytes.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, ABORT, 0, 0, 0, 0, 0, 0, 0, 6]);
        bytes.extend_from_slice(&[0x06, 0, 0, 2, 0, 0, 3, 9, 1, 0, 0, 0, b'n', b'e', b'w']);
        assert_eq!(messages(&mut Reader::default(), &bytes), [(9, 2, 1, b"new".to_vec())]);
    }

    #[test]
    fn a_set_chunk_size_applies_to_the_next_chunk() {
        let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, SET_CHUNK_SIZE, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
        bytes.extend_from_slice(&[0x06, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0]);
        bytes.extend_from_slice(&[b'y'; 256]);
        assert_eq!(messages(&mut Reader::default(), &bytes), [(9, 0, 1, vec![b'y'; 256])]);
    }

    #[test]
    fn too_much_unfinished_data_and_too_many_chunk_streams_are_refused() {
        let mut huge = Vec::new();
        for id in 4..7 {
            huge.extend_from_slice(&[id, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0]);
            huge.extend_from_slice(&[b'x'; DEFAULT_CHUNK_SIZE]);
        }
        let error = Reader::default().feed(&huge, |_| Ok(())).unwrap_err();
        assert!(matches!(error, ProtocolError::TooMuchBuffered), "{error}");

        let mut many = Vec::new();
        for id in 0..=MAX_CHUNK_STREAMS as u32 {
            write_basic_header(&mut many, 0, 3 + id);
            many.extend_from_slice(&[0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0]);
        }
        let error = Reader::default().feed(&many, |_| Ok(())).unwrap_err();
        assert!(matches!(error, ProtocolError::TooManyChunkStreams { .. }), "{error}");
    }
}
