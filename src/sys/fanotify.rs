//! fanotify pre-content groups: marks, events, responses.
//!
//! The hydrator sits on a [`Fanotify`] group: a reader touching a stub raises
//! a permission event ([`Mask::PRE_ACCESS`], [`Mask::OPEN_PERM`]) that blocks
//! the reader until we [`Fanotify::respond`]. Each [`Event`] owns a read-write
//! fd on the stub, so the data can be `pwrite`n through it without raising a
//! new event. The byte-level decoder, [`decode`], is plain safe code; the only
//! `unsafe` here is the two syscalls rustix does not wrap (`fanotify_init`,
//! `fanotify_mark`) and adopting fds the kernel installed for events (or the
//! guard inherited) as [`OwnedFd`].
//!
//! Constants are defined here because Debian's headers predate the
//! pre-content API (Linux 6.14).

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// `fanotify_init` flags (`FAN_*` in `<linux/fanotify.h>`).
mod init {
    pub const CLOEXEC: u32 = 0x0000_0001;
    pub const CLASS_PRE_CONTENT: u32 = 0x0000_0008;
    pub const UNLIMITED_QUEUE: u32 = 0x0000_0010;
    pub const UNLIMITED_MARKS: u32 = 0x0000_0020;
    /// `FAN_RESTARTABLE_EVENTS`, as proposed upstream (2025-2026, not
    /// merged): events read but not answered go back to the queue when the
    /// reader's queue fd closes. Only probed for, never used.
    pub const RESTARTABLE_EVENTS: u32 = 0x0000_8000;
}

/// `fanotify_mark` flags (`FAN_MARK_*`).
mod mark {
    pub const ADD: u32 = 0x0000_0001;
    pub const REMOVE: u32 = 0x0000_0002;
    pub const DONT_FOLLOW: u32 = 0x0000_0004;
    pub const MOUNT: u32 = 0x0000_0010;
    pub const FLUSH: u32 = 0x0000_0080;
    pub const IGNORED_SURV_MODIFY: u32 = 0x0000_0040;
    pub const FILESYSTEM: u32 = 0x0000_0100;
    pub const EVICTABLE: u32 = 0x0000_0200;
    pub const IGNORE: u32 = 0x0000_0400;
}

/// Response bits (`FAN_ALLOW`, `FAN_DENY`, `FAN_ERRNO` shift).
mod resp {
    pub const ALLOW: u32 = 0x01;
    pub const DENY: u32 = 0x02;
    pub const ERRNO_SHIFT: u32 = 24;
}

/// `FANOTIFY_METADATA_VERSION`: the only event layout this decoder knows.
pub const METADATA_VERSION: u8 = 3;
/// `sizeof(struct fanotify_event_metadata)`.
pub const METADATA_LEN: usize = 24;
/// `FAN_NOFD`: the event carries no fd (queue overflow, FID reporting).
pub const NOFD: RawFd = -1;
/// `FAN_EVENT_INFO_TYPE_RANGE`: info record carrying the accessed range.
pub const INFO_TYPE_RANGE: u8 = 6;
/// `sizeof(struct fanotify_event_info_range)`.
pub const INFO_RANGE_LEN: usize = 24;
/// `sizeof(struct fanotify_event_info_header)`.
const INFO_HEADER_LEN: usize = 4;
/// `sizeof(struct fanotify_response)`.
const RESPONSE_LEN: usize = 8;

/// A set of fanotify event bits (`FAN_ACCESS`, `FAN_PRE_ACCESS`, ...), used
/// both as a mark mask and as the mask of a received event.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mask(u64);

impl Mask {
    /// `FAN_ACCESS`: a file was read (notification only).
    pub const ACCESS: Mask = Mask(0x0000_0001);
    /// `FAN_MODIFY`: a file was written.
    pub const MODIFY: Mask = Mask(0x0000_0002);
    /// `FAN_ATTRIB`: metadata changed.
    pub const ATTRIB: Mask = Mask(0x0000_0004);
    /// `FAN_CLOSE_WRITE`: a file open for writing was closed.
    pub const CLOSE_WRITE: Mask = Mask(0x0000_0008);
    /// `FAN_CLOSE_NOWRITE`: a read-only file was closed.
    pub const CLOSE_NOWRITE: Mask = Mask(0x0000_0010);
    /// `FAN_OPEN`: a file was opened (notification only).
    pub const OPEN: Mask = Mask(0x0000_0020);
    /// `FAN_OPEN_EXEC`: a file was opened to be executed.
    pub const OPEN_EXEC: Mask = Mask(0x0000_1000);
    /// The queue overflowed and events were lost (fd is `FAN_NOFD`).
    pub const Q_OVERFLOW: Mask = Mask(0x0000_4000);
    /// `FAN_OPEN_PERM`: an open waits for the group's answer (thaw's whole-file policy).
    pub const OPEN_PERM: Mask = Mask(0x0001_0000);
    /// `FAN_ACCESS_PERM`: a read waits for the group's answer (no range record).
    pub const ACCESS_PERM: Mask = Mask(0x0002_0000);
    /// `FAN_OPEN_EXEC_PERM`: an exec open waits for the group's answer.
    pub const OPEN_EXEC_PERM: Mask = Mask(0x0004_0000);
    /// Pre-content access: raised before data is read, with a range record.
    pub const PRE_ACCESS: Mask = Mask(0x0010_0000);
    /// `FAN_EVENT_ON_CHILD`: a directory mark also covers the files in it.
    pub const EVENT_ON_CHILD: Mask = Mask(0x0800_0000);
    /// `FAN_ONDIR`: report events on directories too (or: this event is on one).
    pub const ONDIR: Mask = Mask(0x4000_0000);

    /// Events that block the accessing task until the group responds.
    pub const PERMISSION: Mask = Mask(Self::OPEN_PERM.0 | Self::ACCESS_PERM.0 | Self::OPEN_EXEC_PERM.0 | Self::PRE_ACCESS.0);

    const NAMES: [(Mask, &'static str); 14] = [
        (Self::ACCESS, "ACCESS"),
        (Self::MODIFY, "MODIFY"),
        (Self::ATTRIB, "ATTRIB"),
        (Self::CLOSE_WRITE, "CLOSE_WRITE"),
        (Self::CLOSE_NOWRITE, "CLOSE_NOWRITE"),
        (Self::OPEN, "OPEN"),
        (Self::OPEN_EXEC, "OPEN_EXEC"),
        (Self::Q_OVERFLOW, "Q_OVERFLOW"),
        (Self::OPEN_PERM, "OPEN_PERM"),
        (Self::ACCESS_PERM, "ACCESS_PERM"),
        (Self::OPEN_EXEC_PERM, "OPEN_EXEC_PERM"),
        (Self::PRE_ACCESS, "PRE_ACCESS"),
        (Self::EVENT_ON_CHILD, "EVENT_ON_CHILD"),
        (Self::ONDIR, "ONDIR"),
    ];

    /// No bits: the start of a mask built with `|`.
    pub const fn empty() -> Mask {
        Mask(0)
    }

    /// Wraps raw bits, keeping ones this type has no name for.
    pub const fn from_bits_retain(bits: u64) -> Mask {
        Mask(bits)
    }

    /// The raw bits, as `fanotify_mark` takes them.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// True when no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: Mask) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if any bit of `other` is set in `self`.
    pub const fn intersects(self, other: Mask) -> bool {
        self.0 & other.0 != 0
    }

    /// Both sets of bits; `|` in a `const` context.
    pub const fn union(self, other: Mask) -> Mask {
        Mask(self.0 | other.0)
    }
}

impl BitOr for Mask {
    type Output = Mask;
    fn bitor(self, rhs: Mask) -> Mask {
        self.union(rhs)
    }
}

impl BitOrAssign for Mask {
    fn bitor_assign(&mut self, rhs: Mask) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Mask {
    type Output = Mask;
    fn bitand(self, rhs: Mask) -> Mask {
        Mask(self.0 & rhs.0)
    }
}

impl fmt::Debug for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if rest & flag.0 != 0 {
                f.write_str(if first { "" } else { " | " })?;
                f.write_str(name)?;
                rest &= !flag.0;
                first = false;
            }
        }
        if rest != 0 || first {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

/// The byte range a pre-content event is about (`FAN_EVENT_INFO_TYPE_RANGE`).
/// For mmap it covers the whole mapping and may run past EOF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte accessed.
    pub offset: u64,
    /// Number of bytes accessed from `offset`.
    pub count: u64,
}

impl Range {
    /// One past the last byte, saturating.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.count)
    }
}

/// An event as laid out in the read buffer: the fd is a bare number that
/// nobody owns yet. [`Fanotify::read_events`] turns these into [`Event`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// What happened (one or more event bits, plus `ONDIR`).
    pub mask: Mask,
    /// `FAN_NOFD` (-1) when the event carries no fd.
    pub fd: RawFd,
    /// The accessing process.
    pub pid: i32,
    /// The range record of a pre-content event; `None` on other events.
    pub range: Option<Range>,
}

/// A buffer that does not hold well-formed version-3 fanotify events.
#[derive(Debug, thiserror::Error)]
#[error("malformed fanotify event at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Where the bad event (or info record) starts in the buffer.
    pub offset: usize,
    /// What is wrong with it.
    pub kind: DecodeErrorKind,
    /// fds of every well-framed event in the buffer, before and after the
    /// bad one: the kernel installed them, so the caller must close them.
    pub fds: Vec<RawFd>,
}

/// The ways a read buffer can fail to frame events; each carries the
/// lengths that disagree, for the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// Fewer bytes left than an event header takes.
    #[error("{have} bytes left, an event header needs {METADATA_LEN}")]
    TruncatedHeader {
        /// Bytes left in the buffer.
        have: usize,
    },
    /// An event layout other than [`METADATA_VERSION`].
    #[error("metadata version {0}, expected {METADATA_VERSION}")]
    BadVersion(u8),
    /// A header claiming to be shorter than the version-3 header.
    #[error("metadata_len {0} is below {METADATA_LEN}")]
    BadMetadataLen(u16),
    /// An event shorter than its own header: the next one could not be found.
    #[error("event_len {event_len} is below metadata_len {metadata_len}")]
    EventTooShort {
        /// The event's total length.
        event_len: u32,
        /// Its header's length.
        metadata_len: u16,
    },
    /// An event longer than the bytes left in the buffer.
    #[error("event_len {event_len} runs past the {have} bytes left")]
    TruncatedEvent {
        /// The event's total length.
        event_len: u32,
        /// Bytes left in the buffer.
        have: usize,
    },
    /// Too few bytes after the header for an info record header.
    #[error("info record header needs {INFO_HEADER_LEN} bytes, {have} left in the event")]
    TruncatedInfoHeader {
        /// Bytes left in the event.
        have: usize,
    },
    /// An info record claiming to be shorter than its own header.
    #[error("info record len {0} is below its header size")]
    BadInfoLen(u16),
    /// An info record longer than the bytes left in its event.
    #[error("info record len {len} runs past the {have} bytes left in the event")]
    TruncatedInfo {
        /// The record's length.
        len: u16,
        /// Bytes left in the event.
        have: usize,
    },
    /// A range record too short to hold its offset and count.
    #[error("range record len {0}, expected at least {INFO_RANGE_LEN}")]
    BadRangeLen(u16),
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([buf[at], buf[at + 1]])
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_ne_bytes(b)
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_ne_bytes(b)
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_ne_bytes(b)
}

/// Checks the fixed header of the event at the start of `buf` and returns its
/// fd and length. Once this succeeds the event's bounds (and fd) can be
/// trusted even if its info records turn out to be garbage.
fn frame(buf: &[u8]) -> Result<(RawFd, usize, usize), DecodeErrorKind> {
    if buf.len() < METADATA_LEN {
        return Err(DecodeErrorKind::TruncatedHeader { have: buf.len() });
    }
    let event_len = u32_at(buf, 0);
    let vers = buf[4];
    let metadata_len = u16_at(buf, 6);
    if vers != METADATA_VERSION {
        return Err(DecodeErrorKind::BadVersion(vers));
    }
    if usize::from(metadata_len) < METADATA_LEN {
        return Err(DecodeErrorKind::BadMetadataLen(metadata_len));
    }
    if event_len < u32::from(metadata_len) {
        return Err(DecodeErrorKind::EventTooShort { event_len, metadata_len });
    }
    let len = usize::try_from(event_len).unwrap_or(usize::MAX);
    if len > buf.len() {
        return Err(DecodeErrorKind::TruncatedEvent { event_len, have: buf.len() });
    }
    let fd = i32_at(buf, 16);
    Ok((fd, usize::from(metadata_len), len))
}

/// Reads the info records of one framed event; returns the range record if
/// any, or the offset (within `event`) and kind of the first bad record.
/// Unknown record types are skipped by their `len`.
fn info_records(event: &[u8], start: usize) -> Result<Option<Range>, (usize, DecodeErrorKind)> {
    let mut range = None;
    let mut pos = start;
    while pos < event.len() {
        let have = event.len() - pos;
        if have < INFO_HEADER_LEN {
            return Err((pos, DecodeErrorKind::TruncatedInfoHeader { have }));
        }
        let info_type = event[pos];
        let len = u16_at(event, pos + 2);
        if usize::from(len) < INFO_HEADER_LEN {
            return Err((pos, DecodeErrorKind::BadInfoLen(len)));
        }
        if usize::from(len) > have {
            return Err((pos, DecodeErrorKind::TruncatedInfo { len, have }));
        }
        if info_type == INFO_TYPE_RANGE {
            if usize::from(len) < INFO_RANGE_LEN {
                return Err((pos, DecodeErrorKind::BadRangeLen(len)));
            }
            range = Some(Range { offset: u64_at(event, pos + 8), count: u64_at(event, pos + 16) });
        }
        pos += usize::from(len);
    }
    Ok(range)
}

/// Decodes a buffer filled by `read(2)` on a fanotify group.
///
/// Walks events by `event_len`, insists on metadata version 3, and reads info
/// records by their `len`, keeping the range record and skipping unknown
/// types. Malformed input is an error, never a panic or an endless loop; the
/// error lists the fds of all events it could still frame, so none leak.
pub fn decode(buf: &[u8]) -> Result<Vec<RawEvent>, DecodeError> {
    let mut events: Vec<RawEvent> = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        let rest = &buf[off..];
        let (fd, metadata_len, len) = match frame(rest) {
            Ok(framed) => framed,
            Err(kind) => return Err(decode_error(events.iter().map(|e| e.fd), off, kind, &[])),
        };
        let event = &rest[..len];
        match info_records(event, metadata_len) {
            Ok(range) => events.push(RawEvent { mask: Mask(u64_at(event, 8)), fd, pid: i32_at(event, 20), range }),
            Err((at, kind)) => {
                let before = events.iter().map(|e| e.fd).chain([fd]);
                return Err(decode_error(before, off + at, kind, &buf[off + len..]));
            }
        }
        off += len;
    }
    Ok(events)
}

/// Builds the error, gathering the fds of events before the bad one and of
/// every event that can still be framed after it.
fn decode_error(before: impl Iterator<Item = RawFd>, offset: usize, kind: DecodeErrorKind, mut after: &[u8]) -> DecodeError {
    let mut fds: Vec<RawFd> = before.collect();
    while let Ok((fd, _, len)) = frame(after) {
        fds.push(fd);
        after = &after[len..];
    }
    fds.retain(|&fd| fd >= 0);
    DecodeError { offset, kind, fds }
}

/// A received event. Not `Clone`: it owns the fd the kernel opened on the
/// accessed file (read-write for a pre-content group) and closes it on drop.
///
/// Respond to a permission event *before* dropping it: the kernel matches the
/// response by fd number, and an unanswered event blocks its reader until the
/// group is closed.
#[derive(Debug)]
pub struct Event {
    /// What happened (one or more event bits, plus `ONDIR`).
    pub mask: Mask,
    /// The accessing process, for logs and the open policy (who gets a whole stub).
    pub pid: i32,
    /// The range record of a pre-content event; `None` on other events.
    pub range: Option<Range>,
    fd: Option<OwnedFd>,
}

impl Event {
    /// The fd on the accessed file; `None` for queue overflow or `FAN_NOFD`.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }

    /// Takes ownership of the fd (e.g. to keep a file open past the event).
    pub fn into_fd(self) -> Option<OwnedFd> {
        self.fd
    }

    /// Events were lost because the queue overflowed.
    pub fn is_overflow(&self) -> bool {
        self.mask.contains(Mask::Q_OVERFLOW)
    }

    /// The accessing task is blocked until [`Fanotify::respond`] answers.
    pub fn needs_response(&self) -> bool {
        self.mask.intersects(Mask::PERMISSION) && self.fd.is_some()
    }
}

/// The verdict on a permission event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Let the access go on (the data is in place now).
    Allow,
    /// Fail the access with EPERM.
    Deny,
    /// Fail the access with this errno (`FAN_DENY_ERRNO`). The kernel accepts
    /// only a few: EIO, EPERM, EBUSY, ETXTBSY, EAGAIN, ENOSPC, EDQUOT; others
    /// make `respond` fail with EINVAL.
    DenyErrno(i32),
}

impl Response {
    /// Fails the access with `errno` if the kernel accepts it for
    /// `FAN_DENY_ERRNO`, else with EIO: a response the kernel refuses would
    /// leave the reader blocked.
    pub fn deny(errno: i32) -> Response {
        const ACCEPTED: [i32; 7] = [libc::EIO, libc::EPERM, libc::EBUSY, libc::ETXTBSY, libc::EAGAIN, libc::ENOSPC, libc::EDQUOT];
        Response::DenyErrno(if ACCEPTED.contains(&errno) { errno } else { libc::EIO })
    }

    fn bits(self) -> io::Result<u32> {
        match self {
            Response::Allow => Ok(resp::ALLOW),
            Response::Deny => Ok(resp::DENY),
            Response::DenyErrno(e) => match u8::try_from(e) {
                Ok(e) if e != 0 => Ok(resp::DENY | (u32::from(e) << resp::ERRNO_SHIFT)),
                _ => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("errno {e} does not fit FAN_DENY_ERRNO"))),
            },
        }
    }
}

/// A fanotify notification group.
#[derive(Debug)]
pub struct Fanotify {
    fd: OwnedFd,
}

impl Fanotify {
    /// A pre-content group: `fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC
    /// | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS, O_RDWR | O_LARGEFILE |
    /// O_CLOEXEC)`.
    ///
    /// Event fds are read-write so `pwrite` through them fills a stub without
    /// raising another event, and close-on-exec so children don't inherit
    /// them. Unlimited marks, because every hydrated file gets an ignore mark.
    /// Needs `CAP_SYS_ADMIN`.
    pub fn new_pre_content() -> io::Result<Fanotify> {
        Fanotify::init(init::CLASS_PRE_CONTENT | init::CLOEXEC | init::UNLIMITED_QUEUE | init::UNLIMITED_MARKS)
    }

    /// True if this kernel accepts the proposed `FAN_RESTARTABLE_EVENTS`
    /// init flag, with which a restarted daemon could take over the events
    /// a dead one left unanswered. Mainline (up to 6.18 at least) refuses
    /// it with EINVAL; thaw only reports what it finds.
    pub fn restartable_events_supported() -> bool {
        Fanotify::init(init::CLASS_PRE_CONTENT | init::CLOEXEC | init::RESTARTABLE_EVENTS).is_ok()
    }

    fn init(flags: u32) -> io::Result<Fanotify> {
        let open_flags = libc::O_RDWR | libc::O_LARGEFILE | libc::O_CLOEXEC;
        let event_flags = u32::from_ne_bytes(open_flags.to_ne_bytes());
        // SAFETY: fanotify_init takes two integers and touches no memory of ours.
        let fd = unsafe { libc::fanotify_init(flags, event_flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fanotify_init just returned this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Fanotify { fd })
    }

    /// Watches every file reached through the mount that `path` is on
    /// (`FAN_MARK_ADD | FAN_MARK_MOUNT`). On a bind mount, only accesses
    /// through that bind mount raise events.
    pub fn mark_mount(&self, path: impl AsRef<Path>, mask: Mask) -> io::Result<()> {
        self.mark_path(mark::ADD | mark::MOUNT, mask, path.as_ref())
    }

    /// Watches the whole filesystem `path` is on (`FAN_MARK_FILESYSTEM`).
    pub fn mark_filesystem(&self, path: impl AsRef<Path>, mask: Mask) -> io::Result<()> {
        self.mark_path(mark::ADD | mark::FILESYSTEM, mask, path.as_ref())
    }

    /// Watches one inode by path. Add [`Mask::EVENT_ON_CHILD`] on a directory
    /// to watch its direct children.
    pub fn mark_inode(&self, path: impl AsRef<Path>, mask: Mask) -> io::Result<()> {
        self.mark_path(mark::ADD, mask, path.as_ref())
    }

    /// Watches every file reached through the mount behind `fd` (which may be
    /// a detached mount from `open_tree(OPEN_TREE_CLONE)`, so the mark is armed
    /// before the mount becomes visible anywhere).
    pub fn mark_mount_fd(&self, fd: BorrowedFd<'_>, mask: Mask) -> io::Result<()> {
        // "." relative to the fd, not a NULL path: open_tree gives an O_PATH
        // fd, which fanotify_mark refuses (EBADF) as the marked object itself.
        self.mark(mark::ADD | mark::MOUNT, mask, fd.as_raw_fd(), Some(c"."))
    }

    /// Watches the inode behind `fd`.
    pub fn mark_inode_fd(&self, fd: BorrowedFd<'_>, mask: Mask) -> io::Result<()> {
        self.mark(mark::ADD, mask, fd.as_raw_fd(), None)
    }

    /// Watches the inode of `name` in the directory `dir`, never following a
    /// symlink there (`FAN_MARK_DONT_FOLLOW`). The mark is not evictable: the
    /// kernel keeps the inode in memory until the mark is removed or the group
    /// closed, so the watch cannot vanish under memory pressure.
    pub fn mark_inode_at(&self, dir: BorrowedFd<'_>, name: &CStr, mask: Mask) -> io::Result<()> {
        self.mark(mark::ADD | mark::DONT_FOLLOW, mask, dir.as_raw_fd(), Some(name))
    }

    /// Removes this group's inode mark (the events in `mask`) from the inode
    /// behind `fd`. Fails with ENOENT when the inode has no such mark.
    pub fn unmark_inode(&self, fd: BorrowedFd<'_>, mask: Mask) -> io::Result<()> {
        self.mark(mark::REMOVE, mask, fd.as_raw_fd(), None)
    }

    /// Removes every inode mark of this group (`FAN_MARK_FLUSH`); mount and
    /// filesystem marks stay.
    pub fn flush_inode_marks(&self) -> io::Result<()> {
        self.mark(mark::FLUSH, Mask::empty(), libc::AT_FDCWD, None)
    }

    /// Stops `mask` events for the inode behind `fd` (typically an event fd
    /// once its file is fully hydrated), so later reads run at native speed.
    ///
    /// The mark is evictable: the kernel may drop it with the inode under
    /// memory pressure, after which events come back and must be answered
    /// (with a plain Allow for a hydrated file). It fails with EEXIST if the
    /// inode already has a non-evictable mark from this group.
    pub fn ignore_inode(&self, fd: BorrowedFd<'_>, mask: Mask) -> io::Result<()> {
        let flags = mark::ADD | mark::IGNORE | mark::IGNORED_SURV_MODIFY | mark::EVICTABLE;
        self.mark(flags, mask, fd.as_raw_fd(), None)
    }

    /// Removes the ignore mark [`Fanotify::ignore_inode`] set, so events for
    /// the inode come again (a file turned back into a stub). No mark is not
    /// an error.
    pub fn unignore_inode(&self, fd: BorrowedFd<'_>, mask: Mask) -> io::Result<()> {
        match self.mark(mark::REMOVE | mark::IGNORE, mask, fd.as_raw_fd(), None) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }

    fn mark_path(&self, flags: u32, mask: Mask, path: &Path) -> io::Result<()> {
        let path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        self.mark(flags, mask, libc::AT_FDCWD, Some(&path))
    }

    fn mark(&self, flags: u32, mask: Mask, dirfd: RawFd, path: Option<&CStr>) -> io::Result<()> {
        let path_ptr = path.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: the group fd is open for the life of `self`; `dirfd` is
        // AT_FDCWD or borrowed by the caller for this call; `path_ptr` is null
        // or a NUL-terminated string that outlives the call.
        let ret = unsafe { libc::fanotify_mark(self.fd.as_raw_fd(), flags, mask.bits(), dirfd, path_ptr) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Blocks until events arrive, reads them into `buf` and decodes them.
    /// Retries EINTR.
    ///
    /// `buf` must hold at least one whole event (4 KiB is plenty), or the
    /// kernel fails the read with EINVAL. A malformed buffer is reported as
    /// `InvalidData` after closing every fd it carried.
    pub fn read_events(&self, buf: &mut [u8]) -> io::Result<Vec<Event>> {
        let n = loop {
            match rustix::io::read(&self.fd, &mut *buf) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => {} // retry
                Err(e) => return Err(e.into()),
            }
        };
        match decode(&buf[..n]) {
            Ok(raw) => Ok(raw.into_iter().map(|e| Event { mask: e.mask, pid: e.pid, range: e.range, fd: adopt(e.fd) }).collect()),
            Err(err) => {
                err.fds.iter().for_each(|&fd| drop(adopt(fd)));
                Err(io::Error::new(io::ErrorKind::InvalidData, err))
            }
        }
    }

    /// Answers the permission event whose fd is `event_fd`. Fill the data
    /// first: the reader resumes as soon as this returns.
    pub fn respond(&self, event_fd: BorrowedFd<'_>, response: Response) -> io::Result<()> {
        let mut msg = [0u8; RESPONSE_LEN];
        msg[..4].copy_from_slice(&event_fd.as_raw_fd().to_ne_bytes());
        msg[4..].copy_from_slice(&response.bits()?.to_ne_bytes());
        loop {
            match rustix::io::write(&self.fd, &msg) {
                Ok(RESPONSE_LEN) => return Ok(()),
                Ok(n) => return Err(io::Error::new(io::ErrorKind::WriteZero, format!("fanotify response: short write of {n} bytes"))),
                Err(rustix::io::Errno::INTR) => {} // retry
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Answers the permission event that was given fd number `event_fd` in
    /// the table of whichever process read it. The kernel finds a pending
    /// event by that number alone, so the unmount guard can answer events a
    /// dead daemon read but never answered (see `hydrate::guard`). Fails
    /// with ENOENT when no pending event has that number.
    pub fn respond_to_number(&self, event_fd: RawFd, response: Response) -> io::Result<()> {
        let mut msg = [0u8; RESPONSE_LEN];
        msg[..4].copy_from_slice(&event_fd.to_ne_bytes());
        msg[4..].copy_from_slice(&response.bits()?.to_ne_bytes());
        match rustix::io::write(&self.fd, &msg) {
            Ok(RESPONSE_LEN) => Ok(()),
            Ok(n) => Err(io::Error::new(io::ErrorKind::WriteZero, format!("fanotify response: short write of {n} bytes"))),
            Err(e) => Err(e.into()),
        }
    }

    /// A duplicate of the group fd without close-on-exec, for a child
    /// process (the guard) that must keep the group alive after we die.
    pub fn dup_inheritable(&self) -> io::Result<OwnedFd> {
        Ok(rustix::io::dup(&self.fd)?)
    }

    /// Adopts a group fd this process inherited (the guard's). Refuses an fd
    /// that is not open or not a fanotify group, so a wrong number on the
    /// command line cannot make us close or misuse another file.
    pub fn from_inherited(fd: RawFd) -> io::Result<Fanotify> {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
        if link.as_os_str() != "anon_inode:[fanotify]" {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd} is {}, not a fanotify group", link.display())));
        }
        // SAFETY: the fd is open (its /proc link exists) and is a fanotify
        // group inherited from our parent; nothing else in this process owns
        // it (the guard adopts it once, at startup, from its command line).
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        Ok(Fanotify { fd })
    }

    /// Waits until events can be read. `None` waits forever; returns
    /// `Ok(false)` on timeout or when a signal interrupts the wait, so a
    /// serving loop can check a stop flag.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let ts = timeout.map(|t| Timespec { tv_sec: t.as_secs() as _, tv_nsec: t.subsec_nanos() as _ });
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(n) => Ok(n > 0),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Takes ownership of an fd from a buffer this group's `read` just returned.
fn adopt(fd: RawFd) -> Option<OwnedFd> {
    if fd < 0 {
        return None;
    }
    // SAFETY: only called on fds decoded from the buffer our own read(2) just
    // filled. For each event the kernel installed a fresh fd in our table
    // and hands it to the reader; no other owner exists, and each is adopted
    // exactly once (on success through its Event, on error through the
    // error's fd list, never both).
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl AsFd for Fanotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<Fanotify> for OwnedFd {
    fn from(group: Fanotify) -> OwnedFd {
        group.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a version-3 event header; `extra` is appended as info records.
    fn event(mask: u64, fd: i32, pid: i32, extra: &[u8]) -> Vec<u8> {
        let len = METADATA_LEN + extra.len();
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.push(METADATA_VERSION);
        b.push(0);
        b.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        b.extend_from_slice(&mask.to_ne_bytes());
        b.extend_from_slice(&fd.to_ne_bytes());
        b.extend_from_slice(&pid.to_ne_bytes());
        b.extend_from_slice(extra);
        b
    }

    fn range_record(offset: u64, count: u64) -> Vec<u8> {
        let mut b = vec![INFO_TYPE_RANGE, 0];
        b.extend_from_slice(&(INFO_RANGE_LEN as u16).to_ne_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&offset.to_ne_bytes());
        b.extend_from_slice(&count.to_ne_bytes());
        b
    }

    fn info_record(info_type: u8, len: u16, body: &[u8]) -> Vec<u8> {
        let mut b = vec![info_type, 0];
        b.extend_from_slice(&len.to_ne_bytes());
        b.extend_from_slice(body);
        b
    }

    const PRE: u64 = Mask::PRE_ACCESS.0;

    #[test]
    fn deny_keeps_only_errnos_the_kernel_accepts() {
        assert_eq!(Response::deny(libc::ENOSPC), Response::DenyErrno(libc::ENOSPC));
        assert_eq!(Response::deny(libc::EPERM), Response::DenyErrno(libc::EPERM));
        assert_eq!(Response::deny(libc::EACCES), Response::DenyErrno(libc::EIO));
        assert_eq!(Response::deny(libc::ENOENT), Response::DenyErrno(libc::EIO));
    }

    #[test]
    fn empty_buffer_is_no_events() {
        assert_eq!(decode(&[]).unwrap(), vec![]);
    }

    #[test]
    fn single_event_with_range() {
        let buf = event(PRE, 7, 1234, &range_record(8192, 4096));
        assert_eq!(buf.len(), 48);
        let events = decode(&buf).unwrap();
        assert_eq!(events, vec![RawEvent { mask: Mask::PRE_ACCESS, fd: 7, pid: 1234, range: Some(Range { offset: 8192, count: 4096 }) }]);
    }

    #[test]
    fn multiple_events() {
        let mut buf = event(PRE, 5, 10, &range_record(0, 4096));
        buf.extend(event(Mask::OPEN_PERM.0, 6, 11, &[]));
        buf.extend(event(PRE, 8, 12, &range_record(u64::MAX - 1, 1)));
        let events = decode(&buf).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].range, Some(Range { offset: 0, count: 4096 }));
        assert_eq!((events[1].mask, events[1].fd, events[1].range), (Mask::OPEN_PERM, 6, None));
        assert_eq!(events[2].fd, 8);
        assert_eq!(events[2].range.unwrap().end(), u64::MAX);
    }

    #[test]
    fn overflow_event_has_no_fd() {
        let buf = event(Mask::Q_OVERFLOW.0, NOFD, 0, &[]);
        let events = decode(&buf).unwrap();
        assert_eq!(events[0].fd, NOFD);
        assert!(events[0].mask.contains(Mask::Q_OVERFLOW));
    }

    #[test]
    fn unknown_info_records_are_skipped() {
        let mut extra = info_record(1, 12, &[0xaa; 8]); // FID-like
        extra.extend(info_record(99, 4, &[])); // header-only record
        extra.extend(range_record(4096, 8192));
        extra.extend(info_record(42, 8, &[1, 2, 3, 4]));
        let events = decode(&event(PRE, 3, 1, &extra)).unwrap();
        assert_eq!(events[0].range, Some(Range { offset: 4096, count: 8192 }));
    }

    #[test]
    fn truncated_header() {
        let buf = event(PRE, 3, 1, &[]);
        for cut in 1..METADATA_LEN {
            let err = decode(&buf[..cut]).unwrap_err();
            assert_eq!(err.kind, DecodeErrorKind::TruncatedHeader { have: cut });
            assert!(err.fds.is_empty());
        }
    }

    #[test]
    fn truncated_event_after_good_one_reports_fds() {
        let mut buf = event(PRE, 4, 1, &range_record(0, 4096));
        let second = event(PRE, 9, 1, &range_record(4096, 4096));
        buf.extend_from_slice(&second[..30]);
        let err = decode(&buf).unwrap_err();
        assert_eq!(err.offset, 48);
        assert_eq!(err.kind, DecodeErrorKind::TruncatedEvent { event_len: 48, have: 30 });
        assert_eq!(err.fds, vec![4]);
    }

    #[test]
    fn bad_version() {
        let mut buf = event(PRE, 4, 1, &[]);
        buf[4] = 2;
        let err = decode(&buf).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::BadVersion(2));
        assert!(err.fds.is_empty(), "fd of an unknown layout must not be trusted");
    }

    #[test]
    fn event_len_below_metadata() {
        for bad_len in [0u32, 1, 23] {
            let mut buf = event(PRE, 4, 1, &[]);
            buf[..4].copy_from_slice(&bad_len.to_ne_bytes());
            let err = decode(&buf).unwrap_err();
            assert_eq!(err.kind, DecodeErrorKind::EventTooShort { event_len: bad_len, metadata_len: 24 });
        }
    }

    #[test]
    fn metadata_len_below_struct() {
        let mut buf = event(PRE, 4, 1, &[]);
        buf[6..8].copy_from_slice(&8u16.to_ne_bytes());
        assert_eq!(decode(&buf).unwrap_err().kind, DecodeErrorKind::BadMetadataLen(8));
    }

    #[test]
    fn info_len_zero_does_not_loop() {
        let mut buf = event(PRE, 4, 1, &info_record(7, 0, &[0; 4]));
        buf.extend(event(PRE, 5, 1, &[]));
        let err = decode(&buf).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::BadInfoLen(0));
        assert_eq!(err.offset, METADATA_LEN);
        // The bad event was framed, so its fd and the next event's are closed.
        assert_eq!(err.fds, vec![4, 5]);
    }

    #[test]
    fn info_record_overruns_event() {
        let buf = event(PRE, 4, 1, &info_record(INFO_TYPE_RANGE, 200, &[0; 20]));
        let err = decode(&buf).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::TruncatedInfo { len: 200, have: 24 });
        assert_eq!(err.fds, vec![4]);
    }

    #[test]
    fn truncated_info_header() {
        let buf = event(PRE, 4, 1, &[INFO_TYPE_RANGE, 0]);
        assert_eq!(decode(&buf).unwrap_err().kind, DecodeErrorKind::TruncatedInfoHeader { have: 2 });
    }

    #[test]
    fn short_range_record() {
        let buf = event(PRE, 4, 1, &info_record(INFO_TYPE_RANGE, 8, &[0; 4]));
        assert_eq!(decode(&buf).unwrap_err().kind, DecodeErrorKind::BadRangeLen(8));
    }

    #[test]
    fn error_skips_negative_fds() {
        let mut buf = event(Mask::Q_OVERFLOW.0, NOFD, 0, &[]);
        buf.extend(event(PRE, 6, 1, &info_record(1, 2, &[])));
        assert_eq!(decode(&buf).unwrap_err().fds, vec![6]);
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap fuzz: xorshift bytes, some with a valid-looking header.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000 {
            let len = (round % 97) as usize;
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if len >= METADATA_LEN && round % 2 == 0 {
                buf[..4].copy_from_slice(&((x as u32) % (len as u32 + 8)).to_ne_bytes());
                buf[4] = METADATA_VERSION;
                buf[6..8].copy_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
            }
            let _ = decode(&buf);
        }
    }

    #[test]
    fn deny_errno_encoding() {
        assert_eq!(Response::Allow.bits().unwrap(), 1);
        assert_eq!(Response::Deny.bits().unwrap(), 2);
        assert_eq!(Response::DenyErrno(libc::EIO).bits().unwrap(), 2 | (5 << 24));
        assert!(Response::DenyErrno(0).bits().is_err());
        assert!(Response::DenyErrno(256).bits().is_err());
        assert!(Response::DenyErrno(-5).bits().is_err());
    }

    #[test]
    fn handles_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Fanotify>();
        send_sync::<Event>();
    }

    #[test]
    fn mask_debug_names_bits() {
        assert_eq!(format!("{:?}", Mask::PRE_ACCESS | Mask::OPEN_PERM), "OPEN_PERM | PRE_ACCESS");
        assert_eq!(format!("{:?}", Mask::from_bits_retain(0x8000_0000_0000)), "0x800000000000");
        assert_eq!(format!("{:?}", Mask::empty()), "0x0");
        assert!(Mask::PERMISSION.contains(Mask::PRE_ACCESS));
    }
}
