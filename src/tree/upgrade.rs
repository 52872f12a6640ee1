//! `thaw upgrade DIR --to NEW`: moves a stage populated from one archive
//! onto another archive of the same tree (typically a format 1 archive and
//! its format 2 conversion), stub by stub, without populating again. A stub
//! moves only if NEW has its path as a file with the same type, size, mode,
//! owner and mtime, the old archive's bytes hash to NEW's checksum, and its
//! chunks are the same or it holds no partial data. See formats/v2-design.md §7.

use super::marker::{self, Marker};
use super::stage::{open_tree_file, Stage, TreeFile, STUBS_VERSION};
use super::Error;
use crate::archive::{Archive, Entry, EntryKind};
use rustix::fs::{OFlags, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// What `thaw upgrade --to` did.
#[derive(Debug, Default, Clone)]
pub struct MoveSummary {
    /// Stubs whose marker now names the new archive.
    pub moved: u64,
    /// Stubs an earlier, interrupted run had moved already.
    pub already: u64,
    /// `path: reason` for each stub that cannot move; when there is any,
    /// nothing was changed (hydrate those stubs, or populate again).
    pub refused: Vec<String>,
}

/// Checks every stub of the stage at `dir` against the archive at
/// `new_path`; when all can move, rewrites their markers, then records that
/// archive in `archive.json` (last, and atomically: a crash leaves the stage
/// on the old archive, and a rerun moves the stubs still naming it). When
/// any cannot, changes nothing and lists them. As root, while not served.
pub fn upgrade_to(dir: &Path, new_path: &Path) -> Result<MoveSummary, Error> {
    let stage = Stage::open(dir)?;
    let _lock = stage.lock()?;
    let shown = dir.display().to_string();
    let refuse = |why: String| Err(Error::Refused { path: shown.clone(), why });
    if stage.is_served() {
        return refuse("is being served: stop the daemon first".into());
    }
    let mut info = stage.info()?;
    if info.stubs_version < STUBS_VERSION {
        return refuse(format!("populated by thaw 0.1: run `thaw upgrade {shown}` first"));
    }
    let new = Archive::open(new_path)?;
    let new_id = new.id_hex();
    let mut out = MoveSummary::default();
    if new_id == info.id {
        return Ok(out);
    }
    let old = Archive::open(&info.archive)?;
    if old.id_hex() != info.id {
        return refuse(format!("populated from archive {}, but {} is now {}", info.id, info.archive.display(), old.id_hex()));
    }
    // First check every stub; change nothing unless all of them can move.
    let tree = stage.tree_fd()?;
    let mut moves = Vec::new();
    for f in stage.tree_files()? {
        let Some(m) = &f.marker else { continue };
        if m.id == new_id {
            out.already += 1;
            continue;
        }
        let Some(file) = open_tree_file(tree, &f, OFlags::RDONLY)? else { continue };
        match moved_marker(&old, &new, &f, m, file.as_fd()) {
            Ok(nm) => moves.push((file, f, nm)),
            Err(why) => out.refused.push(format!("{}: {why}", f.rel_lossy())),
        }
    }
    if !out.refused.is_empty() {
        return Ok(out);
    }
    for (file, f, nm) in moves {
        marker::write(file.as_fd(), &nm).map_err(|e| Error::at(&f.rel, e))?;
        out.moved += 1;
    }
    info.id = new_id;
    info.archive = std::fs::canonicalize(new_path).unwrap_or_else(|_| new_path.to_path_buf());
    info.format_version = new.version();
    stage.write_info(&info)?;
    Ok(out)
}

/// The marker naming `new` for the stub `f` (marker `m`), or why it stays.
fn moved_marker(old: &Archive, new: &Archive, f: &TreeFile, m: &Marker, fd: BorrowedFd<'_>) -> Result<Marker, String> {
    if m.id != old.id_hex() {
        return Err(format!("names archive {}, neither the old nor the new one", m.id));
    }
    if m.ino != f.ino {
        return Err(format!("marker made for inode {} is on inode {}: not a stub thaw made", m.ino, f.ino));
    }
    let e = old.entry(m.entry as u64).map_err(|e| e.to_string())?;
    let e = e.filter(|e| e.kind == EntryKind::File).ok_or_else(|| format!("names entry {}, which is not a file", m.entry))?;
    let (n, ne) = new.find(&e.path).map_err(|e| e.to_string())?.ok_or("not in the new archive")?;
    let meta = |x: &Entry| (x.kind, x.size, x.mode, x.uid, x.gid, x.mtime, x.mtime_nsec);
    if meta(&ne) != meta(&e) {
        return Err("type, size, mode, owner or mtime differ in the new archive".into());
    }
    if data_hash(old, &e)? != data_hash(new, &ne)? {
        return Err("its data differs in the new archive".into());
    }
    if old.chunks(&e) != new.chunks(&ne) && partly_there(fd, f.size).map_err(|e| e.to_string())? {
        return Err("partly hydrated, and the new archive cuts it into other chunks: hydrate it first, or populate again".into());
    }
    Ok(Marker { id: new.id_hex(), entry: n as usize, ino: m.ino, limit: m.limit, modified: m.modified })
}

/// XXH3 of a file's data: format 2 records it (and every chunk read is
/// checked against it); format 1's is computed from its verified chunks.
fn data_hash(a: &Archive, e: &Entry) -> Result<u64, String> {
    if let Some(x) = e.data_xxh3 {
        return Ok(x);
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for k in 0..a.chunk_count(e) {
        h.update(&a.chunk(e, k).map_err(|err| err.to_string())?);
    }
    Ok(h.digest())
}

/// True when some but not all of the file's bytes are allocated.
fn partly_there(fd: BorrowedFd<'_>, size: u64) -> std::io::Result<bool> {
    let first_data = match rustix::fs::seek(fd, SeekFrom::Data(0)) {
        Ok(off) => off,
        Err(rustix::io::Errno::NXIO) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let first_hole = rustix::fs::seek(fd, SeekFrom::Hole(0))?;
    Ok(!(first_data == 0 && first_hole >= size))
}
