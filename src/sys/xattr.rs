//! Extended attributes read relative to a directory fd, without opening the
//! file: `getxattrat(2)` (Linux 6.13; thaw needs 6.14 for pre-content events
//! anyway). Walking a tree of stubs this way costs one syscall per file
//! instead of open + fgetxattr + close, and opening is not free here: an
//! open of a watched stub raises a permission event.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `__NR_getxattrat`: the same number on every architecture (the unified
/// syscall table from 6.13 on). Debian's libc crate does not have it yet.
const SYS_GETXATTRAT: libc::c_long = 464;

/// `struct xattr_args` of `<linux/xattr.h>`.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// Reads xattr `attr` of `name` in `dir` into `buf`, not following a final
/// symlink. `Ok(None)` when the file has no such xattr (or its filesystem no
/// xattrs); the value's length otherwise.
pub fn get_at(dir: BorrowedFd<'_>, name: &CStr, attr: &CStr, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let mut args = XattrArgs { value: buf.as_mut_ptr() as u64, size: u32::try_from(buf.len()).unwrap_or(u32::MAX), flags: 0 };
    // SAFETY: `dir` is borrowed for the call; `name` and `attr` are
    // NUL-terminated and outlive it; `args` describes `buf`, which the kernel
    // writes at most `args.size` bytes into, and is itself valid for
    // `size_of::<XattrArgs>()` bytes as the last argument says.
    let ret = unsafe {
        libc::syscall(
            SYS_GETXATTRAT,
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            attr.as_ptr(),
            &mut args as *mut XattrArgs,
            std::mem::size_of::<XattrArgs>(),
        )
    };
    if ret >= 0 {
        return Ok(Some(ret as usize));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA | libc::ENOTSUP) => Ok(None),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::get_at;
    use std::os::fd::AsFd;

    #[test]
    fn reads_an_xattr_relative_to_a_directory() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let d = std::fs::File::open(dir.path()).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(get_at(d.as_fd(), c"f", c"user.thaw_test", &mut buf).unwrap(), None);
        // The repository is on ext4/xfs/btrfs (the hydration tests need it), which take user xattrs.
        rustix::fs::setxattr(&f, "user.thaw_test", b"value", rustix::fs::XattrFlags::empty()).unwrap();
        assert_eq!(get_at(d.as_fd(), c"f", c"user.thaw_test", &mut buf).unwrap(), Some(5));
        assert_eq!(&buf[..5], b"value");
        assert!(get_at(d.as_fd(), c"missing", c"user.thaw_test", &mut buf).is_err());
    }
}
