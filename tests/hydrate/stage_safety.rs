//! Issue #7: thaw runs as root beside directories other users can write.
//! Neither the stage, nor `DIR`, nor anything in the stub tree is reached
//! through a symlink a user planted; stubs users wrote to are not reported as
//! corruption; trees from thaw 0.1 are upgraded without trusting their
//! forgeable markers. Every attack is made by the user nobody.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::{data, listing, pack, q, thaw, thaw_cmd, Run};
use crate::served::{is_mount_point, Served};
use crate::support::{as_nobody, scratch_dir, ScratchDir};
use thaw::tree::marker::{Marker, LEGACY_MARKER_XATTR, MARKER_XATTR};

const PRECIOUS: &[u8] = b"root's own file\n";

/// A scratch dir with a packed source tree (`a`, its hard link `a2`, and
/// `open/`, mode 0777, holding `b` and `w` (0666)), a root-owned file
/// `precious`, and `pub/`, the directory DIR and its stage go in (mode
/// `pub_mode`: 1777 like /tmp, or 0777).
struct Field {
    scratch: ScratchDir,
    src: PathBuf,
    archive: PathBuf,
    pub_dir: PathBuf,
    precious: PathBuf,
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn field(name: &str, pub_mode: u32) -> Field {
    let scratch = scratch_dir(name);
    chmod(scratch.path(), 0o755);
    let src = scratch.join("src");
    fs::create_dir_all(src.join("open")).unwrap();
    fs::write(src.join("a"), data(1, 200_000)).unwrap();
    fs::hard_link(src.join("a"), src.join("a2")).unwrap();
    fs::write(src.join("open/b"), data(2, 150_000)).unwrap();
    fs::write(src.join("open/w"), data(3, 300_000)).unwrap();
    chmod(&src.join("open/w"), 0o666);
    chmod(&src.join("open"), 0o777);
    let archive = scratch.join("a.tar.zst");
    pack(&src, &archive, "64K");
    let pub_dir = scratch.join("pub");
    fs::create_dir(&pub_dir).unwrap();
    chmod(&pub_dir, pub_mode);
    let precious = scratch.join("precious");
    fs::write(&precious, PRECIOUS).unwrap();
    Field { scratch, src, archive, pub_dir, precious }
}

impl Field {
    fn populate(&self, dir: &Path) -> Run {
        thaw([OsStr::new("populate"), self.archive.as_os_str(), dir.as_os_str()])
    }

    fn assert_precious_untouched(&self) {
        let m = fs::symlink_metadata(&self.precious).unwrap();
        assert!(m.file_type().is_file() && m.uid() == 0, "precious was replaced: {m:?}");
        assert_eq!(fs::read(&self.precious).unwrap(), PRECIOUS, "thaw wrote through a planted symlink");
    }
}

fn stage_of(dir: &Path) -> PathBuf {
    dir.parent().unwrap().join(format!(".{}.thaw", dir.file_name().unwrap().to_string_lossy()))
}

/// Runs thaw, failing the test if it has not ended within 20 s (a
/// planted fifo opened by mistake would block it; a refused serve that
/// served anyway would never end).
fn bounded<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let child = thaw_cmd().args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = rustix::process::Pid::from_child(&child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => {
            let out = out.unwrap();
            Run { code: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
        }
        Err(_) => {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
            panic!("thaw {shown:?} did not end within 20 s");
        }
    }
}

fn status_json(dir: &Path) -> serde_json::Value {
    let out = bounded(&[OsStr::new("status"), dir.as_os_str(), OsStr::new("--json")]).ok();
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    rustix::fs::lgetxattr(p, name, &mut buf).ok().map(|n| buf[..n].to_vec())
}

fn set_xattr(p: &Path, name: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, name, v, rustix::fs::XattrFlags::empty()).unwrap_or_else(|e| panic!("setxattr {}: {e}", p.display()));
}

fn marker(p: &Path) -> Marker {
    Marker::parse(&xattr(p, MARKER_XATTR).unwrap_or_else(|| panic!("{} has no marker", p.display()))).unwrap()
}

fn stdout(r: &Run) -> String {
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[test]
fn a_stage_planted_as_a_symlink_is_refused_and_its_target_untouched() {
    let f = field("plant", 0o1777);
    let victim = f.pub_dir.join("victim");
    let evil = f.pub_dir.join("evil");
    // The attack from the issue: the stage is a symlink to the user's
    // directory, which holds a symlink where the info file's temp goes.
    as_nobody(&format!(
        "mkdir {e}; ln -s {p} {e}/archive.json.tmp; ln -s {p} {e}/archive.json; ln -s {e} {s}",
        e = q(&evil),
        p = q(&f.precious),
        s = q(&stage_of(&victim))
    ));
    f.populate(&victim).fails_with(&[".victim.thaw", "symlink"]);
    f.assert_precious_untouched();
    assert_eq!(listing(&evil), ["archive.json", "archive.json.tmp"], "thaw created something in the user's directory");
    // The stage is still the user's symlink, and nothing was built anywhere.
    assert!(fs::symlink_metadata(stage_of(&victim)).unwrap().file_type().is_symlink());
    assert!(!is_mount_point(&victim) && listing(&victim).is_empty());
    // Everything else that reads a stage refuses it too.
    for cmd in ["status", "verify", "hydrate", "upgrade"] {
        bounded(&[OsStr::new(cmd), victim.as_os_str()]).fails_with(&["symlink"]);
    }
    f.assert_precious_untouched();
}

#[test]
fn a_stage_made_by_another_user_or_open_to_others_is_refused() {
    let f = field("owner", 0o1777);
    // A real directory, but nobody's (even with mode 0700).
    let theirs = f.pub_dir.join("theirs");
    as_nobody(&format!("mkdir -m 700 {}", q(&stage_of(&theirs))));
    f.populate(&theirs).fails_with(&[".theirs.thaw", "owned by uid 65534"]);
    // Root's, but 0755.
    let loose = f.pub_dir.join("loose");
    fs::create_dir(stage_of(&loose)).unwrap();
    chmod(&stage_of(&loose), 0o755);
    f.populate(&loose).fails_with(&[".loose.thaw", "mode 0755", "0700"]);
    assert!(listing(&stage_of(&loose)).is_empty(), "populate wrote into a stage it refused");
    // A fresh stage is root's and 0700.
    let fresh = f.pub_dir.join("fresh");
    f.populate(&fresh).ok();
    let m = fs::symlink_metadata(stage_of(&fresh)).unwrap();
    assert!(m.is_dir() && m.uid() == 0 && m.mode() & 0o7777 == 0o700, "{:o}", m.mode());
    // A populated stage loosened later is refused by serve, status, verify and hydrate.
    chmod(&stage_of(&fresh), 0o755);
    for cmd in ["serve", "status", "verify", "hydrate"] {
        let mut args = vec![OsStr::new(cmd)];
        if cmd == "serve" {
            args.push(f.archive.as_os_str());
        }
        args.push(fresh.as_os_str());
        bounded(&args).fails_with(&["mode 0755"]);
    }
    assert!(!is_mount_point(&fresh));
    chmod(&stage_of(&fresh), 0o700);
    rustix::fs::chown(stage_of(&fresh), Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
    bounded(&[OsStr::new("status"), fresh.as_os_str()]).fails_with(&["owned by uid 65534"]);
}

#[test]
fn dir_as_a_symlink_is_refused_by_populate_and_serve() {
    // Not sticky: users may rename what others made in it.
    let f = field("dirlink", 0o777);
    let mine = f.pub_dir.join("mine");
    let link = f.pub_dir.join("link");
    as_nobody(&format!("mkdir {m}; ln -s mine {l}", m = q(&mine), l = q(&link)));
    f.populate(&link).fails_with(&["link", "symlink"]);
    assert!(fs::symlink_metadata(stage_of(&link)).is_err(), "populate made a stage for a symlinked DIR");
    assert!(listing(&mine).is_empty());
    // A tree populated properly, whose DIR a user then swaps for a symlink.
    let lazy = f.pub_dir.join("lazy");
    f.populate(&lazy).ok();
    as_nobody(&format!("mv {l} {l}.old; ln -s mine {l}", l = q(&lazy)));
    bounded(&[OsStr::new("serve"), f.archive.as_os_str(), lazy.as_os_str()]).fails_with(&["lazy", "symlink"]);
    assert!(!is_mount_point(&mine), "serve mounted the tree where the symlink points");
    assert!(listing(&mine).is_empty());
    bounded(&[OsStr::new("status"), lazy.as_os_str()]).fails_with(&["symlink"]);
}

#[test]
fn temp_file_symlinks_inside_a_root_stage_are_not_followed() {
    let f = field("tmplink", 0o1777);
    let dir = f.pub_dir.join("v");
    let stage = stage_of(&dir);
    fs::create_dir(&stage).unwrap();
    chmod(&stage, 0o700);
    for name in ["archive.json.tmp", "stats.json.tmp", ".archive.json.tmp"] {
        std::os::unix::fs::symlink(&f.precious, stage.join(name)).unwrap();
    }
    f.populate(&dir).ok();
    f.assert_precious_untouched();
    let info: serde_json::Value = serde_json::from_slice(&fs::read(stage.join("archive.json")).unwrap()).unwrap();
    assert_eq!(info["stubs_version"], 2);
    assert!(fs::symlink_metadata(stage.join("archive.json")).unwrap().is_file());
    // A stage file replaced by a symlink is refused, not read through.
    fs::rename(stage.join("archive.json"), f.scratch.join("info.json")).unwrap();
    std::os::unix::fs::symlink(f.scratch.join("info.json"), stage.join("archive.json")).unwrap();
    bounded(&[OsStr::new("status"), dir.as_os_str()]).fails_with(&["archive.json", "symlink"]);
}

#[test]
fn extract_refuses_a_symlinked_target() {
    let f = field("extract", 0o1777);
    let mine = f.pub_dir.join("mine");
    let out = f.pub_dir.join("out");
    as_nobody(&format!("mkdir {m}; ln -s {m} {o}", m = q(&mine), o = q(&out)));
    thaw([OsStr::new("extract"), f.archive.as_os_str(), out.as_os_str()]).fails_with(&["out", "symlink"]);
    assert!(listing(&mine).is_empty(), "extract wrote into the user's directory");
    // Missing parents the admin named are made; the target is made too.
    let deep = f.pub_dir.join("new/deeper");
    thaw([OsStr::new("extract"), f.archive.as_os_str(), deep.as_os_str()]).ok();
    assert_eq!(fs::read(deep.join("open/b")).unwrap(), fs::read(f.src.join("open/b")).unwrap());
}

#[test]
fn symlinks_swapped_into_the_served_tree_are_never_opened() {
    let f = field("swap", 0o1777);
    let lazy = f.pub_dir.join("lazy");
    f.populate(&lazy).ok();
    let fifo = f.scratch.join("fifo");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_bits_truncate(0o666), 0).unwrap();
    let served = Served::start(&f.archive, &lazy, &[]);
    // In the world-writable `open/`: a stub replaced by a symlink to a fifo
    // (opening it would block thaw), and symlinks to a root file and to /etc.
    let open = lazy.join("open");
    as_nobody(&format!(
        "rm {o}/b; ln -s {fifo} {o}/b; ln -s {p} {o}/p; ln -s /etc {o}/etc",
        o = q(&open),
        fifo = q(&fifo),
        p = q(&f.precious)
    ));
    // A stub the walk finds, then swapped for a symlink before it is opened:
    // the open refuses it, through the stage and through DIR.
    let stage = thaw::tree::stage::Stage::open(&lazy).unwrap();
    let w = stage.tree_files().unwrap().into_iter().find(|t| t.rel == b"open/w").expect("open/w is in the walk");
    as_nobody(&format!("mv {o}/w {o}/w.old; ln -s {p} {o}/w", o = q(&open), p = q(&f.precious)));
    use rustix::fs::OFlags;
    assert!(thaw::tree::stage::open_tree_file(stage.tree_fd().unwrap(), &w, OFlags::RDWR).unwrap().is_none());
    let root = stage.served_dir().unwrap();
    assert!(thaw::tree::stage::open_tree_file(std::os::fd::AsFd::as_fd(&root), &w, OFlags::RDONLY).unwrap().is_none());
    drop((root, stage));
    // Served: hydrate, status and verify go around every symlink.
    bounded(&[OsStr::new("hydrate"), lazy.as_os_str()]).ok();
    let st = status_json(&lazy);
    // a (= a2); open/w.old is complete and at a path the archive lacks: added.
    assert_eq!(
        (st["files_total"].as_u64(), st["files_complete"].as_u64(), st["files_added"].as_u64()),
        (Some(1), Some(1), Some(1)),
        "{st}"
    );
    let v = bounded(&[OsStr::new("verify"), lazy.as_os_str()]).ok();
    assert!(stdout(&v).contains("0 problem(s)"), "{}", stdout(&v));
    assert_eq!(fs::read(open.join("w.old")).unwrap(), fs::read(f.src.join("open/w")).unwrap());
    served.stop();
    // Offline, through the stage.
    bounded(&[OsStr::new("hydrate"), lazy.as_os_str()]).ok();
    bounded(&[OsStr::new("verify"), lazy.as_os_str()]).ok();
    bounded(&[OsStr::new("status"), lazy.as_os_str()]).ok();
    f.assert_precious_untouched();
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn verify_reports_a_stub_a_user_modified_and_exits_zero() {
    let f = field("modified", 0o1777);
    let lazy = f.pub_dir.join("lazy");
    f.populate(&lazy).ok();
    let served = Served::start(&f.archive, &lazy, &[]);
    // nobody writes two bytes into the world-writable stub; the rest stays a hole.
    as_nobody(&format!("printf XX | dd of={} bs=1 seek=10 conv=notrunc status=none", q(&lazy.join("open/w"))));
    let _ = fs::read(lazy.join("a")).unwrap();
    served.stop();
    // The daemon sets `modified` before letting a user write; until that
    // lands everywhere, set it here as the daemon would.
    let stub = stage_of(&lazy).join("tree/open/w");
    let mut m = marker(&stub);
    if !m.modified {
        m.modified = true;
        let file = fs::File::open(&stub).unwrap();
        thaw::tree::marker::write(std::os::fd::AsFd::as_fd(&file), &m).unwrap();
    }
    assert_eq!(&fs::read(&stub).unwrap()[10..12], b"XX");
    let v = bounded(&[OsStr::new("verify"), lazy.as_os_str()]);
    assert_eq!(v.code, 0, "{}{}", stdout(&v), v.stderr);
    let out = stdout(&v);
    assert!(out.contains("modified: 1, not compared") && out.contains("not compared: open/w"), "{out}");
    assert!(out.contains("0 problem(s)"), "{out}");
    let st = status_json(&lazy);
    assert_eq!(st["files_modified"], 1, "{st}");
    // Offline hydrate fills the holes around the user's bytes, never over them.
    bounded(&[OsStr::new("hydrate"), lazy.as_os_str()]).ok();
    let got = fs::read(&stub).unwrap();
    let want = fs::read(f.src.join("open/w")).unwrap();
    assert_eq!(&got[10..12], b"XX");
    assert!(got[..10] == want[..10] && got[12..] == want[12..], "hydrate changed bytes it should not have");
}

#[test]
fn upgrade_accepts_genuine_0_1_stubs_and_refuses_forged_markers() {
    let f = field("upgrade", 0o1777);
    let lazy = f.pub_dir.join("lazy");
    f.populate(&lazy).ok();
    let stage = stage_of(&lazy);
    let tree = stage.join("tree");
    // Turn it into a thaw 0.1 tree: `user.thaw = thaw1 <id> <entry>`, no
    // `trusted.thaw`, no `stubs_version`.
    let mut entry = std::collections::HashMap::new();
    let mut id = String::new();
    for rel in ["a", "open/b", "open/w"] {
        let p = tree.join(rel);
        let m = marker(&p);
        set_xattr(&p, LEGACY_MARKER_XATTR, format!("thaw1 {} {}", m.id, m.entry).as_bytes());
        rustix::fs::lremovexattr(&p, MARKER_XATTR).unwrap();
        entry.insert(rel, m.entry);
        id = m.id;
    }
    let mut info: serde_json::Value = serde_json::from_slice(&fs::read(stage.join("archive.json")).unwrap()).unwrap();
    info.as_object_mut().unwrap().remove("stubs_version");
    fs::write(stage.join("archive.json"), serde_json::to_vec(&info).unwrap()).unwrap();
    bounded(&[OsStr::new("serve"), f.archive.as_os_str(), lazy.as_os_str()]).fails_with(&["thaw upgrade"]);
    // nobody forges a 0.1 marker on a file of theirs, the size of open/b and
    // naming its entry; it ends up at open/b (as a user could while 0.1 served it).
    let forged = f.pub_dir.join("forged");
    as_nobody(&format!(
        "head -c 150000 /dev/zero > {p}; setfattr -n user.thaw -v 'thaw1 {id} {e}' {p}",
        p = q(&forged),
        e = entry["open/b"]
    ));
    fs::rename(&forged, tree.join("open/b")).unwrap();
    // A root-owned stub whose marker names another path's entry.
    set_xattr(&tree.join("open/w"), LEGACY_MARKER_XATTR, format!("thaw1 {id} {}", entry["a"]).as_bytes());
    let r = bounded(&[OsStr::new("upgrade"), lazy.as_os_str()]).ok();
    assert!(stdout(&r).contains("upgraded 1 stubs, refused 2"), "{}{}", stdout(&r), r.stderr);
    assert!(r.stderr.contains("open/b: owned by 65534:65534"), "{}", r.stderr);
    assert!(r.stderr.contains("open/w: names entry") && r.stderr.contains("not this path"), "{}", r.stderr);
    // Genuine: a trusted marker bound to its inode. Refused: no marker at all.
    let a = marker(&tree.join("a"));
    assert_eq!((a.entry, a.ino, a.modified), (entry["a"], fs::metadata(tree.join("a")).unwrap().ino(), false));
    for rel in ["a", "a2", "open/b", "open/w"] {
        assert_eq!(xattr(&tree.join(rel), LEGACY_MARKER_XATTR), None, "{rel} kept user.thaw");
    }
    for rel in ["open/b", "open/w"] {
        assert_eq!(xattr(&tree.join(rel), MARKER_XATTR), None, "{rel} got a marker");
    }
    let info: serde_json::Value = serde_json::from_slice(&fs::read(stage.join("archive.json")).unwrap()).unwrap();
    assert_eq!(info["stubs_version"], 2);
    // It serves now: the genuine stub hydrates, the forged file is an ordinary file.
    let served = Served::start(&f.archive, &lazy, &[]);
    assert!(fs::read(lazy.join("a2")).unwrap() == fs::read(f.src.join("a")).unwrap());
    assert!(fs::read(lazy.join("open/b")).unwrap().iter().all(|&b| b == 0));
    let log = served.stop();
    assert!(!log.contains("error"), "{log}");
    bounded(&[OsStr::new("upgrade"), lazy.as_os_str()]).ok();
    let again = bounded(&[OsStr::new("upgrade"), lazy.as_os_str()]).ok();
    assert!(stdout(&again).contains("already current"), "{}", stdout(&again));
}
