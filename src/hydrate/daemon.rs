//! `thaw serve`: the daemon. The stub tree is cloned into a detached mount,
//! the fanotify mount mark is put on it, and only then is it moved over
//! `DIR`, so no reader can reach an unwatched stub through `DIR`. Each
//! pre-content event is answered after the bytes it covers are in place.
//! On SIGINT/SIGTERM the mount is detached first (new readers get ENOENT, not
//! zeros), queued and in-flight events are finished, and statistics are
//! saved. A guard process unmounts `DIR` if the daemon dies without doing so.

use super::hydrator::{fd_path, Hydrator, Lookup};
use super::Error;
use crate::archive::Archive;
use crate::sys::fanotify::{Event, Fanotify, Mask, Response};
use crate::tree::stage::Stage;
use rustix::fs::{self as rfs, AtFlags, StatxFlags};
use rustix::mount::{self as rmount, MoveMountFlags, OpenTreeFlags, UnmountFlags};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    pub fn default_copiers() -> OpenPolicy {
        OpenPolicy::Copiers(
            [
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
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
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

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Worker threads answering events (they block on IO, so more than cores).
    pub workers: usize,
    /// Chunks hydrated ahead of a sequential reader.
    pub readahead: usize,
    pub open_policy: OpenPolicy,
    /// A `thaw` executable to run as the unmount guard (`thaw __guard`), if any.
    pub guard_exe: Option<PathBuf>,
    /// Frame cache budget in bytes.
    pub cache_bytes: usize,
    /// Print one line per event to stderr.
    pub verbose: bool,
    /// After DIR is detached at shutdown, keep answering readers that still
    /// hold stubs open until they have been quiet this long.
    pub drain: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServeOptions {
            workers: (cores * 4).max(8),
            readahead: cores * 4,
            open_policy: OpenPolicy::default_copiers(),
            guard_exe: None,
            cache_bytes: crate::archive::reader::DEFAULT_CACHE_BYTES,
            verbose: false,
            drain: Duration::from_millis(300),
        }
    }
}

/// Counters saved to `DIR/.thaw/stats.json` while serving and at exit.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServeStats {
    pub pid: u32,
    pub serving: bool,
    pub events: u64,
    pub events_denied: u64,
    pub queue_overflows: u64,
    pub chunks_written: u64,
    pub bytes_written: u64,
    pub files_completed: u64,
    pub frames_decoded: u64,
    /// Total daemon time spent answering events, in microseconds.
    pub event_time_us: u64,
    pub uptime_s: f64,
}

type Job = Box<dyn FnOnce() + Send>;

/// Event workers: plain threads on a channel. (Not rayon: its idle workers
/// spin in sched_yield, taking the CPU the frame decoders need, and workers
/// here block on IO and on chunks other workers are writing.)
struct Workers {
    tx: Option<std::sync::mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn new(n: usize) -> std::io::Result<Workers> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let threads = (0..n.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new().name(format!("thaw-event-{i}")).spawn(move || loop {
                    let job = rx.lock().unwrap().recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Workers { tx: Some(tx), threads })
    }

    fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Box::new(job));
        }
    }

    /// Runs every queued job, then ends the threads.
    fn finish(mut self) {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Ctx {
    fan: Fanotify,
    workers: Workers,
    hydrator: Hydrator,
    opts: ServeOptions,
    events: AtomicU64,
    denied: AtomicU64,
    overflows: AtomicU64,
    event_ns: AtomicU64,
    inflight: AtomicUsize,
}

const WATCH: Mask = Mask::PRE_ACCESS.union(Mask::OPEN_PERM);

/// What the event thread did with an event.
enum Inline {
    Answered,
    /// Needs decoding, writing or logging: for a worker.
    ToWorker(Event),
}

impl Ctx {
    fn handle(self: &Arc<Self>, ev: Event) {
        let t0 = Instant::now();
        let Some(fd) = ev.fd() else {
            if ev.is_overflow() {
                self.overflows.fetch_add(1, Ordering::Relaxed);
                eprintln!("thaw: warning: fanotify queue overflow (notification events lost; permission events are never dropped)");
            }
            return;
        };
        let resp = self.decide(&ev);
        if matches!(resp, Response::DenyErrno(_)) {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        if ev.needs_response() {
            if let Err(e) = self.fan.respond(fd, resp) {
                eprintln!("thaw: {}: cannot answer event: {e}", fd_path(fd));
            }
        }
        if self.opts.verbose {
            eprintln!("thaw: event {:?} pid {} {:?} {} -> {:?}", ev.mask, ev.pid, ev.range, fd_path(fd), resp);
        }
        self.events.fetch_add(1, Ordering::Relaxed);
        self.event_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Answers `ev` at once if that needs no decoding or writing (a file that
    /// is not a stub, an open by a program that is not a copier, a range
    /// already in place); otherwise hands it back for a worker.
    fn try_inline(self: &Arc<Self>, ev: Event) -> Inline {
        let t0 = Instant::now();
        let Some(fd) = ev.fd() else { return Inline::ToWorker(ev) };
        let (st, size) = match self.hydrator.lookup(fd) {
            Ok(Lookup::Stub(st, size)) => (st, size),
            Ok(Lookup::NotStub) => {
                self.allow_not_stub(fd);
                return self.answered_inline(&ev, t0);
            }
            Err(_) => return Inline::ToWorker(ev), // the worker path logs it and answers EIO
        };
        if ev.mask.contains(Mask::OPEN_PERM) {
            if self.opts.open_policy.hydrate_on_open(ev.pid) {
                return Inline::ToWorker(ev);
            }
        } else {
            let Some(range) = ev.range else { return Inline::ToWorker(ev) };
            let Some(r) = self.hydrator.ready(&st, size, range.offset, range.end()) else { return Inline::ToWorker(ev) };
            if r.complete {
                return Inline::ToWorker(ev); // finishing the file writes an xattr: worker
            }
            if let Some(k) = r.readahead_from {
                self.spawn_readahead(st, k, fd);
            }
        }
        self.answered_inline(&ev, t0)
    }

    /// Allows a non-stub's event and stops hearing about that file.
    fn allow_not_stub(&self, fd: std::os::fd::BorrowedFd<'_>) {
        if rfs::fstat(fd).is_ok_and(|s| rfs::FileType::from_raw_mode(s.st_mode) == rfs::FileType::RegularFile) {
            let _ = self.fan.ignore_inode(fd, WATCH);
        }
    }

    /// Sends Allow for an event handled on the event thread.
    fn answered_inline(&self, ev: &Event, t0: Instant) -> Inline {
        let fd = ev.fd().expect("events handled inline carry an fd");
        if ev.needs_response() {
            if let Err(e) = self.fan.respond(fd, Response::Allow) {
                eprintln!("thaw: {}: cannot answer event: {e}", fd_path(fd));
            }
        }
        if self.opts.verbose {
            eprintln!("thaw: event {:?} pid {} {:?} {} -> Allow (on the event thread)", ev.mask, ev.pid, ev.range, fd_path(fd));
        }
        self.events.fetch_add(1, Ordering::Relaxed);
        self.event_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Inline::Answered
    }

    fn decide(self: &Arc<Self>, ev: &Event) -> Response {
        let fd = ev.fd().expect("checked");
        let st = match self.hydrator.lookup(fd) {
            Ok(Lookup::NotStub) => {
                // Complete or user-made file: stop hearing about it.
                self.allow_not_stub(fd);
                return Response::Allow;
            }
            Ok(Lookup::Stub(st, _)) => st,
            Err(e) => {
                eprintln!("thaw: {e}");
                return Response::DenyErrno(libc::EIO);
            }
        };
        let (start, end) = if ev.mask.contains(Mask::OPEN_PERM) {
            if !self.opts.open_policy.hydrate_on_open(ev.pid) {
                return Response::Allow;
            }
            (0, u64::MAX)
        } else {
            match ev.range {
                Some(r) => (r.offset, r.end()),
                None => (0, u64::MAX),
            }
        };
        match self.hydrator.ensure(&st, fd, start, end) {
            Ok(r) => {
                if r.complete {
                    match self.hydrator.finish(&st, fd) {
                        Ok(true) => {
                            let _ = self.fan.ignore_inode(fd, WATCH);
                        }
                        Ok(false) => {}
                        Err(e) => eprintln!("thaw: {e}"),
                    }
                } else if let Some(k) = r.readahead_from {
                    self.spawn_readahead(st, k, fd);
                }
                Response::Allow
            }
            Err(e) => {
                eprintln!("thaw: {e}");
                Response::DenyErrno(libc::EIO)
            }
        }
    }

    fn spawn_readahead(self: &Arc<Self>, st: Arc<super::hydrator::FileState>, from: usize, fd: std::os::fd::BorrowedFd<'_>) {
        let n = self.opts.readahead;
        if n == 0 || st.keep_handle(fd).is_none() {
            return;
        }
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let ctx = self.clone();
        self.workers.spawn(move || {
            if ctx.hydrator.readahead(&st, from, n) {
                if let Some(file) = st.handle() {
                    let _ = ctx.fan.ignore_inode(file.as_fd(), WATCH);
                }
            }
            ctx.inflight.fetch_sub(1, Ordering::SeqCst);
        });
    }

    fn stats(&self, started: Instant, serving: bool) -> ServeStats {
        let s = &self.hydrator.stats;
        ServeStats {
            pid: std::process::id(),
            serving,
            events: self.events.load(Ordering::Relaxed),
            events_denied: self.denied.load(Ordering::Relaxed),
            queue_overflows: self.overflows.load(Ordering::Relaxed),
            chunks_written: s.chunks_written.load(Ordering::Relaxed),
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
            files_completed: s.files_completed.load(Ordering::Relaxed),
            frames_decoded: self.hydrator.archive().frames_decoded(),
            event_time_us: self.event_ns.load(Ordering::Relaxed) / 1000,
            uptime_s: started.elapsed().as_secs_f64(),
        }
    }
}

/// Mount id of the mount `path` is on.
fn mount_id(path: &Path) -> Option<u64> {
    rfs::statx(rfs::CWD, path, AtFlags::empty(), StatxFlags::MNT_ID).ok().map(|s| s.stx_mnt_id)
}

/// Serves `dir` until `stop` is set. `on_ready` runs once `dir` shows the
/// watched tree.
pub fn serve(
    archive: Arc<Archive>,
    dir: &Path,
    opts: ServeOptions,
    stop: &AtomicBool,
    on_ready: &mut dyn FnMut(),
) -> Result<ServeStats, Error> {
    let started = Instant::now();
    let stage = Stage::new(dir);
    stage.check_archive(&archive)?;
    let shown = dir.display().to_string();
    // One daemon per tree.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(stage.lock_path())
        .map_err(|e| Error::io(stage.lock_path().display(), e))?;
    rfs::flock(&lock, rfs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| Error::Setup(format!("{shown}: another thaw daemon is serving it")))?;
    if stage.is_served() {
        return Err(Error::Setup(format!(
            "{shown}: already mounted over by a stub tree (a dead daemon's guard should have removed it; `umount {shown}`)"
        )));
    }
    // Every event carries an fd and readahead keeps some: use all the fds we may.
    let mut lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, lim);
    }
    // Everything that can fail happens before DIR is mounted over.
    let workers = Workers::new(opts.workers).map_err(|e| Error::Setup(format!("worker threads: {e}")))?;
    let mut archive = archive;
    if let Some(a) = Arc::get_mut(&mut archive) {
        a.set_cache_budget(opts.cache_bytes);
    }
    let fan = Fanotify::new_pre_content()
        .map_err(|e| Error::Setup(format!("fanotify_init: {e} (needs root and a kernel with fanotify pre-content events, 6.14+)")))?;
    let tree = stage.tree();
    let clone = rmount::open_tree(rfs::CWD, &tree, OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC)
        .map_err(|e| Error::io(tree.display(), e))?;
    fan.mark_mount_fd(clone.as_fd(), WATCH).map_err(|e| {
        Error::Setup(format!("{}: cannot watch it: {e} (pre-content marks need ext4, xfs or btrfs, not tmpfs)", tree.display()))
    })?;
    rmount::move_mount(clone.as_fd(), "", rfs::CWD, dir, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH).map_err(|e| Error::io(&shown, e))?;
    drop(clone);
    let our_mount = mount_id(dir);
    let mut guard = match (&opts.guard_exe, our_mount) {
        (Some(exe), Some(id)) => spawn_guard(exe, dir, id),
        _ => None,
    };
    let ctx = Arc::new(Ctx {
        fan,
        workers,
        hydrator: Hydrator::new(archive),
        opts,
        events: AtomicU64::new(0),
        denied: AtomicU64::new(0),
        overflows: AtomicU64::new(0),
        event_ns: AtomicU64::new(0),
        inflight: AtomicUsize::new(0),
    });
    save_stats(&stage, &ctx.stats(started, true));
    on_ready();
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_save = Instant::now();
    let result = (|| -> Result<(), Error> {
        while !stop.load(Ordering::Relaxed) {
            if ctx.fan.wait_readable(Some(Duration::from_millis(50))).map_err(|e| Error::io("fanotify", e))? {
                dispatch(&ctx, &mut buf)?;
            }
            if last_save.elapsed() > Duration::from_secs(1) {
                save_stats(&stage, &ctx.stats(started, true));
                last_save = Instant::now();
            }
        }
        Ok(())
    })();
    // Shutdown: detach DIR so nobody new reaches the stubs, then finish
    // whatever readers with open files still ask for.
    if our_mount.is_some() && mount_id(dir) == our_mount {
        if let Err(e) = rmount::unmount(dir, UnmountFlags::DETACH) {
            eprintln!("thaw: {shown}: cannot unmount: {e}");
        }
    }
    let mut quiet_since = Instant::now();
    let drain = ctx.opts.drain;
    while quiet_since.elapsed() < drain || ctx.inflight.load(Ordering::SeqCst) > 0 {
        match ctx.fan.wait_readable(Some(Duration::from_millis(20))) {
            Ok(true) => {
                if dispatch(&ctx, &mut buf).is_err() {
                    break;
                }
                quiet_since = Instant::now();
            }
            Ok(false) => {}
            Err(_) => break,
        }
    }
    while ctx.inflight.load(Ordering::SeqCst) > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = ctx.stats(started, false);
    // Nothing is queued any more: end the worker threads (they hold `ctx`).
    if let Some(c) = Arc::into_inner(ctx) {
        c.workers.finish();
    }
    save_stats(&stage, &stats);
    if let Some(g) = guard.as_mut() {
        drop(g.stdin.take());
        let _ = g.wait();
    }
    drop(lock);
    result.map(|()| stats)
}

fn dispatch(ctx: &Arc<Ctx>, buf: &mut [u8]) -> Result<(), Error> {
    let events = ctx.fan.read_events(buf).map_err(|e| Error::io("fanotify", e))?;
    for ev in events {
        // Ranges already in place are answered right here: no thread handoff.
        let Inline::ToWorker(ev) = ctx.try_inline(ev) else { continue };
        ctx.inflight.fetch_add(1, Ordering::SeqCst);
        let c = ctx.clone();
        ctx.workers.spawn(move || {
            c.handle(ev);
            c.inflight.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

fn save_stats(stage: &Stage, stats: &ServeStats) {
    let p = stage.stats_path();
    let tmp = p.with_extension("json.tmp");
    if std::fs::write(&tmp, serde_json::to_vec_pretty(stats).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, &p);
    }
}

/// Reads the last saved statistics of a tree.
pub fn load_stats(stage: &Stage) -> Option<ServeStats> {
    serde_json::from_slice(&std::fs::read(stage.stats_path()).ok()?).ok()
}

fn spawn_guard(exe: &Path, dir: &Path, mount: u64) -> Option<std::process::Child> {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .arg("__guard")
        .arg(dir)
        .arg(mount.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| eprintln!("thaw: warning: cannot start the unmount guard: {e}"))
        .ok()
}

/// The guard: waits until the daemon's end of the pipe closes (however the
/// daemon ended), then detaches `dir` if the daemon's mount is still there,
/// so readers get ENOENT instead of zeros from an unserved stub.
pub fn guard_main(dir: &Path, mount: u64) -> i32 {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while let Ok(n) = stdin.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
    if mount_id(dir) == Some(mount) {
        if let Err(e) = rmount::unmount(dir, UnmountFlags::DETACH) {
            let _ = writeln!(std::io::stderr(), "thaw guard: {}: cannot unmount: {e}", dir.display());
            return 1;
        }
        let _ = writeln!(std::io::stderr(), "thaw guard: the daemon for {} ended without unmounting it; unmounted", dir.display());
    }
    0
}
