//! Integration tests of the archive layer and the archive commands (issue #2):
//! round trips, interop with stock tar + zstd, convert, cat, random-range
//! reads, concurrent readers, hostile input, and the checked-in fixture.
//!
//! CLI tests run the built `thaw` binary; the rest use the library. Needs the
//! `tar`, `zstd`, `gzip`, `xz` and `sha256sum` commands (Debian packages tar,
//! zstd, gzip, xz-utils, coreutils) and `setpriv` (util-linux) when run as root.

#[path = "archive/common.rs"]
mod common;

#[path = "archive/bad_input.rs"]
mod bad_input;
#[path = "archive/concurrency.rs"]
mod concurrency;
#[path = "archive/convert.rs"]
mod convert;
#[path = "archive/early_stop.rs"]
mod early_stop;
#[path = "archive/fixture.rs"]
mod fixture;
#[path = "archive/format_v2.rs"]
mod format_v2;
#[path = "archive/interop.rs"]
mod interop;
#[path = "archive/long_paths.rs"]
mod long_paths;
#[path = "archive/random_read.rs"]
mod random_read;
#[path = "archive/round_trip.rs"]
mod round_trip;
