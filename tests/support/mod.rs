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
