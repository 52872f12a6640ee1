//! Decode buffers backed by transparent huge pages.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Mutex;

use zstd::zstd_safe::WriteBuf;

/// The huge page size these buffers are aligned to (x86-64 and arm64 with
/// 4 KiB pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Freed huge-page buffers kept for reuse, up to this many bytes. A huge
/// page is zeroed whole when first touched, even when a decode stops after
/// a few KiB of it, and a buffer given back to the kernel is zeroed again
/// when allocated anew: measured on a kernel build under `thaw run`, 0.7 s
/// of the daemon's 3.7 s of CPU went to zeroing decode buffers.
const POOL_BYTES: usize = 32 << 20;

/// Huge-page allocations not in use: (address, layout size).
struct Pool {
    free: Vec<(NonNull<u8>, usize)>,
    bytes: usize,
    limit: usize,
}

// SAFETY: the pool owns the allocations it holds; nothing else points at them.
unsafe impl Send for Pool {}

impl Pool {
    /// A kept allocation of `size` bytes, if there is one.
    fn take(&mut self, size: usize) -> Option<NonNull<u8>> {
        let i = self.free.iter().position(|&(_, s)| s == size)?;
        let (ptr, _) = self.free.swap_remove(i);
        self.bytes -= size;
        Some(ptr)
    }

    /// Keeps an allocation of `size` bytes, or gives it back (false) when
    /// that would go over the limit.
    fn put(&mut self, ptr: NonNull<u8>, size: usize) -> bool {
        if self.bytes + size > self.limit {
            return false;
        }
        self.bytes += size;
        self.free.push((ptr, size));
        true
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool { free: Vec::new(), bytes: 0, limit: POOL_BYTES });

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A byte buffer of fixed capacity for decoded frames. One of
/// [`HUGE_PAGE`] or more is aligned to it and advised `MADV_HUGEPAGE`, so
/// that decoding a 4 MiB frame into it takes two page faults instead of
/// 1,024 (measured: a cold `thaw cat` of a file at the end of a 4 MiB run
/// spent 40 % of its time in page faults). Where THP is off or no huge page
/// is free, the kernel falls back to small pages.
///
/// Bytes `[0, len)` are initialized; zstd writes past them through
/// [`WriteBuf`].
pub struct FrameBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: FrameBuf owns its allocation, like a Vec<u8>.
unsafe impl Send for FrameBuf {}
// SAFETY: shared access is read-only (`&[u8]`).
unsafe impl Sync for FrameBuf {}

impl FrameBuf {
    /// An empty buffer that holds `cap` bytes.
    pub fn with_capacity(cap: usize) -> FrameBuf {
        let Some(layout) = layout(cap) else {
            return FrameBuf { ptr: NonNull::dangling(), len: 0, cap: 0 };
        };
        if layout.align() == HUGE_PAGE {
            if let Some(ptr) = pool().take(layout.size()) {
                return FrameBuf { ptr, len: 0, cap };
            }
        }
        // SAFETY: the layout has a nonzero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else { std::alloc::handle_alloc_error(layout) };
        if layout.align() == HUGE_PAGE {
            // SAFETY: [ptr, ptr + size) is the allocation we own, huge-page
            // aligned at both ends; MADV_HUGEPAGE changes how its pages are
            // backed, never their contents or permissions. Advice only: an
            // error (THP not built in) leaves small pages, so it is ignored.
            unsafe { libc::madvise(ptr.as_ptr().cast(), layout.size(), libc::MADV_HUGEPAGE) };
        }
        FrameBuf { ptr, len: 0, cap }
    }

    /// A buffer of `len` zero bytes.
    pub fn zeroed(len: usize) -> FrameBuf {
        let mut b = FrameBuf::with_capacity(len);
        // SAFETY: the buffer holds len bytes.
        unsafe {
            std::ptr::write_bytes(b.ptr.as_ptr(), 0, len);
            b.filled_until(len);
        }
        b
    }

    /// A copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> FrameBuf {
        let mut b = FrameBuf::with_capacity(bytes.len());
        // SAFETY: the buffer holds bytes.len() bytes, and a fresh allocation
        // does not overlap `bytes`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), b.ptr.as_ptr(), bytes.len());
            b.filled_until(bytes.len());
        }
        b
    }

    /// Bytes it can hold.
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

/// The allocation for `cap` bytes: huge-page aligned and rounded up from
/// [`HUGE_PAGE`] on; `None` for 0.
fn layout(cap: usize) -> Option<Layout> {
    if cap == 0 {
        return None;
    }
    let l = if cap >= HUGE_PAGE { Layout::from_size_align(cap.next_multiple_of(HUGE_PAGE), HUGE_PAGE) } else { Layout::array::<u8>(cap) };
    Some(l.expect("decode buffer size overflows"))
}

impl Drop for FrameBuf {
    fn drop(&mut self) {
        if let Some(layout) = layout(self.cap) {
            if layout.align() == HUGE_PAGE && pool().put(self.ptr, layout.size()) {
                return;
            }
            // SAFETY: allocated in with_capacity with this same layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

impl std::ops::Deref for FrameBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: [0, len) is initialized and inside the allocation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for FrameBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for Deref, and we hold the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl std::fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameBuf({} of {} bytes)", self.len, self.cap)
    }
}

// SAFETY: as_mut_ptr points at `capacity()` writable bytes; filled_until is
// only called by zstd (or copy_of) for bytes it wrote, which are never
// more than the capacity.
unsafe impl WriteBuf for FrameBuf {
    fn as_slice(&self) -> &[u8] {
        self
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn filled_until(&mut self, n: usize) {
        debug_assert!(n <= self.cap);
        self.len = n;
    }
}

#[cfg(test)]
mod tests {
    use super::{FrameBuf, Pool, HUGE_PAGE};
    use std::ptr::NonNull;

    #[test]
    fn large_buffers_are_huge_page_aligned_and_hold_what_zstd_writes() {
        let data: Vec<u8> = (0..3 * HUGE_PAGE + 5).map(|i| (i % 251) as u8).collect();
        let z = zstd::bulk::compress(&data, 3).unwrap();
        let mut b = FrameBuf::with_capacity(data.len());
        assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        let n = d.decompress_to_buffer(&z, &mut b).unwrap();
        assert_eq!(n, data.len());
        assert_eq!(&b[..], &data[..]);
        assert_eq!(&FrameBuf::copy_of(&data[..10])[..], &data[..10]);
        assert!(FrameBuf::with_capacity(0).is_empty());
        assert_eq!(&FrameBuf::zeroed(3)[..], &[0, 0, 0]);
    }

    #[test]
    fn the_pool_hands_back_a_kept_allocation_of_the_same_size_within_its_limit() {
        let mut p = Pool { free: Vec::new(), bytes: 0, limit: 3 * HUGE_PAGE };
        let (a, b) = (NonNull::<u8>::dangling(), NonNull::new(HUGE_PAGE as *mut u8).unwrap());
        assert!(p.put(a, 2 * HUGE_PAGE));
        assert!(!p.put(b, 2 * HUGE_PAGE), "over the limit: given back");
        assert!(p.put(b, HUGE_PAGE));
        assert_eq!(p.take(4 * HUGE_PAGE), None);
        assert_eq!(p.take(2 * HUGE_PAGE), Some(a));
        assert_eq!(p.take(2 * HUGE_PAGE), None);
        assert_eq!((p.take(HUGE_PAGE), p.bytes), (Some(b), 0));
        p.free.clear(); // dangling test pointers: never freed
    }
}
