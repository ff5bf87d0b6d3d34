//! A sans-IO RTMP client, to play live streams from untrusted servers with large buffered reads
//! (the worker) and to publish many streams from one process (the benchmark).
//!
//! A [`Session`] turns the server's bytes into the FLV byte stream libavformat's own rtmp client
//! (rtmpproto.c) would hand its FLV demuxer for the same messages, and queues what the client
//! has to send. It owns no socket: the caller reads and writes (see [`blocking`] for the start
//! over a blocking stream). Memory is bounded whatever the server sends ([`MAX_MESSAGE_BYTES`] per
//! message, 64 chunk streams, 32 MiB of unfinished messages) and the steady state allocates
//! nothing per message.

pub mod blocking;
pub mod flv;

mod amf;
mod chunk;
mod handshake;
mod session;
mod target;
#[cfg(test)]
mod tests;

pub use session::Session;

/// Where to play or publish, split from a URL the way libavformat's rtmp client splits it
/// (see [`Target::from_url`] for the rules, nested app paths included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `scheme://host:port/app`, sent in connect.
    pub tc_url: String,
    /// The application, sent in connect.
    pub app: String,
    /// The play (or publish) path, with the URL's `?query`.
    pub stream: String,
}

/// What the session reports after `receive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Handshake / connect / createStream / play (or publish) under way.
    Starting,
    /// NetStream.Play.Start (play) or NetStream.Publish.Start (publish) seen.
    Started,
    /// The server ended the stream: NetStream.Play.Stop, NetStream.Play.UnpublishNotify,
    /// StreamEOF user control, or an error status (NetStream.Play.StreamNotFound,
    /// NetConnection.Connect.Rejected, _error replies...). The text says which (the server's
    /// code and description, trimmed to 200 chars, printable only).
    Ended(String),
}

/// Why the server's bytes cannot be followed; the session is unusable after one.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the server answered the handshake with RTMP version {version}, not 3")]
    Handshake { version: u8 },
    #[error("the server sent a message of {length} bytes, over the {MAX_MESSAGE_BYTES}-byte limit")]
    MessageTooLarge { length: usize },
    #[error("the server opened more than {limit} chunk streams")]
    TooManyChunkStreams { limit: usize },
    #[error("the server's unfinished messages hold more than {} bytes", chunk::MAX_BUFFERED_BYTES)]
    TooMuchBuffered,
    #[error("chunk stream {chunk_stream}: a new message header before the previous message ended")]
    HeaderInsideMessage { chunk_stream: u32 },
    #[error("the server set an invalid chunk size: {size}")]
    ChunkSize { size: u32 },
    #[error("the server sent a protocol control message of type {kind} too short for its fields")]
    ShortControl { kind: u8 },
}

/// Largest message accepted from a server (a server is untrusted): 16 MiB.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
