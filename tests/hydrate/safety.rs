//! Issue #7: what the daemon must never do, whatever users, root tools, a
//! full disk, a crash, a bug or a changed archive throw at it: hand one
//! file's archive bytes to another, lose track of user writes, show zeros
//! where archive data belongs, leave a reader blocked, or serve wrong bytes.
//! Attacks run as nobody; readers that must survive (or not) a dead daemon
//! run in their own processes (see `support/helper.rs`).

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{data, pack, thaw, write_entries};
use crate::helper::{self, Helper};
use crate::served::{is_mount_point, Served, Setup};
use crate::support::{self, drop_caches, get_xattr, scratch_dir, set_xattr, LoopFs};
use thaw::tree::marker::Marker;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// `thaw serve` with extra arguments and environment, ready within 30 s.
pub fn serve(archive: &Path, dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Served {
    let (child, log) = support::start_serve(archive, dir, extra, envs);
    Served { child: Some(child), dir: dir.to_path_buf(), stderr_log: log }
}

/// SIGTERM, then at most `limit` for a clean exit; returns the daemon's log.
pub fn stop_within(mut served: Served, limit: Duration) -> String {
    let mut child = served.child.take().expect("running");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
    let st = support::wait_deadline(&mut child, limit);
    let log = fs::read_to_string(&served.stderr_log).unwrap_or_default();
    match st {
        None => panic!("thaw serve did not stop within {limit:?} of SIGTERM (an event left unanswered?); log:\n{log}"),
        Some(st) => assert!(st.success(), "thaw serve exited with {st}; log:\n{log}"),
    }
    log
}

/// `thaw serve` that must refuse to start: returns its stderr. Fails if it
/// is still running after 15 s (it started serving).
fn serve_refused(archive: &Path, dir: &Path) -> String {
    let mut child = crate::common::thaw_cmd()
        .arg("serve")
        .arg(archive)
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let st = support::wait_deadline(&mut child, SECS(15));
    let mut err = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let st = st.unwrap_or_else(|| panic!("thaw serve {} {} was not refused: still running after 15 s", archive.display(), dir.display()));
    assert!(!st.success(), "thaw serve {} {} exited 0; stderr: {err}", archive.display(), dir.display());
    let _ = wait_for_unmounted(dir);
    err
}

fn wait_for_unmounted(dir: &Path) -> bool {
    let deadline = Instant::now() + SECS(10);
    while is_mount_point(dir) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The archive id, from `thaw info --json`.
fn archive_id(archive: &Path) -> String {
    let out = thaw([OsStr::new("info"), OsStr::new("--json"), archive.as_os_str()]).ok();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("info --json is JSON");
    v["id"].as_str().expect("info --json has an id").to_string()
}

/// The index of `rel`'s entry, from the order of `thaw ls --json`.
fn entry_index(archive: &Path, rel: &str) -> usize {
    let out = thaw([OsStr::new("ls"), OsStr::new("--json"), archive.as_os_str()]).ok();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ls --json is JSON");
    v.as_array().unwrap().iter().position(|e| e["path"] == rel).unwrap_or_else(|| panic!("{rel} not in `thaw ls --json`"))
}

pub fn stage_tree(dir: &Path) -> PathBuf {
    let name = format!(".{}.thaw", dir.file_name().unwrap().to_string_lossy());
    dir.parent().unwrap().join(name).join("tree")
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Where two byte strings first differ, for messages.
fn first_diff(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!("first difference at byte {i}: got {:#04x}, want {:#04x}", got[i], want[i]),
        None if got.len() != want.len() => format!("lengths differ: got {}, want {}", got.len(), want.len()),
        None => "equal".into(),
    }
}

// ---- 1. forged and copied markers -------------------------------------------------

#[test]
fn a_forged_user_marker_reads_its_own_zeros_never_the_secret() {
    let secret = data(901, 300_000);
    let s = Setup::new("forge", "64K", |src| {
        fs::write(src.join("secret"), &secret).unwrap();
        chmod(&src.join("secret"), 0o600);
        fs::create_dir(src.join("pub")).unwrap();
        chmod(&src.join("pub"), 0o1777);
    });
    let (id, entry) = (archive_id(&s.archive), entry_index(&s.archive, "secret"));
    let out = helper::out_dir(s.scratch.path());
    let served = serve(&s.archive, &s.dir, &[], &[]);
    let evil = s.dir.join("pub/evil");
    let size = secret.len().to_string();
    let r = helper::run("forge", &[evil.to_str().unwrap(), &size, &id, &entry.to_string()], true, SECS(30));
    assert_eq!(
        r.result.as_deref(),
        Some("trusted=1 user=ok"),
        "nobody must get EPERM (1) setting trusted.thaw and be allowed user.thaw on a file of its own: {r:?}"
    );
    assert_eq!(get_xattr(&evil, "user.thaw").unwrap().as_deref(), Some(format!("thaw1 {id} {entry}").as_bytes()));
    // Evict the inode and with it any ignore mark the daemon set on it.
    drop_caches();
    let got = out.join("evil");
    let r = helper::run("read", &[evil.to_str().unwrap(), got.to_str().unwrap()], true, SECS(30));
    assert_eq!(r.result.as_deref(), Some(format!("ok {size}").as_str()), "nobody reading its own file: {r:?}");
    let bytes = fs::read(&got).unwrap();
    assert!(bytes != secret, "nobody read the 0600 secret through a forged user.thaw marker");
    assert!(bytes.iter().all(|&b| b == 0), "the forged file must read as its own zeros: {}", first_diff(&bytes, &vec![0; bytes.len()]));
    // The secret was not hydrated on nobody's behalf either.
    let stage_secret = fs::File::open(stage_tree(&s.dir).join("secret")).unwrap();
    assert_eq!(stage_secret.metadata().unwrap().blocks(), 0, "reading the forged file hydrated the secret");
    stop_within(served, SECS(20));
}

/// What `cp -a` or `rsync -X` by root does to a stub: a new file, same size,
/// same xattrs. Made in the stage before serving (`before`), or through `DIR`
/// while served; read back through `DIR`. Returns the read's outcome, after
/// checking that no archive byte went into the copy.
fn read_copied_marker(name: &str, marks: &str, before: bool) -> Result<Vec<u8>, i32> {
    let orig = data(902, 200_000);
    let s = Setup::new(name, "64K", |src| fs::write(src.join("orig"), &orig).unwrap());
    let marker = get_xattr(&stage_tree(&s.dir).join("orig"), "trusted.thaw").unwrap().expect("a fresh stub carries trusted.thaw");
    let make_copy = |copy: &Path| {
        fs::File::create(copy).unwrap().set_len(orig.len() as u64).unwrap();
        set_xattr(copy, "trusted.thaw", &marker).unwrap();
    };
    if before {
        make_copy(&stage_tree(&s.dir).join("copy"));
    }
    let served = serve(&s.archive, &s.dir, &["--marks", marks], &[]);
    if !before {
        make_copy(&s.dir.join("copy"));
    }
    drop_caches();
    let r = helper::pread(&s.dir.join("copy"), 0, orig.len(), false);
    assert!(r.as_ref().map_or(true, |b| *b != orig), "{name}: a copied marker delivered the original entry's bytes");
    let staged = stage_tree(&s.dir).join("copy");
    assert_eq!(fs::metadata(&staged).unwrap().blocks(), 0, "{name}: archive bytes were written into the file with the copied marker");
    stop_within(served, SECS(20));
    r
}

#[test]
fn a_marker_copied_onto_another_file_fails_with_eperm_and_delivers_nothing() {
    // A copy the daemon watches (present at start, or under a mount mark) is refused.
    for (name, marks, before) in [("copied-start", "auto", true), ("copied-mount", "mount", false)] {
        match read_copied_marker(name, marks, before) {
            Ok(b) => panic!("{name}: reading a file with a copied marker must be refused; it read {} bytes", b.len()),
            Err(e) => assert_eq!(e, libc::EPERM, "{name}: a copied marker must be refused with EPERM, not errno {e}"),
        }
    }
    // Made while served with inode marks on the stubs, the copy is not watched
    // at all: an ordinary file that reads as what it holds.
    let b = read_copied_marker("copied-served", "stubs", false).unwrap_or_else(|e| panic!("copied-served: errno {e}"));
    assert!(b.iter().all(|&x| x == 0) && b.len() == 200_000, "an unwatched copy must read as its own zeros");
}

#[test]
fn archive_entries_cannot_set_thaws_marker_xattrs() {
    use thaw::archive::{Entry, EntryKind};
    let scratch = scratch_dir("xattrmark");
    let body = data(903, 5000);
    let hostile = |path: &[u8], size: usize| {
        let mut e = Entry::new(path.to_vec(), EntryKind::File);
        e.size = size as u64;
        e.mtime = 1_700_000_000;
        e.xattrs = vec![
            (b"trusted.thaw".to_vec(), b"thaw2 00112233445566778899aabbccddeeff 0 1".to_vec()),
            (b"user.keep".to_vec(), b"yes".to_vec()),
            (b"user.thaw".to_vec(), b"thaw1 00112233445566778899aabbccddeeff 0".to_vec()),
        ];
        e
    };
    let files = [(b"victim".to_vec(), body.clone()), (b"empty".to_vec(), Vec::new())].into_iter().collect();
    let bytes = write_entries(vec![hostile(b"empty", 0), hostile(b"victim", body.len())], &files, 64 * 1024);
    let archive = scratch.join("x.tar.zst");
    fs::write(&archive, bytes).unwrap();
    let (id, victim) = (archive_id(&archive), entry_index(&archive, "victim"));
    // populate
    let dir = scratch.join("lazy");
    thaw([OsStr::new("populate"), archive.as_os_str(), dir.as_os_str()]).ok();
    let tree = stage_tree(&dir);
    let v = tree.join("victim");
    let m = get_xattr(&v, "trusted.thaw").unwrap().expect("populate marks the stub");
    let m = Marker::parse(&m).unwrap_or_else(|| panic!("malformed marker {:?}", String::from_utf8_lossy(&m)));
    assert_eq!(
        (m.id.as_str(), m.entry, m.ino),
        (id.as_str(), victim, fs::metadata(&v).unwrap().ino()),
        "the archive's trusted.thaw replaced the stub's own marker"
    );
    for (name, p) in [("victim", &v), ("empty", &tree.join("empty"))] {
        assert_eq!(get_xattr(p, "user.thaw").unwrap(), None, "populate applied the archive's user.thaw to {name}");
        assert_eq!(get_xattr(p, "user.keep").unwrap().as_deref(), Some(&b"yes"[..]), "other xattrs of {name} must be kept");
    }
    assert_eq!(
        get_xattr(&tree.join("empty"), "trusted.thaw").unwrap(),
        None,
        "populate applied the archive's trusted.thaw to an empty file"
    );
    // extract
    let full = scratch.join("full");
    crate::common::extract(&archive, &full).ok();
    for name in ["victim", "empty"] {
        let p = full.join(name);
        assert_eq!(get_xattr(&p, "trusted.thaw").unwrap(), None, "extract applied the archive's trusted.thaw to {name}");
        assert_eq!(get_xattr(&p, "user.thaw").unwrap(), None, "extract applied the archive's user.thaw to {name}");
        assert_eq!(get_xattr(&p, "user.keep").unwrap().as_deref(), Some(&b"yes"[..]), "extract must keep other xattrs of {name}");
    }
    assert_eq!(fs::read(full.join("victim")).unwrap(), body);
}

// ---- 2. user writes are recorded -----------------------------------------------------

#[test]
fn user_writes_are_recorded_in_the_marker_and_verify_reports_them_apart() {
    let s = Setup::new("modified", "64K", |src| {
        fs::write(src.join("by_root"), data(911, 1 << 20)).unwrap();
        fs::write(src.join("by_nobody"), data(912, 1 << 20)).unwrap();
        chmod(&src.join("by_nobody"), 0o666);
        fs::write(src.join("read_only"), data(913, 400_000)).unwrap();
    });
    let writes = [("by_root", 300_000u64, 0xA5u8, false), ("by_nobody", 500_000, 0x5A, true)];
    let served = serve(&s.archive, &s.dir, &[], &[]);
    for &(rel, off, byte, nobody) in &writes {
        let p = s.dir.join(rel);
        if nobody {
            let r = helper::run("pwrite", &[p.to_str().unwrap(), &off.to_string(), "4096", &byte.to_string()], true, SECS(30));
            assert_eq!(r.result.as_deref(), Some("ok"), "nobody writing 4 KiB into {rel} (mode 0666): {r:?}");
        } else {
            let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.write_all_at(&[byte; 4096], off).unwrap();
        }
    }
    // A partial read of another file: compared by verify.
    let mut buf = vec![0u8; 100_000];
    fs::File::open(s.dir.join("read_only")).unwrap().read_exact_at(&mut buf, 0).unwrap();
    stop_within(served, SECS(20));
    // The record of each write is the file's mtime, which the user's write
    // changed in the same inode update as the data (thaw puts the entry's
    // mtime back after its own writes); verify and status read it.
    for &(rel, ..) in &writes {
        let raw = get_xattr(&stage_tree(&s.dir).join(rel), "trusted.thaw").unwrap();
        let raw = raw.unwrap_or_else(|| panic!("{rel}: written but not complete, yet it has no trusted.thaw marker"));
        assert!(Marker::parse(&raw).is_some(), "{rel}: malformed marker {:?}", String::from_utf8_lossy(&raw));
    }
    let v = thaw([OsStr::new("verify"), s.dir.as_os_str()]);
    let text = format!("{}{}", String::from_utf8_lossy(&v.stdout), v.stderr);
    assert_eq!(v.code, 0, "verify must not count user-written bytes as problems:\n{text}");
    for &(rel, ..) in &writes {
        assert!(text.lines().any(|l| l.contains(rel) && l.contains("modified")), "verify must report {rel} as modified:\n{text}");
    }
    assert!(text.contains(" 0 problem(s)"), "{text}");
    let st = s.status();
    assert_eq!(st["files_modified"], 2, "status --json must count the two written files as modified: {st}");
    // The user's bytes are intact, everything else is the archive's.
    let again = serve(&s.archive, &s.dir, &[], &[]);
    for &(rel, off, byte, _) in &writes {
        let mut want = s.src_file(rel);
        want[off as usize..off as usize + 4096].fill(byte);
        let got = helper::pread(&s.dir.join(rel), 0, want.len(), false).unwrap_or_else(|e| panic!("{rel} after a restart: errno {e}"));
        assert!(got == want, "{rel} after a restart: {}", first_diff(&got, &want));
    }
    stop_within(again, SECS(20));
}

// ---- 3. disk full ----------------------------------------------------------------------

/// Fills the filesystem of `small` with `filler`, then frees `leave` bytes.
fn fill(small: &LoopFs, filler: &Path, leave: u64) {
    let f = fs::File::create(filler).unwrap();
    let chunk = vec![0x77u8; 1 << 20];
    let mut off = 0u64;
    loop {
        match f.write_at(&chunk, off) {
            Ok(n) => off += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", filler.display()),
        }
    }
    f.sync_all().ok();
    // What statfs calls free but no write could use (ext4 keeps clusters back).
    let slack = small.free();
    f.set_len(off.saturating_sub(leave)).unwrap();
    f.sync_all().unwrap();
    assert!(small.free() <= slack + leave + (64 << 10), "the small filesystem has {} bytes free, want about {leave}", small.free() - slack);
}

#[test]
fn a_full_disk_fails_reads_with_enospc_and_they_succeed_once_space_is_freed() {
    let scratch = scratch_dir("full");
    let src = scratch.join("src");
    fs::create_dir(&src).unwrap();
    let (one, two) = (data(921, 8 << 20), data(922, 8 << 20));
    fs::write(src.join("one"), &one).unwrap();
    fs::write(src.join("two"), &two).unwrap();
    let archive = scratch.join("a.tar.zst");
    pack(&src, &archive, "1M");
    let small = LoopFs::new(scratch.path(), 32 << 20);
    let dir = small.path().join("lazy");
    thaw([OsStr::new("populate"), archive.as_os_str(), dir.as_os_str()]).ok();
    let filler = small.path().join("filler");
    // 600 KiB free: the first 1 MiB chunk is written in part, then ENOSPC.
    fill(&small, &filler, 600 << 10);
    let (off, len) = (2u64 << 20, 4usize << 20);
    let want = |d: &[u8]| d[off as usize..off as usize + len].to_vec();
    {
        let served = serve(&archive, &dir, &[], &[]);
        match helper::pread(&dir.join("one"), off, len, false) {
            Ok(b) => panic!("a read that needs 4 MiB hydrated on a full disk succeeded ({})", first_diff(&b, &want(&one))),
            Err(e) => assert_eq!(e, libc::ENOSPC, "the reader must get ENOSPC ({}) when the stage is full, got errno {e}", libc::ENOSPC),
        }
        fs::remove_file(&filler).unwrap();
        let r = helper::pread(&dir.join("one"), off, len, false).unwrap_or_else(|e| panic!("the same read once space is free: errno {e}"));
        assert!(r == want(&one), "one after freeing space: {}", first_diff(&r, &want(&one)));
        // Full again, and this time the daemon stops before space comes back:
        // a restarted daemon must not take the partial chunk for a whole one.
        fill(&small, &filler, 600 << 10);
        let r = helper::pread(&dir.join("two"), off, len, false);
        assert_eq!(r.as_ref().err(), Some(&libc::ENOSPC), "second full-disk read: {:?}", r.as_ref().map(|b| b.len()));
        stop_within(served, SECS(20));
    }
    fs::remove_file(&filler).unwrap();
    let served = serve(&archive, &dir, &[], &[]);
    let r = helper::pread(&dir.join("two"), off, len, false).unwrap_or_else(|e| panic!("read after a restart with space free: errno {e}"));
    assert!(r == want(&two), "two after a restart: {}", first_diff(&r, &want(&two)));
    stop_within(served, SECS(20));
    let v = thaw([OsStr::new("verify"), dir.as_os_str()]);
    let text = format!("{}{}", String::from_utf8_lossy(&v.stdout), v.stderr);
    assert!(v.code == 0 && text.contains(" 0 problem(s)"), "verify after the full disk:\n{text}");
}

// ---- 4. the daemon dies under open readers ----------------------------------------------

/// Files for the readers: 2 MiB each in 64 KiB frames.
fn two_files(src: &Path) {
    fs::write(src.join("held"), data(931, 2 << 20)).unwrap();
    fs::write(src.join("mapped"), data(932, 2 << 20)).unwrap();
}

/// What one held reader saw after the daemon died.
fn judge(what: &str, out: &helper::Outcome, got: &Path, want: &[u8]) -> &'static str {
    if out.signal().is_some() {
        return "killed";
    }
    let res = out.result.as_deref().unwrap_or_else(|| panic!("{what}: no result (blocked? killed by the test's deadline?): {out:?}"));
    if res == "err 5" {
        return "EIO";
    }
    assert!(res.starts_with("ok "), "{what}: unexpected result {res:?}: {out:?}");
    let bytes = fs::read(got).unwrap();
    if bytes != want {
        let zeros = bytes.iter().filter(|&&b| b == 0).count();
        panic!("{what} read wrong bytes after the daemon was killed ({zeros} of {} are zeros; {})", bytes.len(), first_diff(&bytes, want));
    }
    "right bytes"
}

fn hold_two_readers(s: &Setup, out: &Path) -> (Helper, Helper) {
    let (held, mapped) = (s.dir.join("held"), s.dir.join("mapped"));
    let mut a = Helper::spawn("hold", &[held.to_str().unwrap(), "pread", "1048576", "524288", out.join("held").to_str().unwrap()], true);
    let mut b = Helper::spawn("hold", &[mapped.to_str().unwrap(), "mmap", "1048576", "524288", out.join("mapped").to_str().unwrap()], true);
    assert_eq!(a.expect("", SECS(30)).as_deref(), Some("held"), "the pread reader could not open its stub");
    assert_eq!(b.expect("", SECS(30)).as_deref(), Some("held"), "the mmap reader could not map its stub");
    (a, b)
}

#[test]
fn a_killed_daemon_never_lets_open_readers_see_zeros() {
    let s = Setup::new("deathread", "64K", two_files);
    let out = helper::out_dir(s.scratch.path());
    let served = serve(&s.archive, &s.dir, &[], &[]);
    let (mut a, mut b) = hold_two_readers(&s, &out);
    served.kill();
    assert!(wait_for_unmounted(&s.dir), "the guard did not take DIR away within 10 s of the daemon's death");
    // Give the guard a moment to stop the readers, as it may.
    std::thread::sleep(Duration::from_millis(500));
    a.say("read");
    b.say("read");
    let (ra, rb) = (a.finish(SECS(10)), b.finish(SECS(10)));
    let wa = s.src_file("held")[1 << 20..(1 << 20) + (512 << 10)].to_vec();
    let wb = s.src_file("mapped")[1 << 20..(1 << 20) + (512 << 10)].to_vec();
    let sa = judge("the reader holding an untouched stub open", &ra, &out.join("held"), &wa);
    let sb = judge("the reader holding a stub mapped", &rb, &out.join("mapped"), &wb);
    eprintln!("after kill -9: pread reader {sa}, mmap reader {sb}");
}

#[test]
fn with_no_kill_readers_open_readers_of_a_dead_daemon_get_eio() {
    let s = Setup::new("deatheio", "64K", two_files);
    let out = helper::out_dir(s.scratch.path());
    let served = serve(&s.archive, &s.dir, &["--no-kill-readers"], &[]);
    let (mut a, mut b) = hold_two_readers(&s, &out);
    served.kill();
    assert!(wait_for_unmounted(&s.dir), "the guard did not take DIR away within 10 s of the daemon's death");
    std::thread::sleep(Duration::from_millis(500));
    assert!(a.alive() && b.alive(), "--no-kill-readers: the guard killed a reader anyway");
    a.say("read");
    b.say("read");
    let (ra, rb) = (a.finish(SECS(10)), b.finish(SECS(10)));
    assert_eq!(ra.signal(), None, "--no-kill-readers: the pread reader was killed: {ra:?}");
    assert_eq!(ra.result.as_deref(), Some("err 5"), "a read of an untouched stub after the daemon died must fail with EIO: {ra:?}");
    // The mapping was filled whole when it was made: its pages are the archive's.
    let wb = s.src_file("mapped")[1 << 20..(1 << 20) + (512 << 10)].to_vec();
    assert_eq!(rb.signal(), None, "--no-kill-readers: the mmap reader was killed: {rb:?}");
    assert_eq!(judge("the reader holding a stub mapped", &rb, &out.join("mapped"), &wb), "right bytes");
}

// ---- 5. every event is answered exactly once ------------------------------------------

#[test]
fn a_panic_in_a_worker_fails_that_read_with_eio_and_the_daemon_serves_on() {
    let s = Setup::new("panic", "64K", |src| {
        fs::write(src.join("boom-here"), data(941, 1 << 20)).unwrap();
        fs::write(src.join("fine"), data(942, 1 << 20)).unwrap();
        chmod(&src.join("boom-here"), 0o644);
    });
    let out = helper::out_dir(s.scratch.path());
    let mut served = serve(&s.archive, &s.dir, &[], &[("THAW_INJECT_PANIC", "boom")]);
    let boom = s.dir.join("boom-here");
    let t0 = Instant::now();
    let r = helper::run("read", &[boom.to_str().unwrap(), out.join("boom").to_str().unwrap()], false, SECS(20));
    let took = t0.elapsed();
    assert!(r.status.is_some(), "the reader of the panicking event was still blocked after 20 s (the event was never answered)");
    assert_eq!(
        r.result.as_deref(),
        Some("err 5"),
        "THAW_INJECT_PANIC=boom: the read of boom-here must fail with EIO (got {:?}; if it read the bytes, the panic was not injected)",
        r.result
    );
    assert!(took < SECS(10), "the panicking event took {took:?} to be answered");
    let fine = helper::run("read", &[s.dir.join("fine").to_str().unwrap(), out.join("fine").to_str().unwrap()], false, SECS(20));
    assert_eq!(fine.result.as_deref(), Some("ok 1048576"), "after a worker panic, other files must still be served: {fine:?}");
    assert!(fs::read(out.join("fine")).unwrap() == s.src_file("fine"));
    assert!(matches!(served.child.as_mut().unwrap().try_wait(), Ok(None)), "the daemon died of the injected panic");
    let log = stop_within(served, SECS(20));
    assert!(log.contains("panic"), "the daemon must log the panic: {log}");
}

/// A daemon that cannot write its log (stderr on a full device) must still
/// answer the event it wanted to log: here the EIO for a copied marker.
#[test]
fn a_daemon_whose_stderr_fails_still_answers_every_event() {
    let orig = data(945, 200_000);
    let s = Setup::new("devfull", "64K", |src| fs::write(src.join("orig"), &orig).unwrap());
    // The copy is made before serving, so the daemon watches it (see read_copied_marker).
    let marker = get_xattr(&stage_tree(&s.dir).join("orig"), "trusted.thaw").unwrap().expect("a fresh stub carries trusted.thaw");
    let staged_copy = stage_tree(&s.dir).join("copy");
    fs::File::create(&staged_copy).unwrap().set_len(orig.len() as u64).unwrap();
    set_xattr(&staged_copy, "trusted.thaw", &marker).unwrap();
    let child = support::start_serve_logged(&s.archive, &s.dir, &[], &[], Path::new("/dev/full"));
    // No log to read back: /dev/full reads as endless zeros.
    let served = Served { child: Some(child), dir: s.dir.clone(), stderr_log: PathBuf::from("/nonexistent/thaw-log") };
    let copy = s.dir.join("copy");
    drop_caches();
    // The daemon logs why it refuses the copy; writing that line fails.
    for round in 0..3 {
        let r = helper::run("pread", &[copy.to_str().unwrap(), "0", "4096", "/dev/null"], false, SECS(10));
        assert!(r.status.is_some(), "round {round}: the reader was never answered (the daemon could not log, and gave up on the event)");
        assert!(
            matches!(r.result.as_deref(), Some("err 1" | "err 5")),
            "round {round}: a copied marker must be refused (EPERM or EIO), never read: {r:?}"
        );
    }
    let fine = helper::pread(&s.dir.join("orig"), 0, orig.len(), false).unwrap_or_else(|e| panic!("orig: errno {e}"));
    assert!(fine == orig, "orig: {}", first_diff(&fine, &orig));
    stop_within(served, SECS(20));
}

/// A stalled archive: the archive file is itself a stub of a second thaw
/// daemon, which is stopped (SIGSTOP) so the first daemon's archive reads
/// block. With `--event-timeout 2` the reader must get EIO in seconds.
#[test]
fn an_event_past_its_deadline_is_denied_with_eio() {
    let s = Setup::new("stall", "64K", |src| {
        fs::write(src.join("slow"), data(951, 4 << 20)).unwrap();
        fs::write(src.join("tail"), data(952, 64 << 10)).unwrap();
    });
    // The archive of `s` inside another served tree.
    let outer_src = s.scratch.join("outer-src");
    fs::create_dir(&outer_src).unwrap();
    fs::copy(&s.archive, outer_src.join("a.tar.zst")).unwrap();
    let outer_archive = s.scratch.join("outer.tar.zst");
    pack(&outer_src, &outer_archive, "64K");
    let outer_dir = s.scratch.join("outer");
    thaw([OsStr::new("populate"), outer_archive.as_os_str(), outer_dir.as_os_str()]).ok();
    let outer = serve(&outer_archive, &outer_dir, &["--readahead", "0"], &[]);
    let inner_archive = outer_dir.join("a.tar.zst");
    let inner = serve(&inner_archive, &s.dir, &["--event-timeout", "2"], &[]);
    let outer_pid = rustix::process::Pid::from_child(outer.child.as_ref().unwrap());
    rustix::process::kill_process(outer_pid, rustix::process::Signal::STOP).unwrap();
    let out = helper::out_dir(s.scratch.path());
    let t0 = Instant::now();
    let r = helper::run("read", &[s.dir.join("slow").to_str().unwrap(), out.join("slow").to_str().unwrap()], false, SECS(20));
    let took = t0.elapsed();
    rustix::process::kill_process(outer_pid, rustix::process::Signal::CONT).unwrap();
    assert!(r.status.is_some(), "with --event-timeout 2 the reader was still blocked after 20 s");
    assert_eq!(r.result.as_deref(), Some("err 5"), "a read whose archive data stalls past --event-timeout must get EIO: {r:?}");
    assert!(took < SECS(8), "--event-timeout 2, but the reader waited {took:?}");
    stop_within(inner, SECS(20));
    stop_within(outer, SECS(20));
}

// ---- 6. the archive changes under a running daemon ---------------------------------------

/// Two archives of the same names and sizes with different bytes.
fn twin_archives(name: &str) -> (Setup, PathBuf) {
    let names = ["f0", "f1", "f2", "f3", "f4", "f5"];
    let s = Setup::new(name, "64K", |src| {
        for (i, n) in names.iter().enumerate() {
            fs::write(src.join(n), data(960 + i as u64, 300_000)).unwrap();
        }
    });
    let other_src = s.scratch.join("other-src");
    fs::create_dir(&other_src).unwrap();
    for (i, n) in names.iter().enumerate() {
        fs::write(other_src.join(n), data(970 + i as u64, 300_000)).unwrap();
    }
    let other = s.scratch.join("other.tar.zst");
    pack(&other_src, &other, "64K");
    (s, other)
}

#[test]
fn an_archive_overwritten_in_place_fails_reads_with_eio_never_wrong_bytes() {
    let (s, other) = twin_archives("overwrite");
    let served = serve(&s.archive, &s.dir, &[], &[]);
    assert!(fs::read(s.dir.join("f0")).unwrap() == s.src_file("f0"));
    // Copy the other archive's frames over this one's data area, in place.
    let a = thaw::archive::Archive::open(&s.archive).unwrap();
    let data_end = a.file_len() - a.trailer_len();
    drop(a);
    let theirs = fs::read(&other).unwrap();
    let n = data_end.min(theirs.len() as u64) as usize;
    fs::OpenOptions::new().write(true).open(&s.archive).unwrap().write_all_at(&theirs[..n], 0).unwrap();
    let mut eio = 0;
    for rel in ["f1", "f2", "f3", "f4", "f5"] {
        match helper::pread(&s.dir.join(rel), 0, 300_000, false) {
            Ok(b) => assert!(
                b == s.src_file(rel),
                "{rel} read wrong bytes after the archive was overwritten: {}",
                first_diff(&b, &s.src_file(rel))
            ),
            Err(e) => {
                assert_eq!(e, libc::EIO, "{rel}: errno {e}, want EIO");
                eio += 1;
            }
        }
    }
    assert!(eio > 0, "no read noticed that the archive's data was overwritten");
    stop_within(served, SECS(20));
}

#[test]
fn an_archive_replaced_by_rename_keeps_being_served_and_a_restart_is_refused() {
    let (s, other) = twin_archives("renamed");
    let served = serve(&s.archive, &s.dir, &[], &[]);
    let tmp = s.archive.with_extension("new");
    fs::copy(&other, &tmp).unwrap();
    fs::rename(&tmp, &s.archive).unwrap();
    drop_caches();
    for rel in ["f0", "f1", "f2", "f3", "f4", "f5"] {
        let b = helper::pread(&s.dir.join(rel), 0, 300_000, false)
            .unwrap_or_else(|e| panic!("{rel} after the archive was replaced by rename: errno {e}"));
        assert!(b == s.src_file(rel), "{rel}: the daemon must keep serving the archive it opened: {}", first_diff(&b, &s.src_file(rel)));
    }
    stop_within(served, SECS(20));
    // The path now names another archive: serving DIR from it is refused.
    let err = serve_refused(&s.archive, &s.dir);
    assert!(err.contains("populated from archive"), "the refusal must say why: {err}");
    assert!(!is_mount_point(&s.dir), "a refused serve left DIR mounted");
}
