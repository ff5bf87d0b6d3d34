//! FLV, both ways: the tags of a file (for publishers and tests), and the stream a player
//! writes for libavformat's FLV demuxer (FLV specification 10.1, annex E).

/// Tag types that carry media or data.
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const DATA: u8 = 18;

/// Tag header bytes: type, size (3), timestamp (3 + 1 extended), stream id (3, always 0).
const TAG_HEADER_BYTES: usize = 11;
/// The previous-tag-size field after every tag.
const BACK_POINTER_BYTES: usize = 4;

/// The file header of a live stream: version 1, the flags (set per stream), header size 9,
/// and the first (zero) previous-tag size.
const FILE_HEADER: [u8; 13] = [b'F', b'L', b'V', 1, 0, 0, 0, 0, 9, 0, 0, 0, 0];

/// One tag of an FLV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    pub kind: u8,
    pub timestamp: u32,
    pub data: &'a [u8],
}

/// The tags of an FLV file's bytes (header skipped); stops at the first truncated tag.
pub fn tags(file: &[u8]) -> Tags<'_> {
    let body = match file {
        [b'F', b'L', b'V', _, _, o0, o1, o2, o3, ..] => {
            let offset = u32::from_be_bytes([*o0, *o1, *o2, *o3]) as usize;
            file.get(offset.saturating_add(BACK_POINTER_BYTES)..).unwrap_or(&[])
        }
        _ => &[],
    };
    Tags { rest: body }
}

/// The tags of FLV bytes that start with a tag (a stream's after its file header, as a
/// player hands them on); stops at the first truncated tag.
pub fn body_tags(body: &[u8]) -> Tags<'_> {
    Tags { rest: body }
}

/// An iterator over the tags of FLV bytes.
#[derive(Debug)]
pub struct Tags<'a> {
    rest: &'a [u8],
}

impl<'a> Tags<'a> {
    /// The bytes after the tags read so far.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Tags<'a> {
    type Item = Tag<'a>;

    fn next(&mut self) -> Option<Tag<'a>> {
        let header = self.rest.get(..TAG_HEADER_BYTES)?;
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let data = self.rest.get(TAG_HEADER_BYTES..TAG_HEADER_BYTES + size)?;
        let end = (TAG_HEADER_BYTES + size + BACK_POINTER_BYTES).min(self.rest.len());
        let tag = Tag { kind: header[0] & 0x1f, timestamp, data };
        self.rest = &self.rest[end..];
        Some(tag)
    }
}

/// Appends the FLV file header (before the first tag of a player's stream) with `flags`
/// (4: audio, 1: video).
pub(crate) fn write_file_header(flv: &mut Vec<u8>, flags: u8) {
    flv.extend_from_slice(&FILE_HEADER);
    let at = flv.len() - FILE_HEADER.len() + 4;
    flv[at] = flags;
}

/// Appends one tag: header, `data`, previous-tag size.
pub fn write_tag(flv: &mut Vec<u8>, kind: u8, timestamp: u32, data: &[u8]) {
    let size = data.len() as u32;
    let [_, s0, s1, s2] = size.to_be_bytes();
    let [t3, t0, t1, t2] = timestamp.to_be_bytes();
    flv.extend_from_slice(&[kind, s0, s1, s2, t0, t1, t2, t3, 0, 0, 0]);
    flv.extend_from_slice(data);
    flv.extend_from_slice(&(size + TAG_HEADER_BYTES as u32).to_be_bytes());
}

/// Appends the tags of an aggregate message (RTMP type 22: FLV tags back to back), their
/// timestamps moved so the first is the message's and the others keep their distance to it.
/// Like libavformat's `handle_metadata`, stops at the first tag not wholly inside.
pub(crate) fn write_aggregate(flv: &mut Vec<u8>, timestamp: u32, payload: &[u8]) {
    let mut first = None;
    let mut rest = payload;
    while let Some(header) = rest.get(..TAG_HEADER_BYTES) {
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let end = TAG_HEADER_BYTES + size + BACK_POINTER_BYTES;
        if rest.len() < end {
            break;
        }
        let tag_timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let base = *first.get_or_insert(tag_timestamp);
        let data = &rest[TAG_HEADER_BYTES..TAG_HEADER_BYTES + size];
        write_tag(flv, header[0], timestamp.wrapping_add(tag_timestamp.wrapping_sub(base)), data);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_tags_read_back_with_32_bit_timestamps() {
        let mut flv = Vec::new();
        write_file_header(&mut flv, 5);
        write_tag(&mut flv, VIDEO, 0x0102_0304, b"frame");
        write_tag(&mut flv, AUDIO, 7, b"");
        assert_eq!(&flv[13..24], &[9, 0, 0, 5, 0x02, 0x03, 0x04, 0x01, 0, 0, 0]);
        assert_eq!(&flv[29..33], &[0, 0, 0, 16]);
        let tags: Vec<Tag> = tags(&flv).collect();
        assert_eq!(
            tags,
            [Tag { kind: VIDEO, timestamp: 0x0102_0304, data: b"frame" }, Tag { kind: AUDIO, timestamp: 7, data: b"" }]
        );
        assert_eq!(body_tags(&flv[13..]).collect::<Vec<_>>(), tags, "the same tags after the file header");
    }

    #[test]
    fn reading_stops_at_a_truncated_tag_and_ignores_non_flv() {
        let mut flv = Vec::new();
        write_file_header(&mut flv, 5);
        write_tag(&mut flv, VIDEO, 1, b"whole");
        write_tag(&mut flv, VIDEO, 2, b"truncated");
        flv.truncate(flv.len() - 8);
        assert_eq!(tags(&flv).count(), 1);
        assert_eq!(tags(b"not an flv file").count(), 0);
        assert_eq!(tags(&[b'F', b'L', b'V', 1, 5, 0xff, 0xff, 0xff, 0xff]).count(), 0);
    }

    #[test]
    fn aggregate_tags_are_rebased_onto_the_message_timestamp() {
        let mut aggregate = Vec::new();
        write_tag(&mut aggregate, AUDIO, 1000, b"a");
        write_tag(&mut aggregate, VIDEO, 1040, b"v");
        aggregate.extend_from_slice(&[VIDEO, 0, 0, 50]); // a cut tag: ignored
        let mut flv = Vec::new();
        write_aggregate(&mut flv, 5000, &aggregate);
        let mut expected = Vec::new();
        write_tag(&mut expected, AUDIO, 5000, b"a");
        write_tag(&mut expected, VIDEO, 5040, b"v");
        assert_eq!(flv, expected);
    }
}
