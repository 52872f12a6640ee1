//! Access profiles: `--record`, `--prefetch`, `pack --order`,
//! `dehydrate --keep`, against the real kernel.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{data, thaw};
use crate::served::Setup;

/// A profile's header and its (path, offset, len) lines.
fn load(p: &Path) -> (serde_json::Value, Vec<(String, u64, u64)>) {
    let dec = zstd::stream::read::Decoder::new(fs::File::open(p).unwrap()).unwrap();
    let mut lines = std::io::BufReader::new(dec).lines().map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap());
    let header = lines.next().expect("a header line");
    let ranges =
        lines.map(|v| (v["path"].as_str().unwrap().to_string(), v["offset"].as_u64().unwrap(), v["len"].as_u64().unwrap())).collect();
    (header, ranges)
}

/// Writes a profile by hand: whole files (or the given ranges), in order.
pub fn write_profile(p: &Path, id: &str, ranges: &[(&str, u64, u64)]) {
    let mut enc = zstd::stream::write::Encoder::new(fs::File::create(p).unwrap(), 3).unwrap();
    writeln!(enc, "{}", serde_json::json!({"thaw_profile": 1, "archive_id": id})).unwrap();
    for (i, (path, off, len)) in ranges.iter().enumerate() {
        writeln!(enc, "{}", serde_json::json!({"path": path, "entry": i, "offset": off, "len": len})).unwrap();
    }
    enc.finish().unwrap();
}

pub fn archive_id(archive: &Path) -> String {
    let out = thaw([OsStr::new("info"), archive.as_os_str(), OsStr::new("--json")]).ok();
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"].as_str().unwrap().to_string()
}

/// The paths the daemon's debug log says it prefetched, in order.
fn prefetched(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("prefetch ").nth(1).and_then(|r| r.split(' ').next()).map(str::to_string))
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn files(n: u64, len: usize) -> impl FnOnce(&Path) {
    move |src: &Path| {
        for i in 0..n {
            fs::write(src.join(format!("f{i:02}")), data(500 + i, len)).unwrap();
        }
    }
}

#[test]
fn run_records_first_accesses_and_prefetch_replays_them_in_order() {
    let s = Setup::new("record", "64K", files(12, 300_000));
    let prof = s.scratch.join("job.profile");
    let d = s.dir.display().to_string();
    let script = format!("cat {d}/f07 {d}/f03 >/dev/null && head -c 1000 {d}/f09 >/dev/null && cat {d}/f07 >/dev/null");
    thaw([
        OsStr::new("run"),
        OsStr::new("--record"),
        prof.as_os_str(),
        s.archive.as_os_str(),
        s.dir.as_os_str(),
        OsStr::new("--"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new(&script),
    ])
    .ok();
    let (header, ranges) = load(&prof);
    assert_eq!(header["thaw_profile"], 1);
    assert_eq!(header["archive_id"], archive_id(&s.archive).as_str());
    let paths: Vec<&str> = ranges.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(paths, ["f07", "f03", "f09"], "{ranges:?}");
    assert_eq!((ranges[0].1, ranges[0].2), (0, 300_000), "f07 read whole: one merged range");
    assert!(ranges[2].1 == 0 && ranges[2].2 <= 65_536, "head -c 1000 of f09: its first chunk only: {ranges:?}");
    // Empty the tree, then serve it with the profile: exactly those ranges come back, in order.
    thaw([OsStr::new("dehydrate"), s.dir.as_os_str()]).ok();
    let served = s.serve(&["-vv", "--prefetch", prof.to_str().unwrap(), "--prefetch-threads", "1"]);
    wait_until("the prefetch", Duration::from_secs(30), || {
        prefetched(&served.stderr_log).len() == 3 && s.stats()["prefetch_ranges_done"] == 3
    });
    assert_eq!(prefetched(&served.stderr_log), ["f07", "f03", "f09"]);
    let st = s.status();
    assert_eq!((st["files_complete"].as_u64(), st["files_partial"].as_u64()), (Some(2), Some(1)), "{st}");
    let mut buf = vec![0u8; 1000];
    fs::File::open(s.dir.join("f09")).unwrap().read_exact_at(&mut buf, 0).unwrap();
    assert!(buf[..] == s.src_file("f09")[..1000]);
    served.stop();
    assert_eq!(s.stats()["events_waited"], 0, "a reader of prefetched data waited for a decode");
}

#[test]
fn readers_jump_the_prefetch_queue() {
    let s = Setup::new("prefirst", "256K", files(40, 2 << 20));
    let prof = s.scratch.join("all.profile");
    let names: Vec<String> = (0..40).map(|i| format!("f{i:02}")).collect();
    let ranges: Vec<(&str, u64, u64)> = names.iter().map(|n| (n.as_str(), 0, 2 << 20)).collect();
    write_profile(&prof, &archive_id(&s.archive), &ranges);
    let served = s.serve(&["-vv", "--prefetch", prof.to_str().unwrap(), "--prefetch-threads", "1"]);
    // The last file of the profile, read scattered: each read needs a decode.
    let f = fs::File::open(s.dir.join("f39")).unwrap();
    let want = s.src_file("f39");
    let mut buf = vec![0u8; 4096];
    for k in 0..8u64 {
        let off = k * (256 << 10) + 1000;
        f.read_exact_at(&mut buf, off).unwrap();
        assert!(buf[..] == want[off as usize..off as usize + 4096], "f39 at {off}");
    }
    let done_when_read = prefetched(&served.stderr_log).len();
    assert!(done_when_read < 39, "the reader of f39 waited for the prefetch to get there ({done_when_read} files prefetched first)");
    wait_until("the prefetch", Duration::from_secs(60), || s.stats()["prefetch_ranges_done"] == 40);
    served.stop();
    // Whether the prefetch ever saw a reader's event pending (and counted a
    // yield) depends on timing: the reader's events may all be answered
    // between two prefetch chunks. The check that readers come first is the
    // one above: the reader of the last file did not wait for the prefetch.
    eprintln!("prefetch yields: {}", s.stats()["prefetch_yields"]);
    assert_eq!(s.status()["files_complete"], 40);
}

#[test]
fn prefetch_refuses_another_archives_profile_and_skips_unknown_paths() {
    let s = Setup::new("prefbad", "64K", files(3, 100_000));
    let prof = s.scratch.join("other.profile");
    write_profile(&prof, "00112233445566778899aabbccddeeff", &[("f00", 0, 100_000)]);
    let out = thaw([OsStr::new("serve"), OsStr::new("--prefetch"), prof.as_os_str(), s.archive.as_os_str(), s.dir.as_os_str()]);
    let out = out.fails_with(&["profile of archive 00112233445566778899aabbccddeeff"]);
    assert!(out.stderr.contains(&archive_id(&s.archive)), "{}", out.stderr);
    write_profile(&prof, &archive_id(&s.archive), &[("nope/x", 0, 10), ("f01", 0, 100_000), ("f99", 0, 5)]);
    let served = s.serve(&["--prefetch", prof.to_str().unwrap()]);
    wait_until("the prefetch", Duration::from_secs(30), || s.stats()["prefetch_ranges_done"] == 1);
    served.stop();
    assert_eq!(s.stats()["prefetch_ranges_skipped"], 2);
    assert_eq!(s.status()["files_complete"], 1);
}

#[test]
fn pack_order_puts_profiled_files_first_and_a_profiled_job_decodes_fewer_frames() {
    let scratch = crate::support::scratch_dir("packorder");
    let src = scratch.join("src");
    for i in 0..120u64 {
        let d = src.join(format!("d{}", i % 3));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("f{i:02}")), data(700 + i, 30_000)).unwrap();
    }
    let job: Vec<String> = [5u64, 100, 17, 63, 41, 2, 118, 86].iter().map(|i| format!("d{}/f{i:02}", i % 3)).collect();
    let prof = scratch.join("job.profile");
    let plain = scratch.join("plain.tar.zst");
    crate::common::pack(&src, &plain, "256K");
    let mut ranges: Vec<(&str, u64, u64)> = job.iter().map(|p| (p.as_str(), 0, 30_000)).collect();
    ranges.insert(3, ("gone/away", 0, 10));
    write_profile(&prof, &archive_id(&plain), &ranges);
    let ordered = scratch.join("ordered.tar.zst");
    let reprof = scratch.join("ordered.profile");
    let out = thaw([
        OsStr::new("pack"),
        src.as_os_str(),
        OsStr::new("-o"),
        ordered.as_os_str(),
        OsStr::new("--frame-size"),
        OsStr::new("256K"),
        OsStr::new("--order"),
        prof.as_os_str(),
        OsStr::new("--profile-out"),
        reprof.as_os_str(),
    ])
    .ok();
    let said = &out.stderr;
    assert!(said.contains("8 ranges (1 of paths it has not, dropped)"), "{said}");
    // --profile-out: the same ranges, in order, as a profile of the new archive.
    let (header, kept) = load(&reprof);
    assert_eq!(header["archive_id"].as_str().unwrap(), archive_id(&ordered));
    assert_ne!(archive_id(&ordered), archive_id(&plain));
    assert_eq!(kept, job.iter().map(|p| (p.clone(), 0, 30_000)).collect::<Vec<_>>());
    // Its entry numbers are the new index's (the profile's entries were 0..8).
    let dec = zstd::stream::read::Decoder::new(fs::File::open(&reprof).unwrap()).unwrap();
    let entries: Vec<u64> = std::io::BufReader::new(dec)
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap()["entry"].as_u64().unwrap())
        .collect();
    let ls = thaw([OsStr::new("ls"), ordered.as_os_str()]).ok();
    let index: Vec<String> = String::from_utf8(ls.stdout).unwrap().lines().map(|l| l.trim_end_matches('/').to_string()).collect();
    for (p, n) in job.iter().zip(&entries) {
        assert_eq!(&index[*n as usize], p, "entry {n} of the new archive");
    }
    // The tar stream's order (stock tar lists members as they come; `thaw ls`
    // of a format 2 archive lists its sorted index).
    let out = std::process::Command::new("tar").arg("-I").arg("zstd").arg("-tf").arg(&ordered).output().unwrap();
    assert!(out.status.success(), "tar -tf {}", ordered.display());
    let ls = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = ls.lines().map(|l| l.trim_end_matches('/')).collect();
    assert_eq!(&listed[..3], ["d0", "d1", "d2"], "{ls}");
    assert_eq!(listed[3..11], job.iter().map(String::as_str).collect::<Vec<_>>()[..], "{ls}");
    assert_eq!(listed.len(), 123);
    let mut frames = Vec::new();
    for (name, archive) in [("p", &plain), ("o", &ordered)] {
        let dir = scratch.join(name);
        thaw([OsStr::new("populate"), archive.as_os_str(), dir.as_os_str()]).ok();
        let served = crate::served::Served::start(archive, &dir, &["--readahead", "0"]);
        for p in &job {
            assert!(fs::read(dir.join(p)).unwrap() == fs::read(src.join(p)).unwrap(), "{p}");
        }
        served.stop();
        let stats = fs::read(scratch.join(format!(".{name}.thaw/stats.json"))).unwrap();
        frames.push(serde_json::from_slice::<serde_json::Value>(&stats).unwrap()["frames_decoded"].as_u64().unwrap());
    }
    eprintln!("frames decoded by the profiled job: unordered {}, ordered {}", frames[0], frames[1]);
    assert!(frames[1] * 10 <= frames[0] * 3, "ordered archive decoded {} frames, unordered {}", frames[1], frames[0]);
}

#[test]
fn dehydrate_keep_spares_the_profiled_files() {
    let s = Setup::new("keep", "64K", files(6, 100_000));
    let prof = s.scratch.join("keep.profile");
    write_profile(&prof, &archive_id(&s.archive), &[("f01", 0, 100_000), ("f04", 0, 10)]);
    let served = s.serve(&[]);
    for i in 0..6 {
        let _ = fs::read(s.dir.join(format!("f{i:02}"))).unwrap();
    }
    let out = thaw([OsStr::new("dehydrate"), s.dir.as_os_str(), OsStr::new("--keep"), prof.as_os_str()]).ok();
    assert!(out.stderr.contains("dehydrated 4 files") && out.stderr.contains("2 in the profile"), "{}", out.stderr);
    served.stop();
    let st = s.status();
    assert_eq!((st["files_complete"].as_u64(), st["files_untouched"].as_u64()), (Some(2), Some(4)), "{st}");
}
