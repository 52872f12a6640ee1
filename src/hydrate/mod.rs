//! The hydration daemon and the tools around it. A stub is filled a chunk at
//! a time (a chunk is the part of one zstd frame that belongs to the file),
//! written through the fanotify event fd before the reader is let go.
//! Hydration state lives in the stub itself: the marker xattr says which
//! archive entry it is, and its allocated blocks (SEEK_DATA) say which chunks
//! are in place, so a restart never decodes anything twice.

pub mod daemon;
pub mod hydrator;
pub mod status;

pub use daemon::{serve, ServeOptions};
pub use hydrator::Hydrator;

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {cause}")]
    Io { path: String, cause: io::Error },
    #[error(transparent)]
    Archive(#[from] crate::archive::Error),
    #[error(transparent)]
    Tree(#[from] crate::tree::Error),
    #[error("{path}: {why}")]
    Stub { path: String, why: String },
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub fn io(path: impl std::fmt::Display, cause: impl Into<io::Error>) -> Error {
        Error::Io { path: path.to_string(), cause: cause.into() }
    }
}
