//! Format 2 (formats/thaw-archive.md §2): open + one file = 3 reads of the
//! source (4 with a tail over 64 KiB), per-entry and per-piece checksums,
//! and hostile indexes (unsorted or duplicate paths, lying counts and
//! lengths, piece lists where none belong, the frame rule broken, a future
//! version) refused with a message naming the cause.

use crate::common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use thaw::archive::index_v2::{self, DirRecord, Header};
use thaw::archive::seek_table::SeekTable;
use thaw::archive::{Archive, Entry, EntryKind, WriterOptions};

fn counted(bytes: &[u8]) -> (Archive, Arc<AtomicUsize>) {
    let reads = Arc::new(AtomicUsize::new(0));
    let src = Counting { inner: MemSource(Arc::new(bytes.to_vec())), reads: reads.clone() };
    (Archive::from_source(Box::new(src)).unwrap(), reads)
}

fn v2(piece: usize, run: usize) -> WriterOptions {
    WriterOptions { level: 1, piece_size: piece, run_size: run, threads: 2, ..Default::default() }
}

/// `n` small files `d{i/1000}/f{i}` (no directory entries), `len` bytes each.
fn many_files(n: usize, len: usize) -> (Vec<Entry>, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut entries = Vec::new();
    let mut files = BTreeMap::new();
    for i in 0..n {
        let path = format!("d{:03}/f{i:06}", i / 1000).into_bytes();
        let mut e = Entry::new(path.clone(), EntryKind::File);
        e.size = len as u64;
        files.insert(path, format!("{i:0len$}").into_bytes());
        entries.push(e);
    }
    (entries, files)
}

/// Reads of the source taken by open, then by one cat (lookup + read).
fn reads_for_open_and_cat(bytes: &[u8], path: &[u8], want: &[u8]) -> (usize, usize) {
    let (a, reads) = counted(bytes);
    let open = reads.load(Ordering::Relaxed);
    let e = a.lookup(path).unwrap().expect("the file is in the archive");
    let mut buf = vec![0u8; e.size as usize];
    assert_eq!(a.read_at(&e, 0, &mut buf).unwrap(), want.len());
    assert_eq!(buf, want);
    (open, reads.load(Ordering::Relaxed))
}

#[test]
fn open_and_cat_of_one_file_take_three_reads() {
    let (entries, files) = many_files(20_000, 40);
    let bytes = write_entries_with(entries, &files, v2(1 << 20, 4 << 20));
    let a = open_mem(&bytes).unwrap();
    assert_eq!(a.version(), 2);
    assert!(a.seek_table().len() >= 4);
    let path = b"d012/f012345";
    assert_eq!(reads_for_open_and_cat(&bytes, path, &files[&path[..]]), (1, 3), "tail, one block, one frame");
    // A path that is not there costs the tail and one block.
    let (a, reads) = counted(&bytes);
    assert!(a.lookup(b"d012/f012345x").unwrap().is_none());
    assert!(a.lookup(b"a").unwrap().is_none(), "before the first block: no read");
    assert_eq!(reads.load(Ordering::Relaxed), 2);
    // `ls` streams the blocks without filling the cache.
    let mut n = 0;
    a.for_each_entry(&mut |i, e| {
        assert_eq!(i, n);
        assert!(e.data_xxh3.is_some());
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!((n, a.blocks_decoded()), (20_000, 1), "the one block of the lookup");
}

#[test]
fn a_seek_table_over_64k_costs_one_more_read() {
    // 4 KiB runs: about 7,500 frames, a 90 KB seek table.
    let (entries, files) = many_files(30_000, 40);
    let bytes = write_entries_with(entries, &files, v2(4096, 4096));
    assert!(open_mem(&bytes).unwrap().seek_table().len() * 12 > 64 << 10);
    let path = b"d029/f029999";
    assert_eq!(reads_for_open_and_cat(&bytes, path, &files[&path[..]]), (2, 4));
    // The prologue lies outside what open reads: `verify` reads and checks it.
    let mut bad = bytes.clone();
    let at = open_mem(&bytes).unwrap().seek_table().compressed_len() as usize + 12;
    bad[at] ^= 1;
    let a = open_mem(&bad).expect("open does not read the prologue of a large index");
    let r = thaw::archive::verify::verify(&a, &|_| {}).unwrap();
    assert!(r.problems.iter().any(|p| p.contains("bad prologue")), "{:?}", r.problems);
}

// ---- taking a format 2 archive apart ----------------------------------------------

/// The data frames and seek table of an archive, to put new indexes in front of.
struct Data {
    frames: Vec<u8>,
    table: SeekTable,
    entries: Vec<Entry>,
}

impl Data {
    fn of(bytes: &[u8]) -> Data {
        let a = open_mem(bytes).unwrap();
        let table = a.seek_table().clone();
        let frames = bytes[..table.compressed_len() as usize].to_vec();
        Data { frames, table, entries: a.entries().unwrap().to_vec() }
    }

    /// An archive whose index holds `blocks`, with consistent checksums and
    /// id after `dir_edit` and `h_edit` (which may lie).
    fn assemble(
        &self,
        blocks: &[Vec<Entry>],
        p: u32,
        dir_edit: impl FnOnce(&mut Vec<DirRecord>),
        h_edit: impl FnOnce(&mut Header),
    ) -> Vec<u8> {
        let raws: Vec<Vec<u8>> = blocks.iter().map(|b| index_v2::encode_block(b)).collect();
        let comps: Vec<Vec<u8>> = raws.iter().map(|r| zstd::bulk::compress(r, 3).unwrap()).collect();
        let mut dir: Vec<DirRecord> = blocks
            .iter()
            .zip(&raws)
            .zip(&comps)
            .map(|((b, r), c)| DirRecord {
                c_len: c.len() as u64,
                r_len: r.len() as u64,
                count: b.len() as u64,
                xxh3: xxhash_rust::xxh3::xxh3_64(r),
                first_path: b[0].path.clone(),
            })
            .collect();
        dir_edit(&mut dir);
        let raw_dir = index_v2::encode_directory(&dir);
        let dir_c = zstd::bulk::compress(&raw_dir, 3).unwrap();
        let mut h = Header {
            id: [0; 16],
            entry_count: dir.iter().map(|r| r.count).sum(),
            stream_len: self.table.stream_len(),
            block_count: dir.len() as u32,
            piece_size: p,
            blocks_len: comps.iter().map(|c| c.len() as u64).sum(),
            dir_clen: dir_c.len() as u32,
            dir_rlen: raw_dir.len() as u32,
            dir_xxh3: xxhash_rust::xxh3::xxh3_64(&raw_dir),
            max_block_raw: raws.iter().map(|r| r.len() as u32).max().unwrap_or(0),
        };
        h_edit(&mut h);
        h.id = index_v2::archive_id(&h, &raw_dir, &self.table.entry_bytes());
        let len = 24 + comps.iter().map(Vec::len).sum::<usize>() + dir_c.len() + 144;
        let mut out = self.frames.clone();
        out.extend_from_slice(&0x184D_2A5Bu32.to_le_bytes());
        out.extend_from_slice(&((len - 8) as u32).to_le_bytes());
        out.extend_from_slice(b"THAWIDX\0");
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        comps.iter().for_each(|c| out.extend_from_slice(c));
        out.extend_from_slice(&dir_c);
        out.extend_from_slice(&h.encode());
        out.extend_from_slice(&(len as u64).to_le_bytes());
        out.extend_from_slice(b"THAWTAIL");
        out.extend_from_slice(&self.table.encode());
        out
    }
}

/// Four 5-byte files p0..p3 in a format 2 archive with 4 KiB pieces.
fn four_files() -> Data {
    let mut entries = Vec::new();
    let mut files = BTreeMap::new();
    for i in 0..4 {
        let path = format!("p{i}").into_bytes();
        let mut e = Entry::new(path.clone(), EntryKind::File);
        e.size = 5;
        files.insert(path, b"evil\n".to_vec());
        entries.push(e);
    }
    Data::of(&write_entries_with(entries, &files, v2(4096, 8192)))
}

fn renamed(e: &Entry, path: &[u8]) -> Entry {
    Entry { path: path.to_vec(), ..e.clone() }
}

/// The message of the first error among open, lookup of `path` and a read of it.
fn lookup_error(bytes: &[u8], path: &[u8]) -> String {
    let a = match open_mem(bytes) {
        Ok(a) => a,
        Err(e) => return thaw::archive::error_chain(&e),
    };
    match a.lookup(path) {
        Ok(Some(e)) => match a.read_at(&e, 0, &mut [0u8; 16]) {
            Ok(_) => panic!("{} read from a hostile archive", String::from_utf8_lossy(path)),
            Err(e) => thaw::archive::error_chain(&e),
        },
        Ok(None) => panic!("{} not found", String::from_utf8_lossy(path)),
        Err(e) => thaw::archive::error_chain(&e),
    }
}

#[test]
fn a_faithful_reassembly_reads() {
    let d = four_files();
    let bytes = d.assemble(std::slice::from_ref(&d.entries), 4096, |_| {}, |_| {});
    let a = open_mem(&bytes).unwrap();
    let e = a.lookup(b"p2").unwrap().unwrap();
    let mut buf = [0u8; 5];
    a.read_at(&e, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"evil\n");
}

#[test]
fn unsorted_duplicate_and_misplaced_paths_are_refused() {
    let d = four_files();
    let e = &d.entries;
    let unsorted = d.assemble(&[vec![e[1].clone(), e[0].clone()]], 4096, |_| {}, |_| {});
    assert!(lookup_error(&unsorted, b"p1").contains("not sorted"), "{}", lookup_error(&unsorted, b"p1"));
    let dup = d.assemble(&[vec![e[0].clone(), renamed(&e[1], b"p0")]], 4096, |_| {}, |_| {});
    assert!(lookup_error(&dup, b"p0").contains("not sorted, unique"));
    // The last path of a block at or past the next block's key.
    let overlap = d.assemble(&[vec![e[0].clone(), e[1].clone()], vec![renamed(&e[2], b"p1"), e[3].clone()]], 4096, |_| {}, |_| {});
    assert!(lookup_error(&overlap, b"p0").contains("next block's first path"));
    // A key that is not the block's first path.
    let key = d.assemble(std::slice::from_ref(e), 4096, |dir| dir[0].first_path = b"p".to_vec(), |_| {});
    assert!(lookup_error(&key, b"p0").contains("matching the directory"));
    // Directory keys out of order.
    let keys = d.assemble(&[vec![e[2].clone()], vec![e[0].clone()]], 4096, |_| {}, |_| {});
    assert!(lookup_error(&keys, b"p0").contains("strictly increasing"));
}

#[test]
fn lying_counts_and_lengths_are_refused() {
    let d = four_files();
    let b = [d.entries.clone()];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (d.assemble(&b, 4096, |dir| dir[0].count += 1, |_| {}), "runs past the end"),
        (d.assemble(&b, 4096, |dir| dir[0].count -= 1, |_| {}), "trailing bytes"),
        (d.assemble(&b, 4096, |dir| dir[0].r_len += 1, |h| h.max_block_raw += 1), "inflates to"),
        (d.assemble(&b, 4096, |dir| dir[0].r_len += 1, |_| {}), "absurd sizes"),
        (d.assemble(&b, 4096, |dir| dir[0].c_len += 1, |_| {}), "add up to"),
        (d.assemble(&b, 4096, |dir| dir[0].xxh3 ^= 1, |_| {}), "checksum mismatch"),
        (d.assemble(&b, 4096, |_| {}, |h| h.entry_count += 1), "add up to"),
        (d.assemble(&b, 4096, |_| {}, |h| h.block_count += 1), "runs past the end"),
        (d.assemble(&b, 4096, |_| {}, |h| h.stream_len += 512), "tar stream length"),
        (d.assemble(&b, 4096, |_| {}, |h| h.dir_rlen = 1 << 30), "absurd"),
        (d.assemble(&b, 4096, |_| {}, |h| h.max_block_raw = 10), "absurd sizes"),
        (d.assemble(&b, 4097, |_| {}, |_| {}), "piece size"),
    ];
    for (i, (bytes, want)) in cases.iter().enumerate() {
        let msg = lookup_error(bytes, b"p0");
        assert!(msg.contains(want), "case {i}: {msg:?} lacks {want:?}");
    }
}

#[test]
fn a_piece_list_on_a_small_file_and_a_broken_frame_rule_are_refused() {
    let d = four_files();
    let mut e = d.entries.clone();
    e[1].piece_xxh3 = vec![1];
    // The 8 extra bytes shift the next record: the block fails to parse.
    lookup_error(&d.assemble(&[e], 4096, |_| {}, |_| {}), b"p0");
    // A 20,000-byte file cut into 4 KiB frames, under an index that says
    // pieces are 64 KiB: it is one chunk, and it spans five frames.
    let data_big = data(3, 20_000);
    let mut big = Entry::new(b"big".to_vec(), EntryKind::File);
    big.size = 20_000;
    let files = BTreeMap::from([(b"big".to_vec(), data_big.clone())]);
    let d = Data::of(&write_entries_with(vec![big], &files, v2(4096, 4096)));
    let mut e = d.entries.clone();
    e[0].piece_xxh3.clear();
    let bytes = d.assemble(&[e], 64 << 10, |_| {}, |_| {});
    let msg = lookup_error(&bytes, b"big");
    assert!(msg.contains("breaks the format's frame rule"), "{msg}");
    let a = open_mem(&bytes).unwrap();
    let r = thaw::archive::verify::verify(&a, &|_| {}).unwrap();
    assert!(r.problems.iter().any(|p| p.contains("frame rule")), "{:?}", r.problems);
}

#[test]
fn a_wrong_file_or_piece_checksum_fails_only_its_reads() {
    let body = data(5, 10_000);
    let mut big = Entry::new(b"big".to_vec(), EntryKind::File);
    big.size = 10_000;
    let mut small = Entry::new(b"small".to_vec(), EntryKind::File);
    small.size = 100;
    let files = BTreeMap::from([(b"big".to_vec(), body.clone()), (b"small".to_vec(), body[..100].to_vec())]);
    let d = Data::of(&write_entries_with(vec![big, small], &files, v2(4096, 8192)));
    let mut e = d.entries.clone();
    assert_eq!(e[0].piece_xxh3.len(), 3);
    e[0].piece_xxh3[1] ^= 1;
    e[1].data_xxh3 = e[1].data_xxh3.map(|x| x ^ 1);
    let a = open_mem(&d.assemble(&[e], 4096, |_| {}, |_| {})).unwrap();
    let big = a.lookup(b"big").unwrap().unwrap();
    let mut buf = vec![0u8; 4096];
    a.read_at(&big, 0, &mut buf).unwrap();
    a.read_at(&big, 8192, &mut buf).unwrap();
    assert!(buf[..10_000 - 8192] == body[8192..]);
    let err = a.read_at(&big, 5000, &mut buf[..10]).unwrap_err().to_string();
    assert!(err.contains("piece 1 checksum mismatch"), "{err}");
    let err = a.read_at(&a.lookup(b"small").unwrap().unwrap(), 0, &mut buf).unwrap_err().to_string();
    assert!(err.contains("data checksum mismatch"), "{err}");
}

#[test]
fn whole_index_checks_run_on_full_passes() {
    let d = four_files();
    let e = &d.entries;
    // A hard link to a file whose member comes later in the stream.
    let mut link = Entry::new(b"p0".to_vec(), EntryKind::Hardlink);
    link.link = b"p1".to_vec();
    link.member_offset = e[0].member_offset;
    let bytes = d.assemble(&[vec![link, e[1].clone()]], 4096, |_| {}, |_| {});
    let a = open_mem(&bytes).unwrap();
    assert!(a.lookup(b"p0").unwrap().is_some(), "a lookup only checks the block");
    let err = a.entries().unwrap_err().to_string();
    assert!(err.contains("not an earlier entry"), "{err}");
    // A file below a symlink: extract refuses before writing anything.
    let mut s = Entry::new(b"p0".to_vec(), EntryKind::Symlink);
    s.link = b"/tmp".to_vec();
    s.member_offset = e[0].member_offset;
    let bytes = d.assemble(&[vec![s, renamed(&e[1], b"p0/evil")]], 4096, |_| {}, |_| {});
    let t = tmp("v2-below-symlink");
    let path = t.path().join("a.tar.zst");
    fs::write(&path, &bytes).unwrap();
    let r = thaw([OsStr::new("extract"), path.as_os_str(), t.path().join("out").as_os_str()]);
    assert!(r.stderr.contains("is not a directory"), "{}", r.stderr);
    assert!(fs::symlink_metadata(t.path().join("out/p0")).is_err(), "nothing was laid out");
}

#[test]
fn a_future_version_gets_the_exact_message() {
    let d = four_files();
    let mut bytes = d.assemble(std::slice::from_ref(&d.entries), 4096, |_| {}, |_| {});
    let h = bytes.len() - d.table.encode().len() - 16 - 128;
    bytes[h + 8..h + 12].copy_from_slice(&3u32.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&bytes[h..h + 120]);
    bytes[h + 120..h + 128].copy_from_slice(&sum.to_le_bytes());
    let err = match open_mem(&bytes) {
        Ok(_) => panic!("a version 3 archive opened"),
        Err(e) => e.to_string(),
    };
    assert_eq!(err, "unsupported: archive format version 3 (this thaw reads 1 and 2); a newer thaw is needed");
    // An unknown feature flag likewise.
    bytes[h + 8..h + 12].copy_from_slice(&2u32.to_le_bytes());
    bytes[h + 12] = 1;
    let sum = xxhash_rust::xxh3::xxh3_64(&bytes[h..h + 120]);
    bytes[h + 120..h + 128].copy_from_slice(&sum.to_le_bytes());
    assert!(open_mem(&bytes).err().unwrap().to_string().contains("feature flags 0x1"));
    // What a format 1 reader sees: the prologue says version 2.
    let p = d.frames.len();
    assert_eq!(&bytes[p + 8..p + 16], b"THAWIDX\0");
    let e = thaw::archive::index::IndexHeader::decode(&bytes[p + 8..p + 8 + 64], 0).unwrap_err().to_string();
    assert!(e.contains("version 2"), "{e}");
}

/// Every bit of the index and seek table flipped, one byte at a time: the
/// archive is refused, or reads exactly as before; never other bytes.
#[test]
fn any_flipped_index_byte_is_caught_or_harmless() {
    let files: Vec<MemFile> =
        (0..12).map(|i| MemFile { path: format!("f{i:02}").into_bytes(), data: data(i, 300 + 2000 * i as usize) }).collect();
    let mut entries = Vec::new();
    let mut map = BTreeMap::new();
    for f in &files {
        let mut e = Entry::new(f.path.clone(), EntryKind::File);
        e.size = f.data.len() as u64;
        entries.push(e);
        map.insert(f.path.clone(), f.data.clone());
    }
    let good = write_entries_with(entries, &map, WriterOptions { block_target: 64, ..v2(4096, 8192) });
    let want = open_mem(&good).unwrap().entries().unwrap().to_vec();
    let start = open_mem(&good).unwrap().seek_table().compressed_len() as usize;
    for at in start..good.len() {
        let mut bytes = good.clone();
        bytes[at] ^= 1 << (at % 8);
        let Ok(a) = open_mem(&bytes) else { continue };
        for f in &files {
            if let Ok(Some(e)) = a.lookup(&f.path) {
                let mut buf = vec![0u8; f.data.len()];
                if a.read_at(&e, 0, &mut buf).is_ok() {
                    assert!(buf == f.data, "byte {at}: {} reads other bytes", String::from_utf8_lossy(&f.path));
                }
            }
        }
        if let Ok(got) = a.entries() {
            assert_eq!(got, &want[..], "byte {at}");
        }
    }
}

#[test]
fn convert_of_a_format_1_archive_gives_the_same_tree_in_format_2() {
    let t = tmp("v1-to-v2");
    let old = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/small.tar.zst");
    let new = t.path().join("new.tar.zst");
    thaw([OsStr::new("convert"), old.as_os_str(), OsStr::new("-o"), new.as_os_str()]).ok();
    assert_eq!(Archive::open(&old).unwrap().version(), 1);
    assert_eq!(Archive::open(&new).unwrap().version(), 2);
    let info = thaw([OsStr::new("info"), new.as_os_str()]).ok().stdout;
    assert!(String::from_utf8_lossy(&info).contains("format         2"));
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    extract(&old, &a).ok();
    extract(&new, &b).ok();
    assert_same_tree(&a, &b, Compare::ALL);
    thaw([OsStr::new("verify"), new.as_os_str()]).ok();
}
