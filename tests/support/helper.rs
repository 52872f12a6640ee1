//! Helper processes for the safety and soak tests: this test binary run
//! again (see [`support::reexec`]) to play one role, often as nobody.
//! Readers live in their own processes because a guard that stops the
//! readers of a dead daemon's tree must not stop the test harness.
//!
//! A role prints one result line, `HELPER: ...`, on stdout; bytes it read go
//! to a file the test names, so the test asserts on what the reader saw.
#![allow(dead_code)] // shared by the safety and soak tests; each uses a part

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::support;

/// The test that dispatches helper roles (and, run normally, checks that a
/// helper really runs unprivileged).
pub const TEST: &str = "helper::helper_process_runs_as_nobody";

#[test]
fn helper_process_runs_as_nobody() {
    if let Some((role, args)) = support::helper_role() {
        let code = play(&role, &args);
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    let out = run("whoami", &[], true, Duration::from_secs(30));
    assert_eq!(out.result.as_deref(), Some("uid 65534 euid 65534 gid 65534 groups 0"), "stderr: {}", out.stderr);
}

/// What a finished helper did.
#[derive(Debug)]
pub struct Outcome {
    /// `None`: it did not exit in time and was killed.
    pub status: Option<ExitStatus>,
    /// Its last `HELPER:` line, without the prefix.
    pub result: Option<String>,
    /// All its `HELPER:` lines not taken by [`Helper::expect`] or [`Helper::results`].
    pub lines: Vec<String>,
    pub stderr: String,
}

impl Outcome {
    /// The signal that killed it, if one did.
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.and_then(|s| s.signal())
    }
}

/// A running helper process.
pub struct Helper {
    child: Child,
    lines: Receiver<String>,
    errs: Receiver<String>,
    what: String,
}

impl Helper {
    /// Starts role `role` with `args`, as nobody if `nobody`.
    pub fn spawn(role: &str, args: &[&str], nobody: bool) -> Helper {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let cmd = support::reexec(TEST, role, &args);
        let mut cmd = if nobody { support::command_as_nobody(&cmd) } else { cmd };
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start a helper process");
        let lines = support::line_channel(child.stdout.take().unwrap());
        let errs = support::line_channel(child.stderr.take().unwrap());
        Helper { child, lines, errs, what: format!("helper {role} {args:?}") }
    }

    /// Waits (at most `limit`) for a `HELPER: <prefix>...` line; `None` if
    /// the helper ended or the time ran out first.
    pub fn expect(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(r) = helper_line(&l) {
                        if r.starts_with(prefix) {
                            return Some(r.to_string());
                        }
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Sends a line to the helper's stdin (ignored if it is gone).
    pub fn say(&mut self, line: &str) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// The `HELPER:` lines received so far (without waiting).
    pub fn results(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.lines.try_recv() {
            if let Some(r) = helper_line(&l) {
                out.push(r.to_string());
            }
        }
        out
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for it to exit (killing it after `limit`) and collects its result.
    pub fn finish(mut self, limit: Duration) -> Outcome {
        drop(self.child.stdin.take());
        let status = support::wait_deadline(&mut self.child, limit);
        let mut lines = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            if let Some(r) = helper_line(&l) {
                lines.push(r.to_string());
            }
        }
        let result = lines.last().cloned();
        let mut stderr = String::new();
        while let Ok(l) = self.errs.recv_timeout(Duration::from_millis(50)) {
            stderr.push_str(&l);
            stderr.push('\n');
        }
        let _ = &self.what;
        Outcome { status, result, lines, stderr }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a role to its end (at most `limit`).
pub fn run(role: &str, args: &[&str], nobody: bool, limit: Duration) -> Outcome {
    Helper::spawn(role, args, nobody).finish(limit)
}

/// The text after `HELPER: ` in a line of a helper's stdout (libtest may
/// have printed the test's name before it on the same line).
fn helper_line(l: &str) -> Option<&str> {
    l.find("HELPER: ").map(|i| &l[i + "HELPER: ".len()..])
}

fn say(line: impl std::fmt::Display) {
    println!("HELPER: {line}");
    let _ = std::io::stdout().flush();
}

fn errno(e: &std::io::Error) -> String {
    format!("err {}", e.raw_os_error().unwrap_or(-1))
}

/// Plays `role`; returns the exit code.
fn play(role: &str, args: &[String]) -> i32 {
    let arg = |i: usize| args.get(i).unwrap_or_else(|| panic!("helper {role}: missing argument {i} in {args:?}")).as_str();
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or_else(|e| panic!("helper {role}: argument {i}: {e}"));
    match role {
        "whoami" => {
            let groups = rustix::process::getgroups().map(|g| g.len()).unwrap_or(usize::MAX);
            say(format_args!(
                "uid {} euid {} gid {} groups {groups}",
                rustix::process::getuid().as_raw(),
                rustix::process::geteuid().as_raw(),
                rustix::process::getgid().as_raw()
            ));
            0
        }
        // forge PATH SIZE ID ENTRY: a file of our own, as large as the
        // victim, with markers naming the victim's entry.
        "forge" => {
            let f = match fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(arg(0)) {
                Ok(f) => f,
                Err(e) => {
                    say(format_args!("create {}", errno(&e)));
                    return 1;
                }
            };
            f.set_len(num(1)).expect("ftruncate our own file");
            let ino = f.metadata().unwrap().ino();
            let res = |r: rustix::io::Result<()>| match r {
                Ok(()) => "ok".to_string(),
                Err(e) => e.raw_os_error().to_string(),
            };
            let v2 = format!("thaw2 {} {} {ino}", arg(2), arg(3));
            let trusted = res(rustix::fs::fsetxattr(&f, "trusted.thaw", v2.as_bytes(), rustix::fs::XattrFlags::empty()));
            let v1 = format!("thaw1 {} {}", arg(2), arg(3));
            let user = res(rustix::fs::fsetxattr(&f, "user.thaw", v1.as_bytes(), rustix::fs::XattrFlags::empty()));
            say(format_args!("trusted={trusted} user={user}"));
            0
        }
        // read PATH OUT: the whole file, bytes to OUT.
        "read" => {
            match fs::read(arg(0)) {
                Ok(b) => {
                    fs::write(arg(1), &b).expect("write the helper's output file");
                    say(format_args!("ok {}", b.len()));
                }
                Err(e) => say(errno(&e)),
            }
            0
        }
        // pread PATH OFF LEN OUT: LEN bytes at OFF (fewer at the end of the file).
        "pread" => {
            let r = fs::File::open(arg(0)).and_then(|f| {
                let mut b = vec![0u8; num(2) as usize];
                let mut n = 0;
                while n < b.len() {
                    match f.read_at(&mut b[n..], num(1) + n as u64)? {
                        0 => break,
                        k => n += k,
                    }
                }
                b.truncate(n);
                Ok(b)
            });
            match r {
                Ok(b) => {
                    fs::write(arg(3), &b).expect("write the helper's output file");
                    say(format_args!("ok {}", b.len()));
                }
                Err(e) => say(errno(&e)),
            }
            0
        }
        // pwrite PATH OFF LEN BYTE
        "pwrite" => {
            let r =
                fs::OpenOptions::new().write(true).open(arg(0)).and_then(|f| f.write_all_at(&vec![num(3) as u8; num(2) as usize], num(1)));
            match r {
                Ok(()) => say("ok"),
                Err(e) => say(errno(&e)),
            }
            0
        }
        // hold PATH pread|mmap OFF LEN OUT: open (and map) the file, say
        // "held", wait for a line on stdin, then read and report.
        "hold" => {
            let f = match fs::File::open(arg(0)) {
                Ok(f) => f,
                Err(e) => {
                    say(format_args!("open {}", errno(&e)));
                    return 1;
                }
            };
            let (off, len) = (num(2) as usize, num(3) as usize);
            // SAFETY: the mapped file is a stub no one truncates in these tests.
            let map = (arg(1) == "mmap").then(|| unsafe { memmap2::Mmap::map(&f) });
            let map = match map.transpose() {
                Ok(m) => m,
                Err(e) => {
                    say(format_args!("mmap {}", errno(&e)));
                    return 1;
                }
            };
            say("held");
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let got = match &map {
                Some(m) => Ok(m[off..off + len].to_vec()),
                None => {
                    let mut b = vec![0u8; len];
                    f.read_exact_at(&mut b, off as u64).map(|()| b)
                }
            };
            match got {
                Ok(b) => {
                    fs::write(arg(4), &b).expect("write the helper's output file");
                    say(format_args!("ok {}", b.len()));
                }
                Err(e) => say(errno(&e)),
            }
            0
        }
        "soak" => crate::soak::worker(args),
        other => panic!("unknown helper role {other:?}"),
    }
}

/// Reads `len` bytes at `off` of `path` in a helper process (as nobody if
/// `nobody`), so that a read the daemon never answers cannot hang the test:
/// after 30 s the helper is killed and the test fails. `Err` is the errno.
pub fn pread(path: &Path, off: u64, len: usize, nobody: bool) -> Result<Vec<u8>, i32> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = out_dir(&std::env::temp_dir().join(format!("thaw-helper-out.{}", std::process::id())));
    let out = dir.join(format!("pread.{n}"));
    let o =
        run("pread", &[path.to_str().unwrap(), &off.to_string(), &len.to_string(), out.to_str().unwrap()], nobody, Duration::from_secs(30));
    let res = match o.result.as_deref() {
        None if o.status.is_none() => {
            panic!("reading {len} bytes at {off} of {} blocked for 30 s (an event never answered?)", path.display())
        }
        Some(r) if r.starts_with("ok ") => Ok(fs::read(&out).unwrap()),
        Some(r) if r.starts_with("err ") => Err(r[4..].parse().unwrap()),
        _ => panic!("reading {} in a helper: {o:?}", path.display()),
    };
    let _ = fs::remove_file(&out);
    res
}

/// A directory helpers (also as nobody) can write their output files into.
pub fn out_dir(parent: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = parent.join("helper-out");
    fs::create_dir_all(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
    d
}
