//! Writes a thaw archive: a tar stream cut into independent zstd frames
//! (compressed in parallel), then the index and the seek table.
//!
//! Frame cuts (formats/thaw-archive.md §1.2), with piece size `P` and run
//! size `S`: small entries (header + padded data ≤ `P`) share frames of up
//! to `S` bytes and never straddle two; a larger file gets a cut right
//! before its data and one every `P` bytes of it, so its piece `k` (file
//! bytes `[kP, (k+1)P)`) is one frame. Format 1 is the case `P = S`.
//! Format 2 also records the XXH3 of every file and piece, computed as the
//! data streams through.

use super::index::{self, Entry, EntryKind, IndexHeader};
use super::index_v2;
use super::seek_table::{frame_checksum, FrameEntry, SeekTable};
use super::{Error, DEFAULT_FRAME_SIZE, MAX_FRAME_SIZE};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// How an archive is compressed; the defaults are what `thaw pack` uses.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// zstd compression level.
    pub level: i32,
    /// Piece size `P`: files larger than one piece are cut into frames of
    /// exactly `P` bytes (a multiple of 4 KiB, 4 KiB–32 MiB).
    pub piece_size: usize,
    /// Run size `S`: small entries share frames up to this size (`P ≤ S ≤ 32 MiB`).
    pub run_size: usize,
    /// Threads compressing frames in parallel.
    pub threads: usize,
    /// Format version written: 2, or 1 for archives older thaws read (then `P = S`).
    pub format: u32,
    /// Format 2: raw size at which an index block is cut.
    pub block_target: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            level: 3,
            piece_size: DEFAULT_FRAME_SIZE,
            run_size: DEFAULT_RUN_SIZE,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            format: index_v2::VERSION,
            block_target: index_v2::BLOCK_TARGET,
        }
    }
}

impl WriterOptions {
    /// Format 1 with frames of `frame_size` bytes (what thaw wrote before format 2).
    pub fn v1(frame_size: usize, level: i32, threads: usize) -> WriterOptions {
        WriterOptions { level, piece_size: frame_size, run_size: frame_size, threads, format: index::FORMAT_VERSION, ..Default::default() }
    }

    /// Sets `P = S = frame_size` (the `--frame-size` option).
    pub fn with_frame_size(self, frame_size: usize) -> WriterOptions {
        WriterOptions { piece_size: frame_size, run_size: frame_size, ..self }
    }

    fn check(&self) -> Result<(), Error> {
        let (p, s) = (self.piece_size, self.run_size);
        let max = MAX_FRAME_SIZE as usize / 2;
        let what = if p == s { "frame size" } else { "piece size" };
        if p < 4096 || p > max || p % 4096 != 0 {
            return Err(Error::Unsupported(format!("{what} {p} (must be a multiple of 4 KiB between 4 KiB and {} MiB)", max >> 20)));
        }
        if s < p || s > max || (self.format == index::FORMAT_VERSION && s != p) {
            return Err(Error::Unsupported(format!(
                "run size {s} (must be between the piece size {p} and {} MiB; format 1: equal)",
                max >> 20
            )));
        }
        if self.format != index::FORMAT_VERSION && self.format != index_v2::VERSION {
            return Err(index::unsupported_version(self.format));
        }
        Ok(())
    }
}

/// Default run size `S` of format 2 (formats/v2-design.md §4.1).
pub const DEFAULT_RUN_SIZE: usize = 4 << 20;

type FrameResult = (u64, io::Result<(Vec<u8>, FrameEntry)>);
/// What the writer thread hands back: the output and every frame's seek table entry.
type Written = io::Result<(Box<dyn Write + Send>, Vec<FrameEntry>)>;

/// Compresses frames on a thread pool and writes them in order on a writer thread.
struct Pipeline {
    pool: rayon::ThreadPool,
    results: mpsc::Sender<FrameResult>,
    tokens: mpsc::SyncSender<()>,
    writer: JoinHandle<Written>,
    next_seq: u64,
    level: i32,
}

impl Pipeline {
    fn new(out: Box<dyn Write + Send>, opts: &WriterOptions) -> io::Result<Pipeline> {
        let threads = opts.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("thaw-zstd-{i}"))
            .build()
            .map_err(io::Error::other)?;
        let (results, rx) = mpsc::channel::<FrameResult>();
        let (tokens, token_rx) = mpsc::sync_channel::<()>(threads * 2 + 2);
        let writer = std::thread::Builder::new().name("thaw-write".into()).spawn(move || {
            let mut out = out;
            let mut frames = Vec::new();
            let mut pending = BTreeMap::new();
            let mut failed = None;
            for (seq, res) in rx {
                pending.insert(seq, res);
                while let Some(res) = pending.remove(&(frames.len() as u64)) {
                    let _ = token_rx.try_recv();
                    match res {
                        Ok((bytes, entry)) if failed.is_none() => {
                            if let Err(e) = out.write_all(&bytes) {
                                failed = Some(e);
                            }
                            frames.push(entry);
                        }
                        Ok((_, entry)) => frames.push(entry),
                        Err(e) => {
                            failed.get_or_insert(e);
                            frames.push(FrameEntry { compressed: 0, decompressed: 0, checksum: 0 });
                        }
                    }
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok((out, frames)),
            }
        })?;
        Ok(Pipeline { pool, results, tokens, writer, next_seq: 0, level: opts.level })
    }

    fn submit(&mut self, chunk: Vec<u8>) {
        // Blocks while too many frames are in flight (bounded memory).
        let _ = self.tokens.send(());
        let seq = self.next_seq;
        self.next_seq += 1;
        let tx = self.results.clone();
        let level = self.level;
        self.pool.spawn(move || {
            let _ = tx.send((seq, compress_frame(&chunk, level)));
        });
    }

    fn finish(self) -> Written {
        let Pipeline { pool, results, tokens, writer, .. } = self;
        drop(results);
        drop(pool); // jobs already spawned still run; their senders keep rx alive
        let r = writer.join().map_err(|_| io::Error::other("writer thread panicked"))?;
        drop(tokens);
        r
    }
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

fn compress_frame(chunk: &[u8], level: i32) -> io::Result<(Vec<u8>, FrameEntry)> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(l, _)| *l != level) {
            let mut c = zstd::bulk::Compressor::new(level)?;
            c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
            c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))?;
            *cell = Some((level, c));
        }
        let c = &mut cell.as_mut().unwrap().1;
        let bytes = c.compress(chunk)?;
        let entry = FrameEntry {
            compressed: u32::try_from(bytes.len()).map_err(io::Error::other)?,
            decompressed: chunk.len() as u32,
            checksum: frame_checksum(chunk),
        };
        Ok((bytes, entry))
    })
}

/// Progress callback: called with the number of data bytes just consumed.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// What an early end of a member's data means, for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyEnd {
    /// `pack`: the file got shorter after it was listed.
    Shrank,
    /// `convert`: the input tar stops inside this member.
    Truncated,
}

/// A member's data on its way into the writer: reports progress, and turns an
/// early end (`size` bytes expected) into an error that says what happened.
pub struct MemberData<'a, R> {
    inner: R,
    progress: Progress<'a>,
    done: u64,
    size: u64,
    early_end: EarlyEnd,
}

impl<'a, R: Read> MemberData<'a, R> {
    /// Wraps a reader of `size` bytes; `early_end` says how to explain a short one.
    pub fn new(inner: R, size: u64, early_end: EarlyEnd, progress: Progress<'a>) -> Self {
        MemberData { inner, progress, done: 0, size, early_end }
    }

    fn ended_early(&self, cause: Option<io::Error>) -> io::Error {
        let (done, size) = (self.done, self.size);
        let why = match self.early_end {
            EarlyEnd::Shrank => format!("file shrank while packing (ends at byte {done} of {size})"),
            EarlyEnd::Truncated => format!("input ends inside this member at byte {done} of {size} (truncated tar)"),
        };
        io::Error::new(io::ErrorKind::UnexpectedEof, cause.map_or(why.clone(), |c| format!("{why}: {c}")))
    }
}

impl<R: Read> Read for MemberData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() && self.done < self.size => return Err(self.ended_early(None)),
            Ok(n) => n,
            // A decompressor that meets the end of a truncated .gz/.xz/.zst says so this way.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(self.ended_early(Some(e))),
            Err(e) => return Err(e),
        };
        self.done += n as u64;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Streams entries into a thaw archive.
pub struct ArchiveWriter {
    opts: WriterOptions,
    pipeline: Option<Pipeline>,
    cur: Vec<u8>,
    /// Position in the uncompressed tar stream.
    pos: u64,
    headers: tar::Builder<Vec<u8>>,
    entries: Vec<Entry>,
    copy_buf: Vec<u8>,
}

impl ArchiveWriter {
    /// Starts an archive written to `out` by a background compression
    /// pipeline; refuses a frame size the reader would not accept.
    pub fn new<W: Write + Send + 'static>(out: W, opts: WriterOptions) -> Result<ArchiveWriter, Error> {
        opts.check()?;
        let pipeline = Pipeline::new(Box::new(out), &opts).map_err(|e| Error::io("compressor", e))?;
        Ok(ArchiveWriter {
            cur: Vec::with_capacity(opts.run_size + 64 * 1024),
            opts,
            pipeline: Some(pipeline),
            pos: 0,
            headers: tar::Builder::new(Vec::new()),
            entries: Vec::new(),
            copy_buf: vec![0; 256 * 1024],
        })
    }

    /// The index entries appended so far, in stream order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Leaves out of the index the members a later member replaces or that
    /// tar would not place (see [`super::members::resolve`]); their bytes
    /// stay in the tar stream. Returns what was left out, as warnings.
    pub fn keep_winners(&mut self) -> Vec<String> {
        let (kept, warnings) = super::members::resolve(std::mem::take(&mut self.entries));
        self.entries = kept;
        warnings
    }

    fn push(&mut self, bytes: &[u8]) {
        self.cur.extend_from_slice(bytes);
        self.pos += bytes.len() as u64;
    }

    fn cut(&mut self) {
        if self.cur.is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.cur, Vec::with_capacity(self.opts.run_size + 64 * 1024));
        self.pipeline.as_mut().expect("writer finished").submit(chunk);
    }

    /// Adds one entry. `data` must yield exactly `entry.size` bytes for a file.
    /// The entry's `data_offset` is filled in.
    pub fn append(&mut self, mut entry: Entry, data: Option<&mut dyn Read>) -> Result<(), Error> {
        let path = entry.path_lossy();
        let header = self.header_bytes(&entry).map_err(|e| Error::BadEntry { path: path.clone(), why: e.to_string() })?;
        let size = if entry.kind == EntryKind::File { entry.size } else { 0 };
        let padded = size.div_ceil(512) * 512;
        let (p, s) = (self.opts.piece_size as u64, self.opts.run_size as u64);
        entry.member_offset = self.pos;
        let large = header.len() as u64 + padded > p;
        if large {
            // Does not fit one piece with its header: its data starts a frame,
            // so every cut inside it falls on a multiple of the piece size.
            self.push(&header);
            self.cut();
        } else if self.cur.len() as u64 + header.len() as u64 + padded > s {
            self.cut();
            self.push(&header);
        } else {
            self.push(&header);
        }
        entry.data_offset = self.pos;
        if entry.kind == EntryKind::File && self.opts.format == index_v2::VERSION {
            entry.data_xxh3 = Some(xxh3_64(&[]));
        }
        if size > 0 {
            let data = data.ok_or_else(|| Error::BadEntry { path: path.clone(), why: "no data".into() })?;
            let (whole, pieces) = self.copy_data(data, size, &path, large)?;
            if self.opts.format == index_v2::VERSION {
                entry.data_xxh3 = Some(whole);
                entry.piece_xxh3 = if size > p { pieces } else { Vec::new() };
            }
            let pad = (padded - size) as usize;
            self.push(&[0u8; 512][..pad]);
        }
        if self.cur.len() as u64 >= s {
            self.cut();
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Streams a file's data into the frames (cut every piece for a large
    /// one); returns the XXH3 of the data and of each piece.
    fn copy_data(&mut self, data: &mut dyn Read, size: u64, path: &str, large: bool) -> Result<(u64, Vec<u64>), Error> {
        let p = self.opts.piece_size;
        let mut left = size;
        let mut buf = std::mem::take(&mut self.copy_buf);
        let (mut whole, mut piece) = (Xxh3::new(), Xxh3::new());
        let mut pieces = Vec::new();
        while left > 0 {
            // Never let a read cross a piece boundary, so large files stay aligned.
            let done = (size - left) as usize;
            let room = p - done % p;
            let want = (buf.len() as u64).min(left).min(room as u64) as usize;
            let n = match data.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(Error::BadEntry { path: path.into(), why: format!("file shrank while packing ({left} bytes missing)") })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(path, e)),
            };
            self.push(&buf[..n]);
            whole.update(&buf[..n]);
            piece.update(&buf[..n]);
            left -= n as u64;
            if (size - left) as usize % p == 0 || left == 0 {
                pieces.push(piece.digest());
                piece.reset();
                if large && left > 0 {
                    self.cut();
                }
            }
        }
        self.copy_buf = buf;
        Ok((whole.digest(), pieces))
    }

    /// Tar header block(s) for an entry: an optional PAX record (mtime with
    /// nanoseconds, xattrs), GNU long-name records when needed, the header.
    fn header_bytes(&mut self, e: &Entry) -> io::Result<Vec<u8>> {
        let b = &mut self.headers;
        b.get_mut().clear();
        let pax = pax_records(e)?;
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(u64::from(e.uid));
        h.set_gid(u64::from(e.gid));
        h.set_mtime(e.mtime.max(0) as u64);
        if let Ok(u) = std::str::from_utf8(&e.uname) {
            if u.len() <= 32 {
                h.set_username(u)?;
            }
        }
        if let Ok(g) = std::str::from_utf8(&e.gname) {
            if g.len() <= 32 {
                h.set_groupname(g)?;
            }
        }
        h.set_entry_type(e.kind.tar_type());
        if matches!(e.kind, EntryKind::CharDev | EntryKind::BlockDev) {
            h.set_device_major(e.dev_major)?;
            h.set_device_minor(e.dev_minor)?;
        }
        // Name and link target go in as raw bytes, through GNU 'L' / 'K'
        // records when longer than the 100-byte fields (tar-rs cuts its
        // header copy of a long name at a UTF-8 boundary, and fails when the
        // name does not start with UTF-8).
        if index::normalize_path(&e.path).as_deref() != Some(&e.path[..]) || e.path.contains(&0) {
            return Err(io::Error::other("path is empty, absolute, has `.`, `..` or empty components, or a NUL"));
        }
        if e.path.len() > NAME_FIELD {
            append_long_name(b, b'L', &e.path)?;
        }
        h.as_old_mut().name[..e.path.len().min(NAME_FIELD)].copy_from_slice(&e.path[..e.path.len().min(NAME_FIELD)]);
        match e.kind {
            EntryKind::Symlink | EntryKind::Hardlink => {
                h.set_size(0);
                if e.link.contains(&0) {
                    return Err(io::Error::other("link target contains a NUL"));
                }
                if e.link.len() > NAME_FIELD {
                    append_long_name(b, b'K', &e.link)?;
                } else {
                    // Literal, so targets like `./x` or `a//b` survive unchanged.
                    h.set_link_name_literal(&e.link)?;
                }
            }
            EntryKind::File => h.set_size(e.size),
            _ => h.set_size(0),
        }
        h.set_cksum();
        b.append(&h, io::empty())?;
        Ok(b.get_ref().clone())
    }

    /// Ends the tar stream, flushes frames, writes the index and seek table.
    /// Returns the output and the archive id.
    pub fn finish(mut self) -> Result<(Box<dyn Write + Send>, [u8; 16]), Error> {
        self.push(&[0u8; 1024]);
        self.cut();
        let stream_len = self.pos;
        let (mut out, frames) = self.pipeline.take().unwrap().finish().map_err(|e| Error::io("archive output", e))?;
        let table = SeekTable::new(frames);
        if self.opts.format == index_v2::VERSION {
            return self.finish_v2(out, &table, stream_len);
        }
        let body = index::encode_entries(&self.entries);
        let id = index::archive_id(&body, &table.entry_bytes());
        let mut c = zstd::bulk::Compressor::new(9).map_err(|e| Error::io("index", e))?;
        c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true)).map_err(|e| Error::io("index", e))?;
        let compressed = c.compress(&body).map_err(|e| Error::io("index", e))?;
        let header = IndexHeader {
            version: index::FORMAT_VERSION,
            id,
            entry_count: self.entries.len() as u64,
            body_len: body.len() as u64,
            compressed_len: compressed.len() as u64,
            stream_len,
            frame_count: table.len() as u64,
        };
        let frame_len = 8 + index::HEADER_LEN + compressed.len() + index::TAIL_LEN;
        let payload_len = u32::try_from(frame_len - 8).map_err(|_| Error::Unsupported("index larger than 4 GiB".into()))?;
        let mut frame = Vec::with_capacity(frame_len);
        frame.extend_from_slice(&index::INDEX_FRAME_MAGIC.to_le_bytes());
        frame.extend_from_slice(&payload_len.to_le_bytes());
        frame.extend_from_slice(&header.encode());
        frame.extend_from_slice(&compressed);
        frame.extend_from_slice(&(frame_len as u64).to_le_bytes());
        frame.extend_from_slice(index::TAIL_MAGIC);
        let w = |e| Error::io("archive output", e);
        out.write_all(&frame).map_err(w)?;
        out.write_all(&table.encode()).map_err(w)?;
        out.flush().map_err(w)?;
        Ok((out, id))
    }
}

impl ArchiveWriter {
    /// Format 2's index: entries sorted by path, in blocks, then the seek table.
    fn finish_v2(
        mut self,
        mut out: Box<dyn Write + Send>,
        table: &SeekTable,
        stream_len: u64,
    ) -> Result<(Box<dyn Write + Send>, [u8; 16]), Error> {
        self.entries.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = self.entries.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(Error::BadEntry { path: w[0].path_lossy(), why: "path appears twice in the archive".into() });
        }
        let layout =
            index_v2::IndexLayout { piece_size: self.opts.piece_size as u32, block_target: self.opts.block_target.max(1), level: 9 };
        let (frame, id) = index_v2::encode_index(&self.entries, stream_len, &table.entry_bytes(), &layout)?;
        let w = |e| Error::io("archive output", e);
        out.write_all(&frame).map_err(w)?;
        out.write_all(&table.encode()).map_err(w)?;
        out.flush().map_err(w)?;
        Ok((out, id))
    }
}

/// The PAX records an entry needs: the exact mtime when whole non-negative
/// seconds cannot say it, and its xattrs.
fn pax_records(e: &Entry) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut pax = Vec::new();
    if e.mtime_nsec != 0 || e.mtime < 0 {
        pax.push(("mtime".into(), format_pax_time(e.mtime, e.mtime_nsec).into_bytes()));
    }
    for (k, v) in &e.xattrs {
        let k = std::str::from_utf8(k).map_err(|_| io::Error::other("xattr name is not UTF-8"))?;
        pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
    }
    Ok(pax)
}

/// Size of the name and linkname fields of a tar header.
const NAME_FIELD: usize = 100;

/// A GNU long name (`L`) or long link (`K`) record holding `bytes`, as GNU tar writes it.
fn append_long_name(b: &mut tar::Builder<Vec<u8>>, kind: u8, bytes: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    let name = b"././@LongLink";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(bytes.len() as u64 + 1); // NUL-terminated, like GNU tar
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    b.append(&h, bytes.chain(&[0u8][..]))
}

fn format_pax_time(sec: i64, nsec: u32) -> String {
    if sec < 0 && nsec > 0 {
        // PAX times are decimal: -1.5 means 1.5 s before the epoch.
        let s = sec + 1;
        let n = 1_000_000_000 - nsec;
        if s == 0 {
            format!("-0.{n:09}")
        } else {
            format!("{s}.{n:09}")
        }
    } else {
        format!("{sec}.{nsec:09}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Archive;

    /// Files just under, at and over one piece (with their header) must have
    /// every frame boundary inside them on a multiple of the piece size, in
    /// both formats; format 2 keeps each chunk in one frame (the frame rule).
    #[test]
    fn frame_cuts_inside_a_file_are_aligned() {
        let f = 64 * 1024;
        let v2 = WriterOptions { level: 1, piece_size: f, run_size: 3 * f, threads: 2, ..Default::default() };
        for opts in [WriterOptions::v1(f, 1, 2), v2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.tar.zst");
            let mut w = ArchiveWriter::new(std::fs::File::create(&path).unwrap(), opts).unwrap();
            let sizes = [100, f - 1024, f - 600, f - 512, f - 1, f, f + 1, 3 * f - 700, 3 * f + 5, 10, 5000, 7000, 9000];
            for (i, &n) in sizes.iter().enumerate() {
                let mut e = Entry::new(format!("f{i:02}").into_bytes(), EntryKind::File);
                e.size = n as u64;
                let data = vec![i as u8; n];
                w.append(e, Some(&mut &data[..])).unwrap();
            }
            w.finish().unwrap();
            let a = Archive::open(&path).unwrap();
            let t = a.seek_table();
            for e in a.entries().unwrap() {
                let frames = a.frames_for(e, 0, e.size);
                for i in frames.start + 1..frames.end {
                    let at = t.stream_offset(i) - e.data_offset;
                    assert_eq!(at % f as u64, 0, "{}: frame {i} starts {at} bytes into the file", e.path_lossy());
                }
                for (k, (s, end)) in a.chunks(e).into_iter().enumerate() {
                    assert_eq!(a.frames_for(e, s, end - s).len(), 1, "{} chunk {k}", e.path_lossy());
                    assert_eq!(a.chunk(e, k).unwrap().len() as u64, end - s);
                }
                let mut buf = vec![0u8; e.size as usize];
                a.read_at(e, 0, &mut buf).unwrap();
                assert!(buf.iter().all(|&b| b == buf[0]));
            }
        }
    }

    #[test]
    fn pax_time() {
        assert_eq!(super::format_pax_time(5, 1), "5.000000001");
        assert_eq!(super::format_pax_time(-1, 500_000_000), "-0.500000000");
        assert_eq!(super::format_pax_time(-3, 250_000_000), "-2.750000000");
    }
}
