//! The guard: a small process (`thaw __guard`) that outlives the daemon.
//!
//! It holds its own copy of the daemon's fanotify group, so the group and its
//! marks stay alive when the daemon dies, however it dies (even SIGKILL): no
//! reader ever sees a stub's holes as zeros. When the daemon's pipe closes,
//! the guard answers every event with EIO (those still queued, those the
//! daemon read but never answered, and new ones), kills every process that
//! holds a file of the served mount open or mapped (unless told not to), and
//! detaches `DIR`. Without killing, it lives on, answering EIO, until the
//! last such process lets go; only then do the group and its marks go.
//!
//! What the kernel could do instead: restartable events (proposed upstream as
//! `FAN_RESTARTABLE_EVENTS` with a separate queue fd; not merged as of 6.18).
//! Events read but not answered would go back to the queue when the reader
//! dies, so a restarted daemon would pick up where the dead one stopped and
//! readers would see neither EIO nor zeros. `serve` probes for the flag at
//! start ([`Fanotify::restartable_events_supported`]) and logs it when found.

use super::mount::mount_id;
use crate::sys::fanotify::{Fanotify, Response};
use rustix::fs::{self as rfs, AtFlags};
use rustix::mount::{self as rmount, UnmountFlags};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Highest fd number the daemon can give an event (it caps its own limit to this).
pub const MAX_EVENT_FD: i32 = 1 << 16;

/// What a daemon that stops cleanly writes to the guard before closing the pipe.
pub const CLEAN_STOP: &[u8] = b"stop\n";

/// Runs the guard; returns the process exit code. After a clean stop it only
/// answers EIO to processes that still hold stubs; after the daemon's death
/// it also answers what the daemon left unanswered and, when `kill_readers`,
/// kills every process that holds a stub.
pub fn guard_main(dir: &Path, mount: u64, fan: Option<Fanotify>, kill_readers: bool) -> i32 {
    let mut said = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut said);
    let died = said != CLEAN_STOP;
    // The daemon is gone: from now on every event is ours.
    if let (Some(fan), true) = (&fan, died) {
        deny_orphans(fan);
    }
    let fan = fan.map(std::sync::Arc::new);
    if let Some(fan) = fan.clone() {
        std::thread::spawn(move || deny_forever(&fan, mount));
    }
    let kill = died && kill_readers;
    let mut killed = if kill { kill_holders(mount) } else { 0 };
    let mut code = 0;
    if mount_id(dir) == Some(mount) {
        match rmount::unmount(dir, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
            Ok(()) => tracing::warn!("the daemon for {} ended without unmounting it; unmounted", dir.display()),
            Err(e) => {
                tracing::error!("{}: cannot unmount: {e}", dir.display());
                code = 1;
            }
        }
    }
    if kill {
        killed += kill_holders(mount);
    }
    if killed > 0 {
        tracing::warn!("killed {killed} process(es) that held stubs of {} when its daemon died", dir.display());
    }
    // Keep the group (and so the marks) while anyone can still read a stub.
    while fan.is_some() && !holders(mount).is_empty() {
        std::thread::sleep(Duration::from_millis(200));
    }
    code
}

/// Answers with EIO the events the daemon read and never answered. The
/// kernel finds a pending event by its fd number alone, so every number the
/// daemon could have used is tried; numbers with no pending event fail
/// harmlessly (ENOENT).
fn deny_orphans(fan: &Fanotify) {
    for n in 0..=MAX_EVENT_FD {
        let _ = fan.respond_to_number(n, Response::DenyErrno(libc::EIO));
    }
}

/// Answers with EIO, from now on, every event of a read through the served
/// mount. With inode marks on the stubs (see `hydrate::marks`), reads by
/// other ways raise our events too: root's tools working in the stage (which
/// never got events under a mount mark) and a restarted daemon's new mount,
/// whose own group hydrates the stub. Those are allowed: the group that
/// serves them, if any, decides.
fn deny_forever(fan: &Fanotify, mount: u64) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match fan.wait_readable(Some(Duration::from_millis(500))) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let Ok(events) = fan.read_events(&mut buf) else { return };
        for ev in events {
            if let (Some(fd), true) = (ev.fd(), ev.needs_response()) {
                let ours = super::mount::mount_id_at(fd, Path::new(""), AtFlags::EMPTY_PATH) == Some(mount);
                let _ = fan.respond(fd, if ours { Response::DenyErrno(libc::EIO) } else { Response::Allow });
            }
        }
    }
}

/// Processes (other than us) that hold a stub reached through `mount` open
/// or mapped: the files whose holes they could read. Complete files and
/// directories are safe and do not count.
pub fn holders(mount: u64) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me && pid != 1 && holds_stub(pid, mount))
        .collect()
}

/// True if `pid` has an fd or a mapping of a stub reached through `mount`.
fn holds_stub(pid: i32, mount: u64) -> bool {
    ["fd", "map_files"].iter().any(|sub| {
        let dir = format!("/proc/{pid}/{sub}");
        std::fs::read_dir(&dir).is_ok_and(|entries| entries.filter_map(Result::ok).any(|e| is_stub_on(&e.path(), mount)))
    })
}

/// True if the magic link `link` leads to a stub on `mount`. statx and
/// getxattr follow it to the open file itself (whose mount is the one it was
/// opened through) without opening anything, so no event is raised.
fn is_stub_on(link: &Path, mount: u64) -> bool {
    if super::mount::mount_id_at(rfs::CWD, link, AtFlags::empty()) != Some(mount) {
        return false;
    }
    if !rfs::stat(link).is_ok_and(|s| rfs::FileType::from_raw_mode(s.st_mode) == rfs::FileType::RegularFile) {
        return false;
    }
    let mut buf = [0u8; 160];
    rfs::getxattr(link, crate::tree::marker::MARKER_XATTR, &mut buf).is_ok()
}

/// SIGKILLs every holder; returns how many.
fn kill_holders(mount: u64) -> usize {
    let pids = holders(mount);
    for &pid in &pids {
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
    pids.len()
}
