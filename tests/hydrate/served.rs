//! A `thaw serve` child process for one test, stopped (and its mount
//! removed) on drop.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{pack, thaw};
use crate::support::{scratch_dir, ScratchDir};

/// Source tree, archive, and the lazily restored directory.
pub struct Setup {
    pub scratch: ScratchDir,
    pub src: PathBuf,
    pub archive: PathBuf,
    pub dir: PathBuf,
}

impl Setup {
    /// Builds a source tree with `make`, packs it with `frame_size`, populates `dir`.
    pub fn new(name: &str, frame_size: &str, make: impl FnOnce(&Path)) -> Setup {
        let scratch = scratch_dir(name);
        let src = scratch.join("src");
        std::fs::create_dir(&src).unwrap();
        make(&src);
        let archive = scratch.join("a.tar.zst");
        pack(&src, &archive, frame_size);
        let dir = scratch.join("lazy");
        thaw([OsStr::new("populate"), archive.as_os_str(), dir.as_os_str()]).ok();
        Setup { scratch, src, archive, dir }
    }

    pub fn serve(&self, extra: &[&str]) -> Served {
        Served::start(&self.archive, &self.dir, extra)
    }

    pub fn status(&self) -> serde_json::Value {
        let out = thaw([OsStr::new("status"), self.dir.as_os_str(), OsStr::new("--json")]).ok();
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    /// The last statistics the daemon saved.
    pub fn stats(&self) -> serde_json::Value {
        let name = format!(".{}.thaw", self.dir.file_name().unwrap().to_string_lossy());
        let p = self.dir.parent().unwrap().join(name).join("stats.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    pub fn src_file(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.src.join(rel)).unwrap()
    }
}

pub struct Served {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub stderr_log: PathBuf,
}

impl Served {
    pub fn start(archive: &Path, dir: &Path, extra: &[&str]) -> Served {
        let log = dir.with_extension(format!("serve-{}.log", Instant::now().elapsed().as_nanos()));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_thaw"))
            .arg("serve")
            .args(extra)
            .arg(archive)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start thaw serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("ready"),
            "thaw serve did not get ready: {line:?}; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Served { child: Some(child), dir: dir.to_path_buf(), stderr_log: log }
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
        let st = child.wait().unwrap();
        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        assert!(st.success(), "thaw serve exited with {st}: {log}");
        log
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever happened, leave no mount behind for ScratchDir to trip on.
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_mount_point(&self.dir) && Instant::now() < deadline {
            let _ = rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn is_mount_point(dir: &Path) -> bool {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let id = |p: &Path| statx(CWD, p, AtFlags::empty(), StatxFlags::MNT_ID).ok().map(|s| s.stx_mnt_id);
    match (id(dir), id(&dir.join(".."))) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

/// Waits until `cond` holds (the guard acts asynchronously).
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
