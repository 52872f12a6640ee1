//! `thaw populate`: lays the archive's tree out as sparse stubs in the stage
//! (`DIR/.thaw/tree`) without decoding any data: directories, stubs of the
//! exact size with mode, owner, mtime and xattrs, symlinks, hard links.
//! Each non-empty file carries the marker xattr naming the archive and entry.

use super::extract::finish_tree;
use super::marker::{self, Marker};
use super::stage::{Stage, StageInfo, STUBS_VERSION};
use super::target::TargetDir;
use super::Error;
use crate::archive::{Archive, EntryKind};
use rayon::prelude::*;
use std::os::fd::AsFd;
use std::path::Path;

#[derive(Debug, Default, Clone)]
pub struct PopulateSummary {
    pub entries: usize,
    pub stubs: usize,
    pub bytes: u64,
    pub warnings: Vec<String>,
}

/// Checks that every multi-frame file has its interior frame boundaries on
/// 4 KiB file offsets: hydration state is read back from the stub's
/// allocated blocks, which only works at block granularity.
pub fn check_aligned(archive: &Archive) -> Result<(), Error> {
    let t = archive.seek_table();
    for e in archive.entries().iter().filter(|e| e.kind == EntryKind::File && e.size > 0) {
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

pub fn populate(archive: &Archive, archive_path: &Path, dir: &Path, threads: usize) -> Result<PopulateSummary, Error> {
    check_aligned(archive)?;
    let stage = Stage::new(dir);
    if stage.exists() {
        stage.check_archive(archive)?;
        return Err(Error::Refused { path: dir.display().to_string(), why: "already populated".into() });
    }
    if stage.is_served() {
        return Err(Error::Refused { path: dir.display().to_string(), why: "is being served".into() });
    }
    // The served tree is mounted over DIR: files already in it would vanish from view.
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Refused {
            path: dir.display().to_string(),
            why: "is not empty (the stub tree is mounted over it while served)".into(),
        });
    }
    std::fs::create_dir_all(stage.root()).map_err(|e| Error::at(stage.root().as_os_str().as_encoded_bytes(), e))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::at(dir.as_os_str().as_encoded_bytes(), e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(stage.root(), std::fs::Permissions::from_mode(0o700));
    }
    let target = TargetDir::create(&stage.tree())?;
    let entries = archive.entries();
    let id = archive.id_hex();
    let mut summary = PopulateSummary { entries: entries.len(), ..Default::default() };
    for e in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
        target.mkdir_all(&e.path)?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::at(b"thread pool", std::io::Error::other(e)))?;
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
    finish_tree(&target, entries, &mut summary.warnings)?;
    let archive_abs = std::fs::canonicalize(archive_path).unwrap_or_else(|_| archive_path.to_path_buf());
    stage.write_info(&StageInfo { archive: archive_abs, id, format_version: archive.version(), stubs_version: STUBS_VERSION })?;
    Ok(summary)
}
