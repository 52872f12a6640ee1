//! What readers see through a served tree: the original bytes and metadata,
//! however they read.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use crate::common::{assert_same_tree, data, every_type_tree, Compare, Rng};
use crate::served::Setup;

#[test]
fn served_tree_equals_the_original_reading_every_file() {
    let s = Setup::new("diff", "64K", |src| every_type_tree(src, false));
    let served = s.serve(&[]);
    // Contents, modes, owners, mtimes (ns), xattrs, symlinks, hard links.
    assert_same_tree(&s.src, &s.dir, Compare::ALL);
    // Stubs that were read whole are plain files now.
    let st = s.status();
    assert_eq!(st["files_partial"], 0, "{st}");
    assert_eq!(st["files_untouched"], 0, "{st}");
    assert_eq!(st["bytes_hydrated"], st["bytes_total"], "{st}");
    // Also with stock diff -r (contents and types).
    let out = std::process::Command::new("diff").arg("-r").arg("--no-dereference").arg(&s.src).arg(&s.dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let real: Vec<&str> = text.lines().filter(|l| !l.contains("is a fifo while")).collect();
    assert!(real.is_empty(), "diff -r found differences:\n{}", real.join("\n"));
    served.stop();
}

#[test]
fn random_preads_of_a_large_stub_match_the_original() {
    let s = Setup::new("pread", "1M", |src| fs::write(src.join("big"), data(11, 24 << 20)).unwrap());
    let want = s.src_file("big");
    let served = s.serve(&[]);
    let f = fs::File::open(s.dir.join("big")).unwrap();
    let mut r = Rng(7);
    for _ in 0..300 {
        let off = r.below(want.len() as u64 + 10);
        let len = 1 + r.below(200_000) as usize;
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, off).unwrap();
        let end = (off as usize + n).min(want.len());
        assert_eq!(n, end.saturating_sub(off as usize), "short read at {off}");
        assert!(buf[..n] == want[off as usize..end], "bytes differ in [{off}, {end})");
    }
    served.stop();
}

/// The seed's mmap check: a known pattern validated by reads and through mmap.
#[test]
fn mmap_of_a_stub_sees_the_pattern() {
    let pattern: Vec<u8> = (0..(9u32 << 20)).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let s = Setup::new("mmap", "1M", |src| {
        fs::write(src.join("pattern"), &pattern).unwrap();
        fs::write(src.join("pattern2"), &pattern).unwrap();
    });
    let served = s.serve(&[]);
    let f = fs::File::open(s.dir.join("pattern")).unwrap();
    // SAFETY: the file is not modified while mapped; only this test uses it.
    let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    assert_eq!(map.len(), pattern.len());
    assert!(map[..] == pattern[..], "mmap of an untouched stub differs from the pattern");
    // A mapping of a middle range of another stub.
    let f2 = fs::File::open(s.dir.join("pattern2")).unwrap();
    // SAFETY: as above.
    let part = unsafe { memmap2::MmapOptions::new().offset(3 << 20).len(2 << 20).map(&f2) }.unwrap();
    assert!(part[..] == pattern[3 << 20..5 << 20]);
    let mut buf = vec![0u8; 1 << 20];
    f2.read_exact_at(&mut buf, 7 << 20).unwrap();
    assert!(buf[..] == pattern[7 << 20..8 << 20]);
    served.stop();
}

#[test]
fn a_binary_that_is_still_a_stub_runs() {
    let s = Setup::new("exec", "64K", |src| {
        fs::create_dir(src.join("bin")).unwrap();
        fs::copy("/usr/bin/sort", src.join("bin/sort")).unwrap();
    });
    let served = s.serve(&[]);
    let st = s.status();
    assert_eq!(st["files_untouched"], 1, "{st}");
    let mut child = std::process::Command::new(s.dir.join("bin/sort"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("exec a stub");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"pear\napple\nfig\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"apple\nfig\npear\n");
    served.stop();
}

/// `cp` (SEEK_DATA on a sparse-looking file) and `tar --sparse` of untouched
/// stubs must copy the archive bytes, not holes.
#[test]
fn cp_and_tar_sparse_of_untouched_stubs_copy_the_data() {
    let s = Setup::new("cp", "64K", |src| {
        fs::write(src.join("one"), data(21, 3 << 20)).unwrap();
        fs::write(src.join("two"), data(22, 700_000)).unwrap();
    });
    let served = s.serve(&[]);
    let out = s.scratch.join("copied");
    let st = std::process::Command::new("cp").arg(s.dir.join("one")).arg(&out).status().unwrap();
    assert!(st.success());
    assert!(fs::read(&out).unwrap() == s.src_file("one"), "cp copied something other than the archive bytes");
    let tarball = s.scratch.join("t.tar");
    let st = std::process::Command::new("tar").arg("--sparse").arg("-cf").arg(&tarball).arg("-C").arg(&s.dir).arg("two").status().unwrap();
    assert!(st.success());
    let x = s.scratch.join("x");
    fs::create_dir(&x).unwrap();
    let st = std::process::Command::new("tar").arg("-xf").arg(&tarball).arg("-C").arg(&x).status().unwrap();
    assert!(st.success());
    assert!(fs::read(x.join("two")).unwrap() == s.src_file("two"), "tar --sparse archived holes");
    served.stop();
}

#[test]
fn sixty_four_threads_on_one_stub_decode_each_frame_once() {
    let s = Setup::new("threads", "1M", |src| fs::write(src.join("shared"), data(31, 16 << 20)).unwrap());
    let want = Arc::new(s.src_file("shared"));
    let served = s.serve(&[]);
    let path = s.dir.join("shared");
    let threads: Vec<_> = (0..64)
        .map(|t| {
            let (path, want) = (path.clone(), want.clone());
            std::thread::spawn(move || {
                let f = fs::File::open(&path).unwrap();
                let mut r = Rng(1000 + t);
                let mut buf = vec![0u8; 256 * 1024];
                for _ in 0..20 {
                    let off = r.below(want.len() as u64 - buf.len() as u64);
                    f.read_exact_at(&mut buf, off).unwrap();
                    assert!(buf[..] == want[off as usize..off as usize + buf.len()], "thread {t}: wrong bytes at {off}");
                }
                let mut all = Vec::new();
                use std::io::Read;
                fs::File::open(&path).unwrap().read_to_end(&mut all).unwrap();
                assert!(all[..] == want[..], "thread {t}: whole-file read differs");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    served.stop();
    let stats = s.stats();
    // 16 MiB in 1 MiB frames (+ the frame with the header and the tar end).
    let frames = stats["frames_decoded"].as_u64().unwrap();
    assert!(frames <= 17, "frames decoded {frames} times for a 16-frame file: {stats}");
    assert!(frames >= 16, "{stats}");
    assert_eq!(stats["events_denied"], 0);
}

/// A sequential reader that takes a moment per chunk (as a program
/// processing what it reads does) finds the chunks ahead of it in place:
/// few of its reads wait for a decode, against every one with readahead off.
#[test]
fn a_sequential_reader_finds_the_chunks_ahead_of_it_in_place() {
    let s = Setup::new("seq", "1M", |src| fs::write(src.join("big"), data(51, 24 << 20)).unwrap());
    let want = s.src_file("big");
    let read = |extra: &[&str]| {
        let served = s.serve(extra);
        let f = fs::File::open(s.dir.join("big")).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        for off in (0..want.len()).step_by(buf.len()) {
            let n = f.read_at(&mut buf, off as u64).unwrap();
            assert!(buf[..n] == want[off..off + n], "bytes differ at {off}");
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        drop(f);
        served.stop();
        let stats = s.stats();
        let frames = stats["frames_decoded"].as_u64().unwrap();
        assert!(frames <= 25, "a frame was decoded twice: {stats}");
        assert_eq!(stats["chunks_written"], 24, "the file was not read from stubs: {stats}");
        stats["events_waited"].as_u64().unwrap()
    };
    let without = read(&["--readahead", "0"]);
    assert!(without >= 24, "with readahead off, each chunk waited: {without}");
    crate::common::thaw([OsStr::new("dehydrate"), s.dir.as_os_str()]).ok();
    let with = read(&[]);
    assert!(with <= 4, "{with} of 24 reads waited for a decode with readahead on");
}

fn du(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_4k_read_of_a_large_file_costs_about_one_frame_of_disk() {
    let s = Setup::new("disk", "1M", |src| fs::write(src.join("large"), data(41, 64 << 20)).unwrap());
    let served = s.serve(&[]);
    let f = fs::File::open(s.dir.join("large")).unwrap();
    let mut buf = [0u8; 4096];
    f.read_exact_at(&mut buf, 40 << 20).unwrap();
    assert!(buf[..] == s.src_file("large")[40 << 20..(40 << 20) + 4096]);
    let used = du(&s.dir.join("large"));
    assert!(used >= 4096, "nothing written?");
    assert!(used <= 2 << 20, "a 4 KiB read used {used} bytes of disk");
    let st = s.status();
    assert_eq!(st["files_partial"], 1, "{st}");
    assert!(st["bytes_hydrated"].as_u64().unwrap() <= 2 << 20, "{st}");
    served.stop();
    // One frame (1 MiB) was decoded for it: the amplification is measured.
    let st = s.status();
    let decoded = st["bytes_decoded"].as_u64().unwrap();
    assert!((4096..=2 << 20).contains(&decoded) && st["frames_decoded"].as_u64() >= Some(1), "{st}");
}

#[test]
fn writes_and_truncate_keep_user_bytes_and_archive_bytes_apart() {
    let s = Setup::new("write", "64K", |src| {
        fs::write(src.join("w"), data(51, 1 << 20)).unwrap();
        fs::write(src.join("t"), data(52, 1 << 20)).unwrap();
    });
    let orig_w = s.src_file("w");
    let orig_t = s.src_file("t");
    let served = s.serve(&[]);
    let w = s.dir.join("w");
    {
        let f = fs::OpenOptions::new().read(true).write(true).open(&w).unwrap();
        let mut head = [0u8; 4096];
        f.read_exact_at(&mut head, 0).unwrap(); // partly hydrated
        f.write_all_at(b"USER DATA", 300_000).unwrap(); // into a chunk not yet present
    }
    let mut want = orig_w.clone();
    want[300_000..300_009].copy_from_slice(b"USER DATA");
    assert!(fs::read(&w).unwrap() == want, "after a write into a stub");
    // Truncate an untouched stub, then extend it again: the tail is the user's (zeros).
    let t = s.dir.join("t");
    {
        let f = fs::OpenOptions::new().write(true).open(&t).unwrap();
        f.set_len(100_000).unwrap();
        f.set_len(200_000).unwrap();
    }
    let mut want_t = orig_t[..100_000].to_vec();
    want_t.resize(200_000, 0);
    assert!(fs::read(&t).unwrap() == want_t, "after truncate and extend");
    served.stop();
    // A restarted daemon must not put archive bytes over user bytes.
    let again = s.serve(&[]);
    assert!(fs::read(&w).unwrap() == want, "after a restart");
    assert!(fs::read(&t).unwrap() == want_t, "truncated file after a restart");
    again.stop();
    let _ = OsStr::new("");
}
