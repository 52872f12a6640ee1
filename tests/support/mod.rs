//! Scratch directories for tests that need the real kernel: each lives on a
//! filesystem that accepts fanotify pre-content marks.
//!
//! The first call probes `std::env::temp_dir()` with a `FAN_PRE_ACCESS` mark.
//! If that filesystem refuses (tmpfs, overlayfs), it loop-mounts a sparse,
//! journal-less 2 GiB ext4 image under the temp dir instead, unmounted at
//! process exit. If neither works the test panics: these tests must never
//! skip quietly.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use thaw::sys::fanotify::{Fanotify, Mask};

/// A fresh directory, removed (best effort) on drop. Unmount anything
/// mounted inside it before it drops.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A new empty directory, unique to this call, on a filesystem where
/// fanotify pre-content marks work.
pub fn scratch_dir(name: &str) -> ScratchDir {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = base().join(format!("{name}.{}.{n}", std::process::id()));
    if let Err(err) = fs::create_dir(&path) {
        panic!("cannot create scratch dir {}: {err}", path.display());
    }
    ScratchDir { path }
}

/// The directory scratch dirs go in, found once per test process. A failure
/// is cached too, so every test fails with the same message.
fn base() -> &'static Path {
    static BASE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BASE.get_or_init(find_base) {
        Ok(dir) => dir,
        Err(why) => panic!(
            "thaw kernel tests need a filesystem that takes fanotify pre-content marks \
             (root, Linux >= 6.14, ext4/xfs/btrfs, or loop devices + mkfs.ext4 for the \
             fallback): {why}"
        ),
    }
}

fn find_base() -> Result<PathBuf, String> {
    let tmp = std::env::temp_dir();
    let native = tmp.join("thaw-tests");
    fs::create_dir_all(&native).map_err(|e| format!("mkdir {}: {e}", native.display()))?;
    let native_err = match probe(&native) {
        Ok(()) => return Ok(native),
        Err(ProbeError::Refused(err)) => err,
        Err(ProbeError::Other(why)) => return Err(why),
    };
    loop_mount(&tmp).map_err(|loop_err| {
        format!(
            "{} refused FAN_PRE_ACCESS ({native_err}), and the loop-mounted ext4 fallback \
             failed: {loop_err}",
            native.display()
        )
    })
}

enum ProbeError {
    /// The filesystem does not take pre-content marks (tmpfs, overlayfs).
    Refused(io::Error),
    /// Anything else: no permission, no kernel support, I/O trouble.
    Other(String),
}

/// Marks a fresh regular file in `dir` with `FAN_PRE_ACCESS`.
fn probe(dir: &Path) -> Result<(), ProbeError> {
    let group = Fanotify::new_pre_content().map_err(|e| ProbeError::Other(format!("fanotify_init(FAN_CLASS_PRE_CONTENT): {e}")))?;
    let file = dir.join(format!(".probe.{}", std::process::id()));
    fs::write(&file, b"probe").map_err(|e| ProbeError::Other(format!("write {}: {e}", file.display())))?;
    let marked = group.mark_inode(&file, Mask::PRE_ACCESS);
    let _ = fs::remove_file(&file);
    match marked {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EXDEV)) => Err(ProbeError::Refused(e)),
        Err(e) => Err(ProbeError::Other(format!("fanotify_mark {}: {e}", file.display()))),
    }
}

/// Where this process's loop-mounted image lives, for the exit hook.
static LOOP_ROOT: OnceLock<PathBuf> = OnceLock::new();

fn loop_mount(tmp: &Path) -> Result<PathBuf, String> {
    sweep_stale_loop_roots(tmp);
    let root = tmp.join(format!("thaw-ext4.{}", std::process::id()));
    let mounted = mount_image(&root);
    if mounted.is_err() {
        remove_loop_root(&root);
    }
    mounted
}

fn mount_image(root: &Path) -> Result<PathBuf, String> {
    let mnt = root.join("mnt");
    let img = root.join("ext4.img");
    fs::create_dir_all(&mnt).map_err(|e| format!("mkdir {}: {e}", mnt.display()))?;
    let file = fs::File::create(&img).map_err(|e| format!("create {}: {e}", img.display()))?;
    // Sparse; without a journal mkfs writes about 1 MiB of it.
    file.set_len(2 << 30).map_err(|e| format!("truncate {}: {e}", img.display()))?;
    drop(file);
    let os = OsStr::new;
    run("mkfs.ext4", &[os("-q"), os("-F"), os("-O"), os("^has_journal"), img.as_os_str()])?;
    run("mount", &[os("-o"), os("loop"), img.as_os_str(), mnt.as_os_str()])?;
    let _ = LOOP_ROOT.set(root.to_owned());
    // SAFETY: `unmount_loop_root` is an `extern "C" fn()` that never unwinds
    // (it only makes calls whose errors it ignores).
    unsafe { libc::atexit(unmount_loop_root) };
    match probe(&mnt) {
        Ok(()) => {}
        Err(ProbeError::Refused(e)) => return Err(format!("{} refused FAN_PRE_ACCESS too: {e}", mnt.display())),
        Err(ProbeError::Other(why)) => return Err(why),
    }
    Ok(mnt)
}

extern "C" fn unmount_loop_root() {
    if let Some(root) = LOOP_ROOT.get() {
        remove_loop_root(root);
    }
}

fn remove_loop_root(root: &Path) {
    // Detaching frees the loop device (mount -o loop sets autoclear).
    let _ = rustix::mount::unmount(root.join("mnt"), rustix::mount::UnmountFlags::DETACH);
    let _ = fs::remove_dir_all(root);
}

/// Removes images left behind by test processes that were killed.
fn sweep_stale_loop_roots(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("thaw-ext4.")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            remove_loop_root(&entry.path());
        }
    }
}

fn run(tool: &str, args: &[&OsStr]) -> Result<(), String> {
    // Non-login root shells may lack the sbin dirs on PATH.
    let program = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(tool));
    let out = Command::new(&program).args(args).output().map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!("{} {:?} failed ({}): {}", program.display(), args, out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// Runs `script` with `sh -c` as the unprivileged user nobody (no
/// supplementary groups), panicking if it fails: for attacks by a user.
pub fn as_nobody(script: &str) -> std::process::Output {
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh", "-ec", script])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run setpriv (util-linux)");
    assert!(
        out.status.success(),
        "as nobody, `{script}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---- helper processes, deadlines and /proc figures (safety and soak tests) ----

/// Environment variable that makes a re-executed test binary play a helper
/// role (see [`reexec`]).
pub const HELPER_ENV: &str = "THAW_TEST_HELPER";
/// The helper's arguments, separated by U+001F.
pub const HELPER_ARGS_ENV: &str = "THAW_TEST_HELPER_ARGS";

/// A command that runs this test binary again with only the test `test`
/// (its full name, e.g. `helper::helper_process_runs_as_nobody`) selected
/// and `role` and `args` in its environment. That test sees them through
/// [`helper_role`] and plays the role instead of testing. Helpers are
/// separate processes so that a guard that kills the readers of a dead
/// daemon's tree kills them, not the test harness.
pub fn reexec(test: &str, role: &str, args: &[String]) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut c = Command::new(exe);
    c.args([test, "--exact", "--nocapture", "--test-threads=1"]).env(HELPER_ENV, role).env(HELPER_ARGS_ENV, args.join("\u{1f}"));
    c
}

/// The role and arguments this process was started with by [`reexec`], if any.
pub fn helper_role() -> Option<(String, Vec<String>)> {
    let role = std::env::var(HELPER_ENV).ok()?;
    let args = std::env::var(HELPER_ARGS_ENV).unwrap_or_default();
    let args = if args.is_empty() { Vec::new() } else { args.split('\u{1f}').map(str::to_string).collect() };
    Some((role, args))
}

/// `cmd`, run as nobody:nogroup with no supplementary groups (through `setpriv`).
pub fn command_as_nobody(cmd: &Command) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Waits for `child` to exit, at most `limit`; on timeout kills it (SIGKILL)
/// and returns `None`.
pub fn wait_deadline(child: &mut std::process::Child, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The lines a reader produces, delivered over a channel by a thread, so
/// that every wait for one can have a deadline.
pub fn line_channel(r: impl io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in io::BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `thaw serve EXTRA... ARCHIVE DIR` with `envs` and waits (at most
/// 30 s) for its "ready" line. Returns the child and the file its stderr
/// goes to. Panics, quoting that log, if it exits or is not ready in time.
/// The log goes beside the archive (not beside `DIR`, whose filesystem a
/// test may fill up).
pub fn start_serve(archive: &Path, dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> (std::process::Child, PathBuf) {
    static NEXT_LOG: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT_LOG.fetch_add(1, Ordering::Relaxed);
    let log = archive.with_extension(format!("serve-{}.{n}.log", std::process::id()));
    let child = start_serve_logged(archive, dir, extra, envs, &log);
    (child, log)
}

/// [`start_serve`] with stderr going to `log` (which may be `/dev/full`).
pub fn start_serve_logged(archive: &Path, dir: &Path, extra: &[&str], envs: &[(&str, &str)], log: &Path) -> std::process::Child {
    let stderr =
        fs::OpenOptions::new().write(true).create(true).truncate(true).open(log).unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_thaw"))
        .arg("serve")
        .args(extra)
        .arg(archive)
        .arg(dir)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start thaw serve");
    let lines = line_channel(child.stdout.take().unwrap());
    let first = lines.recv_timeout(std::time::Duration::from_secs(30));
    let ok = matches!(&first, Ok(l) if l.starts_with("ready"));
    if !ok {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "thaw serve {extra:?} (env {envs:?}) did not get ready within 30 s: first line {first:?}; its log: {}",
            fs::read_to_string(log).unwrap_or_default().trim()
        );
    }
    child
}

/// `echo 3 > /proc/sys/vm/drop_caches`: evicts clean inodes, and with them
/// the daemon's evictable ignore marks.
pub fn drop_caches() {
    rustix::fs::sync();
    fs::write("/proc/sys/vm/drop_caches", "3").expect("write /proc/sys/vm/drop_caches (needs root)");
}

/// Number of open fds of process `pid` (None once it is gone).
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// VmRSS of process `pid` in KiB (None once it is gone).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// An xattr of `path` (not following symlinks); `Ok(None)` if it has none.
pub fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 64 * 1024];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(rustix::io::Errno::NODATA) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Sets an xattr of `path` (not following symlinks).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).map_err(Into::into)
}

/// A small ext4 filesystem on a loop device (to fill it up), unmounted on drop.
#[derive(Debug)]
pub struct LoopFs {
    mnt: PathBuf,
}

impl LoopFs {
    /// Makes a `bytes`-sized ext4 image (no journal, no blocks reserved for
    /// root) in `dir` and mounts it on `dir/mnt`.
    pub fn new(dir: &Path, bytes: u64) -> LoopFs {
        let img = dir.join("small.img");
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).unwrap_or_else(|e| panic!("mkdir {}: {e}", mnt.display()));
        let f = fs::File::create(&img).unwrap_or_else(|e| panic!("create {}: {e}", img.display()));
        f.set_len(bytes).unwrap();
        drop(f);
        let os = OsStr::new;
        run("mkfs.ext4", &[os("-q"), os("-F"), os("-m"), os("0"), os("-O"), os("^has_journal"), img.as_os_str()])
            .unwrap_or_else(|e| panic!("the small filesystem: {e}"));
        run("mount", &[os("-o"), os("loop"), img.as_os_str(), mnt.as_os_str()]).unwrap_or_else(|e| panic!("the small filesystem: {e}"));
        LoopFs { mnt }
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// Free bytes (for root) on the filesystem.
    pub fn free(&self) -> u64 {
        let s = rustix::fs::statvfs(&self.mnt).expect("statvfs");
        s.f_bfree * s.f_frsize
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Detaching frees the loop device (mount -o loop sets autoclear).
        let _ = rustix::mount::unmount(&self.mnt, rustix::mount::UnmountFlags::DETACH);
    }
}
