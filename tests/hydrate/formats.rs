//! Stub trees across archive formats: a stage populated from a format 1
//! archive keeps being served by it (format 1 entry numbers and chunks),
//! and one populated from format 2 records the format in `archive.json`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::common::{assert_same_tree, every_type_tree, sha256, thaw, Compare};
use crate::served::{Served, Setup};
use crate::support::{drop_caches, scratch_dir};

fn stage_info(dir: &std::path::Path) -> serde_json::Value {
    let p = dir.parent().unwrap().join(format!(".{}.thaw", dir.file_name().unwrap().to_string_lossy())).join("archive.json");
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// The checked-in format 1 fixture, populated and served: every file reads
/// as `small.expected`'s sha256 says (from the source tree, not from thaw).
#[test]
fn a_stage_from_the_format_1_fixture_is_served_by_it() {
    let scratch = scratch_dir("v1-fixture-serve");
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let archive = scratch.join("small.tar.zst");
    fs::copy(fixtures.join("small.tar.zst"), &archive).unwrap();
    let dir = scratch.join("lazy");
    thaw([OsStr::new("populate"), archive.as_os_str(), dir.as_os_str()]).ok();
    assert_eq!(stage_info(&dir)["format_version"], 1);
    let served = Served::start(&archive, &dir, &[]);
    drop_caches();
    let expected = fs::read(fixtures.join("small.expected")).unwrap();
    let lines = expected.split(|&b| b == b'\n').skip_while(|l| *l != b"== sha256").skip(1);
    let mut n = 0;
    for line in lines.take_while(|l| !l.starts_with(b"== ")) {
        let (hash, rel) = (&line[..64], &line[66..]);
        let got = fs::read(dir.join(OsStr::from_bytes(rel))).unwrap_or_else(|e| panic!("{}: {e}", rel.escape_ascii()));
        assert_eq!(sha256(&got), std::str::from_utf8(hash).unwrap(), "{}", rel.escape_ascii());
        n += 1;
    }
    assert!(n >= 10, "only {n} files checked");
    served.stop();
}

/// A tree packed as format 1 by this thaw, served: the same tree.
#[test]
fn a_stage_from_a_format_1_archive_serves_the_same_tree() {
    let scratch = scratch_dir("v1-serve");
    let src = scratch.join("src");
    every_type_tree(&src, false);
    let archive = scratch.join("a.tar.zst");
    let args = [OsStr::new("pack"), src.as_os_str(), OsStr::new("-o"), archive.as_os_str(), OsStr::new("--format"), OsStr::new("1")];
    thaw(args.iter().copied().chain([OsStr::new("--frame-size"), OsStr::new("64K")])).ok();
    let dir = scratch.join("lazy");
    thaw([OsStr::new("populate"), archive.as_os_str(), dir.as_os_str()]).ok();
    assert_eq!(stage_info(&dir)["format_version"], 1);
    let served = Served::start(&archive, &dir, &[]);
    assert_same_tree(&src, &dir, Compare::ALL);
    served.stop();
}

/// Format 2 with pieces smaller than runs, served: the same tree.
#[test]
fn a_stage_from_a_format_2_archive_with_pieces_serves_the_same_tree() {
    let s = Setup::new("v2-serve", "64K", |src| every_type_tree(src, false));
    assert_eq!(stage_info(&s.dir)["format_version"], 2);
    drop(s);
    let scratch = scratch_dir("v2-pieces-serve");
    let src = scratch.join("src");
    every_type_tree(&src, false);
    let archive = scratch.join("a.tar.zst");
    let args = [OsStr::new("pack"), src.as_os_str(), OsStr::new("-o"), archive.as_os_str()];
    thaw(args.iter().copied().chain([OsStr::new("--piece-size"), OsStr::new("64K"), OsStr::new("--run-size"), OsStr::new("256K")])).ok();
    let dir = scratch.join("lazy");
    thaw([OsStr::new("populate"), archive.as_os_str(), dir.as_os_str()]).ok();
    let served = Served::start(&archive, &dir, &[]);
    assert_same_tree(&src, &dir, Compare::ALL);
    served.stop();
}

/// A partly hydrated stage of a format 1 archive, moved onto that archive's
/// format 2 conversion with `thaw upgrade DIR --to NEW`, serves the same tree;
/// before the move, serving NEW is refused with a message naming the command.
#[test]
fn upgrade_to_moves_a_partly_hydrated_format_1_stage_onto_its_conversion() {
    let scratch = scratch_dir("upgrade-to");
    let src = scratch.join("src");
    every_type_tree(&src, false);
    fs::write(src.join("big"), crate::common::data(77, 3 << 20)).unwrap();
    let old = scratch.join("old.tar.zst");
    thaw([OsStr::new("pack"), src.as_os_str(), OsStr::new("-o"), old.as_os_str(), OsStr::new("--format"), OsStr::new("1")]).ok();
    let dir = scratch.join("lazy");
    thaw([OsStr::new("populate"), old.as_os_str(), dir.as_os_str()]).ok();
    let served = Served::start(&old, &dir, &["--readahead", "0"]);
    let f = fs::File::open(dir.join("big")).unwrap();
    let mut buf = [0u8; 100];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 3 << 19).unwrap();
    drop(f);
    served.stop();

    let new = scratch.join("new.tar.zst");
    thaw([OsStr::new("convert"), old.as_os_str(), OsStr::new("-o"), new.as_os_str()]).ok();
    let serve = crate::common::thaw_cmd().arg("serve").arg(&new).arg(&dir).stdin(std::process::Stdio::null()).output().unwrap();
    assert!(!serve.status.success());
    let msg = String::from_utf8_lossy(&serve.stderr);
    assert!(msg.contains("thaw upgrade") && msg.contains("--to"), "{msg}");

    // Onto an archive with other chunks: the partly hydrated stub cannot
    // move, and nothing changes.
    let other = scratch.join("other.tar.zst");
    thaw([OsStr::new("convert"), old.as_os_str(), OsStr::new("-o"), other.as_os_str(), OsStr::new("--piece-size"), OsStr::new("64K")]).ok();
    thaw([OsStr::new("upgrade"), dir.as_os_str(), OsStr::new("--to"), other.as_os_str()])
        .fails_with(&["big: partly hydrated", "nothing was changed"]);
    assert_eq!(stage_info(&dir)["format_version"], 1);

    let r = thaw([OsStr::new("upgrade"), dir.as_os_str(), OsStr::new("--to"), new.as_os_str()]).ok();
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(text.contains("stubs moved") && !text.contains(" 0 stubs moved"), "{text}");
    assert_eq!(stage_info(&dir)["format_version"], 2);
    // Again: nothing left to move.
    let r = thaw([OsStr::new("upgrade"), dir.as_os_str(), OsStr::new("--to"), new.as_os_str()]).ok();
    assert!(String::from_utf8_lossy(&r.stdout).contains("0 stubs moved"));
    let served = Served::start(&new, &dir, &[]);
    drop_caches();
    assert_same_tree(&src, &dir, Compare::ALL);
    served.stop();
}
