//! Fills stubs: finds which archive entry a stub is (marker xattr), which of
//! its chunks are in place (allocated blocks), and writes missing chunks with
//! each chunk written by exactly one thread even under concurrent demand.

use super::Error;
use crate::archive::{Archive, Entry, EntryKind};
use crate::tree::marker::{self, Marker};
use rustix::fs::{self as rfs, SeekFrom, Timespec, Timestamps};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Missing,
    Busy,
    Done,
}

/// What is known about one stub inode while it is being hydrated.
pub struct FileState {
    pub key: (u64, u64),
    pub entry: usize,
    /// File byte ranges of the chunks, in order.
    chunks: Vec<(u64, u64)>,
    state: Mutex<FileInner>,
    cv: Condvar,
    /// A handle for background work (readahead), duplicated from an event fd
    /// the first time a reader looks sequential; most stubs never hold one.
    file: std::sync::OnceLock<File>,
}

struct FileInner {
    chunks: Vec<Chunk>,
    done: usize,
    /// Chunk most recently asked for (sequential-read detection).
    last: Option<usize>,
    /// Writers in progress and the mtime to put back when the last one ends.
    writers: usize,
    saved_mtime: Option<Timespec>,
    finished: bool,
    /// Smallest size the file has had: archive bytes from here on are the user's business.
    limit: u64,
    marker: Marker,
}

impl FileState {
    /// Chunks overlapping `[start, end)`.
    fn wanted(&self, start: u64, end: u64) -> std::ops::Range<usize> {
        if start >= end {
            return 0..0;
        }
        self.chunks.partition_point(|&(_, e)| e <= start)..self.chunks.partition_point(|&(s, _)| s < end)
    }

    /// Records an access; returns where to read ahead when it looks sequential.
    fn note_access(&self, g: &mut FileInner, wanted: &std::ops::Range<usize>) -> Option<usize> {
        if wanted.is_empty() {
            return None;
        }
        let (f, l) = (wanted.start, wanted.end - 1);
        let ahead = (g.last.is_some_and(|p| p + 1 == f) && l + 1 < self.chunks.len()).then_some(l + 1);
        g.last = Some(l);
        ahead
    }

    pub fn is_complete(&self) -> bool {
        let g = self.state.lock().unwrap();
        g.done == self.chunks.len()
    }

    /// The background handle, if one was kept.
    pub fn handle(&self) -> Option<&File> {
        self.file.get()
    }

    /// The background handle, made from `fd` if there is none yet. `None`
    /// when no fd can be had (e.g. EMFILE): then there is no readahead.
    pub fn keep_handle(&self, fd: BorrowedFd<'_>) -> Option<&File> {
        if self.file.get().is_none() {
            if let Ok(dup) = fd.try_clone_to_owned() {
                let _ = self.file.set(File::from(dup));
            }
        }
        self.file.get()
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

/// Result of looking at an fd.
pub enum Lookup {
    /// Not a stub (a complete file, a file users made, or not a regular file).
    NotStub,
    /// A stub, with the file's current size (from the same fstat).
    Stub(Arc<FileState>, u64),
}

#[derive(Default, Debug)]
pub struct Stats {
    pub chunks_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub files_completed: AtomicU64,
}

pub struct Hydrator {
    archive: Arc<Archive>,
    id_hex: String,
    files: Mutex<HashMap<(u64, u64), Arc<FileState>>>,
    pub stats: Stats,
}

/// Outcome of [`Hydrator::ensure`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Ensured {
    pub wrote: bool,
    pub complete: bool,
    /// The chunk after the range, when the access looks sequential.
    pub readahead_from: Option<usize>,
}

impl Hydrator {
    pub fn new(archive: Arc<Archive>) -> Hydrator {
        let id_hex = archive.id_hex();
        Hydrator { archive, id_hex, files: Mutex::default(), stats: Stats::default() }
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// File byte ranges of `entry`'s chunks.
    pub fn chunks_of(&self, entry: &Entry) -> Vec<(u64, u64)> {
        let a = &self.archive;
        let d = a.index().data_entry(entry);
        let t = a.seek_table();
        a.frames_for(d, 0, d.size)
            .map(|i| {
                let s = t.stream_offset(i).max(d.data_offset) - d.data_offset;
                let e = t.stream_offset(i + 1).min(d.data_offset + d.size) - d.data_offset;
                (s, e)
            })
            .collect()
    }

    /// Identifies the stub behind `fd`, loading its state on first sight.
    pub fn lookup(&self, fd: BorrowedFd<'_>) -> Result<Lookup, Error> {
        let st = rfs::fstat(fd).map_err(|e| Error::io(fd_path(fd), e))?;
        if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
            return Ok(Lookup::NotStub);
        }
        let key = (st.st_dev, st.st_ino);
        if let Some(s) = self.files.lock().unwrap().get(&key) {
            return Ok(Lookup::Stub(s.clone(), st.st_size as u64));
        }
        let marker = match marker::read(fd).map_err(|e| Error::io(fd_path(fd), e))? {
            Some(m) => m,
            None => return Ok(Lookup::NotStub),
        };
        if marker.ino != st.st_ino {
            return Err(Error::Stub {
                path: fd_path(fd),
                why: format!("marker made for inode {} is on inode {}: copied, not a stub thaw made", marker.ino, st.st_ino),
            });
        }
        let (id, idx) = (&marker.id, marker.entry);
        if *id != self.id_hex {
            return Err(Error::Stub { path: fd_path(fd), why: format!("stub of archive {id}, but serving {}", self.id_hex) });
        }
        let entry = self
            .archive
            .index()
            .get(idx)
            .filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Hardlink))
            .ok_or_else(|| Error::Stub { path: fd_path(fd), why: format!("marker names entry {idx}, which is not a file") })?;
        let chunks = self.chunks_of(entry);
        let limit = marker.limit.unwrap_or(u64::MAX);
        let present = present_chunks(fd, &chunks, (st.st_size as u64).min(limit)).map_err(|e| Error::io(fd_path(fd), e))?;
        let done = present.iter().filter(|&&p| p == Chunk::Done).count();
        let state = Arc::new(FileState {
            key,
            entry: idx,
            chunks,
            state: Mutex::new(FileInner {
                chunks: present,
                done,
                last: None,
                writers: 0,
                saved_mtime: None,
                finished: false,
                limit,
                marker,
            }),
            cv: Condvar::new(),
            file: std::sync::OnceLock::new(),
        });
        let mut files = self.files.lock().unwrap();
        let s = files.entry(key).or_insert(state).clone();
        Ok(Lookup::Stub(s, st.st_size as u64))
    }

    /// The fast path: `Some` when `[start, end)` is already in place and the
    /// file was not shrunk, so the event can be answered without any work.
    /// `cur_size` is the size [`Hydrator::lookup`] just read.
    pub fn ready(&self, st: &FileState, cur_size: u64, start: u64, end: u64) -> Option<Ensured> {
        let mut g = st.state.lock().unwrap();
        if cur_size < g.limit && cur_size < st.chunks.last().map_or(0, |c| c.1) {
            return None; // a shrink to record: slow path
        }
        let wanted = st.wanted(start, end.min(cur_size.min(g.limit)));
        if !g.chunks[wanted.clone()].iter().all(|&c| c == Chunk::Done) {
            return None;
        }
        let readahead_from = st.note_access(&mut g, &wanted);
        Some(Ensured { wrote: false, complete: g.done == st.chunks.len() && g.writers == 0 && !g.finished, readahead_from })
    }

    /// Makes bytes `[start, end)` of the stub present, writing through `fd`.
    pub fn ensure(&self, st: &FileState, fd: BorrowedFd<'_>, start: u64, end: u64) -> Result<Ensured, Error> {
        let mut out = Ensured::default();
        let mut cur_size = rfs::fstat(fd).map_err(|e| Error::io(fd_path(fd), e))?.st_size as u64;
        {
            // A file smaller than its archive entry was shrunk by a user: what
            // lies past that point is theirs from now on, even if they grow it
            // again. Recorded in the marker before the access goes on.
            let mut g = st.state.lock().unwrap();
            if cur_size < g.limit && cur_size < st.chunks.last().map_or(0, |c| c.1) {
                g.limit = cur_size;
                g.marker.limit = Some(cur_size);
                marker::write(fd, &g.marker).map_err(|e| Error::io(fd_path(fd), e))?;
                for (k, &(s, _)) in st.chunks.iter().enumerate() {
                    if s >= cur_size && g.chunks[k] == Chunk::Missing {
                        g.chunks[k] = Chunk::Done;
                        g.done += 1;
                    }
                }
            }
            cur_size = cur_size.min(g.limit);
        }
        let wanted = st.wanted(start, end.min(cur_size));
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        {
            let mut g = st.state.lock().unwrap();
            out.readahead_from = st.note_access(&mut g, &wanted);
            for k in wanted {
                match g.chunks[k] {
                    Chunk::Missing => {
                        g.chunks[k] = Chunk::Busy;
                        mine.push(k);
                    }
                    Chunk::Busy => theirs.push(k),
                    Chunk::Done => {}
                }
            }
            if !mine.is_empty() {
                if g.writers == 0 {
                    // Read under the lock with no writer active, so it is the
                    // file's own mtime and not one a write of ours just bumped.
                    match rfs::fstat(fd) {
                        Ok(s) => g.saved_mtime = Some(Timespec { tv_sec: s.st_mtime, tv_nsec: s.st_mtime_nsec as _ }),
                        Err(e) => {
                            // Give the claimed chunks back, or their waiters would wait forever.
                            for &k in &mine {
                                g.chunks[k] = Chunk::Missing;
                            }
                            st.cv.notify_all();
                            return Err(Error::io(fd_path(fd), e));
                        }
                    }
                }
                g.writers += 1;
            }
        }
        let mut first_err = None;
        if !mine.is_empty() {
            let results = self.write_chunks(st, fd, &mine, cur_size);
            let mut g = st.state.lock().unwrap();
            for (k, r) in results {
                match r {
                    Ok(()) => {
                        g.chunks[k] = Chunk::Done;
                        g.done += 1;
                        out.wrote = true;
                    }
                    Err(e) => {
                        g.chunks[k] = Chunk::Missing;
                        first_err.get_or_insert(e);
                    }
                }
            }
            g.writers -= 1;
            if g.writers == 0 {
                if let Some(t) = g.saved_mtime.take() {
                    let times = Timestamps { last_access: Timespec { tv_sec: 0, tv_nsec: rfs::UTIME_OMIT }, last_modification: t };
                    if let Err(e) = rfs::futimens(fd, &times) {
                        first_err.get_or_insert(Error::io(fd_path(fd), e));
                    }
                }
            }
            st.cv.notify_all();
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        // Wait for chunks other threads are writing.
        let mut g = st.state.lock().unwrap();
        for &k in &theirs {
            while g.chunks[k] == Chunk::Busy {
                g = st.cv.wait(g).unwrap();
            }
            if g.chunks[k] != Chunk::Done {
                return Err(Error::Stub { path: fd_path(fd), why: "hydration of a chunk failed in another thread".into() });
            }
        }
        out.complete = g.done == st.chunks.len() && g.writers == 0 && !g.finished;
        Ok(out)
    }

    /// Writes chunks, decoding several at once on plain scoped threads (not
    /// rayon: callers block on condvars, and a rayon join could steal such a
    /// blocked task and deadlock).
    fn write_chunks(&self, st: &FileState, fd: BorrowedFd<'_>, chunks: &[usize], cur_size: u64) -> Vec<(usize, Result<(), Error>)> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks.len());
        if threads <= 1 {
            return chunks.iter().map(|&k| (k, self.write_chunk(st, fd, k, cur_size))).collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        chunks.iter().skip(t).step_by(threads).map(|&k| (k, self.write_chunk(st, fd, k, cur_size))).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("chunk writer panicked")).collect()
        })
    }

    fn write_chunk(&self, st: &FileState, fd: BorrowedFd<'_>, k: usize, cur_size: u64) -> Result<(), Error> {
        let a = &self.archive;
        let entry = a.index().get(st.entry).expect("checked at lookup");
        let d = a.index().data_entry(entry);
        let (cs, ce) = st.chunks[k];
        let ce = ce.min(cur_size);
        if cs >= ce {
            return Ok(()); // truncated away by the user
        }
        let t = a.seek_table();
        let mut written = 0u64;
        for i in a.frames_for(d, cs, ce - cs) {
            let frame = a.frame(i).map_err(|e| Error::Stub { path: fd_path(fd), why: format!("archive {}: {e}", a.source_name()) })?;
            let f_start = t.stream_offset(i);
            let s = (d.data_offset + cs).max(f_start);
            let e = (d.data_offset + ce).min(f_start + frame.len() as u64);
            let mut buf = &frame[(s - f_start) as usize..(e - f_start) as usize];
            let mut off = s - d.data_offset;
            while !buf.is_empty() {
                match rustix::io::pwrite(fd, buf, off) {
                    Ok(0) => return Err(Error::io(fd_path(fd), std::io::Error::from(std::io::ErrorKind::WriteZero))),
                    Ok(n) => {
                        buf = &buf[n..];
                        off += n as u64;
                        written += n as u64;
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(Error::io(fd_path(fd), e)),
                }
            }
        }
        self.stats.chunks_written.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_written.fetch_add(written, Ordering::Relaxed);
        Ok(())
    }

    /// Marks a complete stub as an ordinary file: removes the marker and
    /// forgets its state. Returns false if another thread already did.
    pub fn finish(&self, st: &FileState, fd: BorrowedFd<'_>) -> Result<bool, Error> {
        {
            let mut g = st.state.lock().unwrap();
            if g.finished || g.done != st.chunks.len() {
                return Ok(false);
            }
            g.finished = true;
        }
        marker::remove(fd).map_err(|e| Error::io(fd_path(fd), e))?;
        self.files.lock().unwrap().remove(&st.key);
        self.stats.files_completed.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Fills a whole stub (prefetch, offline hydrate) and finishes it.
    pub fn hydrate_all(&self, fd: BorrowedFd<'_>) -> Result<bool, Error> {
        match self.lookup(fd)? {
            Lookup::NotStub => Ok(false),
            Lookup::Stub(st, _) => {
                let size = self.archive.index().get(st.entry).map_or(0, |e| self.archive.index().data_entry(e).size);
                self.ensure(&st, fd, 0, size)?;
                self.finish(&st, fd)
            }
        }
    }

    /// Background readahead: hydrate up to `n` chunks from `from` through
    /// the state's handle (see [`FileState::keep_handle`]). Returns true if
    /// the file is complete and was finished here.
    pub fn readahead(&self, st: &FileState, from: usize, n: usize) -> bool {
        let end_chunk = (from + n).min(st.chunks.len());
        let Some(file) = st.handle() else { return false };
        if from >= end_chunk {
            return false;
        }
        let (s, _) = st.chunks[from];
        let (_, e) = st.chunks[end_chunk - 1];
        let fd = file.as_fd();
        match self.ensure(st, fd, s, e) {
            Ok(r) if r.complete => self.finish(st, fd).unwrap_or(false),
            _ => false,
        }
    }

    pub fn pending_files(&self) -> usize {
        self.files.lock().unwrap().len()
    }
}

/// Which chunks are already in the stub, from its allocated extents.
fn present_chunks(fd: BorrowedFd<'_>, chunks: &[(u64, u64)], size: u64) -> std::io::Result<Vec<Chunk>> {
    let extents = data_extents(fd, size)?;
    Ok(chunks
        .iter()
        .map(|&(s, e)| {
            let e = e.min(size);
            // Truncated away by the user: nothing to put back.
            if s >= e || extents.iter().any(|&(ds, de)| ds <= s && e <= de) {
                Chunk::Done
            } else {
                Chunk::Missing
            }
        })
        .collect())
}

/// The data (non-hole) ranges of a file below `size`.
pub fn data_extents(fd: BorrowedFd<'_>, size: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let mut extents = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rfs::seek(fd, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = match rfs::seek(fd, SeekFrom::Hole(data)) {
            Ok(h) => h,
            Err(rustix::io::Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        extents.push((data, hole.min(size)));
        pos = hole;
    }
    Ok(extents)
}

/// The path of an fd, for messages.
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_or_else(|_| format!("fd {}", fd.as_raw_fd()), |p| p.display().to_string())
}
