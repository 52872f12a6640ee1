//! A directory under which entries are created with `*at` system calls.
//! Parents are opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! so no archive path, symlink or `..` can make thaw write outside it.

use super::Error;
use crate::archive::{Entry, EntryKind};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory a tree is laid out in: every entry is created beneath it by
/// fd, so no path in an archive can reach outside it.
pub struct TargetDir {
    root: OwnedFd,
    path: PathBuf,
    is_root_user: bool,
    /// Effective uid and gid: the owner a new file gets.
    euid: u32,
    egid: u32,
    /// The process umask, to know the mode a new file gets without asking.
    umask: u32,
    /// Directories already opened (entries never change type, so a path
    /// that was a directory stays one): saves a path walk per file. At most
    /// [`PARENTS_KEPT`] are kept, so a tree of any number of directories
    /// fits in the default limit of 1024 open files (with up to
    /// [`crate::tree::populate::MAX_DEFAULT_THREADS`] threads, each holding
    /// a file and a parent of its own).
    parents: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<OwnedFd>>>,
}

/// What a file just created by [`TargetDir::create_file`] already has.
#[derive(Debug, Clone, Copy)]
pub struct Fresh {
    mode: u32,
}

fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:").and_then(|v| u32::from_str_radix(v.trim(), 8).ok())))
        .unwrap_or(0o022)
}

/// Directory fds [`TargetDir`] keeps open at most; when full it starts
/// over (files come sorted by path, so the parents in use are reopened
/// once; directories made a level at a time reopen theirs more often).
const PARENTS_KEPT: usize = 128;

/// Longest path handed to one openat2 call (PATH_MAX counts the NUL).
const PATH_PIECE: usize = libc::PATH_MAX as usize - 1;

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);

/// Splits `a/b/c` into (`a/b`, `c`); the parent of a top-level name is empty.
pub fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn os(p: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(p)
}

impl TargetDir {
    /// Opens (creating if needed) the target directory. Its parents are the
    /// admin's (created if missing, followed like any path they type); the
    /// directory itself is made with `mkdirat` in its parent and opened with
    /// O_NOFOLLOW, so a symlink planted in its place is refused, not followed.
    pub fn create(path: &Path) -> Result<TargetDir, Error> {
        let shown = path.as_os_str().as_bytes();
        let Some(name) = path.file_name() else {
            // `.`, `..` or `/`: an existing directory the admin named; nothing to create.
            let root =
                rfs::open(path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| Error::at(shown, e))?;
            return Ok(TargetDir::with_root(root, path));
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(parent).map_err(|e| Error::at(parent.as_os_str().as_bytes(), e))?;
        let pfd = rfs::open(parent, OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::at(parent.as_os_str().as_bytes(), e))?;
        TargetDir::create_in(pfd.as_fd(), name, path)
    }

    /// Opens (creating if needed) the directory `name` in `parent` as the
    /// target, never through a symlink; `path` is what messages show.
    pub fn create_in(parent: BorrowedFd<'_>, name: &std::ffi::OsStr, path: &Path) -> Result<TargetDir, Error> {
        let shown = path.as_os_str().as_bytes();
        match rfs::mkdirat(parent, name, Mode::from_bits_truncate(0o777)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::at(shown, e)),
        }
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let root = rfs::openat(parent, name, flags, Mode::empty()).map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                let symlink = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|s| rfs::FileType::from_raw_mode(s.st_mode) == rfs::FileType::Symlink);
                let why = if symlink {
                    "is a symlink: thaw never writes through one (someone may have planted it; name the real directory)"
                } else {
                    "exists and is not a directory"
                };
                Error::Refused { path: path.display().to_string(), why: why.into() }
            }
            e => Error::at(shown, e),
        })?;
        Ok(TargetDir::with_root(root, path))
    }

    fn with_root(root: OwnedFd, path: &Path) -> TargetDir {
        TargetDir {
            root,
            path: path.to_path_buf(),
            is_root_user: rustix::process::geteuid().is_root(),
            euid: rustix::process::geteuid().as_raw(),
            egid: rustix::process::getegid().as_raw(),
            umask: current_umask(),
            parents: Default::default(),
        }
    }

    /// The directory's path, for messages only (never opened again by name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's fd, for callers that create beneath it themselves.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens `rel` beneath the root (never through a symlink). A path longer
    /// than PATH_MAX is walked in pieces (see `TargetDir::walk_to`).
    pub fn open(&self, rel: &[u8], flags: OFlags) -> Result<OwnedFd, Error> {
        let (dir, rest) = self.walk_to(rel)?;
        let at = dir.as_ref().map_or(self.root.as_fd(), |d| d.as_fd());
        let p: &[u8] = if rest.is_empty() { b"." } else { rest };
        rfs::openat2(at, os(p), flags | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty(), BENEATH).map_err(|e| Error::at(rel, e))
    }

    /// For a path too long for one openat2 call, opens its leading
    /// directories piece by piece, each piece shorter than PATH_MAX and
    /// resolved beneath the directory before it without following symlinks.
    /// Returns the last directory opened (None: the root) and the rest of the path.
    fn walk_to<'p>(&self, rel: &'p [u8]) -> Result<(Option<OwnedFd>, &'p [u8]), Error> {
        let mut dir: Option<OwnedFd> = None;
        let mut rest = rel;
        while rest.len() > PATH_PIECE {
            let done = rel.len() - rest.len();
            let cut = rest[..=PATH_PIECE].iter().rposition(|&b| b == b'/').filter(|&c| c > 0);
            let cut = cut.ok_or_else(|| Error::at(rel, rustix::io::Errno::NAMETOOLONG))?;
            let at = dir.as_ref().map_or(self.root.as_fd(), |d| d.as_fd());
            let flags = OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW;
            let fd = rfs::openat2(at, os(&rest[..cut]), flags, Mode::empty(), BENEATH).map_err(|e| Error::at(&rel[..done + cut], e))?;
            dir = Some(fd);
            rest = &rest[cut + 1..];
        }
        Ok((dir, rest))
    }

    /// The directory holding `rel`, creating missing parents (mode 0755).
    /// A failure names `rel`, the entry being created, not only its parent.
    pub fn parent(&self, rel: &[u8]) -> Result<Arc<OwnedFd>, Error> {
        let (parent, _) = split_parent(rel);
        if let Some(fd) = self.parents.lock().unwrap().get(parent) {
            return Ok(fd.clone());
        }
        let fd = Arc::new(self.open_parent(rel)?);
        self.keep(parent, fd.clone());
        Ok(fd)
    }

    fn open_parent(&self, rel: &[u8]) -> Result<OwnedFd, Error> {
        let (parent, _) = split_parent(rel);
        let res = match self.open(parent, OFlags::DIRECTORY | OFlags::PATH) {
            Ok(fd) => return Ok(fd),
            Err(Error::At { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                self.mkdir_all(parent).and_then(|()| self.open(parent, OFlags::DIRECTORY | OFlags::PATH))
            }
            Err(e) => Err(e),
        };
        let shown = String::from_utf8_lossy(parent);
        res.map_err(|e| match e {
            Error::At { source, .. } => {
                let why = if matches!(source.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR | libc::EXDEV)) {
                    format!("parent {shown:?} is a symlink or not a directory (thaw never follows symlinks in the target)")
                } else {
                    format!("cannot open its parent {shown:?}")
                };
                Error::Parent { path: String::from_utf8_lossy(rel).into_owned(), why, source }
            }
            Error::Refused { path, why } => {
                Error::Refused { path: String::from_utf8_lossy(rel).into_owned(), why: format!("{path:?}: {why}") }
            }
            other => other,
        })
    }

    /// Creates `rel` and every missing parent as directories, one component
    /// at a time from the directory before it (so any length works).
    pub fn mkdir_all(&self, rel: &[u8]) -> Result<(), Error> {
        let mut dir: Option<OwnedFd> = None;
        let mut start = 0;
        for name in rel.split(|&b| b == b'/') {
            let prefix = &rel[..start + name.len()];
            start += name.len() + 1;
            if name.is_empty() {
                continue;
            }
            let at = dir.as_ref().map_or(self.root.as_fd(), |d| d.as_fd());
            dir = Some(mkdir_open(at, name, prefix)?);
        }
        Ok(())
    }

    /// Creates the directory `rel` (an existing one is kept) in its parent,
    /// which is opened once and kept while it fits in the cache, like the new
    /// directory itself: usually two calls per directory, not two per
    /// component of its path as [`TargetDir::mkdir_all`] does.
    pub fn mkdir(&self, rel: &[u8]) -> Result<(), Error> {
        let (_, name) = split_parent(rel);
        if name.is_empty() || rel.split(|&b| b == b'/').any(|c| c.is_empty()) {
            return self.mkdir_all(rel);
        }
        let pfd = self.parent(rel)?;
        let fd = mkdir_open(pfd.as_fd(), name, rel)?;
        self.keep(rel, Arc::new(fd));
        Ok(())
    }

    fn keep(&self, dir: &[u8], fd: Arc<OwnedFd>) {
        let mut parents = self.parents.lock().unwrap();
        if parents.len() >= PARENTS_KEPT {
            parents.clear();
        }
        parents.insert(dir.to_vec(), fd);
    }

    /// Runs `make`, a creation of `name` in `pfd`; if something is in the
    /// way, removes it (a non-directory: extraction replaces files, as tar
    /// does) and runs it once more.
    fn replacing<T>(&self, pfd: &OwnedFd, name: &[u8], make: impl Fn() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
        match make() {
            Err(rustix::io::Errno::EXIST) => {
                let _ = rfs::unlinkat(pfd, os(name), AtFlags::empty());
                make()
            }
            r => r,
        }
    }

    /// Creates a regular file (replacing a non-directory) and returns it open
    /// read-write, with what it already has for [`TargetDir::set_meta_fd`].
    pub fn create_file(&self, rel: &[u8], mode: u32) -> Result<(File, Fresh), Error> {
        let pfd = self.parent(rel)?;
        let (_, name) = split_parent(rel);
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let m = Mode::from_bits_truncate(mode & 0o777 | 0o600);
        let fd = self.replacing(&pfd, name, || rfs::openat(&pfd, os(name), flags, m)).map_err(|e| Error::at(rel, e))?;
        Ok((File::from(fd), Fresh { mode: m.bits() & !self.umask }))
    }

    /// Creates symlink `rel` pointing at `target` (never followed by thaw).
    pub fn symlink(&self, rel: &[u8], target: &[u8]) -> Result<(), Error> {
        let pfd = self.parent(rel)?;
        let (_, name) = split_parent(rel);
        self.replacing(&pfd, name, || rfs::symlinkat(os(target), &pfd, os(name))).map_err(|e| Error::at(rel, e))
    }

    /// Hard link `rel` to the already created `target` (both beneath the root).
    pub fn hardlink(&self, rel: &[u8], target: &[u8]) -> Result<(), Error> {
        let tfd = self.open(split_parent(target).0, OFlags::DIRECTORY | OFlags::PATH)?;
        let pfd = self.parent(rel)?;
        let (_, name) = split_parent(rel);
        let tname = split_parent(target).1;
        self.replacing(&pfd, name, || rfs::linkat(&tfd, os(tname), &pfd, os(name), AtFlags::empty())).map_err(|e| Error::at(rel, e))
    }

    /// Creates the fifo or device node `e` describes (devices need root).
    pub fn special(&self, e: &Entry) -> Result<(), Error> {
        let pfd = self.parent(&e.path)?;
        let (_, name) = split_parent(&e.path);
        let ft = match e.kind {
            EntryKind::Fifo => rfs::FileType::Fifo,
            EntryKind::CharDev => rfs::FileType::CharacterDevice,
            _ => rfs::FileType::BlockDevice,
        };
        let dev = rfs::makedev(e.dev_major, e.dev_minor);
        self.replacing(&pfd, name, || rfs::mknodat(&pfd, os(name), ft, Mode::from_bits_truncate(e.mode), dev))
            .map_err(|err| Error::at(&e.path, err))
    }

    /// Applies owner (when root), mode, xattrs and mtime to an open file or
    /// directory; `fresh` skips what a file just created already has.
    pub fn set_meta_fd(&self, fd: BorrowedFd<'_>, e: &Entry, fresh: Option<Fresh>) -> Result<(), Error> {
        let at = |err: rustix::io::Errno| Error::at(&e.path, err);
        // A new file belongs to us (root: 0/0) already.
        let owned = fresh.is_some() && e.uid == self.euid && e.gid == self.egid;
        if self.is_root_user && !owned {
            rfs::fchown(fd, Some(rfs::Uid::from_raw(e.uid)), Some(rfs::Gid::from_raw(e.gid))).map_err(at)?;
        }
        // chown clears setuid/setgid bits, so the mode goes after it.
        if fresh.is_none_or(|f| f.mode != e.mode || !owned) {
            rfs::fchmod(fd, Mode::from_bits_truncate(e.mode)).map_err(at)?;
        }
        // thaw's own markers are never taken from an archive: a crafted entry
        // could otherwise make itself a stub of another entry.
        for (k, v) in e.xattrs.iter().filter(|(k, _)| !is_marker_name(k)) {
            let name = std::ffi::CString::new(k.clone()).map_err(|_| Error::at(&e.path, std::io::Error::other("NUL in xattr name")))?;
            match rfs::fsetxattr(fd, name.as_c_str(), v, rfs::XattrFlags::empty()) {
                Ok(()) => {}
                // Not permitted or not supported here (e.g. trusted.* as a user): skip, like tar.
                Err(rustix::io::Errno::PERM | rustix::io::Errno::NOTSUP | rustix::io::Errno::ACCESS) => {}
                Err(err) => return Err(at(err)),
            }
        }
        rfs::futimens(fd, &entry_times(e)).map_err(at)
    }

    /// Metadata of a directory, symlink, fifo or device node. Symlinks get
    /// owner and mtime only; nodes other than directories are set through
    /// their parent with the `*at` calls (no fd of theirs is opened).
    pub fn set_meta_path(&self, e: &Entry) -> Result<(), Error> {
        if e.kind == EntryKind::Dir {
            let fd = self.open(&e.path, OFlags::DIRECTORY | OFlags::RDONLY)?;
            return self.set_meta_fd(fd.as_fd(), e, None);
        }
        let pfd = self.parent(&e.path)?;
        let (_, name) = split_parent(&e.path);
        let at = |err: rustix::io::Errno| Error::at(&e.path, err);
        if self.is_root_user {
            rfs::chownat(&*pfd, os(name), Some(rfs::Uid::from_raw(e.uid)), Some(rfs::Gid::from_raw(e.gid)), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(at)?;
        }
        if e.kind != EntryKind::Symlink {
            rfs::chmodat(&*pfd, os(name), Mode::from_bits_truncate(e.mode), AtFlags::empty()).map_err(at)?;
        }
        rfs::utimensat(&*pfd, os(name), &entry_times(e), AtFlags::SYMLINK_NOFOLLOW).map_err(at)
    }
}

/// Makes directory `name` in `at` (an existing one is kept) and opens it
/// (O_PATH, never through a symlink); `shown` names it in errors.
fn mkdir_open(at: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<OwnedFd, Error> {
    match rfs::mkdirat(at, os(name), Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(Error::at(shown, e)),
    }
    let flags = OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    rfs::openat2(at, os(name), flags, Mode::empty(), BENEATH).map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
            Error::Refused { path: String::from_utf8_lossy(shown).into(), why: "exists and is not a directory".into() }
        }
        e => Error::at(shown, e),
    })
}

/// True for the xattr names thaw keeps its stub markers under.
fn is_marker_name(name: &[u8]) -> bool {
    // `trusted.thaw` and `trusted.thaw.origin` (and any future trusted.thaw*).
    name.starts_with(crate::tree::marker::MARKER_XATTR.as_bytes()) || name == crate::tree::marker::LEGACY_MARKER_XATTR.as_bytes()
}

/// The timestamps to set for `e`: its mtime, and the atime left as it is.
pub fn entry_times(e: &Entry) -> Timestamps {
    let t = Timespec { tv_sec: e.mtime, tv_nsec: i64::from(e.mtime_nsec) as _ };
    Timestamps { last_access: Timespec { tv_sec: 0, tv_nsec: rfs::UTIME_OMIT }, last_modification: t }
}
