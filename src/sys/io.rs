//! File I/O calls that neither std nor rustix wrap.

use std::os::fd::{AsFd, AsRawFd};

/// Starts writing `[offset, offset + len)` of `fd`'s dirty pages to disk
/// and returns at once (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so a
/// final `fsync` has little left to wait for.
pub fn start_writeback(fd: impl AsFd, offset: u64, len: u64) -> std::io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    // SAFETY: sync_file_range takes an fd we borrow for the call and plain
    // integers; it touches no memory of ours.
    let rc = unsafe { libc::sync_file_range(fd.as_fd().as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
