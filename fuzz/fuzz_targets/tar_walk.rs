//! A tar stream → `thaw convert`'s member walk (`MemberEntries`), the
//! replay of which members win (`members::resolve`) and the writer, into an
//! archive in memory (4 KiB frames so small inputs span several frames).
//! Oracle: no panic; a converted archive opens (its index is valid: kept
//! paths unique, parents are directories, data inside the stream), lists
//! what the summary says, reads back every file, and `verify` finds its tar
//! stream and index in agreement.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use thaw::fuzzing::{convert_in_memory, open_mem};

fuzz_target!(|data: &[u8]| {
    let Ok((summary, bytes)) = convert_in_memory(data) else { return };
    let a = match open_mem(&bytes) {
        Ok(a) => a,
        Err(e) => panic!("convert wrote an archive that does not open: {}", thaw::archive::error_chain(&e)),
    };
    let entries = a.entries().expect("the index of a converted archive reads");
    assert_eq!((entries.len(), a.id()), (summary.entries, summary.id));
    let mut paths = HashSet::new();
    assert!(entries.iter().all(|e| paths.insert(&e.path)), "a path kept twice");
    let mut frames = common::Frames::new(&bytes);
    assert!(common::read_everything(&a, &mut frames), "a converted file does not read back");
    let report = thaw::archive::verify::verify(&a, &|_| {}).expect("verify runs");
    assert!(report.problems.is_empty(), "verify of a converted archive: {:?}", report.problems);
});
