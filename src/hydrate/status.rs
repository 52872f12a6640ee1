//! `thaw status`, `thaw hydrate` and `thaw verify DIR`: look at (or fill) a
//! lazily restored tree through its stage, whether or not a daemon serves it.

use super::daemon::ServeStats;
use super::hydrator::{data_extents, Hydrator};
use super::Error;
use crate::archive::{Archive, EntryKind};
use crate::tree::stage::{open_tree_file, Stage, TreeFile, STATS, TREE};
use rayon::prelude::*;
use rustix::fs::OFlags;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `thaw status` reports about a tree (also printed as JSON).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Status {
    /// The tree's directory, as given.
    pub dir: PathBuf,
    /// The archive the stage was populated from.
    pub archive: PathBuf,
    /// That archive's id, as recorded in the stage.
    pub id: String,
    /// Whether the served tree is mounted over `DIR` right now.
    pub served: bool,
    /// Files of the archive in the tree, in any state.
    pub files_total: u64,
    /// Files with all their data (no marker left).
    pub files_complete: u64,
    /// Stubs with some data in place.
    pub files_partial: u64,
    /// Stubs with no data yet.
    pub files_untouched: u64,
    /// Files in the tree that did not come from the archive (build outputs...).
    pub files_added: u64,
    /// Stubs a user wrote to or truncated (also counted as partial or untouched).
    pub files_modified: u64,
    /// Data size of the archive's files.
    pub bytes_total: u64,
    /// Bytes of that data in place on disk.
    pub bytes_hydrated: u64,
    /// Disk blocks the whole tree takes, in bytes (added files included).
    pub disk_bytes: u64,
    /// Events the daemon answered, from its last `stats.json` (0 if none).
    pub events_served: u64,
    /// Frames the daemon decoded, from its last `stats.json`.
    pub frames_decoded: u64,
    /// Decompressed bytes the last serve decoded (its decode amplification
    /// is this over the bytes it wrote).
    pub bytes_decoded: u64,
    /// Chunks the daemon wrote into stubs, from its last `stats.json`.
    pub chunks_written: u64,
    /// Range requests the last serve sent to a remote archive.
    pub remote_requests: u64,
    /// Bytes the last serve received from a remote archive.
    pub remote_bytes: u64,
    /// Compressed bytes of the frames the last serve decoded.
    pub compressed_decoded: u64,
}

/// True if `f` is a complete file that came from the archive (not one a user added).
fn from_archive(archive: Option<&Archive>, f: &TreeFile) -> bool {
    f.marker.is_some()
        || archive.is_none_or(|a| a.lookup(&f.rel).ok().flatten().is_some_and(|e| matches!(e.kind, EntryKind::File | EntryKind::Hardlink)))
}

/// True if a user wrote to (or touched) a file of the archive: its marker
/// says so, or its mtime is not its entry's. thaw puts the entry's mtime back
/// after each of its own writes, and a user's write or truncate changes it
/// in the same inode update as the data, so it survives any crash.
fn user_modified(archive: Option<&Archive>, f: &TreeFile) -> bool {
    if f.marker.as_ref().is_some_and(|m| m.modified) {
        return true;
    }
    let Some(a) = archive else { return false };
    let entry = match &f.marker {
        Some(m) => a.entry(m.entry as u64).ok().flatten(),
        None => a.lookup(&f.rel).ok().flatten(),
    };
    entry.is_some_and(|e| (e.mtime, e.mtime_nsec) != f.mtime)
}

/// Opens a stub of the stage tree to read it; `None` if it changed since the walk.
fn open_stub(stage: &Stage, f: &TreeFile, flags: OFlags) -> Result<Option<File>, Error> {
    Ok(open_tree_file(stage.tree_fd()?, f, flags)?)
}

/// Counts the tree's files and bytes by state, reading only the stage (no
/// daemon needed); works without the archive, counting every file as its own.
pub fn status(dir: &Path) -> Result<Status, Error> {
    let stage = Stage::open(dir)?;
    let info = stage.info()?;
    // The index tells archive files from files users added; without it, all count.
    let archive = crate::archive::remote::open(&info.archive, info.archive_version.as_deref()).ok();
    // The whole index up front (format 2 reads blocks on demand otherwise).
    let archive = archive.filter(|a| a.index().is_ok());
    let mut s = Status { dir: dir.to_path_buf(), archive: info.archive, id: info.id, served: stage.is_served(), ..Default::default() };
    for f in stage.tree_files()? {
        s.disk_bytes += f.blocks * 512;
        if !from_archive(archive.as_ref(), &f) {
            s.files_added += 1;
            continue;
        }
        s.files_total += 1;
        s.bytes_total += f.size;
        let Some(_) = &f.marker else {
            s.files_modified += u64::from(user_modified(archive.as_ref(), &f));
            s.files_complete += 1;
            s.bytes_hydrated += f.size;
            continue;
        };
        s.files_modified += u64::from(user_modified(archive.as_ref(), &f));
        let Some(file) = open_stub(&stage, &f, OFlags::RDONLY)? else { continue };
        let present: u64 = data_extents(file.as_fd(), f.size).map_err(|e| Error::io(f.rel_lossy(), e))?.iter().map(|(a, b)| b - a).sum();
        s.bytes_hydrated += present;
        if present > 0 {
            s.files_partial += 1;
        } else {
            s.files_untouched += 1;
        }
    }
    if let Some(st) = stage.read_file(STATS)?.and_then(|b| serde_json::from_slice::<ServeStats>(&b).ok()) {
        s.events_served = st.events;
        s.frames_decoded = st.frames_decoded;
        s.bytes_decoded = st.bytes_decoded;
        s.chunks_written = st.chunks_written;
        s.remote_requests = st.remote_requests;
        s.remote_bytes = st.remote_bytes;
        s.compressed_decoded = st.compressed_decoded;
    }
    Ok(s)
}

/// Fills the given paths (or all stubs) completely. When a daemon serves the
/// tree, the files are read through `DIR` and the daemon fills them;
/// otherwise they are filled directly in the stage, under the tree's lock.
pub fn hydrate(dir: &Path, archive: Option<Arc<Archive>>, paths: &[PathBuf], progress: &(dyn Fn(u64) + Sync)) -> Result<u64, Error> {
    let stage = Stage::open(dir)?;
    let info = stage.info()?;
    let wanted: Option<HashSet<Vec<u8>>> = if paths.is_empty() {
        None
    } else {
        Some(paths.iter().map(|p| crate::archive::index::normalize_path(p.as_os_str().as_bytes()).unwrap_or_default()).collect())
    };
    let files: Vec<TreeFile> = stage
        .tree_files()?
        .into_iter()
        .filter(|f| f.marker.is_some())
        .filter(|f| {
            wanted
                .as_ref()
                .is_none_or(|w| w.contains(&f.rel) || w.iter().any(|p| f.rel.starts_with(p) && f.rel.get(p.len()) == Some(&b'/')))
        })
        .collect();
    if stage.is_served() {
        // Read through DIR so the daemon fills them; each path is opened
        // beneath DIR without crossing a symlink, and only if it is still
        // the regular file the walk found.
        let root = stage.served_dir()?;
        files.par_iter().try_for_each(|f| -> Result<(), Error> {
            let Some(mut file) = open_tree_file(root.as_fd(), f, OFlags::RDONLY)? else { return Ok(()) };
            let mut buf = vec![0u8; 8 << 20];
            loop {
                let n = file.read(&mut buf).map_err(|e| Error::io(dir.join(OsStr::from_bytes(&f.rel)).display(), e))?;
                if n == 0 {
                    break;
                }
                progress(n as u64);
            }
            Ok(())
        })?;
        return Ok(files.len() as u64);
    }
    let _lock = stage.lock()?;
    let archive = match archive {
        Some(a) => a,
        None => Arc::new(crate::archive::remote::open(&info.archive, info.archive_version.as_deref())?),
    };
    stage.check_archive(&archive)?;
    let hyd = Hydrator::new(archive);
    files.par_iter().try_for_each(|f| -> Result<(), Error> {
        // Never through a symlink, and only the inode the walk found.
        let Some(file) = open_stub(&stage, f, OFlags::RDWR)? else { return Ok(()) };
        hyd.hydrate_all(file.as_fd())?;
        progress(f.size);
        Ok(())
    })?;
    Ok(files.len() as u64)
}

/// What `thaw verify DIR` found; the tree is sound when `problems` is empty.
#[derive(Debug, Default)]
pub struct TreeVerify {
    /// Files of the archive compared (modified and added ones left out).
    pub files_checked: u64,
    /// Files users added to the tree (not compared).
    pub files_added: u64,
    /// Stubs a user wrote to or truncated: their bytes are partly the user's (not compared).
    pub files_modified: u64,
    /// Paths of those modified files, sorted, so the user sees what was skipped.
    pub modified: Vec<String>,
    /// Hydrated bytes compared with the archive.
    pub bytes_compared: u64,
    /// Stubs with no data yet (nothing to compare), sorted.
    pub empty_stubs: Vec<String>,
    /// Every mismatch: wrong bytes or size, foreign or copied markers, sorted.
    pub problems: Vec<String>,
}

/// Compares every hydrated byte of the tree with the archive.
pub fn verify_tree(dir: &Path, archive: Option<Arc<Archive>>) -> Result<TreeVerify, Error> {
    let stage = Stage::open(dir)?;
    let info = stage.info()?;
    let archive = match archive {
        Some(a) => a,
        None => Arc::new(crate::archive::remote::open(&info.archive, info.archive_version.as_deref())?),
    };
    stage.check_archive(&archive)?;
    let files = stage.tree_files()?;
    let mut out = TreeVerify::default();
    let (files, added): (Vec<TreeFile>, Vec<TreeFile>) = files.into_iter().partition(|f| from_archive(Some(&archive), f));
    out.files_added = added.len() as u64;
    let (modified, files): (Vec<TreeFile>, Vec<TreeFile>) = files.into_iter().partition(|f| user_modified(Some(&archive), f));
    out.files_modified = modified.len() as u64;
    out.modified = modified.iter().map(TreeFile::rel_lossy).collect();
    out.modified.sort();
    let tree = stage.tree_fd()?;
    let results: Vec<Result<Checked, Error>> = files.par_iter().map(|f| check_file(&archive, tree, f)).collect();
    for r in results {
        out.files_checked += 1;
        match r? {
            Checked::Same(n) => out.bytes_compared += n,
            Checked::Problem(n, why) => {
                out.bytes_compared += n;
                out.problems.push(why);
            }
            Checked::Untouched(path) => out.empty_stubs.push(path),
            Checked::Gone => out.files_checked -= 1,
        }
    }
    out.problems.sort();
    out.empty_stubs.sort();
    Ok(out)
}

/// The outcome of comparing one file with the archive.
enum Checked {
    Same(u64),
    Problem(u64, String),
    Untouched(String),
    /// No longer the file the walk found (renamed or replaced meanwhile).
    Gone,
}

fn check_file(archive: &Archive, tree: std::os::fd::BorrowedFd<'_>, f: &TreeFile) -> Result<Checked, Error> {
    let shown = f.rel_lossy();
    let Some(file) = open_tree_file(tree, f, OFlags::RDONLY)? else { return Ok(Checked::Gone) };
    let (entry, ranges) = match f.marker.as_ref().map(|m| (&m.id, m.entry, m.ino)) {
        Some((id, i, ino)) => {
            if ino != f.ino {
                return Ok(Checked::Problem(
                    0,
                    format!("{shown}: marker made for inode {ino} is on inode {}: copied, not a stub thaw made", f.ino),
                ));
            }
            if *id != archive.id_hex() {
                return Ok(Checked::Problem(0, format!("{shown}: stub of another archive ({id})")));
            }
            let Some(e) = archive.entry(i as u64)? else {
                return Ok(Checked::Problem(0, format!("{shown}: marker names entry {i}, which does not exist")));
            };
            let ext = data_extents(file.as_fd(), f.size).map_err(|e| Error::io(&shown, e))?;
            if ext.is_empty() {
                return Ok(Checked::Untouched(shown));
            }
            (e, ext)
        }
        None => match archive.lookup(&f.rel)? {
            Some(e) if matches!(e.kind, EntryKind::File | EntryKind::Hardlink) => (e, vec![(0, f.size)]),
            _ => return Ok(Checked::Problem(0, format!("{shown}: not in the archive"))),
        },
    };
    let d = archive.data_entry(&entry)?;
    if f.size != d.size {
        return Ok(Checked::Problem(0, format!("{shown}: size {} but the archive says {}", f.size, d.size)));
    }
    let mut compared = 0;
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    for (s, e) in ranges {
        let mut off = s;
        while off < e {
            let n = ((e - off) as usize).min(a.len());
            archive.read_at(&d, off, &mut a[..n])?;
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut b[..n], off).map_err(|err| Error::io(&shown, err))?;
            if a[..n] != b[..n] {
                let at = a[..n].iter().zip(&b[..n]).position(|(x, y)| x != y).unwrap_or(0) as u64 + off;
                return Ok(Checked::Problem(compared, format!("{shown}: differs from the archive at byte {at}")));
            }
            compared += n as u64;
            off += n as u64;
        }
    }
    Ok(Checked::Same(compared))
}

/// `thaw hydrate --detach DIR`: when every stub is complete and nothing
/// serves the tree, the stub tree takes `DIR`'s place (one atomic
/// `renameat2(RENAME_EXCHANGE)`, so `DIR` is never half there), loses its
/// origin records, and the stage goes away: `DIR` is a plain directory
/// that needs no daemon. Returns the number of files.
pub fn detach(dir: &Path) -> Result<u64, Error> {
    let stage = Stage::open(dir)?;
    let lock = stage.lock()?;
    let shown = dir.display().to_string();
    let refuse = |why: String| Error::Tree(crate::tree::Error::Refused { path: shown.clone(), why });
    if stage.is_served() {
        return Err(refuse("is being served: stop its daemon first".into()));
    }
    if !stage.dir_is_empty()? {
        return Err(refuse("is not empty: files there would be hidden by the tree".into()));
    }
    let files = stage.tree_files()?;
    let incomplete = files.iter().filter(|f| f.marker.is_some()).count();
    if incomplete > 0 {
        return Err(refuse(format!("{incomplete} stubs are not complete: `thaw hydrate {shown}` first (with --detach it does both)")));
    }
    for f in &files {
        if let Some(file) = open_stub(&stage, f, OFlags::RDONLY)? {
            crate::tree::marker::remove_origin(file.as_fd()).map_err(|e| Error::io(f.rel_lossy(), e))?;
        }
    }
    let at = |e: rustix::io::Errno| Error::io(&shown, e);
    rustix::fs::renameat_with(stage.stage_fd()?, TREE, stage.parent_fd()?, stage.dir_name(), rustix::fs::RenameFlags::EXCHANGE)
        .map_err(at)?;
    // The stage's `tree` is now the old, empty DIR: remove it and the stage.
    let sfd = stage.stage_fd()?;
    rustix::fs::unlinkat(sfd, TREE, rustix::fs::AtFlags::REMOVEDIR).map_err(at)?;
    drop(lock);
    for ent in rustix::fs::Dir::read_from(sfd).map_err(at)? {
        let ent = ent.map_err(at)?;
        if !matches!(ent.file_name().to_bytes(), b"." | b"..") {
            rustix::fs::unlinkat(sfd, ent.file_name(), rustix::fs::AtFlags::empty()).map_err(at)?;
        }
    }
    let stage_name = stage.root().file_name().map(|n| n.to_os_string()).unwrap_or_default();
    rustix::fs::unlinkat(stage.parent_fd()?, stage_name.as_os_str(), rustix::fs::AtFlags::REMOVEDIR).map_err(at)?;
    Ok(files.len() as u64)
}
