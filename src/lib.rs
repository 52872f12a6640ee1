//! thaw: make a huge archive usable at once. A tree of empty stub files is
//! laid out on a local filesystem, and the first read of each range is
//! served by decoding only the zstd frames that cover it (fanotify
//! pre-content events).
//!
//! Data path: `archive` (format, random access) → `tree` (stubs, full
//! extraction) → `hydrate` (the daemon) → `sys` (the kernel interface, the
//! only module with `unsafe`).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod archive;
#[doc(hidden)]
pub mod fuzzing;
pub mod hydrate;
#[allow(unsafe_code)]
pub mod sys;
pub mod tree;
