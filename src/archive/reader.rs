//! Random access to a thaw archive: locate the seek table and index from the
//! end of the file (one read, two for large tables), then decode only the frames a read
//! needs, through a bounded cache in which each frame is decoded once even
//! when many threads ask for it at the same moment.

use super::catalog::{Catalog, V2Catalog};
use super::index::{self, Entry, EntryKind, Index, IndexHeader};
use super::index_v2;
use super::partial::PartialFrame;
use super::seek_table::{frame_checksum, u32_at, SeekTable, FOOTER_LEN};
use super::{Error, MAX_FRAME_SIZE};
use crate::sys::mem::FrameBuf;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use xxhash_rust::xxh3::xxh3_64;

/// Where archive bytes come from: a local file now, HTTP/object storage later.
pub trait Source: Send + Sync {
    /// Total length in bytes, fixed at open; the trailer is read from its end.
    fn len(&self) -> u64;
    /// True for a zero-length source (never a valid archive).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `offset`; a short source is an error, and so is a
    /// source that is no longer what it was when opened.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error>;
    /// A name for messages (the path or URL).
    fn name(&self) -> String;
    /// What identifies the version of the object read (an ETag): a remote
    /// source pins it at open. `None` for local files.
    fn version(&self) -> Option<String> {
        None
    }
    /// Requests made and bytes fetched so far (zero for a local file).
    fn transfer(&self) -> Transfer {
        Transfer::default()
    }
    /// A hint that `range` will be read soon: a remote source starts
    /// fetching it (one request for the whole run) without waiting.
    fn prefetch(&self, _range: std::ops::Range<u64>) {}
}

/// What a remote [`Source`] fetched: the figures tests and benchmarks assert.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    /// Range requests sent (each retry counts once more).
    pub requests: u64,
    /// Bytes of archive received.
    pub bytes: u64,
}

/// A local archive read with `pread`. (Not mmap: a file truncated under a
/// mapping kills the reader with SIGBUS, and the daemon must fail a read with
/// EIO instead.)
///
/// Replacing the file by rename is harmless (the fd keeps the old inode, whose
/// bytes are right), but writing it in place is not: another valid frame
/// there would pass every checksum. So every read checks that size and mtime
/// are still those seen at open, and fails with [`Error::Changed`] otherwise.
/// (Not ctime: unlinking or renaming the file, as a replacement by rename
/// does, changes it too.)
pub struct FileSource {
    file: File,
    len: u64,
    path: PathBuf,
    opened: Identity,
}

/// What tells the file opened from a file changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Identity {
        Identity { dev: m.dev(), ino: m.ino(), size: m.size(), mtime: (m.mtime(), m.mtime_nsec()) }
    }

    /// What differs, for the message.
    fn changes(&self, now: &Identity) -> String {
        let mut what = Vec::new();
        if (self.dev, self.ino) != (now.dev, now.ino) {
            what.push(format!("inode {}:{} is now {}:{}", self.dev, self.ino, now.dev, now.ino));
        }
        if self.size != now.size {
            what.push(format!("size {} is now {}", self.size, now.size));
        }
        if self.mtime != now.mtime {
            what.push(format!("mtime {}.{:09} is now {}.{:09}", self.mtime.0, self.mtime.1, now.mtime.0, now.mtime.1));
        }
        what.join(", ")
    }
}

impl FileSource {
    /// Opens a regular file (anything else is refused without opening it,
    /// since a fifo would block) and records its identity for later checks.
    pub fn open(path: &Path) -> Result<FileSource, Error> {
        // Check the type before opening: opening a fifo would block.
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path.display(), e))?;
        if !meta.is_file() {
            return Err(Error::NotThaw(format!("{} is not a regular file", path.display())));
        }
        let file = File::open(path).map_err(|e| Error::io(path.display(), e))?;
        let meta = file.metadata().map_err(|e| Error::io(path.display(), e))?;
        if !meta.is_file() {
            return Err(Error::NotThaw(format!("{} is not a regular file", path.display())));
        }
        Ok(FileSource { file, len: meta.len(), path: path.to_path_buf(), opened: Identity::of(&meta) })
    }

    /// Fails if the file is no longer as it was at open (one fstat).
    fn check_unchanged(&self) -> Result<(), Error> {
        let meta = self.file.metadata().map_err(|e| Error::io(self.path.display(), e))?;
        let now = Identity::of(&meta);
        if now != self.opened {
            return Err(Error::Changed { path: self.path.display().to_string(), what: self.opened.changes(&now) });
        }
        Ok(())
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let read = self.file.read_exact_at(buf, offset);
        // After the read, so a change made before it ended is seen; and a
        // change explains a short read better than "unexpected end of file".
        self.check_unchanged()?;
        read.map_err(|e| Error::io(self.path.display(), e))
    }
    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// How much of the end of the archive the first read takes (and how much
/// more a second read adds): seek table, index header and directory of a
/// format 2 archive of up to ~2,000 frames and ~400 blocks fit in one.
pub const TAIL_READ: u64 = 64 * 1024;
/// Default frame cache budget.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// An open archive.
pub struct Archive {
    source: Box<dyn Source>,
    table: SeekTable,
    catalog: Catalog,
    id: [u8; 16],
    version: u32,
    cache: Cache<FrameBuf>,
    /// Frames decoded only as far as a small file needed (format 2).
    partial: Mutex<Partials>,
    /// Bytes of the index frame + seek table (for `info`).
    trailer_len: u64,
}

/// Frames that small files were served from without decoding them whole
/// ([`PartialFrame`]): the next file of the same frame resumes the decoder.
#[derive(Default)]
struct Partials {
    frames: HashMap<usize, (Arc<Mutex<PartialFrame>>, u64)>,
    tick: u64,
}

/// Partial frames kept at once, at least (each holds the decoded prefix of
/// its frame). Beyond this, one per 2 MiB of the frame cache budget (a
/// prefix is half a frame on average): a build touches hundreds of frames,
/// and a partial frame dropped too early is decoded again from its start.
const MIN_PARTIAL: usize = 8;

/// Verified bytes of one chunk of a file (see [`Archive::chunk`]): a range
/// of a cached frame.
pub struct ChunkBytes {
    frame: Arc<FrameBuf>,
    range: std::ops::Range<usize>,
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.frame[self.range.clone()]
    }
}

impl Archive {
    /// Opens and validates the archive at `path` (trailer, seek table, index).
    pub fn open(path: &Path) -> Result<Archive, Error> {
        Archive::from_source(Box::new(FileSource::open(path)?))
    }

    /// Opens an archive from any [`Source`]: reads the end of the file (one
    /// read of [`TAIL_READ`] bytes, a second one when the seek table and
    /// index directory do not fit it) and checks everything read before
    /// any data is served. Format 1's index is read and checked whole.
    pub fn from_source(source: Box<dyn Source>) -> Result<Archive, Error> {
        let mut tail = Tail::read(&*source)?;
        let len = source.len();
        let seek_len = SeekTable::frame_len_from_footer(&tail.bytes).map_err(|e| match e {
            Error::NotThaw(_) => not_thaw(&*source, "no zstd seek table at the end (or the archive is truncated)"),
            e => e,
        })?;
        if seek_len + index::TAIL_LEN as u64 > len {
            return Err(Error::corrupt("seek table", format!("{seek_len} bytes claimed in a {len}-byte file")));
        }
        let idx_tail_off = len - seek_len - index::TAIL_LEN as u64;
        tail.cover(&*source, idx_tail_off.saturating_sub(index_v2::HEADER_LEN as u64), TAIL_READ)?;
        let idx_tail = tail.slice(idx_tail_off, index::TAIL_LEN as u64);
        if &idx_tail[8..16] != index::TAIL_MAGIC {
            return Err(not_thaw(&*source, "a seekable zstd file without a thaw index"));
        }
        let index_len = u64::from_le_bytes(idx_tail[0..8].try_into().unwrap());
        let min_idx = (8 + index::HEADER_LEN + index::TAIL_LEN) as u64;
        if index_len < min_idx || index_len > len - seek_len {
            return Err(Error::corrupt("index", format!("index frame length {index_len} does not fit the file")));
        }
        let start = len - seek_len - index_len;
        let table = check_seek_table(tail.slice(len - seek_len, seek_len), start)?;
        let trailer_len = seek_len + index_len;
        let v2_min = (index_v2::PROLOGUE_LEN + index_v2::HEADER_LEN + index::TAIL_LEN) as u64;
        let hdr = (index_len >= v2_min).then(|| tail.slice(idx_tail_off - index_v2::HEADER_LEN as u64, index_v2::HEADER_LEN as u64));
        let (catalog, id, version) = if hdr.is_some_and(index_v2::is_header) {
            let header = index_v2::decode_header(hdr.unwrap())?;
            open_v2(&*source, &mut tail, header, &table, start, index_len)?
        } else {
            tail.cover(&*source, start, 0)?;
            let (header, index) = read_index(tail.slice(start, index_len), &table)?;
            (Catalog::V1 { index }, header.id, header.version)
        };
        let (cache, partial) = (Cache::new(DEFAULT_CACHE_BYTES), Mutex::default());
        Ok(Archive { source, table, catalog, id, version, cache, partial, trailer_len })
    }

    /// Sets the frame cache budget in bytes. Takes `&self` so it works on an
    /// archive already shared (`thaw run` shares it with its daemon thread).
    pub fn set_cache_budget(&self, bytes: usize) {
        self.cache.budget.store(bytes, Ordering::Relaxed);
    }

    /// The frame cache budget in bytes.
    pub fn cache_budget(&self) -> usize {
        self.cache.budget.load(Ordering::Relaxed)
    }

    /// Number of entries.
    pub fn entry_count(&self) -> u64 {
        self.catalog.len()
    }

    /// The whole validated index (format 2: every block is read and the
    /// whole-index checks run on first use; lookups do not need it).
    pub fn index(&self) -> Result<&Index, Error> {
        self.catalog.full(&*self.source)
    }

    /// All entries in entry-number order (stream order in format 1, path
    /// order in format 2); see [`Archive::index`].
    pub fn entries(&self) -> Result<&[Entry], Error> {
        Ok(self.index()?.entries())
    }

    /// Calls `f` with every entry and its number, in order, decoding one
    /// block at a time (what `ls` uses: it never holds the whole index).
    pub fn for_each_entry(&self, f: &mut dyn FnMut(u64, &Entry) -> Result<(), Error>) -> Result<(), Error> {
        self.catalog.for_each(&*self.source, f)
    }

    /// The frame layout, for `info` and for mapping byte ranges to frames.
    pub fn seek_table(&self) -> &SeekTable {
        &self.table
    }

    /// The archive id: equal ids mean equal entries, layout and data.
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// The id in hex, as recorded in a stage and in markers.
    pub fn id_hex(&self) -> String {
        index::id_hex(&self.id)
    }

    /// The format version (1 or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Format 2: reads and checks the index frame's prologue (open checks it
    /// only when it lies in the bytes it read from the end).
    pub fn check_prologue(&self) -> Result<(), Error> {
        let Catalog::V2(c) = &self.catalog else { return Ok(()) };
        let mut b = [0u8; index_v2::PROLOGUE_LEN];
        self.source.read_exact_at(&mut b, self.table.compressed_len())?;
        index_v2::check_prologue(&b, c.header.index_len())
    }

    /// Format 2's piece size `P`; None for format 1.
    pub fn piece_size(&self) -> Option<u64> {
        match &self.catalog {
            Catalog::V1 { .. } => None,
            Catalog::V2(c) => Some(u64::from(c.header.piece_size)),
        }
    }

    /// The source's name (the path) for messages.
    pub fn source_name(&self) -> String {
        self.source.name()
    }

    /// The version of the object the source pinned at open (see [`Source::version`]).
    pub fn source_version(&self) -> Option<String> {
        self.source.version()
    }

    /// Requests and bytes the source fetched so far (see [`Source::transfer`]).
    pub fn transfer(&self) -> Transfer {
        self.source.transfer()
    }

    /// Size of the whole archive file in bytes.
    pub fn file_len(&self) -> u64 {
        self.source.len()
    }

    /// Bytes taken by the index frame and seek table at the end (for `info`).
    pub fn trailer_len(&self) -> u64 {
        self.trailer_len
    }

    /// The archive's last bytes that opening it and reading its whole index
    /// take (the index frame and seek table, and at least the first tail
    /// read), read through the source: for a remote archive, from what was
    /// fetched already. `populate` keeps them in the stage for `serve`.
    pub fn opening_tail(&self) -> Result<Vec<u8>, Error> {
        let len = self.trailer_len.max(TAIL_READ).min(self.source.len());
        let mut buf = vec![0u8; len as usize];
        self.source.read_exact_at(&mut buf, self.source.len() - len)?;
        Ok(buf)
    }

    /// Frames decoded so far (cache misses), for tests and stats.
    pub fn frames_decoded(&self) -> u64 {
        self.cache.decodes.load(Ordering::Relaxed)
    }

    /// Index blocks decoded so far through the block cache (format 2).
    pub fn blocks_decoded(&self) -> u64 {
        self.catalog.blocks_decoded()
    }

    /// Compressed bytes of the frames decoded so far: against what a remote
    /// source fetched ([`Archive::transfer`]), the fetch amplification.
    pub fn compressed_decoded(&self) -> u64 {
        self.cache.compressed_bytes.load(Ordering::Relaxed)
    }

    /// Decompressed bytes produced so far by those decodes: against the bytes
    /// written into stubs, the decode amplification.
    pub fn bytes_decoded(&self) -> u64 {
        self.cache.decoded_bytes.load(Ordering::Relaxed)
    }

    /// The entry for a path (accepts a leading `./` or `/` and trailing `/`).
    pub fn lookup(&self, path: &[u8]) -> Result<Option<Entry>, Error> {
        Ok(self.find(path)?.map(|(_, e)| e))
    }

    /// The entry for a path and its number.
    pub fn find(&self, path: &[u8]) -> Result<Option<(u64, Entry)>, Error> {
        match index::normalize_path(path) {
            Some(p) => self.catalog.find(&*self.source, &p),
            None => Ok(None),
        }
    }

    /// Entry number `n` (as stub markers name it).
    pub fn entry(&self, n: u64) -> Result<Option<Entry>, Error> {
        self.catalog.entry(&*self.source, n)
    }

    /// The entry whose data `e` has: its target for a hard link (which must
    /// be a file), `e` itself otherwise.
    pub fn data_entry<'a>(&self, e: &'a Entry) -> Result<Cow<'a, Entry>, Error> {
        if e.kind != EntryKind::Hardlink {
            return Ok(Cow::Borrowed(e));
        }
        match self.lookup(&e.link)? {
            Some(t) if t.kind == EntryKind::File => Ok(Cow::Owned(t)),
            _ => Err(Error::BadEntry { path: e.path_lossy(), why: "hard link target is not a file in the archive".into() }),
        }
    }

    /// The frames holding bytes `[offset, offset+len)` of `entry`'s data
    /// (none when a hard link's target cannot be found).
    pub fn frames_for(&self, entry: &Entry, offset: u64, len: u64) -> std::ops::Range<usize> {
        let Ok(e) = self.data_entry(entry) else { return 0..0 };
        let end = offset.saturating_add(len).min(e.size);
        if offset >= end {
            return 0..0;
        }
        self.table.frames_for(e.data_offset + offset, end - offset)
    }

    /// File byte ranges of the chunks of `d` (a file entry): the unit that
    /// is decoded, verified and hydrated at once. Format 2: the whole file
    /// when it is at most `P` bytes, else its pieces `[kP, (k+1)P)`.
    /// Format 1: the file's share of each frame it spans.
    pub fn chunks(&self, d: &Entry) -> Vec<(u64, u64)> {
        (0..self.chunk_count(d)).filter_map(|k| self.chunk_range(d, k)).collect()
    }

    /// Number of chunks of `d` (see [`Archive::chunks`]).
    pub fn chunk_count(&self, d: &Entry) -> usize {
        match self.piece_size() {
            Some(_) if d.size == 0 => 0,
            Some(p) => d.size.div_ceil(p) as usize,
            None => self.frames_for(d, 0, d.size).len(),
        }
    }

    /// File byte range of chunk `k` of `d`, without listing the others.
    pub fn chunk_range(&self, d: &Entry, k: usize) -> Option<(u64, u64)> {
        if k >= self.chunk_count(d) {
            return None;
        }
        Some(match self.piece_size() {
            Some(p) => (k as u64 * p, ((k as u64 + 1) * p).min(d.size)),
            None => {
                let (t, i) = (&self.table, self.table.frame_at(d.data_offset) + k);
                (t.stream_offset(i).max(d.data_offset) - d.data_offset, t.stream_offset(i + 1).min(d.data_offset + d.size) - d.data_offset)
            }
        })
    }

    /// The chunk of `d` holding file offset `off` (`off < d.size`).
    fn chunk_at(&self, d: &Entry, off: u64) -> usize {
        match self.piece_size() {
            Some(p) if d.size > p => (off / p) as usize,
            Some(_) => 0,
            None => self.table.frame_at(d.data_offset + off) - self.table.frame_at(d.data_offset),
        }
    }

    /// Chunk `k` of file entry `d` (see [`Archive::chunks`]), decoded
    /// through the frame cache and verified: in format 2 against the
    /// entry's or the piece's XXH3, after checking that it lies in one
    /// frame (the format's frame rule); in format 1 by its frame's checksum.
    pub fn chunk(&self, d: &Entry, k: usize) -> Result<ChunkBytes, Error> {
        let bad = |why: String| Error::BadEntry { path: d.path_lossy(), why };
        let (s, e) = self.chunk_range(d, k).ok_or_else(|| bad(format!("no chunk {k}")))?;
        let frames = self.table.frames_for(d.data_offset + s, e - s);
        if frames.len() != 1 {
            return Err(bad(format!("chunk {k} spans frames {frames:?}: breaks the format's frame rule")));
        }
        let f_start = self.table.stream_offset(frames.start);
        let range = (d.data_offset + s - f_start) as usize..(d.data_offset + e - f_start) as usize;
        if self.piece_size().is_some() && d.piece_xxh3.is_empty() && !self.cache.contains(frames.start) {
            if let Some(want) = d.data_xxh3 {
                return self.chunk_early(d, frames.start, range, want);
            }
        }
        let frame = self.frame(frames.start)?;
        if self.piece_size().is_some() {
            let want = if d.piece_xxh3.is_empty() { d.data_xxh3 } else { d.piece_xxh3.get(k).copied() };
            if want != Some(xxh3_64(&frame[range.clone()])) {
                let what = if d.piece_xxh3.is_empty() { "data".to_string() } else { format!("piece {k}") };
                return Err(bad(format!("{what} checksum mismatch (frame {})", frames.start)));
            }
        }
        Ok(ChunkBytes { frame, range })
    }

    /// A whole small file (format 2) from frame `i` without decoding the
    /// frame past the file's end (issue #10's early stop): the frame's
    /// decoder is kept and resumed by the next file that needs more of it.
    /// The file's bytes are checked against its XXH3 (zstd's own checksum
    /// comes only at the frame's end, which then goes to the frame cache).
    fn chunk_early(&self, d: &Entry, i: usize, range: std::ops::Range<usize>, want: u64) -> Result<ChunkBytes, Error> {
        let pf = self.partial_frame(i)?;
        let mut f = pf.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_spent() {
            // Completed by another thread meanwhile: it is in the frame cache now.
            drop(f);
            return check_chunk(d, i, self.frame(i)?, range, want);
        }
        let before = f.decoded().len();
        let base = self.table.compressed_offset(i);
        let mut read = |at: usize, buf: &mut [u8]| {
            self.cache.compressed_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            self.source.read_exact_at(buf, base + at as u64).map_err(|e| e.to_string())
        };
        let advanced = f.advance(range.end, &mut read).map(|b| FrameBuf::copy_of(&b[range.clone()]));
        self.cache.decoded_bytes.fetch_add((f.decoded().len() - before) as u64, Ordering::Relaxed);
        let bytes = match advanced {
            Ok(b) => b,
            Err(e) => {
                drop(f);
                self.drop_partial(i);
                return Err(Error::Frame { frame: i, why: e.to_string() });
            }
        };
        if f.is_complete() {
            let sum = self.table.frame(i).checksum;
            let whole = f.take_decoded();
            drop(f);
            self.drop_partial(i);
            if frame_checksum(&whole) != sum {
                return Err(Error::Frame { frame: i, why: "checksum mismatch".into() });
            }
            let n = whole.len();
            self.cache.insert(i, whole, n);
        }
        let len = bytes.len();
        check_chunk(d, i, Arc::new(bytes), 0..len, want)
    }

    /// The partial decoder of frame `i`, made if there is none. It reads the
    /// compressed frame as it goes: a file near the frame's start reads
    /// little of it. (Every byte served is checked against its file's XXH3;
    /// the frame's end is checked against zstd's checksum, the seek table's
    /// and the frame's compressed length.)
    fn partial_frame(&self, i: usize) -> Result<Arc<Mutex<PartialFrame>>, Error> {
        let mut g = self.partial.lock().unwrap_or_else(|p| p.into_inner());
        g.tick += 1;
        let tick = g.tick;
        if let Some((pf, last)) = g.frames.get_mut(&i) {
            *last = tick;
            return Ok(pf.clone());
        }
        let f = self.table.frame(i);
        let pf =
            PartialFrame::new(f.compressed as usize, f.decompressed as usize).map_err(|e| Error::Frame { frame: i, why: e.to_string() })?;
        self.cache.decodes.fetch_add(1, Ordering::Relaxed);
        let pf = g.frames.entry(i).or_insert_with(|| (Arc::new(Mutex::new(pf)), tick)).0.clone();
        let max = MIN_PARTIAL.max(self.cache.budget.load(Ordering::Relaxed) / (2 << 20));
        while g.frames.len() > max {
            let Some(v) = g.frames.iter().filter(|(&k, _)| k != i).min_by_key(|(_, (_, t))| *t).map(|(&k, _)| k) else { break };
            g.frames.remove(&v);
        }
        Ok(pf)
    }

    fn drop_partial(&self, i: usize) {
        self.partial.lock().unwrap_or_else(|p| p.into_inner()).frames.remove(&i);
    }

    fn partial_has(&self, i: usize) -> bool {
        self.partial.lock().unwrap_or_else(|p| p.into_inner()).frames.contains_key(&i)
    }

    /// Tells the source that bytes `[offset, offset+len)` of `entry` will be
    /// read: each run of adjacent frames not decoded yet is asked for as one
    /// range (one request for a remote source; nothing for a local file).
    /// A file that early stop serves needs its frame only up to its own end:
    /// then only the compressed prefix a [`PartialFrame`] would read for it
    /// is asked for, not the rest of the run.
    pub fn prefetch(&self, entry: &Entry, offset: u64, len: u64) {
        // Local files (no version) take no hints: keep the event path short.
        if self.source.version().is_none() {
            return;
        }
        let Ok(e) = self.data_entry(entry) else { return };
        let needs: Vec<(usize, u64)> = self.frames_for(&e, offset, len).map(|i| (i, self.frame_need(&e, i))).collect();
        self.hint_frames(&needs);
    }

    /// [`Archive::prefetch`] for many ranges at once (an access profile):
    /// the frames the ranges need whole, in order of first need until
    /// `budget` compressed bytes are asked for, then sent in archive order,
    /// adjacent ones merged into one range (so a profile packed with
    /// `pack --order` comes in a few large requests at the start, not one
    /// small one per file).
    pub fn prefetch_many(&self, ranges: &[(Entry, u64, u64)], budget: u64) {
        if self.source.version().is_none() {
            return;
        }
        let mut order: Vec<usize> = Vec::new();
        let mut need: HashMap<usize, u64> = HashMap::new();
        for (entry, offset, len) in ranges {
            let Ok(e) = self.data_entry(entry) else { continue };
            for i in self.frames_for(&e, *offset, *len) {
                let n = self.frame_need(&e, i);
                match need.get_mut(&i) {
                    Some(m) => *m = (*m).max(n),
                    None => {
                        need.insert(i, n);
                        order.push(i);
                    }
                }
            }
        }
        // Only frames needed whole: the prefix a partly needed frame takes is
        // an estimate from the frame's average ratio, which overshoots when
        // its start compresses better than the rest (2.3x in the remote CI
        // bench); the decoder fetches those as it goes, as for one file.
        let mut asked = 0;
        let mut chosen: Vec<(usize, u64)> = Vec::new();
        for i in order {
            if asked >= budget {
                break;
            }
            if need[&i] == u64::from(self.table.frame(i).compressed) {
                asked += need[&i];
                chosen.push((i, need[&i]));
            }
        }
        chosen.sort_unstable();
        self.hint_frames(&chosen);
    }

    /// Compressed bytes of frame `i` that reading `e` needs: all of it, or,
    /// when early stop serves `e` and it ends inside the frame, the prefix
    /// a [`PartialFrame`] reads to decode up to its end.
    fn frame_need(&self, e: &Entry, i: usize) -> u64 {
        let f = self.table.frame(i);
        let early = self.piece_size().is_some() && e.piece_xxh3.is_empty() && e.data_xxh3.is_some();
        let upto = (e.data_offset + e.size).saturating_sub(self.table.stream_offset(i));
        if early && upto < u64::from(f.decompressed) {
            let est = super::partial::read_size(0, upto as usize, f.decompressed as usize, f.compressed as usize);
            return u64::from(f.compressed).min(est as u64);
        }
        u64::from(f.compressed)
    }

    /// Asks the source for `(frame, bytes from its start)` (in frame order)
    /// not decoded yet: one range per run of frames where each but the last
    /// is asked for whole.
    fn hint_frames(&self, needs: &[(usize, u64)]) {
        let mut run: Option<std::ops::Range<u64>> = None;
        for &(i, need) in needs {
            let start = self.table.compressed_offset(i);
            let r = start..start + need;
            match (&mut run, self.cache.has(i) || self.partial_has(i)) {
                (Some(cur), false) if cur.end == r.start => cur.end = r.end,
                (_, true) => {
                    if let Some(done) = run.take() {
                        self.source.prefetch(done);
                    }
                }
                (_, false) => {
                    if let Some(done) = run.replace(r) {
                        self.source.prefetch(done);
                    }
                }
            }
        }
        if let Some(done) = run {
            self.source.prefetch(done);
        }
    }

    /// Reads `entry`'s data at `offset` into `buf`; returns the bytes read
    /// (short only at the end of the file). Hard links read their target.
    /// Format 2 verifies every chunk the read touches.
    pub fn read_at(&self, entry: &Entry, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let e = self.data_entry(entry)?;
        if e.kind != EntryKind::File {
            return Err(Error::BadEntry { path: entry.path_lossy(), why: "not a regular file".into() });
        }
        if offset >= e.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(e.size - offset) as usize;
        if self.piece_size().is_none() {
            self.read_stream(e.data_offset + offset, &mut buf[..n])?;
            return Ok(n);
        }
        let mut done = 0usize;
        while done < n {
            let at = offset + done as u64;
            let k = self.chunk_at(&e, at);
            let c = self.chunk(&e, k)?;
            let from = (at - self.chunk_range(&e, k).expect("a chunk of the file").0) as usize;
            let m = (c.len() - from).min(n - done);
            buf[done..done + m].copy_from_slice(&c[from..from + m]);
            done += m;
        }
        Ok(n)
    }

    /// Copies bytes of the uncompressed tar stream starting at `start`.
    pub fn read_stream(&self, start: u64, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0usize;
        for i in self.table.frames_for(start, buf.len() as u64) {
            let frame = self.frame(i)?;
            let f_start = self.table.stream_offset(i);
            let pos = start + done as u64;
            let in_frame = (pos - f_start) as usize;
            let n = (frame.len() - in_frame).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&frame[in_frame..in_frame + n]);
            done += n;
        }
        debug_assert_eq!(done, buf.len());
        Ok(())
    }

    /// Frame `i`, decoded through the cache (single flight).
    pub fn frame(&self, i: usize) -> Result<Arc<FrameBuf>, Error> {
        self.cache.get(i, || {
            let out = self.decode_frame(i)?;
            self.cache.compressed_bytes.fetch_add(u64::from(self.table.frame(i).compressed), Ordering::Relaxed);
            Ok((out, self.table.frame(i).decompressed as usize))
        })
    }

    /// The compressed bytes of frame `i`.
    fn read_frame(&self, i: usize) -> Result<Vec<u8>, Error> {
        let mut src = vec![0u8; self.table.frame(i).compressed as usize];
        self.source.read_exact_at(&mut src, self.table.compressed_offset(i)).map_err(|e| match e {
            Error::Io { path, source } => Error::FrameRead { frame: i, path, source },
            other => other,
        })?;
        Ok(src)
    }

    /// Decodes frame `i` from the source, bypassing the cache, checking sizes and checksums.
    pub fn decode_frame(&self, i: usize) -> Result<FrameBuf, Error> {
        let f = self.table.frame(i);
        let src = self.read_frame(i)?;
        let bad = |why: String| Error::Frame { frame: i, why };
        let out = DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new().map_err(|e| bad(format!("zstd: {e}")))?);
            }
            let mut out = FrameBuf::with_capacity(f.decompressed as usize);
            d.as_mut().unwrap().decompress_to_buffer(&src, &mut out).map_err(|e| bad(format!("zstd: {e}")))?;
            Ok(out)
        })?;
        if out.len() != f.decompressed as usize {
            return Err(bad(format!("decompressed to {} bytes, seek table says {}", out.len(), f.decompressed)));
        }
        // One zstd frame with a content checksum has already been checked by
        // libzstd (the same low 32 bits of XXH64 the seek table stores): then
        // it is enough that the two agree. Otherwise hash the output.
        let single = zstd::zstd_safe::find_frame_compressed_size(&src).is_ok_and(|n| n == src.len());
        let has_sum = src.len() > 8 && src[4] & 0x04 != 0;
        let sum_ok = if single && has_sum { u32_at(&src, src.len() - 4) == f.checksum } else { frame_checksum(&out) == f.checksum };
        if !sum_ok {
            return Err(bad("checksum mismatch".into()));
        }
        Ok(out)
    }
}

/// Checks a whole small file's bytes `frame[range]` against its XXH3.
fn check_chunk(d: &Entry, i: usize, frame: Arc<FrameBuf>, range: std::ops::Range<usize>, want: u64) -> Result<ChunkBytes, Error> {
    if xxh3_64(&frame[range.clone()]) != want {
        return Err(Error::BadEntry { path: d.path_lossy(), why: format!("data checksum mismatch (frame {i})") });
    }
    Ok(ChunkBytes { frame, range })
}

/// The bytes read so far from the end of the file: `[start, len)`.
struct Tail {
    bytes: Vec<u8>,
    start: u64,
}

impl Tail {
    /// The first read: the last [`TAIL_READ`] bytes (or the whole file).
    fn read(source: &dyn Source) -> Result<Tail, Error> {
        let len = source.len();
        if len < (FOOTER_LEN + index::TAIL_LEN) as u64 {
            return Err(not_thaw(source, "file too short"));
        }
        let start = len.saturating_sub(TAIL_READ);
        let mut bytes = vec![0u8; (len - start) as usize];
        source.read_exact_at(&mut bytes, start)?;
        Ok(Tail { bytes, start })
    }

    /// Makes sure `[from, len)` has been read: when it has not, one more
    /// read of `[from - extra, start)`.
    fn cover(&mut self, source: &dyn Source, from: u64, extra: u64) -> Result<(), Error> {
        if from >= self.start {
            return Ok(());
        }
        let new_start = from.saturating_sub(extra);
        let mut more = vec![0u8; (self.start - new_start) as usize];
        source.read_exact_at(&mut more, new_start)?;
        more.extend_from_slice(&self.bytes);
        self.bytes = more;
        self.start = new_start;
        Ok(())
    }

    /// Bytes `[off, off+n)` of the file, which must be covered.
    fn slice(&self, off: u64, n: u64) -> &[u8] {
        let at = (off - self.start) as usize;
        &self.bytes[at..at + n as usize]
    }
}

/// Opens format 2's index from the tail: checks header against the frame
/// and seek table, reads (if needed) and checks the directory and the id.
fn open_v2(
    source: &dyn Source,
    tail: &mut Tail,
    header: index_v2::Header,
    table: &SeekTable,
    start: u64,
    index_len: u64,
) -> Result<(Catalog, [u8; 16], u32), Error> {
    if header.index_len() != index_len {
        return Err(Error::corrupt("index header", format!("sizes add up to {} B, the index frame is {index_len}", header.index_len())));
    }
    if header.stream_len != table.stream_len() {
        return Err(Error::corrupt("index", "tar stream length differs from the seek table"));
    }
    let dir_at = start + header.dir_offset();
    tail.cover(source, dir_at, 0)?;
    let raw_dir = index_v2::inflate(tail.slice(dir_at, u64::from(header.dir_clen)), u64::from(header.dir_rlen), "index directory")?;
    if xxh3_64(&raw_dir) != header.dir_xxh3 {
        return Err(Error::corrupt("index directory", "checksum mismatch"));
    }
    if index_v2::archive_id(&header, &raw_dir, &table.entry_bytes()) != header.id {
        return Err(Error::corrupt("index", "checksum mismatch (index or seek table damaged)"));
    }
    let dir = index_v2::decode_directory(&raw_dir, &header)?;
    if start >= tail.start {
        index_v2::check_prologue(tail.slice(start, index_v2::PROLOGUE_LEN as u64), index_len)?;
    }
    Ok((Catalog::V2(Box::new(V2Catalog::new(header, dir, start))), header.id, index_v2::VERSION))
}

/// Decodes the seek table and checks that its frames fill the file up to
/// the index (`trailer_start`) with sane sizes.
fn check_seek_table(seek_frame: &[u8], trailer_start: u64) -> Result<SeekTable, Error> {
    let table = SeekTable::decode(seek_frame)?;
    if table.compressed_len() != trailer_start {
        return Err(Error::corrupt(
            "seek table",
            format!("frames add up to {} bytes but the index starts at {trailer_start}", table.compressed_len()),
        ));
    }
    for (i, f) in table.frames().iter().enumerate() {
        if f.decompressed == 0 || f.decompressed > MAX_FRAME_SIZE || f.compressed == 0 {
            return Err(Error::corrupt("seek table", format!("frame {i} has absurd sizes {f:?}")));
        }
    }
    Ok(table)
}

/// Checks the index frame (skippable header, fixed header, compressed body,
/// the id over body and seek table) and decodes its entries.
fn read_index(idx_frame: &[u8], table: &SeekTable) -> Result<(IndexHeader, Index), Error> {
    let idx_len = idx_frame.len() as u64;
    if u32_at(idx_frame, 0) != index::INDEX_FRAME_MAGIC || u64::from(u32_at(idx_frame, 4)) != idx_len - 8 {
        return Err(Error::corrupt("index", "bad skippable frame header"));
    }
    if idx_frame.len() >= 20 && u32_at(idx_frame, 16) == index_v2::VERSION {
        return Err(Error::corrupt("index header", "a version 2 prologue without a valid format 2 header at the end of the index"));
    }
    let header = IndexHeader::decode(&idx_frame[8..], table.len() as u64)?;
    let body_c = &idx_frame[8 + index::HEADER_LEN..idx_frame.len() - index::TAIL_LEN];
    if header.compressed_len != body_c.len() as u64 {
        return Err(Error::corrupt("index", "compressed length does not match the frame"));
    }
    if header.body_len > index::MAX_INDEX_BODY || header.body_len > body_c.len() as u64 * 2048 {
        return Err(Error::corrupt("index", format!("absurd index size {}", header.body_len)));
    }
    let body =
        zstd::bulk::decompress(body_c, header.body_len as usize).map_err(|e| Error::corrupt("index", format!("cannot decompress: {e}")))?;
    if body.len() as u64 != header.body_len {
        return Err(Error::corrupt("index", "decompressed length differs from the header"));
    }
    if index::archive_id(&body, &table.entry_bytes()) != header.id {
        return Err(Error::corrupt("index", "checksum mismatch (index or seek table damaged)"));
    }
    if header.stream_len != table.stream_len() {
        return Err(Error::corrupt("index", "tar stream length differs from the seek table"));
    }
    let entries = index::decode_entries(&body, header.entry_count)?;
    Ok((header, Index::new(entries, header.stream_len)?))
}

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn not_thaw(source: &dyn Source, why: &str) -> Error {
    Error::NotThaw(format!("{}: {why}; if it is a plain .tar/.tar.zst, make a thaw archive with `thaw convert`", source.name()))
}

type Cell<T> = Arc<OnceLock<Result<Arc<T>, Error>>>;

struct Slot<T> {
    cell: Cell<T>,
    last_use: u64,
    /// Bytes counted against the budget (0 until decoded).
    size: usize,
}

/// Bounded LRU of decoded things (frames, index blocks); concurrent requests
/// for one key share a single decode (the `OnceLock` runs one initializer,
/// the others wait).
pub(crate) struct Cache<T> {
    budget: AtomicUsize,
    inner: Mutex<CacheInner<T>>,
    pub(crate) decodes: AtomicU64,
    decoded_bytes: AtomicU64,
    compressed_bytes: AtomicU64,
}

struct CacheInner<T> {
    slots: HashMap<usize, Slot<T>>,
    bytes: usize,
    tick: u64,
}

impl<T> Cache<T> {
    pub(crate) fn new(budget: usize) -> Cache<T> {
        Cache {
            budget: AtomicUsize::new(budget),
            inner: Mutex::new(CacheInner { slots: HashMap::new(), bytes: 0, tick: 0 }),
            decodes: AtomicU64::new(0),
            decoded_bytes: AtomicU64::new(0),
            compressed_bytes: AtomicU64::new(0),
        }
    }

    /// True if `i` is decoded (or being decoded) in the cache.
    fn has(&self, i: usize) -> bool {
        self.inner.lock().unwrap().slots.contains_key(&i)
    }

    /// True if `i` is decoded and cached.
    pub(crate) fn contains(&self, i: usize) -> bool {
        self.inner.lock().unwrap().slots.get(&i).is_some_and(|s| s.cell.get().is_some_and(|r| r.is_ok()))
    }

    /// Puts a value decoded elsewhere (`size` bytes) into the cache, unless
    /// `i` is there or being decoded already. It was counted as decoded where it was decoded.
    pub(crate) fn insert(&self, i: usize, value: T, size: usize) {
        let mut value = Some(value);
        let ran = std::cell::Cell::new(false);
        let _ = self.get(i, || {
            ran.set(true);
            Ok((value.take().expect("decode runs once"), size))
        });
        if ran.get() {
            self.decodes.fetch_sub(1, Ordering::Relaxed);
            self.decoded_bytes.fetch_sub(size as u64, Ordering::Relaxed);
        }
    }

    /// The value for `i`, decoded by `decode` (which also says its size in
    /// bytes) unless cached or being decoded by another thread.
    pub(crate) fn get(&self, i: usize, decode: impl FnOnce() -> Result<(T, usize), Error>) -> Result<Arc<T>, Error> {
        let cell = {
            let mut g = self.inner.lock().unwrap();
            g.tick += 1;
            let tick = g.tick;
            let slot = g.slots.entry(i).or_insert_with(|| Slot { cell: Arc::default(), last_use: 0, size: 0 });
            slot.last_use = tick;
            slot.cell.clone()
        };
        let mut size = 0;
        let res = cell
            .get_or_init(|| {
                self.decodes.fetch_add(1, Ordering::Relaxed);
                let (data, n) = decode()?;
                size = n;
                self.decoded_bytes.fetch_add(n as u64, Ordering::Relaxed);
                Ok(Arc::new(data))
            })
            .clone();
        let mut g = self.inner.lock().unwrap();
        let same = g.slots.get(&i).is_some_and(|s| Arc::ptr_eq(&s.cell, &cell));
        match &res {
            Err(_) if same => {
                // Forget failures so a later read retries (the source may come back).
                let s = g.slots.remove(&i).unwrap();
                g.bytes -= s.size;
            }
            Ok(_) if same && size > 0 && g.slots[&i].size == 0 => {
                g.slots.get_mut(&i).unwrap().size = size;
                g.bytes += size;
                while g.bytes > self.budget.load(Ordering::Relaxed) && g.slots.len() > 1 {
                    let victim = g.slots.iter().filter(|(&k, s)| k != i && s.size > 0).min_by_key(|(_, s)| s.last_use).map(|(&k, _)| k);
                    let Some(v) = victim else { break };
                    let s = g.slots.remove(&v).unwrap();
                    g.bytes -= s.size;
                }
            }
            _ => {}
        }
        res
    }
}
