//! `thaw convert` of archives made by stock GNU tar: .tar, .tar.gz, .tar.xz
//! and plain .tar.zst, in POSIX (ns mtimes, xattrs) and GNU formats.

use crate::common::*;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;

fn convert(input: &Path, out: &Path) -> Run {
    thaw([OsStr::new("convert"), input.as_os_str(), OsStr::new("-o"), out.as_os_str(), OsStr::new("--frame-size"), OsStr::new("64K")])
}

/// Converts `input`, checks the result, extracts it and compares with `src`.
fn convert_and_compare(src: &Path, input: &Path, work: &Path, c: Compare) {
    let name = input.file_name().unwrap().to_string_lossy().into_owned();
    let a = work.join(format!("{name}.thaw.tar.zst"));
    convert(input, &a).ok();
    thaw([OsStr::new("verify"), a.as_os_str()]).ok();
    let out = work.join(format!("{name}.out"));
    extract(&a, &out).ok();
    assert_same_tree(src, &out, c);
    // The converted archive is still a .tar.zst stock tar reads the same way.
    let by_tar = work.join(format!("{name}.tar-out"));
    fs::create_dir(&by_tar).unwrap();
    sh(&format!("tar --xattrs --xattrs-include='user.*' -I zstd -xf {} -C {}", q(&a), q(&by_tar)));
    assert_same_tree(&out, &by_tar, Compare::ALL);
}

#[test]
fn converts_posix_tar_in_every_compression() {
    let t = tmp("convert-posix");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    let tar = t.path().join("t.tar");
    sh(&format!("tar --format=posix --xattrs --xattrs-include='user.*' -cf {} -C {} .", q(&tar), q(&src)));
    sh(&format!("cd {0} && gzip -c t.tar > t.tar.gz && xz -T1 -c t.tar > t.tar.xz && zstd -q -c t.tar > plain.tar.zst", q(t.path())));
    for input in ["t.tar", "t.tar.gz", "t.tar.xz", "plain.tar.zst"] {
        convert_and_compare(&src, &t.path().join(input), t.path(), Compare::ALL);
    }
}

#[test]
fn converts_gnu_format_tar_gz() {
    let t = tmp("convert-gnu");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    let tgz = t.path().join("t.tar.gz");
    // GNU format keeps whole-second mtimes and no xattrs.
    sh(&format!("tar --format=gnu -czf {} -C {} .", q(&tgz), q(&src)));
    let c = Compare { mtime_ns: false, xattrs: false, ..Compare::ALL };
    convert_and_compare(&src, &tgz, t.path(), c);
}

#[test]
fn convert_refuses_hostile_tars_and_leaves_no_output() {
    let t = tmp("convert-hostile");
    let sentinel = t.path().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    // a -> sentinel (a symlink), then a/evil: a file through the symlink.
    let d1 = t.path().join("d1");
    let d2 = t.path().join("d2");
    fs::create_dir_all(d2.join("a")).unwrap();
    fs::create_dir(&d1).unwrap();
    std::os::unix::fs::symlink(&sentinel, d1.join("a")).unwrap();
    fs::write(d2.join("a/evil"), b"pwned").unwrap();
    let h1 = t.path().join("through-symlink.tar");
    sh(&format!("tar -cf {} -C {} a -C {} a/evil", q(&h1), q(&d1), q(&d2)));
    // Like tar, convert leaves a/evil out (with a warning); nothing reaches the sentinel.
    let out = t.path().join("out1.tar.zst");
    let r = convert(&h1, &out).ok();
    assert!(r.stderr.contains("a/evil: skipped") && r.stderr.contains("parent \"a\" is a Symlink"), "{}", r.stderr);
    let listed = thaw([OsStr::new("ls"), out.as_os_str()]).ok();
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "a\n");
    extract(&out, &t.path().join("x1")).ok();
    assert!(fs::symlink_metadata(t.path().join("x1/a")).unwrap().file_type().is_symlink());
    let by_tar = t.path().join("x1-tar");
    fs::create_dir(&by_tar).unwrap();
    sh(&format!("tar -I zstd -xf {} -C {} 2>/dev/null || true", q(&out), q(&by_tar)));

    // A member named ../evil (GNU tar writes it with -P).
    let h2 = t.path().join("dotdot.tar");
    sh(&format!("cd {} && tar -P -cf {} ../d2/a/evil", q(&d1), q(&h2)));
    let out = t.path().join("out2.tar.zst");
    convert(&h2, &out).fails_with(&["../d2/a/evil", "`..`"]);
    assert!(!out.exists());

    // A hard link whose target is not in the archive.
    let d3 = t.path().join("d3");
    fs::create_dir(&d3).unwrap();
    fs::write(d3.join("f"), b"x").unwrap();
    fs::hard_link(d3.join("f"), d3.join("g")).unwrap();
    let h3 = t.path().join("dangling-link.tar");
    sh(&format!("tar -cf {} -C {} f g", q(&h3), q(&d3)));
    // Drop the first member (f) so g links to nothing: keep g's header only.
    let bytes = fs::read(&h3).unwrap();
    fs::write(&h3, &bytes[1024..]).unwrap();
    let out = t.path().join("out3.tar.zst");
    convert(&h3, &out).fails_with(&["\"g\"", "not an earlier entry"]);
    assert!(!out.exists());

    // Garbage is not a tar.
    let junk = t.path().join("junk.tar");
    fs::write(&junk, data(9, 5000)).unwrap();
    convert(&junk, &t.path().join("out4.tar.zst")).fails_with(&["junk.tar"]);
    assert!(!t.path().join("out4.tar.zst").exists());
    assert_eq!(listing(&sentinel), Vec::<std::ffi::OsString>::new());
    let leftovers: Vec<_> = listing(t.path()).into_iter().filter(|n| n.to_string_lossy().contains("partial")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn converts_hard_links_to_symlinks_and_chained_hard_links() {
    let t = tmp("convert-links");
    // `ln` of a symlink makes a second name for the symlink inode; GNU tar
    // records it as a hard link to a symlink.
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    std::os::unix::fs::symlink("target", src.join("s")).unwrap();
    fs::hard_link(src.join("s"), src.join("h")).unwrap();
    let tar = t.path().join("t.tar");
    sh(&format!("tar -cf {} -C {} .", q(&tar), q(&src)));
    let a = t.path().join("a.tar.zst");
    convert(&tar, &a).ok();
    let out = t.path().join("out");
    extract(&a, &out).ok();
    for name in ["s", "h"] {
        assert_eq!(fs::read_link(out.join(name)).unwrap(), Path::new("target"), "{name}");
    }

    // A hard link naming another hard link (other tars write these): all three share the file.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "f", &b"abc"[..]).unwrap();
    for (name, target) in [("h1", "f"), ("h2", "h1")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Link);
        b.append_link(&mut h, name, target).unwrap();
    }
    let chained = t.path().join("chained.tar");
    fs::write(&chained, b.into_inner().unwrap()).unwrap();
    let a = t.path().join("chained.tar.zst");
    convert(&chained, &a).ok();
    let out = t.path().join("out2");
    extract(&a, &out).ok();
    use std::os::unix::fs::MetadataExt;
    let ino = |n: &str| fs::metadata(out.join(n)).unwrap().ino();
    assert_eq!(ino("f"), ino("h1"));
    assert_eq!(ino("f"), ino("h2"));
    assert_eq!(fs::read(out.join("h2")).unwrap(), b"abc");
}

/// Two archives appended (`tar -r`): the later member of a path wins, as with
/// tar, for ls, cat and extract; a hard link to a replaced file keeps the old
/// data; a file cannot replace a non-empty directory (tar fails it too).
#[test]
fn appended_archives_later_member_wins() {
    let t = tmp("convert-appended");
    let (v1, v2) = (t.path().join("v1"), t.path().join("v2"));
    fs::create_dir_all(v1.join("d")).unwrap();
    fs::create_dir_all(v1.join("e")).unwrap();
    fs::create_dir_all(&v2).unwrap();
    fs::write(v1.join("f"), b"one").unwrap();
    fs::write(v1.join("d/x"), b"x").unwrap();
    fs::hard_link(v1.join("f"), v1.join("h")).unwrap();
    std::os::unix::fs::symlink("target1", v1.join("s")).unwrap();
    fs::write(v2.join("f"), b"two").unwrap();
    fs::write(v2.join("e"), b"was a dir").unwrap();
    fs::write(v2.join("d"), b"cannot replace d/").unwrap();
    std::os::unix::fs::symlink("target2", v2.join("s")).unwrap();
    let input = t.path().join("appended.tar");
    sh(&format!("tar -cf {0} -C {1} f h s d e && tar -rf {0} -C {2} f s e d", q(&input), q(&v1), q(&v2)));

    let a = t.path().join("a.tar.zst");
    let r = convert(&input, &a).ok();
    for w in ["f: appears more than once", "s: appears more than once", "e: appears more than once", "d: skipped"] {
        assert!(r.stderr.contains(w), "no warning {w:?}: {}", r.stderr);
    }
    thaw([OsStr::new("verify"), a.as_os_str()]).ok();
    let ls = thaw([OsStr::new("ls"), a.as_os_str()]).ok();
    // Format 2 lists by path (format 1 listed in stream order: h d d/x f s e).
    assert_eq!(String::from_utf8_lossy(&ls.stdout), "d\nd/x\ne\nf\nh\ns\n");
    let cat = |p: &str| thaw([OsStr::new("cat"), a.as_os_str(), OsStr::new(p)]).ok().stdout;
    assert_eq!(cat("f"), b"two");
    assert_eq!(cat("h"), b"one", "a hard link keeps the data of the file it was made to");
    assert_eq!(cat("e"), b"was a dir");

    let out = t.path().join("out");
    extract(&a, &out).ok();
    assert_eq!(fs::read_link(out.join("s")).unwrap(), Path::new("target2"));
    assert_eq!(fs::read(out.join("d/x")).unwrap(), b"x");
    // Stock tar gives the same tree from the input and from the thaw archive
    // (it reports the member it cannot place, d, and goes on).
    for (name, src, zstd) in [("tar-in", &input, ""), ("tar-thaw", &a, "-I zstd")] {
        let dir = t.path().join(name);
        fs::create_dir(&dir).unwrap();
        sh(&format!("tar {zstd} -xf {} -C {} 2>/dev/null || true", q(src), q(&dir)));
        assert_same_tree(&dir, &out, Compare::ALL);
    }
}

/// A truncated input tar says so, naming the member and where it ends
/// (it used to read as "file shrank while packing").
#[test]
fn truncated_input_is_reported_as_truncated() {
    let t = tmp("convert-truncated");
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big"), data(3, 100_000)).unwrap();
    let full = t.path().join("full.tar");
    sh(&format!("tar -cf {} -C {} big", q(&full), q(&src)));
    let bytes = fs::read(&full).unwrap();
    // Cut inside the data (header: 512 bytes), and inside the padding after it.
    let cases = [
        (50_512, vec!["big: input ends inside this member at byte 50000 of 100000 (truncated tar)"]),
        (101_000, vec!["input ends in the header after member \"big\" (truncated tar)"]),
    ];
    for (n, needles) in cases {
        let cut = t.path().join(format!("cut{n}.tar"));
        fs::write(&cut, &bytes[..n]).unwrap();
        let out = t.path().join(format!("cut{n}.tar.zst"));
        let r = convert(&cut, &out).fails_with(&needles);
        assert!(!r.stderr.contains("shrank"), "{}", r.stderr);
        assert!(!out.exists());
    }
    // A truncated .gz says the same, with the decompressor's word for it.
    let gz = t.path().join("cut.tar.gz");
    sh(&format!("gzip -c {} > {}", q(&full), q(&gz)));
    let z = fs::read(&gz).unwrap();
    fs::write(&gz, &z[..z.len() / 2]).unwrap();
    convert(&gz, &t.path().join("gz.tar.zst")).fails_with(&["big: input ends inside this member at byte", "(truncated tar)"]);
}
