//! pack → extract on the every-type tree, compared file by file with full
//! metadata; `ls`, `info`, `verify` and `cat` on the result.

use crate::common::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use thaw::archive::{Archive, EntryKind};

#[test]
fn pack_extract_keeps_every_entry_type_and_metadata() {
    let t = tmp("roundtrip");
    let src = t.path().join("src");
    every_type_tree(&src, true);
    let a = t.path().join("a.tar.zst");
    pack(&src, &a, "64K");
    let out = t.path().join("out");
    extract(&a, &out).ok();
    assert_same_tree(&src, &out, Compare::ALL);

    // Extracting again over the same tree replaces everything and still matches.
    extract(&a, &out).ok();
    assert_same_tree(&src, &out, Compare::ALL);

    // The archive lists every source path, with types and link targets.
    let ls = thaw([OsStr::new("ls"), a.as_os_str()]).ok();
    let mut listed: Vec<Vec<u8>> = ls.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    let mut want = Vec::new();
    walk(&src, &mut Vec::new(), &mut want);
    listed.sort();
    want.sort();
    assert_eq!(listed, want);
    let long = String::from_utf8_lossy(&thaw([OsStr::new("ls"), OsStr::new("-l"), a.as_os_str()]).ok().stdout).into_owned();
    assert!(long.contains("links/rel -> ../README"), "{long}");
    assert!(long.contains("links/hard3 link to a/hard2"), "{long}");
    assert!(long.lines().any(|l| l.starts_with("drwxrwxrwt") && l.ends_with(" sticky")), "{long}");

    thaw([OsStr::new("verify"), a.as_os_str()]).ok();
    let info = thaw([OsStr::new("info"), OsStr::new("--json"), a.as_os_str()]).ok();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format_version"], 2);
    assert_eq!(info["hardlinks"], 3);
    assert!(info["frames"].as_u64().unwrap() > (8 << 20) / (64 << 10), "{info}");
}

#[test]
fn library_reads_every_file_of_the_tree() {
    let t = tmp("libread");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    let a = t.path().join("a.tar.zst");
    pack(&src, &a, "64K");
    let ar = Archive::open(&a).unwrap();
    let mut files = 0;
    for e in ar.entries().unwrap() {
        let path = bpath(&src, &e.path);
        match e.kind {
            EntryKind::File | EntryKind::Hardlink => {
                let want = std::fs::read(&path).unwrap();
                let data = ar.data_entry(e).unwrap();
                assert_eq!(data.size, want.len() as u64, "{}", e.path_lossy());
                let mut got = vec![0u8; want.len() + 10];
                let n = ar.read_at(e, 0, &mut got).unwrap();
                assert_eq!(n, want.len());
                assert!(got[..n] == want[..], "{} differs", e.path_lossy());
                files += 1;
            }
            EntryKind::Symlink => {
                assert_eq!(e.link, std::fs::read_link(&path).unwrap().as_os_str().as_bytes());
                assert!(ar.read_at(e, 0, &mut [0u8; 4]).is_err(), "a symlink has no data");
            }
            _ => {}
        }
    }
    assert!(files >= 10, "only {files} files");
    assert_eq!(ar.lookup(b"./a/hard2").unwrap().unwrap().kind, EntryKind::File);
    assert_eq!(ar.lookup(b"/hard1/").unwrap().unwrap().kind, EntryKind::Hardlink);
    assert_eq!(ar.lookup(b"caf\xe9").unwrap().unwrap().size, 13);
    assert!(ar.lookup(&long_path()).unwrap().is_some());
}

#[test]
fn cat_writes_exact_bytes() {
    let t = tmp("cat");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    let a = t.path().join("a.tar.zst");
    pack(&src, &a, "64K");
    for rel in [&b"big.bin"[..], b"empty", b"a/hard2", b"caf\xe9", b"dir-\xff\xfe/inner", b"a/b/c/d/deep.txt", b"./README"] {
        let got = thaw([OsStr::new("cat"), a.as_os_str(), OsStr::from_bytes(rel)]).ok().stdout;
        let rel = rel.strip_prefix(b"./").unwrap_or(rel);
        assert!(got == std::fs::read(bpath(&src, rel)).unwrap(), "{}", String::from_utf8_lossy(rel));
    }
    let lp = long_path();
    let got = thaw([OsStr::new("cat"), a.as_os_str(), OsStr::from_bytes(&lp)]).ok().stdout;
    assert_eq!(got, std::fs::read(bpath(&src, &lp)).unwrap());

    thaw([OsStr::new("cat"), a.as_os_str(), OsStr::new("nope")]).fails_with(&["nope"]);
    thaw([OsStr::new("cat"), a.as_os_str(), OsStr::new("sticky")]).fails_with(&["sticky", "not a regular file"]);
    thaw([OsStr::new("cat"), a.as_os_str(), OsStr::new("links/rel")]).fails_with(&["links/rel", "not a regular file"]);
}

#[test]
fn pack_of_an_unreadable_file_fails_and_leaves_no_output() {
    let t = tmp("unreadable");
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("ok"), b"fine").unwrap();
    std::fs::write(src.join("secret"), b"no").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("secret"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let outdir = t.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let a = outdir.join("a.tar.zst");
    // Root reads anything: drop the capabilities that let it, for the child only.
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--bounding-set=-dac_override,-dac_read_search", env!("CARGO_BIN_EXE_thaw")]);
        c
    } else {
        thaw_cmd()
    };
    let out = cmd.arg("pack").arg(&src).arg("-o").arg(&a).output().expect("run thaw (setpriv from util-linux when root)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pack succeeded: {stderr}");
    assert!(stderr.contains("secret") && stderr.contains("ermission denied"), "{stderr}");
    assert_eq!(listing(&outdir), Vec::<std::ffi::OsString>::new(), "pack left files behind");
}

#[test]
fn pack_refuses_a_bad_frame_size_and_a_missing_source() {
    let t = tmp("badargs");
    let a = t.path().join("a.tar.zst");
    thaw([OsStr::new("pack"), t.path().as_os_str(), OsStr::new("-o"), a.as_os_str(), OsStr::new("--frame-size"), OsStr::new("1K")])
        .fails_with(&["frame size"]);
    thaw([OsStr::new("pack"), t.path().join("missing").as_os_str(), OsStr::new("-o"), a.as_os_str()]).fails_with(&["missing"]);
    assert!(!a.exists());
}

#[test]
fn pack_is_deterministic_so_the_id_names_the_content() {
    let t = tmp("deterministic");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    let mut ids = Vec::new();
    let mut bytes = Vec::new();
    for (i, threads) in ["1", "2", "4"].iter().enumerate() {
        let a = t.path().join(format!("a{i}.tar.zst"));
        let args = ["pack", src.to_str().unwrap(), "-o", a.to_str().unwrap(), "--frame-size", "64K", "--threads", threads];
        thaw(args).ok();
        ids.push(Archive::open(&a).unwrap().id());
        bytes.push(std::fs::read(&a).unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    assert!(bytes.windows(2).all(|w| w[0] == w[1]), "archives differ with the thread count");
    // Another frame size is another layout, so another id.
    let other = t.path().join("other.tar.zst");
    pack(&src, &other, "128K");
    assert_ne!(Archive::open(&other).unwrap().id(), ids[0]);
    // Same sizes and metadata, one changed byte: the frame checksum changes the id.
    std::fs::write(src.join("README"), b"thaw test TREE\n").unwrap();
    set_mtimes(&src);
    let changed = t.path().join("changed.tar.zst");
    pack(&src, &changed, "64K");
    assert_ne!(Archive::open(&changed).unwrap().id(), ids[0]);
}
