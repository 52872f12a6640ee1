//! Shared helpers: temp dirs, running the `thaw` binary, the every-type
//! source tree, tree snapshots for `diff -r`-level comparison, and in-memory
//! archives.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use rustix::fs::{self as rfs, AtFlags, Timespec, Timestamps, CWD};
use thaw::archive::{Archive, ArchiveWriter, Entry, Source, WriterOptions};

// ---- temp dirs ---------------------------------------------------------------

/// A fresh directory for one test, removed on drop.
pub fn tmp(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("thaw-{name}-")).tempdir().expect("create temp dir")
}

/// Builds a path from raw bytes (names need not be UTF-8).
pub fn bpath(base: &Path, rel: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(rel))
}

// ---- the thaw binary -----------------------------------------------------------

pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "thaw failed: {}", self.stderr);
        self
    }

    /// Asserts a nonzero exit and that stderr mentions every needle.
    pub fn fails_with(self, needles: &[&str]) -> Run {
        assert_ne!(self.code, 0, "thaw succeeded but should have failed; stderr: {}", self.stderr);
        for n in needles {
            assert!(self.stderr.contains(n), "stderr lacks {n:?}: {}", self.stderr);
        }
        self
    }
}

fn run_output(out: Output) -> Run {
    Run { code: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

pub fn thaw_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_thaw"))
}

/// Runs `thaw ARGS...` with no stdin.
pub fn thaw<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = thaw_cmd().args(args).stdin(Stdio::null()).output().expect("run thaw");
    run_output(out)
}

/// Runs a shell command line (for stock tar/zstd), panicking on failure.
pub fn sh(script: &str) {
    let out = Command::new("sh").arg("-ec").arg(script).stdin(Stdio::null()).output().expect("run sh");
    assert!(out.status.success(), "`{script}` failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Quotes a path for `sh`.
pub fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// `sha256sum` of bytes, as lowercase hex.
pub fn sha256(data: &[u8]) -> String {
    let mut child =
        Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum (coreutils) is needed");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

// ---- deterministic data --------------------------------------------------------

/// splitmix64: a tiny deterministic generator for test data and ranges.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// `len` bytes that compress somewhat (words) but are not trivial.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed);
    let words: [&[u8]; 8] = [b"thaw ", b"frame ", b"zstd ", b"seek ", b"index ", b"tar ", b"\n", b"0123456789 "];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        if r.below(4) == 0 {
            out.extend_from_slice(&r.next().to_le_bytes());
        } else {
            out.extend_from_slice(words[r.below(8) as usize]);
        }
    }
    out.truncate(len);
    out
}

// ---- the every-type source tree -----------------------------------------------

pub const LONG_NAME_LEN: usize = 160;

/// A 160-byte file name (more than tar's 100-byte name field).
pub fn long_name() -> Vec<u8> {
    let mut n = vec![b'n'; LONG_NAME_LEN - 4];
    n.extend_from_slice(b".txt");
    n
}

/// A path of more than 250 bytes (more than ustar's 255-byte prefix+name).
pub fn long_path() -> Vec<u8> {
    let mut p = b"long".to_vec();
    for i in 0..4 {
        p.push(b'/');
        p.extend(std::iter::repeat_n(b'a' + i, 60));
    }
    p.extend_from_slice(b"/leaf.txt");
    assert!(p.len() > 250);
    p
}

/// Size of `big.bin`: more than three 64 KiB frames.
pub const BIG: usize = 200_000;

/// Builds a tree with every entry type thaw handles: regular files (empty,
/// small, multi-frame, optionally one larger than extract's 8 MiB piece),
/// empty and nested dirs, odd modes (0600, 0444, 4755, 0700, 2755, 1777),
/// relative/absolute/dangling symlinks, hard links, a fifo, non-UTF-8 names,
/// a 160-byte name and a 250+ byte path, user.* xattrs on files and dirs,
/// mtimes with nanoseconds (one before 1970), and (as root) a foreign owner.
pub fn every_type_tree(root: &Path, huge: bool) {
    let p = |rel: &[u8]| bpath(root, rel);
    let file = |rel: &[u8], content: &[u8], mode: u32| {
        let path = p(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    let dir = |rel: &[u8], mode: u32| {
        let path = p(rel);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    file(b"README", b"thaw test tree\n", 0o644);
    file(b"empty", b"", 0o600);
    file(b"big.bin", &data(1, BIG), 0o755);
    file(b"ro.txt", &data(2, 3000), 0o444);
    file(b"setuid", b"#!/bin/sh\n", 0o4755);
    if huge {
        // Larger than extract's 8 MiB piece: written by several threads.
        file(b"huge.bin", &data(3, (8 << 20) + 12345), 0o644);
    }
    dir(b"dir-empty", 0o700);
    dir(b"sticky", 0o1777);
    file(b"sticky/note", b"note\n", 0o644);
    dir(b"setgid", 0o2755);
    file(b"a/b/c/d/deep.txt", &data(4, 700), 0o640);
    for d in [&b"a"[..], b"a/b", b"a/b/c", b"a/b/c/d"] {
        fs::set_permissions(p(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir(b"links", 0o755);
    std::os::unix::fs::symlink("../README", p(b"links/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", p(b"links/abs")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", p(b"links/dangling")).unwrap();
    std::os::unix::fs::symlink("../a", p(b"links/dirlink")).unwrap();
    let long_target = "x/".repeat(70) + "end";
    std::os::unix::fs::symlink(&long_target, p(b"links/longtarget")).unwrap();
    file(b"hard1", &data(5, 5000), 0o644);
    fs::hard_link(p(b"hard1"), p(b"a/hard2")).unwrap();
    fs::hard_link(p(b"hard1"), p(b"links/hard3")).unwrap();
    rfs::mknodat(CWD, p(b"fifo"), rfs::FileType::Fifo, rfs::Mode::from_bits_truncate(0o640), 0).unwrap();
    fs::set_permissions(p(b"fifo"), fs::Permissions::from_mode(0o640)).unwrap();
    file(b"caf\xe9", b"latin-1 name\n", 0o644);
    file(b"dir-\xff\xfe/inner", b"inner\n", 0o644);
    // A long path (GNU 'L' record) and a long symlink target ('K') that start with non-UTF-8 bytes.
    let mut latin = b"\xe9t\xe9/".to_vec();
    latin.extend(std::iter::repeat_n(b'x', 120));
    file(&latin, b"latin-1 long path\n", 0o644);
    std::os::unix::fs::symlink(OsStr::from_bytes(&[0xe9; 120]), p(b"links/latin-target")).unwrap();
    file(&long_name(), &data(6, 300), 0o644);
    file(&long_path(), &data(7, 1000), 0o644);
    // A hard link whose target name needs a GNU 'K' record.
    fs::hard_link(p(&long_path()), p(b"zz-link-to-long")).unwrap();
    file(b"xattr.txt", b"has xattrs\n", 0o644);
    set_xattr(&p(b"xattr.txt"), b"user.comment", b"hello");
    set_xattr(&p(b"xattr.txt"), b"user.binary", b"\x00\xff\x01 value");
    dir(b"xdir", 0o755);
    set_xattr(&p(b"xdir"), b"user.dir", b"1");
    file(b"xdir/plain", b"", 0o644);
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::lchown(p(b"README"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(p(b"links/rel"), Some(4321), Some(8765)).unwrap();
    }
    set_mtimes(root);
}

fn set_xattr(path: &Path, name: &[u8], value: &[u8]) {
    let name = std::ffi::CString::new(name).unwrap();
    rfs::lsetxattr(path, name.as_c_str(), value, rfs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setting {name:?} on {}: {e} (the temp dir must take user.* xattrs)", path.display()));
}

/// Gives every entry under `root` a distinct mtime with nanoseconds (and one
/// file a time before the epoch), without following symlinks.
pub fn set_mtimes(root: &Path) {
    let mut all = Vec::new();
    walk(root, &mut Vec::new(), &mut all);
    all.sort();
    for (i, rel) in all.iter().enumerate() {
        let i = i as i64;
        let (sec, nsec) =
            if rel == b"ro.txt" { (-31_536_000, 250_000_000) } else { (1_700_000_000 + i * 3601, (i * 123_456_789 + 1) % 1_000_000_000) };
        let t = Timespec { tv_sec: sec, tv_nsec: nsec as _ };
        let ts = Timestamps { last_access: t, last_modification: t };
        rfs::utimensat(CWD, bpath(root, rel), &ts, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }
}

/// Relative paths of everything under `dir` (not following symlinks).
pub fn walk(dir: &Path, rel: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) {
    for e in fs::read_dir(bpath(dir, rel)).unwrap() {
        let e = e.unwrap();
        let len = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(e.file_name().as_bytes());
        out.push(rel.clone());
        if e.file_type().unwrap().is_dir() {
            walk(dir, rel, out);
        }
        rel.truncate(len);
    }
}

// ---- snapshots -------------------------------------------------------------------

/// What a comparison looks at beyond names, types, contents and link targets.
#[derive(Clone, Copy, Debug)]
pub struct Compare {
    pub mode: bool,
    /// Whole seconds of mtime.
    pub mtime: bool,
    /// Nanoseconds of mtime too.
    pub mtime_ns: bool,
    pub symlink_mtime: bool,
    pub owner: bool,
    pub xattrs: bool,
    pub hardlinks: bool,
}

impl Compare {
    pub const ALL: Compare =
        Compare { mode: true, mtime: true, mtime_ns: true, symlink_mtime: true, owner: true, xattrs: true, hardlinks: true };
}

#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    pub mtime: Option<(i64, i64)>,
    /// File contents or symlink target.
    pub data: Vec<u8>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub nodes: BTreeMap<Vec<u8>, Node>,
    /// Sets of paths sharing one inode (regular files with more than one link).
    pub link_groups: BTreeSet<BTreeSet<Vec<u8>>>,
}

pub fn snapshot(root: &Path, c: Compare) -> Snapshot {
    let mut all = Vec::new();
    walk(root, &mut Vec::new(), &mut all);
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<u64, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for rel in all {
        let path = bpath(root, &rel);
        let m = fs::symlink_metadata(&path).unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let (kind, data) = if ft.is_symlink() {
            ('l', fs::read_link(&path).unwrap().into_os_string().into_vec())
        } else if ft.is_dir() {
            ('d', Vec::new())
        } else if ft.is_file() {
            if m.nlink() > 1 {
                inodes.entry(m.ino()).or_default().insert(rel.clone());
            }
            ('-', fs::read(&path).unwrap())
        } else if ft.is_fifo() {
            ('p', Vec::new())
        } else {
            ('?', Vec::new())
        };
        let is_link = kind == 'l';
        let node = Node {
            kind,
            mode: (c.mode && !is_link).then_some(m.mode() & 0o7777),
            owner: c.owner.then_some((m.uid(), m.gid())),
            mtime: (c.mtime && (!is_link || c.symlink_mtime)).then_some((m.mtime(), if c.mtime_ns { m.mtime_nsec() } else { 0 })),
            data,
            xattrs: if c.xattrs && !is_link { user_xattrs(&path) } else { Vec::new() },
        };
        nodes.insert(rel, node);
    }
    let link_groups = if c.hardlinks { inodes.into_values().filter(|s| s.len() > 1).collect() } else { BTreeSet::new() };
    Snapshot { nodes, link_groups }
}

pub fn user_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 64 * 1024];
    let n = rfs::llistxattr(path, &mut names).unwrap();
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| n.starts_with(b"user.")) {
        let mut value = vec![0u8; 64 * 1024];
        let c = std::ffi::CString::new(name).unwrap();
        let len = rfs::lgetxattr(path, c.as_c_str(), &mut value).unwrap();
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    out.sort();
    out
}

/// Asserts two trees are equal under `c`, naming the first difference.
pub fn assert_same_tree(want: &Path, got: &Path, c: Compare) {
    let a = snapshot(want, c);
    let b = snapshot(got, c);
    let show = |p: &Vec<u8>| String::from_utf8_lossy(p).into_owned();
    for (path, node) in &a.nodes {
        match b.nodes.get(path) {
            None => panic!("{} missing from {}", show(path), got.display()),
            Some(other) => {
                if node != other {
                    panic!(
                        "{} differs ({} vs {}):\n  want {}\n  got  {}",
                        show(path),
                        want.display(),
                        got.display(),
                        summary(node),
                        summary(other)
                    );
                }
            }
        }
    }
    for path in b.nodes.keys() {
        assert!(a.nodes.contains_key(path), "{} is in {} but not in {}", show(path), got.display(), want.display());
    }
    assert_eq!(a.link_groups, b.link_groups, "hard link groups differ");
}

fn summary(n: &Node) -> String {
    let head = String::from_utf8_lossy(&n.data[..n.data.len().min(48)]).into_owned();
    format!(
        "{} mode {:?} owner {:?} mtime {:?} xattrs {:?} {} bytes {head:?}",
        n.kind,
        n.mode.map(|m| format!("{m:o}")),
        n.owner,
        n.mtime,
        n.xattrs,
        n.data.len()
    )
}

/// Names of everything in `dir` (for checking that nothing appeared there).
pub fn listing(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    v.sort();
    v
}

// ---- in-memory archives ------------------------------------------------------------

/// A `Write` whose bytes stay readable after the writer hands it off.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An archive held in memory.
pub struct MemSource(pub Arc<Vec<u8>>);

impl Source for MemSource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), thaw::archive::Error> {
        let short = || thaw::archive::Error::io("<memory>", std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        let s = usize::try_from(offset).map_err(|_| short())?;
        let src = self.0.get(s..s + buf.len()).ok_or_else(short)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn name(&self) -> String {
        "<memory>".into()
    }
}

pub fn open_mem(bytes: &[u8]) -> Result<Archive, thaw::archive::Error> {
    Archive::from_source(Box::new(MemSource(Arc::new(bytes.to_vec()))))
}

/// A regular file for [`write_archive`]: path and contents.
pub struct MemFile {
    pub path: Vec<u8>,
    pub data: Vec<u8>,
}

/// Writes entries (files get their data from `files` by path) into an
/// in-memory format 1 archive.
pub fn write_entries(entries: Vec<Entry>, files: &BTreeMap<Vec<u8>, Vec<u8>>, frame_size: usize) -> Vec<u8> {
    write_entries_with(entries, files, WriterOptions::v1(frame_size, 3, 2))
}

/// [`write_entries`] with any writer options (format 2 by default).
pub fn write_entries_with(entries: Vec<Entry>, files: &BTreeMap<Vec<u8>, Vec<u8>>, opts: WriterOptions) -> Vec<u8> {
    let buf = SharedBuf::default();
    let mut w = ArchiveWriter::new(buf.clone(), opts).unwrap();
    for e in entries {
        match files.get(&e.path) {
            Some(d) if e.kind == thaw::archive::EntryKind::File && !d.is_empty() => {
                let mut r: &[u8] = d;
                w.append(e, Some(&mut r)).unwrap();
            }
            _ => w.append(e, None).unwrap(),
        }
    }
    w.finish().unwrap();
    let out = buf.0.lock().unwrap().clone();
    out
}

/// An archive of plain files (all at the top level) built in memory.
pub fn archive_of(files: &[MemFile], frame_size: usize) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut map = BTreeMap::new();
    for f in files {
        let mut e = Entry::new(f.path.clone(), thaw::archive::EntryKind::File);
        e.size = f.data.len() as u64;
        e.mtime = 1_700_000_000;
        entries.push(e);
        map.insert(f.path.clone(), f.data.clone());
    }
    write_entries(entries, &map, frame_size)
}

/// Packs `src` with the CLI at `frame_size` (e.g. "64K") into `out`.
pub fn pack(src: &Path, out: &Path, frame_size: &str) {
    thaw([OsStr::new("pack"), src.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--frame-size"), OsStr::new(frame_size)]).ok();
}

pub fn extract(archive: &Path, dir: &Path) -> Run {
    thaw([OsStr::new("extract"), archive.as_os_str(), dir.as_os_str()])
}

/// An in-memory source that counts `read_exact_at` calls: the requests a
/// remote source would make.
pub struct Counting {
    pub inner: MemSource,
    pub reads: Arc<std::sync::atomic::AtomicUsize>,
}

impl Source for Counting {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), thaw::archive::Error> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_exact_at(buf, offset)
    }
    fn name(&self) -> String {
        self.inner.name()
    }
}
