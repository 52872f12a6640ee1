//! A stop request that threads blocked in `poll` wake up for at once.
//!
//! The event loop and the control socket wait in `poll`; a flag alone would
//! be seen only when their timeout ran out (50 ms each, one after the other:
//! `thaw run` spent 80 ms between the command's exit and the unmount). The
//! request also makes an eventfd readable, which they poll beside their own fd.

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set once; wakes every [`Stop::wait`] when set.
#[derive(Debug)]
pub struct Stop {
    flag: AtomicBool,
    wake: OwnedFd,
}

impl Stop {
    /// A stop not requested yet.
    pub fn new() -> std::io::Result<Stop> {
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Stop { flag: AtomicBool::new(false), wake })
    }

    /// Requests the stop: [`Stop::requested`] is true from now on and every
    /// waiter returns.
    pub fn request(&self) {
        self.flag.store(true, Ordering::Release);
        // The counter stays nonzero (nobody reads it): every later poll sees it too.
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    /// True once [`Stop::request`] was called.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Waits until `fd` is readable or reports an error or hangup (true:
    /// a read on it will say which), the stop is requested or the timeout
    /// passes (false; `None` waits without one). A signal interrupting the
    /// wait counts as nothing ready.
    pub fn wait(&self, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> std::io::Result<bool> {
        if self.requested() {
            return Ok(false);
        }
        let ts = timeout.map(|t| Timespec { tv_sec: t.as_secs() as _, tv_nsec: t.subsec_nanos() as _ });
        let mut fds = [PollFd::new(&fd, PollFlags::IN), PollFd::new(&self.wake, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(_) => Ok(!fds[0].revents().is_empty()),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for Stop {
    /// The eventfd, readable once the stop is requested.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::Stop;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    #[test]
    fn a_request_wakes_a_waiter_at_once_and_every_later_wait() {
        let stop = std::sync::Arc::new(Stop::new().unwrap());
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let s = stop.clone();
        let t = Instant::now();
        let waiter = std::thread::spawn(move || s.wait(r.as_fd(), Some(Duration::from_secs(10))).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert!(!stop.requested());
        stop.request();
        assert!(!waiter.join().unwrap(), "the pipe was never readable");
        assert!(t.elapsed() < Duration::from_secs(5), "the waiter slept through the request");
        assert!(stop.requested());
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(!stop.wait(r.as_fd(), None).unwrap(), "a wait after the request returns at once");
    }

    #[test]
    fn a_readable_fd_is_reported() {
        let stop = Stop::new().unwrap();
        let (r, w) = rustix::pipe::pipe().unwrap();
        assert!(!stop.wait(r.as_fd(), Some(Duration::from_millis(1))).unwrap());
        rustix::io::write(&w, b"x").unwrap();
        assert!(stop.wait(r.as_fd(), Some(Duration::from_secs(10))).unwrap());
        let _ = stop.as_fd();
    }
}
