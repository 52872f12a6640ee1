//! The archive is untrusted. Truncation, flipped bits (data frames, seek
//! table, index), an index pointing outside the file, absurd sizes, and
//! hostile entries (`..`, absolute paths, symlink-then-file, hard links out)
//! each fail with a message naming the entry or frame and the cause, and
//! nothing is ever written outside the target directory.

use crate::common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use thaw::archive::index::{self, IndexHeader};
use thaw::archive::seek_table::{FrameEntry, SeekTable};
use thaw::archive::{Entry, EntryKind, Error};

// ---- taking archives apart and putting them back together -------------------------

/// An archive split into its parts, so tests can change any of them and
/// reassemble a file whose checksums and id are consistent again.
#[derive(Clone)]
struct Parts {
    frames: Vec<Vec<u8>>,
    table: Vec<FrameEntry>,
    entries: Vec<Entry>,
    /// Replaces the encoded entries when set (hand-made index bodies).
    raw_body: Option<Vec<u8>>,
    stream_len: u64,
}

impl Parts {
    fn of(bytes: &[u8]) -> Parts {
        let a = open_mem(bytes).unwrap();
        let t = a.seek_table();
        let frames = (0..t.len())
            .map(|i| {
                let off = t.compressed_offset(i) as usize;
                bytes[off..off + t.frame(i).compressed as usize].to_vec()
            })
            .collect();
        Parts { frames, table: t.frames().to_vec(), entries: a.entries().unwrap().to_vec(), raw_body: None, stream_len: t.stream_len() }
    }

    /// The archive bytes, with `edit` applied to the index header before encoding.
    fn assemble_with(&self, edit: impl FnOnce(&mut IndexHeader)) -> Vec<u8> {
        let body = self.raw_body.clone().unwrap_or_else(|| index::encode_entries(&self.entries));
        let table = SeekTable::new(self.table.clone());
        let compressed = zstd::bulk::compress(&body, 3).unwrap();
        let mut header = IndexHeader {
            version: index::FORMAT_VERSION,
            id: index::archive_id(&body, &table.entry_bytes()),
            entry_count: self.entries.len() as u64,
            body_len: body.len() as u64,
            compressed_len: compressed.len() as u64,
            stream_len: self.stream_len,
            frame_count: self.table.len() as u64,
        };
        edit(&mut header);
        let frame_len = 8 + index::HEADER_LEN + compressed.len() + index::TAIL_LEN;
        let mut out: Vec<u8> = self.frames.concat();
        out.extend_from_slice(&index::INDEX_FRAME_MAGIC.to_le_bytes());
        out.extend_from_slice(&((frame_len - 8) as u32).to_le_bytes());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&compressed);
        out.extend_from_slice(&(frame_len as u64).to_le_bytes());
        out.extend_from_slice(index::TAIL_MAGIC);
        out.extend_from_slice(&table.encode());
        out
    }

    fn assemble(&self) -> Vec<u8> {
        self.assemble_with(|_| {})
    }
}

fn entry(path: &[u8], kind: EntryKind) -> Entry {
    Entry::new(path.to_vec(), kind)
}

fn symlink(path: &[u8], target: &[u8]) -> Entry {
    let mut e = entry(path, EntryKind::Symlink);
    e.link = target.to_vec();
    e
}

fn hardlink(path: &[u8], target: &[u8]) -> Entry {
    let mut e = entry(path, EntryKind::Hardlink);
    e.link = target.to_vec();
    e
}

/// An archive whose index lists `entries`, which the writer would refuse:
/// a harmless archive is written, then its index replaced. File entries
/// without a data offset point at real 5-byte file data ("evil\n").
fn crafted(entries: Vec<Entry>) -> Vec<u8> {
    let n = entries.len();
    let mut files = BTreeMap::new();
    let safe: Vec<Entry> = (0..n)
        .map(|i| {
            let path = format!("p{i}").into_bytes();
            files.insert(path.clone(), b"evil\n".to_vec());
            let mut e = entry(&path, EntryKind::File);
            e.size = 5;
            e
        })
        .collect();
    let bytes = write_entries(safe, &files, 4096);
    let mut parts = Parts::of(&bytes);
    parts.entries = entries
        .into_iter()
        .zip(parts.entries.iter())
        .map(|(mut e, safe)| {
            if e.kind == EntryKind::File && e.size == 0 && e.data_offset == 0 {
                e.size = 5;
                e.data_offset = safe.data_offset;
            }
            e
        })
        .collect();
    parts.assemble()
}

/// A plain, valid archive of a few files spread over several 4 KiB frames.
fn sample() -> (Vec<u8>, Vec<MemFile>) {
    let files: Vec<MemFile> = [("small", 100), ("medium", 6000), ("big", 20_000), ("tail", 3000), ("zero", 0)]
        .iter()
        .enumerate()
        .map(|(i, &(p, n))| MemFile { path: p.as_bytes().to_vec(), data: data(50 + i as u64, n) })
        .collect();
    (archive_of(&files, 4096), files)
}

fn err_text(r: Result<thaw::archive::Archive, Error>) -> String {
    match r {
        Ok(_) => panic!("a damaged archive opened"),
        Err(e) => thaw::archive::error_chain(&e),
    }
}

// ---- hostile entries, through `thaw extract` ------------------------------------------

/// Writes `bytes` as an archive next to an empty sentinel dir, runs `thaw
/// extract` (and `thaw ls`), and checks both fail naming the cause and that
/// nothing was created anywhere but the target directory.
fn extract_must_fail(name: &str, bytes: &[u8], needles: &[&str]) {
    let t = tmp(name);
    let sentinel = t.path().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    let a = t.path().join("hostile.tar.zst");
    fs::write(&a, bytes).unwrap();
    let out = t.path().join("out");
    let r = extract(&a, &out).fails_with(needles);
    eprintln!("DBG {name}: {}", r.stderr.trim());
    thaw([OsStr::new("ls"), a.as_os_str()]).fails_with(needles);
    assert_eq!(listing(&sentinel), Vec::<std::ffi::OsString>::new(), "{name}: wrote into the sentinel dir");
    let mut around = listing(t.path());
    around.retain(|n| n != "out");
    assert_eq!(around, vec!["hostile.tar.zst", "sentinel"], "{name}: wrote beside the target dir");
    if out.exists() {
        let mut inside = Vec::new();
        walk(&out, &mut Vec::new(), &mut inside);
        assert!(inside.iter().all(|p| !p.ends_with(b"evil")), "{name}: extracted {inside:?}");
    }
}

#[test]
fn hostile_entries_are_refused_by_name_and_cause() {
    let t = tmp("sentinel-path");
    // The sentinel path an absolute symlink points at (the name is what matters).
    let outside = t.path().join("sentinel");
    let outside = outside.as_os_str().as_encoded_bytes();
    let mut abs = outside.to_vec();
    abs.extend_from_slice(b"/evil");
    let file = |p: &[u8]| entry(p, EntryKind::File);
    let cases: Vec<(&str, Vec<Entry>, Vec<String>)> = vec![
        ("dotdot", vec![file(b"../evil")], vec!["\"../evil\"".into(), "`..` path component".into()]),
        ("nested-dotdot", vec![entry(b"a", EntryKind::Dir), file(b"a/../../evil")], vec!["a/../../evil".into(), "`..`".into()]),
        ("absolute", vec![file(&abs)], vec![String::from_utf8_lossy(&abs).into(), "absolute path".into()]),
        (
            "symlink-then-file",
            vec![symlink(b"a", outside), file(b"a/evil")],
            vec!["\"a/evil\"".into(), "parent \"a\" is not a directory".into()],
        ),
        (
            "relative-symlink-then-dir",
            vec![symlink(b"up", b"../.."), entry(b"up/x", EntryKind::Dir), file(b"up/x/evil")],
            vec!["up/x".into(), "parent \"up\" is not a directory".into()],
        ),
        (
            "symlink-then-hardlink",
            vec![file(b"f"), symlink(b"a", outside), hardlink(b"a/evil", b"f")],
            vec!["a/evil".into(), "not a directory".into()],
        ),
        ("hardlink-dotdot", vec![hardlink(b"h", b"../../etc/passwd")], vec!["\"h\"".into(), "hard link target: `..`".into()]),
        ("hardlink-absolute", vec![hardlink(b"h", b"/etc/passwd")], vec!["\"h\"".into(), "hard link target: absolute path".into()]),
        ("hardlink-to-symlink", vec![symlink(b"s", outside), hardlink(b"h", b"s")], vec!["\"h\"".into(), "hard link to a Symlink".into()]),
        ("hardlink-forward", vec![hardlink(b"h", b"f"), file(b"f")], vec!["\"h\"".into(), "not an earlier entry".into()]),
        ("file-below-file", vec![file(b"f"), file(b"f/evil")], vec!["f/evil".into(), "parent \"f\" is not a directory".into()]),
        ("duplicate", vec![file(b"f"), file(b"f")], vec!["\"f\"".into(), "appears twice".into()]),
        ("nul", vec![file(b"a\0evil")], vec!["NUL".into()]),
        ("empty-component", vec![file(b"a//evil")], vec!["a//evil".into(), "empty path component".into()]),
        ("dot-component", vec![file(b"./evil")], vec!["./evil".into(), "`.` path component".into()]),
        ("empty-path", vec![file(b"")], vec!["empty path".into()]),
        ("empty-symlink", vec![symlink(b"s", b"")], vec!["\"s\"".into(), "symlink target".into()]),
        (
            "dir-with-size",
            vec![{
                let mut d = entry(b"d", EntryKind::Dir);
                d.size = 5;
                d
            }],
            vec!["\"d\"".into(), "data size".into()],
        ),
    ];
    for (name, entries, needles) in cases {
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        extract_must_fail(name, &crafted(entries), &needles);
    }
}

#[test]
fn file_data_outside_the_tar_stream_is_refused() {
    let (bytes, _) = sample();
    let mut parts = Parts::of(&bytes);
    let len = parts.stream_len;
    parts.entries[2].data_offset = len - 10;
    let msg = err_text(open_mem(&parts.assemble()));
    assert!(msg.contains("\"big\"") && msg.contains("outside the"), "{msg}");
    let mut parts = Parts::of(&bytes);
    parts.entries[0].size = u64::MAX - 3;
    let a = parts.assemble();
    let msg = err_text(open_mem(&a));
    assert!(msg.contains("\"small\"") && msg.contains("outside the"), "{msg}");
    extract_must_fail("absurd-size", &a, &["small", "outside the"]);
}

// ---- a target directory that already holds a trap ------------------------------------------

#[test]
fn extraction_never_follows_a_symlink_already_in_the_target() {
    let t = tmp("planted");
    let sentinel = t.path().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    fs::write(sentinel.join("keep"), b"original").unwrap();
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&sentinel, out.join("a")).unwrap();
    std::os::unix::fs::symlink(sentinel.join("keep"), out.join("f")).unwrap();
    let mut files = BTreeMap::new();
    files.insert(b"a/evil".to_vec(), b"evil\n".to_vec());
    files.insert(b"f".to_vec(), b"replaced\n".to_vec());
    let mk = |p: &[u8], n: u64| {
        let mut e = entry(p, EntryKind::File);
        e.size = n;
        e
    };
    // No `a` entry: the index is valid, the target dir is the trap.
    let a1 = t.path().join("1.tar.zst");
    fs::write(&a1, write_entries(vec![mk(b"a/evil", 5)], &files, 4096)).unwrap();
    extract(&a1, &out).fails_with(&["a/evil", "parent \"a\" is a symlink"]);
    // With an `a` directory entry.
    let a2 = t.path().join("2.tar.zst");
    fs::write(&a2, write_entries(vec![entry(b"a", EntryKind::Dir), mk(b"a/evil", 5)], &files, 4096)).unwrap();
    extract(&a2, &out).fails_with(&["a", "exists and is not a directory"]);
    // A file over a planted symlink replaces the link, not its target; a hard link to it stays inside.
    let a3 = t.path().join("3.tar.zst");
    fs::write(&a3, write_entries(vec![mk(b"f", 9), hardlink(b"h", b"f")], &files, 4096)).unwrap();
    extract(&a3, &out).ok();
    assert_eq!(fs::read(out.join("f")).unwrap(), b"replaced\n");
    assert!(!fs::symlink_metadata(out.join("f")).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(out.join("h")).unwrap(), b"replaced\n");
    assert_eq!(fs::read(sentinel.join("keep")).unwrap(), b"original");
    assert_eq!(listing(&sentinel), vec!["keep"]);
}

#[test]
fn a_second_archive_cannot_write_through_a_symlink_the_first_made() {
    let t = tmp("two-step");
    let sentinel = t.path().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    let out = t.path().join("out");
    // First archive: a symlink to outside (legal on its own).
    let a1 = t.path().join("1.tar.zst");
    let target = sentinel.as_os_str().as_encoded_bytes().to_vec();
    fs::write(&a1, write_entries(vec![symlink(b"a", &target)], &BTreeMap::new(), 4096)).unwrap();
    extract(&a1, &out).ok();
    assert!(fs::symlink_metadata(out.join("a")).unwrap().file_type().is_symlink());
    // Second archive: a file below that name.
    let mut files = BTreeMap::new();
    files.insert(b"a/evil".to_vec(), b"evil\n".to_vec());
    let mut e = entry(b"a/evil", EntryKind::File);
    e.size = 5;
    let a2 = t.path().join("2.tar.zst");
    fs::write(&a2, write_entries(vec![e], &files, 4096)).unwrap();
    extract(&a2, &out).fails_with(&["a/evil", "parent \"a\" is a symlink"]);
    assert_eq!(listing(&sentinel), Vec::<std::ffi::OsString>::new());
}

#[test]
fn target_dir_refuses_every_escape() {
    use thaw::tree::TargetDir;
    let t = tmp("targetdir");
    let sentinel = t.path().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    fs::write(sentinel.join("f"), b"x").unwrap();
    let out = t.path().join("out");
    let target = TargetDir::create(&out).unwrap();
    std::os::unix::fs::symlink(&sentinel, out.join("a")).unwrap();
    assert!(target.create_file(b"a/evil", 0o644).is_err());
    assert!(target.create_file(b"../evil", 0o644).is_err());
    assert!(target.create_file(b"a/../../evil", 0o644).is_err());
    let abs = sentinel.join("evil");
    assert!(target.create_file(abs.as_os_str().as_encoded_bytes(), 0o644).is_err());
    assert!(target.mkdir_all(b"a/x").is_err());
    assert!(target.symlink(b"a/s", b"/etc").is_err());
    assert!(target.hardlink(b"h", b"a/f").is_err(), "hard link to a file through a symlink");
    assert!(target.hardlink(b"h", b"../sentinel/f").is_err(), "hard link to a file outside");
    let mut fifo = entry(b"a/fifo", EntryKind::Fifo);
    fifo.mode = 0o644;
    assert!(target.special(&fifo).is_err());
    assert_eq!(listing(&sentinel), vec!["f"]);
    assert_eq!(listing(t.path()), vec!["out", "sentinel"]);
}

// ---- damaged bytes ----------------------------------------------------------------------

#[test]
fn every_truncation_is_refused() {
    let (bytes, _) = sample();
    let len = bytes.len();
    let trailer = len - open_mem(&bytes).unwrap().trailer_len() as usize;
    for n in (0..len).filter(|&n| n >= trailer.saturating_sub(64) || n % 61 == 0) {
        let msg = err_text(open_mem(&bytes[..n]));
        assert!(!msg.is_empty());
    }
    // Through the CLI, with the messages a user sees.
    let t = tmp("truncated");
    for n in [0, 8, 24, len / 2, trailer, len - 17, len - 1] {
        let a = t.path().join(format!("cut{n}.tar.zst"));
        fs::write(&a, &bytes[..n]).unwrap();
        let why = if n < 25 { "too short" } else { "truncated" };
        thaw([OsStr::new("ls"), a.as_os_str()]).fails_with(&[&format!("cut{n}.tar.zst"), why]);
        thaw([OsStr::new("verify"), a.as_os_str()]).fails_with(&[]);
        extract(&a, &t.path().join("out")).fails_with(&[]);
    }
    assert!(!t.path().join("out").exists());
}

#[test]
fn flipped_bits_in_data_frames_fail_the_read_naming_the_frame() {
    let (bytes, files) = sample();
    let probe = open_mem(&bytes).unwrap();
    let t = probe.seek_table();
    let mut failures = 0;
    for i in 0..t.len() {
        let start = t.compressed_offset(i) as usize;
        let n = t.frame(i).compressed as usize;
        for at in [start, start + 4, start + n / 2, start + n - 5, start + n - 1] {
            for bit in [0u8, 6] {
                let mut bad = bytes.clone();
                bad[at] ^= 1 << bit;
                // The trailer is intact, so it opens; reads give the right bytes or an error naming frame i.
                let a = open_mem(&bad).unwrap();
                for f in &files {
                    let e = &a.lookup(&f.path).unwrap().unwrap();
                    let mut buf = vec![0u8; f.data.len()];
                    match a.read_at(e, 0, &mut buf) {
                        Ok(got) => {
                            assert_eq!(got, f.data.len());
                            assert!(buf == f.data, "frame {i} byte {at} bit {bit}: {} silently wrong", e.path_lossy());
                        }
                        Err(Error::Frame { frame, why }) => {
                            assert_eq!(frame, i, "{why}");
                            assert!(a.frames_for(e, 0, f.data.len() as u64).contains(&i));
                            failures += 1;
                        }
                        Err(other) => panic!("unexpected error {other}"),
                    }
                }
            }
        }
    }
    assert!(failures >= t.len() * 5, "only {failures} reads failed");

    // The CLI: cat and extract fail naming the frame, verify exits nonzero.
    let big = &files[2];
    let e = &probe.lookup(&big.path).unwrap().unwrap();
    let k = probe.frames_for(e, 0, big.data.len() as u64).start + 1;
    let mut bad = bytes.clone();
    let mid = (t.compressed_offset(k) + u64::from(t.frame(k).compressed) / 2) as usize;
    bad[mid] ^= 0x10;
    let dir = tmp("flipped");
    let a = dir.path().join("a.tar.zst");
    fs::write(&a, &bad).unwrap();
    let frame = format!("frame {k}");
    thaw([OsStr::new("cat"), a.as_os_str(), OsStr::new("big")]).fails_with(&[&frame, "big"]);
    let v = thaw([OsStr::new("verify"), a.as_os_str()]).fails_with(&[&frame]);
    assert_eq!(v.code, 1);
    extract(&a, &dir.path().join("out")).fails_with(&[&frame]);
    // Files in other frames still read.
    assert_eq!(thaw([OsStr::new("cat"), a.as_os_str(), OsStr::new("small")]).ok().stdout, files[0].data);
}

#[test]
fn a_frame_that_decodes_to_other_bytes_fails_the_seek_table_checksum() {
    // Replace frame k by a valid zstd frame (no zstd checksum) of the same
    // length but other content: only the seek table's XXH64 can notice.
    let (bytes, _) = sample();
    let mut parts = Parts::of(&bytes);
    let k = 1;
    let mut other = vec![b'Z'; parts.table[k].decompressed as usize];
    other[0] = b'!';
    let mut c = zstd::bulk::Compressor::new(3).unwrap();
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(false)).unwrap();
    parts.frames[k] = c.compress(&other).unwrap();
    parts.table[k].compressed = parts.frames[k].len() as u32;
    let a = open_mem(&parts.assemble()).unwrap();
    match a.frame(k) {
        Err(Error::Frame { frame, why }) => {
            assert_eq!(frame, k);
            assert!(why.contains("checksum"), "{why}");
        }
        other => panic!("frame {k} decoded: {:?}", other.map(|f| f.len())),
    }
    // A frame that decodes to a different length.
    let mut parts = Parts::of(&bytes);
    parts.frames[k] = zstd::bulk::compress(&other[..100], 3).unwrap();
    parts.table[k].compressed = parts.frames[k].len() as u32;
    let a = open_mem(&parts.assemble()).unwrap();
    assert!(matches!(a.frame(k), Err(Error::Frame { frame, .. }) if frame == k));
}

#[test]
fn flipped_bits_in_the_index_or_seek_table_are_caught_or_harmless() {
    let (bytes, files) = sample();
    let good = open_mem(&bytes).unwrap();
    let trailer = bytes.len() - good.trailer_len() as usize;
    let mut refused = 0;
    for at in trailer..bytes.len() {
        for bit in [0u8, 3, 7] {
            let mut bad = bytes.clone();
            bad[at] ^= 1 << bit;
            match open_mem(&bad) {
                Err(_) => refused += 1,
                // Only bits the format ignores may flip unnoticed (the seek
                // table descriptor's unused bits 0-1, zstd header flags that
                // do not change the content): everything must read the same.
                Ok(a) => {
                    assert_eq!(a.id(), good.id(), "byte {at} bit {bit}");
                    assert_eq!(a.entries().unwrap(), good.entries().unwrap(), "byte {at} bit {bit}");
                    assert_eq!(a.seek_table().frames(), good.seek_table().frames(), "byte {at} bit {bit}");
                    for f in &files {
                        let mut buf = vec![0u8; f.data.len()];
                        a.read_at(&a.lookup(&f.path).unwrap().unwrap(), 0, &mut buf).unwrap();
                        assert!(buf == f.data);
                    }
                }
            }
        }
    }
    let total = (bytes.len() - trailer) * 3;
    assert!(refused * 100 >= total * 95, "only {refused} of {total} flips refused");

    // Specific fields, with the messages they give.
    let seek_start = bytes.len() - (8 + good.seek_table().len() * 12 + 9);
    let flip = |at: usize| {
        let mut b = bytes.clone();
        b[at] ^= 0x04;
        err_text(open_mem(&b))
    };
    assert!(flip(seek_start + 8 + 4).contains("seek table"), "{}", flip(seek_start + 8 + 4)); // frame 0 decompressed size
    assert!(flip(seek_start + 8 + 8).contains("index"), "{}", flip(seek_start + 8 + 8)); // frame 0 checksum: id mismatch
    assert!(flip(bytes.len() - 1).contains("not a thaw archive")); // seekable magic
    assert!(flip(bytes.len() - 5).contains("reserved descriptor bits"));
    assert!(flip(seek_start - 1).contains("without a thaw index")); // THAWTAIL
    assert!(flip(trailer + 8).contains("THAWIDX")); // index header magic
    assert!(flip(trailer + 8 + 16).contains("checksum mismatch")); // id
    let body = trailer + 8 + index::HEADER_LEN + 20;
    assert!(flip(body).contains("index"), "{}", flip(body));
}

// ---- the index pointing outside the file, absurd sizes ---------------------------------------

#[test]
fn index_pointing_outside_the_file_or_absurd_sizes_are_refused() {
    let (bytes, _) = sample();
    let parts = Parts::of(&bytes);
    let good = parts.assemble();
    assert!(open_mem(&good).is_ok());
    let len = good.len();
    let seek_len = 8 + parts.table.len() * 12 + 9;
    let tail = len - seek_len - index::TAIL_LEN;
    let set_u64 = |at: usize, v: u64| {
        let mut b = good.clone();
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        err_text(open_mem(&b))
    };
    let set_u32 = |at: usize, v: u32| {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        err_text(open_mem(&b))
    };
    let cases: Vec<(String, &str)> = vec![
        // The index frame length in the tail: past the start of the file, and too small.
        (set_u64(tail, len as u64), "does not fit the file"),
        (set_u64(tail, u64::MAX), "does not fit the file"),
        (set_u64(tail, 20), "does not fit the file"),
        // Seek table frame count in the footer: more frames than the file holds.
        (set_u32(len - 9, u32::MAX), "claimed"),
        (set_u32(len - 9, 1), "thaw index"),
    ];
    for (msg, want) in cases {
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    }

    let check = |p: &Parts, edit: &dyn Fn(&mut IndexHeader), want: &str| {
        let msg = err_text(open_mem(&p.assemble_with(edit)));
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    };
    let none = |_: &mut IndexHeader| {};
    // Seek table: a frame bigger than any reader accepts, an empty frame,
    // frames that add up to more than the file.
    let mut p = parts.clone();
    p.table[0].decompressed = u32::MAX;
    check(&p, &none, "absurd sizes");
    let mut p = parts.clone();
    p.table[1].decompressed = 0;
    check(&p, &none, "absurd sizes");
    let mut p = parts.clone();
    p.table[0].compressed += 1000;
    check(&p, &none, "frames add up to");
    // Index header: absurd body size, count, version, flags, stream length.
    check(&parts, &|h| h.body_len = 1 << 40, "absurd index size");
    check(&parts, &|h| h.entry_count = u64::MAX, "entry count larger");
    check(&parts, &|h| h.entry_count += 1, "index");
    check(&parts, &|h| h.version = 2, "version 2");
    check(&parts, &|h| h.stream_len += 512, "tar stream length");
    check(&parts, &|h| h.compressed_len -= 1, "compressed length");
    // Index body: lengths running past the end, unknown types, bad nanoseconds.
    let body = index::encode_entries(&parts.entries);
    let mut p = parts.clone();
    let mut b = body.clone();
    b[0] = 9; // type code of entry 0
    p.raw_body = Some(b);
    check(&p, &none, "unknown entry type 9");
    let mut p = parts.clone();
    let mut b = body.clone();
    b[1 + 12 + 8..1 + 12 + 8 + 4].copy_from_slice(&1_000_000_000u32.to_le_bytes());
    p.raw_body = Some(b);
    check(&p, &none, "nanoseconds");
    let mut p = parts.clone();
    let mut b = body.clone();
    let path_len_at = 1 + 12 + 8 + 4 + 8 + 8 + 8;
    b[path_len_at..path_len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    p.raw_body = Some(b);
    check(&p, &none, "runs past the end");
    let mut p = parts.clone();
    let mut b = body.clone();
    b.push(0);
    p.raw_body = Some(b);
    check(&p, &none, "trailing bytes");
    // An xattr count of 2^32-1 on the last entry.
    let mut p = parts.clone();
    let mut b = body.clone();
    let n = b.len();
    b[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    p.raw_body = Some(b);
    check(&p, &none, "runs past the end");
}

// ---- not a thaw archive -------------------------------------------------------------------

#[test]
fn plain_tar_zst_is_not_a_thaw_archive_and_convert_is_suggested() {
    let t = tmp("plain");
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("README"), b"hello\n").unwrap();
    let plain = t.path().join("plain.tar.zst");
    sh(&format!("tar --zstd -cf {} -C {} .", q(&plain), q(&src)));
    let tar = t.path().join("plain.tar");
    sh(&format!("tar -cf {} -C {} .", q(&tar), q(&src)));
    let empty = t.path().join("empty");
    fs::write(&empty, b"").unwrap();
    // A seekable zstd file without thaw's index: frames and seek table only.
    let (bytes, _) = sample();
    let a = open_mem(&bytes).unwrap();
    let data_end = a.seek_table().compressed_len() as usize;
    let seek = SeekTable::new(a.seek_table().frames().to_vec()).encode();
    let seekable = t.path().join("seekable.zst");
    fs::write(&seekable, [&bytes[..data_end], &seek[..]].concat()).unwrap();
    for p in [&plain, &tar, &empty, &seekable] {
        thaw([OsStr::new("ls"), p.as_os_str()]).fails_with(&["not a thaw archive", "thaw convert"]);
        thaw([OsStr::new("cat"), p.as_os_str(), OsStr::new("README")]).fails_with(&["not a thaw archive", "thaw convert"]);
    }
    thaw([OsStr::new("ls"), seekable.as_os_str()]).fails_with(&["without a thaw index"]);
    // And convert does turn the plain one into a thaw archive.
    let conv = t.path().join("conv.tar.zst");
    thaw([OsStr::new("convert"), plain.as_os_str(), OsStr::new("-o"), conv.as_os_str()]).ok();
    assert_eq!(thaw([OsStr::new("cat"), conv.as_os_str(), OsStr::new("README")]).ok().stdout, b"hello\n");
}

#[test]
fn a_directory_or_fifo_is_not_an_archive() {
    let t = tmp("dir-arg");
    thaw([OsStr::new("ls"), t.path().as_os_str()]).fails_with(&["not a regular file"]);
    // Opening a fifo for reading would block until a writer came.
    let fifo = t.path().join("fifo");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_bits_truncate(0o644), 0).unwrap();
    let msg = err_text(thaw::archive::Archive::open(&fifo));
    assert!(msg.contains("not a regular file"), "{msg}");
}

#[test]
fn verify_reports_an_index_that_disagrees_with_the_tar_stream() {
    let (bytes, _) = sample();
    let t = tmp("verify-index");
    // A consistent, valid index that names another path than the tar stream.
    let mut parts = Parts::of(&bytes);
    parts.entries[1].path = b"renamed".to_vec();
    let a = t.path().join("renamed.tar.zst");
    fs::write(&a, parts.assemble()).unwrap();
    let r = thaw([OsStr::new("verify"), a.as_os_str()]).fails_with(&["medium", "renamed"]);
    assert_eq!(r.code, 1);
    // Data offsets that point at the wrong bytes.
    let mut parts = Parts::of(&bytes);
    parts.entries[2].data_offset += 512;
    let a = t.path().join("shifted.tar.zst");
    fs::write(&a, parts.assemble()).unwrap();
    thaw([OsStr::new("verify"), a.as_os_str()]).fails_with(&["big", "index says"]);
    // The original verifies.
    let a = t.path().join("good.tar.zst");
    fs::write(&a, &bytes).unwrap();
    thaw([OsStr::new("verify"), a.as_os_str()]).ok();
}

/// The archive file written in place under an open `Archive` (same bytes
/// rewritten, appended to, or only touched): a read of a frame that is not
/// cached fails with "archive changed since it was opened", errno EIO, and
/// returns no bytes. Replacing the file by rename is harmless: the open file
/// keeps the old inode, whose bytes are right.
#[test]
fn an_archive_changed_after_open_fails_reads_with_eio() {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::path::Path;
    let files: Vec<MemFile> = (0..8).map(|i| MemFile { path: format!("f{i}").into_bytes(), data: data(i, 20_000) }).collect();
    let bytes = archive_of(&files, 4096);
    let t = tmp("changed");
    let p = t.path().join("a.tar.zst");
    let rewrite = |p: &Path| fs::OpenOptions::new().write(true).open(p).unwrap().write_all_at(&fs::read(p).unwrap()[..4096], 0).unwrap();
    let append = |p: &Path| fs::OpenOptions::new().append(true).open(p).unwrap().write_all(b"more").unwrap();
    let touch = |p: &Path| sh(&format!("touch {}", q(p)));
    type Edit<'a> = &'a dyn Fn(&Path);
    let edits: [(&str, Edit, &str); 3] = [("rewrite", &rewrite, "mtime"), ("append", &append, "size"), ("touch", &touch, "mtime")];
    for (name, edit, what) in edits {
        fs::write(&p, &bytes).unwrap();
        let a = thaw::archive::Archive::open(&p).unwrap();
        let mut buf = vec![0u8; 20_000];
        assert_eq!(a.read_at(&a.lookup(b"f0").unwrap().unwrap(), 0, &mut buf).unwrap(), 20_000);
        assert_eq!(buf, files[0].data);
        // Past the coarsest timestamp granularity, so an mtime-only change shows.
        std::thread::sleep(std::time::Duration::from_millis(20));
        edit(&p);
        let mut buf = vec![7u8; 20_000];
        let err = a.read_at(&a.lookup(b"f7").unwrap().unwrap(), 0, &mut buf).expect_err(name);
        let msg = err.to_string();
        assert!(matches!(err, Error::Changed { .. }), "{name}: {msg}");
        assert!(msg.contains("a.tar.zst: archive changed since it was opened") && msg.contains(what), "{name}: {msg}");
        assert_eq!(err.errno(), libc::EIO, "{name}");
        assert_eq!(std::io::Error::from(err).raw_os_error(), None, "{name}: not mistaken for an OS error");
        assert!(buf.iter().all(|&b| b == 7), "{name}: bytes were returned");
    }
    fs::write(&p, &bytes).unwrap();
    let a = thaw::archive::Archive::open(&p).unwrap();
    let other = archive_of(&[MemFile { path: b"f7".to_vec(), data: data(99, 20_000) }], 4096);
    let p2 = t.path().join("new.tar.zst");
    fs::write(&p2, other).unwrap();
    fs::rename(&p2, &p).unwrap();
    let mut buf = vec![0u8; 20_000];
    for f in &files {
        assert_eq!(a.read_at(&a.lookup(&f.path).unwrap().unwrap(), 0, &mut buf).unwrap(), 20_000);
        assert_eq!(buf, f.data, "{} after a replacement by rename", String::from_utf8_lossy(&f.path));
    }
}

/// archive::Error keeps its meaning as an io::Error: an OS error its errno,
/// a damaged frame InvalidData (EIO to a reader), a missing entry NotFound.
#[test]
fn archive_errors_map_to_meaningful_io_errors() {
    let os = Error::FrameRead { frame: 3, path: "a".into(), source: std::io::Error::from_raw_os_error(libc::ENXIO) };
    assert_eq!(os.errno(), libc::ENXIO);
    assert_eq!(std::io::Error::from(os).raw_os_error(), Some(libc::ENXIO));
    let bad = Error::Frame { frame: 3, why: "checksum mismatch".into() };
    assert_eq!(bad.errno(), libc::EIO);
    assert_eq!(std::io::Error::from(bad).kind(), std::io::ErrorKind::InvalidData);
    let missing = Error::NotFound("x".into());
    assert_eq!(missing.errno(), libc::ENOENT);
    assert_eq!(std::io::Error::from(missing).kind(), std::io::ErrorKind::NotFound);
    // The cause is chained, not repeated: printed once by a chain printer.
    let io = Error::io("a.tar.zst", std::io::Error::from_raw_os_error(libc::EIO));
    assert_eq!(thaw::archive::error_chain(&io), format!("a.tar.zst: {}", std::io::Error::from_raw_os_error(libc::EIO)));
}
