//! Laying an archive's tree out on disk: `extract` writes everything,
//! `populate` writes sparse stubs that the hydration daemon fills on demand.
//! All creation goes through [`TargetDir`], which resolves every path beneath
//! the target directory without following any symlink.

pub mod extract;
pub mod marker;
pub mod populate;
pub mod stage;
pub mod target;
pub mod upgrade;

pub use target::TargetDir;

use crate::archive;
use std::io;

/// Errors of laying a tree out; each names the path. A variant that wraps an
/// io::Error shows only its own context and chains the cause through
/// `source()` (print the chain: anyhow's `{:#}`, [`archive::error_chain`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on `path` failed.
    #[error("{path}")]
    At {
        /// The path the call was about, relative to the target where it is one.
        path: String,
        /// The OS error, chained as the cause.
        source: io::Error,
    },
    /// The archive could not be read (its own error, shown as is).
    #[error(transparent)]
    Archive(#[from] archive::Error),
    /// thaw will not act on `path` as it stands (served, not ours, already
    /// populated, open to others): nothing was changed.
    #[error("{path}: {why}")]
    Refused {
        /// The directory or file refused.
        path: String,
        /// Why, in words the user can act on.
        why: String,
    },
    /// `path` cannot be created because of its parent directory (`why` says how).
    #[error("{path}: {why}")]
    Parent {
        /// The path that could not be created.
        path: String,
        /// What is wrong with the parent (a symlink, not a directory, not openable).
        why: String,
        /// The OS error from opening the parent.
        source: io::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::At`] from a path as bytes (lossily decoded for the message).
    pub fn at(path: impl AsRef<[u8]>, source: impl Into<io::Error>) -> Error {
        Error::At { path: String::from_utf8_lossy(path.as_ref()).into_owned(), source: source.into() }
    }
}
