//! A cap on the size of an HLS playlist. libavformat's HLS demuxer reads a playlist to its end
//! and keeps an entry (with its absolute URL) for every segment line, so a hostile server's
//! endless or huge playlist would fill the worker's memory; each HTTP(S) resource an input
//! opens is counted as it is read (see `ffi::guarded_open`), and one that starts as a
//! playlist does is refused past [`MAX_PLAYLIST_BYTES`].

use std::sync::OnceLock;

/// Largest playlist read. A live playlist lists a few segments (a few KiB); a 6-hour VOD of
/// 2-second segments is about 650 KiB. The HLS demuxer keeps each segment line's absolute
/// URL, so 1 MiB of short lines still costs tens of MiB: much more would let a few hostile
/// inputs exhaust a worker.
pub(crate) const MAX_PLAYLIST_BYTES: u64 = 1024 * 1024;

/// Every playlist libavformat reads starts so (`hls_probe`, and `parse_playlist` compares
/// the first line).
const PLAYLIST_MAGIC: &[u8] = b"#EXTM3U";

/// What has been read of one resource.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    read: u64,
    /// Its first bytes, until there are enough to tell whether it is a playlist.
    head: Vec<u8>,
    playlist: Option<bool>,
}

impl Budget {
    /// Counts `bytes`, just read; why the resource must not be read further, if so.
    pub(crate) fn count(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.read = self.read.saturating_add(bytes.len() as u64);
        if self.playlist.is_none() {
            let wanted = PLAYLIST_MAGIC.len() - self.head.len();
            self.head.extend_from_slice(&bytes[..wanted.min(bytes.len())]);
            if self.head.len() == PLAYLIST_MAGIC.len() {
                self.playlist = Some(self.head == PLAYLIST_MAGIC);
                self.head = Vec::new();
            }
        }
        if self.playlist == Some(true) && self.read > MAX_PLAYLIST_BYTES {
            return Err(format!("the HLS playlist is larger than {} KiB", MAX_PLAYLIST_BYTES / 1024));
        }
        Ok(())
    }
}

/// Set once something an input reads is refused; from then on the input's opens are refused
/// and its blocking calls interrupted.
#[derive(Debug, Default)]
pub(crate) struct Tripwire(OnceLock<String>);

impl Tripwire {
    pub(crate) fn trip(&self, reason: String) {
        let _ = self.0.set(reason);
    }

    /// Why it tripped, if it did.
    pub(crate) fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(budget: &mut Budget, total: usize, first: &[u8]) -> Result<(), String> {
        budget.count(first)?;
        let chunk = vec![b'a'; 4096];
        let mut left = total - first.len();
        while left > 0 {
            let n = left.min(chunk.len());
            budget.count(&chunk[..n])?;
            left -= n;
        }
        Ok(())
    }

    #[test]
    fn a_playlist_is_refused_past_the_cap_even_when_its_magic_comes_in_pieces() {
        let cap = usize::try_from(MAX_PLAYLIST_BYTES).unwrap();
        let mut exact = Budget::default();
        assert_eq!(feed(&mut exact, cap, b"#EXTM3U\n"), Ok(()));
        let mut split = Budget::default();
        split.count(b"#EX").unwrap();
        assert!(feed(&mut split, cap - 2, b"TM3U\n").is_err());
    }

    #[test]
    fn other_resources_are_not_capped() {
        let mut segment = Budget::default();
        assert_eq!(feed(&mut segment, 8 * 1024 * 1024, b"\x47\x40\x00\x10"), Ok(()));
        let mut short = Budget::default();
        assert_eq!(short.count(b"#EXT"), Ok(()));
        assert_eq!(short.playlist, None);
    }
}
