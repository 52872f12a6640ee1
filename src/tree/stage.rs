//! Where a lazily restored tree lives. The stage `PARENT/.NAME.thaw/` beside
//! `DIR` holds the stubs (`tree/`) and the bookkeeping; while `thaw serve`
//! runs, `tree/` is bind-mounted over `DIR` with a fanotify mount mark, so
//! every access through `DIR` is watched while thaw itself works through the
//! unwatched stage. When nothing serves it, `DIR` is an empty directory: no
//! reader can ever see a stub's holes as zeros through it.
//!
//! thaw runs as root beside directories other users can write (`/tmp`), so a
//! [`Stage`] holds file descriptors, not paths: `PARENT` as the admin named
//! it, `DIR` and the stage opened without following a symlink, the stage
//! checked to be a directory of ours that nobody else can enter (0700), and
//! every file in it opened relative to it with `O_NOFOLLOW`. The stub tree is
//! walked the same way ([`Stage::tree_files`]), since users can rename and
//! plant symlinks in the served tree.

use super::marker::{Marker, MARKER_XATTR};
use super::Error;
use crate::archive::Archive;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Version of the stub markers a stage's tree carries. 2: `trusted.thaw`
/// bound to the inode (see [`super::marker`]). Stages from thaw 0.1 have no
/// such field and read as 1: their `user.thaw` markers can be forged.
pub const STUBS_VERSION: u32 = 2;

/// Names inside the stage directory.
pub const TREE: &str = "tree";
/// The [`StageInfo`] of the stage, as JSON.
pub const INFO: &str = "archive.json";
/// The daemon's counters, rewritten as it serves, for `thaw status`.
pub const STATS: &str = "stats.json";
/// The file whose lock one daemon (or hydrate, or upgrade) holds at a time.
pub const LOCK: &str = "lock";
/// A remote archive's last bytes (index and seek table) as `populate`
/// fetched them, so `serve` need not fetch them again.
pub const TAIL: &str = "archive-tail";

/// Beneath a directory fd, never through a symlink or a mount point.
const BENEATH: ResolveFlags =
    ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS).union(ResolveFlags::NO_XDEV);

/// The stage of one tree, `PARENT/.NAME.thaw/` beside `DIR`, worked on through
/// fds opened without following symlinks (see the module doc).
#[derive(Debug)]
pub struct Stage {
    /// The directory users see, as the admin named it.
    pub dir: PathBuf,
    /// `DIR`'s parent (absolute) and last component.
    parent: PathBuf,
    name: OsString,
    /// `PARENT/.NAME.thaw`, for messages (and the path accessors kept for the daemon).
    root: PathBuf,
    fds: OnceLock<Fds>,
}

/// The open directories a stage works through.
#[derive(Debug)]
struct Fds {
    /// `DIR`'s parent, opened as the admin named it (O_PATH).
    parent: OwnedFd,
    /// `DIR` itself (O_PATH), a directory and not a symlink. While served,
    /// this is the mounted tree if the stage was opened after the mount.
    dir: OwnedFd,
    /// The stage directory: ours, mode 0700.
    stage: OwnedFd,
    /// `tree/` inside it.
    tree: OwnedFd,
}

/// What `populate` records about the archive a stage came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StageInfo {
    /// The archive's absolute path or its URL, which `serve` and `status` open again.
    pub archive: PathBuf,
    /// The archive's id in hex: the archive found there later must match.
    pub id: String,
    /// The archive's format version.
    pub format_version: u32,
    /// Marker version of the stubs ([`STUBS_VERSION`]); 1 when absent (thaw 0.1).
    #[serde(default = "legacy_stubs")]
    pub stubs_version: u32,
    /// For a remote archive, the object's version (ETag, or Last-Modified
    /// and size) `populate` read: every later request is conditional on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_version: Option<String>,
}

fn legacy_stubs() -> u32 {
    1
}

/// The tree's lock, held until dropped: one daemon (or offline hydrate, or
/// upgrade) per tree.
#[derive(Debug)]
pub struct StageLock {
    _file: OwnedFd,
}

/// A regular file of the stub tree as [`Stage::tree_files`] found it.
#[derive(Debug, Clone)]
pub struct TreeFile {
    /// Path relative to the tree (and to `DIR` while served).
    pub rel: Vec<u8>,
    /// Device, with `ino` what [`open_tree_file`] checks to be the same file.
    pub dev: u64,
    /// Inode number; a marker must name this inode to count.
    pub ino: u64,
    /// Apparent size in bytes.
    pub size: u64,
    /// 512-byte blocks allocated (what is on disk of a sparse stub).
    pub blocks: u64,
    /// Owner uid, as the walk saw it.
    pub uid: u32,
    /// Group gid, as the walk saw it.
    pub gid: u32,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, u32),
    /// Set on stubs that are not complete yet (None also for a malformed one).
    pub marker: Option<Marker>,
}

impl TreeFile {
    /// The relative path as text for messages (invalid UTF-8 replaced).
    pub fn rel_lossy(&self) -> String {
        String::from_utf8_lossy(&self.rel).into_owned()
    }
}

/// `DIR`'s absolute parent and last component.
fn locate(dir: &Path) -> Result<(PathBuf, OsString), Error> {
    let abs = std::path::absolute(dir).map_err(|e| Error::at(dir.as_os_str().as_bytes(), e))?;
    match (abs.parent(), abs.file_name()) {
        (Some(p), Some(n)) => Ok((p.to_path_buf(), n.to_os_string())),
        _ => Err(Error::Refused { path: dir.display().to_string(), why: "names no directory thaw can put a stage beside".into() }),
    }
}

fn stage_name(name: &OsStr) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(".thaw");
    s
}

fn refused(path: &Path, why: impl Into<String>) -> Error {
    Error::Refused { path: path.display().to_string(), why: why.into() }
}

/// `mkdirat` that is happy if something is already there (it is checked when opened).
fn make_dir(at: BorrowedFd<'_>, name: &OsStr, mode: u32, shown: &Path) -> Result<(), Error> {
    match rfs::mkdirat(at, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::at(shown.as_os_str().as_bytes(), e)),
    }
}

/// What sits at `name` when it could not be opened as a directory.
fn describe(at: BorrowedFd<'_>, name: &OsStr) -> &'static str {
    match rfs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW).map(|s| FileType::from_raw_mode(s.st_mode)) {
        Ok(FileType::Symlink) => "is a symlink (thaw never follows one here; someone may have planted it: remove it)",
        Ok(FileType::Directory) => "is a directory thaw cannot open",
        Ok(_) => "is not a directory",
        Err(_) => "cannot be looked at",
    }
}

/// Opens the directory `name` in `at` for reading, never through a symlink.
fn open_dir(at: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<OwnedFd, Error> {
    rfs::openat(at, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => refused(shown, describe(at, name)),
        e => Error::at(shown.as_os_str().as_bytes(), e),
    })
}

/// Checks that an opened stage directory is ours and closed to everyone else.
fn check_private(fd: BorrowedFd<'_>, shown: &Path) -> Result<(), Error> {
    let st = rfs::fstat(fd).map_err(|e| Error::at(shown.as_os_str().as_bytes(), e))?;
    let me = rustix::process::geteuid().as_raw();
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(refused(shown, "is not a directory"));
    }
    if st.st_uid != me {
        return Err(refused(
            shown,
            format!(
                "is owned by uid {}, not uid {me} who runs thaw: someone else made it, so it cannot be trusted (remove it and populate again)",
                st.st_uid
            ),
        ));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(refused(
            shown,
            format!("has mode {:04o}: others can reach into it; a stage must be 0700 (`chmod 700` it if you made it)", st.st_mode & 0o7777),
        ));
    }
    Ok(())
}

/// The path of an fd in `/proc/self/fd`, to reach an O_PATH fd's inode.
fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Opens the inode an O_PATH fd names with real access (`flags`). The type
/// was checked on the O_PATH fd, so this can never open a device or a fifo.
pub fn reopen(fd: BorrowedFd<'_>, flags: OFlags) -> std::io::Result<File> {
    let flags = flags & !OFlags::CREATE;
    rfs::open(proc_path(fd), flags | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty()).map(File::from).map_err(Into::into)
}

/// Opens the regular file at `rel` beneath `root` with `flags`, never
/// through a symlink or a mount; `None` if there is no regular file there.
pub fn open_rel(root: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> Result<Option<File>, Error> {
    let at = |e: std::io::Error| Error::at(rel, e);
    let fd = match rfs::openat2(root, OsStr::from_bytes(rel), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty(), BENEATH) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::XDEV) => return Ok(None),
        Err(e) => return Err(at(e.into())),
    };
    let st = rfs::fstat(&fd).map_err(|e| at(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    reopen(fd.as_fd(), flags).map(Some).map_err(at)
}

/// Opens the regular file `f` found by [`Stage::tree_files`] beneath `root`
/// (the tree, or `DIR` while served) with `flags`. `None` when that path no
/// longer leads to that inode without a symlink: renamed, replaced, swapped.
pub fn open_tree_file(root: BorrowedFd<'_>, f: &TreeFile, flags: OFlags) -> Result<Option<File>, Error> {
    let at = |e: std::io::Error| Error::at(&f.rel, e);
    let fd = match rfs::openat2(root, OsStr::from_bytes(&f.rel), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty(), BENEATH)
    {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::XDEV) => return Ok(None),
        Err(e) => return Err(at(e.into())),
    };
    let st = rfs::fstat(&fd).map_err(|e| at(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || (st.st_dev, st.st_ino) != (f.dev, f.ino) {
        return Ok(None);
    }
    reopen(fd.as_fd(), flags).map(Some).map_err(at)
}

/// Reads the stub marker of the inode an O_PATH fd names (None: no marker, or a malformed one).
fn marker_of(fd: BorrowedFd<'_>) -> Option<Marker> {
    let mut buf = [0u8; 160];
    let n = rfs::getxattr(proc_path(fd), MARKER_XATTR, &mut buf).ok()?;
    Marker::parse(&buf[..n])
}

impl Stage {
    /// A stage named by path only, opened (safely) on first use. Prefer
    /// [`Stage::open`], which reports an unsafe stage at once.
    pub fn new(dir: &Path) -> Stage {
        let (parent, name) = locate(dir).unwrap_or_else(|_| (PathBuf::from("/"), OsString::new()));
        let root = parent.join(stage_name(&name));
        Stage { dir: dir.to_path_buf(), parent, name, root, fds: OnceLock::new() }
    }

    /// Opens the stage of `dir` for `populate`, creating `DIR`, the stage
    /// (0700) and `tree/` where missing. Refuses a `DIR` that is a symlink,
    /// and a stage that is a symlink, not ours, or open to others.
    pub fn create(dir: &Path) -> Result<Stage, Error> {
        Stage::opened(dir, true)
    }

    /// Opens the existing stage of `dir` (everything but `populate`), with the same checks.
    pub fn open(dir: &Path) -> Result<Stage, Error> {
        Stage::opened(dir, false)
    }

    /// [`Stage::new`] with its fds opened now (`create`: make what is missing),
    /// so an unusable `dir` or stage is reported at once.
    fn opened(dir: &Path, create: bool) -> Result<Stage, Error> {
        locate(dir)?;
        let s = Stage::new(dir);
        let fds = s.open_fds(create)?;
        let _ = s.fds.set(fds);
        Ok(s)
    }

    fn open_fds(&self, create: bool) -> Result<Fds, Error> {
        if self.name.is_empty() {
            return Err(refused(&self.dir, "names no directory thaw can put a stage beside"));
        }
        // The parent is the admin's choice: followed like any path they type.
        let parent = rfs::open(&self.parent, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::at(self.parent.as_os_str().as_bytes(), e))?;
        if create {
            make_dir(parent.as_fd(), &self.name, 0o755, &self.dir)?;
        }
        let dir = self.open_dir_path(parent.as_fd())?;
        let sname = stage_name(&self.name);
        if create {
            make_dir(parent.as_fd(), &sname, 0o700, &self.root)?;
        }
        let stage = match open_dir(parent.as_fd(), &sname, &self.root) {
            Err(Error::At { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(refused(&self.dir, format!("not populated (no stage {})", self.root.display())));
            }
            r => r?,
        };
        check_private(stage.as_fd(), &self.root)?;
        let tree_path = self.tree();
        if create {
            // Mode 0755: it is what users see at DIR while served (the stage keeps them out otherwise).
            make_dir(stage.as_fd(), OsStr::new(TREE), 0o755, &tree_path)?;
        }
        let tree = open_dir(stage.as_fd(), OsStr::new(TREE), &tree_path)?;
        Ok(Fds { parent, dir, stage, tree })
    }

    /// `DIR` itself, O_PATH, refusing a symlink or a non-directory.
    fn open_dir_path(&self, parent: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
        let fd = rfs::openat(parent, &self.name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::at(self.dir.as_os_str().as_bytes(), e))?;
        let st = rfs::fstat(&fd).map_err(|e| Error::at(self.dir.as_os_str().as_bytes(), e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Ok(fd),
            FileType::Symlink => Err(refused(
                &self.dir,
                "is a symlink: thaw never serves or populates through one (someone may have planted it; name the real directory)",
            )),
            _ => Err(refused(&self.dir, "is not a directory")),
        }
    }

    fn fds(&self) -> Result<&Fds, Error> {
        if let Some(f) = self.fds.get() {
            return Ok(f);
        }
        let f = self.open_fds(false)?;
        Ok(self.fds.get_or_init(|| f))
    }

    /// `DIR`'s parent, as the admin named it (O_PATH).
    pub fn parent_fd(&self) -> Result<BorrowedFd<'_>, Error> {
        Ok(self.fds()?.parent.as_fd())
    }

    /// `DIR`'s name in [`Stage::parent_fd`].
    pub fn dir_name(&self) -> &OsStr {
        &self.name
    }

    /// `DIR` (O_PATH), as it was when the stage was opened.
    pub fn dir_fd(&self) -> Result<BorrowedFd<'_>, Error> {
        Ok(self.fds()?.dir.as_fd())
    }

    /// The stage directory (ours, 0700).
    pub fn stage_fd(&self) -> Result<BorrowedFd<'_>, Error> {
        Ok(self.fds()?.stage.as_fd())
    }

    /// The stub tree, unwatched: only thaw itself works through it.
    pub fn tree_fd(&self) -> Result<BorrowedFd<'_>, Error> {
        Ok(self.fds()?.tree.as_fd())
    }

    /// The stage directory, beside `DIR` (for messages).
    pub fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// Path of the stub tree. For messages; thaw itself works through [`Stage::tree_fd`].
    pub fn tree(&self) -> PathBuf {
        self.root.join(TREE)
    }

    /// Path of `archive.json`. Use [`Stage::info`] to read it.
    pub fn info_path(&self) -> PathBuf {
        self.root.join(INFO)
    }

    /// Path of `stats.json`. Use [`Stage::read_file`] / [`Stage::write_file`].
    pub fn stats_path(&self) -> PathBuf {
        self.root.join(STATS)
    }

    /// Path of the lock. Use [`Stage::lock`].
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK)
    }

    /// True if the stage is there, safe, and populated.
    pub fn exists(&self) -> bool {
        self.fds().is_ok_and(|f| rfs::statat(&f.stage, INFO, AtFlags::SYMLINK_NOFOLLOW).is_ok())
    }

    fn check_name(&self, name: &str) -> Result<(), Error> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(refused(&self.root, format!("{name:?} is not a stage file name")));
        }
        Ok(())
    }

    /// Reads the stage file `name` (never through a symlink); `None` if it is absent.
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        self.check_name(name)?;
        let shown = self.root.join(name);
        let at = |e: std::io::Error| Error::at(shown.as_os_str().as_bytes(), e);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rfs::openat(self.stage_fd()?, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => return Err(refused(&shown, "is a symlink")),
            Err(e) => return Err(at(e.into())),
        };
        let st = rfs::fstat(&fd).map_err(|e| at(e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refused(&shown, "is not a regular file"));
        }
        let mut out = Vec::new();
        File::from(fd).read_to_end(&mut out).map_err(at)?;
        Ok(Some(out))
    }

    /// Replaces the stage file `name` atomically: a new temp file (O_EXCL,
    /// O_NOFOLLOW) in the stage, then `renameat` over `name`.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        self.check_name(name)?;
        let stage = self.stage_fd()?;
        let tmp = format!(".{name}.{}.{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let shown = self.root.join(name);
        let at = |e: std::io::Error| Error::at(shown.as_os_str().as_bytes(), e);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(stage, tmp.as_str(), flags, Mode::from_bits_truncate(0o600)).map_err(|e| at(e.into()))?;
        let written = File::from(fd).write_all(bytes).and_then(|()| rfs::renameat(stage, tmp.as_str(), stage, name).map_err(Into::into));
        if written.is_err() {
            let _ = rfs::unlinkat(stage, tmp.as_str(), AtFlags::empty());
        }
        written.map_err(at)
    }

    /// Takes the tree's lock (exclusive, non-blocking): a daemon holds it
    /// while serving, `hydrate` and `upgrade` while they write stubs.
    pub fn lock(&self) -> Result<StageLock, Error> {
        let shown = self.lock_path();
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(self.stage_fd()?, LOCK, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| Error::at(shown.as_os_str().as_bytes(), e))?;
        match rfs::flock(&fd, rfs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(StageLock { _file: fd }),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                Err(refused(&self.dir, "another thaw daemon holds its lock (it is being served, or hydrated or upgraded by another thaw)"))
            }
            Err(e) => Err(Error::at(shown.as_os_str().as_bytes(), e)),
        }
    }

    /// Reads `archive.json`; refuses a stage that was never populated.
    pub fn info(&self) -> Result<StageInfo, Error> {
        let p = self.info_path();
        let Some(text) = self.read_file(INFO)? else {
            return Err(refused(&self.dir, format!("not populated ({} is missing)", p.display())));
        };
        serde_json::from_slice(&text).map_err(|e| refused(&p, format!("unreadable stage info: {e}")))
    }

    /// Replaces `archive.json` atomically (see [`Stage::write_file`]).
    pub fn write_info(&self, info: &StageInfo) -> Result<(), Error> {
        self.write_file(INFO, &serde_json::to_vec_pretty(info).expect("serializable"))
    }

    /// Checks that this stage was populated from `archive`.
    pub fn check_archive(&self, archive: &Archive) -> Result<StageInfo, Error> {
        let info = self.info()?;
        if info.stubs_version < STUBS_VERSION {
            return Err(Error::Refused {
                path: self.dir.display().to_string(),
                why: format!(
                    "populated by thaw 0.1, whose stub markers (user.thaw) any user can forge; \
                     run `thaw upgrade {}` as root while it is not served",
                    self.dir.display()
                ),
            });
        }
        if info.id != archive.id_hex() {
            return Err(Error::Refused {
                path: self.dir.display().to_string(),
                why: format!(
                    "populated from archive {} ({}), not {} ({}); if it is another archive of the same tree \
                     (e.g. its format 2 conversion), run `thaw upgrade {} --to {}` (needs the old archive too)",
                    info.id,
                    info.archive.display(),
                    archive.id_hex(),
                    archive.source_name(),
                    self.dir.display(),
                    archive.source_name()
                ),
            });
        }
        let same_place = info.archive.as_os_str() == archive.source_name().as_str();
        if let (true, Some(was), Some(now)) = (same_place, &info.archive_version, archive.source_version()) {
            if *was != now {
                return Err(Error::Refused {
                    path: self.dir.display().to_string(),
                    why: format!(
                        "populated from {} at version {was}, but it is now {now}: the object was replaced",
                        info.archive.display()
                    ),
                });
            }
        }
        Ok(info)
    }

    /// True while `DIR` shows the stub tree (a daemon is serving it). `DIR`
    /// is looked up afresh in its parent, without following a symlink.
    pub fn is_served(&self) -> bool {
        let Ok(f) = self.fds() else { return false };
        match (rfs::statat(&f.parent, &self.name, AtFlags::SYMLINK_NOFOLLOW), rfs::fstat(&f.tree)) {
            (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
            _ => false,
        }
    }

    /// `DIR` opened afresh (O_PATH) while it shows the served tree: reads
    /// through it raise the daemon's events. Refused when it is not served.
    pub fn served_dir(&self) -> Result<OwnedFd, Error> {
        let f = self.fds()?;
        let fd = self.open_dir_path(f.parent.as_fd())?;
        let at = |e| Error::at(self.dir.as_os_str().as_bytes(), e);
        let (a, b) = (rfs::fstat(&fd).map_err(at)?, rfs::fstat(&f.tree).map_err(at)?);
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
            return Err(refused(&self.dir, "is not served"));
        }
        Ok(fd)
    }

    /// True if `DIR` has no entries (it is empty whenever it is not served).
    pub fn dir_is_empty(&self) -> Result<bool, Error> {
        let f = self.fds()?;
        let fd = open_dir(f.parent.as_fd(), &self.name, &self.dir)?;
        let dir = rfs::Dir::new(fd).map_err(|e| Error::at(self.dir.as_os_str().as_bytes(), e))?;
        for ent in dir {
            let ent = ent.map_err(|e| Error::at(self.dir.as_os_str().as_bytes(), e))?;
            if !matches!(ent.file_name().to_bytes(), b"." | b"..") {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every regular file under `tree/`, each inode once, with its marker.
    /// Directories are opened beneath the tree without crossing a symlink or
    /// a mount; other entries only with O_PATH (no side effect, whatever
    /// they are). Symlinks, devices and fifos are skipped; so is anything
    /// renamed away while the walk runs.
    pub fn tree_files(&self) -> Result<Vec<TreeFile>, Error> {
        let tree = self.tree_fd()?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(rel) = stack.pop() {
            let at = |e: rustix::io::Errno| Error::at(if rel.is_empty() { &b"."[..] } else { &rel }, e);
            let p: &[u8] = if rel.is_empty() { b"." } else { &rel };
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let dfd = match rfs::openat2(tree, OsStr::from_bytes(p), flags, Mode::empty(), BENEATH) {
                Ok(fd) => fd,
                // Renamed or replaced since it was listed.
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::XDEV)
                    if !rel.is_empty() =>
                {
                    continue
                }
                Err(e) => return Err(at(e)),
            };
            let listing = rfs::Dir::read_from(&dfd).map_err(at)?;
            for ent in listing {
                let ent = ent.map_err(at)?;
                let name = ent.file_name();
                if matches!(name.to_bytes(), b"." | b"..") {
                    continue;
                }
                let mut r = rel.clone();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(name.to_bytes());
                let fd = match rfs::openat(&dfd, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(rustix::io::Errno::NOENT) => continue,
                    Err(e) => return Err(Error::at(&r, e)),
                };
                let st = rfs::fstat(&fd).map_err(|e| Error::at(&r, e))?;
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => stack.push(r),
                    FileType::RegularFile if seen.insert((st.st_dev, st.st_ino)) => out.push(TreeFile {
                        rel: r,
                        dev: st.st_dev,
                        ino: st.st_ino,
                        size: st.st_size as u64,
                        blocks: st.st_blocks as u64,
                        uid: st.st_uid,
                        gid: st.st_gid,
                        mtime: (st.st_mtime, st.st_mtime_nsec as u32),
                        marker: marker_of(fd.as_fd()),
                    }),
                    _ => {}
                }
            }
        }
        Ok(out)
    }
}
