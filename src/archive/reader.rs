//! Random access to a thaw archive: locate the seek table and index from the
//! end of the file (at most two reads), then decode only the frames a read
//! needs, through a bounded cache in which each frame is decoded once even
//! when many threads ask for it at the same moment.

use super::index::{self, Entry, EntryKind, Index, IndexHeader};
use super::seek_table::{frame_checksum, u32_at, SeekTable, FOOTER_LEN};
use super::{Error, MAX_FRAME_SIZE};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

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

/// How much of the end of the archive the first read takes (a remote
/// source fetches this much when it opens).
pub const TAIL_READ: u64 = 256 * 1024;
/// Default frame cache budget.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// An open archive.
pub struct Archive {
    source: Box<dyn Source>,
    table: SeekTable,
    index: Index,
    header: IndexHeader,
    cache: FrameCache,
    /// Bytes of the index frame + seek table (for `info`).
    trailer_len: u64,
}

impl Archive {
    /// Opens and validates the archive at `path` (trailer, seek table, index).
    pub fn open(path: &Path) -> Result<Archive, Error> {
        Archive::from_source(Box::new(FileSource::open(path)?))
    }

    /// Opens an archive from any [`Source`]: reads the trailer in at most two
    /// reads and checks everything before any data is served.
    pub fn from_source(source: Box<dyn Source>) -> Result<Archive, Error> {
        let trailer = Trailer::read(&*source)?;
        let (idx_frame, seek_frame) = trailer.bytes.split_at(trailer.index_len as usize);
        let table = check_seek_table(seek_frame, trailer.start)?;
        let (header, index) = read_index(idx_frame, &table)?;
        let trailer_len = trailer.bytes.len() as u64;
        Ok(Archive { source, table, index, header, cache: FrameCache::new(DEFAULT_CACHE_BYTES), trailer_len })
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

    /// The validated entry index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// All entries in tar stream order.
    pub fn entries(&self) -> &[Entry] {
        self.index.entries()
    }

    /// The frame layout, for `info` and for mapping byte ranges to frames.
    pub fn seek_table(&self) -> &SeekTable {
        &self.table
    }

    /// The archive id: equal ids mean equal entries, layout and data.
    pub fn id(&self) -> [u8; 16] {
        self.header.id
    }

    /// The id in hex, as recorded in a stage and in markers.
    pub fn id_hex(&self) -> String {
        index::id_hex(&self.header.id)
    }

    /// The format version in the index header.
    pub fn version(&self) -> u32 {
        self.header.version
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

    /// Frames decoded so far (cache misses), for tests and stats.
    pub fn frames_decoded(&self) -> u64 {
        self.cache.decodes.load(Ordering::Relaxed)
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

    /// The entry for a path (see [`Index::lookup`]).
    pub fn lookup(&self, path: &[u8]) -> Option<&Entry> {
        self.index.lookup(path)
    }

    /// The frames holding bytes `[offset, offset+len)` of `entry`'s data.
    pub fn frames_for(&self, entry: &Entry, offset: u64, len: u64) -> std::ops::Range<usize> {
        let e = self.index.data_entry(entry);
        let end = offset.saturating_add(len).min(e.size);
        if offset >= end {
            return 0..0;
        }
        self.table.frames_for(e.data_offset + offset, end - offset)
    }

    /// Tells the source that bytes `[offset, offset+len)` of `entry` will be
    /// read: each run of adjacent frames not decoded yet is asked for as one
    /// range (one request for a remote source; nothing for a local file).
    pub fn prefetch(&self, entry: &Entry, offset: u64, len: u64) {
        // Local files (no version) take no hints: keep the event path short.
        if self.source.version().is_none() {
            return;
        }
        let e = self.index.data_entry(entry);
        let mut run: Option<std::ops::Range<u64>> = None;
        for i in self.frames_for(e, offset, len) {
            let r = self.table.compressed_offset(i)..self.table.compressed_offset(i) + u64::from(self.table.frame(i).compressed);
            match (&mut run, self.cache.has(i)) {
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
    pub fn read_at(&self, entry: &Entry, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let e = self.index.data_entry(entry);
        if e.kind != EntryKind::File {
            return Err(Error::BadEntry { path: entry.path_lossy(), why: "not a regular file".into() });
        }
        if offset >= e.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(e.size - offset) as usize;
        self.read_stream(e.data_offset + offset, &mut buf[..n])?;
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
    pub fn frame(&self, i: usize) -> Result<Arc<Vec<u8>>, Error> {
        self.cache.get(i, || {
            let out = self.decode_frame(i)?;
            self.cache.compressed_bytes.fetch_add(u64::from(self.table.frame(i).compressed), Ordering::Relaxed);
            Ok(out)
        })
    }

    /// Decodes frame `i` from the source, bypassing the cache, checking sizes and checksums.
    pub fn decode_frame(&self, i: usize) -> Result<Vec<u8>, Error> {
        let f = self.table.frame(i);
        let mut src = vec![0u8; f.compressed as usize];
        self.source.read_exact_at(&mut src, self.table.compressed_offset(i)).map_err(|e| match e {
            Error::Io { path, source } => Error::FrameRead { frame: i, path, source },
            other => other,
        })?;
        let bad = |why: String| Error::Frame { frame: i, why };
        let out = DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new().map_err(|e| bad(format!("zstd: {e}")))?);
            }
            d.as_mut().unwrap().decompress(&src, f.decompressed as usize).map_err(|e| bad(format!("zstd: {e}")))
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

/// The index frame and the seek table: the last bytes of the file (§5.1).
struct Trailer {
    /// Index frame then seek table.
    bytes: Vec<u8>,
    index_len: u64,
    /// Where the trailer starts: the end of the data frames.
    start: u64,
}

impl Trailer {
    /// Reads the trailer in at most two reads (three for huge seek tables).
    fn read(source: &dyn Source) -> Result<Trailer, Error> {
        let len = source.len();
        let read = |off: u64, n: u64| -> Result<Vec<u8>, Error> {
            let mut buf = vec![0u8; n as usize];
            source.read_exact_at(&mut buf, off)?;
            Ok(buf)
        };
        if len < (FOOTER_LEN + index::TAIL_LEN) as u64 {
            return Err(not_thaw(source, "file too short"));
        }
        let tail_start = len.saturating_sub(TAIL_READ);
        let mut tail = read(tail_start, len - tail_start)?;
        let seek_len = SeekTable::frame_len_from_footer(&tail).map_err(|e| match e {
            Error::NotThaw(_) => not_thaw(source, "no zstd seek table at the end (or the archive is truncated)"),
            e => e,
        })?;
        if seek_len + index::TAIL_LEN as u64 > len {
            return Err(Error::corrupt("seek table", format!("{seek_len} bytes claimed in a {len}-byte file")));
        }
        let idx_tail_off = len - seek_len - index::TAIL_LEN as u64;
        let idx_tail = match idx_tail_off.checked_sub(tail_start) {
            Some(s) => tail[s as usize..s as usize + index::TAIL_LEN].to_vec(),
            None => read(idx_tail_off, index::TAIL_LEN as u64)?,
        };
        if &idx_tail[8..16] != index::TAIL_MAGIC {
            return Err(not_thaw(source, "a seekable zstd file without a thaw index"));
        }
        let index_len = u64::from_le_bytes(idx_tail[0..8].try_into().unwrap());
        let min_idx = (8 + index::HEADER_LEN + index::TAIL_LEN) as u64;
        if index_len < min_idx || index_len > len - seek_len {
            return Err(Error::corrupt("index", format!("index frame length {index_len} does not fit the file")));
        }
        let start = len - seek_len - index_len;
        if start < tail_start {
            tail = read(start, len - start)?;
        } else {
            tail.drain(..(start - tail_start) as usize);
        }
        Ok(Trailer { bytes: tail, index_len, start })
    }
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

type Cell = Arc<OnceLock<Result<Arc<Vec<u8>>, Error>>>;

struct Slot {
    cell: Cell,
    last_use: u64,
    /// Bytes counted against the budget (0 until decoded).
    size: usize,
}

/// Bounded LRU of decoded frames; concurrent requests for one frame share a
/// single decode (the `OnceLock` runs one initializer, the others wait).
struct FrameCache {
    budget: AtomicUsize,
    inner: Mutex<CacheInner>,
    decodes: AtomicU64,
    decoded_bytes: AtomicU64,
    compressed_bytes: AtomicU64,
}

#[derive(Default)]
struct CacheInner {
    slots: HashMap<usize, Slot>,
    bytes: usize,
    tick: u64,
}

impl FrameCache {
    fn new(budget: usize) -> FrameCache {
        FrameCache {
            budget: AtomicUsize::new(budget),
            inner: Mutex::default(),
            decodes: AtomicU64::new(0),
            decoded_bytes: AtomicU64::new(0),
            compressed_bytes: AtomicU64::new(0),
        }
    }

    /// True if frame `i` is decoded (or being decoded) in the cache.
    fn has(&self, i: usize) -> bool {
        self.inner.lock().unwrap().slots.contains_key(&i)
    }

    fn get(&self, i: usize, decode: impl FnOnce() -> Result<Vec<u8>, Error>) -> Result<Arc<Vec<u8>>, Error> {
        let cell = {
            let mut g = self.inner.lock().unwrap();
            g.tick += 1;
            let tick = g.tick;
            let slot = g.slots.entry(i).or_insert_with(|| Slot { cell: Arc::default(), last_use: 0, size: 0 });
            slot.last_use = tick;
            slot.cell.clone()
        };
        let res = cell
            .get_or_init(|| {
                self.decodes.fetch_add(1, Ordering::Relaxed);
                let data = decode()?;
                self.decoded_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
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
            Ok(data) if same && g.slots[&i].size == 0 => {
                g.slots.get_mut(&i).unwrap().size = data.len();
                g.bytes += data.len();
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
