//! Fills stubs: finds which archive entry a stub is (its marker), which of its
//! chunks are in place (its allocated blocks, see [`ChunkMap`]), and writes the
//! missing ones, each chunk by exactly one thread even under concurrent demand.

use super::chunks::{lock, ChunkMap};
use super::Error;
use crate::archive::{Archive, Entry, EntryKind};
use crate::tree::marker::{self, Marker};
use rustix::fs::{self as rfs, FallocateFlags, Timespec, Timestamps};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub use super::chunks::data_extents;

/// What is known about one stub inode while it is being hydrated.
pub struct FileState {
    /// (device, inode) of the stub.
    pub key: (u64, u64),
    /// Number of its archive entry.
    pub entry: usize,
    /// The file entry holding its data (the target of a hard link).
    pub(crate) data: Entry,
    /// Its chunks and who writes them.
    pub chunks: ChunkMap,
    meta: Mutex<Meta>,
    /// A handle for background work (readahead), duplicated from an event fd
    /// the first time a reader looks sequential; most stubs never hold one.
    file: OnceLock<File>,
    /// The window a sequential reader's readahead fills (see [`FileState::read_ahead_to`]).
    ahead: Mutex<Ahead>,
}

/// Readahead of one file: threads take the chunks `next..target` one at a
/// time, in order, so the chunk the reader needs next is always the one
/// being decoded first, and the window slides as the reader moves.
#[derive(Debug, Default)]
struct Ahead {
    /// The next chunk a readahead thread takes.
    next: usize,
    /// The end of the window (exclusive).
    target: usize,
    /// Readahead threads at work on this file.
    running: usize,
    /// The window's chunks before this were already hinted to the source.
    hinted: usize,
}

impl Ahead {
    /// See [`FileState::read_ahead_to`]; `len` is the file's chunk count.
    fn slide(&mut self, from: usize, n: usize, len: usize, threads: usize) -> (usize, std::ops::Range<usize>) {
        let target = (from + n).min(len);
        self.target = self.target.max(target);
        self.next = self.next.max(from);
        let more = (self.target.saturating_sub(self.next)).min(threads).saturating_sub(self.running);
        self.running += more;
        // The source hears of the window half a window at a time (a remote
        // one fetches each such part in one request), or at the file's end.
        let start = self.hinted.max(from);
        let hint = if self.target >= start + (n / 2).max(1) || (self.target == len && self.target > start) {
            self.hinted = self.target;
            start..self.target
        } else {
            0..0
        };
        (more, hint)
    }

    /// Forgets the window (the file's chunks were all punched out again):
    /// threads at work find nothing more to take, and the next sequential
    /// read starts a new window.
    fn reset(&mut self) {
        (self.next, self.target, self.hinted) = (0, 0, 0);
    }

    /// See [`FileState::next_ahead`].
    fn take(&mut self) -> Option<usize> {
        if self.next < self.target {
            self.next += 1;
            Some(self.next - 1)
        } else {
            self.running -= 1;
            None
        }
    }
}

/// The per-file state besides the chunks. Lock order: `meta` before the chunk map.
struct Meta {
    /// Chunk most recently asked for (sequential-read detection).
    last: Option<usize>,
    /// Writers in progress and the mtime to put back when the last one ends.
    writers: usize,
    saved_mtime: Option<Timespec>,
    finished: bool,
    /// Smallest size the file has had: archive bytes from here on are the user's.
    limit: u64,
    marker: Marker,
    /// The archive entry's mtime: any other mtime means a user wrote or touched the file.
    entry_mtime: Timespec,
    /// Accesses so far: an eviction checks that none came while it looked
    /// (see [`FileState::evict_with`]).
    accesses: u64,
    /// When a reader last asked for some of it.
    last_read: Option<Instant>,
}

impl FileState {
    /// Records an access; returns where to read ahead when it looks sequential.
    fn note_access(&self, m: &mut Meta, wanted: &std::ops::Range<usize>) -> Option<usize> {
        if wanted.is_empty() {
            return None;
        }
        let (f, l) = (wanted.start, wanted.end - 1);
        let ahead = (m.last.is_some_and(|p| p + 1 == f) && l + 1 < self.chunks.len()).then_some(l + 1);
        m.last = Some(l);
        ahead
    }

    /// Moves the readahead window to `from..from + n` (it never moves
    /// back) and returns how many more threads should fill it: up to
    /// `threads` for the file, counted as running from here on. Each then
    /// calls [`Hydrator::read_ahead_one`] until it returns `None` (or
    /// [`FileState::leave_ahead`] if it panicked). Also returns the chunks
    /// to hint to the source now (see [`Hydrator::hint`]).
    pub fn read_ahead_to(&self, from: usize, n: usize, threads: usize) -> (usize, std::ops::Range<usize>) {
        lock(&self.ahead).slide(from, n, self.chunks.len(), threads)
    }

    /// A readahead thread that panicked stops counting as running.
    pub fn leave_ahead(&self) {
        let mut a = lock(&self.ahead);
        a.running = a.running.saturating_sub(1);
    }

    /// The next chunk of the readahead window, or `None` when the window is
    /// done (the calling thread then no longer counts as running).
    fn next_ahead(&self) -> Option<usize> {
        lock(&self.ahead).take()
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

    /// True once the file is complete and nobody is writing or finishing it.
    fn ready_to_finish(&self, m: &Meta) -> bool {
        m.writers == 0 && !m.finished && self.chunks.complete()
    }

    /// The access count and the time of the last read, for an eviction to
    /// compare against later and to rank files by.
    pub fn accesses(&self) -> (u64, Option<Instant>) {
        let m = lock(&self.meta);
        (m.accesses, m.last_read)
    }

    /// Runs `punch` (which empties the file) while no access can start, but
    /// only if none happened since [`FileState::accesses`] returned `seen`,
    /// nobody is writing and the file was not finished; then every chunk
    /// counts as missing again. Holding `meta` is what stops new accesses:
    /// [`Hydrator::ready`] and [`Hydrator::ensure`] take it first. Returns
    /// the bytes of the chunks that were in place, `None` if it did not run.
    pub fn evict_with(&self, seen: u64, punch: impl FnOnce() -> Result<(), Error>) -> Result<Option<u64>, Error> {
        let m = lock(&self.meta);
        if m.accesses != seen || m.writers != 0 || m.finished || m.marker.modified || m.limit != u64::MAX || !self.chunks.idle() {
            return Ok(None);
        }
        let done = self.chunks.done_bytes();
        punch()?;
        self.chunks.reset_missing();
        lock(&self.ahead).reset();
        drop(m);
        Ok(Some(done))
    }
}

/// Result of looking at an fd.
pub enum Lookup {
    /// Not a regular file (a directory): nothing to fill, nothing to ignore.
    NotFile,
    /// A regular file that is not a stub (complete, or made by a user).
    NotStub,
    /// A stub, with the file's current size (from the same fstat).
    Stub(Arc<FileState>, u64),
}

/// Counters of the hydration work done.
#[derive(Default, Debug)]
pub struct Stats {
    /// Chunks written into stubs.
    pub chunks_written: AtomicU64,
    /// Bytes written into stubs.
    pub bytes_written: AtomicU64,
    /// Stubs that became complete files.
    pub files_completed: AtomicU64,
}

/// Fills the stubs of one archive; shared by every thread serving a tree.
pub struct Hydrator {
    archive: Arc<Archive>,
    id_hex: String,
    files: Mutex<HashMap<(u64, u64), Arc<FileState>>>,
    /// What was written so far.
    pub stats: Stats,
    /// Keep complete files as stubs (a disk budget evicts them later, and
    /// must see every read to know which were read last).
    keep_stubs: bool,
    /// Where first accesses go when a profile is being recorded.
    recorder: OnceLock<Arc<super::profile::Recorder>>,
    /// Held while a file's marker and origin record change hands (finish,
    /// and a served dehydrate's restub), so the two never interleave.
    markers: Mutex<()>,
}

/// On whose behalf chunks are filled.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// A reader's event.
    Reader,
    /// Readahead for a sequential reader.
    Readahead,
    /// A profile's prefetch.
    Prefetch,
}

/// Outcome of [`Hydrator::ensure`] and [`Hydrator::ready`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Ensured {
    /// Every chunk is in place and the file can be finished.
    pub complete: bool,
    /// The chunk after the range, when the access looks sequential.
    pub readahead_from: Option<usize>,
}

impl Hydrator {
    /// A hydrator for stubs of `archive`.
    pub fn new(archive: Arc<Archive>) -> Hydrator {
        let id_hex = archive.id_hex();
        Hydrator {
            archive,
            id_hex,
            files: Mutex::default(),
            stats: Stats::default(),
            keep_stubs: false,
            recorder: OnceLock::new(),
            markers: Mutex::default(),
        }
    }

    /// Complete files stay stubs (with every chunk in place) instead of
    /// being finished, so every read of them still comes to the daemon.
    pub fn keep_stubs(mut self) -> Hydrator {
        self.keep_stubs = true;
        self
    }

    /// Records first accesses into `r` from now on.
    pub fn record_into(&self, r: Arc<super::profile::Recorder>) {
        let _ = self.recorder.set(r);
    }

    /// Every stub state the hydrator holds (for the disk budget).
    pub fn states(&self) -> Vec<Arc<FileState>> {
        lock(&self.files).values().cloned().collect()
    }

    /// Counts an access to `wanted` (and records it for a profile).
    fn accessed(&self, st: &FileState, m: &mut Meta, wanted: &std::ops::Range<usize>) {
        m.accesses += 1;
        m.last_read = Some(Instant::now());
        if let Some(r) = self.recorder.get() {
            r.note(st, wanted.clone());
        }
    }

    /// The archive the stubs come from.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// File byte ranges of the chunks of `d`, a file entry (see [`Archive::chunks`]).
    pub fn chunks_of(&self, d: &Entry) -> Vec<(u64, u64)> {
        self.archive.chunks(d)
    }

    /// Identifies the stub behind `fd`, loading its state on first sight.
    pub fn lookup(&self, fd: BorrowedFd<'_>) -> Result<Lookup, Error> {
        let st = rfs::fstat(fd).map_err(|e| Error::io(fd_path(fd), e))?;
        if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::RegularFile {
            return Ok(Lookup::NotFile);
        }
        let key = (st.st_dev, st.st_ino);
        if let Some(s) = lock(&self.files).get(&key) {
            return Ok(Lookup::Stub(s.clone(), st.st_size as u64));
        }
        let Some(marker) = marker::read(fd).map_err(|e| Error::stub(fd_path(fd), e.to_string()))? else {
            return Ok(Lookup::NotStub);
        };
        let (entry, data) = self.check_stub(fd, &st, &marker)?;
        let limit = marker.limit.unwrap_or(u64::MAX);
        let chunks =
            ChunkMap::from_file(fd, self.chunks_of(&data), (st.st_size as u64).min(limit)).map_err(|e| Error::io(fd_path(fd), e))?;
        let entry_mtime = Timespec { tv_sec: entry.mtime, tv_nsec: i64::from(entry.mtime_nsec) as _ };
        let state = Arc::new(FileState {
            key,
            entry: marker.entry,
            data,
            chunks,
            meta: Mutex::new(Meta {
                last: None,
                writers: 0,
                saved_mtime: None,
                finished: false,
                limit,
                marker,
                entry_mtime,
                accesses: 0,
                last_read: None,
            }),
            file: OnceLock::new(),
            ahead: Mutex::default(),
        });
        let s = lock(&self.files).entry(key).or_insert(state).clone();
        Ok(Lookup::Stub(s, st.st_size as u64))
    }

    /// Checks that a marked file is a stub thaw made for this archive and that
    /// filling it cannot show its bytes to anyone the entry would not: the
    /// marker names this inode and a file entry, and the owner is the entry's
    /// and the mode lets nobody read who could not read the entry.
    /// Returns the entry and the file entry holding its data.
    fn check_stub(&self, fd: BorrowedFd<'_>, st: &rfs::Stat, m: &Marker) -> Result<(Entry, Entry), Error> {
        let refuse = |why: String| Err(Error::Refused { path: fd_path(fd), why });
        if m.id != self.id_hex {
            return Err(Error::stub(fd_path(fd), format!("stub of archive {}, but serving {}", m.id, self.id_hex)));
        }
        if m.ino != st.st_ino {
            return refuse(format!("marker made for inode {} is on inode {}: copied, not a stub thaw made", m.ino, st.st_ino));
        }
        let archive_err = |e: crate::archive::Error| Error::stub(fd_path(fd), format!("archive {}: {e}", self.archive.source_name()));
        let entry = self.archive.entry(m.entry as u64).map_err(archive_err)?;
        let Some(entry) = entry.filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Hardlink)) else {
            return Err(Error::stub(fd_path(fd), format!("marker names entry {}, which is not a file", m.entry)));
        };
        let d = self.archive.data_entry(&entry).map_err(archive_err)?.into_owned();
        if rustix::process::geteuid().is_root() && (st.st_uid != d.uid || st.st_gid != d.gid) {
            return refuse(format!("owner {}:{} is not the entry's {}:{}", st.st_uid, st.st_gid, d.uid, d.gid));
        }
        let widened = st.st_mode & 0o044 & !d.mode;
        if widened != 0 {
            return refuse(format!(
                "mode {:o} lets group or others read what the entry ({:o}) does not",
                st.st_mode & 0o7777,
                d.mode & 0o7777
            ));
        }
        Ok((entry, d))
    }

    /// The fast path: `Some` when `[start, end)` is already in place and the
    /// file was not shrunk, so the event can be answered without any work.
    /// `cur_size` is the size [`Hydrator::lookup`] just read.
    pub fn ready(&self, st: &FileState, cur_size: u64, start: u64, end: u64) -> Option<Ensured> {
        let mut m = lock(&st.meta);
        if cur_size < m.limit && cur_size < st.chunks.file_len() {
            return None; // a shrink to record: slow path
        }
        let wanted = st.chunks.wanted(start, end.min(cur_size.min(m.limit)));
        if !st.chunks.all_done(wanted.clone()) {
            return None;
        }
        let readahead_from = st.note_access(&mut m, &wanted);
        self.accessed(st, &mut m, &wanted);
        Some(Ensured { complete: st.ready_to_finish(&m) && !self.keep_stubs, readahead_from })
    }

    /// Makes bytes `[start, end)` of the stub present, writing through `fd`.
    pub fn ensure(&self, st: &FileState, fd: BorrowedFd<'_>, start: u64, end: u64) -> Result<Ensured, Error> {
        self.ensure_for(st, fd, start, end, Why::Reader)
    }

    /// [`Hydrator::ensure`] for a prefetch: no reader asked for it, so it is
    /// neither recorded in a profile nor counted as a read.
    pub fn ensure_background(&self, st: &FileState, fd: BorrowedFd<'_>, start: u64, end: u64) -> Result<Ensured, Error> {
        self.ensure_for(st, fd, start, end, Why::Prefetch)
    }

    fn ensure_for(&self, st: &FileState, fd: BorrowedFd<'_>, start: u64, end: u64, why: Why) -> Result<Ensured, Error> {
        let cur_size = self.record_user_changes(st, fd)?;
        let wanted = st.chunks.wanted(start, end.min(cur_size));
        let readahead_from = {
            let mut m = lock(&st.meta);
            match why {
                Why::Reader => self.accessed(st, &mut m, &wanted),
                Why::Readahead => {
                    // A sequential reader is about to ask for these: a
                    // recording keeps them (once the file is complete and
                    // ignored, its reads are no longer seen).
                    m.accesses += 1;
                    if let Some(r) = self.recorder.get() {
                        r.note(st, wanted.clone());
                    }
                }
                Why::Prefetch => m.accesses += 1,
            }
            // Readahead runs ahead of the reader: where it is must not
            // look like where the reader is.
            match why {
                Why::Readahead => None,
                Why::Reader | Why::Prefetch => st.note_access(&mut m, &wanted),
            }
        };
        let (claim, theirs) = st.chunks.claim(wanted);
        if !claim.is_empty() {
            self.fill(st, fd, claim, cur_size)?;
        }
        st.chunks.wait(&theirs).map_err(|e| Error::stub(fd_path(fd), e.to_string()))?;
        Ok(Ensured { complete: st.ready_to_finish(&lock(&st.meta)) && !self.keep_stubs, readahead_from })
    }

    /// Notes what a user did to the file, in its marker, before any access
    /// goes on: a shrink (what lies past that point is theirs from now on,
    /// even if they grow it again) and a write or touch (an mtime that is not
    /// the entry's, while no writer of ours is changing it). Returns the size
    /// up to which archive bytes may be written.
    fn record_user_changes(&self, st: &FileState, fd: BorrowedFd<'_>) -> Result<u64, Error> {
        let mut m = lock(&st.meta);
        let s = rfs::fstat(fd).map_err(|e| Error::io(fd_path(fd), e))?;
        let cur_size = s.st_size as u64;
        let mut changed = false;
        if cur_size < m.limit && cur_size < st.chunks.file_len() {
            m.limit = cur_size;
            m.marker.limit = Some(cur_size);
            st.chunks.truncated_at(cur_size);
            changed = true;
        }
        let mtime = Timespec { tv_sec: s.st_mtime, tv_nsec: s.st_mtime_nsec as _ };
        if m.writers == 0 && !m.marker.modified && mtime != m.entry_mtime {
            m.marker.modified = true;
            changed = true;
        }
        if changed {
            marker::write(fd, &m.marker).map_err(|e| Error::io(fd_path(fd), e))?;
        }
        Ok(cur_size.min(m.limit))
    }

    /// Writes the claimed chunks, each committed as soon as it is in place
    /// (a reader waiting for it goes on while the others are still being
    /// decoded), then puts the file's mtime back once the last concurrent
    /// writer is done (our writes must not look like news to `make`). A
    /// chunk that fails is punched out again, so no partial chunk is left
    /// behind, and handed back by the claim.
    fn fill(&self, st: &FileState, fd: BorrowedFd<'_>, claim: super::chunks::Claim<'_>, cur_size: u64) -> Result<(), Error> {
        {
            let mut m = lock(&st.meta);
            if m.writers == 0 {
                // Read under the lock with no writer active, so it is the
                // file's own mtime and not one a write of ours just bumped.
                let s = rfs::fstat(fd).map_err(|e| Error::io(fd_path(fd), e))?;
                m.saved_mtime = Some(Timespec { tv_sec: s.st_mtime, tv_nsec: s.st_mtime_nsec as _ });
            }
            m.writers += 1;
        }
        let chunks = claim.chunks().to_vec();
        let claim = Mutex::new(claim);
        let first_err = Mutex::new(None);
        self.write_chunks(st, fd, &chunks, cur_size, &|k, r| match r {
            Ok(()) => lock(&claim).commit(k),
            Err(e) => {
                let (s, e_) = st.chunks.range(k);
                let end = e_.min(cur_size);
                if s < end {
                    let _ = rfs::fallocate(fd, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, s, end - s);
                }
                lock(&first_err).get_or_insert(e);
            }
        });
        drop(claim);
        let mut first_err = first_err.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut m = lock(&st.meta);
        m.writers -= 1;
        if m.writers == 0 {
            if let Some(t) = m.saved_mtime.take() {
                let times = Timestamps { last_access: Timespec { tv_sec: 0, tv_nsec: rfs::UTIME_OMIT }, last_modification: t };
                if let Err(e) = rfs::futimens(fd, &times) {
                    first_err.get_or_insert(Error::io(fd_path(fd), e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes chunks and hands each result to `done` at once, decoding
    /// several at once on plain scoped threads (not rayon: callers block on
    /// condvars, and a rayon join could steal such a blocked task and
    /// deadlock). The threads take the chunks in order, so the first ones
    /// are in place first.
    fn write_chunks(
        &self,
        st: &FileState,
        fd: BorrowedFd<'_>,
        chunks: &[usize],
        cur_size: u64,
        done: &(dyn Fn(usize, Result<(), Error>) + Sync),
    ) {
        self.prefetch(st, chunks);
        let threads = if chunks.len() <= 1 { 1 } else { cores().min(chunks.len()) };
        if threads <= 1 {
            chunks.iter().for_each(|&k| done(k, self.write_chunk(st, fd, k, cur_size)));
            return;
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        while let Some(&k) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
                            done(k, self.write_chunk(st, fd, k, cur_size));
                        }
                    })
                })
                .collect();
            // A panicking decoder re-panics here; the caller's claim then gives
            // its chunks back as it unwinds.
            for h in handles {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        })
    }

    /// Tells the archive's source that the chunks of `range` not in place
    /// yet will be read soon (a remote source starts fetching them).
    pub fn hint(&self, st: &FileState, range: std::ops::Range<usize>) {
        let missing: Vec<usize> = range.filter(|&k| !st.chunks.all_done(k..k + 1)).collect();
        self.prefetch(st, &missing);
    }

    /// Asks the archive's source for the frames of `chunks` up front, one
    /// range per run of adjacent chunks (a remote archive: one request each).
    fn prefetch(&self, st: &FileState, chunks: &[usize]) {
        let a = &self.archive;
        let mut i = 0;
        while i < chunks.len() {
            let mut j = i;
            while j + 1 < chunks.len() && chunks[j + 1] == chunks[j] + 1 {
                j += 1;
            }
            let (s, _) = st.chunks.range(chunks[i]);
            let (_, e) = st.chunks.range(chunks[j]);
            a.prefetch(&st.data, s, e - s);
            i = j + 1;
        }
    }

    fn write_chunk(&self, st: &FileState, fd: BorrowedFd<'_>, k: usize, cur_size: u64) -> Result<(), Error> {
        let a = &self.archive;
        let (cs, ce) = st.chunks.range(k);
        let ce = ce.min(cur_size);
        if cs >= ce {
            return Ok(()); // truncated away by the user
        }
        let bytes = a.chunk(&st.data, k).map_err(|e| Error::stub(fd_path(fd), format!("archive {}: {e}", a.source_name())))?;
        let buf = &bytes[..(ce - cs) as usize];
        pwrite_all(fd, buf, cs)?;
        self.stats.chunks_written.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Marks a complete stub as an ordinary file: removes the marker and
    /// forgets its state. Returns false if another thread already did.
    pub fn finish(&self, st: &FileState, fd: BorrowedFd<'_>) -> Result<bool, Error> {
        {
            let mut m = lock(&st.meta);
            if !st.ready_to_finish(&m) {
                return Ok(false);
            }
            m.finished = true;
        }
        // The marker goes first, so that the origin record lands inside the
        // inode: written beside the marker it does not fit there, and ext4
        // gives it an xattr block of its own (4 KiB per completed file, kept
        // after the marker goes). A crash between the two leaves a complete
        // file with neither record, which thaw treats as the user's: kept,
        // never dehydrated.
        let origin = marker::Origin { entry: st.entry, ino: st.key.1 };
        let markers = self.marker_lock();
        marker::remove(fd).and_then(|()| marker::write_origin(fd, &origin)).map_err(|e| Error::io(fd_path(fd), e))?;
        drop(markers);
        lock(&self.files).remove(&st.key);
        self.stats.files_completed.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// The lock a served dehydrate holds while it turns a file back into a
    /// stub (see [`Hydrator::finish`]).
    pub fn marker_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.markers)
    }

    /// Fills a whole stub (prefetch, offline hydrate) and finishes it.
    pub fn hydrate_all(&self, fd: BorrowedFd<'_>) -> Result<bool, Error> {
        match self.lookup(fd)? {
            Lookup::NotFile | Lookup::NotStub => Ok(false),
            Lookup::Stub(st, _) => {
                self.ensure(&st, fd, 0, st.chunks.file_len())?;
                self.finish(&st, fd)
            }
        }
    }

    /// Background readahead, one chunk per call: takes the next chunk of
    /// the file's window (see [`FileState::read_ahead_to`]) and hydrates it
    /// through the state's handle (see [`FileState::keep_handle`]). `None`
    /// once the window is done; else whether the file is now complete and
    /// was finished here. `before` runs first with the chunk's missing bytes
    /// (the disk budget makes room).
    pub fn read_ahead_one<G>(&self, st: &FileState, before: impl FnOnce(u64) -> G) -> Option<bool> {
        let k = st.next_ahead()?;
        let Some(file) = st.handle() else { return Some(false) };
        if st.chunks.all_done(k..k + 1) {
            return Some(false);
        }
        let _room = before(st.chunks.missing_bytes(k..k + 1));
        let (s, e) = st.chunks.range(k);
        let fd = file.as_fd();
        Some(match self.ensure_for(st, fd, s, e, Why::Readahead) {
            Ok(r) if r.complete => self.finish(st, fd).unwrap_or(false),
            _ => false,
        })
    }
}

/// The cores this process may use, asked once: `available_parallelism`
/// reads the cgroup's files on every call (measured: about 23 µs of each
/// small file's fill, when it was asked per fill).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Writes all of `buf` at `off`, retrying short writes and EINTR.
fn pwrite_all(fd: BorrowedFd<'_>, mut buf: &[u8], mut off: u64) -> Result<(), Error> {
    while !buf.is_empty() {
        match rustix::io::pwrite(fd, buf, off) {
            Ok(0) => return Err(Error::io(fd_path(fd), std::io::Error::from(std::io::ErrorKind::WriteZero))),
            Ok(n) => {
                buf = &buf[n..];
                off += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io(fd_path(fd), e)),
        }
    }
    Ok(())
}

/// The path of an fd, for messages.
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_or_else(|_| format!("fd {}", fd.as_raw_fd()), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::Ahead;

    #[test]
    fn the_readahead_window_slides_with_the_reader_and_hands_out_each_chunk_once_in_order() {
        let mut a = Ahead::default();
        // The reader finished chunk 1 of 20: the window is 2..10, two threads
        // start, and the source hears of the whole window.
        assert_eq!(a.slide(2, 8, 20, 2), (2, 2..10));
        assert_eq!((a.take(), a.take()), (Some(2), Some(3)));
        // The reader moved on to chunk 4: the window grows to 13, both
        // threads still run, and 10..13 is less than half a window to hint.
        assert_eq!(a.slide(5, 8, 20, 2), (0, 0..0));
        // At chunk 5 the window reaches 14: 10..14 is hinted at once.
        assert_eq!(a.slide(6, 8, 20, 2), (0, 10..14));
        let taken: Vec<_> = std::iter::from_fn(|| a.take()).collect();
        assert_eq!(taken, (6..14).collect::<Vec<_>>(), "chunks passed by the reader are skipped; the rest come in order");
        assert_eq!(a.running, 1, "the thread that found the window done stopped");
        assert_eq!(a.take(), None);
        assert_eq!(a.running, 0);
        // A reader that jumped ahead: the window starts where it is, and
        // the file's end is hinted even if it is less than half a window.
        assert_eq!(a.slide(17, 8, 20, 2), (2, 17..20));
        // An older position never moves the window back.
        assert_eq!(a.slide(3, 8, 20, 2), (0, 0..0));
        assert_eq!((a.take(), a.take(), a.take(), a.take(), a.take()), (Some(17), Some(18), Some(19), None, None));
        assert_eq!(a.running, 0);
        // After an eviction punched the file out, a reader starts over.
        a.reset();
        assert_eq!(a.slide(1, 8, 20, 2), (2, 1..9));
    }
}
