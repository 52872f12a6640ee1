//! The index: one record per archive entry (path, type, metadata, and where
//! its data sits in the uncompressed tar stream), stored zstd-compressed in a
//! skippable frame just before the seek table. See formats/thaw-archive.md.

use super::Error;
use std::collections::HashMap;

/// Magic of the skippable frame holding the index (zstd reserves 0x184D2A50..5F).
pub const INDEX_FRAME_MAGIC: u32 = 0x184D_2A5B;
/// First 8 bytes of the index header: tells a thaw index from other skippable frames.
pub const INDEX_MAGIC: &[u8; 8] = b"THAWIDX\0";
/// Last 8 bytes of the index frame, so a reader can find the index from the end.
pub const TAIL_MAGIC: &[u8; 8] = b"THAWTAIL";
/// The version number of format 1 (this module); format 2 is [`super::index_v2`].
pub const FORMAT_VERSION: u32 = 1;
/// Fixed header inside the index frame, after the 8-byte skippable header.
pub const HEADER_LEN: usize = 64;
/// Fixed tail at the end of the index frame: `[u64 frame length][THAWTAIL]`.
pub const TAIL_LEN: usize = 16;
/// Refuse to inflate an index larger than this (absurd-size guard).
pub const MAX_INDEX_BODY: u64 = 4 << 30;

/// The type of an archive member: the tar types thaw keeps (others are
/// skipped with a warning when packing or converting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file, the only kind with data in the tar stream.
    File,
    /// A directory.
    Dir,
    /// A symbolic link; its target is in [`Entry::link`].
    Symlink,
    /// A second name of an earlier file entry, named in [`Entry::link`].
    Hardlink,
    /// A named pipe.
    Fifo,
    /// A character device ([`Entry::dev_major`], [`Entry::dev_minor`]).
    CharDev,
    /// A block device ([`Entry::dev_major`], [`Entry::dev_minor`]).
    BlockDev,
}

impl EntryKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            EntryKind::File => 0,
            EntryKind::Dir => 1,
            EntryKind::Symlink => 2,
            EntryKind::Hardlink => 3,
            EntryKind::Fifo => 4,
            EntryKind::CharDev => 5,
            EntryKind::BlockDev => 6,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<EntryKind> {
        Some(match c {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            2 => EntryKind::Symlink,
            3 => EntryKind::Hardlink,
            4 => EntryKind::Fifo,
            5 => EntryKind::CharDev,
            6 => EntryKind::BlockDev,
            _ => return None,
        })
    }

    /// The tar typeflag a member of this kind is written with.
    pub fn tar_type(self) -> tar::EntryType {
        match self {
            EntryKind::File => tar::EntryType::Regular,
            EntryKind::Dir => tar::EntryType::Directory,
            EntryKind::Symlink => tar::EntryType::Symlink,
            EntryKind::Hardlink => tar::EntryType::Link,
            EntryKind::Fifo => tar::EntryType::Fifo,
            EntryKind::CharDev => tar::EntryType::Char,
            EntryKind::BlockDev => tar::EntryType::Block,
        }
    }

    /// The kind a tar typeflag stands for; None for the types thaw skips
    /// (sockets, volume labels, ...). Contiguous and sparse files read as files.
    pub fn from_tar(t: tar::EntryType) -> Option<EntryKind> {
        Some(match t {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => EntryKind::Hardlink,
            tar::EntryType::Fifo => EntryKind::Fifo,
            tar::EntryType::Char => EntryKind::CharDev,
            tar::EntryType::Block => EntryKind::BlockDev,
            _ => return None,
        })
    }

    /// The `ls -l` type letter.
    pub fn letter(self) -> char {
        match self {
            EntryKind::File => '-',
            EntryKind::Dir => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::Hardlink => 'h',
            EntryKind::Fifo => 'p',
            EntryKind::CharDev => 'c',
            EntryKind::BlockDev => 'b',
        }
    }
}

/// One archive member as recorded in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalized relative path: no leading `/` or `./`, no `..`, no empty components.
    pub path: Vec<u8>,
    /// What the member is; decides which other fields mean anything.
    pub kind: EntryKind,
    /// Permission bits (07777).
    pub mode: u32,
    /// Numeric owner, applied when thaw runs as root.
    pub uid: u32,
    /// Numeric group, applied when thaw runs as root.
    pub gid: u32,
    /// Owner name from the tar header (may be empty), for listings.
    pub uname: Vec<u8>,
    /// Group name from the tar header (may be empty), for listings.
    pub gname: Vec<u8>,
    /// Modification time, seconds since the epoch (may be negative).
    pub mtime: i64,
    /// Nanoseconds of the modification time (below 1e9).
    pub mtime_nsec: u32,
    /// Data size (files only; 0 otherwise).
    pub size: u64,
    /// Offset of the first data byte in the uncompressed tar stream.
    pub data_offset: u64,
    /// Symlink target, or the path of the hard link's target entry.
    pub link: Vec<u8>,
    /// Major device number (devices only; 0 otherwise).
    pub dev_major: u32,
    /// Minor device number (devices only; 0 otherwise).
    pub dev_minor: u32,
    /// Extended attributes as (name, value), in archive order; thaw's own
    /// marker names are never applied from here.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Stream offset of the member's first tar block (its PAX, `L`/`K`
    /// record or header); recorded by format 2, 0 in format 1.
    pub member_offset: u64,
    /// XXH3-64 of the file's data (format 2 files; None in format 1).
    pub data_xxh3: Option<u64>,
    /// XXH3-64 of each piece `[kP, (k+1)P)` of a file larger than the piece
    /// size `P` (format 2; empty otherwise).
    pub piece_xxh3: Vec<u64>,
}

impl Entry {
    /// An entry with default metadata (0755 dirs, 0644 otherwise, owned by 0),
    /// for writers to fill in.
    pub fn new(path: Vec<u8>, kind: EntryKind) -> Entry {
        Entry {
            path,
            kind,
            mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            uname: Vec::new(),
            gname: Vec::new(),
            mtime: 0,
            mtime_nsec: 0,
            size: 0,
            data_offset: 0,
            link: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
            member_offset: 0,
            data_xxh3: None,
            piece_xxh3: Vec::new(),
        }
    }

    /// The path as text for messages (invalid UTF-8 replaced).
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// Hashes paths with XXH3 under a per-process random seed: several times
/// faster than SipHash on paths, and still not predictable by an archive's
/// author.
#[derive(Clone)]
pub struct PathHasher(u64);

impl PathHasher {
    fn new() -> PathHasher {
        use std::hash::BuildHasher;
        PathHasher(std::collections::hash_map::RandomState::new().hash_one(0x7468_6177u64))
    }
}

impl Default for PathHasher {
    fn default() -> Self {
        PathHasher::new()
    }
}

impl std::hash::BuildHasher for PathHasher {
    type Hasher = PathHash;
    fn build_hasher(&self) -> PathHash {
        PathHash(self.0)
    }
}

/// One-shot XXH3 per `write` (paths hash as one length and one byte slice).
pub struct PathHash(u64);

impl std::hash::Hasher for PathHash {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// All entries plus a path lookup table.
#[derive(Debug, Clone, Default)]
pub struct Index {
    entries: Vec<Entry>,
    by_path: HashMap<Vec<u8>, usize, PathHasher>,
}

impl Index {
    /// Builds an index of entries in tar stream order (format 1), checking
    /// every entry (untrusted input): a hard link names an earlier file.
    pub fn new(entries: Vec<Entry>, stream_len: u64) -> Result<Index, Error> {
        Index::build(entries, stream_len, false)
    }

    /// Builds an index of entries sorted by path (format 2), with the same
    /// checks, except that a hard link's target is the file whose member
    /// comes earlier in the stream, and member offsets are distinct.
    pub fn new_sorted(entries: Vec<Entry>, stream_len: u64) -> Result<Index, Error> {
        Index::build(entries, stream_len, true)
    }

    fn build(entries: Vec<Entry>, stream_len: u64, sorted: bool) -> Result<Index, Error> {
        let mut by_path = HashMap::with_capacity_and_hasher(entries.len(), PathHasher::new());
        if sorted {
            let mut offsets = std::collections::HashSet::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                if by_path.insert(e.path.clone(), i).is_some() || !offsets.insert(e.member_offset) {
                    return Err(Error::BadEntry { path: e.path_lossy(), why: "path or member offset appears twice in the archive".into() });
                }
            }
        }
        for (i, e) in entries.iter().enumerate() {
            let bad = |why: String| Error::BadEntry { path: e.path_lossy(), why };
            check_path(&e.path).map_err(|w| bad(w.to_string()))?;
            match e.kind {
                EntryKind::File => {
                    let end = e.data_offset.checked_add(e.size);
                    if end.is_none_or(|end| end > stream_len) {
                        return Err(bad(format!("data at {}+{} lies outside the {}-byte tar stream", e.data_offset, e.size, stream_len)));
                    }
                }
                EntryKind::Hardlink => {
                    check_path(&e.link).map_err(|w| bad(format!("hard link target: {w}")))?;
                    let target =
                        by_path.get(&e.link).map(|&j: &usize| &entries[j]).filter(|t| !sorted || t.member_offset < e.member_offset);
                    match target.map(|t| t.kind) {
                        Some(EntryKind::File) => {}
                        Some(k) => return Err(bad(format!("hard link to a {k:?}, not a file"))),
                        None => {
                            return Err(bad(format!("hard link to {:?}, which is not an earlier entry", String::from_utf8_lossy(&e.link))))
                        }
                    }
                }
                EntryKind::Symlink if e.link.is_empty() || e.link.contains(&0) => {
                    return Err(bad("empty or NUL symlink target".into()));
                }
                _ => {}
            }
            if e.kind != EntryKind::File && e.size != 0 {
                return Err(bad("non-file entry with a data size".into()));
            }
            if !sorted && by_path.insert(e.path.clone(), i).is_some() {
                return Err(bad("path appears twice in the archive".into()));
            }
        }
        // A path below a non-directory would make extraction follow or replace it.
        for e in &entries {
            let mut p = e.path.as_slice();
            while let Some(cut) = p.iter().rposition(|&b| b == b'/') {
                p = &p[..cut];
                if let Some(&j) = by_path.get(p) {
                    if entries[j].kind != EntryKind::Dir {
                        return Err(Error::BadEntry {
                            path: e.path_lossy(),
                            why: format!("parent {:?} is not a directory", String::from_utf8_lossy(p)),
                        });
                    }
                    // That directory's own ancestors are checked with its entry.
                    break;
                }
            }
        }
        Ok(Index { entries, by_path })
    }

    /// All entries in tar stream order (a hard link comes after its target).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for an archive with no members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at position `i` (as returned by [`Index::position`]).
    pub fn get(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i)
    }

    /// Looks a path up (accepts a leading `./` or `/` and trailing `/`).
    pub fn position(&self, path: &[u8]) -> Option<usize> {
        let p = normalize_path(path)?;
        self.by_path.get(&p).copied()
    }

    /// The entry for a path, normalized as [`Index::position`] does.
    pub fn lookup(&self, path: &[u8]) -> Option<&Entry> {
        self.position(path).map(|i| &self.entries[i])
    }

    /// The entry whose data a hard link shares (itself for a file).
    pub fn data_entry<'a>(&'a self, e: &'a Entry) -> &'a Entry {
        if e.kind == EntryKind::Hardlink {
            if let Some(&j) = self.by_path.get(&e.link) {
                return &self.entries[j];
            }
        }
        e
    }
}

/// Normalizes a tar member name: strips `./` and leading `/`, collapses `//`,
/// drops trailing `/`. Returns None for `..` components or an empty result.
pub fn normalize_path(p: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(p.len());
    for comp in p.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return None,
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

pub(crate) fn check_path(p: &[u8]) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty path");
    }
    if p.contains(&0) {
        return Err("path contains a NUL byte");
    }
    if p[0] == b'/' {
        return Err("absolute path");
    }
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" => return Err("empty path component"),
            b"." => return Err("`.` path component"),
            b".." => return Err("`..` path component (would escape the target directory)"),
            _ => {}
        }
    }
    Ok(())
}

// ---- serialization ---------------------------------------------------------

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| Error::corrupt("index", "entry record runs past the end"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, Error> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

/// Serializes the entries (the uncompressed index body).
pub fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut e = Enc(Vec::with_capacity(entries.len() * 96));
    for x in entries {
        e.u8(x.kind.code());
        e.u32(x.mode);
        e.u32(x.uid);
        e.u32(x.gid);
        e.u64(x.mtime as u64);
        e.u32(x.mtime_nsec);
        e.u64(x.size);
        e.u64(x.data_offset);
        e.u32(x.dev_major);
        e.u32(x.dev_minor);
        e.bytes(&x.path);
        e.bytes(&x.link);
        e.bytes(&x.uname);
        e.bytes(&x.gname);
        e.u32(x.xattrs.len() as u32);
        for (k, v) in &x.xattrs {
            e.bytes(k);
            e.bytes(v);
        }
    }
    e.0
}

/// Minimum encoded size of one entry (guards the count against absurd values).
const MIN_ENTRY_LEN: u64 = 1 + 4 * 3 + 8 + 4 + 8 + 8 + 4 * 2 + 4 * 4 + 4;

/// Decodes `count` entry records from an uncompressed index body; each field
/// is bounds-checked, but paths and links are checked later by [`Index::new`].
pub fn decode_entries(body: &[u8], count: u64) -> Result<Vec<Entry>, Error> {
    if count.saturating_mul(MIN_ENTRY_LEN) > body.len() as u64 {
        return Err(Error::corrupt("index", "entry count larger than the index can hold"));
    }
    let mut d = Dec { b: body, at: 0 };
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let code = d.u8()?;
        let kind = EntryKind::from_code(code).ok_or_else(|| Error::corrupt("index", format!("unknown entry type {code}")))?;
        let mode = d.u32()?;
        let uid = d.u32()?;
        let gid = d.u32()?;
        let mtime = d.u64()? as i64;
        let mtime_nsec = d.u32()?;
        if mtime_nsec >= 1_000_000_000 {
            return Err(Error::corrupt("index", "mtime nanoseconds out of range"));
        }
        let size = d.u64()?;
        let data_offset = d.u64()?;
        let dev_major = d.u32()?;
        let dev_minor = d.u32()?;
        let path = d.bytes()?;
        let link = d.bytes()?;
        let uname = d.bytes()?;
        let gname = d.bytes()?;
        let nx = d.u32()?;
        let mut xattrs = Vec::new();
        for _ in 0..nx {
            let k = d.bytes()?;
            let v = d.bytes()?;
            xattrs.push((k, v));
        }
        out.push(Entry {
            path,
            kind,
            mode: mode & 0o7777,
            uid,
            gid,
            uname,
            gname,
            mtime,
            mtime_nsec,
            size,
            data_offset,
            link,
            dev_major,
            dev_minor,
            xattrs,
            member_offset: 0,
            data_xxh3: None,
            piece_xxh3: Vec::new(),
        });
    }
    if d.at != body.len() {
        return Err(Error::corrupt("index", "trailing bytes after the last entry"));
    }
    Ok(out)
}

/// Fixed fields of the index frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHeader {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The archive id ([`archive_id`]).
    pub id: [u8; 16],
    /// Number of entry records in the body.
    pub entry_count: u64,
    /// Length of the uncompressed body, checked before inflating it.
    pub body_len: u64,
    /// Length of the zstd-compressed body that follows the header.
    pub compressed_len: u64,
    /// Length of the uncompressed tar stream; every file's data must lie inside it.
    pub stream_len: u64,
    /// Number of data frames, from the seek table (not stored in the header).
    pub frame_count: u64,
}

impl IndexHeader {
    /// The header's on-disk bytes (magic, version, zero flags, fields little-endian).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(INDEX_MAGIC);
        h[8..12].copy_from_slice(&self.version.to_le_bytes());
        // 12..16 flags (0)
        h[16..32].copy_from_slice(&self.id);
        h[32..40].copy_from_slice(&self.entry_count.to_le_bytes());
        h[40..48].copy_from_slice(&self.body_len.to_le_bytes());
        h[48..56].copy_from_slice(&self.compressed_len.to_le_bytes());
        h[56..64].copy_from_slice(&self.stream_len.to_le_bytes());
        h
    }

    /// Parses and checks a header (magic, version, flags); `frame_count` comes
    /// from the seek table already read.
    pub fn decode(h: &[u8], frame_count: u64) -> Result<IndexHeader, Error> {
        let bad = |why: &str| Error::corrupt("index header", why);
        if h.len() < HEADER_LEN || &h[0..8] != INDEX_MAGIC {
            return Err(bad("missing THAWIDX magic"));
        }
        let u64_at = |a: usize| u64::from_le_bytes(h[a..a + 8].try_into().unwrap());
        let version = u32::from_le_bytes(h[8..12].try_into().unwrap());
        if version != FORMAT_VERSION {
            return Err(unsupported_version(version));
        }
        if h[12..16] != [0; 4] {
            return Err(bad("unknown flags"));
        }
        Ok(IndexHeader {
            version,
            id: h[16..32].try_into().unwrap(),
            entry_count: u64_at(32),
            body_len: u64_at(40),
            compressed_len: u64_at(48),
            stream_len: u64_at(56),
            frame_count,
        })
    }
}

/// The error for an index of a format version this thaw does not read.
pub fn unsupported_version(version: u32) -> Error {
    Error::Unsupported(format!("archive format version {version} (this thaw reads 1 and 2); a newer thaw is needed"))
}

/// The archive id: XXH3-128 over the uncompressed index body and the seek
/// table entries (which carry a checksum of every data frame), so two archives
/// with the same id have the same entries, layout and data.
pub fn archive_id(body: &[u8], seek_entries: &[u8]) -> [u8; 16] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(body);
    h.update(seek_entries);
    h.digest128().to_le_bytes()
}

/// The id as 32 lowercase hex digits, as shown to users and stored in `archive.json`.
pub fn id_hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize() {
        assert_eq!(normalize_path(b"./a//b/").unwrap(), b"a/b");
        assert_eq!(normalize_path(b"/etc/passwd").unwrap(), b"etc/passwd");
        assert!(normalize_path(b"a/../b").is_none());
        assert!(normalize_path(b"./").is_none());
    }

    #[test]
    fn entries_round_trip() {
        let mut a = Entry::new(b"d\xffir/f".to_vec(), EntryKind::File);
        a.size = 5;
        a.data_offset = 512;
        a.xattrs.push((b"user.k".to_vec(), b"v".to_vec()));
        let mut b = Entry::new(b"l".to_vec(), EntryKind::Symlink);
        b.link = b"../x".to_vec();
        let v = vec![a, b];
        let enc = encode_entries(&v);
        assert_eq!(decode_entries(&enc, 2).unwrap(), v);
        assert!(decode_entries(&enc, 3).is_err());
        assert!(decode_entries(&enc[..enc.len() - 1], 2).is_err());
    }

    #[test]
    fn rejects_hostile_entries() {
        let mk = |p: &[u8], k| Entry::new(p.to_vec(), k);
        assert!(Index::new(vec![mk(b"../x", EntryKind::Dir)], 0).is_err());
        assert!(Index::new(vec![mk(b"/abs", EntryKind::Dir)], 0).is_err());
        let mut f = mk(b"f", EntryKind::File);
        f.size = 10;
        f.data_offset = 100;
        assert!(Index::new(vec![f.clone()], 105).is_err());
        assert!(Index::new(vec![f.clone()], 110).is_ok());
        let mut h = mk(b"h", EntryKind::Hardlink);
        h.link = b"../../etc/passwd".to_vec();
        assert!(Index::new(vec![f.clone(), h.clone()], 110).is_err());
        h.link = b"f".to_vec();
        assert!(Index::new(vec![f.clone(), h], 110).is_ok());
        let mut s = mk(b"s", EntryKind::Symlink);
        s.link = b"/etc".to_vec();
        assert!(Index::new(vec![s.clone(), mk(b"s/passwd", EntryKind::File)], 110).is_err());
        assert!(Index::new(vec![f.clone(), f], 110).is_err());
    }
}
