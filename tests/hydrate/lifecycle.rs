//! Daemon lifecycle: crash and restart, clean stop, `thaw run`, status,
//! hydrate, verify, and an archive that cannot deliver.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::FileExt;

use crate::common::{data, thaw, Rng};
use crate::served::{is_mount_point, wait_for, Setup};

fn many_files(src: &std::path::Path) {
    for i in 0..40u64 {
        let d = src.join(format!("d{}", i % 5));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i}")), data(100 + i, 50_000 + (i as usize) * 37_000)).unwrap();
    }
}

#[test]
fn sigkill_mid_workload_then_restart_finishes_and_verifies() {
    let s = Setup::new("crash", "64K", many_files);
    let served = s.serve(&[]);
    let mut r = Rng(5);
    for i in 0..20u64 {
        let p = s.dir.join(format!("d{}/f{i}", i % 5));
        let f = fs::File::open(&p).unwrap();
        let mut buf = vec![0u8; 10_000];
        let off = r.below(40_000);
        f.read_exact_at(&mut buf, off).unwrap();
    }
    served.kill();
    // The guard takes DIR away: nobody can read holes as zeros.
    wait_for("the guard to unmount DIR", || !is_mount_point(&s.dir));
    assert!(fs::read_dir(&s.dir).unwrap().next().is_none(), "DIR still shows stubs after the daemon died");
    let again = s.serve(&[]);
    // Already hydrated ranges are not decoded again.
    let before = s.stats()["frames_decoded"].as_u64().unwrap();
    assert_eq!(before, 0);
    for i in 0..40u64 {
        let rel = format!("d{}/f{i}", i % 5);
        assert!(fs::read(s.dir.join(&rel)).unwrap() == s.src_file(&rel), "{rel} differs after restart");
    }
    again.stop();
    let v = thaw([OsStr::new("verify"), s.dir.as_os_str()]).ok();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(text.contains(" 0 untouched stubs") && text.contains(" 0 problem(s)"), "{text}");
}

#[test]
fn a_restart_does_not_decode_what_is_in_place() {
    let s = Setup::new("resume", "64K", |src| fs::write(src.join("f"), data(61, 2 << 20)).unwrap());
    let served = s.serve(&[]);
    let f = fs::File::open(s.dir.join("f")).unwrap();
    let mut buf = vec![0u8; 300_000];
    f.read_exact_at(&mut buf, 100_000).unwrap();
    drop(f);
    served.stop();
    let first = s.stats()["frames_decoded"].as_u64().unwrap();
    assert!(first >= 5);
    let again = s.serve(&[]);
    let f = fs::File::open(s.dir.join("f")).unwrap();
    f.read_exact_at(&mut buf, 100_000).unwrap();
    assert!(buf[..] == s.src_file("f")[100_000..400_000]);
    drop(f);
    again.stop();
    assert_eq!(s.stats()["frames_decoded"], 0, "the restarted daemon decoded frames already in place");
}

#[test]
fn dir_is_empty_when_not_served_and_after_a_clean_stop() {
    let s = Setup::new("empty", "64K", many_files);
    assert!(fs::read_dir(&s.dir).unwrap().next().is_none(), "populate must not expose stubs unserved");
    let served = s.serve(&[]);
    assert!(s.dir.join("d0/f0").exists());
    served.stop();
    assert!(!is_mount_point(&s.dir));
    assert!(fs::read_dir(&s.dir).unwrap().next().is_none());
    let st = s.status();
    assert_eq!(st["served"], false);
    assert_eq!(st["files_total"], 40);
}

#[test]
fn run_serves_a_command_and_returns_its_status() {
    let s = Setup::new("run", "64K", many_files);
    let script = format!("cat {0}/d1/f1 {0}/d2/f2 > /dev/null && exit 7", s.dir.display());
    let r = thaw([
        OsStr::new("run"),
        s.archive.as_os_str(),
        s.dir.as_os_str(),
        OsStr::new("--"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new(&script),
    ]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(!is_mount_point(&s.dir));
    let st = s.status();
    assert_eq!(st["files_complete"], 2, "{st}");
    assert_eq!(st["files_untouched"], 38, "{st}");
}

#[test]
fn run_applies_the_cache_budget() {
    // `thaw run` shares its archive with the daemon thread; the budget used
    // to be set through Arc::get_mut, which does nothing on a shared Arc.
    let s = Setup::new("runcache", "64K", many_files);
    let r = thaw([
        OsStr::new("run"),
        OsStr::new("--cache"),
        OsStr::new("3M"),
        s.archive.as_os_str(),
        s.dir.as_os_str(),
        OsStr::new("--"),
        OsStr::new("true"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(s.stats()["cache_budget"], 3 << 20);
}

#[test]
fn hydrate_fills_everything_offline_and_served() {
    let s = Setup::new("hydrate", "64K", many_files);
    // Offline: only two paths.
    thaw([OsStr::new("hydrate"), s.dir.as_os_str(), OsStr::new("d0"), OsStr::new("d1/f1")]).ok();
    let st = s.status();
    assert_eq!(st["files_complete"], 9, "{st}"); // d0 has 8 files, plus d1/f1
                                                 // Served: the rest, through the daemon.
    let served = s.serve(&[]);
    thaw([OsStr::new("hydrate"), s.dir.as_os_str()]).ok();
    let st = s.status();
    assert_eq!(st["files_complete"], 40, "{st}");
    assert_eq!(st["bytes_hydrated"], st["bytes_total"], "{st}");
    served.stop();
    let v = thaw([OsStr::new("verify"), s.dir.as_os_str()]).ok();
    assert!(String::from_utf8_lossy(&v.stdout).contains("0 problem(s)"));
}

#[test]
fn verify_finds_a_stub_whose_bytes_were_changed_behind_thaw() {
    let s = Setup::new("verify", "64K", many_files);
    let served = s.serve(&[]);
    let _ = fs::read(s.dir.join("d3/f3")).unwrap();
    served.stop();
    // Corrupt the hydrated file through the stage, the way a bad disk would:
    // the bytes change, the mtime does not (a changed mtime means a user's
    // write, which verify reports apart).
    let stage = s.dir.parent().unwrap().join(".lazy.thaw/tree/d3/f3");
    let mtime = fs::metadata(&stage).unwrap().modified().unwrap();
    let f = fs::OpenOptions::new().write(true).open(&stage).unwrap();
    f.write_all_at(b"XX", 10).unwrap();
    f.set_modified(mtime).unwrap();
    let r = thaw([OsStr::new("verify"), s.dir.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("d3/f3") && r.stderr.contains("differs"), "{}", r.stderr);
}

#[test]
fn a_damaged_archive_fails_the_read_with_eio_not_zeros() {
    let s = Setup::new("eio", "64K", |src| fs::write(src.join("f"), data(71, 1 << 20)).unwrap());
    // Flip a byte inside the second data frame of the archive.
    let a = thaw::archive::Archive::open(&s.archive).unwrap();
    let off = a.seek_table().compressed_offset(3) + 20;
    drop(a);
    let bytes = fs::read(&s.archive).unwrap();
    let mut bad = bytes.clone();
    bad[off as usize] ^= 0x55;
    fs::write(&s.archive, &bad).unwrap();
    let served = s.serve(&[]);
    let f = fs::File::open(s.dir.join("f")).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let err = f.read_exact_at(&mut buf, 0).expect_err("reading damaged data must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // The frames before the damage still read fine.
    let mut head = vec![0u8; 4096];
    f.read_exact_at(&mut head, 0).unwrap();
    assert!(head[..] == s.src_file("f")[..4096]);
    drop(f);
    let log = served.stop();
    assert!(log.contains("checksum") || log.contains("zstd"), "the daemon must log the cause: {log}");
    assert!(log.contains("/f"), "the daemon must log the path: {log}");
}

#[test]
fn a_second_daemon_on_the_same_dir_is_refused() {
    let s = Setup::new("twice", "64K", many_files);
    let served = s.serve(&[]);
    let r = thaw([OsStr::new("serve"), s.archive.as_os_str(), s.dir.as_os_str()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("another thaw daemon"), "{}", r.stderr);
    served.stop();
}

#[test]
fn files_renamed_or_deleted_while_served_still_hydrate() {
    let s = Setup::new("rename", "64K", many_files);
    let served = s.serve(&[]);
    // Renamed before any read: the marker travels with the inode.
    fs::rename(s.dir.join("d0/f0"), s.dir.join("d1/renamed")).unwrap();
    assert!(fs::read(s.dir.join("d1/renamed")).unwrap() == s.src_file("d0/f0"));
    // Deleted while open: the open file still reads the archive bytes.
    let f = fs::File::open(s.dir.join("d2/f2")).unwrap();
    fs::remove_file(s.dir.join("d2/f2")).unwrap();
    let mut buf = vec![0u8; 60_000];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf[..] == s.src_file("d2/f2")[..60_000]);
    // A file users create in the tree is left alone.
    fs::write(s.dir.join("mine"), b"user file").unwrap();
    assert_eq!(fs::read(s.dir.join("mine")).unwrap(), b"user file");
    drop(f);
    let log = served.stop();
    assert!(!log.contains("error"), "{log}");
    // Status and verify count what came from the archive, not what users
    // added ("mine"; and a complete file renamed to a path the archive does
    // not have counts as added too, since its marker is gone).
    let st = s.status();
    assert_eq!(st["files_added"], 2, "{st}");
    assert_eq!(st["files_total"], 38, "{st}");
    let v = thaw([OsStr::new("verify"), s.dir.as_os_str()]).ok();
    assert!(String::from_utf8_lossy(&v.stdout).contains("2 added files skipped, 0 problem(s)"));
}

#[test]
fn run_kills_the_command_when_thaw_dies() {
    let s = Setup::new("runkill", "64K", many_files);
    let started = s.scratch.join("started");
    let script = format!("touch {}; exec sleep 31.4159", started.display());
    let mut child = crate::common::thaw_cmd()
        .args([
            OsStr::new("run"),
            s.archive.as_os_str(),
            s.dir.as_os_str(),
            OsStr::new("--"),
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&script),
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the command to start", || started.exists());
    let sleeping =
        || std::process::Command::new("pgrep").args(["-f", "sleep 31.4159"]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(sleeping(), "the command is not running");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the command to be killed with thaw", || !sleeping());
    wait_for("the guard to unmount DIR", || !is_mount_point(&s.dir));
}

#[test]
fn populate_refuses_a_dir_that_has_files_or_was_populated() {
    let s = Setup::new("nonempty", "64K", many_files);
    // Already populated.
    thaw([OsStr::new("populate"), s.archive.as_os_str(), s.dir.as_os_str()]).fails_with(&["already populated"]);
    // A directory with files of its own would have them hidden by the mount.
    let other = s.scratch.join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("precious"), b"mine").unwrap();
    thaw([OsStr::new("populate"), s.archive.as_os_str(), other.as_os_str()]).fails_with(&["not empty"]);
    assert_eq!(fs::read(other.join("precious")).unwrap(), b"mine");
}

/// `thaw CMD ARGS…` under a limit of `nofile` open files.
fn thaw_with_fd_limit(nofile: u32, args: &[&OsStr]) -> std::process::Output {
    std::process::Command::new("prlimit")
        .arg(format!("--nofile={nofile}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_thaw"))
        .args(args)
        .output()
        .expect("prlimit (util-linux)")
}

#[test]
fn populate_and_extract_trees_with_more_directories_than_the_fd_limit() {
    // 1,200 directories (two levels) with a file each, under a limit of 200
    // open files: the directories kept open must not grow with the tree.
    let s = Setup::new("many-dirs", "64K", |src| {
        for i in 0..40u64 {
            for j in 0..30u64 {
                let d = src.join(format!("a{i:02}/b{j:02}"));
                fs::create_dir_all(&d).unwrap();
                fs::write(d.join("f"), data(i * 100 + j, 100 + j as usize)).unwrap();
            }
        }
    });
    let dir = s.scratch.join("limited");
    let out = thaw_with_fd_limit(200, &[OsStr::new("populate"), s.archive.as_os_str(), dir.as_os_str()]);
    assert!(out.status.success(), "populate under 200 fds: {}", String::from_utf8_lossy(&out.stderr));
    let out = thaw_with_fd_limit(200, &[OsStr::new("hydrate"), dir.as_os_str()]);
    assert!(out.status.success(), "hydrate under 200 fds: {}", String::from_utf8_lossy(&out.stderr));
    let ext = s.scratch.join("extracted");
    let out = thaw_with_fd_limit(200, &[OsStr::new("extract"), s.archive.as_os_str(), ext.as_os_str()]);
    assert!(out.status.success(), "extract under 200 fds: {}", String::from_utf8_lossy(&out.stderr));
    // Every file arrived, with its bytes, in both.
    let v = thaw_with_fd_limit(200, &[OsStr::new("verify"), dir.as_os_str()]);
    assert!(v.status.success(), "verify of the hydrated tree: {}", String::from_utf8_lossy(&v.stderr));
    for (i, j) in [(0u64, 0u64), (17, 29), (39, 3)] {
        let rel = format!("a{i:02}/b{j:02}/f");
        let want = s.src_file(&rel);
        assert_eq!(fs::read(ext.join(&rel)).unwrap(), want, "extract: {rel}");
    }
    let n = walkdir_count(&ext);
    assert_eq!(n, 40 + 40 * 30 * 2, "extracted tree has {n} entries");
}

/// Entries below `d` (directories and files), counted without following symlinks.
fn walkdir_count(d: &std::path::Path) -> usize {
    fs::read_dir(d)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            1 + if e.file_type().unwrap().is_dir() { walkdir_count(&e.path()) } else { 0 }
        })
        .sum()
}
