//! Hydrating ahead of a reader that walks a directory in listing order
//! (issue #10: the cold first read of a whole tree), against the real kernel.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use crate::common::{data, q, sh, sha256, thaw};
use crate::served::Setup;

const PER_DIR: u64 = 60;

/// Three directories of 60 small files each.
fn tree(src: &Path) {
    for (k, d) in ["a", "b", "c"].iter().enumerate() {
        fs::create_dir(src.join(d)).unwrap();
        for i in 0..PER_DIR {
            fs::write(src.join(format!("{d}/f{i:02}")), data(k as u64 * 100 + i, 3000 + i as usize * 97)).unwrap();
        }
    }
}

fn verify_clean(s: &Setup) {
    let v = thaw([OsStr::new("verify"), s.dir.as_os_str()]);
    let text = String::from_utf8_lossy(&v.stdout).into_owned();
    assert_eq!(v.code, 0, "verify: {text} {}", v.stderr);
    assert!(text.contains(" 0 problem(s)"), "{text}");
}

#[test]
fn a_reader_walking_the_tree_finds_files_hydrated_ahead_and_planted_ones_untouched() {
    let s = Setup::new("walk", "64K", tree);
    let passwd = sha256(&fs::read("/etc/passwd").unwrap());
    let served = s.serve(&["--walk-ahead"]);
    // Planted in a directory that gets walked, while served: a user's file
    // and a symlink to a file root can write.
    fs::write(s.dir.join("b/zz-user"), b"mine").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.dir.join("b/zz-link")).unwrap();
    sh(&format!("cd {} && find . -type f -print0 | xargs -0 cat > /dev/null", q(&s.dir)));
    // Every file was read whole and right.
    for d in ["a", "b", "c"] {
        for i in 0..PER_DIR {
            let rel = format!("{d}/f{i:02}");
            assert!(fs::read(s.dir.join(&rel)).unwrap() == s.src_file(&rel), "{rel} differs");
        }
    }
    assert_eq!(fs::read(s.dir.join("b/zz-user")).unwrap(), b"mine");
    served.stop();
    let stats = s.stats();
    // After the first 3 files of each directory, the other 57 can be
    // hydrated ahead (the reader may overtake the background now and then,
    // and then fills the file itself).
    let walked = stats["files_walked_ahead"].as_u64().unwrap();
    assert!(walked >= 20, "only {walked} files hydrated ahead: {stats}");
    assert_eq!(sha256(&fs::read("/etc/passwd").unwrap()), passwd, "a planted symlink's target was written");
    assert_eq!(s.status()["files_complete"], 3 * PER_DIR);
    verify_clean(&s);
}

#[test]
fn files_read_out_of_listing_order_are_never_hydrated_ahead() {
    let s = Setup::new("walk-no", "64K", tree);
    let served = s.serve(&["--walk-ahead"]);
    // Twenty files of c, in reverse listing order (`ls -f` lists in readdir
    // order), then ten of a with a jump after each.
    sh(&format!("cd {}/c && ls -f | grep '^f' | tac | head -20 | xargs cat > /dev/null", q(&s.dir)));
    sh(&format!("cd {}/a && ls -f | grep '^f' | awk 'NR % 6 == 1' | head -10 | xargs cat > /dev/null", q(&s.dir)));
    served.stop();
    let stats = s.stats();
    assert_eq!(stats["files_walked_ahead"], 0, "{stats}");
    assert_eq!(s.status()["files_complete"], 30);
}
