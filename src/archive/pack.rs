//! `thaw pack`: walks a directory (without following symlinks) and writes it
//! as a thaw archive, written to a temporary name and renamed when complete.

use super::index::{Entry, EntryKind};
pub use super::writer::Progress;
use super::writer::{ArchiveWriter, EarlyEnd, MemberData, WriterOptions};
use super::Error;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What `pack` did.
#[derive(Debug, Clone)]
pub struct PackSummary {
    /// Entries written to the index.
    pub entries: usize,
    /// Total size of the files' data (uncompressed).
    pub data_bytes: u64,
    /// Size of the archive written, for the compression ratio.
    pub archive_bytes: u64,
    /// The new archive's id.
    pub id: [u8; 16],
    /// What was skipped or read partially (sockets, unreadable xattrs).
    pub warnings: Vec<String>,
}

/// One filesystem object found by the walk.
struct Found {
    entry: Entry,
    src: PathBuf,
}

/// Packs `src` into `out`. `progress_total` is told the total data size first.
pub fn pack(
    src: &Path,
    out: &Path,
    opts: WriterOptions,
    progress_total: &dyn Fn(u64),
    progress: Progress<'_>,
) -> Result<PackSummary, Error> {
    pack_ordered(src, out, opts, &[], progress_total, progress)
}

/// [`pack`], with the files named in `first` (archive paths, e.g. from an
/// access profile) right after the directories, in that order and
/// contiguous, so a job that reads them touches few frames, in one pass.
pub fn pack_ordered(
    src: &Path,
    out: &Path,
    opts: WriterOptions,
    first: &[Vec<u8>],
    progress_total: &dyn Fn(u64),
    progress: Progress<'_>,
) -> Result<PackSummary, Error> {
    let meta = fs::metadata(src).map_err(|e| Error::io(src.display(), e))?;
    if !meta.is_dir() {
        return Err(Error::io(src.display(), io::Error::new(io::ErrorKind::InvalidInput, "not a directory")));
    }
    let mut names = Names::load();
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    walk(src, &mut Vec::new(), &mut Walk { out: &mut found, warnings: &mut warnings, links: &mut links, names: &mut names })?;
    if !first.is_empty() {
        found = put_first(found, first);
    }
    let total: u64 = found.iter().map(|f| f.entry.size).sum();
    progress_total(total);
    let summary = write_atomically(out, |file| {
        let mut w = ArchiveWriter::new(file, opts)?;
        for f in found {
            if f.entry.kind == EntryKind::File && f.entry.size > 0 {
                let file = File::open(&f.src).map_err(|e| Error::io(f.src.display(), e))?;
                let size = f.entry.size;
                let mut entry = f.entry;
                entry.xattrs = read_xattrs_fd(&file, &f.src, &mut warnings);
                w.append(entry, Some(&mut MemberData::new(file, size, EarlyEnd::Shrank, progress)))?;
            } else {
                w.append(f.entry, None)?;
            }
        }
        let entries = w.entries().len();
        let (_, id) = w.finish()?;
        Ok((entries, id))
    })?;
    let archive_bytes = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(PackSummary { entries: summary.0, data_bytes: total, archive_bytes, id: summary.1, warnings })
}

/// Directories (parents before children, as walked), then the regular
/// files named in `first` in that order, then everything else as walked (a
/// hard link still comes after the file it links to, which only moves up).
fn put_first(found: Vec<Found>, first: &[Vec<u8>]) -> Vec<Found> {
    let rank: HashMap<&[u8], usize> = first.iter().enumerate().rev().map(|(i, p)| (p.as_slice(), i)).collect();
    let (dirs, rest): (Vec<Found>, Vec<Found>) = found.into_iter().partition(|f| f.entry.kind == EntryKind::Dir);
    let (mut ranked, rest): (Vec<Found>, Vec<Found>) =
        rest.into_iter().partition(|f| f.entry.kind == EntryKind::File && rank.contains_key(f.entry.path.as_slice()));
    ranked.sort_by_key(|f| rank[f.entry.path.as_slice()]);
    dirs.into_iter().chain(ranked).chain(rest).collect()
}

/// What the walk carries from one directory to the next.
struct Walk<'a> {
    out: &'a mut Vec<Found>,
    warnings: &'a mut Vec<String>,
    /// (dev, ino) of files with several links -> the path first seen.
    links: &'a mut HashMap<(u64, u64), Vec<u8>>,
    names: &'a mut Names,
}

/// Adds the tree below `dir` (whose path in the archive is `rel`), sorted by name.
fn walk(dir: &Path, rel: &mut Vec<u8>, w: &mut Walk<'_>) -> Result<(), Error> {
    let mut children: Vec<_> =
        fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?.collect::<Result<_, _>>().map_err(|e| Error::io(dir.display(), e))?;
    children.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for child in children {
        let path = child.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(path.display(), e))?;
        let Some(kind) = kind_of(meta.file_type()) else {
            w.warnings.push(format!("{}: socket skipped", path.display()));
            continue;
        };
        let len = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(child.file_name().as_bytes());
        let entry = entry_for(&path, rel, &meta, kind, w)?;
        w.out.push(Found { entry, src: path.clone() });
        if kind == EntryKind::Dir {
            walk(&path, rel, w)?;
        }
        rel.truncate(len);
    }
    Ok(())
}

/// The entry kind of a file type; None for sockets, which tar cannot hold.
fn kind_of(ft: fs::FileType) -> Option<EntryKind> {
    Some(if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else if ft.is_char_device() {
        EntryKind::CharDev
    } else if ft.is_block_device() {
        EntryKind::BlockDev
    } else {
        return None;
    })
}

/// The entry for the object at `path` (archive path `rel`): metadata, link
/// target, device numbers, xattrs; a second name of a file is a hard link.
fn entry_for(path: &Path, rel: &[u8], meta: &fs::Metadata, kind: EntryKind, w: &mut Walk<'_>) -> Result<Entry, Error> {
    let mut e = Entry::new(rel.to_vec(), kind);
    e.mode = meta.mode() & 0o7777;
    e.uid = meta.uid();
    e.gid = meta.gid();
    e.uname = w.names.user(meta.uid());
    e.gname = w.names.group(meta.gid());
    e.mtime = meta.mtime();
    e.mtime_nsec = meta.mtime_nsec() as u32;
    match kind {
        EntryKind::File => {
            if meta.nlink() > 1 {
                if let Some(first) = w.links.get(&(meta.dev(), meta.ino())) {
                    e.kind = EntryKind::Hardlink;
                    e.link = first.clone();
                } else {
                    w.links.insert((meta.dev(), meta.ino()), rel.to_vec());
                }
            }
            if e.kind == EntryKind::File {
                e.size = meta.len();
            }
        }
        EntryKind::Symlink => {
            e.link = fs::read_link(path).map_err(|e| Error::io(path.display(), e))?.as_os_str().as_bytes().to_vec();
        }
        EntryKind::CharDev | EntryKind::BlockDev => {
            let rdev = meta.rdev();
            e.dev_major = rustix::fs::major(rdev);
            e.dev_minor = rustix::fs::minor(rdev);
        }
        _ => {}
    }
    // A file with data gets its xattrs from the fd `pack` opens to read it
    // (one path lookup less per file).
    if kind != EntryKind::Symlink && !(e.kind == EntryKind::File && e.size > 0) {
        e.xattrs = read_xattrs(path, w.warnings);
    }
    Ok(e)
}

/// Reads every xattr of `path` (without following symlinks), sorted by name.
pub fn read_xattrs(path: &Path, warnings: &mut Vec<String>) -> Vec<(Vec<u8>, Vec<u8>)> {
    collect_xattrs(path, warnings, |names| rustix::fs::llistxattr(path, names), |name, value| rustix::fs::lgetxattr(path, name, value))
}

/// Reads every xattr of the open file `file` (at `path`, for messages), sorted by name.
fn read_xattrs_fd(file: &File, path: &Path, warnings: &mut Vec<String>) -> Vec<(Vec<u8>, Vec<u8>)> {
    collect_xattrs(path, warnings, |names| rustix::fs::flistxattr(file, names), |name, value| rustix::fs::fgetxattr(file, name, value))
}

/// The xattrs `list` names, each read with `get`, sorted by name; what
/// cannot be read becomes a warning naming `path`.
fn collect_xattrs(
    path: &Path,
    warnings: &mut Vec<String>,
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&std::ffi::CStr, &mut [u8]) -> rustix::io::Result<usize>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = loop {
        match list(&mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Vec::new(),
            Err(e) => {
                warnings.push(format!("{}: cannot list xattrs: {e}", path.display()));
                return Vec::new();
            }
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).expect("xattr names have no NUL");
        let mut value = vec![0u8; 4096];
        loop {
            match get(cname.as_c_str(), &mut value) {
                Ok(len) => {
                    value.truncate(len);
                    out.push((name.to_vec(), value));
                    break;
                }
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                Err(e) => {
                    warnings.push(format!("{}: cannot read xattr {}: {e}", path.display(), String::from_utf8_lossy(name)));
                    break;
                }
            }
        }
    }
    out.sort();
    out
}

/// User and group names from /etc/passwd and /etc/group.
#[derive(Default)]
struct Names {
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
}

impl Names {
    fn load() -> Names {
        let parse = |path: &str| {
            let mut m = HashMap::new();
            if let Ok(text) = fs::read(path) {
                for line in text.split(|&b| b == b'\n') {
                    let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
                    if f.len() >= 3 {
                        if let Some(id) = std::str::from_utf8(f[2]).ok().and_then(|s| s.parse().ok()) {
                            m.entry(id).or_insert_with(|| f[0].to_vec());
                        }
                    }
                }
            }
            m
        };
        Names { users: parse("/etc/passwd"), groups: parse("/etc/group") }
    }

    fn user(&mut self, uid: u32) -> Vec<u8> {
        self.users.get(&uid).cloned().unwrap_or_default()
    }

    fn group(&mut self, gid: u32) -> Vec<u8> {
        self.groups.get(&gid).cloned().unwrap_or_default()
    }
}

/// Dirty bytes [`Writeback`] lets pile up before it starts writing them out.
const WRITEBACK_STEP: u64 = 8 << 20;

/// A file being written from start to end, whose pages go to disk while it
/// is written (every [`WRITEBACK_STEP`] bytes) instead of all at the final
/// `fsync`: the sync then waits for the last few MiB only, and the written
/// archive does not fill the page cache with dirty pages.
pub struct Writeback {
    file: File,
    written: u64,
    started: u64,
}

impl Writeback {
    fn new(file: File) -> Writeback {
        Writeback { file, written: 0, started: 0 }
    }
}

impl Write for Writeback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_STEP {
            // Only a hint: a filesystem that refuses it still gets the fsync.
            let _ = crate::sys::io::start_writeback(&self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Runs `write` on a temporary file beside `out` and renames it into place
/// only on success, so an interrupted run never leaves a valid-looking archive.
pub fn write_atomically<T>(out: &Path, write: impl FnOnce(Writeback) -> Result<T, Error>) -> Result<T, Error> {
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().ok_or_else(|| Error::io(out.display(), io::Error::other("no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".thaw-partial-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
    let sync = file.try_clone().map_err(|e| Error::io(tmp.display(), e))?;
    let res = write(Writeback::new(file)).and_then(|v| {
        let mut s = &sync;
        s.flush().and_then(|_| sync.sync_all()).map_err(|e| Error::io(tmp.display(), e))?;
        fs::rename(&tmp, out).map_err(|e| Error::io(out.display(), e))?;
        Ok(v)
    });
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}
