//! Process plumbing that std does not cover.

use std::process::Command;

/// Makes the child get SIGKILL when the thread that spawned it dies, so a
/// command never outlives the daemon serving its files.
pub fn kill_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // the async-signal-safe prctl syscall.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Restores the default SIGPIPE action (Rust starts programs with it
/// ignored), so writing to a closed pipe ends the program quietly instead of
/// failing every `println!`.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler
    // and touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
