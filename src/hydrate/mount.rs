//! The served mount: the stub tree cloned into a detached mount, watched
//! (each stub's inode marked before, or the clone itself marked), and only
//! then moved over `DIR`, so no reader can reach an unwatched stub through
//! `DIR`. Dropping a [`ServedMount`] detaches
//! `DIR` and hands over to the guard, so shutdown order follows drop order.

use super::events::WATCH;
use super::Error;
use crate::sys::fanotify::Fanotify;
use crate::tree::stage::Stage;
use rustix::fs::{self as rfs, AtFlags, StatxFlags};
use rustix::mount::{self as rmount, MoveMountFlags, OpenTreeFlags, UnmountFlags};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// How the guard process is started.
#[derive(Debug, Clone)]
pub struct GuardOptions {
    /// The `thaw` executable (run as `thaw __guard`).
    pub exe: PathBuf,
    /// Kill the processes that still hold a stub of `DIR` open or mapped when
    /// the daemon is gone (otherwise their reads fail with EIO while they live).
    pub kill_readers: bool,
}

/// What carries the daemon's marks once serving (see [`super::marks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// An inode mark on each stub.
    Stubs,
    /// One mark on the served mount.
    Mount,
}

/// The error for a mark the kernel refused.
pub fn watch_error(stage: &Stage, e: std::io::Error) -> Error {
    Error::Setup(format!("{}: cannot watch it: {e} (pre-content marks need ext4, xfs or btrfs, not tmpfs)", stage.tree().display()))
}

/// `DIR` showing the watched stub tree, for as long as this lives.
pub struct ServedMount {
    dir: PathBuf,
    id: Option<u64>,
    guard: Option<Child>,
}

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8): a 64-bit mount id that is never reused,
/// unlike `STATX_MNT_ID`, whose numbers come back for new mounts (a guard
/// would then take a restarted daemon's mount for its dead one's).
const MNT_ID_UNIQUE: StatxFlags = StatxFlags::from_bits_retain(0x4000);

/// Unique id of the mount the file at `at` (relative to `dirfd`) is on.
pub fn mount_id_at(dirfd: impl std::os::fd::AsFd, at: &Path, flags: AtFlags) -> Option<u64> {
    let s = rfs::statx(dirfd, at, flags, MNT_ID_UNIQUE).ok()?;
    (s.stx_mask & MNT_ID_UNIQUE.bits() != 0).then_some(s.stx_mnt_id)
}

/// Unique id of the mount `path` is on (not following a final symlink).
pub fn mount_id(path: &Path) -> Option<u64> {
    mount_id_at(rfs::CWD, path, AtFlags::SYMLINK_NOFOLLOW)
}

impl ServedMount {
    /// Puts the watched clone of the stage's tree over its `DIR` and starts
    /// the guard. The clone is made from the tree's fd and moved onto `DIR`
    /// by name relative to the fd of DIR's parent, without following a
    /// symlink: a `DIR` swapped for a symlink is refused, never followed.
    ///
    /// With [`Watched::Mount`] the mark goes on the clone before it is moved;
    /// with [`Watched::Stubs`] the caller has marked every stub already.
    pub fn attach(fan: &Fanotify, stage: &Stage, watched: Watched, guard: Option<&GuardOptions>) -> Result<ServedMount, Error> {
        let dir = stage.dir.clone();
        let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
        let clone = rmount::open_tree(stage.tree_fd()?, "", flags).map_err(|e| Error::io(stage.tree().display(), e))?;
        if watched == Watched::Mount {
            fan.mark_mount_fd(clone.as_fd(), WATCH).map_err(|e| watch_error(stage, e))?;
        }
        let parent = stage.parent_fd()?;
        let st = rfs::statat(parent, stage.dir_name(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| Error::io(dir.display(), e))?;
        if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::Directory {
            return Err(Error::Setup(format!("{}: not a directory (a symlink?): refusing to mount over it", dir.display())));
        }
        rmount::move_mount(clone.as_fd(), "", parent, stage.dir_name(), MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
            .map_err(|e| Error::io(dir.display(), e))?;
        let id = mount_id_at(parent, Path::new(stage.dir_name()), AtFlags::SYMLINK_NOFOLLOW);
        let mut m = ServedMount { dir, id, guard: None };
        if let (Some(g), Some(id)) = (guard, id) {
            m.guard = spawn_guard(fan, g, &m.dir, id);
        }
        Ok(m)
    }

    /// Detaches `DIR` if our mount is still there: new opens then see the
    /// empty directory, while files already open keep being served.
    pub fn detach(&mut self) {
        if self.id.is_some() && mount_id(&self.dir) == self.id {
            if let Err(e) = rmount::unmount(&self.dir, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
                tracing::error!("{}: cannot unmount: {e}", self.dir.display());
            }
        }
    }

    /// A clean stop: detaches `DIR` and tells the guard we answered every
    /// event we read. It does not wait for the guard, which stays (answering
    /// EIO) only while some process still holds a stub open.
    pub fn stop(mut self) {
        self.detach();
        if let Some(mut g) = self.guard.take() {
            if let Some(mut pipe) = g.stdin.take() {
                use std::io::Write;
                let _ = pipe.write_all(super::guard::CLEAN_STOP);
            }
        }
    }
}

impl Drop for ServedMount {
    /// Anything but [`ServedMount::stop`] (an error, a panic) is treated by
    /// the guard as the daemon's death.
    fn drop(&mut self) {
        self.detach();
        if let Some(g) = self.guard.as_mut() {
            drop(g.stdin.take());
        }
    }
}

/// Starts `thaw __guard`, which holds the fanotify group too, so that the
/// group (and its marks) outlive us until the guard has dealt with readers.
fn spawn_guard(fan: &Fanotify, g: &GuardOptions, dir: &Path, mount: u64) -> Option<Child> {
    let inherit = match fan.dup_inheritable() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!("cannot start the unmount guard (dup of the fanotify group: {e})");
            return None;
        }
    };
    let mut cmd = Command::new(&g.exe);
    cmd.arg("__guard").arg(dir).arg(mount.to_string()).arg("--fanotify-fd").arg(inherit.as_raw_fd().to_string());
    if !g.kill_readers {
        cmd.arg("--no-kill-readers");
    }
    use std::os::unix::process::CommandExt;
    let child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).process_group(0).spawn();
    drop(inherit); // the child has its copy
    child.map_err(|e| tracing::warn!("cannot start the unmount guard: {e}")).ok()
}
