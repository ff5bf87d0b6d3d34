//! The server side of the tests: writes what a server sends (with any chunk header format, so
//! the client meets type 1, 2 and 3 headers, extended timestamps and interleaving) and reads
//! back what the client sent.

use crate::amf::{self, Value};
use crate::chunk::{self, write_basic_header};
use crate::handshake::PACKET_BYTES;

/// S0, S1, S2 of the simple handshake.
pub fn handshake() -> Vec<u8> {
    let mut out = vec![3];
    out.extend((0..PACKET_BYTES).map(|i| (i % 251) as u8));
    out.extend(std::iter::repeat_n(0x5a, PACKET_BYTES));
    out
}

/// An AMF0 value built by a test.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf {
    Num(f64),
    Bool(bool),
    Str(String),
    Obj(Vec<(String, Amf)>),
    Null,
    /// Anything else the client sent (it sends none).
    Other,
}

pub fn s(text: &str) -> Amf {
    Amf::Str(text.to_owned())
}

pub fn obj(props: &[(&str, Amf)]) -> Amf {
    Amf::Obj(props.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

pub fn encode(values: &[Amf]) -> Vec<u8> {
    fn one(out: &mut Vec<u8>, value: &Amf) {
        match value {
            Amf::Num(n) => amf::write_number(out, *n),
            Amf::Bool(b) => amf::write_bool(out, *b),
            Amf::Str(s) => amf::write_string(out, s),
            Amf::Null | Amf::Other => amf::write_null(out),
            Amf::Obj(props) => {
                amf::write_object_start(out);
                for (key, value) in props {
                    amf::write_key(out, key);
                    one(out, value);
                }
                amf::write_object_end(out);
            }
        }
    }
    let mut out = Vec::new();
    for value in values {
        one(&mut out, value);
    }
    out
}

pub fn decode(payload: &[u8]) -> Vec<Amf> {
    fn owned(value: &Value<'_>) -> Amf {
        match value {
            Value::Number(n) => Amf::Num(*n),
            Value::Boolean(b) => Amf::Bool(*b),
            Value::String(s) => Amf::Str(String::from_utf8_lossy(s).into_owned()),
            Value::Object(props) => {
                Amf::Obj(props.iter().map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), owned(v))).collect())
            }
            Value::Null => Amf::Null,
            _ => Amf::Other,
        }
    }
    let mut reader = amf::Reader::new(payload);
    let mut values = Vec::new();
    while !reader.is_empty() {
        values.push(owned(&reader.value().expect("the client sends well-formed AMF")));
    }
    values
}

/// What a server sends after the handshake, chunk by chunk.
pub struct Script {
    pub out: Vec<u8>,
    pub chunk_size: usize,
}

/// The header of a message as a server sends it: `fmt` for its first chunk, `time` the
/// timestamp field's value (absolute for type 0, a delta otherwise; ignored for type 3).
#[derive(Debug, Clone, Copy)]
pub struct Head {
    pub fmt: u8,
    pub chunk_stream: u32,
    pub time: u32,
    pub kind: u8,
    pub stream_id: u32,
}

pub fn head(fmt: u8, chunk_stream: u32, time: u32, kind: u8) -> Head {
    Head { fmt, chunk_stream, time, kind, stream_id: 1 }
}

impl Script {
    pub fn new() -> Self {
        Self { out: Vec::new(), chunk_size: chunk::DEFAULT_CHUNK_SIZE }
    }

    /// The chunks of one message (to interleave with another's). `extended`: the chunk stream's
    /// last timestamp field was 0xFFFFFF, so even a type-3 header carries 4 more bytes.
    pub fn chunks(&self, head: Head, extended: Option<u32>, payload: &[u8]) -> Vec<Vec<u8>> {
        let field = extended.map_or(head.time, |_| 0xFF_FFFF);
        let mut first = Vec::new();
        write_basic_header(&mut first, head.fmt, head.chunk_stream);
        if head.fmt < 3 {
            first.extend_from_slice(&field.to_be_bytes()[1..]);
        }
        if head.fmt < 2 {
            first.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            first.push(head.kind);
        }
        if head.fmt == 0 {
            first.extend_from_slice(&head.stream_id.to_le_bytes());
        }
        let ext = extended.map(u32::to_be_bytes);
        first.extend(ext.iter().flatten());
        let mut chunks = vec![first];
        for (i, piece) in payload.chunks(self.chunk_size).enumerate() {
            if i > 0 {
                let mut next = Vec::new();
                write_basic_header(&mut next, 3, head.chunk_stream);
                next.extend(ext.iter().flatten());
                chunks.push(next);
            }
            chunks.last_mut().expect("a first chunk").extend_from_slice(piece);
        }
        chunks
    }

    pub fn message(&mut self, head: Head, payload: &[u8]) {
        let extended = (head.time >= 0xFF_FFFF).then_some(head.time);
        for chunk in self.chunks(head, extended, payload) {
            self.out.extend_from_slice(&chunk);
        }
    }

    /// A protocol control message on chunk stream 2, type-0 header.
    pub fn control(&mut self, kind: u8, payload: &[u8]) {
        self.message(Head { fmt: 0, chunk_stream: 2, time: 0, kind, stream_id: 0 }, payload);
    }

    pub fn set_chunk_size(&mut self, size: u32) {
        self.control(1, &size.to_be_bytes());
        self.chunk_size = size as usize;
    }

    /// A command (type 20) on chunk stream 3 with a type-0 header.
    pub fn command(&mut self, stream_id: u32, values: &[Amf]) {
        self.message(Head { fmt: 0, chunk_stream: 3, time: 0, kind: 20, stream_id }, &encode(values));
    }

    pub fn status(&mut self, level: &str, code: &str, description: &str) {
        let info = obj(&[("level", s(level)), ("code", s(code)), ("description", s(description))]);
        self.command(1, &[s("onStatus"), Amf::Num(0.0), Amf::Null, info]);
    }
}

/// One message the client sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub kind: u8,
    pub timestamp: u32,
    pub stream_id: u32,
    pub payload: Vec<u8>,
}

impl Sent {
    pub fn command(&self) -> Vec<Amf> {
        assert_eq!(self.kind, 20, "{self:?} is not a command");
        decode(&self.payload)
    }
}

/// Everything the client sent after C0, C1 and C2, as messages.
pub fn sent_messages(client: &[u8]) -> Vec<Sent> {
    let handshake = 1 + 2 * PACKET_BYTES;
    assert!(client.len() >= handshake, "the client sent C0, C1 and C2");
    let mut sent = Vec::new();
    chunk::Reader::default()
        .feed(&client[handshake..], |m| {
            sent.push(Sent {
                kind: m.kind,
                timestamp: m.timestamp,
                stream_id: m.stream_id,
                payload: m.payload.to_vec(),
            });
            Ok(())
        })
        .expect("the client's chunks are well formed");
    sent
}

/// The commands among `sent`: name and transaction id.
pub fn calls(sent: &[Sent]) -> Vec<(String, f64)> {
    sent.iter()
        .filter(|m| m.kind == 20)
        .map(|m| match &m.command()[..] {
            [Amf::Str(name), Amf::Num(id), ..] => (name.clone(), *id),
            other => panic!("a command without name and transaction: {other:?}"),
        })
        .collect()
}
