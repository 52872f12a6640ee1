//! Answering fanotify events, each exactly once, whatever happens.
//!
//! [`Events::route`] looks at an event on the event thread and either answers
//! it at once (a file that is not a stub, an open by a program that is not a
//! copier, a range already in place) or returns the [`Work`] a worker must do,
//! with the stub it already looked up. Every event handed on is a
//! [`Pending`]: answered by whoever calls [`Pending::answer`] first, by the
//! deadline sweep when a worker takes too long, and with EIO by its `Drop` if
//! nobody answered it (a worker that panicked), so no reader is ever left
//! blocked.

use super::chunks::lock;
use super::hydrator::{fd_path, FileState, Hydrator, Lookup};
use super::mount::Watched;
use super::{chain, Error};
use crate::sys::fanotify::{Event, Fanotify, Mask, Response};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The events the daemon watches on its mount.
pub const WATCH: Mask = Mask::PRE_ACCESS.union(Mask::OPEN_PERM);

/// Which processes get a whole stub hydrated when they open it: hole-aware
/// copiers ask SEEK_DATA (which raises no event) and would copy zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenPolicy {
    /// Processes whose `comm` is in the list.
    Copiers(Vec<String>),
    /// Every open of a stub hydrates it whole.
    All,
    /// No open-time hydration.
    Never,
}

impl OpenPolicy {
    /// cp, tar, rsync and the other copiers known to skip holes.
    pub fn default_copiers() -> OpenPolicy {
        let names = [
            "cp",
            "tar",
            "bsdtar",
            "gtar",
            "rsync",
            "cpio",
            "pax",
            "star",
            "mv",
            "install",
            "ditto",
            "zip",
            "7z",
            "7za",
            "restic",
            "borg",
            "duplicity",
        ];
        OpenPolicy::Copiers(names.iter().map(|s| s.to_string()).collect())
    }

    fn hydrate_on_open(&self, pid: i32) -> bool {
        match self {
            OpenPolicy::All => true,
            OpenPolicy::Never => false,
            OpenPolicy::Copiers(list) => {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| list.iter().any(|l| l == c.trim_end())).unwrap_or(false)
            }
        }
    }
}

/// Event counters, saved in the tree's statistics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events answered.
    pub events: AtomicU64,
    /// Events answered with an error.
    pub denied: AtomicU64,
    /// Events answered by the deadline sweep.
    pub timed_out: AtomicU64,
    /// Queue overflows reported by the kernel.
    pub overflows: AtomicU64,
    /// Daemon time spent on events, in nanoseconds.
    pub event_ns: AtomicU64,
}

/// The fanotify group and what answering needs, shared by every thread.
pub struct Events {
    fan: Fanotify,
    /// What was answered so far.
    pub counters: Counters,
    open_policy: OpenPolicy,
    verbose: bool,
    timeout: Duration,
    watched: Watched,
    own_pid: i32,
    /// Events handed to workers, for the deadline sweep.
    pending: Mutex<Vec<Weak<Pending>>>,
}

/// An event a worker is handling. Answered exactly once; see the module doc.
pub struct Pending {
    ev: Event,
    events: Arc<Events>,
    answered: AtomicBool,
    started: Instant,
}

/// What a worker must do for an event.
pub enum Work {
    /// Make `[start, end)` of the stub present, then allow.
    Ensure(Arc<FileState>, u64, u64),
    /// The range is in place and the file is complete: finish it, then allow.
    Finish(Arc<FileState>),
}

/// Where an event went.
pub enum Routed {
    /// Answered on the event thread; `Some` asks for readahead from that chunk.
    Answered(Option<(Arc<FileState>, usize)>),
    /// Needs chunks filled off the event thread: a worker answers the [`Pending`].
    Work(Arc<Pending>, Work),
}

impl Events {
    /// Wraps a group whose marks are `watched`; `timeout` is the longest a
    /// reader waits before EIO.
    pub fn new(fan: Fanotify, watched: Watched, open_policy: OpenPolicy, verbose: bool, timeout: Duration) -> Arc<Events> {
        Arc::new(Events {
            fan,
            counters: Counters::default(),
            open_policy,
            verbose,
            timeout,
            watched,
            own_pid: std::process::id() as i32,
            pending: Mutex::default(),
        })
    }

    /// Makes the file behind `fd`, a stub again (dehydrated), raise events
    /// again: its inode mark back, or (under a mount mark) its ignore mark gone.
    pub fn watch(&self, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
        match self.watched {
            Watched::Stubs => self.fan.mark_inode_fd(fd, WATCH),
            Watched::Mount => self.fan.unignore_inode(fd, WATCH),
        }
    }

    /// Stops events for the file behind `fd`, which needs no more hydration:
    /// its inode mark goes, or (under a mount mark) it gets an ignore mark.
    pub fn forget(&self, fd: std::os::fd::BorrowedFd<'_>) {
        let r = match self.watched {
            Watched::Stubs => self.fan.unmark_inode(fd, WATCH),
            Watched::Mount => self.fan.ignore_inode(fd, WATCH),
        };
        if let Err(e) = r {
            if e.raw_os_error() != Some(libc::ENOENT) {
                tracing::debug!("{}: cannot drop its mark: {e}", fd_path(fd));
            }
        }
    }

    /// The fanotify group events are read from and answered on.
    pub fn fan(&self) -> &Fanotify {
        &self.fan
    }

    /// Decides what to do with `ev`, answering it here when no work is needed.
    pub fn route(self: &Arc<Self>, hyd: &Hydrator, ev: Event) -> Option<Routed> {
        let t0 = Instant::now();
        let Some(fd) = ev.fd() else {
            if ev.is_overflow() {
                self.counters.overflows.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("fanotify queue overflow (notification events lost; permission events are never dropped)");
            }
            return None;
        };
        // The daemon's own accesses through the stage (prefetch, dehydrate,
        // the budget) write or punch data themselves; under inode marks they
        // raise events too, which must not wait on the daemon's own workers.
        if ev.pid == self.own_pid {
            return Some(self.answer_here(&ev, t0, Ok(()), None));
        }
        let (st, size) = match hyd.lookup(fd) {
            Ok(Lookup::Stub(st, size)) => (st, size),
            Ok(Lookup::NotFile) => return Some(self.answer_here(&ev, t0, Ok(()), None)),
            Ok(Lookup::NotStub) => {
                // Stop hearing about it (lookup's fstat already said it is a regular file).
                self.forget(fd);
                return Some(self.answer_here(&ev, t0, Ok(()), None));
            }
            Err(e) => return Some(self.answer_here(&ev, t0, Err(e), None)),
        };
        let (start, end) = if ev.mask.contains(Mask::OPEN_PERM) {
            // A file of one chunk is filled whole at open: its first read
            // would decode the same chunk, and this saves that read's event
            // (and the opener's name lookup). Not executables: an exec's
            // open must not wait on a fill whose writable event fd would
            // make other execs of the file fail with ETXTBSY; their mmap
            // event fills them.
            let small = st.chunks.len() <= 1 && st.data.mode & 0o111 == 0 && self.open_policy != OpenPolicy::Never;
            if !small && !self.open_policy.hydrate_on_open(ev.pid) {
                return Some(self.answer_here(&ev, t0, Ok(()), None));
            }
            (0, u64::MAX)
        } else {
            ev.range.map_or((0, u64::MAX), |r| (r.offset, r.end()))
        };
        match hyd.ready(&st, size, start, end) {
            Some(r) if r.complete => Some(self.hand_on(ev, Work::Finish(st))),
            Some(r) => {
                // Readahead works through a handle of the file's own, made
                // from this event's fd while we still hold it.
                let ahead = r.readahead_from.filter(|_| st.keep_handle(fd).is_some()).map(|k| (st, k));
                Some(self.answer_here(&ev, t0, Ok(()), ahead))
            }
            None => Some(self.hand_on(ev, Work::Ensure(st, start, end))),
        }
    }

    fn answer_here(&self, ev: &Event, t0: Instant, r: Result<(), Error>, ahead: Option<(Arc<FileState>, usize)>) -> Routed {
        self.respond(ev, t0, &r, "on the event thread");
        Routed::Answered(ahead)
    }

    fn hand_on(self: &Arc<Self>, ev: Event, work: Work) -> Routed {
        let p = Arc::new(Pending { ev, events: self.clone(), answered: AtomicBool::new(false), started: Instant::now() });
        lock(&self.pending).push(Arc::downgrade(&p));
        Routed::Work(p, work)
    }

    /// Responds, logs and counts: the one place an event is answered.
    fn respond(&self, ev: &Event, t0: Instant, r: &Result<(), Error>, how: &str) {
        let Some(fd) = ev.fd() else { return };
        let resp = match r {
            Ok(()) => Response::Allow,
            Err(e) => {
                self.counters.denied.fetch_add(1, Ordering::Relaxed);
                let resp = Response::deny(e.errno());
                let Response::DenyErrno(errno) = resp else { unreachable!() };
                tracing::error!("{} (answered {})", chain(e), errno_name(errno));
                resp
            }
        };
        if ev.needs_response() {
            if let Err(e) = self.fan.respond(fd, resp) {
                tracing::error!("{}: cannot answer event: {e}", fd_path(fd));
            }
        }
        if self.verbose {
            tracing::info!("event {:?} pid {} {:?} {} -> {:?} ({how})", ev.mask, ev.pid, ev.range, fd_path(fd), resp);
        }
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        self.counters.event_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Answers with EIO every handed-on event older than the timeout; called
    /// periodically by the event loop. Returns how many it answered.
    pub fn sweep(&self) -> usize {
        let mut late = Vec::new();
        lock(&self.pending).retain(|w| match w.upgrade() {
            Some(p) if p.answered.load(Ordering::Acquire) => false,
            Some(p) => {
                if p.started.elapsed() > self.timeout {
                    late.push(p);
                }
                true
            }
            None => false,
        });
        let n = late.len();
        for p in late {
            let why = format!("no answer within {:?}: the reader gets EIO (the work goes on in the background)", self.timeout);
            if p.answer_with(Err(Error::stub(p.path(), why)), "deadline") {
                self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            }
        }
        n
    }

    /// Events handed on and not answered yet.
    pub fn in_flight(&self) -> usize {
        lock(&self.pending).iter().filter(|w| w.upgrade().is_some_and(|p| !p.answered.load(Ordering::Acquire))).count()
    }
}

impl Pending {
    /// The event's file descriptor.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ev.fd().expect("handed-on events carry an fd")
    }

    /// The event's path, for messages.
    pub fn path(&self) -> String {
        fd_path(self.fd())
    }

    /// The pid that caused the event.
    pub fn pid(&self) -> i32 {
        self.ev.pid
    }

    /// Answers the event unless someone already did; true if this call answered.
    pub fn answer(&self, r: Result<(), Error>) -> bool {
        self.answer_with(r, "by a worker")
    }

    fn answer_with(&self, r: Result<(), Error>, how: &str) -> bool {
        if self.answered.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.events.respond(&self.ev, self.started, &r, how);
        true
    }

    /// The group this event came from.
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.answered.load(Ordering::Acquire) {
            let why = if std::thread::panicking() { "the worker panicked" } else { "dropped unanswered" };
            self.answer_with(Err(Error::stub(self.path(), why)), "on drop");
        }
    }
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EIO => "EIO".into(),
        libc::ENOSPC => "ENOSPC".into(),
        libc::EPERM => "EPERM".into(),
        libc::EDQUOT => "EDQUOT".into(),
        other => format!("errno {other}"),
    }
}
