//! Issue #7 soak: 2,000 stubs under 64 reader threads (preads at random
//! offsets, whole reads, mmaps, execs of stub executables), writers and
//! renames, while the daemon is killed (SIGKILL) at random points and
//! restarted. No successful read may ever return a byte that is neither the
//! archive's nor one a writer put there. Afterwards `thaw verify` is clean,
//! every file is exact, and the daemon's fds and RSS stayed bounded.
//!
//! `THAW_SOAK_SECS` (default 30) sets the duration, `THAW_SOAK_SEED` the
//! seed (printed; by default taken from the clock). The workload runs in a
//! helper process (see `support/helper.rs`), restarted if the guard of a
//! dead daemon stops it; its writers log each write to a file first, so
//! what users wrote survives that.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{data, thaw, Rng};
use crate::helper::Helper;
use crate::safety::{serve, stop_within};
use crate::served::{is_mount_point, Setup};
use crate::support;

const FILES: usize = 2000;
const EXECS: usize = 10;
const WRITABLE: usize = 40;
const RENAMED: usize = 50;
const READERS: usize = 64;
const WRITERS: usize = 4;
const MAX_FDS: usize = 200;
const MAX_RSS_KIB: u64 = 300 << 10;

/// The byte a writer puts at offset `off` of any file (so a reader can tell
/// it from a wrong byte).
fn user_byte(off: u64) -> u8 {
    ((off / 7) as u8) ^ 0xC3
}

/// The deterministic tree: executables, writable files, files that get
/// renamed, and the rest in 40 directories; sizes from empty to 3 MiB
/// (several 128 KiB frames).
fn make_tree(src: &Path) {
    fs::create_dir_all(src.join("bin")).unwrap();
    for i in 0..EXECS {
        let p = src.join(format!("bin/true{i}"));
        fs::copy("/bin/true", &p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::create_dir_all(src.join("w")).unwrap();
    for i in 0..WRITABLE {
        fs::write(src.join(format!("w/w{i}")), data(5000 + i as u64, 64_000 + i * 37_000)).unwrap();
    }
    fs::create_dir_all(src.join("rn0")).unwrap();
    fs::create_dir_all(src.join("rn1")).unwrap();
    for i in 0..RENAMED {
        fs::write(src.join(format!("rn0/r{i}")), data(6000 + i as u64, 1000 + i * 9_000)).unwrap();
    }
    let mut r = Rng(77);
    for i in 0..FILES - EXECS - WRITABLE - RENAMED {
        let d = src.join(format!("d{}", i % 40));
        fs::create_dir_all(&d).unwrap();
        let len = if i % 100 == 0 {
            (1 << 20) + r.below(2 << 20) as usize
        } else if i % 10 == 0 {
            64_000 + r.below(240_000) as usize
        } else if i % 97 == 0 {
            0
        } else {
            1 + r.below(16_000) as usize
        };
        fs::write(d.join(format!("f{i}")), data(7000 + i as u64, len)).unwrap();
    }
}

/// Relative paths of every regular file under `src`, sorted.
fn list_files(src: &Path) -> Vec<String> {
    let mut all = Vec::new();
    crate::common::walk(src, &mut Vec::new(), &mut all);
    let mut files: Vec<String> = all
        .into_iter()
        .map(|r| String::from_utf8(r).unwrap())
        .filter(|r| src.join(r).metadata().map(|m| m.is_file()).unwrap_or(false))
        .collect();
    files.sort();
    files
}

/// Byte ranges `[start, end)` of one file.
type Ranges = Vec<(u64, u64)>;

/// Ranges writers tried (`maybe`) and finished (`sure`), from the write log.
#[derive(Default, Clone)]
struct Written {
    maybe: Vec<(u64, u64)>,
    sure: Vec<(u64, u64)>,
}

fn load_log(log: &Path) -> HashMap<String, Written> {
    let mut out: HashMap<String, Written> = HashMap::new();
    for line in fs::read_to_string(log).unwrap_or_default().lines() {
        let w: Vec<&str> = line.split(' ').collect();
        let [kind, rel, off, len] = w[..] else { continue }; // a line cut by a kill
        let (Ok(off), Ok(len)) = (off.parse::<u64>(), len.parse::<u64>()) else { continue };
        let e = out.entry(rel.to_string()).or_default();
        match kind {
            "M" => e.maybe.push((off, off + len)),
            "S" => e.sure.push((off, off + len)),
            _ => {}
        }
    }
    out
}

fn within(ranges: &[(u64, u64)], p: u64) -> bool {
    ranges.iter().any(|&(s, e)| s <= p && p < e)
}

/// Checks bytes read at `off` of a file whose archive bytes are `want`:
/// each byte is the archive's, or the writer's where a write was tried.
/// Returns a description of the first bad byte.
fn check(want: &[u8], off: u64, got: &[u8], maybe: &[(u64, u64)]) -> Option<String> {
    let end = off as usize + got.len();
    if end <= want.len() && want[off as usize..end] == *got {
        return None;
    }
    for (i, &b) in got.iter().enumerate() {
        let p = off + i as u64;
        let Some(&w) = want.get(p as usize) else {
            return Some(format!("read {} bytes past the end ({})", end - want.len(), want.len()));
        };
        if b != w && !(within(maybe, p) && b == user_byte(p)) {
            let zeros = got.iter().filter(|&&z| z == 0).count();
            return Some(format!("byte {p}: got {b:#04x}, archive has {w:#04x} ({zeros} of {} bytes read are zeros)", got.len()));
        }
    }
    None
}

/// The workload, run in a helper process: `DIR SRC LOG SEED SECS STOPFILE`.
/// Prints `violation ...` lines at once and a `stats ...` line at the end.
pub fn worker(args: &[String]) -> i32 {
    let (dir, src, log) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let seed: u64 = args[3].parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(args[4].parse().unwrap());
    let stop_file = PathBuf::from(&args[5]);
    let files = list_files(&src);
    let want: Arc<HashMap<String, Vec<u8>>> = Arc::new(files.iter().map(|r| (r.clone(), fs::read(src.join(r)).unwrap())).collect());
    let logged = load_log(&log);
    let maybe: Arc<HashMap<String, Mutex<Ranges>>> = Arc::new(
        files
            .iter()
            .filter(|r| r.starts_with("w/"))
            .map(|r| (r.clone(), Mutex::new(logged.get(r).map(|w| w.maybe.clone()).unwrap_or_default())))
            .collect(),
    );
    let log = Arc::new(Mutex::new(fs::OpenOptions::new().append(true).create(true).open(&log).unwrap()));
    let files = Arc::new(files);
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<[AtomicU64; 10]> = Arc::new(Default::default());
    const OK: usize = 0;
    const ENOENT: usize = 1;
    const EIO: usize = 2;
    const MMAPS: usize = 3;
    const EXECS_OK: usize = 4;
    const WRITES: usize = 5;
    const RENAMES: usize = 6;
    const BAD: usize = 7;
    const BYTES: usize = 8;
    const EPERM: usize = 9;
    let report = {
        let c = counters.clone();
        move |what: String| {
            if c[BAD].fetch_add(1, Ordering::SeqCst) < 50 {
                println!("HELPER: violation {what}");
                let _ = std::io::stdout().flush();
            }
        }
    };
    // A path's current location (renamed files move between rn0 and rn1).
    let locate = |dir: &Path, rel: &str| -> PathBuf {
        if let Some(r) = rel.strip_prefix("rn0/") {
            let p = dir.join(rel);
            if p.exists() {
                return p;
            }
            return dir.join("rn1").join(r);
        }
        dir.join(rel)
    };
    let tolerated = |e: &std::io::Error, c: &[AtomicU64; 10]| -> bool {
        match e.raw_os_error() {
            Some(libc::ENOENT) => {
                // DIR is not served (between a kill and the restart): do not spin.
                std::thread::sleep(Duration::from_millis(2));
                c[ENOENT].fetch_add(1, Ordering::Relaxed)
            }
            Some(libc::EIO) => c[EIO].fetch_add(1, Ordering::Relaxed),
            // What a reader got for an event pending when the daemon was
            // killed (observed on exec): an error, not wrong bytes.
            Some(libc::EPERM) => c[EPERM].fetch_add(1, Ordering::Relaxed),
            _ => return false,
        };
        true
    };
    let mut threads = Vec::new();
    for t in 0..READERS + WRITERS {
        let (dir, files, want, maybe, log, stop, c, report) =
            (dir.clone(), files.clone(), want.clone(), maybe.clone(), log.clone(), stop.clone(), counters.clone(), report.clone());
        threads.push(std::thread::spawn(move || {
            let mut r = Rng(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let writables: Vec<&String> = files.iter().filter(|f| f.starts_with("w/")).collect();
            let execs: Vec<&String> = files.iter().filter(|f| f.starts_with("bin/")).collect();
            while !stop.load(Ordering::Relaxed) {
                let writer = t >= READERS;
                let rel =
                    if writer { writables[r.below(writables.len() as u64) as usize] } else { &files[r.below(files.len() as u64) as usize] };
                let w = &want[rel];
                let path = locate(&dir, rel);
                let ranges = || maybe.get(rel).map(|m| m.lock().unwrap().clone()).unwrap_or_default();
                let op = r.below(90);
                if writer {
                    // writers only write (below)
                } else if op < 55 {
                    // A held handle: 1 to 8 preads at random offsets, up to
                    // 20 ms apart, so that kills land while it is open.
                    let f = match fs::File::open(&path) {
                        Ok(f) => f,
                        Err(e) => {
                            if !tolerated(&e, &c) {
                                report(format!("{rel}: open: {e}"));
                            }
                            continue;
                        }
                    };
                    for _ in 0..1 + r.below(8) {
                        let off = r.below(w.len() as u64 + 100);
                        let len = 1 + r.below(256 << 10) as usize;
                        let mut b = vec![0u8; len];
                        let mut n = 0;
                        let res = loop {
                            if n == len {
                                break Ok(());
                            }
                            match f.read_at(&mut b[n..], off + n as u64) {
                                Ok(0) => break Ok(()),
                                Ok(k) => n += k,
                                Err(e) => break Err(e),
                            }
                        };
                        b.truncate(n);
                        match res {
                            Ok(()) => {
                                let expect = (w.len() as u64).saturating_sub(off).min(len as u64) as usize;
                                if b.len() != expect {
                                    report(format!("{rel}: pread of {len} at {off} returned {} bytes, want {expect}", b.len()));
                                } else if let Some(why) = check(w, off, &b, &ranges()) {
                                    report(format!("{rel}: pread at {off}: {why}"));
                                } else {
                                    c[OK].fetch_add(1, Ordering::Relaxed);
                                    c[BYTES].fetch_add(b.len() as u64, Ordering::Relaxed);
                                }
                            }
                            Err(e) if tolerated(&e, &c) => break,
                            Err(e) => {
                                report(format!("{rel}: pread: {e}"));
                                break;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(r.below(20)));
                    }
                } else if op < 70 {
                    if w.len() > 256 << 10 {
                        continue; // whole reads of small files only: large stubs stay partial longer
                    }
                    match fs::read(&path) {
                        Ok(b) if b.len() != w.len() => report(format!("{rel}: read {} bytes of {}", b.len(), w.len())),
                        Ok(b) => match check(w, 0, &b, &ranges()) {
                            Some(why) => report(format!("{rel}: whole read: {why}")),
                            None => {
                                c[OK].fetch_add(1, Ordering::Relaxed);
                                c[BYTES].fetch_add(b.len() as u64, Ordering::Relaxed);
                            }
                        },
                        Err(e) if tolerated(&e, &c) => {}
                        Err(e) => report(format!("{rel}: read: {e}")),
                    }
                } else if op < 85 {
                    if w.is_empty() {
                        continue;
                    }
                    // SAFETY: nothing in the soak truncates files; writers only pwrite.
                    // A page-aligned range of up to 512 KiB (mapping it hydrates only that range).
                    let off = r.below(w.len() as u64) & !4095;
                    let len = (1 + r.below(512 << 10)).min(w.len() as u64 - off) as usize;
                    match fs::File::open(&path).and_then(|f| unsafe { memmap2::MmapOptions::new().offset(off).len(len).map(&f) }) {
                        Ok(m) => {
                            std::thread::sleep(Duration::from_millis(r.below(10)));
                            // A copy first: the mapping is a live view, and a
                            // write after `ranges()` was taken could show in it.
                            let b = m[..].to_vec();
                            match check(w, off, &b, &ranges()) {
                                Some(why) => report(format!("{rel}: mmap at {off}: {why}")),
                                None => {
                                    c[MMAPS].fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Err(e) if tolerated(&e, &c) => {}
                        Err(e) => report(format!("{rel}: mmap: {e}")),
                    }
                } else {
                    // exec a stub executable
                    let rel = execs[r.below(execs.len() as u64) as usize];
                    match std::process::Command::new(dir.join(rel)).stdin(std::process::Stdio::null()).status() {
                        Ok(st) if st.success() => {
                            c[EXECS_OK].fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(st) => {
                            use std::os::unix::process::ExitStatusExt;
                            if st.signal() != Some(libc::SIGKILL) {
                                report(format!("{rel}: exec of a stub /bin/true ended with {st}"));
                            }
                        }
                        Err(e) if tolerated(&e, &c) => {}
                        Err(e) => report(format!("{rel}: exec: {e}")),
                    }
                }
                if writer {
                    let off = r.below(w.len() as u64);
                    let len = (1 + r.below(16 << 10)).min(w.len() as u64 - off);
                    maybe[rel].lock().unwrap().push((off, off + len));
                    let _ = log.lock().unwrap().write_all(format!("M {rel} {off} {len}\n").as_bytes());
                    let bytes: Vec<u8> = (off..off + len).map(user_byte).collect();
                    match fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.write_all_at(&bytes, off)) {
                        Ok(()) => {
                            let _ = log.lock().unwrap().write_all(format!("S {rel} {off} {len}\n").as_bytes());
                            c[WRITES].fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) if tolerated(&e, &c) => {}
                        Err(e) => report(format!("{rel}: write: {e}")),
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }));
    }
    // The renamer.
    {
        let (dir, stop, c) = (dir.clone(), stop.clone(), counters.clone());
        threads.push(std::thread::spawn(move || {
            let mut r = Rng(seed ^ 0xABCD);
            while !stop.load(Ordering::Relaxed) {
                let i = r.below(RENAMED as u64);
                let (a, b) = (dir.join(format!("rn0/r{i}")), dir.join(format!("rn1/r{i}")));
                if fs::rename(&a, &b).or_else(|_| fs::rename(&b, &a)).is_ok() {
                    c[RENAMES].fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    while Instant::now() < deadline && !stop_file.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let v = |i: usize| counters[i].load(Ordering::Relaxed);
    println!(
        "HELPER: stats ok_reads={} bytes={} mmaps={} execs={} writes={} renames={} enoent={} eio={} eperm={} violations={}",
        v(OK),
        v(BYTES),
        v(MMAPS),
        v(EXECS_OK),
        v(WRITES),
        v(RENAMES),
        v(ENOENT),
        v(EIO),
        v(EPERM),
        v(BAD)
    );
    0
}

/// Samples the daemon's fd count and RSS every 100 ms (the pid changes at
/// each restart; 0 = none running).
struct Sampler {
    pid: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    max: Arc<Mutex<(usize, u64, u64)>>, // fds, rss KiB, samples
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Sampler {
        let (pid, stop, max) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new((0, 0, 0))));
        let thread = {
            let (pid, stop, max) = (pid.clone(), stop.clone(), max.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let p = pid.load(Ordering::Relaxed);
                    if p != 0 {
                        if let (Some(f), Some(r)) = (support::fd_count(p), support::rss_kib(p)) {
                            let mut m = max.lock().unwrap();
                            *m = (m.0.max(f), m.1.max(r), m.2 + 1);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Sampler { pid, stop, max, thread: Some(thread) }
    }

    fn watch(&self, served: &crate::served::Served) {
        self.pid.store(served.child.as_ref().map_or(0, |c| c.id()), Ordering::Relaxed);
    }

    fn finish(mut self) -> (usize, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        *self.max.lock().unwrap()
    }
}

#[test]
fn soak_kill_and_restart_the_daemon_under_readers_writers_and_renames() {
    let secs: u64 = std::env::var("THAW_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let seed: u64 = std::env::var("THAW_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_007);
    eprintln!("soak: {secs} s, seed {seed} (THAW_SOAK_SEED={seed} repeats the kill schedule)");
    let s = Setup::new("soak", "128K", make_tree);
    let files = list_files(&s.src);
    assert_eq!(files.len(), FILES, "the soak tree");
    let log = s.scratch.join("writes.log");
    fs::write(&log, "").unwrap();
    let stop_file = s.scratch.join("stop");
    let sampler = Sampler::start();
    let mut served = Some(serve(&s.archive, &s.dir, &[], &[]));
    sampler.watch(served.as_ref().unwrap());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let worker_args = |run: u64| -> Vec<String> {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs() + 5;
        [
            s.dir.to_str().unwrap(),
            s.src.to_str().unwrap(),
            log.to_str().unwrap(),
            &(seed + run).to_string(),
            &left.to_string(),
            stop_file.to_str().unwrap(),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let spawn_worker = |run: u64| {
        let a = worker_args(run);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        Helper::spawn("soak", &a, false)
    };
    let mut runs = 0u64;
    let mut worker = spawn_worker(runs);
    let mut lines: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut r = Rng(seed);
    let mut kills = 0;
    while Instant::now() < deadline {
        let nap = Duration::from_millis(1500 + r.below(3500));
        std::thread::sleep(nap.min(deadline.saturating_duration_since(Instant::now())));
        if Instant::now() >= deadline {
            break;
        }
        served.take().expect("serving").kill();
        kills += 1;
        let t = Instant::now();
        while is_mount_point(&s.dir) && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if is_mount_point(&s.dir) {
            failures.push(format!("kill {kills}: the guard did not unmount DIR within 10 s"));
            break;
        }
        std::thread::sleep(Duration::from_millis(r.below(300)));
        served = Some(serve(&s.archive, &s.dir, &[], &[]));
        sampler.watch(served.as_ref().unwrap());
        lines.extend(worker.results());
        if !worker.alive() {
            // The guard stopped it (it held stubs of the dead daemon's tree).
            let out = std::mem::replace(&mut worker, spawn_worker(runs + 1)).finish(Duration::from_secs(5));
            lines.extend(out.lines);
            runs += 1;
        }
    }
    fs::write(&stop_file, "").unwrap();
    let out = worker.finish(Duration::from_secs(60));
    if out.status.is_none() {
        failures.push("the workload did not stop within 60 s of being asked (a reader blocked?)".into());
    }
    lines.extend(out.lines);
    sampler.pid.store(0, Ordering::Relaxed);
    let log_text = served.take().map(|sv| stop_within(sv, Duration::from_secs(60))).unwrap_or_default();
    let (max_fds, max_rss, samples) = sampler.finish();
    let violations: Vec<&String> = lines.iter().filter(|l| l.starts_with("violation")).collect();
    let stats: Vec<&String> = lines.iter().filter(|l| l.starts_with("stats")).collect();
    eprintln!(
        "soak: {:.0} s, seed {seed}, {kills} kills, {} workload processes; daemon max {max_fds} fds, max RSS {} MiB ({samples} samples)",
        started.elapsed().as_secs_f64(),
        runs + 1,
        max_rss >> 10
    );
    for st in &stats {
        eprintln!("soak: {st}");
    }
    if kills == 0 {
        failures.push("the daemon was never killed (THAW_SOAK_SECS too small?)".into());
    }
    if samples == 0 {
        failures.push("no fd/RSS sample of the daemon was taken".into());
    }
    if !violations.is_empty() {
        let shown: Vec<&str> = violations.iter().take(10).map(|s| s.as_str()).collect();
        failures.push(format!(
            "{} reads saw bytes that are neither the archive's nor a writer's:\n  {}",
            violations.len(),
            shown.join("\n  ")
        ));
    }
    if max_fds >= MAX_FDS {
        failures.push(format!("the daemon held up to {max_fds} fds (bound {MAX_FDS})"));
    }
    if max_rss >= MAX_RSS_KIB {
        failures.push(format!("the daemon's RSS reached {} MiB (bound {} MiB)", max_rss >> 10, MAX_RSS_KIB >> 10));
    }
    // verify: clean, user-written files reported apart.
    let v = thaw([std::ffi::OsStr::new("verify"), s.dir.as_os_str()]);
    let text = format!("{}{}", String::from_utf8_lossy(&v.stdout), v.stderr);
    if v.code != 0 || !text.contains(" 0 problem(s)") {
        let head: Vec<&str> = text.lines().take(12).collect();
        failures.push(format!("thaw verify after the soak exited {}:\n  {}", v.code, head.join("\n  ")));
    }
    // Every file exact: the archive's bytes, the writers' where they wrote.
    let written = load_log(&log);
    let served = serve(&s.archive, &s.dir, &[], &[]);
    let mut wrong = Vec::new();
    for rel in &files {
        let want = s.src_file(rel);
        let path = match rel.strip_prefix("rn0/") {
            Some(n) if !s.dir.join(rel).exists() => s.dir.join("rn1").join(n),
            _ => s.dir.join(rel),
        };
        let got = match fs::read(&path) {
            Ok(g) => g,
            Err(e) => {
                wrong.push(format!("{rel}: {e}"));
                continue;
            }
        };
        let w = written.get(rel.as_str()).cloned().unwrap_or_default();
        if got.len() != want.len() {
            wrong.push(format!("{rel}: {} bytes, want {}", got.len(), want.len()));
            continue;
        }
        if let Some(p) = (0..got.len() as u64).find(|&p| {
            let (g, a, u) = (got[p as usize], want[p as usize], user_byte(p));
            if within(&w.sure, p) {
                g != u
            } else {
                g != a && !(within(&w.maybe, p) && g == u)
            }
        }) {
            wrong.push(format!(
                "{rel}: byte {p} is {:#04x} (archive {:#04x}, writer {:#04x})",
                got[p as usize],
                want[p as usize],
                user_byte(p)
            ));
        }
    }
    stop_within(served, Duration::from_secs(60));
    if !wrong.is_empty() {
        failures.push(format!(
            "{} files are not exact after the soak:\n  {}",
            wrong.len(),
            wrong.iter().take(10).cloned().collect::<Vec<_>>().join("\n  ")
        ));
    }
    assert!(failures.is_empty(), "soak (seed {seed}) failed:\n- {}\n(last daemon log:\n{})", failures.join("\n- "), tail(&log_text, 20));
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
