//! What the daemon watches: the stubs themselves, or the whole mount.
//!
//! A mount mark makes every file reached through `DIR` pay for fsnotify:
//! the kernel keeps pre-content hooks on for every file opened there (build
//! outputs, completed files), and their first access is an event the daemon
//! must answer before it can set an ignore mark. Marking each stub's inode
//! instead leaves every other file unwatched, so the kernel opens it with
//! `FMODE_NONOTIFY_PERM` and its reads never enter fsnotify; a completed
//! stub loses its mark and becomes such a file.
//!
//! The price is memory: an inode mark pins its inode in the kernel's cache
//! (about 1 KiB each on ext4) until it is removed, so trees with very many
//! untouched stubs fall back to the mount mark ([`MarkScope::Auto`]).
//!
//! Every stub is marked before the tree is mounted over `DIR`, and nothing
//! but `populate` (which runs unserved) makes stubs, so no reader can reach
//! an unwatched stub either way. The stage is root's (0700) while unserved,
//! so the walk here races no user.

use super::events::WATCH;
use super::Error;
use crate::sys::fanotify::Fanotify;
use crate::sys::xattr;
use crate::tree::stage::Stage;
use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Untouched stubs above which [`MarkScope::Auto`] uses the mount mark:
/// 250k pinned inodes are about 250 MiB of kernel memory.
pub const AUTO_STUB_LIMIT: u64 = 250_000;

/// Which objects carry the daemon's pre-content mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MarkScope {
    /// Stubs while there are at most [`AUTO_STUB_LIMIT`] of them, else the mount.
    #[default]
    Auto,
    /// Each stub's inode: nothing else raises events.
    Stubs,
    /// The served mount: every file under `DIR` raises events until it gets an ignore mark.
    Mount,
}

impl std::str::FromStr for MarkScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(MarkScope::Auto),
            "stubs" => Ok(MarkScope::Stubs),
            "mount" => Ok(MarkScope::Mount),
            _ => Err(format!("unknown mark scope {s:?} (auto, stubs or mount)")),
        }
    }
}

/// What [`mark_stubs`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// Every stub has an inode mark; this many were marked.
    Stubs(u64),
    /// More stubs than the limit: the inode marks were removed again.
    TooMany,
}

/// Walk threads per core. With a cold cache, marking a stub mostly waits
/// for ext4 to read its inode: on a kernel tree (78,549 stubs, 2 cores),
/// serving started in 0.88-0.95 s with 2 threads and 0.70-0.72 s with 8
/// (warm: 0.39 s either way).
const WALK_THREADS_PER_CORE: usize = 4;

/// Cap on the walk's threads (each holds the directories it walks open).
const MAX_WALK_THREADS: usize = 64;

struct Walk<'a> {
    fan: &'a Fanotify,
    limit: u64,
    count: AtomicU64,
    over: AtomicBool,
    err: Mutex<Option<Error>>,
}

/// Puts an inode mark on every stub (regular file with a marker) of the
/// stage's tree, walking directories in parallel. With a `limit`, stops and
/// removes the marks once more than `limit` stubs are found.
pub fn mark_stubs(fan: &Fanotify, stage: &Stage, limit: Option<u64>) -> Result<Marked, Error> {
    let tree = stage.tree_fd()?;
    let root = rfs::openat(tree, c".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io(stage.tree().display(), std::io::Error::from(e)))?;
    let w = Walk { fan, limit: limit.unwrap_or(u64::MAX), count: AtomicU64::new(0), over: AtomicBool::new(false), err: Mutex::new(None) };
    let threads = (WALK_THREADS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get())).min(MAX_WALK_THREADS);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("thaw-mark-{i}"))
        .build()
        .map_err(|e| Error::Setup(format!("mark walk threads: {e}")))?;
    pool.scope(|s| w.dir(s, root, Vec::new()));
    if let Some(e) = w.err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    if w.over.load(Ordering::Relaxed) {
        fan.flush_inode_marks().map_err(|e| Error::io("fanotify", e))?;
        return Ok(Marked::TooMany);
    }
    Ok(Marked::Stubs(w.count.into_inner()))
}

impl Walk<'_> {
    fn fail(&self, rel: &[u8], e: std::io::Error) {
        let path = String::from_utf8_lossy(if rel.is_empty() { b"." } else { rel }).into_owned();
        self.err.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(Error::io(path, e));
        self.over.store(true, Ordering::Relaxed);
    }

    /// Marks the stubs in `dir` (at `rel` in the tree) and spawns its subdirectories.
    fn dir<'s>(&'s self, s: &rayon::Scope<'s>, dir: OwnedFd, rel: Vec<u8>) {
        let listing = match rfs::Dir::read_from(&dir) {
            Ok(l) => l,
            Err(e) => return self.fail(&rel, e.into()),
        };
        for ent in listing {
            if self.over.load(Ordering::Relaxed) {
                return;
            }
            let ent = match ent {
                Ok(ent) => ent,
                Err(e) => return self.fail(&rel, e.into()),
            };
            let name = ent.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            let child = join(&rel, name.to_bytes());
            let kind = match ent.file_type() {
                FileType::Unknown => match rfs::statat(&dir, name, rfs::AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(e) => return self.fail(&child, e.into()),
                },
                t => t,
            };
            match kind {
                FileType::Directory => match open_subdir(dir.as_fd(), name) {
                    Ok(sub) => s.spawn(move |s| self.dir(s, sub, child)),
                    Err(e) => return self.fail(&child, e),
                },
                FileType::RegularFile => {
                    if let Err(e) = self.file(dir.as_fd(), name) {
                        return self.fail(&child, e);
                    }
                }
                _ => {}
            }
        }
    }

    fn file(&self, dir: BorrowedFd<'_>, name: &CStr) -> std::io::Result<()> {
        let mut buf = [0u8; 256];
        if xattr::get_at(dir, name, MARKER, &mut buf)?.is_none() {
            return Ok(());
        }
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 > self.limit {
            self.over.store(true, Ordering::Relaxed);
            return Ok(());
        }
        self.fan.mark_inode_at(dir, name, WATCH).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot watch it: {e} (pre-content marks need ext4, xfs or btrfs, not tmpfs)"))
        })
    }
}

/// [`crate::tree::marker::MARKER_XATTR`] as a C string.
const MARKER: &CStr = c"trusted.thaw";

/// `rel/name` (just `name` at the top of the tree).
pub(super) fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(rel.len() + 1 + name.len());
    r.extend_from_slice(rel);
    if !r.is_empty() {
        r.push(b'/');
    }
    r.extend_from_slice(name);
    r
}

/// Opens one directory entry as a directory: no symlink, no other mount.
fn open_subdir(dir: BorrowedFd<'_>, name: &CStr) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV;
    Ok(rfs::openat2(dir, name, flags, Mode::empty(), how)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn marker_name_matches() {
        assert_eq!(super::MARKER.to_str().unwrap(), crate::tree::marker::MARKER_XATTR);
    }

    #[test]
    fn scope_parses() {
        use super::MarkScope;
        assert_eq!("stubs".parse::<MarkScope>(), Ok(MarkScope::Stubs));
        assert_eq!("mount".parse::<MarkScope>(), Ok(MarkScope::Mount));
        assert_eq!("auto".parse::<MarkScope>(), Ok(MarkScope::Auto));
        assert!("inode".parse::<MarkScope>().is_err());
    }

    #[test]
    fn join_paths() {
        assert_eq!(super::join(b"", b"a"), b"a");
        assert_eq!(super::join(b"a/b", b"c"), b"a/b/c");
    }
}
