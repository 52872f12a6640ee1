//! The thaw archive: a `.tar.zst` made of independent zstd frames, with an
//! index and a zstd seek table in skippable frames at the end
//! (formats/thaw-archive.md). This module writes (pack, convert) and reads
//! (random access through a bounded, single-flight frame cache) archives; it
//! knows nothing about fanotify.

pub mod catalog;
pub mod convert;
pub mod index;
pub mod index_v2;
pub mod members;
pub mod pack;
pub mod partial;
pub mod reader;
pub mod remote;
pub mod seek_table;
pub mod verify;
pub mod writer;

pub use index::{Entry, EntryKind, Index};
pub use reader::{Archive, ChunkBytes, FileSource, Source, Transfer};
pub use seek_table::SeekTable;
pub use writer::{ArchiveWriter, WriterOptions};

use std::io;

/// Largest decompressed frame a reader accepts (absurd-size guard).
pub const MAX_FRAME_SIZE: u32 = 64 << 20;
/// Default target uncompressed frame size.
pub const DEFAULT_FRAME_SIZE: usize = 1 << 20;

/// Errors of the archive layer; each names what is wrong and where. A
/// variant that wraps another error shows only its own context and chains
/// the cause through `source()` (print the chain, e.g. anyhow's `{:#}`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a file failed; its errno is what a reader is answered.
    #[error("{path}")]
    Io {
        /// The file (or archive) the call was about.
        path: String,
        /// The OS error, chained as the cause.
        source: io::Error,
    },
    /// The file is not a thaw archive (not a regular file, no seek table or
    /// trailer); the message names the file and what is missing.
    #[error("not a thaw archive: {0}")]
    NotThaw(String),
    /// A structure of the archive (trailer, index, seek table) fails validation.
    #[error("corrupt {what}: {why}")]
    Corrupt {
        /// Which structure, e.g. "index" or "seek table".
        what: String,
        /// The check that failed, with the offending values.
        why: String,
    },
    /// One member's record is unusable (bad path, kind or size); names the member.
    #[error("entry {path:?}: {why}")]
    BadEntry {
        /// The member's path as recorded, lossily decoded.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// A data frame that does not decode to what the seek table says.
    #[error("frame {frame}: {why}")]
    Frame {
        /// Index of the frame in the seek table.
        frame: usize,
        /// The decoder's complaint or the size mismatch.
        why: String,
    },
    /// A data frame's bytes could not be read from the archive file.
    #[error("frame {frame}: cannot read it from {path}")]
    FrameRead {
        /// Index of the frame in the seek table.
        frame: usize,
        /// The archive file.
        path: String,
        /// The failed read, chained as the cause and answered by its errno.
        source: io::Error,
    },
    /// The archive file is not the one that was opened any more: its bytes
    /// cannot be trusted (see [`reader::FileSource`]).
    #[error("{path}: archive changed since it was opened ({what})")]
    Changed {
        /// The archive file.
        path: String,
        /// What differs from the opened file (inode, size, mtime).
        what: String,
    },
    /// A request thaw cannot honour: another format version, a bad frame size,
    /// an index over 4 GiB.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A path asked for by name is not a member of the archive.
    #[error("no entry {0:?} in the archive")]
    NotFound(String),
}

impl Error {
    /// Shorthand for [`Error::Corrupt`], the validation failure of one structure.
    pub fn corrupt(what: &str, why: impl Into<String>) -> Error {
        Error::Corrupt { what: what.into(), why: why.into() }
    }

    /// Shorthand for [`Error::Io`] that names the file the call was about.
    pub fn io(path: impl std::fmt::Display, source: io::Error) -> Error {
        Error::Io { path: path.to_string(), source }
    }

    /// The errno to answer a reader with: the OS error itself for a failed
    /// read, ENOENT for a missing entry, EIO for everything else (damaged or
    /// changed archive: the bytes cannot be served).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } | Error::FrameRead { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::NotFound(_) => libc::ENOENT,
            _ => libc::EIO,
        }
    }
}

/// An error and its causes, joined by ": " (what anyhow's `{:#}` prints),
/// for messages made outside `main` (warnings, verify reports, logs).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A copy for each reader waiting on one failed frame decode. An io::Error
/// is copied by its errno, or by its kind and message.
impl Clone for Error {
    fn clone(&self) -> Error {
        let io = |e: &io::Error| e.raw_os_error().map_or_else(|| io::Error::new(e.kind(), e.to_string()), io::Error::from_raw_os_error);
        match self {
            Error::Io { path, source } => Error::Io { path: path.clone(), source: io(source) },
            Error::FrameRead { frame, path, source } => Error::FrameRead { frame: *frame, path: path.clone(), source: io(source) },
            Error::NotThaw(s) => Error::NotThaw(s.clone()),
            Error::Corrupt { what, why } => Error::Corrupt { what: what.clone(), why: why.clone() },
            Error::BadEntry { path, why } => Error::BadEntry { path: path.clone(), why: why.clone() },
            Error::Frame { frame, why } => Error::Frame { frame: *frame, why: why.clone() },
            Error::Changed { path, what } => Error::Changed { path: path.clone(), what: what.clone() },
            Error::Unsupported(s) => Error::Unsupported(s.clone()),
            Error::NotFound(s) => Error::NotFound(s.clone()),
        }
    }
}

/// Keeps the meaning for callers that speak `io::Error`: a failed read keeps
/// its errno, a missing entry is NotFound, a damaged archive is InvalidData,
/// a changed one is Other (whose [`Error::errno`] is EIO).
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io { source, .. } | Error::FrameRead { source, .. } => source,
            Error::NotFound(_) => io::Error::new(io::ErrorKind::NotFound, e),
            Error::Changed { .. } => io::Error::other(e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
