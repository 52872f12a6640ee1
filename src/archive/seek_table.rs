//! The zstd seekable-format seek table: the last skippable frame of every
//! thaw archive. It maps each data frame to its compressed and decompressed
//! size (and an XXH64-derived checksum), so any reader that knows the zstd
//! seekable format can random-access a thaw archive.
//!
//! Layout (all little-endian), as in facebook/zstd contrib/seekable_format:
//! `[u32 magic 0x184D2A5E][u32 frame size]` then one entry per frame
//! `[u32 compressed][u32 decompressed][u32 checksum]`, then the footer
//! `[u32 number of frames][u8 descriptor: bit 7 = checksums][u32 0x8F92EAB1]`.

use super::Error;

/// Magic of the skippable frame holding the seek table (so plain zstd skips it).
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// Last 4 bytes of the file: says a seek table ends here.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Length of the footer (frame count, descriptor, magic), read first from the end.
pub const FOOTER_LEN: usize = 9;
const ENTRY_LEN: usize = 12;
const CHECKSUM_FLAG: u8 = 0x80;

/// One data frame of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameEntry {
    /// Bytes the frame takes in the archive file.
    pub compressed: u32,
    /// Bytes of tar stream the frame decodes to.
    pub decompressed: u32,
    /// Low 32 bits of XXH64 (seed 0) of the decompressed bytes.
    pub checksum: u32,
}

/// Decoded seek table with cumulative offsets for O(log n) lookups.
#[derive(Debug, Clone, Default)]
pub struct SeekTable {
    frames: Vec<FrameEntry>,
    /// `c_off[i]` / `d_off[i]`: where frame i starts (compressed / in the tar stream); one extra at the end.
    c_off: Vec<u64>,
    d_off: Vec<u64>,
}

impl SeekTable {
    /// Builds the table and its cumulative offsets from frames in file order.
    pub fn new(frames: Vec<FrameEntry>) -> SeekTable {
        let mut c_off = Vec::with_capacity(frames.len() + 1);
        let mut d_off = Vec::with_capacity(frames.len() + 1);
        let (mut c, mut d) = (0u64, 0u64);
        for f in &frames {
            c_off.push(c);
            d_off.push(d);
            c += u64::from(f.compressed);
            d += u64::from(f.decompressed);
        }
        c_off.push(c);
        d_off.push(d);
        SeekTable { frames, c_off, d_off }
    }

    /// The number of data frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True for an archive with no data frames (an empty tar stream).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame `i`'s sizes and checksum; panics when `i` is out of range.
    pub fn frame(&self, i: usize) -> FrameEntry {
        self.frames[i]
    }

    /// All frames in file order.
    pub fn frames(&self) -> &[FrameEntry] {
        &self.frames
    }

    /// Byte offset of frame `i` in the archive file.
    pub fn compressed_offset(&self, i: usize) -> u64 {
        self.c_off[i]
    }

    /// Offset of frame `i`'s first byte in the uncompressed tar stream.
    pub fn stream_offset(&self, i: usize) -> u64 {
        self.d_off[i]
    }

    /// Total size of the data frames in the archive file.
    pub fn compressed_len(&self) -> u64 {
        *self.c_off.last().unwrap_or(&0)
    }

    /// Length of the uncompressed tar stream.
    pub fn stream_len(&self) -> u64 {
        *self.d_off.last().unwrap_or(&0)
    }

    /// Index of the frame holding stream offset `off` (`off < stream_len`).
    pub fn frame_at(&self, off: u64) -> usize {
        // d_off is non-decreasing; find the last frame starting at or before off
        // that is non-empty.
        let i = self.d_off.partition_point(|&d| d <= off);
        i.saturating_sub(1).min(self.frames.len().saturating_sub(1))
    }

    /// Frames that overlap the stream range `[start, start+len)`.
    pub fn frames_for(&self, start: u64, len: u64) -> std::ops::Range<usize> {
        if len == 0 || self.frames.is_empty() {
            return 0..0;
        }
        let first = self.frame_at(start);
        let last = self.frame_at(start + len - 1);
        first..last + 1
    }

    /// Serializes the whole skippable frame.
    pub fn encode(&self) -> Vec<u8> {
        let payload = self.frames.len() * ENTRY_LEN + FOOTER_LEN;
        let mut out = Vec::with_capacity(8 + payload);
        out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        out.extend_from_slice(&(payload as u32).to_le_bytes());
        for f in &self.frames {
            out.extend_from_slice(&f.compressed.to_le_bytes());
            out.extend_from_slice(&f.decompressed.to_le_bytes());
            out.extend_from_slice(&f.checksum.to_le_bytes());
        }
        out.extend_from_slice(&(self.frames.len() as u32).to_le_bytes());
        out.push(CHECKSUM_FLAG);
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        out
    }

    /// Total length of the seek table frame described by `footer` (the last 9 bytes of the file).
    pub fn frame_len_from_footer(footer: &[u8]) -> Result<u64, Error> {
        if footer.len() < FOOTER_LEN {
            return Err(Error::NotThaw("file too short for a zstd seek table".into()));
        }
        let f = &footer[footer.len() - FOOTER_LEN..];
        if u32_at(f, 5) != SEEKABLE_MAGIC {
            return Err(Error::NotThaw("no zstd seek table at the end of the file".into()));
        }
        let n = u64::from(u32_at(f, 0));
        let desc = f[4];
        if desc & 0x7c != 0 {
            return Err(Error::corrupt("seek table", "reserved descriptor bits set"));
        }
        let entry = if desc & CHECKSUM_FLAG != 0 { 12 } else { 8 };
        Ok(8 + n * entry + FOOTER_LEN as u64)
    }

    /// Parses a complete seek table frame (`bytes` starts at its skippable magic).
    pub fn decode(bytes: &[u8]) -> Result<SeekTable, Error> {
        let bad = |why: &str| Error::corrupt("seek table", why);
        if bytes.len() < 8 + FOOTER_LEN {
            return Err(bad("too short"));
        }
        if u32_at(bytes, 0) != SKIPPABLE_MAGIC {
            return Err(bad("bad skippable frame magic"));
        }
        if u64::from(u32_at(bytes, 4)) != (bytes.len() - 8) as u64 {
            return Err(bad("frame size does not match the footer"));
        }
        let footer = &bytes[bytes.len() - FOOTER_LEN..];
        if u32_at(footer, 5) != SEEKABLE_MAGIC {
            return Err(bad("no seekable magic at the end of the frame"));
        }
        if footer[4] & 0x7c != 0 {
            return Err(bad("reserved descriptor bits set"));
        }
        let n = u32_at(footer, 0) as usize;
        let with_sum = footer[4] & CHECKSUM_FLAG != 0;
        let entry = if with_sum { 12 } else { 8 };
        if 8 + n * entry + FOOTER_LEN != bytes.len() {
            return Err(bad("entry count does not match the frame size"));
        }
        let mut frames = Vec::with_capacity(n);
        for i in 0..n {
            let e = &bytes[8 + i * entry..];
            frames.push(FrameEntry {
                compressed: u32_at(e, 0),
                decompressed: u32_at(e, 4),
                checksum: if with_sum { u32_at(e, 8) } else { 0 },
            });
        }
        if !with_sum {
            return Err(bad("thaw archives require per-frame checksums"));
        }
        Ok(SeekTable::new(frames))
    }

    /// The raw entries (for the archive id).
    pub fn entry_bytes(&self) -> Vec<u8> {
        let enc = self.encode();
        enc[8..enc.len() - FOOTER_LEN].to_vec()
    }
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// The checksum the seekable format stores: the low 32 bits of XXH64.
pub fn frame_checksum(data: &[u8]) -> u32 {
    xxhash_rust::xxh64::xxh64(data, 0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_lookup() {
        let t = SeekTable::new(vec![
            FrameEntry { compressed: 10, decompressed: 100, checksum: 1 },
            FrameEntry { compressed: 20, decompressed: 50, checksum: 2 },
            FrameEntry { compressed: 5, decompressed: 7, checksum: 3 },
        ]);
        let enc = t.encode();
        assert_eq!(SeekTable::frame_len_from_footer(&enc).unwrap(), enc.len() as u64);
        let d = SeekTable::decode(&enc).unwrap();
        assert_eq!(d.frames(), t.frames());
        assert_eq!(d.stream_len(), 157);
        assert_eq!(d.frame_at(0), 0);
        assert_eq!(d.frame_at(99), 0);
        assert_eq!(d.frame_at(100), 1);
        assert_eq!(d.frame_at(156), 2);
        assert_eq!(d.frames_for(90, 20), 0..2);
        assert_eq!(d.frames_for(100, 50), 1..2);
        assert_eq!(d.compressed_offset(2), 30);
    }

    #[test]
    fn rejects_garbage() {
        let t = SeekTable::new(vec![FrameEntry { compressed: 1, decompressed: 1, checksum: 0 }]);
        let mut enc = t.encode();
        enc[8] ^= 0; // untouched is fine
        let n = enc.len();
        enc[n - 9] = 200; // frame count lies
        assert!(SeekTable::decode(&enc).is_err());
        assert!(SeekTable::frame_len_from_footer(b"short").is_err());
    }

    /// Found by fuzz/ (seek_table): decode took any last 4 bytes for the
    /// seekable magic, and reserved descriptor bits, which the footer parse refuses.
    #[test]
    fn decode_checks_the_footer_like_the_reader() {
        let enc = SeekTable::new(vec![]).encode();
        assert!(SeekTable::decode(&enc).is_ok());
        let mut bad_magic = enc.clone();
        *bad_magic.last_mut().unwrap() = 0x42;
        assert!(matches!(SeekTable::decode(&bad_magic), Err(Error::Corrupt { why, .. }) if why.contains("magic")));
        let mut reserved = enc.clone();
        reserved[enc.len() - 5] |= 0x04;
        assert!(matches!(SeekTable::decode(&reserved), Err(Error::Corrupt { why, .. }) if why.contains("reserved")));
        // Bits 0-1 are "unused" in the seekable format: ignored.
        let mut unused = enc.clone();
        unused[enc.len() - 5] |= 0x03;
        assert!(SeekTable::decode(&unused).is_ok());
    }
}
