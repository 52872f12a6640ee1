//! Format 2's trailer: the end of an index frame (header, directory,
//! prologue), and small whole format 2 archives. The first byte picks how
//! the rest is read:
//!
//! - 0: the end of a file as the reader sees it: `[... directory (zstd)]
//!   [header 128][tail 16]`; `is_header`, `decode_header`, `inflate` and
//!   `decode_directory` of the directory before the header, `check_prologue`
//!   where the header says the frame starts.
//! - 1: `[header bytes 0..120][raw directory]`, the header's checksum
//!   computed here so mutations reach the field checks, and the directory
//!   uncompressed so they reach the record checks; also `check_prologue` of
//!   the directory bytes.
//! - 2: a whole archive, opened from memory (`thaw::fuzzing::open_mem`) as
//!   given and then with the header checksum, directory checksum and archive
//!   id recomputed; every path looked up, every file read and checked
//!   against an independent decode.
//!
//! Oracle: no panic, no OOM; an accepted header re-encodes to its bytes, an
//! accepted directory re-encodes to its raw bytes and agrees with the header
//! (block count, Σ of compressed lengths, entry count, keys strictly
//! increasing), an accepted prologue is the canonical one.
//! Seeds (fuzz/seeds.sh): fixtures/small-v2.tar.zst and converted archives.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use thaw::archive::index::{INDEX_FRAME_MAGIC, INDEX_MAGIC, TAIL_LEN};
use thaw::archive::index_v2::{self, Header, HEADER_LEN, PROLOGUE_LEN};
use thaw::archive::seek_table::SeekTable;
use xxhash_rust::xxh3::xxh3_64;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => file_tail(rest),
        1 => header_and_raw_directory(rest),
        _ => {
            if !open(rest) {
                if let Some(fixed) = fix_up(rest) {
                    open(&fixed);
                }
            }
        }
    }
});

fn file_tail(d: &[u8]) {
    let Some(hdr_at) = d.len().checked_sub(HEADER_LEN + TAIL_LEN) else { return };
    let Some(h) = header(&d[hdr_at..hdr_at + HEADER_LEN]) else { return };
    if let Some(dir_at) = hdr_at.checked_sub(h.dir_clen as usize) {
        if let Ok(raw) = index_v2::inflate(&d[dir_at..hdr_at], u64::from(h.dir_rlen), "index directory") {
            assert_eq!(raw.len() as u64, u64::from(h.dir_rlen), "inflate returned another length");
            directory(&raw, &h);
        }
    }
    if let Some(start) = usize::try_from(h.index_len()).ok().and_then(|n| d.len().checked_sub(n)) {
        prologue(&d[start..], h.index_len());
    }
}

fn header_and_raw_directory(d: &[u8]) {
    if d.len() < 120 {
        return;
    }
    let mut hb = [0u8; HEADER_LEN];
    hb[..120].copy_from_slice(&d[..120]);
    let Some(h) = header(&reseal(hb)) else { return };
    directory(&d[120..], &h);
    prologue(&d[120..], h.index_len());
}

/// Decodes a header; an accepted one is a header and re-encodes to its bytes.
fn header(hb: &[u8]) -> Option<Header> {
    let is = index_v2::is_header(hb);
    let h = index_v2::decode_header(hb).ok()?;
    assert!(is, "decode_header accepted bytes is_header refuses");
    assert_eq!(h.encode()[..], hb[..], "an accepted header re-encodes to other bytes");
    let p = u64::from(h.piece_size);
    assert!(p % 4096 == 0 && (index_v2::MIN_PIECE..=index_v2::MAX_PIECE).contains(&p));
    assert_eq!(h.block_count == 0, h.entry_count == 0);
    assert!(h.index_len() >= (PROLOGUE_LEN + HEADER_LEN + TAIL_LEN) as u64);
    Some(h)
}

/// Decodes a raw directory; an accepted one re-encodes to it and agrees with the header.
fn directory(raw: &[u8], h: &Header) {
    let Ok(dir) = index_v2::decode_directory(raw, h) else { return };
    assert_eq!(index_v2::encode_directory(&dir), raw, "an accepted directory re-encodes to other bytes");
    assert_eq!(dir.len() as u64, u64::from(h.block_count));
    assert_eq!(dir.iter().map(|r| r.c_len).sum::<u64>(), h.blocks_len, "compressed lengths do not add up");
    assert_eq!(dir.iter().map(|r| r.count).sum::<u64>(), h.entry_count, "entry counts do not add up");
    for r in &dir {
        assert!(r.count >= 1 && r.c_len >= 1 && r.r_len <= u64::from(h.max_block_raw));
        assert!(!r.first_path.is_empty());
    }
    assert!(dir.windows(2).all(|w| w[0].first_path < w[1].first_path), "keys not strictly increasing");
}

/// An accepted prologue is the canonical one for `index_len`.
fn prologue(b: &[u8], index_len: u64) {
    if index_v2::check_prologue(b, index_len).is_err() {
        return;
    }
    let mut want = Vec::with_capacity(PROLOGUE_LEN);
    want.extend_from_slice(&INDEX_FRAME_MAGIC.to_le_bytes());
    want.extend_from_slice(&((index_len - 8) as u32).to_le_bytes());
    want.extend_from_slice(INDEX_MAGIC);
    want.extend_from_slice(&index_v2::VERSION.to_le_bytes());
    want.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(&b[..PROLOGUE_LEN], &want[..], "check_prologue accepted a non-canonical prologue");
}

/// Opens, looks up and reads; false when the archive does not open.
fn open(data: &[u8]) -> bool {
    let Ok(a) = thaw::fuzzing::open_mem(data) else { return false };
    assert!(a.trailer_len() <= data.len() as u64);
    let _ = a.check_prologue();
    let mut frames = common::Frames::new(data);
    common::read_everything(&a, &mut frames);
    true
}

/// `data` with the format 2 header's checksum, directory XXH3 and archive id
/// recomputed from the (mutated) bytes, so mutations of header fields, the
/// directory and the seek table reach the checks behind those sums. None when
/// the trailer cannot be located.
fn fix_up(data: &[u8]) -> Option<Vec<u8>> {
    let len = data.len();
    let seek_len = usize::try_from(SeekTable::frame_len_from_footer(data).ok()?).ok()?;
    let table = SeekTable::decode(data.get(len.checked_sub(seek_len)?..)?).ok()?;
    let hdr_at = len.checked_sub(seek_len + TAIL_LEN + HEADER_LEN)?;
    let mut hb = [0u8; HEADER_LEN];
    hb[..120].copy_from_slice(&data[hdr_at..hdr_at + 120]);
    let mut h = index_v2::decode_header(&reseal(hb)).ok()?;
    let dir_c = data.get(hdr_at.checked_sub(h.dir_clen as usize)?..hdr_at)?;
    let raw_dir = zstd::bulk::decompress(dir_c, h.dir_rlen as usize).ok()?;
    h.dir_xxh3 = xxh3_64(&raw_dir);
    h.id = index_v2::archive_id(&h, &raw_dir, &table.entry_bytes());
    let mut out = data.to_vec();
    out[hdr_at..hdr_at + HEADER_LEN].copy_from_slice(&h.encode());
    Some(out)
}

fn reseal(mut hb: [u8; HEADER_LEN]) -> [u8; HEADER_LEN] {
    let sum = xxh3_64(&hb[..120]);
    hb[120..].copy_from_slice(&sum.to_le_bytes());
    hb
}
