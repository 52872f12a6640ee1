//! Which chunks of one stub are in place, and who is writing the others.
//!
//! A chunk is the part of one archive frame that belongs to a file. Each
//! missing chunk is claimed by exactly one writer; other readers of it wait
//! on a condvar. A [`Claim`] hands back what it did not commit when it is
//! dropped, so a writer that fails or panics never leaves waiters blocked
//! (the bug Nydus's fanotify daemon had with a panicking single-flight leader).

use rustix::fs::{self as rfs, SeekFrom};
use std::ops::Range;
use std::os::fd::BorrowedFd;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    Busy,
    Done,
}

/// The chunk states of one file, shared by every thread serving it.
#[derive(Debug)]
pub struct ChunkMap {
    /// File byte ranges of the chunks, in order.
    ranges: Vec<(u64, u64)>,
    state: Mutex<Inner>,
    cv: Condvar,
}

#[derive(Debug)]
struct Inner {
    chunks: Vec<State>,
    done: usize,
}

/// Why waiting for chunks another thread was writing did not end with them in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("hydration of a chunk failed in another thread")]
pub struct WriterFailed;

/// Locks a mutex even if a panicking thread poisoned it: every critical
/// section here leaves the state consistent (a [`Claim`] undoes itself).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ChunkMap {
    /// A map of `ranges` where `present[k]` says chunk k is already in place.
    pub fn new(ranges: Vec<(u64, u64)>, present: Vec<bool>) -> ChunkMap {
        assert_eq!(ranges.len(), present.len());
        let chunks: Vec<State> = present.iter().map(|&p| if p { State::Done } else { State::Missing }).collect();
        let done = present.iter().filter(|&&p| p).count();
        ChunkMap { ranges, state: Mutex::new(Inner { chunks, done }), cv: Condvar::new() }
    }

    /// Reads which chunks are in place from the file's allocated extents: a
    /// chunk counts only if it is allocated whole, so a write cut short (a
    /// full disk, a crash) is written again. Chunks at or past `size` (the
    /// user truncated them away) count as in place.
    pub fn from_file(fd: BorrowedFd<'_>, ranges: Vec<(u64, u64)>, size: u64) -> std::io::Result<ChunkMap> {
        let extents = data_extents(fd, size)?;
        let present = ranges
            .iter()
            .map(|&(s, e)| {
                let e = e.min(size);
                s >= e || extents.iter().any(|&(ds, de)| ds <= s && e <= de)
            })
            .collect();
        Ok(ChunkMap::new(ranges, present))
    }

    /// Number of chunks.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True for a file with no chunks (empty).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// File byte range of chunk `k`.
    pub fn range(&self, k: usize) -> (u64, u64) {
        self.ranges[k]
    }

    /// End of the last chunk: the entry's size.
    pub fn file_len(&self) -> u64 {
        self.ranges.last().map_or(0, |c| c.1)
    }

    /// Chunks overlapping bytes `[start, end)`.
    pub fn wanted(&self, start: u64, end: u64) -> Range<usize> {
        if start >= end {
            return 0..0;
        }
        self.ranges.partition_point(|&(_, e)| e <= start)..self.ranges.partition_point(|&(s, _)| s < end)
    }

    /// True if every chunk of `range` is in place.
    pub fn all_done(&self, range: Range<usize>) -> bool {
        lock(&self.state).chunks[range].iter().all(|&c| c == State::Done)
    }

    /// True when every chunk is in place.
    pub fn complete(&self) -> bool {
        let g = lock(&self.state);
        g.done == g.chunks.len()
    }

    /// Bytes of the chunks in place (what the file holds from the archive).
    pub fn done_bytes(&self) -> u64 {
        let g = lock(&self.state);
        self.ranges.iter().zip(&g.chunks).filter(|(_, &c)| c == State::Done).map(|(r, _)| r.1 - r.0).sum()
    }

    /// Bytes of the chunks of `range` not in place yet (what filling it would write).
    pub fn missing_bytes(&self, range: Range<usize>) -> u64 {
        let g = lock(&self.state);
        range.filter(|&k| g.chunks[k] != State::Done).map(|k| self.ranges[k].1 - self.ranges[k].0).sum()
    }

    /// True if no chunk is being written.
    pub fn idle(&self) -> bool {
        !lock(&self.state).chunks.contains(&State::Busy)
    }

    /// Every chunk counts as missing again (the file was emptied; see
    /// [`crate::hydrate::dehydrate`]). Call only when [`ChunkMap::idle`].
    pub fn reset_missing(&self) {
        let mut g = lock(&self.state);
        debug_assert!(!g.chunks.contains(&State::Busy));
        g.chunks.iter_mut().for_each(|c| *c = State::Missing);
        g.done = 0;
    }

    /// Counts every missing chunk that starts at or past `offset` as in place:
    /// the user truncated the file there, so those bytes are theirs.
    pub fn truncated_at(&self, offset: u64) {
        let mut g = lock(&self.state);
        for (k, &(s, _)) in self.ranges.iter().enumerate() {
            if s >= offset && g.chunks[k] == State::Missing {
                g.chunks[k] = State::Done;
                g.done += 1;
            }
        }
    }

    /// Claims the missing chunks of `range` for the caller and returns the
    /// claim plus the chunks other threads are writing (to [`ChunkMap::wait`] for).
    pub fn claim(&self, range: Range<usize>) -> (Claim<'_>, Vec<usize>) {
        let mut g = lock(&self.state);
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for k in range {
            match g.chunks[k] {
                State::Missing => {
                    g.chunks[k] = State::Busy;
                    mine.push(k);
                }
                State::Busy => theirs.push(k),
                State::Done => {}
            }
        }
        (Claim { map: self, chunks: mine }, theirs)
    }

    /// Waits until none of `chunks` is being written; fails if a writer gave one back.
    pub fn wait(&self, chunks: &[usize]) -> Result<(), WriterFailed> {
        let mut g = lock(&self.state);
        for &k in chunks {
            while g.chunks[k] == State::Busy {
                g = self.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
            }
            if g.chunks[k] != State::Done {
                return Err(WriterFailed);
            }
        }
        Ok(())
    }

    fn settle(&self, chunks: &[usize], to: State) {
        if chunks.is_empty() {
            return;
        }
        let mut g = lock(&self.state);
        for &k in chunks {
            debug_assert_eq!(g.chunks[k], State::Busy);
            g.chunks[k] = to;
            if to == State::Done {
                g.done += 1;
            }
        }
        drop(g);
        self.cv.notify_all();
    }
}

/// Chunks one thread has claimed to write. Commit each once it is in the
/// file; whatever is still claimed on drop goes back to missing.
#[derive(Debug)]
pub struct Claim<'a> {
    map: &'a ChunkMap,
    chunks: Vec<usize>,
}

impl Claim<'_> {
    /// The chunks still claimed.
    pub fn chunks(&self) -> &[usize] {
        &self.chunks
    }

    /// True if nothing was claimed.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Records chunk `k` as in place and wakes its waiters.
    pub fn commit(&mut self, k: usize) {
        if let Some(i) = self.chunks.iter().position(|&c| c == k) {
            self.chunks.swap_remove(i);
            self.map.settle(&[k], State::Done);
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.map.settle(&std::mem::take(&mut self.chunks), State::Missing);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    const C: u64 = 64 << 10;

    fn four() -> ChunkMap {
        ChunkMap::new((0..4).map(|k| (k * C, (k + 1) * C)).collect(), vec![false, true, false, false])
    }

    #[test]
    fn wanted_covers_overlaps() {
        let m = four();
        assert_eq!(m.wanted(0, 1), 0..1);
        assert_eq!(m.wanted(C - 1, C + 1), 0..2);
        assert_eq!(m.wanted(C, 2 * C), 1..2);
        assert_eq!(m.wanted(3 * C, u64::MAX), 3..4);
        assert_eq!(m.wanted(5, 5), 0..0);
        assert_eq!(m.file_len(), 4 * C);
    }

    #[test]
    fn claim_commit_and_give_back() {
        let m = four();
        let (mut claim, theirs) = m.claim(0..3);
        assert_eq!(claim.chunks(), &[0, 2]);
        assert!(theirs.is_empty());
        // A second claimant sees them busy and gets nothing to write.
        let (other, theirs2) = m.claim(0..4);
        assert_eq!(other.chunks(), &[3]);
        assert_eq!(theirs2, vec![0, 2]);
        claim.commit(0);
        drop(claim); // chunk 2 goes back
        assert_eq!(m.wait(&[0]), Ok(()));
        assert_eq!(m.wait(&[2]), Err(WriterFailed));
        drop(other);
        assert!(!m.complete());
        let (mut c, _) = m.claim(0..4);
        assert_eq!(c.chunks(), &[2, 3]);
        c.commit(2);
        c.commit(3);
        assert!(m.complete());
    }

    #[test]
    fn waiters_wake_when_a_writer_panics() {
        let m = Arc::new(four());
        let (claim, _) = m.claim(2..3);
        let k = claim.chunks().to_vec();
        std::mem::forget(claim); // handed to the panicking thread below instead
        let m2 = m.clone();
        let waiter = std::thread::spawn(move || m2.wait(&[2]));
        let m3 = m.clone();
        let writer = std::thread::spawn(move || {
            let _claim = Claim { map: &m3, chunks: k };
            panic!("injected");
        });
        assert!(writer.join().is_err());
        assert_eq!(waiter.join().unwrap(), Err(WriterFailed));
        assert!(!m.all_done(2..3));
    }

    #[test]
    fn truncation_counts_the_tail_as_in_place() {
        let m = four();
        m.truncated_at(2 * C);
        assert!(m.all_done(1..4));
        assert!(!m.complete());
    }

    #[test]
    fn reads_state_from_allocated_extents() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("stub")).unwrap();
        f.set_len(4 * C).unwrap();
        f.write_all_at(&vec![7u8; C as usize], C).unwrap(); // chunk 1 whole
        f.write_all_at(&[7u8; 4096], 3 * C).unwrap(); // chunk 3 only begun
        let ranges: Vec<_> = (0..4).map(|k| (k * C, (k + 1) * C)).collect();
        let m = ChunkMap::from_file(f.as_fd(), ranges.clone(), 4 * C).unwrap();
        assert!(m.all_done(1..2));
        assert!(!m.all_done(0..1));
        assert!(!m.all_done(3..4), "a partly written chunk must not count as in place");
        // A file cut to 2C: chunks past it are the user's, so in place.
        let m = ChunkMap::from_file(f.as_fd(), ranges, 2 * C).unwrap();
        assert!(m.all_done(1..4));
    }
}
