//! The whole pre-content chain on the running kernel, through `thaw::sys`
//! and std only: a sparse stub behind a bind mount, a mount mark, a thread
//! that fills data through the event fd, then reads, mmap, denial and
//! ignore marks checked from the reader's side.

mod support;

use std::fs::{self, File};
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use thaw::sys::fanotify::{Event, Fanotify, Mask, Range, Response};

const SIZE: usize = 8 << 20;
const PAGE: u64 = 4096;

/// Deterministic, essentially hole-free bytes (a zero page would hide a
/// missed hydration).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// xorshift64: enough randomness for offsets, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `mount --bind STAGE VIEW`, detached on drop (also when a test fails).
struct BindMount {
    view: PathBuf,
}

impl BindMount {
    fn new(stage: &Path, view: &Path) -> BindMount {
        rustix::mount::mount_bind(stage, view).unwrap_or_else(|e| panic!("mount --bind {} {}: {e}", stage.display(), view.display()));
        BindMount { view: view.to_owned() }
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        if let Err(e) = rustix::mount::unmount(&self.view, rustix::mount::UnmountFlags::DETACH) {
            eprintln!("umount -l {}: {e}", self.view.display());
        }
    }
}

/// A stage dir of sparse stubs, bind-mounted on a view dir. Field order is
/// drop order: unmount before the scratch dir goes.
struct Fixture {
    mount: BindMount,
    stage: PathBuf,
    view: PathBuf,
    source: Arc<Vec<u8>>,
    _dir: support::ScratchDir,
}

impl Fixture {
    fn new(name: &str, stubs: &[&str]) -> Fixture {
        let dir = support::scratch_dir(name);
        let (stage, view) = (dir.join("stage"), dir.join("view"));
        fs::create_dir(&stage).unwrap();
        fs::create_dir(&view).unwrap();
        for stub in stubs {
            File::create(stage.join(stub)).unwrap().set_len(SIZE as u64).unwrap();
        }
        Fixture { mount: BindMount::new(&stage, &view), stage, view, source: Arc::new(pattern(SIZE, 0x7468_6177)), _dir: dir }
    }

    fn group(&self, mask: Mask) -> Fanotify {
        let group = Fanotify::new_pre_content().expect("fanotify_init");
        group.mark_mount(&self.mount.view, mask).expect("fanotify_mark mount");
        group
    }
}

/// What the serving thread saw: one entry per event.
#[derive(Clone, Debug)]
struct Seen {
    mask: Mask,
    pid: i32,
    range: Option<Range>,
    ino: u64,
    respond_error: Option<i32>,
}

type Handler = Box<dyn FnMut(&Fanotify, &Event, &File) -> io::Result<Response> + Send>;

/// Serves one group on a thread. The thread owns the group, so if it panics
/// the group closes, blocked readers are released, and the test fails on
/// its checks instead of hanging.
struct Server {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn spawn(group: Fanotify, mut handler: Handler) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            while !stop2.load(Ordering::Relaxed) {
                if !group.wait_readable(Some(Duration::from_millis(20))).expect("poll") {
                    continue;
                }
                for event in group.read_events(&mut buf).expect("read events") {
                    let fd = event.fd().expect("permission event without fd");
                    let file = File::from(fd.try_clone_to_owned().expect("dup event fd"));
                    let ino = file.metadata().expect("fstat event fd").ino();
                    let response = handler(&group, &event, &file).unwrap_or(Response::DenyErrno(libc::EIO));
                    // Hold the record lock across the answer, so a reader that
                    // resumes and asks what was seen finds this event listed.
                    let mut seen = seen2.lock().unwrap();
                    let respond_error = match group.respond(fd, response) {
                        Ok(()) => None,
                        Err(e) => {
                            // Never leave a reader blocked.
                            group.respond(fd, Response::DenyErrno(libc::EIO)).expect("fallback respond");
                            Some(e.raw_os_error().unwrap_or(-1))
                        }
                    };
                    seen.push(Seen { mask: event.mask, pid: event.pid, range: event.range, ino, respond_error });
                }
            }
        });
        Server { stop, seen, thread: Some(thread) }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops the thread and fails the test if it panicked.
    fn finish(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(panic) = self.thread.take().unwrap().join() {
            std::panic::resume_unwind(panic);
        }
        self.seen()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes `source[range]` (clamped to the file) through the event's file.
fn hydrate(file: &File, source: &[u8], range: Range) -> io::Result<()> {
    let start = range.offset.min(source.len() as u64) as usize;
    let end = range.end().min(source.len() as u64) as usize;
    file.write_all_at(&source[start..end], start as u64)
}

fn hydrate_range(source: Arc<Vec<u8>>) -> Handler {
    Box::new(move |_, event, file| {
        let range = event.range.expect("PRE_ACCESS event without a range record");
        hydrate(file, &source, range)?;
        Ok(Response::Allow)
    })
}

fn ino(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i} (got {:#04x}, want {:#04x})", got[i], want[i]);
    }
    assert_eq!(got.len(), want.len(), "{what}: length");
}

fn mmap_whole(file: &File) -> memmap2::Mmap {
    // SAFETY: the mapping is only read while the file stays open, and
    // nothing truncates the stub during the test.
    unsafe { memmap2::Mmap::map(file) }.expect("mmap")
}

#[test]
fn pread_and_mmap_through_the_view_are_hydrated() {
    let fx = Fixture::new("hydrate", &["pread.bin", "mmap.bin"]);
    let server = Server::spawn(fx.group(Mask::PRE_ACCESS), hydrate_range(fx.source.clone()));

    // Random preads through the view see the source bytes.
    let stub = File::open(fx.view.join("pread.bin")).unwrap();
    let mut rng = Rng(42);
    let mut read = Vec::new();
    for _ in 0..200 {
        let offset = rng.below(SIZE as u64);
        let len = (1 + rng.below(128 * 1024)).min(SIZE as u64 - offset) as usize;
        let mut buf = vec![0u8; len];
        stub.read_exact_at(&mut buf, offset).unwrap();
        let at = offset as usize;
        assert_same(&buf, &fx.source[at..at + len], &format!("pread({offset}, {len})"));
        read.push((offset, len as u64));
    }
    assert_eq!(stub.read_at(&mut [0u8; 16], SIZE as u64).unwrap(), 0, "read at EOF");

    let seen = server.seen();
    let pread_ino = ino(&fx.stage.join("pread.bin"));
    // One event per read, cached or not, including the read at EOF, whose
    // range lies wholly past the end: servers must clamp.
    assert_eq!(seen.len(), 201, "expected one event per pread");
    assert_eq!(seen.last().unwrap().range, Some(Range { offset: SIZE as u64, count: PAGE }));
    for s in &seen {
        assert_eq!(s.mask, Mask::PRE_ACCESS);
        assert_eq!(s.pid, i32::try_from(std::process::id()).unwrap());
        assert_eq!(s.ino, pread_ino);
        assert_eq!(s.respond_error, None);
        let r = s.range.unwrap();
        assert!(r.count > 0 && r.offset % PAGE == 0, "range not page aligned: {r:?}");
    }
    // Every byte read was covered by some event.
    for (offset, len) in read {
        assert!(
            seen.iter().filter_map(|s| s.range).any(|r| r.offset <= offset && offset + len <= r.end()),
            "no event covered pread({offset}, {len})"
        );
    }

    // The data landed in the stage file, and reading the stage raises nothing.
    let staged = fs::read(fx.stage.join("pread.bin")).unwrap();
    for r in seen.iter().filter_map(|s| s.range) {
        let (start, end) = (r.offset as usize, (r.end() as usize).min(SIZE));
        assert_same(&staged[start..end], &fx.source[start..end], "stage after hydration");
    }
    assert_eq!(server.seen().len(), seen.len(), "reads through the stage raised events");

    // mmap raises one event for the whole mapping, then pages fault in with none.
    let stub = File::open(fx.view.join("mmap.bin")).unwrap();
    let map = mmap_whole(&stub);
    assert_same(&map, &fx.source, "mmap of the stub");
    drop(map);
    let seen = server.finish();
    let mmap_ino = ino(&fx.stage.join("mmap.bin"));
    let mmap_events: Vec<_> = seen.iter().filter(|s| s.ino == mmap_ino).collect();
    assert_eq!(mmap_events.len(), 1, "{mmap_events:?}");
    assert_eq!(mmap_events[0].range.unwrap().offset, 0);
    assert!(mmap_events[0].range.unwrap().count >= SIZE as u64);
}

#[test]
fn deny_errno_fails_the_read_with_that_errno() {
    let fx = Fixture::new("deny", &["deny.bin"]);
    let server = Server::spawn(
        fx.group(Mask::PRE_ACCESS),
        Box::new(|_, event, _| {
            // ENOENT is not an errno the kernel lets a group return: respond
            // fails with EINVAL and the server falls back to EIO.
            Ok(if event.range.unwrap().offset == 0 {
                Response::DenyErrno(libc::EIO)
            } else if event.range.unwrap().offset == PAGE {
                Response::Deny
            } else {
                Response::DenyErrno(libc::ENOENT)
            })
        }),
    );
    let stub = File::open(fx.view.join("deny.bin")).unwrap();
    let mut buf = [0u8; 4096];
    let errno = |offset| stub.read_at(&mut buf.clone(), offset).unwrap_err().raw_os_error();
    assert_eq!(errno(0), Some(libc::EIO));
    assert_eq!(errno(PAGE), Some(libc::EPERM));
    assert_eq!(errno(2 * PAGE), Some(libc::EIO));
    let seen = server.finish();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[2].respond_error, Some(libc::EINVAL));
    // Denied reads left the stub a hole.
    stub.read_exact_at(&mut buf, 0).unwrap_or_else(|e| panic!("read after the group closed: {e}"));
    assert_eq!(buf, [0u8; 4096]);
}

#[test]
fn ignore_mark_stops_events_for_a_hydrated_file() {
    let fx = Fixture::new("ignore", &["ignore.bin", "control.bin"]);
    let source = fx.source.clone();
    let control_ino = ino(&fx.stage.join("control.bin"));
    let server = Server::spawn(
        fx.group(Mask::PRE_ACCESS),
        Box::new(move |group, event, file| {
            if file.metadata()?.ino() == control_ino {
                hydrate(file, &source, event.range.unwrap())?;
            } else {
                hydrate(file, &source, Range { offset: 0, count: SIZE as u64 })?;
                let fd: BorrowedFd<'_> = event.fd().unwrap();
                group.ignore_inode(fd, Mask::PRE_ACCESS)?;
            }
            Ok(Response::Allow)
        }),
    );

    for name in ["ignore.bin", "control.bin"] {
        let stub = File::open(fx.view.join(name)).unwrap();
        let mut whole = vec![0u8; SIZE];
        for (i, chunk) in whole.chunks_mut(PAGE as usize).enumerate() {
            stub.read_exact_at(chunk, i as u64 * PAGE).unwrap();
        }
        assert_same(&whole, &fx.source, name);
        assert_same(&mmap_whole(&stub), &fx.source, name);
    }

    let seen = server.finish();
    let count = |ino| seen.iter().filter(|s| s.ino == ino).count();
    assert_eq!(count(ino(&fx.stage.join("ignore.bin"))), 1, "events after the ignore mark");
    // Without the mark, every 4 KiB read and the mmap raise an event.
    assert_eq!(count(control_ino), SIZE / PAGE as usize + 1);
}

#[test]
fn open_perm_event_fd_is_writable() {
    let fx = Fixture::new("open", &["open.bin"]);
    let source = fx.source.clone();
    let server = Server::spawn(
        fx.group(Mask::OPEN_PERM),
        Box::new(move |_, event, file| {
            assert!(event.needs_response() && event.range.is_none());
            hydrate(file, &source, Range { offset: 0, count: SIZE as u64 })?;
            Ok(Response::Allow)
        }),
    );
    let got = fs::read(fx.view.join("open.bin")).unwrap();
    let seen = server.finish();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].mask, Mask::OPEN_PERM);
    assert_same(&got, &fx.source, "read after OPEN_PERM hydration");
}
