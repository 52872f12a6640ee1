//! `thaw populate`: lays the archive's tree out as sparse stubs in the stage
//! (`PARENT/.NAME.thaw/tree`) without decoding any data: directories, stubs of the
//! exact size with mode, owner, mtime and xattrs, symlinks, hard links.
//! Each non-empty file carries the marker xattr naming the archive and entry.

use super::extract::{finish_tree, make_dirs};
use super::marker::{self, Marker};
use super::stage::{Stage, StageInfo, TreeFile, STUBS_VERSION, TREE};
use super::target::TargetDir;
use super::Error;
use crate::archive::{Archive, EntryKind};
use rayon::prelude::*;
use std::os::fd::AsFd;
use std::path::Path;

/// What `populate` did, for the command's report.
#[derive(Debug, Default, Clone)]
pub struct PopulateSummary {
    /// Entries in the archive, all laid out.
    pub entries: usize,
    /// Non-empty files written as sparse stubs with a marker.
    pub stubs: usize,
    /// Data the stubs stand for, in bytes (none of it is on disk yet).
    pub bytes: u64,
    /// Entries skipped because they could not be created (e.g. device nodes as a user).
    pub warnings: Vec<String>,
}

/// Checks that every multi-frame file has its interior frame boundaries on
/// 4 KiB file offsets: hydration state is read back from the stub's
/// allocated blocks, which only works at block granularity. (Format 2's
/// chunks are pieces of a multiple of 4 KiB; there it checks the frame rule.)
pub fn check_aligned(archive: &Archive) -> Result<(), Error> {
    let t = archive.seek_table();
    for e in archive.entries()?.iter().filter(|e| e.kind == EntryKind::File && e.size > 0) {
        if archive.piece_size().is_some() {
            for (k, (s, end)) in archive.chunks(e).into_iter().enumerate() {
                if archive.frames_for(e, s, end - s).len() != 1 {
                    return Err(Error::Refused {
                        path: e.path_lossy(),
                        why: format!("chunk {k} spans frames: breaks the format's frame rule"),
                    });
                }
            }
            continue;
        }
        let frames = archive.frames_for(e, 0, e.size);
        for i in frames.start + 1..frames.end {
            if (t.stream_offset(i) - e.data_offset) % 4096 != 0 {
                return Err(Error::Refused {
                    path: e.path_lossy(),
                    why: "frame boundary inside the file is not 4 KiB aligned; re-pack it with `thaw convert`".into(),
                });
            }
        }
    }
    Ok(())
}

/// `populate` threads per core by default. Creating a stub mostly waits for
/// ext4 to read inode table and bitmap blocks: measured on a kernel tree
/// (78,549 stubs, 2 cores, cold cache), 2 threads took 1.14-1.21 s, 8 took
/// 0.97-1.08 s and 16 took 0.99-1.03 s. At most [`MAX_DEFAULT_THREADS`].
pub const POPULATE_THREADS_PER_CORE: usize = 4;

/// Cap on the default thread count: each thread holds up to two fds beside
/// the 128 parents kept, within the default limit of 1024 open files.
pub const MAX_DEFAULT_THREADS: usize = 64;

/// The default number of `populate` threads on this machine.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (POPULATE_THREADS_PER_CORE * cores).min(MAX_DEFAULT_THREADS)
}

/// Lays the archive out as stubs in a new stage beside `dir` (which must be
/// empty) and records the archive there, so `thaw serve` can fill them on demand.
pub fn populate(archive: &Archive, archive_path: &Path, dir: &Path, threads: usize) -> Result<PopulateSummary, Error> {
    check_aligned(archive)?;
    // DIR, the stage and tree/ are made and opened here without following
    // any symlink; a stage someone else made is refused.
    let stage = Stage::create(dir)?;
    if stage.exists() {
        stage.check_archive(archive)?;
        return Err(Error::Refused { path: dir.display().to_string(), why: "already populated".into() });
    }
    if stage.is_served() {
        return Err(Error::Refused { path: dir.display().to_string(), why: "is being served".into() });
    }
    let _lock = stage.lock()?;
    // The served tree is mounted over DIR: files already in it would vanish from view.
    if !stage.dir_is_empty()? {
        return Err(Error::Refused {
            path: dir.display().to_string(),
            why: "is not empty (the stub tree is mounted over it while served)".into(),
        });
    }
    let target = TargetDir::create_in(stage.stage_fd()?, std::ffi::OsStr::new(TREE), &stage.tree())?;
    let entries = archive.entries()?;
    let id = archive.id_hex();
    let mut summary = PopulateSummary { entries: entries.len(), ..Default::default() };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::at(b"thread pool", std::io::Error::other(e)))?;
    pool.install(|| make_dirs(&target, entries))?;
    pool.install(|| {
        entries.par_iter().enumerate().filter(|(_, e)| e.kind == EntryKind::File).try_for_each(|(i, e)| -> Result<(), Error> {
            let (f, fresh) = target.create_file(&e.path, e.mode)?;
            if e.size > 0 {
                f.set_len(e.size).map_err(|err| Error::at(&e.path, err))?;
                let ino = rustix::fs::fstat(f.as_fd()).map_err(|err| Error::at(&e.path, err))?.st_ino;
                marker::write(f.as_fd(), &Marker::new(id.clone(), i, ino)).map_err(|err| match err.raw_os_error() {
                    Some(libc::EPERM) => Error::Refused {
                        path: e.path_lossy(),
                        why: format!("cannot set the stub marker {}: populate must run as root", marker::MARKER_XATTR),
                    },
                    _ => Error::at(&e.path, err),
                })?;
            }
            target.set_meta_fd(f.as_fd(), e, Some(fresh))
        })
    })?;
    for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
        summary.stubs += usize::from(e.size > 0);
        summary.bytes += e.size;
    }
    pool.install(|| finish_tree(&target, entries, &mut summary.warnings))?;
    let archive_abs = match crate::archive::remote::is_remote(archive_path) {
        true => archive_path.to_path_buf(),
        false => std::fs::canonicalize(archive_path).unwrap_or_else(|_| archive_path.to_path_buf()),
    };
    if archive.source_version().is_some() {
        stage.write_file(super::stage::TAIL, &archive.opening_tail()?)?;
    }
    stage.write_info(&StageInfo {
        archive: archive_abs,
        id,
        format_version: archive.version(),
        stubs_version: STUBS_VERSION,
        archive_version: archive.source_version(),
    })?;
    Ok(summary)
}

/// What `thaw upgrade` did.
#[derive(Debug, Default, Clone)]
pub struct UpgradeSummary {
    /// The stage already had current markers: nothing was done.
    pub already_current: bool,
    /// Stubs whose thaw 0.1 marker was accepted and replaced.
    pub upgraded: u64,
    /// `path: reason` for each 0.1 marker refused; those files are ordinary files now.
    pub refused: Vec<String>,
}

/// `thaw upgrade DIR`: turns a thaw 0.1 tree (forgeable `user.thaw`
/// markers) into a current one. As root, while the tree is not served and
/// under its lock, each regular file's `user.thaw` (`thaw1 <id> <entry>
/// [limit]`) is accepted only if it names this archive and a file entry at
/// this very path, with the owner and size populate gave it. Accepted ones
/// get a `trusted.thaw` marker bound to the inode; every `user.thaw` is then
/// removed, so a refused file is an ordinary file. Can be run again if
/// interrupted: the stage says version 2 only at the end.
pub fn upgrade(dir: &Path) -> Result<UpgradeSummary, Error> {
    let stage = Stage::open(dir)?;
    let _lock = stage.lock()?;
    let shown = dir.display().to_string();
    if stage.is_served() {
        return Err(Error::Refused { path: shown, why: "is being served: stop the daemon first".into() });
    }
    let mut info = stage.info()?;
    if info.stubs_version >= STUBS_VERSION {
        return Ok(UpgradeSummary { already_current: true, ..Default::default() });
    }
    let archive = crate::archive::remote::open(&info.archive, info.archive_version.as_deref())?;
    if archive.id_hex() != info.id {
        return Err(Error::Refused {
            path: shown,
            why: format!("populated from archive {}, but {} is now {}", info.id, info.archive.display(), archive.id_hex()),
        });
    }
    let mut out = UpgradeSummary::default();
    let tree = stage.tree_fd()?;
    for f in stage.tree_files()? {
        let Some(file) = super::stage::open_tree_file(tree, &f, rustix::fs::OFlags::RDONLY)? else { continue };
        let mut buf = [0u8; 256];
        let legacy = match rustix::fs::fgetxattr(file.as_fd(), marker::LEGACY_MARKER_XATTR, &mut buf) {
            Ok(n) => &buf[..n],
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => continue,
            Err(rustix::io::Errno::RANGE) => &b"(too long)"[..],
            Err(e) => return Err(Error::at(&f.rel, e)),
        };
        match check_legacy(&archive, &info.id, &f, legacy) {
            Ok(m) => {
                marker::write(file.as_fd(), &m).map_err(|err| match err.raw_os_error() {
                    Some(libc::EPERM) => Error::Refused {
                        path: f.rel_lossy(),
                        why: format!("cannot set the stub marker {}: upgrade must run as root", marker::MARKER_XATTR),
                    },
                    _ => Error::at(&f.rel, err),
                })?;
                out.upgraded += 1;
            }
            Err(why) => out.refused.push(format!("{}: {why}", f.rel_lossy())),
        }
        match rustix::fs::fremovexattr(file.as_fd(), marker::LEGACY_MARKER_XATTR) {
            Ok(()) | Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(Error::at(&f.rel, e)),
        }
    }
    info.stubs_version = STUBS_VERSION;
    stage.write_info(&info)?;
    Ok(out)
}

/// The current marker for a file carrying the thaw 0.1 marker `v`, or why it is refused.
fn check_legacy(archive: &Archive, id: &str, f: &TreeFile, v: &[u8]) -> Result<Marker, String> {
    let text = String::from_utf8_lossy(v);
    let malformed = || format!("malformed {} marker {text:?}", marker::LEGACY_MARKER_XATTR);
    let words: Vec<&str> = text.split(' ').collect();
    let (mid, entry, limit) = match words.as_slice() {
        ["thaw1", mid, e] => (*mid, e.parse::<usize>().map_err(|_| malformed())?, None),
        ["thaw1", mid, e, l] => (*mid, e.parse::<usize>().map_err(|_| malformed())?, Some(l.parse::<u64>().map_err(|_| malformed())?)),
        _ => return Err(malformed()),
    };
    if mid != id {
        return Err(format!("names archive {mid}, not {id}"));
    }
    let index = archive.index().map_err(|e| e.to_string())?;
    let Some(e) = index.get(entry).filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Hardlink)) else {
        return Err(format!("names entry {entry}, which is not a file"));
    };
    let d = index.data_entry(e);
    if !index.lookup(&f.rel).is_some_and(|here| std::ptr::eq(index.data_entry(here), d)) {
        return Err(format!("names entry {entry} ({}), not this path", e.path_lossy()));
    }
    if (f.uid, f.gid) != (d.uid, d.gid) {
        return Err(format!("owned by {}:{}, but populate made it {}:{}: not the stub thaw made", f.uid, f.gid, d.uid, d.gid));
    }
    match limit {
        None if f.size != d.size => return Err(format!("size {} but the archive says {}", f.size, d.size)),
        Some(l) if l > d.size => return Err(format!("limit {l} is past the entry's size {}", d.size)),
        _ => {}
    }
    // A 0.1 limit means a user shrank the file: bytes past it are theirs.
    Ok(Marker { id: id.to_string(), entry, ino: f.ino, limit, modified: limit.is_some() })
}
