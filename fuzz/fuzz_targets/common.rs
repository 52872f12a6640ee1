//! Checks shared by the archive targets (included with `#[path]`, not a target).
#![allow(dead_code)] // each target uses part of it

use std::collections::HashMap;
use thaw::archive::{Archive, EntryKind};

/// Decodes frames straight from the archive bytes, independently of thaw's
/// reader, and checks each against its seek table checksum.
pub struct Frames<'a> {
    bytes: &'a [u8],
    done: HashMap<usize, Vec<u8>>,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8]) -> Frames<'a> {
        Frames { bytes, done: HashMap::new() }
    }

    fn frame(&mut self, a: &Archive, i: usize) -> &[u8] {
        let bytes = self.bytes;
        self.done.entry(i).or_insert_with(|| {
            let t = a.seek_table();
            let f = t.frame(i);
            let start = t.compressed_offset(i) as usize;
            let src = &bytes[start..start + f.compressed as usize];
            let out = zstd::bulk::decompress(src, f.decompressed as usize).expect("thaw served bytes of a frame zstd cannot decode");
            assert_eq!(out.len(), f.decompressed as usize, "thaw served bytes of frame {i} whose size is not the seek table's");
            let sum = xxhash_rust::xxh64::xxh64(&out, 0) as u32;
            assert_eq!(sum, f.checksum, "thaw served bytes of frame {i} whose checksum is not the seek table's");
            out
        })
    }

    /// Asserts that `got` are the tar stream bytes at `pos`.
    pub fn check(&mut self, a: &Archive, pos: u64, got: &[u8]) {
        let t = a.seek_table();
        let mut at = pos;
        let mut left = got;
        for i in t.frames_for(pos, got.len() as u64) {
            let start = t.stream_offset(i);
            let frame = self.frame(a, i);
            let from = (at - start) as usize;
            let n = (frame.len() - from).min(left.len());
            assert_eq!(&left[..n], &frame[from..from + n], "bytes at stream offset {at} differ from frame {i}");
            left = &left[n..];
            at += n as u64;
        }
        assert!(left.is_empty(), "bytes past the last frame");
    }
}

/// Looks every entry up and reads every file through `read_at` in chunks,
/// checking each returned byte against an independent decode. Returns whether
/// every read succeeded.
pub fn read_everything(a: &Archive, frames: &mut Frames<'_>) -> bool {
    let mut all_ok = true;
    let mut buf = vec![0u8; 64 * 1024];
    // Format 2 reads and checks every block here; a damaged one fails the whole.
    let Ok(entries) = a.entries() else { return false };
    for e in entries {
        let found = a.lookup(&e.path).expect("an indexed path can be looked up");
        assert_eq!(found.as_ref(), Some(e));
        let d = a.data_entry(e).expect("a hard link in a checked index resolves");
        if d.kind != EntryKind::File {
            assert!(a.read_at(e, 0, &mut buf).is_err(), "read of a non-file succeeded");
            continue;
        }
        let mut off = 0u64;
        loop {
            match a.read_at(e, off, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    frames.check(a, d.data_offset + off, &buf[..n]);
                    off += n as u64;
                }
                Err(_) => {
                    all_ok = false;
                    break;
                }
            }
        }
        if off != d.size {
            all_ok = false;
        }
    }
    all_ok
}

/// `data` with the archive id in the index header recomputed over the index
/// body and the seek table entries, so that mutations of the seek table and
/// the header's fields get past the id check to the checks behind it. None
/// when the trailer cannot be located (the reader refuses those anyway).
pub fn with_fixed_id(data: &[u8]) -> Option<Vec<u8>> {
    use thaw::archive::index::{archive_id, HEADER_LEN, TAIL_LEN};
    use thaw::archive::seek_table::{SeekTable, FOOTER_LEN};
    let len = data.len();
    let seek_len = usize::try_from(SeekTable::frame_len_from_footer(data).ok()?).ok()?;
    let idx_end = len.checked_sub(seek_len)?;
    let tail = data.get(idx_end.checked_sub(TAIL_LEN)?..idx_end)?;
    let idx_len = usize::try_from(u64::from_le_bytes(tail[..8].try_into().unwrap())).ok()?;
    let idx_start = idx_end.checked_sub(idx_len)?;
    let idx = data.get(idx_start..idx_end)?;
    let field = |at: usize| idx.get(8 + at..8 + at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    let (body_len, c_len) = (field(40)?, field(48)?);
    let body_c = idx.get(8 + HEADER_LEN..(8 + HEADER_LEN).checked_add(c_len)?)?;
    let body = zstd::bulk::decompress(body_c, body_len.min(64 << 20)).ok()?;
    let entries = data.get(idx_end + 8..len.checked_sub(FOOTER_LEN)?)?;
    let mut out = data.to_vec();
    out[idx_start + 8 + 16..idx_start + 8 + 32].copy_from_slice(&archive_id(&body, entries));
    Some(out)
}
