//! Hostile servers: random, truncated and mutated byte streams never make the session panic,
//! loop or hold unbounded memory.

use super::play::{live_stream, target};
use super::server::handshake;
use crate::chunk::{KEEP_CAPACITY_BYTES, MAX_BUFFERED_BYTES, MAX_CHUNK_STREAMS};
use crate::Session;

/// xorshift64*: a fixed-seed generator, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Most memory the assembly buffers may hold: unfinished messages, plus what finished ones keep.
const BUFFER_BOUND: usize = MAX_BUFFERED_BYTES + MAX_CHUNK_STREAMS * KEEP_CAPACITY_BYTES;

/// Feeds `server` in random pieces, sending everything queued, and checks the bounds.
fn survive(rng: &mut Rng, server: &[u8], publisher: bool) {
    let mut session = if publisher { Session::publish(target()) } else { Session::play(target()) };
    let mut flv = Vec::new();
    let mut rest = server;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(rng.below(4096).clamp(1, rest.len()));
        rest = tail;
        let _ = session.receive(piece, &mut flv);
        assert!(session.buffered_bytes() <= BUFFER_BOUND, "{} bytes buffered", session.buffered_bytes());
        assert!(session.pending().len() <= 2 << 20, "{} bytes pending", session.pending().len());
        session.sent(session.pending().len());
        session.send(9, 0, b"frame");
    }
    // FLV out is at most the header plus 16 bytes per byte in (an 11+4-byte tag for a 1-byte
    // message whose header can be a single byte).
    assert!(flv.len() <= 13 + 16 * server.len(), "{} bytes of FLV for {} in", flv.len(), server.len());
}

#[test]
fn mutated_and_truncated_streams_never_panic_and_stay_bounded() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (stream, _) = live_stream();
    let handshake_len = handshake().len();
    for round in 0..400 {
        let mut server = stream.clone();
        match round % 4 {
            0 => {
                for _ in 0..=rng.below(8) {
                    let at = handshake_len + rng.below(server.len() - handshake_len);
                    server[at] = rng.next() as u8;
                }
            }
            1 => server.truncate(handshake_len + rng.below(server.len() - handshake_len)),
            2 => {
                let at = handshake_len + rng.below(server.len() - handshake_len);
                let junk_len = rng.below(64);
                let junk = rng.bytes(junk_len);
                server.splice(at..at, junk);
            }
            _ => {
                let at = handshake_len + rng.below(server.len() - handshake_len);
                let len = rng.below(server.len() - at);
                server.drain(at..at + len);
            }
        }
        survive(&mut rng, &server, round % 8 == 7);
    }
}

#[test]
fn random_streams_after_a_handshake_never_panic_and_stay_bounded() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for round in 0..300 {
        let mut server = handshake();
        let len = rng.below(20_000);
        server.extend(rng.bytes(len));
        survive(&mut rng, &server, round % 2 == 1);
    }
    for _ in 0..50 {
        let garbage = rng.bytes(3000);
        survive(&mut rng, &garbage, false);
    }
}
