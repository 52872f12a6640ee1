//! A (mutated) whole archive, opened from memory: trailer, seek table, index,
//! then a lookup of every path, a read of every file and `verify`.
//! Oracle: no panic, no OOM (run with -rss_limit_mb / -malloc_limit_mb);
//! every byte a read returns is the tar stream's byte there, per an
//! independent zstd decode checked against the seek table checksum.
//! An input that does not open is tried again with its archive id
//! recomputed (`common::with_fixed_id`), so mutations of the seek table and
//! header fields are not all stopped by the id check.
//! Seeds: fixtures/small.tar.zst and archives made by fuzz/seeds.sh.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use thaw::fuzzing::open_mem;

fuzz_target!(|data: &[u8]| {
    // As given, then with the archive id recomputed: a mutated seek table or
    // header then reaches the checks behind the id.
    if !check(data) {
        if let Some(fixed) = common::with_fixed_id(data) {
            check(&fixed);
        }
    }
});

/// Opens, looks up, reads and verifies; false when the archive does not open.
fn check(data: &[u8]) -> bool {
    let Ok(a) = open_mem(data) else { return false };
    assert!(a.trailer_len() <= data.len() as u64);
    let mut frames = common::Frames::new(data);
    common::read_everything(&a, &mut frames);
    let _ = thaw::archive::verify::verify(&a, &|_| {});
    true
}
