//! Laying an archive's tree out on disk: `extract` writes everything,
//! `populate` writes sparse stubs that the hydration daemon fills on demand.
//! All creation goes through [`TargetDir`], which resolves every path beneath
//! the target directory without following any symlink.

pub mod extract;
pub mod marker;
pub mod populate;
pub mod stage;
pub mod target;

pub use target::TargetDir;

use crate::archive;
use std::io;

/// Errors of laying a tree out; each names the path. A variant that wraps an
/// io::Error shows only its own context and chains the cause through
/// `source()` (print the chain: anyhow's `{:#}`, [`archive::error_chain`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    At { path: String, source: io::Error },
    #[error(transparent)]
    Archive(#[from] archive::Error),
    #[error("{path}: {why}")]
    Refused { path: String, why: String },
    /// `path` cannot be created because of its parent directory (`why` says how).
    #[error("{path}: {why}")]
    Parent { path: String, why: String, source: io::Error },
}

impl Error {
    pub fn at(path: impl AsRef<[u8]>, source: impl Into<io::Error>) -> Error {
        Error::At { path: String::from_utf8_lossy(path.as_ref()).into_owned(), source: source.into() }
    }
}
