//! Archives served by nginx: the tree is exact, and requests are few.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{assert_same_tree, data, every_type_tree, pack, thaw, Compare};
use crate::served::Served;
use crate::support::scratch_dir;
use crate::util::{publish, replace, served_requests, stage_files, stats, transfer};

#[test]
fn tree_served_from_http_is_exact_and_populate_takes_one_request() {
    let s = scratch_dir("remote-tree");
    let src = s.join("src");
    fs::create_dir(&src).unwrap();
    every_type_tree(&src, false);
    let archive = s.join("a.tar.zst");
    pack(&src, &archive, "64K");
    let (url, uri) = publish(&archive, "tree");
    let dir = s.join("lazy");
    let run = thaw([OsStr::new("-v"), OsStr::new("populate"), OsStr::new(&url), dir.as_os_str()]).ok();
    // The index fits the tail read: opening is one request (the issue allows 2).
    let (requests, _) = transfer(&run.stderr);
    assert_eq!(requests, 1, "{}", run.stderr);
    assert_eq!(served_requests(&uri), 1, "nginx saw another count");
    let info = stage_files(&dir);
    assert!(info.contains("\"archive_version\": \"etag:"), "no version recorded: {info}");
    assert!(info.contains(&url), "{info}");

    let served = Served::start(Path::new(&url), &dir, &[]);
    assert_same_tree(&src, &dir, Compare::ALL);
    served.stop();
    let st = stats(&dir);
    let fetched = st["remote_requests"].as_u64().unwrap();
    assert!(fetched >= 1, "{st}");
    // thaw's own count is what the server saw: populate's one, then the serve's.
    assert_eq!(served_requests(&uri) as u64, 1 + fetched, "{st}");
    // Every frame at most once: no more bytes than the archive has.
    assert!(st["remote_bytes"].as_u64().unwrap() <= fs::metadata(&archive).unwrap().len(), "{st}");
    let status = thaw([OsStr::new("status"), dir.as_os_str(), OsStr::new("--json")]).ok();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["remote_requests"], st["remote_requests"], "{status}");
}

#[test]
fn populate_and_ls_of_an_index_larger_than_the_tail_read_take_two_requests() {
    let s = scratch_dir("remote-big-index");
    let src = s.join("src");
    for d in 0..40 {
        fs::create_dir_all(src.join(format!("directory-{d:02}"))).unwrap();
        for f in 0..300 {
            fs::write(src.join(format!("directory-{d:02}/file-{f:04}.txt")), data((d * 300 + f) as u64, 24)).unwrap();
        }
    }
    let archive = s.join("a.tar.zst");
    pack(&src, &archive, "1M");
    let info = thaw([OsStr::new("info"), OsStr::new("--json"), archive.as_os_str()]).ok();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let trailer = info["index_and_seek_table_bytes"].as_u64().unwrap();
    assert!(trailer > 64 * 1024, "the index must not fit the 64 KiB tail read: {trailer} B");
    let (url, uri) = publish(&archive, "big-index");
    let dir = s.join("lazy");
    let run = thaw([OsStr::new("-v"), OsStr::new("populate"), OsStr::new(&url), dir.as_os_str()]).ok();
    // The tail, then every index block in one request (the issue allows 2).
    let (requests, bytes) = transfer(&run.stderr);
    assert_eq!(requests, 2, "{}", run.stderr);
    assert_eq!(served_requests(&uri), 2, "nginx saw another count");
    assert!(bytes <= trailer + 64 * 1024, "{bytes} B fetched for a {trailer} B index: {}", run.stderr);
    assert_eq!(fs::read_dir(s.join(".lazy.thaw/tree/directory-07")).unwrap().count(), 300);
    // A listing streams the index, but asks for all of it at once.
    let (url, uri) = publish(&archive, "big-index-ls");
    let ls = thaw([OsStr::new("-v"), OsStr::new("ls"), OsStr::new(&url)]).ok();
    assert_eq!(String::from_utf8_lossy(&ls.stdout).lines().filter(|l| l.ends_with(".txt")).count(), 12_000);
    let (requests, _) = transfer(&ls.stderr);
    assert_eq!((requests, served_requests(&uri)), (2, 2), "{}", ls.stderr);
}

#[test]
fn serve_reads_the_index_populate_kept_and_fetches_only_data() {
    let s = scratch_dir("remote-kept-tail");
    let src = s.join("src");
    fs::create_dir(&src).unwrap();
    every_type_tree(&src, false);
    let archive = s.join("a.tar.zst");
    pack(&src, &archive, "64K");
    let (url, _) = publish(&archive, "kept-tail");
    let dir = s.join("lazy");
    thaw([OsStr::new("populate"), OsStr::new(&url), dir.as_os_str()]).ok();
    let kept = s.join(".lazy.thaw/archive-tail");
    let size = fs::metadata(&archive).unwrap().len();
    assert!(fs::read(&kept).unwrap()[..] == fs::read(&archive).unwrap()[(size - fs::metadata(&kept).unwrap().len()) as usize..]);
    // Serving and stopping without a read: one request of one byte (the version check).
    let served = Served::start(Path::new(&url), &dir, &[]);
    served.stop();
    let st = stats(&dir);
    assert_eq!((st["remote_requests"].as_u64(), st["remote_bytes"].as_u64()), (Some(1), Some(1)), "{st}");
    // A damaged index in the kept tail: serve opens the archive afresh, and the tree is exact.
    let info = thaw([OsStr::new("info"), OsStr::new("--json"), archive.as_os_str()]).ok();
    let trailer = serde_json::from_slice::<serde_json::Value>(&info.stdout).unwrap()["index_and_seek_table_bytes"].as_u64().unwrap();
    let mut bad = fs::read(&kept).unwrap();
    let n = bad.len();
    bad[n - trailer as usize / 2] ^= 0x55;
    fs::write(&kept, &bad).unwrap();
    let served = Served::start(Path::new(&url), &dir, &[]);
    assert_same_tree(&src, &dir, Compare::ALL);
    served.stop();
}

/// A source tree of `n` files of `size` bytes, packed with 1 MiB frames.
fn many_files(s: &Path, n: usize, size: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = s.join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..n {
        fs::write(src.join(format!("f{i:03}")), data(i as u64 + 1, size)).unwrap();
    }
    let archive = s.join("a.tar.zst");
    pack(&src, &archive, "1M");
    (src, archive)
}

#[test]
fn cat_of_one_file_takes_few_requests_and_ls_info_verify_extract_work() {
    let s = scratch_dir("remote-cat");
    let (src, archive) = many_files(s.path(), 40, 700_000);
    let (url, uri) = publish(&archive, "cat");
    let run = thaw([OsStr::new("-v"), OsStr::new("cat"), OsStr::new(&url), OsStr::new("f020")]).ok();
    assert_eq!(run.stdout, fs::read(src.join("f020")).unwrap());
    // v1: the tail (seek table + index), then the file's adjacent frames in
    // one request. (Format v2 must reach <= 3: tail, one index block, data.)
    let (requests, bytes) = transfer(&run.stderr);
    assert!(requests <= 2, "cat took {requests} requests: {}", run.stderr);
    assert_eq!(served_requests(&uri) as u64, requests);
    let tail = 256 * 1024;
    assert!(bytes <= tail + 2 * 1024 * 1024, "cat fetched {bytes} bytes");

    // A file of several frames: its adjacent frames come in one request.
    let big = s.join("big");
    fs::create_dir_all(big.join("src")).unwrap();
    fs::write(big.join("src/big"), data(77, 5 << 20)).unwrap();
    fs::write(big.join("src/later"), data(78, 3 << 20)).unwrap();
    pack(&big.join("src"), &big.join("a.tar.zst"), "1M");
    let (big_url, _) = publish(&big.join("a.tar.zst"), "cat-big");
    let run = thaw([OsStr::new("-v"), OsStr::new("cat"), OsStr::new(&big_url), OsStr::new("big")]).ok();
    assert!(run.stdout == fs::read(big.join("src/big")).unwrap(), "cat big: wrong bytes");
    assert_eq!(transfer(&run.stderr).0, 2, "cat of a 5-frame file: tail + one request; {}", run.stderr);

    let ls = thaw([OsStr::new("ls"), OsStr::new(&url)]).ok();
    assert_eq!(String::from_utf8_lossy(&ls.stdout).lines().filter(|l| l.starts_with('f')).count(), 40);
    let info = thaw([OsStr::new("info"), OsStr::new("--json"), OsStr::new(&url)]).ok();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["archive_bytes"], fs::metadata(&archive).unwrap().len());
    let verify = thaw([OsStr::new("-v"), OsStr::new("verify"), OsStr::new(&url)]).ok();
    assert!(String::from_utf8_lossy(&verify.stdout).contains("ok"), "{}", verify.stderr);
    // verify reads every frame and index block once, frames in large
    // requests (readahead): fewer requests than frames.
    let (requests, bytes) = transfer(&verify.stderr);
    assert!(bytes <= fs::metadata(&archive).unwrap().len(), "verify fetched {bytes}");
    let frames = info["frames"].as_u64().expect("info --json has frames");
    assert!(requests < frames, "verify of {frames} frames took {requests} requests");
    let out = s.join("out");
    thaw([OsStr::new("extract"), OsStr::new(&url), out.as_os_str()]).ok();
    assert_same_tree(&src, &out, Compare::ALL);
    // file:// is a local path.
    let file_url = format!("file://{}", archive.display());
    thaw([OsStr::new("cat"), OsStr::new(&file_url), OsStr::new("f001")]).ok();
}

#[test]
fn a_small_file_fetches_its_run_only_up_to_its_end() {
    // 80 files of 48 KiB in one 4 MiB run (format 2 defaults): the first
    // file needs the run's start, not all of it.
    let s = scratch_dir("remote-prefix");
    let src = s.join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..80u64 {
        fs::write(src.join(format!("f{i:02}")), data(300 + i, 48 << 10)).unwrap();
    }
    let archive = s.join("a.tar.zst");
    thaw([OsStr::new("pack"), src.as_os_str(), OsStr::new("-o"), archive.as_os_str()]).ok();
    let info = thaw([OsStr::new("info"), OsStr::new("--json"), archive.as_os_str()]).ok();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let size = fs::metadata(&archive).unwrap().len();
    let data_bytes = size - info["index_and_seek_table_bytes"].as_u64().unwrap();
    let (url, _) = publish(&archive, "prefix");
    let run = thaw([OsStr::new("-v"), OsStr::new("cat"), OsStr::new(&url), OsStr::new("f01")]).ok();
    assert!(run.stdout == fs::read(src.join("f01")).unwrap(), "cat f01: wrong bytes");
    let (requests, bytes) = transfer(&run.stderr);
    // The tail, then the start of the run: one request each.
    assert!(requests <= 2, "cat took {requests} requests: {}", run.stderr);
    let tail = 64 << 10;
    assert!(bytes <= tail + data_bytes / 4, "cat of the 2nd of 80 files fetched {bytes} of the run's {data_bytes} bytes (+ {tail} tail)");

    // Served: reading the first file fetches a prefix, a later one the rest as needed.
    let dir = s.join("lazy");
    thaw([OsStr::new("populate"), OsStr::new(&url), dir.as_os_str()]).ok();
    let served = Served::start(Path::new(&url), &dir, &[]);
    assert!(fs::read(dir.join("f00")).unwrap() == fs::read(src.join("f00")).unwrap());
    let first = stats_now(&served);
    assert!(fs::read(dir.join("f79")).unwrap() == fs::read(src.join("f79")).unwrap());
    served.stop();
    let st = stats(&dir);
    assert!(first <= data_bytes / 4, "reading f00 fetched {first} of {data_bytes}");
    assert!(st["remote_bytes"].as_u64().unwrap() <= data_bytes + tail, "{st}");
}

#[test]
fn a_profile_prefetch_asks_for_its_frames_in_a_few_requests() {
    // 60 files over several 256 KiB runs, the profile naming all of them in
    // archive order (as `pack --order` lays them out).
    let s = scratch_dir("remote-profile");
    let src = s.join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..60u64 {
        fs::write(src.join(format!("f{i:02}")), data(900 + i, 20_000)).unwrap();
    }
    let archive = s.join("a.tar.zst");
    let arg = |v: &str| OsStr::new(v).to_os_string();
    thaw([arg("pack"), src.clone().into(), arg("-o"), archive.clone().into(), arg("--frame-size"), arg("256K")]).ok();
    let info = thaw([OsStr::new("info"), OsStr::new("--json"), archive.as_os_str()]).ok();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert!(info["frames"].as_u64().unwrap() >= 5, "{info}");
    let prof = s.join("job.profile");
    let mut enc = zstd::stream::write::Encoder::new(fs::File::create(&prof).unwrap(), 3).unwrap();
    use std::io::Write;
    writeln!(enc, "{}", serde_json::json!({"thaw_profile": 1, "archive_id": info["id"]})).unwrap();
    for i in 0..60u64 {
        writeln!(enc, "{}", serde_json::json!({"path": format!("f{i:02}"), "entry": i, "offset": 0, "len": 20_000})).unwrap();
    }
    enc.finish().unwrap();
    let (url, _) = publish(&archive, "profile");
    let dir = s.join("lazy");
    thaw([OsStr::new("populate"), OsStr::new(&url), dir.as_os_str()]).ok();
    let served = Served::start(Path::new(&url), &dir, &[OsStr::new("--prefetch").to_str().unwrap(), prof.to_str().unwrap()]);
    crate::served::wait_for("the prefetch", || stats(&dir)["prefetch_ranges_done"] == 60);
    served.stop();
    let st = stats(&dir);
    // The opening request, then the profile's frames: adjacent ones merged.
    let requests = st["remote_requests"].as_u64().unwrap();
    assert!(requests <= 3, "a prefetch of 60 files in {} frames took {requests} requests: {st}", info["frames"]);
    assert!(st["remote_bytes"].as_u64().unwrap() <= fs::metadata(&archive).unwrap().len(), "{st}");
    for i in [0u64, 31, 59] {
        let rel = format!("f{i:02}");
        assert!(fs::read(s.join(".lazy.thaw/tree").join(&rel)).unwrap() == fs::read(src.join(&rel)).unwrap(), "{rel}");
    }
}

/// The bytes a running daemon has fetched so far (its `status --json`).
fn stats_now(served: &Served) -> u64 {
    let out = thaw([OsStr::new("status"), served.dir.as_os_str(), OsStr::new("--json")]).ok();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["remote_bytes"].as_u64().unwrap()
}

/// Reads a whole file through a served tree.
fn read_all(p: &Path) -> std::io::Result<Vec<u8>> {
    fs::read(p)
}

/// Reads `len` bytes at `off`.
fn pread(p: &Path, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    fs::File::open(p)?.read_exact_at(&mut buf, off)?;
    Ok(buf)
}

#[test]
fn after_a_restart_nothing_already_in_a_stub_is_fetched_again() {
    let s = scratch_dir("remote-restart");
    let src = s.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), data(1, 4 << 20)).unwrap();
    fs::write(src.join("b"), data(2, 4 << 20)).unwrap();
    let archive = s.join("a.tar.zst");
    pack(&src, &archive, "1M");
    let (url, _) = publish(&archive, "restart");
    let populate = |dir: &Path| {
        thaw([OsStr::new("populate"), OsStr::new(&url), dir.as_os_str()]).ok();
    };
    let opts = ["--readahead", "0"];
    // First serve: all of a, the first MiB of b.
    let dir = s.join("lazy");
    populate(&dir);
    let served = Served::start(Path::new(&url), &dir, &opts);
    assert_eq!(read_all(&dir.join("a")).unwrap(), fs::read(src.join("a")).unwrap());
    pread(&dir.join("b"), 0, 1 << 20).unwrap();
    served.stop();
    // Second serve: everything.
    let served = Served::start(Path::new(&url), &dir, &opts);
    assert_same_tree(&src, &dir, Compare::ALL);
    served.stop();
    let again = stats(&dir)["remote_bytes"].as_u64().unwrap();
    // Reference: a fresh tree that reads only the rest of b.
    let fresh = s.join("fresh");
    populate(&fresh);
    let served = Served::start(Path::new(&url), &fresh, &opts);
    pread(&fresh.join("b"), 1 << 20, 3 << 20).unwrap();
    served.stop();
    let rest_of_b = stats(&fresh)["remote_bytes"].as_u64().unwrap();
    assert!(again <= rest_of_b + 64 * 1024, "the restarted serve fetched {again} bytes; the rest of b alone takes {rest_of_b}");
}

#[test]
fn a_replaced_object_is_refused_and_readers_get_eio() {
    let s = scratch_dir("remote-replaced");
    let (src, archive) = many_files(s.path(), 12, 500_000);
    let (url, uri) = publish(&archive, "replaced");
    let dir = s.join("lazy");
    thaw([OsStr::new("populate"), OsStr::new(&url), dir.as_os_str()]).ok();
    let served = Served::start(Path::new(&url), &dir, &["--readahead", "0"]);
    assert_eq!(read_all(&dir.join("f000")).unwrap(), fs::read(src.join("f000")).unwrap());
    // Same bytes, new object (a new ETag): thaw reads only the version it pinned.
    let root = crate::servers::Nginx::shared().lock().unwrap().root.clone();
    replace(&root.join(uri.trim_start_matches('/')), &archive);
    let err = read_all(&dir.join("f006")).expect_err("read the replaced object");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let log = served.stop();
    assert!(log.contains("replaced") && log.contains(&url), "the log does not say so: {log}");
    // serve refuses to start on the replaced object.
    let run = thaw([OsStr::new("serve"), OsStr::new(&url), dir.as_os_str()]);
    run.fails_with(&["replaced", &url]);
}

#[test]
fn not_found_and_forbidden_fail_at_once_without_retries() {
    let (url, _) = {
        let n = crate::servers::Nginx::shared().lock().unwrap();
        (n.url("no-such-archive.tar.zst"), ())
    };
    let started = Instant::now();
    thaw([OsStr::new("info"), OsStr::new(&url)]).fails_with(&["not found", "404", &url]);
    assert!(started.elapsed() < Duration::from_secs(5), "404 took {:?}", started.elapsed());
    assert_eq!(served_requests("/no-such-archive.tar.zst"), 1, "a 404 was retried");
    let s = scratch_dir("remote-403");
    let (_, archive) = many_files(s.path(), 1, 1000);
    let (url, _) = publish(&archive, "forbidden/x");
    let started = Instant::now();
    thaw([OsStr::new("ls"), OsStr::new(&url)]).fails_with(&["access denied", "403"]);
    assert!(started.elapsed() < Duration::from_secs(5), "403 took {:?}", started.elapsed());
    let run = thaw([OsStr::new("ls"), OsStr::new("https://user:hunter2@127.0.0.1/a.tar.zst")]).fails_with(&["credentials"]);
    assert!(!run.stderr.contains("hunter2"), "the password shows: {}", run.stderr);
}
