//! One format 2 index block with the directory record and context it is
//! checked against. Input (little-endian):
//!
//! `[u8 flags][u8 piece shift][u64 stream_len][u16 count][u16 L][L bytes: first path]`
//! then, when flags bit 1 is set, `[u16 K][K bytes: next block's first path]`,
//! then the block: raw records, or (flags bit 0) a zstd frame whose record
//! carries the frame's own raw length and XXH3 (bit 2 spoils the XXH3).
//!
//! Calls `decode_block_raw`, and `decode_block` (inflate + checksum) for the
//! compressed form. Oracle: no panic, no huge allocation from a lying count;
//! `decode_block` agrees with `decode_block_raw` on the inflated bytes and
//! refuses a wrong checksum; an accepted block has `count` entries, re-encodes
//! to the raw bytes (`encode_block` of decoded entries is canonical), starts
//! with the directory's key, has strictly increasing paths below the next key,
//! file data inside the stream with the piece checksums `P` implies.
//! Seeds (fuzz/seeds.sh): the blocks of fixtures/small-v2.tar.zst and of
//! converted archives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thaw::archive::index_v2::{self, BlockContext, DirRecord, MAX_RAW};
use thaw::archive::{Entry, EntryKind};
use xxhash_rust::xxh3::xxh3_64;

struct Input<'a> {
    flags: u8,
    rec: DirRecord,
    cx: BlockContext<'a>,
    block: &'a [u8],
}

fn parse(data: &[u8]) -> Option<Input<'_>> {
    let (&flags, d) = data.split_first()?;
    let (&shift, d) = d.split_first()?;
    let stream_len = u64::from_le_bytes(d.get(..8)?.try_into().unwrap());
    // A directory record has at least one entry (decode_directory's check).
    let count = u64::from(u16::from_le_bytes(d.get(8..10)?.try_into().unwrap())).max(1);
    let (first, mut d) = bytes(&d[10..])?;
    let mut next_key = None;
    if flags & 2 != 0 {
        let (k, rest) = bytes(d)?;
        next_key = Some(k);
        d = rest;
    }
    let rec = DirRecord { c_len: d.len() as u64, r_len: d.len() as u64, count, xxh3: xxh3_64(d), first_path: first.to_vec() };
    let cx = BlockContext { piece_size: 4096 << (shift % 14), stream_len, next_key };
    Some(Input { flags, rec, cx, block: d })
}

fn bytes(d: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = usize::from(u16::from_le_bytes(d.get(..2)?.try_into().unwrap()));
    let d = &d[2..];
    Some((d.get(..n)?, &d[n..]))
}

fuzz_target!(|data: &[u8]| {
    let Some(mut inp) = parse(data) else { return };
    if inp.flags & 1 == 0 {
        check(&inp.rec, inp.block, &inp.cx);
        return;
    }
    // Compressed: the record takes the frame's length, raw length and XXH3.
    let Ok(raw) = zstd::bulk::decompress(inp.block, MAX_RAW as usize) else {
        assert!(index_v2::decode_block(&inp.rec, inp.block, &inp.cx).is_err(), "decode_block took a frame zstd refuses");
        return;
    };
    inp.rec.r_len = raw.len() as u64;
    inp.rec.xxh3 = xxh3_64(&raw);
    if inp.flags & 4 != 0 {
        inp.rec.xxh3 ^= 1;
        assert!(index_v2::decode_block(&inp.rec, inp.block, &inp.cx).is_err(), "decode_block took a block with the wrong XXH3");
        return;
    }
    let got = index_v2::decode_block(&inp.rec, inp.block, &inp.cx);
    let raw_ok = index_v2::decode_block_raw(&inp.rec, &raw, &inp.cx).is_ok();
    // decode_block may refuse more (several frames, an absurd ratio), never less.
    assert!(got.is_err() || raw_ok, "decode_block accepted what decode_block_raw refuses");
    if let Ok(v) = got {
        accepted(&v, &inp.rec, &raw, &inp.cx);
    }
});

fn check(rec: &DirRecord, raw: &[u8], cx: &BlockContext<'_>) {
    if let Ok(v) = index_v2::decode_block_raw(rec, raw, cx) {
        accepted(&v, rec, raw, cx);
    }
}

fn accepted(v: &[Entry], rec: &DirRecord, raw: &[u8], cx: &BlockContext<'_>) {
    assert_eq!(v.len() as u64, rec.count, "entry count differs from the record's");
    assert_eq!(index_v2::encode_block(v), raw, "an accepted block re-encodes to other bytes");
    assert_eq!(v[0].path, rec.first_path, "first path is not the directory's key");
    assert!(v.windows(2).all(|w| w[0].path < w[1].path), "paths not strictly increasing");
    if let Some(next) = cx.next_key {
        assert!(v.last().unwrap().path.as_slice() < next, "a path not below the next block's key");
    }
    for e in v {
        assert!(!e.path.is_empty() && !e.path.starts_with(b"/") && !e.path.contains(&0), "bad path accepted");
        assert!(e.mode <= 0o7777 && e.mtime_nsec < 1_000_000_000);
        match e.kind {
            EntryKind::File => {
                assert!(e.data_offset >= e.member_offset.saturating_add(512));
                assert!(e.data_offset.checked_add(e.size).is_some_and(|end| end <= cx.stream_len), "file data outside the stream");
                assert_eq!(e.piece_xxh3.len() as u64, index_v2::piece_count(e.size, cx.piece_size));
                assert!(e.data_xxh3.is_some());
            }
            EntryKind::Symlink => assert!(!e.link.is_empty() && !e.link.contains(&0)),
            EntryKind::Hardlink => assert!(!e.link.is_empty() && !e.link.starts_with(b"/")),
            _ => assert!(e.size == 0 && e.piece_xxh3.is_empty()),
        }
        assert!(e.xattrs.windows(2).all(|w| w[0].0 < w[1].0), "xattrs not strictly increasing");
    }
}
