//! `thaw run`: serve `DIR` in a thread of this process and run a command in
//! its own PID namespace (when possible) that dies with us, then stop
//! serving. Whatever happens to the daemon, the command never reads holes:
//! if serving fails, the command is killed.

use super::daemon::{serve, ServeOptions, ServeStats};
use super::stop::Stop;
use super::Error;
use crate::archive::Archive;
use crate::tree::populate::{default_threads, populate, PopulateSummary};
use crate::tree::stage::Stage;
use rustix::process::{kill_process, Pid, Signal};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the command may ignore a forwarded SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// What `thaw run` did.
#[derive(Debug)]
pub struct RunOutcome {
    /// The command's exit code (128 + signal if a signal ended it).
    pub code: i32,
    /// What the daemon did.
    pub stats: ServeStats,
    /// Set when `DIR` had to be populated first.
    pub populated: Option<PopulateSummary>,
}

/// Populates `dir` if needed, serves it, runs `command` and returns its exit
/// code. Setting `interrupted` (a signal handler's flag) forwards SIGTERM to
/// the command, and kills it if it is still there after 10 s.
pub fn run(
    archive: Arc<Archive>,
    archive_path: &Path,
    dir: &Path,
    mut opts: ServeOptions,
    command: &[OsString],
    interrupted: &AtomicBool,
) -> Result<RunOutcome, Error> {
    if command.is_empty() {
        return Err(Error::Setup("no command to run".into()));
    }
    // The command's namespace is gone when serving stops: no reader is left to drain.
    opts.drain = Duration::ZERO;
    let populated = if Stage::new(dir).exists() { None } else { Some(populate(&archive, archive_path, dir, default_threads())?) };
    let stop = Arc::new(Stop::new().map_err(|e| Error::Setup(format!("eventfd: {e}")))?);
    let daemon = start_daemon(archive, dir, opts, stop.clone())?;
    let status = match spawn_command(command) {
        Ok(child) => supervise(child, &daemon, interrupted),
        Err(e) => Err(e),
    };
    stop.request();
    let stats = daemon.join().map_err(|_| Error::Setup("the daemon thread panicked".into()))??;
    let code = status?.ok_or_else(|| Error::Setup("the daemon stopped while the command ran; the command was killed".into()))?;
    Ok(RunOutcome { code, stats, populated })
}

/// Starts serving in a thread and returns once `dir` is served (or serving failed).
fn start_daemon(
    archive: Arc<Archive>,
    dir: &Path,
    opts: ServeOptions,
    stop: Arc<Stop>,
) -> Result<JoinHandle<Result<ServeStats, Error>>, Error> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let dir_owned = dir.to_path_buf();
    let daemon = std::thread::Builder::new()
        .name("thaw-serve".into())
        .spawn(move || {
            serve(archive, &dir_owned, opts, &stop, &mut || {
                let _ = ready_tx.send(());
            })
        })
        .map_err(|e| Error::Setup(format!("daemon thread: {e}")))?;
    if ready_rx.recv().is_err() {
        return match daemon.join() {
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Err(Error::Setup(format!("{}: the daemon stopped before serving", dir.display()))),
            Err(_) => Err(Error::Setup("the daemon thread panicked".into())),
        };
    }
    Ok(daemon)
}

/// Starts the command, in a new PID namespace (`unshare --pid --fork
/// --kill-child`) when we are root, so all of its processes die with it; it
/// also gets a parent-death signal.
fn spawn_command(command: &[OsString]) -> Result<Child, Error> {
    let unshare = Path::new("/usr/bin/unshare");
    let mut cmd = if rustix::process::geteuid().is_root() && unshare.exists() {
        let mut c = Command::new(unshare);
        c.args(["--pid", "--fork", "--kill-child", "--"]).args(command);
        c
    } else {
        let mut c = Command::new(&command[0]);
        c.args(&command[1..]);
        c
    };
    crate::sys::process::kill_with_parent(&mut cmd);
    cmd.spawn().map_err(|e| Error::io(Path::new(&command[0]).display(), e))
}

/// Waits for the command. `Ok(None)` if the daemon ended first (the command
/// is then killed rather than left reading holes).
fn supervise(mut child: Child, daemon: &JoinHandle<Result<ServeStats, Error>>, interrupted: &AtomicBool) -> Result<Option<i32>, Error> {
    use std::os::unix::process::ExitStatusExt;
    let mut forwarded: Option<Instant> = None;
    loop {
        if let Some(st) = child.try_wait().map_err(|e| Error::io("command", e))? {
            return Ok(Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))));
        }
        if daemon.is_finished() {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        if interrupted.load(Ordering::Relaxed) {
            match forwarded {
                None => {
                    // To the command (the namespace's first process) and to unshare.
                    for pid in command_pids(&child) {
                        let _ = kill_process(pid, Signal::TERM);
                    }
                    forwarded = Some(Instant::now());
                }
                Some(t) if t.elapsed() > TERM_GRACE => {
                    tracing::warn!("the command ignored SIGTERM for {} s; killing it", TERM_GRACE.as_secs());
                    let _ = child.kill(); // unshare --kill-child takes the namespace with it
                    forwarded = Some(Instant::now());
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The child and, when it is `unshare`, the command it forked.
fn command_pids(child: &Child) -> Vec<Pid> {
    let pid = child.id();
    let mut out: Vec<_> = Pid::from_raw(pid as i32).into_iter().collect();
    if let Ok(kids) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        out.extend(kids.split_whitespace().filter_map(|k| k.parse().ok()).filter_map(Pid::from_raw));
    }
    out
}
