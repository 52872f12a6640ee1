//! A (mutated) whole archive, opened from memory: trailer, seek table, index,
//! then a lookup of every path, a read of every file and `verify`.
//! Oracle: no panic, no OOM (run with -rss_limit_mb / -malloc_limit_mb);
//! every byte a read returns is the tar stream's byte there, per an
//! independent zstd decode checked against the seek table checksum.
//! Seeds: fixtures/small.tar.zst and archives made by fuzz/seeds.sh.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use thaw::fuzzing::open_mem;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = open_mem(data) else { return };
    assert!(a.trailer_len() <= data.len() as u64);
    let mut frames = common::Frames::new(data);
    common::read_everything(&a, &mut frames);
    let _ = thaw::archive::verify::verify(&a, &|_| {});
});
