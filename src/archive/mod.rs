//! The thaw archive: a `.tar.zst` made of independent zstd frames, with an
//! index and a zstd seek table in skippable frames at the end
//! (formats/thaw-archive.md). This module writes (pack, convert) and reads
//! (random access through a bounded, single-flight frame cache) archives; it
//! knows nothing about fanotify.

pub mod convert;
pub mod index;
pub mod members;
pub mod pack;
pub mod reader;
pub mod seek_table;
pub mod verify;
pub mod writer;

pub use index::{Entry, EntryKind, Index};
pub use reader::{Archive, FileSource, Source};
pub use seek_table::SeekTable;
pub use writer::{ArchiveWriter, WriterOptions};

use std::io;

/// Largest decompressed frame a reader accepts (absurd-size guard).
pub const MAX_FRAME_SIZE: u32 = 64 << 20;
/// Default target uncompressed frame size.
pub const DEFAULT_FRAME_SIZE: usize = 1 << 20;

/// Errors of the archive layer; each names what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("not a thaw archive: {0}")]
    NotThaw(String),
    #[error("corrupt {what}: {why}")]
    Corrupt { what: String, why: String },
    #[error("entry {path:?}: {why}")]
    BadEntry { path: String, why: String },
    #[error("frame {frame}: {why}")]
    Frame { frame: usize, why: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("no entry {0:?} in the archive")]
    NotFound(String),
}

impl Error {
    pub fn corrupt(what: &str, why: impl Into<String>) -> Error {
        Error::Corrupt { what: what.into(), why: why.into() }
    }

    pub fn io(path: impl std::fmt::Display, source: io::Error) -> Error {
        Error::Io { path: path.to_string(), source }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io { source, .. } => source,
            Error::NotFound(_) => io::Error::new(io::ErrorKind::NotFound, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}
