//! Format 2's index (formats/thaw-archive.md §2): entries sorted by path in
//! separately compressed blocks, a directory of the blocks' first paths, and
//! a fixed header at the end of the index frame, so opening an archive and
//! looking up one path reads the tail of the file and one block.
//!
//! Every parser here is a pure function over byte slices ([`decode_header`],
//! [`decode_directory`], [`decode_block`]), so fuzz targets call them as is.

use super::index::{check_path, Entry, EntryKind};
use super::Error;
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// The version number of format 2.
pub const VERSION: u32 = 2;
/// First 8 bytes of the header.
pub const HEADER_MAGIC: &[u8; 8] = b"THAWHDR\0";
/// Length of the header, placed just before the index frame's 16-byte tail.
pub const HEADER_LEN: usize = 128;
/// Skippable frame header (8) + prologue (`THAWIDX\0`, u32 version, u32 0).
pub const PROLOGUE_LEN: usize = 24;
/// Largest raw block or directory a reader inflates.
pub const MAX_RAW: u64 = 16 << 20;
/// Blocks are cut when their raw records reach this size.
pub const BLOCK_TARGET: usize = 32 << 10;
/// Piece sizes a reader accepts: multiples of 4 KiB in this range.
pub const MIN_PIECE: u64 = 4 << 10;
/// See [`MIN_PIECE`].
pub const MAX_PIECE: u64 = 32 << 20;
/// The shortest possible record (type, flags, path, ids, times, names, offset).
const MIN_RECORD: u64 = 12;
/// Decompressed size allowed per compressed byte (absurd-ratio guard).
const MAX_RATIO: u64 = 2048;

fn corrupt(what: &str, why: impl Into<String>) -> Error {
    Error::corrupt(what, why)
}

// ---- varints -----------------------------------------------------------------------

/// Appends `v` as unsigned LEB128.
pub fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a canonical unsigned LEB128 at `*at`: at most 10 bytes, no value
/// above `u64::MAX`, no trailing zero group (so each value has one encoding).
pub fn get_var(b: &[u8], at: &mut usize) -> Result<u64, Error> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*at + i).ok_or_else(|| corrupt("index", "varint runs past the end"))?;
        let bits = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return Err(corrupt("index", "varint above 2^64"));
        }
        v |= bits << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(corrupt("index", "non-canonical varint"));
            }
            *at += i + 1;
            return Ok(v);
        }
    }
    Err(corrupt("index", "varint longer than 10 bytes"))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// A cursor over a raw block or directory; every read is bounds-checked.
struct Dec<'a> {
    b: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Dec<'a> {
    fn var(&mut self) -> Result<u64, Error> {
        get_var(self.b, &mut self.at)
    }
    fn var_u32(&mut self, field: &str) -> Result<u32, Error> {
        let v = self.var()?;
        u32::try_from(v).map_err(|_| corrupt(self.what, format!("{field} {v} out of range")))
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], Error> {
        let end = (self.at as u64).checked_add(n).filter(|&e| e <= self.b.len() as u64);
        let end = end.ok_or_else(|| corrupt(self.what, "record runs past the end"))? as usize;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.var()?;
        self.take(n)
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_var(out, b.len() as u64);
    out.extend_from_slice(b);
}

// ---- header --------------------------------------------------------------------------

/// The fixed 128-byte header at the end of the index frame (spec §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// The archive id ([`archive_id`]).
    pub id: [u8; 16],
    /// Number of entries `E`.
    pub entry_count: u64,
    /// Length of the uncompressed tar stream.
    pub stream_len: u64,
    /// Number of entry blocks `B` (0 iff `E` = 0).
    pub block_count: u32,
    /// Piece size `P`: files larger than it carry one checksum per piece.
    pub piece_size: u32,
    /// Compressed bytes of all blocks together (`Σ`).
    pub blocks_len: u64,
    /// Compressed length of the directory.
    pub dir_clen: u32,
    /// Raw length of the directory.
    pub dir_rlen: u32,
    /// XXH3-64 of the raw directory.
    pub dir_xxh3: u64,
    /// Largest raw block length (a guard for readers).
    pub max_block_raw: u32,
}

impl Header {
    /// The header's bytes, checksum included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(HEADER_MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[16..32].copy_from_slice(&self.id);
        h[32..40].copy_from_slice(&self.entry_count.to_le_bytes());
        h[40..48].copy_from_slice(&self.stream_len.to_le_bytes());
        h[48..52].copy_from_slice(&self.block_count.to_le_bytes());
        h[52..56].copy_from_slice(&self.piece_size.to_le_bytes());
        h[56..64].copy_from_slice(&self.blocks_len.to_le_bytes());
        h[64..68].copy_from_slice(&self.dir_clen.to_le_bytes());
        h[68..72].copy_from_slice(&self.dir_rlen.to_le_bytes());
        h[72..80].copy_from_slice(&self.dir_xxh3.to_le_bytes());
        h[80..84].copy_from_slice(&self.max_block_raw.to_le_bytes());
        let sum = xxh3_64(&h[..120]);
        h[120..128].copy_from_slice(&sum.to_le_bytes());
        h
    }

    /// The index frame's length implied by the header: prologue, blocks,
    /// directory, header and tail.
    pub fn index_len(&self) -> u64 {
        PROLOGUE_LEN as u64 + self.blocks_len + u64::from(self.dir_clen) + HEADER_LEN as u64 + 16
    }

    /// Where the directory starts, from the index frame's start.
    pub fn dir_offset(&self) -> u64 {
        PROLOGUE_LEN as u64 + self.blocks_len
    }
}

/// True when `h` (128 bytes) carries the header magic and a matching checksum:
/// then it is a format 2 (or later) header, not the end of a format 1 index.
pub fn is_header(h: &[u8]) -> bool {
    h.len() == HEADER_LEN && &h[0..8] == HEADER_MAGIC && xxh3_64(&h[..120]).to_le_bytes() == h[120..128]
}

/// Parses and checks a header (magic and checksum, version, feature flags,
/// reserved bytes, field bounds).
pub fn decode_header(h: &[u8]) -> Result<Header, Error> {
    if !is_header(h) {
        return Err(corrupt("index header", "no THAWHDR magic with a matching checksum"));
    }
    let u32_at = |a: usize| u32::from_le_bytes(h[a..a + 4].try_into().unwrap());
    let u64_at = |a: usize| u64::from_le_bytes(h[a..a + 8].try_into().unwrap());
    let version = u32_at(8);
    if version != VERSION {
        return Err(super::index::unsupported_version(version));
    }
    if u32_at(12) != 0 {
        return Err(Error::Unsupported(format!("feature flags 0x{:x} (this thaw knows none); a newer thaw is needed", u32_at(12))));
    }
    if h[84..120].iter().any(|&b| b != 0) {
        return Err(corrupt("index header", "reserved bytes are not zero"));
    }
    let hd = Header {
        id: h[16..32].try_into().unwrap(),
        entry_count: u64_at(32),
        stream_len: u64_at(40),
        block_count: u32_at(48),
        piece_size: u32_at(52),
        blocks_len: u64_at(56),
        dir_clen: u32_at(64),
        dir_rlen: u32_at(68),
        dir_xxh3: u64_at(72),
        max_block_raw: u32_at(80),
    };
    let p = u64::from(hd.piece_size);
    let bad = |why: String| Err(corrupt("index header", why));
    if p % 4096 != 0 || !(MIN_PIECE..=MAX_PIECE).contains(&p) {
        return bad(format!("piece size {p} is not a multiple of 4 KiB between 4 KiB and 32 MiB"));
    }
    if (hd.block_count == 0) != (hd.entry_count == 0) {
        return bad(format!("{} blocks for {} entries", hd.block_count, hd.entry_count));
    }
    if u64::from(hd.dir_rlen) > MAX_RAW || u64::from(hd.max_block_raw) > MAX_RAW {
        return bad(format!("absurd sizes: directory {} B, block {} B", hd.dir_rlen, hd.max_block_raw));
    }
    if hd.dir_clen == 0 || u64::from(hd.dir_rlen) > u64::from(hd.dir_clen) * MAX_RATIO {
        return bad(format!("directory of {} B compressed to {} B", hd.dir_rlen, hd.dir_clen));
    }
    if hd.blocks_len > 1 << 48 || hd.entry_count.saturating_mul(MIN_RECORD) > hd.blocks_len.saturating_mul(MAX_RATIO) {
        return bad(format!("{} entries cannot fit {} B of blocks", hd.entry_count, hd.blocks_len));
    }
    Ok(hd)
}

// ---- directory --------------------------------------------------------------------------

/// One block as the directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRecord {
    /// Compressed length (the block's zstd frame).
    pub c_len: u64,
    /// Raw length of its records.
    pub r_len: u64,
    /// Number of entries in it (≥ 1).
    pub count: u64,
    /// XXH3-64 of the raw records.
    pub xxh3: u64,
    /// Path of its first entry: the key a lookup searches.
    pub first_path: Vec<u8>,
}

/// The raw directory bytes for `records`.
pub fn encode_directory(records: &[DirRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        put_var(&mut out, r.c_len);
        put_var(&mut out, r.r_len);
        put_var(&mut out, r.count);
        out.extend_from_slice(&r.xxh3.to_le_bytes());
        put_bytes(&mut out, &r.first_path);
    }
    out
}

/// Parses a raw directory and checks it against the header: `B` records,
/// lengths adding up to `Σ` and `E`, keys valid and strictly increasing.
pub fn decode_directory(raw: &[u8], h: &Header) -> Result<Vec<DirRecord>, Error> {
    let what = "index directory";
    let mut d = Dec { b: raw, at: 0, what };
    let mut out: Vec<DirRecord> = Vec::with_capacity((h.block_count as usize).min(raw.len() / 12 + 1));
    let (mut c_sum, mut count_sum, mut r_sum) = (0u64, 0u64, 0u64);
    for b in 0..h.block_count {
        let r = DirRecord { c_len: d.var()?, r_len: d.var()?, count: d.var()?, xxh3: d.u64()?, first_path: d.bytes()?.to_vec() };
        let bad = |why: String| Err(corrupt(what, format!("block {b}: {why}")));
        if r.count == 0 || r.c_len == 0 || r.r_len > u64::from(h.max_block_raw) || r.r_len > r.c_len.saturating_mul(MAX_RATIO) {
            return bad(format!("absurd sizes {} / {} B, {} entries", r.c_len, r.r_len, r.count));
        }
        if r.count.saturating_mul(MIN_RECORD) > r.r_len {
            return bad(format!("{} entries cannot fit {} B", r.count, r.r_len));
        }
        check_path(&r.first_path).map_err(|w| corrupt(what, format!("block {b}: first path: {w}")))?;
        if out.last().is_some_and(|p| p.first_path >= r.first_path) {
            return bad("first paths are not strictly increasing".into());
        }
        c_sum = c_sum.saturating_add(r.c_len);
        count_sum = count_sum.saturating_add(r.count);
        r_sum = r_sum.saturating_add(r.r_len);
        out.push(r);
    }
    if d.at != raw.len() {
        return Err(corrupt(what, "trailing bytes after the last record"));
    }
    if c_sum != h.blocks_len || count_sum != h.entry_count {
        return Err(corrupt(
            what,
            format!("blocks add up to {c_sum} B and {count_sum} entries, the header says {} B and {}", h.blocks_len, h.entry_count),
        ));
    }
    let _ = r_sum;
    Ok(out)
}

// ---- entry records --------------------------------------------------------------------------

/// What a block's records are checked against.
#[derive(Debug, Clone, Copy)]
pub struct BlockContext<'a> {
    /// The piece size `P` from the header.
    pub piece_size: u64,
    /// The tar stream's length: every file's data lies inside it.
    pub stream_len: u64,
    /// The next block's first path: every path here is smaller.
    pub next_key: Option<&'a [u8]>,
}

/// Number of pieces a file of `size` bytes has (0 when `size ≤ P`).
pub fn piece_count(size: u64, piece_size: u64) -> u64 {
    if size > piece_size {
        size.div_ceil(piece_size)
    } else {
        0
    }
}

/// Appends `e`'s record; `prev` is the previous path in the block (empty for
/// the first). Writes what `e` holds (a writer gives files ⌈size/P⌉ piece
/// checksums when larger than `P`, none otherwise), so tests can encode
/// hostile records too.
pub fn encode_record(out: &mut Vec<u8>, e: &Entry, prev: &[u8]) {
    out.push(e.kind.code());
    out.push(u8::from(!e.xattrs.is_empty()));
    let shared = e.path.iter().zip(prev).take_while(|(a, b)| a == b).count();
    put_var(out, shared as u64);
    put_bytes(out, &e.path[shared..]);
    put_var(out, u64::from(e.mode & 0o7777));
    put_var(out, u64::from(e.uid));
    put_var(out, u64::from(e.gid));
    put_var(out, zigzag(e.mtime));
    put_var(out, u64::from(e.mtime_nsec));
    put_bytes(out, &e.uname);
    put_bytes(out, &e.gname);
    put_var(out, e.member_offset);
    match e.kind {
        EntryKind::File => {
            put_var(out, e.size);
            put_var(out, e.data_offset - e.member_offset);
            out.extend_from_slice(&e.data_xxh3.unwrap_or(0).to_le_bytes());
            for p in &e.piece_xxh3 {
                out.extend_from_slice(&p.to_le_bytes());
            }
        }
        EntryKind::Hardlink | EntryKind::Symlink => put_bytes(out, &e.link),
        EntryKind::CharDev | EntryKind::BlockDev => {
            put_var(out, u64::from(e.dev_major));
            put_var(out, u64::from(e.dev_minor));
        }
        EntryKind::Dir | EntryKind::Fifo => {}
    }
    if !e.xattrs.is_empty() {
        put_var(out, e.xattrs.len() as u64);
        for (k, v) in &e.xattrs {
            put_bytes(out, k);
            put_bytes(out, v);
        }
    }
}

/// Parses one record; `prev` is the previous path in the block.
fn decode_record(d: &mut Dec<'_>, prev: &[u8], cx: &BlockContext<'_>) -> Result<Entry, Error> {
    let code = d.u8()?;
    let kind = EntryKind::from_code(code).ok_or_else(|| corrupt("index block", format!("unknown entry type {code}")))?;
    let flags = d.u8()?;
    if flags > 1 {
        return Err(corrupt("index block", format!("unknown entry flags 0x{flags:x}")));
    }
    let shared = d.var()?;
    if shared > prev.len() as u64 {
        return Err(corrupt("index block", "path shares more bytes than the previous path has"));
    }
    let shared = shared as usize;
    let mut path = prev[..shared].to_vec();
    path.extend_from_slice(d.bytes()?);
    if shared < prev.len() && shared < path.len() && path[shared] == prev[shared] {
        // Each path has one encoding: `shared` is the whole common prefix.
        return Err(corrupt("index block", "path shares more bytes with the previous one than recorded"));
    }
    let mut e = Entry::new(path, kind);
    let bad = |p: &[u8], why: String| Error::BadEntry { path: String::from_utf8_lossy(p).into_owned(), why };
    check_path(&e.path).map_err(|w| bad(&e.path, w.to_string()))?;
    e.mode = d.var_u32("mode")?;
    e.uid = d.var_u32("uid")?;
    e.gid = d.var_u32("gid")?;
    e.mtime = unzigzag(d.var()?);
    e.mtime_nsec = d.var_u32("nsec")?;
    if e.mode > 0o7777 || e.mtime_nsec >= 1_000_000_000 {
        return Err(bad(&e.path, format!("mode {:o} or nanoseconds {} out of range", e.mode, e.mtime_nsec)));
    }
    e.uname = d.bytes()?.to_vec();
    e.gname = d.bytes()?.to_vec();
    e.member_offset = d.var()?;
    decode_kind_fields(d, &mut e, cx)?;
    if flags & 1 != 0 {
        decode_xattrs(d, &mut e)?;
    }
    Ok(e)
}

fn decode_kind_fields(d: &mut Dec<'_>, e: &mut Entry, cx: &BlockContext<'_>) -> Result<(), Error> {
    let bad = |e: &Entry, why: String| Error::BadEntry { path: e.path_lossy(), why };
    match e.kind {
        EntryKind::File => {
            e.size = d.var()?;
            let hdr = d.var()?;
            e.data_offset = e.member_offset.saturating_add(hdr);
            if hdr < 512 || e.data_offset.checked_add(e.size).is_none_or(|end| end > cx.stream_len) {
                return Err(bad(
                    e,
                    format!("data at {}+{} (header {hdr} B) lies outside the {}-byte tar stream", e.data_offset, e.size, cx.stream_len),
                ));
            }
            e.data_xxh3 = Some(d.u64()?);
            let n = piece_count(e.size, cx.piece_size);
            if n.saturating_mul(8) > (d.b.len() - d.at) as u64 {
                return Err(bad(e, format!("{n} piece checksums run past the block")));
            }
            e.piece_xxh3 = (0..n).map(|_| d.u64()).collect::<Result<_, _>>()?;
        }
        EntryKind::Hardlink => {
            e.link = d.bytes()?.to_vec();
            check_path(&e.link).map_err(|w| bad(e, format!("hard link target: {w}")))?;
        }
        EntryKind::Symlink => {
            e.link = d.bytes()?.to_vec();
            if e.link.is_empty() || e.link.contains(&0) {
                return Err(bad(e, "empty or NUL symlink target".into()));
            }
        }
        EntryKind::CharDev | EntryKind::BlockDev => {
            e.dev_major = d.var_u32("device major")?;
            e.dev_minor = d.var_u32("device minor")?;
        }
        EntryKind::Dir | EntryKind::Fifo => {}
    }
    Ok(())
}

fn decode_xattrs(d: &mut Dec<'_>, e: &mut Entry) -> Result<(), Error> {
    let n = d.var()?;
    if n == 0 || n > (d.b.len() - d.at) as u64 / 2 {
        return Err(Error::BadEntry { path: e.path_lossy(), why: format!("xattr count {n}") });
    }
    for _ in 0..n {
        let k = d.bytes()?.to_vec();
        let v = d.bytes()?.to_vec();
        if std::str::from_utf8(&k).is_err() || e.xattrs.last().is_some_and(|(p, _)| *p >= k) {
            return Err(Error::BadEntry { path: e.path_lossy(), why: "xattr names not UTF-8 or not strictly increasing".into() });
        }
        e.xattrs.push((k, v));
    }
    Ok(())
}

/// The raw bytes of a block holding `entries` (sorted by path).
pub fn encode_block(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev: &[u8] = &[];
    for e in entries {
        encode_record(&mut out, e, prev);
        prev = &e.path;
    }
    out
}

/// Inflates a block's zstd frame and checks it against its directory record
/// (raw length, XXH3) before any record is parsed.
pub fn inflate_block(rec: &DirRecord, compressed: &[u8]) -> Result<Vec<u8>, Error> {
    if compressed.len() as u64 != rec.c_len {
        return Err(corrupt("index block", format!("{} B read, the directory says {}", compressed.len(), rec.c_len)));
    }
    let raw = inflate(compressed, rec.r_len, "index block")?;
    if xxh3_64(&raw) != rec.xxh3 {
        return Err(corrupt("index block", "checksum mismatch"));
    }
    Ok(raw)
}

/// Inflates one zstd frame that must hold exactly `raw_len` bytes.
pub fn inflate(compressed: &[u8], raw_len: u64, what: &str) -> Result<Vec<u8>, Error> {
    if raw_len > MAX_RAW || raw_len > (compressed.len() as u64).saturating_mul(MAX_RATIO) {
        return Err(corrupt(what, format!("absurd raw length {raw_len}")));
    }
    let single = zstd::zstd_safe::find_frame_compressed_size(compressed).is_ok_and(|n| n == compressed.len());
    if !single {
        return Err(corrupt(what, "not exactly one zstd frame"));
    }
    let raw = zstd::bulk::decompress(compressed, raw_len as usize).map_err(|e| corrupt(what, format!("cannot decompress: {e}")))?;
    if raw.len() as u64 != raw_len {
        return Err(corrupt(what, format!("inflates to {} B, expected {raw_len}", raw.len())));
    }
    Ok(raw)
}

/// Inflates, checks and parses one entry block: exactly `count` records
/// ending at its end, the first path equal to the directory's key, paths
/// strictly increasing and below the next block's key.
pub fn decode_block(rec: &DirRecord, compressed: &[u8], cx: &BlockContext<'_>) -> Result<Vec<Entry>, Error> {
    let raw = inflate_block(rec, compressed)?;
    decode_block_raw(rec, &raw, cx)
}

/// [`decode_block`] after the inflate and checksum.
pub fn decode_block_raw(rec: &DirRecord, raw: &[u8], cx: &BlockContext<'_>) -> Result<Vec<Entry>, Error> {
    let mut d = Dec { b: raw, at: 0, what: "index block" };
    let mut out: Vec<Entry> = Vec::with_capacity(rec.count.min(raw.len() as u64 / MIN_RECORD) as usize);
    for i in 0..rec.count {
        let prev = out.last().map_or(&[][..], |p| &p.path[..]);
        let e = decode_record(&mut d, prev, cx)?;
        let in_order = if i == 0 { e.path == rec.first_path } else { e.path.as_slice() > prev };
        if !in_order {
            return Err(Error::BadEntry { path: e.path_lossy(), why: "paths are not sorted, unique and matching the directory".into() });
        }
        out.push(e);
    }
    if d.at != raw.len() {
        return Err(corrupt("index block", "trailing bytes after the last record"));
    }
    if let (Some(last), Some(next)) = (out.last(), cx.next_key) {
        if last.path.as_slice() >= next {
            return Err(Error::BadEntry { path: last.path_lossy(), why: "not below the next block's first path".into() });
        }
    }
    Ok(out)
}

// ---- the whole index frame -----------------------------------------------------------------

/// The archive id: XXH3-128 over a prefix, `P`, `E`, the stream length,
/// the raw directory (which holds each block's XXH3) and the seek table's
/// entries (each frame's sizes and checksum).
pub fn archive_id(h: &Header, raw_dir: &[u8], seek_entries: &[u8]) -> [u8; 16] {
    let mut buf = Vec::with_capacity(28 + raw_dir.len() + seek_entries.len());
    buf.extend_from_slice(b"thaw v2\0");
    buf.extend_from_slice(&h.piece_size.to_le_bytes());
    buf.extend_from_slice(&h.entry_count.to_le_bytes());
    buf.extend_from_slice(&h.stream_len.to_le_bytes());
    buf.extend_from_slice(raw_dir);
    buf.extend_from_slice(seek_entries);
    xxh3_128(&buf).to_le_bytes()
}

/// How the writer lays the index out.
#[derive(Debug, Clone, Copy)]
pub struct IndexLayout {
    /// Piece size `P`.
    pub piece_size: u32,
    /// Raw size at which a block is cut.
    pub block_target: usize,
    /// zstd level of blocks and directory.
    pub level: i32,
}

fn compress(raw: &[u8], level: i32) -> Result<Vec<u8>, Error> {
    let mut c = zstd::bulk::Compressor::new(level).map_err(|e| Error::io("index", e))?;
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true)).map_err(|e| Error::io("index", e))?;
    c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true)).map_err(|e| Error::io("index", e))?;
    c.compress(raw).map_err(|e| Error::io("index", e))
}

/// Encodes the whole index frame for `entries` (sorted by path, strictly)
/// and returns it with the archive id.
pub fn encode_index(entries: &[Entry], stream_len: u64, seek_entries: &[u8], layout: &IndexLayout) -> Result<(Vec<u8>, [u8; 16]), Error> {
    let mut blocks = Vec::new();
    let mut records = Vec::new();
    let mut start = 0;
    let mut raw = Vec::new();
    let mut prev: &[u8] = &[];
    for (i, e) in entries.iter().enumerate() {
        encode_record(&mut raw, e, prev);
        prev = &e.path;
        if raw.len() >= layout.block_target || i + 1 == entries.len() {
            let c = compress(&raw, layout.level)?;
            records.push(DirRecord {
                c_len: c.len() as u64,
                r_len: raw.len() as u64,
                count: (i + 1 - start) as u64,
                xxh3: xxh3_64(&raw),
                first_path: entries[start].path.clone(),
            });
            blocks.push(c);
            raw.clear();
            prev = &[];
            start = i + 1;
        }
    }
    let raw_dir = encode_directory(&records);
    let dir_c = compress(&raw_dir, layout.level)?;
    let too_big = |what: &str| Error::Unsupported(format!("index {what} larger than 16 MiB"));
    let mut h = Header {
        id: [0; 16],
        entry_count: entries.len() as u64,
        stream_len,
        block_count: u32::try_from(records.len()).map_err(|_| too_big("directory"))?,
        piece_size: layout.piece_size,
        blocks_len: blocks.iter().map(|b| b.len() as u64).sum(),
        dir_clen: u32::try_from(dir_c.len()).map_err(|_| too_big("directory"))?,
        dir_rlen: u32::try_from(raw_dir.len()).ok().filter(|&n| u64::from(n) <= MAX_RAW).ok_or_else(|| too_big("directory"))?,
        dir_xxh3: xxh3_64(&raw_dir),
        max_block_raw: records.iter().map(|r| r.r_len).max().unwrap_or(0) as u32,
    };
    if u64::from(h.max_block_raw) > MAX_RAW {
        return Err(too_big("block"));
    }
    h.id = archive_id(&h, &raw_dir, seek_entries);
    let len = h.index_len();
    let mut out = Vec::with_capacity(len as usize);
    out.extend_from_slice(&super::index::INDEX_FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&u32::try_from(len - 8).map_err(|_| too_big("frame"))?.to_le_bytes());
    out.extend_from_slice(super::index::INDEX_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for b in &blocks {
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&dir_c);
    out.extend_from_slice(&h.encode());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(super::index::TAIL_MAGIC);
    debug_assert_eq!(out.len() as u64, len);
    Ok((out, h.id))
}

/// Checks a prologue (the index frame's first 24 bytes).
pub fn check_prologue(b: &[u8], index_len: u64) -> Result<(), Error> {
    let u32_at = |a: usize| u32::from_le_bytes(b[a..a + 4].try_into().unwrap());
    if b.len() < PROLOGUE_LEN
        || u32_at(0) != super::index::INDEX_FRAME_MAGIC
        || u64::from(u32_at(4)) + 8 != index_len
        || &b[8..16] != super::index::INDEX_MAGIC
        || u32_at(16) != VERSION
        || u32_at(20) != 0
    {
        return Err(corrupt("index", "bad prologue (skippable frame header, THAWIDX, version 2, 0)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var_of(b: &[u8]) -> Result<u64, Error> {
        let mut at = 0;
        let v = get_var(b, &mut at)?;
        assert_eq!(at, b.len());
        Ok(v)
    }

    #[test]
    fn varints_are_canonical() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut b = Vec::new();
            put_var(&mut b, v);
            assert_eq!(var_of(&b).unwrap(), v);
        }
        assert_eq!(var_of(&[0xff; 9].iter().copied().chain([1]).collect::<Vec<_>>()).unwrap(), u64::MAX);
        assert!(var_of(&[0x80, 0x00]).is_err(), "overlong zero");
        assert!(var_of(&[0xff, 0x80, 0x00]).is_err(), "trailing zero group");
        assert!(var_of(&[0xff; 9].iter().copied().chain([2]).collect::<Vec<_>>()).is_err(), "above 2^64");
        assert!(var_of(&[0x80; 10]).is_err(), "11 bytes");
        assert!(var_of(&[0x80]).is_err(), "truncated");
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    fn sample_entries(p: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut d = Entry::new(b"a".to_vec(), EntryKind::Dir);
        d.xattrs = vec![(b"user.a".to_vec(), b"1".to_vec()), (b"user.b".to_vec(), vec![0, 255])];
        out.push(d);
        let mut f = Entry::new(b"a/big\xff".to_vec(), EntryKind::File);
        f.size = 3 * p + 1;
        f.member_offset = 512;
        f.data_offset = 1536;
        f.mtime = -5;
        f.mtime_nsec = 999_999_999;
        f.data_xxh3 = Some(7);
        f.piece_xxh3 = vec![1, 2, 3, 4];
        out.push(f);
        let mut h = Entry::new(b"a/h".to_vec(), EntryKind::Hardlink);
        h.link = b"a/big\xff".to_vec();
        h.member_offset = 1 << 40;
        out.push(h);
        let mut s = Entry::new(b"a/s".to_vec(), EntryKind::Symlink);
        s.link = b"../x".to_vec();
        s.uname = b"root".to_vec();
        out.push(s);
        let mut c = Entry::new(b"dev".to_vec(), EntryKind::CharDev);
        c.dev_major = 4000;
        c.dev_minor = u32::MAX;
        out.push(c);
        out.push(Entry::new(vec![b'x'; 300], EntryKind::Fifo));
        let mut z = Entry::new(b"zero".to_vec(), EntryKind::File);
        z.member_offset = 4 * p + 2048;
        z.data_offset = z.member_offset + 512;
        z.data_xxh3 = Some(0x2d06800538d394c2);
        out.push(z);
        out
    }

    fn cx(p: u64) -> BlockContext<'static> {
        BlockContext { piece_size: p, stream_len: 1 << 50, next_key: None }
    }

    #[test]
    fn records_round_trip() {
        let p = 4096;
        let v = sample_entries(p);
        let raw = encode_block(&v);
        let rec = DirRecord { c_len: 1, r_len: raw.len() as u64, count: v.len() as u64, xxh3: xxh3_64(&raw), first_path: b"a".to_vec() };
        assert_eq!(decode_block_raw(&rec, &raw, &cx(p)).unwrap(), v);
        // One entry too many or too few, a truncated block, a small piece size.
        assert!(decode_block_raw(&DirRecord { count: 8, ..rec.clone() }, &raw, &cx(p)).is_err());
        assert!(decode_block_raw(&DirRecord { count: 6, ..rec.clone() }, &raw, &cx(p)).is_err());
        assert!(decode_block_raw(&rec, &raw[..raw.len() - 1], &cx(p)).is_err());
        assert!(decode_block_raw(&rec, &raw, &cx(2048)).is_err());
        assert!(decode_block_raw(&rec, &raw, &BlockContext { next_key: Some(b"zero"), ..cx(p) }).is_err());
        assert!(decode_block_raw(&rec, &raw, &BlockContext { next_key: Some(b"zerp"), ..cx(p) }).is_ok());
        // Unsorted and duplicate paths.
        let mut w = v.clone();
        w.swap(3, 4);
        assert!(decode_block_raw(&rec, &encode_block(&w), &cx(p)).is_err());
        let mut w = v.clone();
        w[4].path = w[3].path.clone();
        assert!(decode_block_raw(&rec, &encode_block(&w), &cx(p)).is_err());
    }

    #[test]
    fn hostile_records() {
        let p = 4096;
        let one = |e: &Entry| {
            let raw = encode_block(std::slice::from_ref(e));
            let rec = DirRecord { c_len: 1, r_len: raw.len() as u64, count: 1, xxh3: 0, first_path: e.path.clone() };
            decode_block_raw(&rec, &raw, &BlockContext { stream_len: 100_000, ..cx(p) })
        };
        let mut f = Entry::new(b"f".to_vec(), EntryKind::File);
        f.size = 10;
        f.data_offset = 512;
        f.data_xxh3 = Some(1);
        assert!(one(&f).is_ok());
        f.data_offset = 511;
        assert!(one(&f).is_err(), "header shorter than 512");
        f.data_offset = 99_995;
        assert!(one(&f).is_err(), "data past the stream");
        f.data_offset = 512;
        f.path = b"../f".to_vec();
        assert!(one(&f).is_err());
        let mut s = Entry::new(b"s".to_vec(), EntryKind::Symlink);
        assert!(one(&s).is_err(), "empty symlink target");
        s.link = b"t".to_vec();
        assert!(one(&s).is_ok());
        let mut h = Entry::new(b"h".to_vec(), EntryKind::Hardlink);
        h.link = b"/etc/passwd".to_vec();
        assert!(one(&h).is_err());
        let mut x = Entry::new(b"x".to_vec(), EntryKind::Dir);
        x.xattrs = vec![(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])];
        assert!(one(&x).is_err(), "xattrs out of order");
        // A shared prefix shorter than the real one: another encoding of the same paths.
        let (a, b) = (Entry::new(b"ab".to_vec(), EntryKind::Dir), Entry::new(b"ac".to_vec(), EntryKind::Dir));
        let mut raw = Vec::new();
        encode_record(&mut raw, &a, b"");
        let canonical = raw.len();
        encode_record(&mut raw, &b, b"");
        let rec = DirRecord { c_len: 1, r_len: raw.len() as u64, count: 2, xxh3: 0, first_path: b"ab".to_vec() };
        assert!(decode_block_raw(&rec, &raw, &cx(p)).is_err());
        raw.truncate(canonical);
        encode_record(&mut raw, &b, b"ab");
        assert!(decode_block_raw(&rec, &raw, &cx(p)).is_ok());
    }

    #[test]
    fn header_and_directory() {
        let p = 64 << 10;
        let v = sample_entries(p);
        let (frame, id) = encode_index(&v, 1 << 50, b"seek", &IndexLayout { piece_size: p as u32, block_target: 64, level: 3 }).unwrap();
        let l = frame.len();
        let hb = &frame[l - 144..l - 16];
        let h = decode_header(hb).unwrap();
        assert_eq!((h.id, h.entry_count, h.index_len()), (id, v.len() as u64, l as u64));
        assert!(h.block_count > 2, "several blocks at a 64-byte target");
        check_prologue(&frame, l as u64).unwrap();
        let dc = &frame[h.dir_offset() as usize..h.dir_offset() as usize + h.dir_clen as usize];
        let raw_dir = inflate(dc, u64::from(h.dir_rlen), "dir").unwrap();
        assert_eq!(archive_id(&h, &raw_dir, b"seek"), id);
        let dir = decode_directory(&raw_dir, &h).unwrap();
        let mut got = Vec::new();
        let mut off = PROLOGUE_LEN;
        for (b, r) in dir.iter().enumerate() {
            let next = dir.get(b + 1).map(|n| &n.first_path[..]);
            let c = BlockContext { piece_size: p, stream_len: 1 << 50, next_key: next };
            got.extend(decode_block(r, &frame[off..off + r.c_len as usize], &c).unwrap());
            off += r.c_len as usize;
        }
        assert_eq!(got, v);
        // Header: a flipped bit is no header; version 3 is refused by name.
        let mut bad = hb.to_vec();
        bad[33] ^= 1;
        assert!(!is_header(&bad));
        let mut v3 = Header { ..h }.encode();
        v3[8] = 3;
        let sum = xxh3_64(&v3[..120]);
        v3[120..].copy_from_slice(&sum.to_le_bytes());
        let e = decode_header(&v3).unwrap_err().to_string();
        assert_eq!(e, "unsupported: archive format version 3 (this thaw reads 1 and 2); a newer thaw is needed");
        assert!(decode_header(&Header { piece_size: 4097, ..h }.encode()).is_err());
        assert!(decode_header(&Header { block_count: 0, ..h }.encode()).is_err());
        // Directory: a lying count or length.
        assert!(decode_directory(&raw_dir, &Header { entry_count: h.entry_count + 1, ..h }).is_err());
        assert!(decode_directory(&raw_dir, &Header { blocks_len: h.blocks_len - 1, ..h }).is_err());
        assert!(decode_directory(&raw_dir, &Header { block_count: h.block_count - 1, ..h }).is_err());
        // Any change to a block changes the id (through its XXH3 in the directory).
        let mut d2 = dir.clone();
        d2[1].xxh3 ^= 1;
        assert_ne!(archive_id(&h, &encode_directory(&d2), b"seek"), id);
    }
}
