//! `thaw serve`: the daemon. It puts the watched stub tree over `DIR`
//! ([`ServedMount`]), reads fanotify events and routes them ([`Events`]):
//! answered on the event thread when no work is needed, else by a worker that
//! fills the stub first. On SIGINT/SIGTERM the mount is detached first (new
//! readers get the empty `DIR`, not zeros), queued and in-flight events are
//! finished, statistics are saved, and the guard takes over.

use super::budget::{Budget, Room};
use super::control::{Reply, Request};
use super::events::{Events, OpenPolicy, Pending, Routed, Work};
use super::guard::MAX_EVENT_FD;
use super::hydrator::{FileState, Hydrator, Lookup};
use super::marks::{mark_stubs, MarkScope, Marked, AUTO_STUB_LIMIT};
use super::mount::{GuardOptions, ServedMount, Watched};
use super::profile::{Prefetch, PrefetchHost, PrefetchStats, Profile, Recorder};
use super::stop::Stop;
use super::walk::{Walks, WINDOW_BYTES};
use super::Error;
use crate::archive::Archive;
use crate::sys::fanotify::Fanotify;
use crate::tree::stage::open_rel;
use crate::tree::stage::{Stage, STATS};
use rustix::fs::OFlags;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Jobs filling the files ahead of one reader that walks a directory.
const WALK_JOBS: usize = 4;

/// How `thaw serve` behaves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Worker threads answering events (they block on IO, so more than cores).
    pub workers: usize,
    /// Chunks hydrated ahead of a sequential reader.
    pub readahead: usize,
    /// Hydrate files ahead of a reader that walks a directory (see [`super::walk`]).
    pub walk_ahead: bool,
    /// Who gets a whole stub on open.
    pub open_policy: OpenPolicy,
    /// The guard process, if any (see [`super::guard`]).
    pub guard: Option<GuardOptions>,
    /// Frame cache budget in bytes.
    pub cache_bytes: usize,
    /// Log one line per event.
    pub verbose: bool,
    /// After DIR is detached at shutdown, keep answering readers that still
    /// hold stubs open until they have been quiet this long.
    pub drain: Duration,
    /// Longest a reader waits for its event before it gets EIO.
    pub event_timeout: Duration,
    /// Fault injection for tests: a worker handling an event whose path
    /// contains this string panics (from `THAW_INJECT_PANIC`).
    pub inject_panic: Option<String>,
    /// What carries the marks: the stubs or the mount.
    pub marks: MarkScope,
    /// Stubs above which [`MarkScope::Auto`] marks the mount.
    pub marks_limit: u64,
    /// Nice value of the daemon's threads: a reader waits on them, so they
    /// should not queue behind the readers' own CPU work.
    pub nice: i32,
    /// Keep the archive bytes in the tree under this many (see [`super::budget`]).
    pub max_disk: Option<u64>,
    /// Write the readers' first accesses to this profile at the end.
    pub record: Option<PathBuf>,
    /// Hydrate this profile's ranges in the background once served.
    pub prefetch: Option<PathBuf>,
    /// Threads the prefetch uses.
    pub prefetch_threads: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServeOptions {
            workers: (cores * 4).max(8),
            readahead: cores * 4,
            walk_ahead: false,
            open_policy: OpenPolicy::default_copiers(),
            guard: None,
            cache_bytes: crate::archive::reader::DEFAULT_CACHE_BYTES,
            verbose: false,
            drain: Duration::from_millis(300),
            event_timeout: Duration::from_secs(60),
            inject_panic: std::env::var("THAW_INJECT_PANIC").ok().filter(|s| !s.is_empty()),
            marks: MarkScope::Auto,
            marks_limit: AUTO_STUB_LIMIT,
            nice: -5,
            max_disk: None,
            record: None,
            prefetch: None,
            prefetch_threads: 2,
        }
    }
}

/// Counters saved to the stage's `stats.json` while serving and at exit.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServeStats {
    /// The daemon's pid.
    pub pid: u32,
    /// True while serving.
    pub serving: bool,
    /// Events answered.
    pub events: u64,
    /// Events answered with an error.
    pub events_denied: u64,
    /// Events answered with EIO because no answer came in time.
    #[serde(default)]
    pub events_timed_out: u64,
    /// Kernel queue overflows.
    pub queue_overflows: u64,
    /// Chunks written into stubs.
    pub chunks_written: u64,
    /// Bytes written into stubs.
    pub bytes_written: u64,
    /// Stubs completed.
    pub files_completed: u64,
    /// Frames decoded.
    pub frames_decoded: u64,
    /// Decompressed bytes those decodes produced (against `bytes_written`:
    /// the decode amplification).
    #[serde(default)]
    pub bytes_decoded: u64,
    /// Range requests sent to a remote archive (0 for a local one).
    #[serde(default)]
    pub remote_requests: u64,
    /// Bytes received from a remote archive.
    #[serde(default)]
    pub remote_bytes: u64,
    /// Compressed bytes of the frames decoded (what a remote archive had to
    /// send at the least, besides its index).
    #[serde(default)]
    pub compressed_decoded: u64,
    /// The frame cache budget in force, in bytes.
    #[serde(default)]
    pub cache_budget: u64,
    /// Total daemon time spent answering events, in microseconds.
    pub event_time_us: u64,
    /// Seconds served.
    pub uptime_s: f64,
    /// What carries the marks: "stubs" or "mount".
    #[serde(default)]
    pub watched: String,
    /// Stubs given an inode mark at start (0 under a mount mark).
    #[serde(default)]
    pub stubs_marked: u64,
    /// Time spent marking them, in milliseconds.
    #[serde(default)]
    pub mark_ms: u64,
    /// Events a worker had to fill data for before answering (they waited for a decode).
    #[serde(default)]
    pub events_waited: u64,
    /// Files hydrated ahead of a reader walking their directory.
    #[serde(default)]
    pub files_walked_ahead: u64,
    /// Files the disk budget turned back into stubs.
    #[serde(default)]
    pub files_evicted: u64,
    /// Archive bytes in the tree by the budget's count (0 without a budget).
    #[serde(default)]
    pub budget_used: u64,
    /// Profile ranges prefetched (or found in place).
    #[serde(default)]
    pub prefetch_ranges_done: u64,
    /// Profile ranges skipped: the archive has no such file.
    #[serde(default)]
    pub prefetch_ranges_skipped: u64,
    /// Times the prefetch stood back for waiting readers.
    #[serde(default)]
    pub prefetch_yields: u64,
}

type Job = Box<dyn FnOnce() + Send>;

/// Event workers: plain threads on a channel. (Not rayon: its idle workers
/// spin in sched_yield, taking the CPU the frame decoders need, and workers
/// here block on IO and on chunks other workers are writing.) A job that
/// panics is caught so the thread lives on; its event is answered by
/// [`Pending`]'s drop.
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
                    let job = super::chunks::lock(&rx).recv();
                    match job {
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
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

/// What every event thread and worker shares.
struct Ctx {
    events: Arc<Events>,
    workers: Workers,
    hydrator: Hydrator,
    opts: ServeOptions,
    /// Readahead threads and walk-ahead jobs queued or running.
    background: std::sync::atomic::AtomicUsize,
    /// What carries the marks, how many stubs were marked and how long it took (ms).
    watch: (Watched, u64, u64),
    /// The stub tree, unwatched (prefetch opens files through it).
    tree: OwnedFd,
    /// The disk budget, with `--max-disk`.
    budget: Option<Budget>,
    /// Events handed to a worker to fill data.
    waited: AtomicU64,
    /// The prefetch's counters once it runs.
    prefetch: OnceLock<Arc<PrefetchStats>>,
    /// Readers walking directories.
    walks: Walks,
    /// Files hydrated ahead of them.
    walked: AtomicU64,
}

impl Ctx {
    /// Reads what is queued and routes each event.
    fn dispatch(self: &Arc<Self>, buf: &mut [u8]) -> Result<(), Error> {
        let events = self.events.fan().read_events(buf).map_err(|e| Error::io("fanotify", e))?;
        for ev in events {
            match self.events.route(&self.hydrator, ev) {
                None | Some(Routed::Answered(None)) => {}
                Some(Routed::Answered(Some((st, k)))) => self.spawn_readahead(st, k, None),
                Some(Routed::Work(p, work)) => {
                    let ahead = match &work {
                        Work::Ensure(st, ..) => {
                            self.waited.fetch_add(1, Ordering::Relaxed);
                            self.opts.walk_ahead.then(|| (p.pid(), st.clone()))
                        }
                        Work::Finish(_) => None,
                    };
                    let c = self.clone();
                    // Walk-ahead reads a directory's listing the first time:
                    // on the worker, after the reader's own fill, never on
                    // the event thread.
                    self.workers.spawn(move || {
                        c.work(p, work);
                        if let Some((pid, st)) = ahead {
                            c.walk_ahead(pid, &st);
                        }
                    });
                }
            }
        }
        Ok(())
    }

    /// A worker's part: fill what the event needs, answer, then finish or read ahead.
    fn work(self: &Arc<Self>, p: Arc<Pending>, work: Work) {
        if self.opts.inject_panic.as_ref().is_some_and(|s| p.path().contains(s.as_str())) {
            panic!("THAW_INJECT_PANIC: injected panic for {}", p.path());
        }
        let fd = p.fd();
        let (st, r) = match work {
            Work::Finish(st) => (st, Ok(super::hydrator::Ensured { complete: true, readahead_from: None })),
            Work::Ensure(st, start, end) => {
                let _room = self.budget.as_ref().map(|b| {
                    let need = st.chunks.missing_bytes(st.chunks.wanted(start, end.min(st.chunks.file_len())));
                    b.make_room(&self.hydrator, &self.events, need)
                });
                let r = self.hydrator.ensure(&st, fd, start, end);
                (st, r)
            }
        };
        match r {
            Ok(r) => {
                if r.complete {
                    self.finish(&st, fd);
                } else if let Some(k) = r.readahead_from {
                    self.spawn_readahead(st, k, Some(fd));
                }
                p.answer(Ok(()));
            }
            Err(e) => {
                p.answer(Err(e));
            }
        }
    }

    /// A complete stub becomes an ordinary file, read from now on at native speed.
    fn finish(&self, st: &FileState, fd: std::os::fd::BorrowedFd<'_>) {
        match self.hydrator.finish(st, fd) {
            Ok(true) => self.events.forget(fd),
            Ok(false) => {}
            Err(e) => tracing::error!("{}", super::chain(&e)),
        }
    }

    /// Hydrates ahead of a sequential reader, through a handle the file keeps
    /// (made from `fd` if it has none yet): slides the file's window to the
    /// `readahead` chunks from `from` and starts threads for it, up to one
    /// per core for the file and half the workers in all (the other half
    /// stays free for readers' events). The threads take the window's
    /// chunks one at a time in order, so the reader waits, if at all, for
    /// the one chunk it needs next, never for a whole batch.
    fn spawn_readahead(self: &Arc<Self>, st: Arc<FileState>, from: usize, fd: Option<std::os::fd::BorrowedFd<'_>>) {
        let n = self.opts.readahead;
        let has = match fd {
            Some(fd) => st.keep_handle(fd).is_some(),
            None => st.handle().is_some(),
        };
        if n == 0 || !has {
            return;
        }
        let free = (self.opts.workers / 2).max(1).saturating_sub(self.background.load(Ordering::SeqCst));
        let (more, hint) = st.read_ahead_to(from, n, free.min(super::hydrator::cores()));
        // A remote source fetches that part of the window in one request.
        self.hydrator.hint(&st, hint);
        for _ in 0..more {
            self.background.fetch_add(1, Ordering::SeqCst);
            let ctx = self.clone();
            let st = st.clone();
            self.workers.spawn(move || {
                let room = |need| ctx.budget.as_ref().map(|b| b.make_room(&ctx.hydrator, &ctx.events, need));
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    while let Some(complete) = ctx.hydrator.read_ahead_one(&st, room) {
                        if complete {
                            if let Some(file) = st.handle() {
                                ctx.events.forget(file.as_fd());
                            }
                        }
                    }
                }));
                if run.is_err() {
                    // The chunk it held went back to missing with its claim.
                    st.leave_ahead();
                    tracing::error!("readahead of entry {} panicked", st.entry);
                }
                ctx.background.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    /// Notes a reader's first access to a small stub and, when it walks the
    /// stub's directory in listing order, hydrates the files after it in the
    /// background (see [`super::walk`]).
    fn walk_ahead(self: &Arc<Self>, pid: i32, st: &FileState) {
        if st.chunks.len() > 1 {
            return;
        }
        let Ok(Some(e)) = self.hydrator.archive().entry(st.entry as u64) else { return };
        let paths = self.walks.note(self.tree.as_fd(), pid, &e.path, st.key.1);
        if paths.is_empty() {
            return;
        }
        // Several jobs, each taking every `jobs`-th file: under inode marks,
        // each open and write of theirs raises an event of the daemon's own
        // that the event thread must answer first, and a single job spent
        // more time waiting on those than the reader took to catch up.
        let paths = Arc::new(paths);
        let jobs = WALK_JOBS.min(paths.len());
        for j in 0..jobs {
            self.background.fetch_add(1, Ordering::SeqCst);
            let (ctx, paths) = (self.clone(), paths.clone());
            self.workers.spawn(move || {
                let mut bytes = 0;
                for rel in paths.iter().skip(j).step_by(jobs) {
                    if bytes >= WINDOW_BYTES / jobs as u64 {
                        break;
                    }
                    // Through the unwatched tree, without a symlink, and only
                    // into a stub (marker and inode): see `walk`.
                    let Some(file) = ctx.open(rel) else { continue };
                    let fd = file.as_fd();
                    let Ok(Lookup::Stub(st, _)) = ctx.hydrator.lookup(fd) else { continue };
                    // One chunk only: a fill bumps the file's mtime until it
                    // puts the entry's back, and a larger file's fill is
                    // long enough for another process (`make`, a tree
                    // compare) to stat it in between. A reader of a large
                    // file gets it through its own events and readahead.
                    if st.chunks.len() > 1 {
                        continue;
                    }
                    let need = st.chunks.missing_bytes(st.chunks.wanted(0, st.chunks.file_len()));
                    bytes += need;
                    let _room = ctx.make_room(need);
                    match ctx.hydrator.ensure_background(&st, fd, 0, u64::MAX) {
                        Ok(r) => {
                            ctx.walked.fetch_add(1, Ordering::Relaxed);
                            if r.complete {
                                ctx.finish(&st, fd);
                            }
                        }
                        Err(e) => tracing::debug!("hydrating ahead of a walk: {}", super::chain(&e)),
                    }
                }
                ctx.background.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    fn stats(&self, started: Instant, serving: bool) -> ServeStats {
        let (s, c) = (&self.hydrator.stats, &self.events.counters);
        ServeStats {
            pid: std::process::id(),
            serving,
            events: c.events.load(Ordering::Relaxed),
            events_denied: c.denied.load(Ordering::Relaxed),
            events_timed_out: c.timed_out.load(Ordering::Relaxed),
            queue_overflows: c.overflows.load(Ordering::Relaxed),
            chunks_written: s.chunks_written.load(Ordering::Relaxed),
            bytes_written: s.bytes_written.load(Ordering::Relaxed),
            files_completed: s.files_completed.load(Ordering::Relaxed),
            frames_decoded: self.hydrator.archive().frames_decoded(),
            bytes_decoded: self.hydrator.archive().bytes_decoded(),
            cache_budget: self.hydrator.archive().cache_budget() as u64,
            remote_requests: self.hydrator.archive().transfer().requests,
            remote_bytes: self.hydrator.archive().transfer().bytes,
            compressed_decoded: self.hydrator.archive().compressed_decoded(),
            event_time_us: c.event_ns.load(Ordering::Relaxed) / 1000,
            uptime_s: started.elapsed().as_secs_f64(),
            watched: match self.watch.0 {
                Watched::Stubs => "stubs".into(),
                Watched::Mount => "mount".into(),
            },
            stubs_marked: self.watch.1,
            mark_ms: self.watch.2,
            events_waited: self.waited.load(Ordering::Relaxed),
            files_walked_ahead: self.walked.load(Ordering::Relaxed),
            files_evicted: self.budget.as_ref().map_or(0, |b| b.files_evicted.load(Ordering::Relaxed)),
            budget_used: self.budget.as_ref().map_or(0, |b| b.used(&self.hydrator)),
            prefetch_ranges_done: self.prefetch.get().map_or(0, |p| p.ranges_done.load(Ordering::Relaxed)),
            prefetch_ranges_skipped: self.prefetch.get().map_or(0, |p| p.ranges_skipped.load(Ordering::Relaxed)),
            prefetch_yields: self.prefetch.get().map_or(0, |p| p.yields.load(Ordering::Relaxed)),
        }
    }

    /// True while events handed on or readahead jobs are unfinished.
    fn busy(&self) -> bool {
        self.events.in_flight() > 0 || self.background.load(Ordering::SeqCst) > 0
    }
}

/// Serves `dir` until `stop` is requested. `on_ready` runs once `dir` shows
/// the watched tree.
pub fn serve(archive: Arc<Archive>, dir: &Path, opts: ServeOptions, stop: &Stop, on_ready: &mut dyn FnMut()) -> Result<ServeStats, Error> {
    let started = Instant::now();
    let stage = Stage::open(dir)?;
    stage.check_archive(&archive)?;
    // The whole index now (format 1 has it already): stub lookups run on the
    // event thread, which must never wait for the archive.
    archive.index()?;
    let _lock = stage.lock()?;
    let shown = dir.display().to_string();
    if stage.is_served() {
        return Err(Error::Setup(format!(
            "{shown}: already mounted over by a stub tree (a dead daemon's guard should have removed it; `umount {shown}`)"
        )));
    }
    raise_fd_limit();
    set_nice(opts.nice);
    // Everything that can fail happens before DIR is mounted over.
    let workers = Workers::new(opts.workers).map_err(|e| Error::Setup(format!("worker threads: {e}")))?;
    archive.set_cache_budget(opts.cache_bytes);
    let fan = Fanotify::new_pre_content()
        .map_err(|e| Error::Setup(format!("fanotify_init: {e} (needs root and a kernel with fanotify pre-content events, 6.14+)")))?;
    if Fanotify::restartable_events_supported() {
        tracing::info!("this kernel accepts FAN_RESTARTABLE_EVENTS; thaw does not use it yet (the guard answers a dead daemon's events)");
    }
    let profile = load_profile(&opts, &archive)?;
    let (hydrator, recorder) = hydrator_for(archive, &opts);
    let budget = opts.max_disk.map(|max| Budget::new(max, &stage, &hydrator)).transpose()?;
    let tree = stage.tree_fd()?.try_clone_to_owned().map_err(|e| Error::io(stage.tree().display(), e))?;
    let watch = watch(&fan, &stage, opts.marks, opts.marks_limit)?;
    let mut mount = ServedMount::attach(&fan, &stage, watch.0, opts.guard.as_ref())?;
    let events = Events::new(fan, watch.0, opts.open_policy.clone(), opts.verbose, opts.event_timeout);
    let (background, waited, prefetch) = (Default::default(), AtomicU64::new(0), OnceLock::new());
    let (walks, walked) = (Walks::default(), AtomicU64::new(0));
    let ctx = Arc::new(Ctx { events, workers, hydrator, opts, background, tree, budget, waited, prefetch, watch, walks, walked });
    let extras = Extras::start(&ctx, dir, profile)?;
    save_stats(&stage, &ctx.stats(started, true));
    on_ready();
    let mut buf = vec![0u8; 64 * 1024];
    let result = serve_until(&ctx, &stage, stop, started, &mut buf);
    extras.stop();
    // Shutdown: detach DIR so nobody new reaches the stubs, then finish
    // whatever readers with open files still ask for.
    mount.detach();
    drain(&ctx, &mut buf);
    if let (Some(r), Some(path)) = (recorder, &ctx.opts.record) {
        r.profile(ctx.hydrator.archive()).save(path)?;
    }
    let stats = ctx.stats(started, false);
    // Nothing is queued any more: end the worker threads (they hold `ctx`).
    if let Some(c) = Arc::into_inner(ctx) {
        c.workers.finish();
    }
    save_stats(&stage, &stats);
    mount.stop(); // the guard takes over
    result.map(|()| stats)
}

/// The profile to prefetch, refused if it is of another archive.
fn load_profile(opts: &ServeOptions, archive: &Archive) -> Result<Option<Profile>, Error> {
    let Some(path) = &opts.prefetch else { return Ok(None) };
    let p = Profile::load(path)?;
    p.check_archive(archive, path)?;
    Ok(Some(p))
}

/// The hydrator the options ask for, and its recorder with `--record`.
fn hydrator_for(archive: Arc<Archive>, opts: &ServeOptions) -> (Hydrator, Option<Arc<Recorder>>) {
    let mut hyd = Hydrator::new(archive);
    // A budget must see every read to rank files by it (the cost is one
    // event per read of a complete file). So must a recording that runs
    // beside a prefetch: a file the prefetch completes gets an ignore mark
    // and the reads of it would go unseen. A recording alone needs not:
    // every chunk a reader asks for is recorded before its file can be
    // complete (readahead chunks are recorded as they are filled).
    if opts.max_disk.is_some() || (opts.record.is_some() && opts.prefetch.is_some()) {
        hyd = hyd.keep_stubs();
    }
    let recorder = opts.record.as_ref().map(|_| Arc::new(Recorder::default()));
    if let Some(r) = &recorder {
        hyd.record_into(r.clone());
    }
    (hyd, recorder)
}

/// What runs beside the event loop: the control socket and the prefetch.
struct Extras {
    stop: Arc<Stop>,
    control: Option<std::thread::JoinHandle<()>>,
    prefetch: Option<Prefetch>,
}

impl Extras {
    fn start(ctx: &Arc<Ctx>, dir: &Path, profile: Option<Profile>) -> Result<Extras, Error> {
        let stop = Arc::new(Stop::new().map_err(|e| Error::Setup(format!("eventfd: {e}")))?);
        let c = ctx.clone();
        let control = super::control::listen(Stage::open(dir)?, stop.clone(), move |stage, req| match req {
            Request::Dehydrate(o) => match super::dehydrate::dehydrate_served(stage, &c.hydrator, &c.events, &o) {
                Ok(s) => {
                    if let Some(b) = &c.budget {
                        b.note_evicted(s.chunk_bytes_freed, s.dehydrated);
                    }
                    Reply::Dehydrated(s)
                }
                Err(e) => Reply::Failed(super::chain(&e)),
            },
        })?;
        let prefetch = profile.map(|p| {
            let host: Arc<dyn PrefetchHost> = ctx.clone();
            let pf = Prefetch::start(host, &p, ctx.opts.prefetch_threads);
            let _ = ctx.prefetch.set(pf.stats.clone());
            pf
        });
        Ok(Extras { stop, control: Some(control), prefetch })
    }

    fn stop(mut self) {
        if let Some(p) = self.prefetch.take() {
            p.stop();
        }
        self.stop.request();
        if let Some(c) = self.control.take() {
            let _ = c.join();
        }
    }
}

impl PrefetchHost for Ctx {
    fn hydrator(&self) -> &Hydrator {
        &self.hydrator
    }

    fn open(&self, rel: &[u8]) -> Option<std::fs::File> {
        open_rel(self.tree.as_fd(), rel, OFlags::RDWR).ok().flatten()
    }

    fn readers_waiting(&self) -> usize {
        self.events.in_flight()
    }

    fn finished(&self, st: &FileState, fd: std::os::fd::BorrowedFd<'_>) {
        self.finish(st, fd);
    }

    fn make_room(&self, need: u64) -> Option<Room<'_>> {
        self.budget.as_ref().map(|b| b.make_room(&self.hydrator, &self.events, need))
    }
}

/// The event loop: dispatch, sweep deadlines, save statistics each second.
fn serve_until(ctx: &Arc<Ctx>, stage: &Stage, stop: &Stop, started: Instant, buf: &mut [u8]) -> Result<(), Error> {
    let mut last_save = Instant::now();
    while !stop.requested() {
        if stop.wait(ctx.events.fan().as_fd(), Some(Duration::from_millis(50))).map_err(|e| Error::io("fanotify", e))? {
            ctx.dispatch(buf)?;
        }
        if last_save.elapsed() > Duration::from_secs(1) {
            ctx.events.sweep();
            save_stats(stage, &ctx.stats(started, true));
            last_save = Instant::now();
        }
    }
    Ok(())
}

/// After the detach: answer readers that still hold stubs until they have
/// been quiet for the drain time and nothing is in flight.
fn drain(ctx: &Arc<Ctx>, buf: &mut [u8]) {
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < ctx.opts.drain || ctx.busy() {
        match ctx.events.fan().wait_readable(Some(Duration::from_millis(20))) {
            Ok(true) => {
                if ctx.dispatch(buf).is_err() {
                    break;
                }
                quiet_since = Instant::now();
            }
            Ok(false) => {
                ctx.events.sweep();
            }
            Err(_) => break,
        }
    }
}

/// Marks what `scope` asks for before anything is mounted: every stub, or
/// (for [`MarkScope::Mount`], or too many stubs for [`MarkScope::Auto`])
/// nothing yet, the mount being marked by [`ServedMount::attach`].
fn watch(fan: &Fanotify, stage: &Stage, scope: MarkScope, auto_limit: u64) -> Result<(Watched, u64, u64), Error> {
    let t = Instant::now();
    let limit = match scope {
        MarkScope::Mount => return Ok((Watched::Mount, 0, 0)),
        MarkScope::Stubs => None,
        MarkScope::Auto => Some(auto_limit),
    };
    let marked = mark_stubs(fan, stage, limit)?;
    let ms = t.elapsed().as_millis() as u64;
    match marked {
        Marked::Stubs(n) => {
            tracing::info!("watching {n} stubs (inode marks, {ms} ms)");
            Ok((Watched::Stubs, n, ms))
        }
        Marked::TooMany => {
            tracing::warn!("more than {auto_limit} stubs: watching the mount instead of each stub (--marks stubs forces it)");
            Ok((Watched::Mount, 0, ms))
        }
    }
}

/// Gives the calling thread, and the threads it starts, nice value `nice`.
/// A reader blocked on an event waits for these threads, so under load they
/// should run before the readers' own work. Not fatal: a daemon without
/// CAP_SYS_NICE keeps its nice value.
fn set_nice(nice: i32) {
    use rustix::process::{setpriority_process, Pid};
    let tid = rustix::thread::gettid();
    if let Err(e) = setpriority_process(Pid::from_raw(tid.as_raw_nonzero().get()), nice) {
        tracing::debug!("cannot set the daemon's nice value to {nice}: {e}");
    }
}

/// Every event carries an fd and readahead keeps some: use as many as the
/// guard can sweep after a crash (see [`MAX_EVENT_FD`]).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    let want = lim.maximum.unwrap_or(u64::MAX).min(MAX_EVENT_FD as u64);
    if lim.current.is_some_and(|c| c != want) {
        lim.current = Some(want);
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

fn save_stats(stage: &Stage, stats: &ServeStats) {
    if let Err(e) = stage.write_file(STATS, &serde_json::to_vec_pretty(stats).unwrap_or_default()) {
        tracing::warn!("cannot save statistics: {}", super::chain(&e));
    }
}

/// Reads the last saved statistics of a tree.
pub fn load_stats(stage: &Stage) -> Option<ServeStats> {
    serde_json::from_slice(&stage.read_file(STATS).ok()??).ok()
}
