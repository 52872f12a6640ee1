//! The stub marker: the xattr that makes a file a stub the daemon may fill.
//!
//! It lives in `trusted.*`, which only a process with CAP_SYS_ADMIN can set or
//! even read, so no user can forge one on a file of theirs (the v0.1 marker
//! was in `user.*`, which the owner of any file may set). It also names the
//! inode number `populate` created the stub as: a marker copied onto another
//! file by a root tool (`cp -a`, `rsync -X`, a backup restore) does not match
//! that file and is refused. See "Stub markers" in `formats/thaw-archive.md`.

use std::io;
use std::os::fd::BorrowedFd;

/// Name of the stub marker xattr (only CAP_SYS_ADMIN can set or read it).
pub const MARKER_XATTR: &str = "trusted.thaw";
/// Where thaw 0.1 kept its marker; any file owner can forge it, so it is never
/// trusted: a tree that has it needs `thaw upgrade DIR`.
pub const LEGACY_MARKER_XATTR: &str = "user.thaw";
/// Where a complete file came from: `thaw-origin <entry> <inode>`, set when
/// its marker goes (the file is complete) and removed when it becomes a stub
/// again. Only CAP_SYS_ADMIN can set it, and it names the inode, so a file a
/// user created, renamed over a path or copied never carries a valid one.
/// It is what lets `thaw dehydrate` turn a complete file back into a stub.
/// Short on purpose: with the marker gone it fits in the inode beside other
/// small xattrs, so it costs no disk block.
pub const ORIGIN_XATTR: &str = "trusted.thaw.origin";
/// First word of an origin record.
const ORIGIN_MAGIC: &str = "thaw-origin";

/// A parsed origin record (see [`ORIGIN_XATTR`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index of the file's entry in the stage's archive.
    pub entry: usize,
    /// Inode number the file was made as.
    pub ino: u64,
}

impl Origin {
    /// The xattr value.
    pub fn encode(&self) -> Vec<u8> {
        format!("{ORIGIN_MAGIC} {} {}", self.entry, self.ino).into_bytes()
    }

    /// Parses an xattr value; `None` if malformed.
    pub fn parse(v: &[u8]) -> Option<Origin> {
        let s = std::str::from_utf8(v).ok()?;
        let mut it = s.split(' ');
        if it.next()? != ORIGIN_MAGIC {
            return None;
        }
        let o = Origin { entry: it.next()?.parse().ok()?, ino: it.next()?.parse().ok()? };
        it.next().is_none().then_some(o)
    }
}

/// First word of an encoded marker.
const MAGIC: &str = "thaw2";

/// A parsed stub marker: `thaw2 <archive id> <entry> <inode>`, then
/// `limit=<n>` once a user shrank the file and `modified` once a user wrote
/// to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// Archive id (hex) the stub was populated from.
    pub id: String,
    /// Index of the stub's entry in the archive.
    pub entry: usize,
    /// Inode number the stub was created as; a marker on any other inode is refused.
    pub ino: u64,
    /// Archive bytes at or past this offset belong to the user (set by a shrink).
    pub limit: Option<u64>,
    /// A user wrote to or truncated the file: some of its bytes are theirs.
    pub modified: bool,
}

impl Marker {
    /// A fresh stub's marker.
    pub fn new(id: String, entry: usize, ino: u64) -> Marker {
        Marker { id, entry, ino, limit: None, modified: false }
    }

    /// The xattr value.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("{MAGIC} {} {} {}", self.id, self.entry, self.ino);
        if let Some(l) = self.limit {
            s.push_str(&format!(" limit={l}"));
        }
        if self.modified {
            s.push_str(" modified");
        }
        s.into_bytes()
    }

    /// Parses an xattr value; `None` if it is not a well-formed marker.
    pub fn parse(v: &[u8]) -> Option<Marker> {
        let s = std::str::from_utf8(v).ok()?;
        let mut it = s.split(' ');
        if it.next()? != MAGIC {
            return None;
        }
        let id = it.next()?.to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let entry = it.next()?.parse().ok()?;
        let ino = it.next()?.parse().ok()?;
        let mut m = Marker::new(id, entry, ino);
        for word in it {
            match word.split_once('=') {
                Some(("limit", n)) if m.limit.is_none() => m.limit = Some(n.parse().ok()?),
                None if word == "modified" && !m.modified => m.modified = true,
                _ => return None,
            }
        }
        Some(m)
    }
}

/// Reads the marker of an open file: `Ok(None)` when it has none (not a stub).
/// A marker that is present but malformed is an error, not "no marker".
pub fn read(fd: BorrowedFd<'_>) -> io::Result<Option<Marker>> {
    let mut buf = [0u8; 160];
    match rustix::fs::fgetxattr(fd, MARKER_XATTR, &mut buf) {
        Ok(n) => Marker::parse(&buf[..n])
            .map(Some)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("malformed {MARKER_XATTR} marker"))),
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads the origin record of an open file ([`ORIGIN_XATTR`]): `Ok(None)`
/// when it has none or a malformed one (then it is not provably thaw's).
pub fn read_origin(fd: BorrowedFd<'_>) -> io::Result<Option<Origin>> {
    let mut buf = [0u8; 64];
    match rustix::fs::fgetxattr(fd, ORIGIN_XATTR, &mut buf) {
        Ok(n) => Ok(Origin::parse(&buf[..n])),
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP | rustix::io::Errno::RANGE) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes the origin record of a file that just became complete.
pub fn write_origin(fd: BorrowedFd<'_>, o: &Origin) -> io::Result<()> {
    rustix::fs::fsetxattr(fd, ORIGIN_XATTR, &o.encode(), rustix::fs::XattrFlags::empty()).map_err(Into::into)
}

/// Removes the origin record (a stub again, or a detached tree's plain file).
pub fn remove_origin(fd: BorrowedFd<'_>) -> io::Result<()> {
    match rustix::fs::fremovexattr(fd, ORIGIN_XATTR) {
        Ok(()) | Err(rustix::io::Errno::NODATA) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes (or replaces) the marker of an open file.
pub fn write(fd: BorrowedFd<'_>, m: &Marker) -> io::Result<()> {
    rustix::fs::fsetxattr(fd, MARKER_XATTR, &m.encode(), rustix::fs::XattrFlags::empty()).map_err(Into::into)
}

/// Removes the marker (the file is complete); no marker is not an error.
pub fn remove(fd: BorrowedFd<'_>) -> io::Result<()> {
    match rustix::fs::fremovexattr(fd, MARKER_XATTR) {
        Ok(()) | Err(rustix::io::Errno::NODATA) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// True if the file carries a thaw 0.1 marker (`user.thaw`).
pub fn has_legacy(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 160];
    rustix::fs::fgetxattr(fd, LEGACY_MARKER_XATTR, &mut buf).is_ok()
}

#[cfg(test)]
mod tests {
    use super::Marker;

    #[test]
    fn round_trip() {
        let m = Marker::new("abcd".into(), 42, 7777);
        assert_eq!(m.encode(), b"thaw2 abcd 42 7777");
        assert_eq!(Marker::parse(&m.encode()), Some(m.clone()));
        let m = Marker { limit: Some(7), modified: true, ..m };
        assert_eq!(m.encode(), b"thaw2 abcd 42 7777 limit=7 modified");
        assert_eq!(Marker::parse(&m.encode()), Some(m));
    }

    #[test]
    fn origin_round_trip() {
        let o = super::Origin { entry: 12, ino: 345 };
        assert_eq!(o.encode(), b"thaw-origin 12 345");
        assert_eq!(super::Origin::parse(&o.encode()), Some(o));
        for bad in [&b"thaw-origin 12"[..], b"thaw-origin 1 2 3", b"thaw2 1 2", b"thaw-origin x 2"] {
            assert_eq!(super::Origin::parse(bad), None);
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"thaw1 abcd 1"[..],
            b"thaw2 abcd 1",
            b"thaw2 abcd x 5",
            b"thaw2 xyz! 1 5",
            b"thaw2 abcd 1 5 limit=",
            b"thaw2 abcd 1 5 limit=1 limit=2",
            b"thaw2 abcd 1 5 modified modified",
            b"thaw2 abcd 1 5 other",
            b"thaw2  1 5",
            b"\xff",
        ] {
            assert_eq!(Marker::parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
