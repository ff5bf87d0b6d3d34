//! The simple RTMP handshake (RTMP specification, section 5.2): C0+C1 out, S0+S1+S2 in, C2 (an
//! echo of S1) out. C1's version field is zero, which tells nginx-rtmp to answer with the old
//! handshake rather than the digest one (`ngx_rtmp_handshake_parse_challenge`: "old-style
//! handshake" when the four version bytes are 0); servers of the Flash era accept it too.

use crate::ProtocolError;

/// The RTMP version byte of C0 and S0.
const VERSION: u8 = 3;

/// Size of C1, C2, S1 and S2.
pub const PACKET_BYTES: usize = 1536;

/// Bytes the server sends: S0, S1, S2.
const SERVER_BYTES: usize = 1 + 2 * PACKET_BYTES;

/// C0 and C1: version 3, time 0, version field 0, then filler bytes. The filler need not be
/// random for the simple handshake (libavformat seeds its own with a constant, 0xDEADC0DE).
pub fn client_hello(out: &mut Vec<u8>) {
    out.push(VERSION);
    out.extend_from_slice(&[0; 8]);
    let mut state: u32 = 0xDEAD_C0DE;
    out.extend((8..PACKET_BYTES).map(|_| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as u8
    }));
}

/// The client's progress through the server's S0, S1, S2.
#[derive(Debug, Default)]
pub struct Handshake {
    received: usize,
    s1: Vec<u8>,
}

impl Handshake {
    /// Takes handshake bytes from `input`. Returns how many it used, and C2 once S2 is whole.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Vec<u8>>), ProtocolError> {
        let used = input.len().min(SERVER_BYTES - self.received);
        if let (0, Some(&version)) = (self.received, input.first()) {
            if version != VERSION {
                return Err(ProtocolError::Handshake { version });
            }
        }
        let s1_end = 1 + PACKET_BYTES;
        if self.received < s1_end {
            let start = self.received.max(1);
            let end = (self.received + used).min(s1_end);
            if start < end {
                self.s1.extend_from_slice(&input[start - self.received..end - self.received]);
            }
        }
        self.received += used;
        let done = self.received == SERVER_BYTES;
        Ok((used, done.then(|| std::mem::take(&mut self.s1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c2_echoes_s1_once_s2_is_received_in_any_pieces() {
        let s1: Vec<u8> = (0..PACKET_BYTES).map(|i| (i * 7) as u8).collect();
        let mut server = vec![VERSION];
        server.extend_from_slice(&s1);
        server.extend_from_slice(&[9; PACKET_BYTES]);
        server.extend_from_slice(b"after");

        let (used, c2) = Handshake::default().feed(&server).unwrap();
        assert_eq!((used, c2.as_deref()), (SERVER_BYTES, Some(&s1[..])));

        let mut handshake = Handshake::default();
        let mut c2 = None;
        for piece in server[..SERVER_BYTES].chunks(100) {
            let (used, done) = handshake.feed(piece).unwrap();
            assert_eq!(used, piece.len());
            c2 = c2.or(done);
        }
        assert_eq!(c2, Some(s1));
    }

    #[test]
    fn another_version_than_3_is_refused() {
        let error = Handshake::default().feed(&[6, 0, 0]).unwrap_err();
        assert!(matches!(error, ProtocolError::Handshake { version: 6 }));
    }

    #[test]
    fn hello_is_c0_and_c1_with_a_zero_version() {
        let mut out = Vec::new();
        client_hello(&mut out);
        assert_eq!(out.len(), 1 + PACKET_BYTES);
        assert_eq!(&out[..9], &[3, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
