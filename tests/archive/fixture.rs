//! The checked-in fixture (fixtures/small.tar.zst, made by
//! fixtures/make-fixtures.sh) read by the current code must give exactly
//! fixtures/small.expected; and an independent parser written from
//! formats/thaw-archive.md must agree with the reader byte for byte.

use crate::common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use thaw::archive::{Archive, EntryKind};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// small.expected: `key value` lines, then `== name` sections of raw lines.
struct Expected {
    keys: BTreeMap<String, String>,
    sections: BTreeMap<String, Vec<Vec<u8>>>,
}

fn expected(name: &str) -> Expected {
    let text = std::fs::read(fixture(name)).unwrap();
    let mut keys = BTreeMap::new();
    let mut sections: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.split(|&b| b == b'\n') {
        if let Some(name) = line.strip_prefix(b"== ") {
            let name = String::from_utf8(name.to_vec()).unwrap();
            sections.insert(name.clone(), Vec::new());
            current = Some(name);
        } else if let Some(s) = &current {
            if !line.is_empty() {
                sections.get_mut(s).unwrap().push(line.to_vec());
            }
        } else if !line.starts_with(b"#") && !line.is_empty() {
            let line = String::from_utf8(line.to_vec()).unwrap();
            let (k, v) = line.split_once(' ').unwrap();
            keys.insert(k.to_string(), v.to_string());
        }
    }
    Expected { keys, sections }
}

#[test]
fn fixture_reads_as_recorded() {
    check_fixture("small");
}

#[test]
fn fixture_v2_reads_as_recorded() {
    check_fixture("small-v2");
    let a = Archive::open(&fixture("small-v2.tar.zst")).unwrap();
    assert_eq!(a.piece_size(), Some(64 << 10));
    let big = a.lookup(b"big.txt").unwrap().unwrap();
    assert_eq!(big.piece_xxh3.len(), 3, "big.txt has pieces");
}

/// `NAME.tar.zst` read by the current code gives exactly `NAME.expected`.
fn check_fixture(name: &str) {
    let a = fixture(&format!("{name}.tar.zst"));
    let want = expected(&format!("{name}.expected"));
    // thaw ls -l, byte for byte.
    let ls = thaw([OsStr::new("ls"), OsStr::new("-l"), a.as_os_str()]).ok().stdout;
    let got: Vec<Vec<u8>> = ls.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    assert_eq!(got.len(), want.sections["thaw ls -l"].len());
    for (g, w) in got.iter().zip(&want.sections["thaw ls -l"]) {
        assert_eq!(g.escape_ascii().to_string(), w.escape_ascii().to_string());
    }
    // Format version, id, frames, sizes.
    let info = thaw([OsStr::new("info"), OsStr::new("--json"), a.as_os_str()]).ok();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format_version"].to_string(), want.keys["format_version"]);
    assert_eq!(info["id"].as_str().unwrap(), want.keys["id"]);
    assert_eq!(info["frames"].to_string(), want.keys["frames"]);
    assert_eq!(info["tar_stream_bytes"].to_string(), want.keys["tar_stream_bytes"]);
    assert_eq!(std::fs::metadata(&a).unwrap().len().to_string(), want.keys["archive_bytes"]);
    thaw([OsStr::new("verify"), a.as_os_str()]).ok();

    // Every regular file (hard links included) hashes as the source did.
    let ar = Archive::open(&a).unwrap();
    let mut hashed = 0;
    for line in &want.sections["sha256"] {
        let (hash, path) = (&line[..64], &line[66..]);
        let e = &ar.lookup(path).unwrap().unwrap_or_else(|| panic!("{} not in the fixture", path.escape_ascii()));
        let size = ar.data_entry(e).unwrap().size as usize;
        let mut buf = vec![0u8; size];
        assert_eq!(ar.read_at(e, 0, &mut buf).unwrap(), size);
        assert_eq!(sha256(&buf), std::str::from_utf8(hash).unwrap(), "{}", path.escape_ascii());
        hashed += 1;
    }
    let files = ar.entries().unwrap().iter().filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Hardlink)).count();
    assert_eq!(hashed, files);
    // xattrs, which `ls -l` does not show.
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::new();
    for e in ar.entries().unwrap() {
        for (k, v) in &e.xattrs {
            xattrs.push((e.path.clone(), k.clone(), v.clone()));
        }
    }
    let want_x: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = want.sections["xattrs"]
        .iter()
        .map(|l| {
            let mut it = l.splitn(3, |&b| b == b' ');
            (it.next().unwrap().to_vec(), it.next().unwrap().to_vec(), it.next().unwrap().to_vec())
        })
        .collect();
    assert_eq!(xattrs, want_x);
}

#[test]
fn fixture_extracts_alike_with_thaw_and_stock_tar() {
    for name in ["small.tar.zst", "small-v2.tar.zst"] {
        extracts_alike(name);
    }
}

fn extracts_alike(name: &str) {
    let t = tmp("fixture-extract");
    let a = fixture(name);
    let mine = t.path().join("thaw");
    extract(&a, &mine).ok();
    let by_tar = t.path().join("tar");
    std::fs::create_dir(&by_tar).unwrap();
    sh(&format!("tar --xattrs --xattrs-include='user.*' -I zstd -xf {} -C {}", q(&a), q(&by_tar)));
    assert_same_tree(&mine, &by_tar, Compare::ALL);
    let sticky = std::fs::metadata(mine.join("sticky")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&sticky.permissions()) & 0o7777, 0o1777);
}

#[test]
fn fixtures_stay_small() {
    let total: u64 = std::fs::read_dir(fixture("")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(total < 200 * 1024, "fixtures/ holds {total} bytes");
}

/// Rewriting the fixture's entries with today's writer must give the same
/// tar stream, frame cuts and frame checksums (compressed bytes may differ
/// with the zstd version; the format may not).
#[test]
fn writer_reproduces_the_fixture_layout() {
    let old = Archive::open(&fixture("small.tar.zst")).unwrap();
    let mut data = BTreeMap::new();
    for e in old.entries().unwrap().iter().filter(|e| e.kind == EntryKind::File) {
        let mut buf = vec![0u8; e.size as usize];
        old.read_at(e, 0, &mut buf).unwrap();
        data.insert(e.path.clone(), buf);
    }
    let bytes = write_entries(old.entries().unwrap().to_vec(), &data, 64 << 10);
    same_layout(&old, &open_mem(&bytes).unwrap());
    // Format 2: the entries in stream order, written with the fixture's options.
    let old = Archive::open(&fixture("small-v2.tar.zst")).unwrap();
    let mut entries = old.entries().unwrap().to_vec();
    entries.sort_by_key(|e| e.member_offset);
    let opts = thaw::archive::WriterOptions {
        piece_size: 64 << 10,
        run_size: 128 << 10,
        block_target: 1024,
        level: 19,
        threads: 1,
        ..Default::default()
    };
    let bytes = write_entries_with(entries, &data, opts);
    let new = open_mem(&bytes).unwrap();
    same_layout(&old, &new);
    assert_eq!(new.id(), old.id(), "same options and zstd: the same archive");
}

fn same_layout(old: &Archive, new: &Archive) {
    assert_eq!(new.entries().unwrap(), old.entries().unwrap());
    let sums = |a: &Archive| a.seek_table().frames().iter().map(|f| (f.decompressed, f.checksum)).collect::<Vec<_>>();
    assert_eq!(sums(new), sums(old));
    let len = old.seek_table().stream_len() as usize;
    let (mut s1, mut s2) = (vec![0u8; len], vec![0u8; len]);
    old.read_stream(0, &mut s1).unwrap();
    new.read_stream(0, &mut s2).unwrap();
    assert!(s1 == s2, "tar streams differ");
}

// ---- an independent reader written from formats/thaw-archive.md ---------------------------

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[derive(Debug, PartialEq)]
struct SpecEntry {
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    nsec: u32,
    size: u64,
    data_offset: u64,
    dev: (u32, u32),
    path: Vec<u8>,
    link: Vec<u8>,
    uname: Vec<u8>,
    gname: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct SpecArchive {
    id: [u8; 16],
    frames: Vec<(u32, u32, u32)>,
    stream: Vec<u8>,
    entries: Vec<SpecEntry>,
}

/// The parts every format shares: seek table, index frame bounds, data frames.
struct Framing {
    frames: Vec<(u32, u32, u32)>,
    stream: Vec<u8>,
    /// Where the seek table and the index frame start, and the index length.
    seek: usize,
    idx: usize,
    idx_len: usize,
    n: usize,
}

fn framing(b: &[u8]) -> Framing {
    let len = b.len();
    // Seek table footer: frame count, descriptor, seekable magic.
    assert_eq!(u32_at(b, len - 4), 0x8F92_EAB1);
    let n = u32_at(b, len - 9) as usize;
    assert_eq!(b[len - 5], 0x80, "descriptor: checksums on, reserved bits clear");
    let seek_len = 8 + 12 * n + 9;
    let seek = len - seek_len;
    assert_eq!(u32_at(b, seek), 0x184D_2A5E);
    assert_eq!(u32_at(b, seek + 4) as usize, seek_len - 8);
    let frames: Vec<(u32, u32, u32)> =
        (0..n).map(|i| (u32_at(b, seek + 8 + 12 * i), u32_at(b, seek + 12 + 12 * i), u32_at(b, seek + 16 + 12 * i))).collect();
    // Index tail, then the index frame.
    assert_eq!(&b[seek - 8..seek], b"THAWTAIL");
    let idx_len = u64_at(b, seek - 16) as usize;
    let idx = seek - idx_len;
    assert_eq!(u32_at(b, idx), 0x184D_2A5B);
    assert_eq!(u32_at(b, idx + 4) as usize, idx_len - 8);
    // Data frames fill the file up to the index, each a zstd frame with a checksum.
    let mut off = 0usize;
    let mut stream = Vec::new();
    for &(c, d, sum) in &frames {
        let f = &b[off..off + c as usize];
        assert_eq!(u32_at(f, 0), 0xFD2F_B528, "zstd frame magic");
        assert!(f[4] & 0x04 != 0, "zstd content checksum flag");
        let out = zstd::bulk::decompress(f, d as usize).unwrap();
        assert_eq!(out.len(), d as usize);
        assert_eq!(xxhash_rust::xxh64::xxh64(&out, 0) as u32, sum);
        stream.extend_from_slice(&out);
        off += c as usize;
    }
    assert_eq!(off, idx, "data frames end where the index starts");
    Framing { frames, stream, seek, idx, idx_len, n }
}

/// Each file's data sits right after a tar header block whose size field matches.
fn check_file_headers(entries: &[SpecEntry], stream: &[u8]) {
    for e in entries.iter().filter(|e| e.kind == 0) {
        let hdr = &stream[e.data_offset as usize - 512..e.data_offset as usize];
        assert_eq!(hdr[156], b'0', "{} typeflag", e.path.escape_ascii());
        assert_eq!(&hdr[257..263], b"ustar ", "GNU magic");
        let size_field = std::str::from_utf8(&hdr[124..135]).unwrap();
        assert_eq!(u64::from_str_radix(size_field, 8).unwrap(), e.size);
        assert!(e.data_offset + e.size <= stream.len() as u64);
    }
}

/// Parses a format 1 archive following the spec only (no thaw code).
fn parse_by_spec(b: &[u8]) -> SpecArchive {
    let Framing { frames, stream, seek, idx, idx_len, n } = framing(b);
    let h = &b[idx + 8..idx + 8 + 64];
    assert_eq!(&h[0..8], b"THAWIDX\0");
    assert_eq!(u32_at(h, 8), 1, "format version");
    assert_eq!(u32_at(h, 12), 0, "flags");
    let id: [u8; 16] = h[16..32].try_into().unwrap();
    let count = u64_at(h, 32) as usize;
    let body_len = u64_at(h, 40) as usize;
    let clen = u64_at(h, 48) as usize;
    let stream_len = u64_at(h, 56);
    assert_eq!(8 + 64 + clen + 16, idx_len);
    assert_eq!(stream.len() as u64, stream_len);
    // The body and the id.
    let body = zstd::bulk::decompress(&b[idx + 72..idx + 72 + clen], body_len).unwrap();
    assert_eq!(body.len(), body_len);
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&body);
    hasher.update(&b[seek + 8..seek + 8 + 12 * n]);
    assert_eq!(hasher.digest128().to_le_bytes(), id, "id = XXH3-128(body || seek entries), little-endian");
    // Entry records.
    let mut at = 0usize;
    let mut take = |k: usize| {
        let s = &body[at..at + k];
        at += k;
        s
    };
    let mut entries = Vec::new();
    for _ in 0..count {
        let kind = take(1)[0];
        let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap());
        let u64_ = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap());
        let mode = u32_(take(4));
        let uid = u32_(take(4));
        let gid = u32_(take(4));
        let mtime = u64_(take(8)) as i64;
        let nsec = u32_(take(4));
        let size = u64_(take(8));
        let data_offset = u64_(take(8));
        let dev = (u32_(take(4)), u32_(take(4)));
        let mut bytes = || {
            let n = u32_(take(4)) as usize;
            take(n).to_vec()
        };
        let (path, link, uname, gname) = (bytes(), bytes(), bytes(), bytes());
        let nx = u32_(take(4));
        let mut xattrs = Vec::new();
        for _ in 0..nx {
            let k = {
                let n = u32_(take(4)) as usize;
                take(n).to_vec()
            };
            let v = {
                let n = u32_(take(4)) as usize;
                take(n).to_vec()
            };
            xattrs.push((k, v));
        }
        entries.push(SpecEntry { kind, mode, uid, gid, mtime, nsec, size, data_offset, dev, path, link, uname, gname, xattrs });
    }
    assert_eq!(at, body.len(), "no bytes after the last record");
    check_file_headers(&entries, &stream);
    SpecArchive { id, frames, stream, entries }
}

fn check_spec_agrees(bytes: &[u8]) {
    let spec = parse_by_spec(bytes);
    let a = open_mem(bytes).unwrap();
    assert_eq!((spec.id, a.version()), (a.id(), 1));
    agrees(&spec, &a);
}

/// The fields format 1 and 2 share, entry by entry, and every file's data.
fn agrees(spec: &SpecArchive, a: &Archive) {
    let frames: Vec<_> = a.seek_table().frames().iter().map(|f| (f.compressed, f.decompressed, f.checksum)).collect();
    assert_eq!(spec.frames, frames);
    assert_eq!(spec.entries.len(), a.entries().unwrap().len());
    let codes = [
        EntryKind::File,
        EntryKind::Dir,
        EntryKind::Symlink,
        EntryKind::Hardlink,
        EntryKind::Fifo,
        EntryKind::CharDev,
        EntryKind::BlockDev,
    ];
    for (s, e) in spec.entries.iter().zip(a.entries().unwrap()) {
        assert_eq!(codes[s.kind as usize], e.kind);
        assert_eq!(
            (s.mode, s.uid, s.gid, s.mtime, s.nsec, s.size, s.data_offset),
            (e.mode, e.uid, e.gid, e.mtime, e.mtime_nsec, e.size, e.data_offset)
        );
        assert_eq!(s.dev, (e.dev_major, e.dev_minor));
        assert_eq!((&s.path, &s.link, &s.uname, &s.gname, &s.xattrs), (&e.path, &e.link, &e.uname, &e.gname, &e.xattrs));
        if e.kind == EntryKind::File {
            let mut buf = vec![0u8; e.size as usize];
            a.read_at(e, 0, &mut buf).unwrap();

            assert!(buf[..] == spec.stream[e.data_offset as usize..(e.data_offset + e.size) as usize]);
        }
    }
}

#[test]
fn spec_parser_agrees_with_the_reader_on_the_fixture() {
    check_spec_agrees(&std::fs::read(fixture("small.tar.zst")).unwrap());
}

#[test]
fn spec_parser_agrees_with_the_reader_on_a_fresh_archive() {
    let t = tmp("spec");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    let a = t.path().join("a.tar.zst");
    let args = ["pack", &src.to_string_lossy(), "-o", &a.to_string_lossy(), "--format", "1", "--frame-size", "64K"].map(|s| s.to_string());
    thaw(args.iter().map(OsStr::new)).ok();
    check_spec_agrees(&std::fs::read(&a).unwrap());
}

// ---- format 2, from formats/thaw-archive.md §2 only -------------------------------------

/// A cursor over raw index bytes: canonical LEB128 varints, u64s, byte strings.
struct Cur<'a>(&'a [u8], usize);

impl<'a> Cur<'a> {
    fn var(&mut self) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = self.0[self.1];
            self.1 += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                assert!(shift == 0 || byte != 0, "canonical varint");
                return v;
            }
            shift += 7;
            assert!(shift < 70, "varint of at most 10 bytes");
        }
    }
    fn u64(&mut self) -> u64 {
        let v = u64_at(self.0, self.1);
        self.1 += 8;
        v
    }
    fn bytes(&mut self) -> &'a [u8] {
        let n = self.var() as usize;
        self.1 += n;
        &self.0[self.1 - n..self.1]
    }
}

/// A format 2 entry: the fields format 1 has, and the new ones.
struct SpecV2 {
    e: SpecEntry,
    member: u64,
    xxh3: Option<u64>,
    pieces: Vec<u64>,
}

/// One record (§2.5); `prev` is the previous path in its block.
fn parse_record_v2(c: &mut Cur<'_>, prev: &[u8], p: u64) -> SpecV2 {
    let kind = c.0[c.1];
    let flags = c.0[c.1 + 1];
    c.1 += 2;
    assert!(kind <= 6 && flags <= 1);
    let shared = c.var() as usize;
    let mut path = prev[..shared].to_vec();
    path.extend_from_slice(c.bytes());
    let (mode, uid, gid) = (c.var() as u32, c.var() as u32, c.var() as u32);
    let z = c.var();
    let mtime = (z >> 1) as i64 ^ -((z & 1) as i64);
    let nsec = c.var() as u32;
    let (uname, gname) = (c.bytes().to_vec(), c.bytes().to_vec());
    let member = c.var();
    let (mut size, mut data_offset, mut link, mut dev, mut xxh3, mut pieces) = (0, 0, Vec::new(), (0, 0), None, Vec::new());
    match kind {
        0 => {
            size = c.var();
            data_offset = member + c.var();
            xxh3 = Some(c.u64());
            if size > p {
                pieces = (0..size.div_ceil(p)).map(|_| c.u64()).collect();
            }
        }
        2 | 3 => link = c.bytes().to_vec(),
        5 | 6 => dev = (c.var() as u32, c.var() as u32),
        _ => {}
    }
    let mut xattrs = Vec::new();
    if flags & 1 != 0 {
        for _ in 0..c.var() {
            xattrs.push((c.bytes().to_vec(), c.bytes().to_vec()));
        }
    }
    let e = SpecEntry { kind, mode, uid, gid, mtime, nsec, size, data_offset, dev, path, link, uname, gname, xattrs };
    SpecV2 { e, member, xxh3, pieces }
}

/// Parses a format 2 archive following the spec only (no thaw code), and
/// checks every file's XXH3 and piece XXH3s against the tar stream.
fn parse_by_spec_v2(b: &[u8]) -> (SpecArchive, Vec<SpecV2>, usize) {
    let Framing { frames, stream, seek, idx, idx_len, n } = framing(b);
    assert_eq!(&b[idx + 8..idx + 16], b"THAWIDX\0", "prologue");
    assert_eq!((u32_at(b, idx + 16), u32_at(b, idx + 20)), (2, 0), "prologue version and zero");
    let h = &b[seek - 16 - 128..seek - 16];
    assert_eq!(&h[0..8], b"THAWHDR\0");
    assert_eq!(u64_at(h, 120), xxhash_rust::xxh3::xxh3_64(&h[..120]), "header checksum");
    assert_eq!((u32_at(h, 8), u32_at(h, 12)), (2, 0), "version, required flags");
    assert!(h[84..120].iter().all(|&x| x == 0), "reserved");
    let id: [u8; 16] = h[16..32].try_into().unwrap();
    let (count, stream_len, blocks, p) = (u64_at(h, 32), u64_at(h, 40), u32_at(h, 48) as usize, u64::from(u32_at(h, 52)));
    let (sigma, dc, dr, dir_sum) = (u64_at(h, 56) as usize, u32_at(h, 64) as usize, u32_at(h, 68) as usize, u64_at(h, 72));
    assert_eq!(24 + sigma + dc + 144, idx_len);
    assert_eq!(stream.len() as u64, stream_len);
    let dir = zstd::bulk::decompress(&b[idx + 24 + sigma..idx + 24 + sigma + dc], dr).unwrap();
    assert_eq!((dir.len(), xxhash_rust::xxh3::xxh3_64(&dir)), (dr, dir_sum));
    let mut idbuf = b"thaw v2\0".to_vec();
    idbuf.extend_from_slice(&(p as u32).to_le_bytes());
    idbuf.extend_from_slice(&count.to_le_bytes());
    idbuf.extend_from_slice(&stream_len.to_le_bytes());
    idbuf.extend_from_slice(&dir);
    idbuf.extend_from_slice(&b[seek + 8..seek + 8 + 12 * n]);
    assert_eq!(xxhash_rust::xxh3::xxh3_128(&idbuf).to_le_bytes(), id, "archive id");
    // Directory, then each block and its records.
    let mut d = Cur(&dir, 0);
    let mut at = idx + 24;
    let mut out: Vec<SpecV2> = Vec::new();
    for _ in 0..blocks {
        let (c_len, r_len, n_rec, sum) = (d.var() as usize, d.var() as usize, d.var(), d.u64());
        let key = d.bytes().to_vec();
        let raw = zstd::bulk::decompress(&b[at..at + c_len], r_len).unwrap();
        assert_eq!((raw.len(), xxhash_rust::xxh3::xxh3_64(&raw)), (r_len, sum));
        let mut c = Cur(&raw, 0);
        let mut prev = Vec::new();
        for i in 0..n_rec {
            let r = parse_record_v2(&mut c, &prev, p);
            assert!(i > 0 || r.e.path == key, "first path = directory key");
            assert!(out.last().is_none_or(|l| l.e.path < r.e.path), "strictly increasing paths");
            prev = r.e.path.clone();
            out.push(r);
        }
        assert_eq!(c.1, raw.len(), "no bytes after the last record");
        at += c_len;
    }
    assert_eq!((d.1, at, out.len() as u64), (dir.len(), idx + 24 + sigma, count));
    for r in out.iter().filter(|r| r.e.kind == 0) {
        let data = &stream[r.e.data_offset as usize..(r.e.data_offset + r.e.size) as usize];
        assert_eq!(Some(xxhash_rust::xxh3::xxh3_64(data)), r.xxh3, "{} XXH3", r.e.path.escape_ascii());
        let want: Vec<u64> = if r.e.size > p { data.chunks(p as usize).map(xxhash_rust::xxh3::xxh3_64).collect() } else { Vec::new() };
        assert_eq!(r.pieces, want, "{} pieces", r.e.path.escape_ascii());
    }
    let entries: Vec<SpecEntry> = out
        .iter()
        .map(|r| SpecEntry {
            path: r.e.path.clone(),
            link: r.e.link.clone(),
            uname: r.e.uname.clone(),
            gname: r.e.gname.clone(),
            xattrs: r.e.xattrs.clone(),
            ..r.e
        })
        .collect();
    check_file_headers(&entries, &stream);
    (SpecArchive { id, frames, stream, entries }, out, blocks)
}

/// The reader and the spec parser agree on every entry, the new fields included.
fn check_spec_agrees_v2(bytes: &[u8]) -> usize {
    let (spec, v2, blocks) = parse_by_spec_v2(bytes);
    let a = open_mem(bytes).unwrap();
    assert_eq!((spec.id, a.version()), (a.id(), 2));
    for (s, e) in v2.iter().zip(a.entries().unwrap()) {
        assert_eq!((&s.e.path, s.member, s.xxh3, &s.pieces), (&e.path, e.member_offset, e.data_xxh3, &e.piece_xxh3));
    }
    agrees(&spec, &a);
    blocks
}

#[test]
fn spec_parser_agrees_with_the_reader_on_the_v2_fixture() {
    let blocks = check_spec_agrees_v2(&std::fs::read(fixture("small-v2.tar.zst")).unwrap());
    assert!(blocks >= 2, "the fixture has {blocks} blocks");
}

#[test]
fn spec_parser_agrees_with_the_reader_on_a_fresh_v2_archive() {
    let t = tmp("spec-v2");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    let a = t.path().join("a.tar.zst");
    let args =
        ["pack", &src.to_string_lossy(), "-o", &a.to_string_lossy(), "--piece-size", "64K", "--run-size", "128K"].map(|s| s.to_string());
    thaw(args.iter().map(OsStr::new)).ok();
    check_spec_agrees_v2(&std::fs::read(&a).unwrap());
}
