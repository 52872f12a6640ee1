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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {cause}")]
    At { path: String, cause: io::Error },
    #[error(transparent)]
    Archive(#[from] archive::Error),
    #[error("{path}: {why}")]
    Refused { path: String, why: String },
}

impl Error {
    pub fn at(path: impl AsRef<[u8]>, cause: impl Into<io::Error>) -> Error {
        Error::At { path: String::from_utf8_lossy(path.as_ref()).into_owned(), cause: cause.into() }
    }
}
