//! A v1 index body: `[u32 entry count][u64 tar stream length][body]`, all
//! little-endian. Oracle: no panic, no huge allocation from a lying count;
//! accepted entries re-encode and decode to the same entries (the encoding
//! of decoded entries is canonical), and an accepted index answers lookups
//! of all its paths with the right entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thaw::archive::index::{decode_entries, encode_entries, EntryKind, Index};

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let count = u64::from(u32::from_le_bytes(data[0..4].try_into().unwrap()));
    let stream_len = u64::from_le_bytes(data[4..12].try_into().unwrap());
    let body = &data[12..];
    let Ok(entries) = decode_entries(body, count) else { return };
    assert_eq!(entries.len() as u64, count);
    let enc = encode_entries(&entries);
    assert!(enc.len() <= body.len(), "re-encoding grew");
    assert_eq!(decode_entries(&enc, count).expect("re-encoded entries decode"), entries);
    let Ok(index) = Index::new(entries, stream_len) else { return };
    for (i, e) in index.entries().iter().enumerate() {
        assert_eq!(index.position(&e.path), Some(i), "lookup of an accepted path");
        let d = index.data_entry(e);
        match e.kind {
            EntryKind::File => assert!(d.data_offset.checked_add(d.size).is_some_and(|end| end <= stream_len)),
            EntryKind::Hardlink => assert_eq!(d.kind, EntryKind::File, "a hard link resolves to a file"),
            _ => assert_eq!(e.size, 0),
        }
    }
});
