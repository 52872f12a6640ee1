//! Raw kernel interfaces, wrapped in safe types.
//!
//! This is the bottom of thaw's data path and the only module allowed to use
//! `unsafe`: everything above it talks to the kernel through the typed,
//! fd-owning API here. Every `unsafe` block carries a `// SAFETY:` comment.

pub mod fanotify;
pub mod io;
pub mod mem;
pub mod process;
pub mod xattr;
