//! The hydration daemon and the tools around it. A stub is filled a chunk at
//! a time (a chunk is the part of one zstd frame that belongs to the file),
//! written through the fanotify event fd before the reader is let go.
//! Hydration state lives in the stub itself: the marker xattr says which
//! archive entry it is, and its allocated blocks (SEEK_DATA) say which chunks
//! are in place, so a restart never decodes anything twice.
//!
//! Pieces, from the kernel up: [`marks`] decides what carries the watch (each
//! stub, or the mount); [`mount`] puts the watched stub tree over `DIR` and
//! takes it away; [`events`] answers each fanotify event exactly
//! once; [`hydrator`] fills stubs using a [`chunks::ChunkMap`] per file;
//! [`daemon`] ties them into `thaw serve`; [`guard`] outlives a dead daemon;
//! [`supervise`] is `thaw run`; [`status`] looks at trees from outside.
//! Beside the event path: [`dehydrate`] turns files back into stubs (asked
//! over [`control`] while served), [`budget`] does it to keep `--max-disk`,
//! and [`profile`] records first accesses and prefetches them.

pub mod budget;
pub mod chunks;
pub mod control;
pub mod daemon;
pub mod dehydrate;
pub mod events;
pub mod guard;
pub mod hydrator;
pub mod marks;
pub mod mount;
pub mod profile;
pub mod status;
pub mod stop;
pub mod supervise;
pub mod walk;

pub use daemon::{serve, ServeOptions};
pub use hydrator::Hydrator;

use std::io;

/// Errors of the hydration layer. Each names the file; [`Error::errno`] is
/// what a reader whose access failed is answered with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a file failed.
    #[error("{path}")]
    Io {
        /// The file the call was about.
        path: String,
        /// The OS error, chained as the cause; its errno is what the reader gets.
        source: io::Error,
    },
    /// The archive could not deliver.
    #[error(transparent)]
    Archive(#[from] crate::archive::Error),
    /// The tree or its stage is unusable.
    #[error(transparent)]
    Tree(#[from] crate::tree::Error),
    /// A stub whose marker or state makes no sense.
    #[error("{path}: {why}")]
    Stub {
        /// The stub, as its fd resolves.
        path: String,
        /// What went wrong with it (unreadable or foreign marker, no answer in time).
        why: String,
    },
    /// A file thaw will not fill: its marker or metadata could let a user
    /// read archive bytes they may not read.
    #[error("{path}: refused: {why}")]
    Refused {
        /// The file, as its fd resolves.
        path: String,
        /// Which check it failed (marker inode, owner, mode...).
        why: String,
    },
    /// The daemon could not start.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    /// An IO error on `path`.
    pub fn io(path: impl std::fmt::Display, source: impl Into<io::Error>) -> Error {
        Error::Io { path: path.to_string(), source: source.into() }
    }

    /// A stub that makes no sense.
    pub fn stub(path: impl std::fmt::Display, why: impl Into<String>) -> Error {
        Error::Stub { path: path.to_string(), why: why.into() }
    }

    /// The errno a reader gets when this error stops its access: the system
    /// call's own where there is one (a full disk is ENOSPC, not EIO),
    /// EPERM for a refused file, EIO for anything the archive could not
    /// deliver. The kernel takes only a few errnos here; any other becomes
    /// EIO (see [`Response::deny`](crate::sys::fanotify::Response::deny)).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::Refused { .. } => libc::EPERM,
            _ => libc::EIO,
        }
    }
}

pub use crate::archive::error_chain as chain;
