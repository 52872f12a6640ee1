//! Hydrating ahead of a reader that walks a directory in its listing order
//! (`find | xargs cat`, `cp -r`, `tar c`, `grep -r`, `os.walk`): the cold
//! first read of a whole tree (issue #10).
//!
//! Such a reader reads one file at a time, and each of its first reads waits
//! for the daemon, so one core decodes while the other idles. Once a reader
//! has read [`RUN`] files of one directory in the order `readdir` lists
//! them, the files after them in that order are hydrated in the background
//! (at most [`WINDOW`] files and [`WINDOW_BYTES`] bytes ahead), and the
//! reader finds them complete: no event at all. Only files of one chunk are
//! filled ahead: a fill shows the current time as the file's mtime until it
//! puts the entry's back, which for one chunk is one write long. A build
//! does not read headers in listing order, so it never triggers this (the
//! order is `readdir`'s hash order on ext4, not the archive's path order).
//!
//! Off unless `serve`/`run --walk-ahead`: in that one write's time, a
//! walker that stats each file just before reading it (`cp -a`, `tar c`,
//! `rsync`) can meet the file being filled and record the current time
//! (seen in 1 of 10 runs of a test that compares a tree while reading it).
//!
//! The listing is read from the stage's tree through `openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, and only names `readdir` says are
//! regular files are kept; each is opened the same way and must be a stub
//! (marker and inode) before anything is written, like a profile's
//! prefetch. A user's files, symlinks and renames are never written.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};

use super::marks::join;

/// Files of a directory read in listing order, in a row, that make a walk.
const RUN: u32 = 3;
/// How far a reader may skip ahead in the listing and still be walking it
/// (files already complete raise no event, so their reads are not seen).
const SKIP: usize = 4;
/// Files hydrated ahead of a walking reader, at most.
pub const WINDOW: usize = 64;
/// Bytes hydrated ahead of a walking reader, at most.
pub const WINDOW_BYTES: u64 = 16 << 20;
/// Directories larger than this are not listed (and get no help).
const MAX_LISTING: usize = 20_000;
/// Readers and listings remembered; beyond that, all are forgotten.
const KEEP: usize = 64;

/// The regular files of one directory, in `readdir` order: (inode, name),
/// and each inode's place in that order (looked up on the event thread).
struct Listing {
    files: Vec<(u64, Vec<u8>)>,
    at: HashMap<u64, usize>,
}

impl Listing {
    fn new(files: Vec<(u64, Vec<u8>)>) -> Listing {
        let at = files.iter().enumerate().map(|(i, &(ino, _))| (ino, i)).collect();
        Listing { files, at }
    }

    fn position(&self, ino: u64) -> Option<usize> {
        self.at.get(&ino).copied()
    }
}

/// What one reader has been reading.
#[derive(Default)]
struct Track {
    dir: Vec<u8>,
    /// Files of `dir` it asked for (the listing is read from the second on).
    seen: u32,
    /// The first one's inode.
    first: u64,
    /// Listing position of the last one.
    pos: Option<usize>,
    /// Files in listing order in a row, ending at `pos`.
    run: u32,
    /// Listing position up to which files were handed out to hydrate.
    ahead_to: usize,
}

/// Walk detection for the daemon: see the module doc.
#[derive(Default)]
pub struct Walks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    readers: HashMap<i32, Track>,
    listings: HashMap<Vec<u8>, Option<Arc<Listing>>>,
}

impl Walks {
    /// Notes that reader `pid` asked for file `ino` at `rel` (its path in the
    /// stub tree `tree`). Returns the paths of the files to hydrate ahead of
    /// it: empty unless it walks the directory.
    pub fn note(&self, tree: BorrowedFd<'_>, pid: i32, rel: &[u8], ino: u64) -> Vec<Vec<u8>> {
        let dir = parent(rel);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.readers.len() >= KEEP && !g.readers.contains_key(&pid) {
            g.readers.clear();
        }
        let t = g.readers.entry(pid).or_default();
        if t.dir != dir {
            *t = Track { dir: dir.to_vec(), ..Track::default() };
        }
        t.seen += 1;
        if t.seen == 1 {
            t.first = ino;
            return Vec::new();
        }
        let first = t.first;
        let Some(listing) = g.listing(tree, dir) else { return Vec::new() };
        let Some(i) = listing.position(ino) else { return Vec::new() };
        let t = g.readers.get_mut(&pid).expect("tracked above");
        let prev = t.pos.or_else(|| listing.position(first));
        t.run = match prev {
            Some(p) if i > p && i <= p + SKIP => t.run.max(1) + 1,
            _ => 1,
        };
        t.pos = Some(i);
        if t.run < RUN || t.ahead_to >= (i + 1 + WINDOW / 2).min(listing.files.len()) {
            return Vec::new();
        }
        let from = t.ahead_to.max(i + 1);
        let to = (i + 1 + WINDOW).min(listing.files.len());
        t.ahead_to = to;
        listing.files[from.min(to)..to].iter().map(|(_, name)| join(dir, name)).collect()
    }
}

impl Inner {
    /// The listing of `dir`, read once (`None`: unreadable or too large).
    fn listing(&mut self, tree: BorrowedFd<'_>, dir: &[u8]) -> Option<Arc<Listing>> {
        if let Some(l) = self.listings.get(dir) {
            return l.clone();
        }
        if self.listings.len() >= KEEP {
            self.listings.clear();
        }
        let l = read_listing(tree, dir).map(Arc::new);
        self.listings.insert(dir.to_vec(), l.clone());
        l
    }
}

/// The regular files of `dir` beneath `tree`, in `readdir` order, if it
/// still is a directory reached without a symlink and is not too large.
fn read_listing(tree: BorrowedFd<'_>, dir: &[u8]) -> Option<Listing> {
    let path = if dir.is_empty() { OsStr::new(".") } else { OsStr::from_bytes(dir) };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
    let fd = rfs::openat2(tree, path, flags, Mode::empty(), how).ok()?;
    let mut files = Vec::new();
    for ent in rfs::Dir::read_from(&fd).ok()? {
        let ent = ent.ok()?;
        if ent.file_type() == FileType::RegularFile {
            if files.len() == MAX_LISTING {
                return None;
            }
            files.push((ent.ino(), ent.file_name().to_bytes().to_vec()));
        }
    }
    Some(Listing::new(files))
}

/// The directory part of a tree path ("" at the top).
fn parent(rel: &[u8]) -> &[u8] {
    rel.iter().rposition(|&b| b == b'/').map_or(&[][..], |i| &rel[..i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A directory of `n` files, and the inode and name of each in `readdir` order.
    fn dir_of(n: usize) -> (tempfile::TempDir, Vec<(u64, Vec<u8>)>) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        for i in 0..n {
            std::fs::write(t.path().join(format!("d/f{i}")), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("d/link")).unwrap();
        let root = std::fs::File::open(t.path()).unwrap();
        let l = read_listing(root.as_fd(), b"d").unwrap();
        (t, l.files)
    }

    #[test]
    fn a_reader_in_listing_order_gets_the_next_files_and_no_other_does() {
        let (t, files) = dir_of(100);
        assert_eq!(files.len(), 100, "regular files only, not the symlink");
        let root = std::fs::File::open(t.path()).unwrap();
        let w = Walks::default();
        let path = |i: usize| join(b"d", &files[i].1);
        // Listing order: nothing for the first RUN - 1 files, then a window.
        assert!(w.note(root.as_fd(), 1, &path(0), files[0].0).is_empty());
        assert!(w.note(root.as_fd(), 1, &path(1), files[1].0).is_empty());
        let ahead = w.note(root.as_fd(), 1, &path(2), files[2].0);
        assert_eq!(ahead, (3..3 + WINDOW).map(path).collect::<Vec<_>>());
        // Not again until the reader is half way through it.
        assert!(w.note(root.as_fd(), 1, &path(3), files[3].0).is_empty());
        let more = w.note(root.as_fd(), 1, &path(40), files[40].0);
        assert!(more.is_empty(), "a jump is not a walk");
        // Another reader, in reverse listing order: never.
        for i in (50..60).rev() {
            assert!(w.note(root.as_fd(), 2, &path(i), files[i].0).is_empty(), "reverse order at {i}");
        }
        // Every other file, forwards (skipping complete ones): still a walk.
        let mut got = Vec::new();
        for i in (60..70).step_by(2) {
            got.extend(w.note(root.as_fd(), 3, &path(i), files[i].0));
        }
        assert_eq!(got.first(), Some(&path(65)));
        assert_eq!(got.last(), Some(&path(99)));
    }

    #[test]
    fn paths_split_and_join() {
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"c"), b"");
        assert_eq!(join(b"", b"c"), b"c");
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
    }
}
