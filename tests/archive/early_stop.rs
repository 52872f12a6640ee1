//! Format 2 reads of small files decode their frame only up to the file's
//! end, resume that decoder for the next file, and still check every byte
//! (issue #10's early stop on top of issue #9's per-file checksums).

use std::collections::BTreeMap;

use crate::common::{data, open_mem, write_entries_with};
use thaw::archive::writer::WriterOptions;
use thaw::archive::{Entry, EntryKind};

/// Path and contents of each file, in archive order.
type Files = Vec<(Vec<u8>, Vec<u8>)>;

/// 48 files of 80 kB (3.84 MB): one 4 MiB small-file frame at the defaults.
fn one_run() -> (Vec<u8>, Files) {
    let mut entries = Vec::new();
    let mut files = BTreeMap::new();
    let mut list = Vec::new();
    for i in 0..48u64 {
        let path = format!("f{i:02}").into_bytes();
        let body = data(7000 + i, 80_000);
        let mut e = Entry::new(path.clone(), EntryKind::File);
        e.size = body.len() as u64;
        e.mtime = 1_700_000_000;
        entries.push(e);
        files.insert(path.clone(), body.clone());
        list.push((path, body));
    }
    (write_entries_with(entries, &files, WriterOptions::default()), list)
}

fn read_whole(a: &thaw::archive::Archive, path: &[u8]) -> Result<Vec<u8>, thaw::archive::Error> {
    let e = a.lookup(path)?.expect("in the archive");
    let mut buf = vec![0u8; e.size as usize];
    let n = a.read_at(&e, 0, &mut buf)?;
    assert_eq!(n, buf.len());
    Ok(buf)
}

#[test]
fn a_small_file_costs_its_end_offset_in_its_frame_not_the_frame() {
    let (bytes, files) = one_run();
    let a = open_mem(&bytes).unwrap();
    assert_eq!(a.seek_table().len(), 1, "the 48 files must share one frame for this test");
    assert_eq!(read_whole(&a, &files[0].0).unwrap(), files[0].1);
    let first = a.bytes_decoded();
    assert!(first < 512 << 10, "the first 80 kB file of a 3.8 MB frame decoded {first} bytes");
    // The tenth file resumes the same decoder: nothing before it again.
    assert_eq!(read_whole(&a, &files[9].0).unwrap(), files[9].1);
    let tenth = a.bytes_decoded();
    assert!(tenth < 10 * 80_000 + (512 << 10), "up to the tenth file: {tenth} bytes decoded");
    assert_eq!(a.frames_decoded(), 1);
    // The last file finishes the frame (zstd's checksum checked), which then
    // serves everything from the frame cache.
    for (p, body) in &files {
        assert!(read_whole(&a, p).unwrap() == *body, "{}", String::from_utf8_lossy(p));
    }
    let total = a.bytes_decoded();
    assert_eq!(total, u64::from(a.seek_table().frame(0).decompressed), "every byte decoded once");
    assert_eq!(a.frames_decoded(), 1, "no frame decoded twice");
}

#[test]
fn a_corrupt_frame_fails_the_files_it_holds_and_never_serves_wrong_bytes() {
    let (mut bytes, files) = one_run();
    // Flip a byte early in the compressed frame (the frame starts the file).
    bytes[2000] ^= 0x10;
    let a = open_mem(&bytes).unwrap();
    let mut failed = 0;
    for (p, body) in &files {
        match read_whole(&a, p) {
            Ok(b) => assert!(b == *body, "{} read wrong bytes from a corrupt frame", String::from_utf8_lossy(p)),
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0, "a flipped byte in the frame failed no read");
}
