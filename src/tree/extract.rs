//! `thaw extract`: full parallel extraction. Directories first, then file
//! data in parallel (large files split into pieces written with `pwrite`),
//! then links, then directory metadata deepest first.

use super::target::TargetDir;
use super::Error;
use crate::archive::{Archive, Entry, EntryKind};
use rayon::prelude::*;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Pieces of a large file written by different threads.
const PIECE: u64 = 8 << 20;

/// What `extract` did, for the command's report.
#[derive(Debug, Default, Clone)]
pub struct ExtractSummary {
    /// Entries in the archive, all laid out.
    pub entries: usize,
    /// File data written, in bytes.
    pub bytes: u64,
    /// Entries skipped because they could not be created (e.g. device nodes as a user).
    pub warnings: Vec<String>,
}

/// Extracts the whole archive into `dir`. `progress` is called with data bytes written.
pub fn extract(archive: &Archive, dir: &Path, threads: usize, progress: &(dyn Fn(u64) + Sync)) -> Result<ExtractSummary, Error> {
    let target = TargetDir::create(dir)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::at(b"thread pool", std::io::Error::other(e)))?;
    let entries = archive.entries()?;
    let mut summary = ExtractSummary { entries: entries.len(), ..Default::default() };

    for e in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
        target.mkdir(&e.path)?;
    }
    // Files: small ones whole, large ones in pieces after creating them.
    let mut work: Vec<(usize, u64, u64)> = Vec::new();
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.kind == EntryKind::File) {
        if e.size > PIECE {
            let (f, _) = target.create_file(&e.path, e.mode)?;
            f.set_len(e.size).map_err(|err| Error::at(&e.path, err))?;
            let mut off = 0;
            while off < e.size {
                work.push((i, off, PIECE.min(e.size - off)));
                off += PIECE;
            }
        } else {
            work.push((i, 0, e.size));
        }
        summary.bytes += e.size;
    }
    pool.install(|| {
        work.par_iter().try_for_each(|&(i, off, len)| -> Result<(), Error> {
            let e = &entries[i];
            if e.size > PIECE {
                let f = target.open(&e.path, rustix::fs::OFlags::WRONLY).map(File::from)?;
                write_range(archive, e, &f, off, len)?;
            } else {
                let (f, fresh) = target.create_file(&e.path, e.mode)?;
                write_range(archive, e, &f, 0, e.size)?;
                target.set_meta_fd(f.as_fd(), e, Some(fresh))?;
            }
            progress(len);
            Ok(())
        })
    })?;
    for e in entries.iter().filter(|e| e.kind == EntryKind::File && e.size > PIECE) {
        let f = target.open(&e.path, rustix::fs::OFlags::RDONLY)?;
        target.set_meta_fd(f.as_fd(), e, None)?;
    }
    finish_tree(&target, entries, &mut summary.warnings)?;
    Ok(summary)
}

/// After the files: hard links, symlinks, fifos and device nodes (those that
/// cannot be made are skipped with a warning), then directory metadata.
pub fn finish_tree(target: &TargetDir, entries: &[Entry], warnings: &mut Vec<String>) -> Result<(), Error> {
    for e in entries {
        match e.kind {
            EntryKind::Hardlink => target.hardlink(&e.path, &e.link)?,
            EntryKind::Symlink => {
                target.symlink(&e.path, &e.link)?;
                target.set_meta_path(e)?;
            }
            EntryKind::Fifo | EntryKind::CharDev | EntryKind::BlockDev => match target.special(e) {
                Ok(()) => target.set_meta_path(e)?,
                Err(err) => warnings.push(format!("{} (skipped)", crate::archive::error_chain(&err))),
            },
            EntryKind::File | EntryKind::Dir => {}
        }
    }
    set_dir_meta(target, entries)
}

/// Directory metadata, deepest first, so creating children does not disturb parents' mtimes.
pub fn set_dir_meta(target: &TargetDir, entries: &[Entry]) -> Result<(), Error> {
    let mut dirs: Vec<&Entry> = entries.iter().filter(|e| e.kind == EntryKind::Dir).collect();
    dirs.sort_by_key(|e| std::cmp::Reverse(e.path.iter().filter(|&&b| b == b'/').count()));
    for e in dirs {
        target.set_meta_path(e)?;
    }
    Ok(())
}

/// Copies `[off, off+len)` of `e`'s data into `f` at the same offset.
pub fn write_range(archive: &Archive, e: &Entry, f: &File, off: u64, len: u64) -> Result<(), Error> {
    let mut buf = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        let got = archive.read_at(e, off + done, &mut buf[..n])?;
        if got != n {
            return Err(Error::Refused { path: e.path_lossy(), why: "archive data ends early".into() });
        }
        f.write_all_at(&buf[..n], off + done).map_err(|err| Error::at(&e.path, err))?;
        done += n as u64;
    }
    Ok(())
}
