//! Paths longer than PATH_MAX (4096 bytes): GNU tar archives them (long-name
//! records), and convert, ls, cat and extract handle them through walks
//! below PATH_MAX per system call, still never through a symlink.

use crate::common::*;
use rustix::fs::{self as rfs, Mode, OFlags};
use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// 25 directories of 200+ bytes: a 5000-byte path to `leaf.txt`.
fn components() -> Vec<Vec<u8>> {
    (0..25).map(|i| format!("{}{i}", "d".repeat(200)).into_bytes()).collect()
}

fn deep_path() -> Vec<u8> {
    let mut p = components().join(&b'/');
    p.extend_from_slice(b"/leaf.txt");
    assert!(p.len() > 5000);
    p
}

/// Opens the directory at `comps` below `root`, one component at a time.
fn open_deep(root: &Path, comps: &[Vec<u8>], create: bool) -> OwnedFd {
    let mut fd = rfs::open(root, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    for c in comps {
        if create {
            rfs::mkdirat(&fd, OsStr::from_bytes(c), Mode::from_bits_truncate(0o755)).unwrap();
        }
        fd = rfs::openat(&fd, OsStr::from_bytes(c), OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty()).unwrap();
    }
    fd
}

fn read_leaf(root: &Path) -> Vec<u8> {
    let dir = open_deep(root, &components(), false);
    let f = rfs::openat(&dir, "leaf.txt", OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty()).unwrap();
    std::io::read_to_string(fs::File::from(f)).unwrap().into_bytes()
}

#[test]
fn a_path_longer_than_path_max_converts_lists_reads_and_extracts() {
    let t = tmp("long-paths");
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let dir = open_deep(&src, &components(), true);
    let leaf = rfs::openat(&dir, "leaf.txt", OFlags::WRONLY | OFlags::CREATE, Mode::from_bits_truncate(0o644)).unwrap();
    rustix::io::write(&leaf, b"deep down").unwrap();
    let input = t.path().join("gnu.tar");
    sh(&format!("tar --format=gnu -cf {} -C {} .", q(&input), q(&src)));

    let a = t.path().join("a.tar.zst");
    thaw([OsStr::new("convert"), input.as_os_str(), OsStr::new("-o"), a.as_os_str()]).ok();
    let ls = thaw([OsStr::new("ls"), a.as_os_str()]).ok();
    assert!(ls.stdout.split(|&b| b == b'\n').any(|l| l == deep_path()), "ls does not list the 5000-byte path");
    let cat = thaw([OsStr::new("cat"), a.as_os_str(), OsStr::from_bytes(&deep_path())]).ok();
    assert_eq!(cat.stdout, b"deep down");
    let out = t.path().join("out");
    extract(&a, &out).ok();
    assert_eq!(read_leaf(&out), b"deep down");
    // Extracting again over the tree replaces the file, also that deep.
    extract(&a, &out).ok();
    assert_eq!(read_leaf(&out), b"deep down");
    thaw([OsStr::new("verify"), a.as_os_str()]).ok();
}

/// A symlink already in the target, deep in the second PATH_MAX piece of
/// the path: extraction refuses it and writes nothing through it.
#[test]
fn a_symlink_deep_in_a_long_path_is_never_followed() {
    let t = tmp("long-paths-symlink");
    let sentinel = t.path().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    let mut e = thaw::archive::Entry::new(deep_path(), thaw::archive::EntryKind::File);
    e.size = 4;
    let files = std::collections::BTreeMap::from([(deep_path(), b"evil".to_vec())]);
    let a = t.path().join("a.tar.zst");
    fs::write(&a, write_entries(vec![e], &files, 4096)).unwrap();
    let out = t.path().join("out");
    let comps = components();
    // Component 22 lies past the first 4096 bytes: make it a symlink to the sentinel.
    let above = open_deep(
        &{
            fs::create_dir(&out).unwrap();
            out.clone()
        },
        &comps[..22],
        true,
    );
    rfs::symlinkat(&sentinel, &above, OsStr::from_bytes(&comps[22])).unwrap();
    extract(&a, &out).fails_with(&["leaf.txt", "is a symlink or not a directory"]);
    assert_eq!(listing(&sentinel), Vec::<std::ffi::OsString>::new());
}
