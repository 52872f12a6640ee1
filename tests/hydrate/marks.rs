//! What carries the daemon's watch (`--marks`): inode marks on the stubs
//! leave every other file under `DIR` out of fsnotify; the mount mark is the
//! fallback for trees with very many stubs.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::data;
use crate::helper::{self, Helper};
use crate::served::Setup;
use crate::support::drop_caches;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn three_files(src: &Path) {
    fs::write(src.join("a"), data(951, 300_000)).unwrap();
    fs::write(src.join("b"), data(952, 300_000)).unwrap();
    fs::write(src.join("c"), data(953, 2 << 20)).unwrap();
}

/// The events the daemon has answered, from the statistics it saves each second.
fn events_after_a_save(s: &Setup) -> u64 {
    std::thread::sleep(Duration::from_millis(1300));
    s.stats()["events"].as_u64().expect("stats.json has events")
}

#[test]
fn under_inode_marks_only_stubs_raise_events() {
    for (marks, watched) in [("stubs", "stubs"), ("auto", "stubs"), ("mount", "mount")] {
        let s = Setup::new(&format!("marks-{marks}"), "64K", three_files);
        let served = s.serve(&["--marks", marks]);
        assert!(fs::read(s.dir.join("a")).unwrap() == s.src_file("a"), "{marks}: a");
        let before = events_after_a_save(&s);
        assert!(before > 0, "{marks}: reading a stub raised no event");
        // A build output, and a stub that is complete now: read them again and again.
        fs::write(s.dir.join("out.o"), data(954, 100_000)).unwrap();
        drop_caches();
        for _ in 0..20 {
            assert_eq!(fs::read(s.dir.join("out.o")).unwrap().len(), 100_000);
            assert!(fs::read(s.dir.join("a")).unwrap() == s.src_file("a"), "{marks}: a again");
        }
        let after = events_after_a_save(&s);
        let stats = s.stats();
        assert_eq!(stats["watched"], watched, "{marks}: {stats}");
        if watched == "stubs" {
            assert_eq!(stats["stubs_marked"], 3, "{marks}: every stub gets an inode mark: {stats}");
            assert_eq!(after, before, "{marks}: a new file or a completed stub raised events under inode marks");
        } else {
            assert_eq!(stats["stubs_marked"], 0, "{marks}: {stats}");
            assert!(after > before, "{marks}: under the mount mark, a new file's first open must raise an event");
        }
        // Stubs still hydrate either way.
        assert!(fs::read(s.dir.join("c")).unwrap() == s.src_file("c"), "{marks}: c");
        served.stop();
    }
}

#[test]
fn auto_falls_back_to_the_mount_mark_above_its_limit() {
    let s = Setup::new("marks-limit", "64K", three_files);
    let served = s.serve(&["--marks-limit", "2"]);
    assert!(fs::read(s.dir.join("b")).unwrap() == s.src_file("b"));
    let stats = {
        events_after_a_save(&s);
        s.stats()
    };
    assert_eq!(stats["watched"], "mount", "3 stubs, limit 2: {stats}");
    // No inode mark survived the fallback: an inode mark left on a stub would
    // make its completed file raise events through the stage too.
    assert!(fs::read(s.dir.join("a")).unwrap() == s.src_file("a"));
    assert!(fs::read(s.dir.join("c")).unwrap() == s.src_file("c"));
    let log = served.stop();
    assert!(log.contains("watching the mount"), "the fallback must be logged: {log}");
}

/// With inode marks the stubs raise events whichever way they are reached,
/// so a dead daemon's guard (which lives while old readers hold stubs) also
/// hears about a restarted daemon's readers. It must leave them to the new
/// daemon and fail only reads through its own, old mount.
#[test]
fn a_restart_while_an_old_reader_holds_a_stub_serves_new_readers() {
    let s = Setup::new("marks-restart", "64K", three_files);
    let out = helper::out_dir(s.scratch.path());
    let served = s.serve(&[]);
    let c = s.dir.join("c");
    let mut old = Helper::spawn("hold", &[c.to_str().unwrap(), "pread", "1048576", "65536", out.join("old").to_str().unwrap()], false);
    assert_eq!(old.expect("", SECS(30)).as_deref(), Some("held"), "the old reader could not open c");
    served.stop(); // a clean stop: the guard stays for the old reader
    let again = s.serve(&[]);
    for name in ["b", "c"] {
        let got = helper::pread(&s.dir.join(name), 0, 300_000, false).unwrap_or_else(|e| panic!("{name} after a restart: errno {e}"));
        assert!(got == s.src_file(name)[..300_000], "{name} after a restart");
    }
    // The old reader's file is the same inode, hydrated by now only where the
    // new daemon was asked; the old reader reads through the old mount.
    old.say("read");
    let r = old.finish(SECS(10));
    match r.result.as_deref() {
        Some("err 5") => {}
        Some("ok 65536") => {
            let want = &s.src_file("c")[1 << 20..(1 << 20) + 65536];
            assert!(fs::read(out.join("old")).unwrap() == want, "the old reader got wrong bytes");
        }
        other => panic!("the old reader must get EIO or the right bytes, never zeros: {other:?} {r:?}"),
    }
    again.stop();
}

/// Nice values of the threads of `pid` whose name starts with `prefix`.
fn thread_nice(pid: u32, prefix: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let stat = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
        if !head.split_once(" (").is_some_and(|(_, comm)| comm.starts_with(prefix)) {
            continue;
        }
        // After "pid (comm) ": state is field 3, nice is field 19.
        out.push(rest.split(' ').nth(16).unwrap().parse().unwrap());
    }
    out
}

#[test]
fn the_daemons_threads_run_at_the_nice_value_asked() {
    for (args, want) in [(&[][..], -5), (&["--nice", "3"][..], 3)] {
        let s = Setup::new("marks-nice", "64K", three_files);
        let served = s.serve(args);
        let pid = served.child.as_ref().unwrap().id();
        let nice = thread_nice(pid, "thaw-event");
        assert!(!nice.is_empty(), "no thaw-event threads in /proc/{pid}/task");
        assert!(nice.iter().all(|&n| n == want), "{args:?}: worker nice values {nice:?}, want {want}");
        served.stop();
    }
}

#[test]
fn a_one_chunk_stub_is_filled_whole_at_open() {
    use std::os::unix::fs::MetadataExt;
    for (policy, filled) in [("copiers", true), ("none", false)] {
        let s = Setup::new("marks-open", "1M", three_files);
        let served = s.serve(&["--hydrate-on-open", policy]);
        let before = events_after_a_save(&s);
        // Open without reading (a, 300 kB, is one chunk of a 1 MiB frame).
        drop(fs::File::open(s.dir.join("a")).unwrap());
        let staged = crate::safety::stage_tree(&s.dir).join("a");
        let blocks = fs::metadata(&staged).unwrap().blocks();
        assert_eq!(blocks > 0, filled, "--hydrate-on-open {policy}: after an open, a has {blocks} blocks");
        // The read that follows needs no event when the open filled the file.
        assert!(fs::read(s.dir.join("a")).unwrap() == s.src_file("a"), "{policy}: a");
        let events = events_after_a_save(&s) - before;
        if filled {
            assert_eq!(events, 1, "{policy}: open + read of a one-chunk stub must cost one event (the open)");
        } else {
            assert!(events >= 2, "{policy}: the read must raise its own event: {events}");
        }
        served.stop();
    }
}
