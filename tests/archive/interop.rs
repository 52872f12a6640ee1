//! A thaw archive is a plain `.tar.zst`: stock GNU tar and zstd extract the
//! same tree as `thaw extract`, and every data frame decodes on its own.

use crate::common::*;
use std::ffi::OsStr;
use std::fs;
use thaw::archive::Archive;

#[test]
fn stock_tar_and_zstd_extract_the_same_tree() {
    let t = tmp("interop");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    // Format 2 with P = S, with pieces in longer runs, and format 1.
    let layouts: [&[&str]; 3] =
        [&["--frame-size", "64K"], &["--piece-size", "64K", "--run-size", "256K"], &["--format", "1", "--frame-size", "64K"]];
    for (i, opts) in layouts.iter().enumerate() {
        let a = t.path().join(format!("a{i}.tar.zst"));
        let mut args = vec![OsStr::new("pack"), src.as_os_str(), OsStr::new("-o"), a.as_os_str()];
        args.extend(opts.iter().map(OsStr::new));
        thaw(args).ok();
        stock_tools_agree(&src, &a, &t.path().join(format!("out{i}")));
    }
}

/// thaw extract gives `src`; stock tar and zstd give what thaw gives.
fn stock_tools_agree(src: &std::path::Path, a: &std::path::Path, work: &std::path::Path) {
    let mine = work.join("thaw");
    extract(a, &mine).ok();
    assert_same_tree(src, &mine, Compare::ALL);

    // tar -I zstd, with xattrs: everything but nothing more.
    let by_tar = work.join("tar");
    fs::create_dir_all(&by_tar).unwrap();
    sh(&format!("tar --xattrs --xattrs-include='user.*' -I zstd -xf {} -C {}", q(a), q(&by_tar)));
    assert_same_tree(&mine, &by_tar, Compare::ALL);

    // zstd -dc | tar x: contents, modes, mtimes (xattrs need --xattrs).
    let by_pipe = work.join("pipe");
    fs::create_dir_all(&by_pipe).unwrap();
    sh(&format!("zstd -q -dc {} | tar -xf - -C {}", q(a), q(&by_pipe)));
    assert_same_tree(&mine, &by_pipe, Compare { xattrs: false, ..Compare::ALL });

    // zstd itself accepts the whole file, skippable frames included.
    sh(&format!("zstd -q -t {}", q(a)));
}

#[test]
fn each_data_frame_is_an_independent_zstd_frame() {
    let t = tmp("frames");
    let src = t.path().join("src");
    every_type_tree(&src, false);
    let a = t.path().join("a.tar.zst");
    pack(&src, &a, "64K");
    let bytes = fs::read(&a).unwrap();
    let ar = Archive::open(&a).unwrap();
    let table = ar.seek_table();
    assert!(table.len() >= 4, "{} frames", table.len());
    let mut stream = Vec::new();
    for i in 0..table.len() {
        let off = table.compressed_offset(i) as usize;
        let f = table.frame(i);
        let one = &bytes[off..off + f.compressed as usize];
        let path = t.path().join(format!("frame{i}.zst"));
        fs::write(&path, one).unwrap();
        let out = std::process::Command::new("zstd").args(["-q", "-dc"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "zstd cannot decode frame {i} alone");
        assert_eq!(out.stdout.len(), f.decompressed as usize, "frame {i}");
        // The seek table checksum is the low 32 bits of XXH64 of the frame.
        assert_eq!(xxhash_rust::xxh64::xxh64(&out.stdout, 0) as u32, f.checksum, "frame {i}");
        stream.extend_from_slice(&out.stdout);
    }
    let whole = std::process::Command::new("zstd").args(["-q", "-dc"]).arg(&a).output().unwrap();
    assert!(whole.stdout == stream, "frames concatenated differ from `zstd -dc` of the archive");
    assert_eq!(stream.len() as u64, table.stream_len());
    // The stream ends with the tar end-of-archive marker.
    assert!(stream[stream.len() - 1024..].iter().all(|&b| b == 0));
}
