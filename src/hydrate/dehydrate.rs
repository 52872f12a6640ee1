//! `thaw dehydrate`: turns files hydrated from the archive back into stubs
//! (holes punched, marker restored), so the next read hydrates them again.
//! Also the eviction step of the disk budget ([`super::budget`]).
//!
//! Which files: only those provably thaw's and unchanged ([`Rules::check`]):
//! the marker of a stub, or the origin record a complete file keeps in its
//! place (`trusted.thaw.origin`; no user can set either), names this very
//! inode, so a file a user created,
//! renamed over a path or copied is never touched; the size, owner and mtime
//! are the entry's and the marker has no `modified`/`limit`, so a file a user
//! wrote to or truncated keeps every byte; and it has no more links than the
//! archive gives it, so a hard link a user made elsewhere keeps its bytes.
//!
//! Never under a reader: a file some process holds open or mapped
//! (`/proc/*/fd`, `/proc/*/map_files`, as the guard looks) is kept. While a
//! daemon serves the tree, the daemon does the work (asked over its control
//! socket, [`super::control`]): it removes the file's ignore mark so every
//! access comes to it again, notes the file's access count, scans for
//! holders, and then punches only while holding the file's state lock and
//! only if no access came in between ([`FileState::evict_with`]). A reader
//! that opened the file before the scan is seen by it; one that came after
//! raised an event, which either changed the count or waits for the lock and
//! then finds the chunks missing and hydrates them.

use super::events::Events;
use super::hydrator::{data_extents, FileState, Hydrator, Lookup};
use super::profile::Profile;
use super::Error;
use crate::archive::{Archive, Entry, EntryKind};
use crate::tree::marker::{self, Marker};
use crate::tree::stage::{open_tree_file, Stage, TreeFile};
use crate::tree::target::entry_times;
use rustix::fs::{self as rfs, FallocateFlags, OFlags};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What to dehydrate.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// Only these paths (relative to DIR) and what is under them; all if empty.
    pub paths: Vec<PathBuf>,
    /// Only files not read for this long.
    pub older_than: Option<Duration>,
    /// Keep the files this profile names.
    pub keep: Option<PathBuf>,
}

/// What a dehydration did and why it left files alone.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// Files turned back into stubs.
    pub dehydrated: u64,
    /// Disk bytes of archive data given back.
    pub bytes_freed: u64,
    /// Stubs with nothing in place: nothing to do.
    pub already_stubs: u64,
    /// Files not provably thaw's (created, renamed over or copied by a user, or no origin record).
    pub kept_not_ours: u64,
    /// Files a user wrote to, truncated, touched, chowned or chmodded.
    pub kept_modified: u64,
    /// Files with hard links the archive does not have.
    pub kept_linked: u64,
    /// Files a process holds open or mapped.
    pub kept_held: u64,
    /// Files read more recently than `--older-than`.
    pub kept_recent: u64,
    /// Files the `--keep` profile names.
    pub kept_profile: u64,
    /// Files accessed or written while the dehydration looked at them.
    pub kept_busy: u64,
    /// Bytes of the chunks that were in place in the files dehydrated while
    /// served (what the disk budget counts in).
    #[serde(default)]
    pub chunk_bytes_freed: u64,
}

/// Why a file is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Not provably a file thaw made from this archive.
    NotOurs,
    /// A user changed it.
    Modified,
    /// More links than the archive gives it.
    Linked,
    /// Nothing from the archive is in it.
    Empty,
    /// Read more recently than `--older-than`.
    Recent,
}

impl Summary {
    fn count(&mut self, k: Keep) {
        match k {
            Keep::NotOurs => self.kept_not_ours += 1,
            Keep::Modified => self.kept_modified += 1,
            Keep::Linked => self.kept_linked += 1,
            Keep::Empty => self.already_stubs += 1,
            Keep::Recent => self.kept_recent += 1,
        }
    }
}

/// A file that may be dehydrated, as [`Rules::check`] found it.
#[derive(Debug, Clone)]
pub struct Eligible {
    /// Its entry (the one its origin names).
    pub entry: usize,
    /// (device, inode).
    pub key: (u64, u64),
    /// Bytes allocated below its size.
    pub allocated: u64,
    /// Its marker, if it is still a stub.
    pub marker: Option<Marker>,
    /// Last access time.
    pub atime: SystemTime,
}

/// The checks of the module doc, for one archive.
pub struct Rules<'a> {
    archive: &'a Archive,
    id: String,
    /// Links the archive gives each data entry (keyed by its address).
    links: HashMap<usize, u64>,
}

impl<'a> Rules<'a> {
    /// The rules for files of `archive` (whose whole index this loads).
    pub fn new(archive: &'a Archive) -> Result<Rules<'a>, Error> {
        let index = archive.index()?;
        let mut links = HashMap::new();
        for e in index.entries().iter().filter(|e| matches!(e.kind, EntryKind::File | EntryKind::Hardlink)) {
            *links.entry(index.data_entry(e) as *const Entry as usize).or_insert(0) += 1;
        }
        Ok(Rules { archive, id: archive.id_hex(), links })
    }

    /// Whether the open file may be dehydrated.
    pub fn check(&self, file: &File) -> Result<Result<Eligible, Keep>, Error> {
        let fd = file.as_fd();
        let path = || super::hydrator::fd_path(fd);
        let st = rfs::fstat(fd).map_err(|e| Error::io(path(), e))?;
        let at = |e: std::io::Error| Error::io(path(), e);
        // Who made it: the marker of a stub, else the origin record the
        // marker left when the file became complete; either names this inode.
        let marker = match marker::read(fd) {
            Ok(m) => m,
            Err(_) => return Ok(Err(Keep::NotOurs)),
        };
        let (entry_i, ino) = match &marker {
            Some(m) if m.id != self.id => return Ok(Err(Keep::NotOurs)),
            Some(m) if m.modified || m.limit.is_some() => return Ok(Err(Keep::Modified)),
            Some(m) => (m.entry, m.ino),
            None => match marker::read_origin(fd).map_err(at)? {
                Some(o) => (o.entry, o.ino),
                None => return Ok(Err(Keep::NotOurs)),
            },
        };
        let index = self.archive.index()?;
        let entry = match index.get(entry_i) {
            Some(e) if ino == st.st_ino && e.kind == EntryKind::File => e,
            _ => return Ok(Err(Keep::NotOurs)),
        };
        let d = index.data_entry(entry);
        let mtime_same = (st.st_mtime, st.st_mtime_nsec as u32) == (entry.mtime, entry.mtime_nsec);
        let owner_same = !rustix::process::geteuid().is_root() || (st.st_uid, st.st_gid) == (d.uid, d.gid);
        if st.st_size as u64 != d.size || !mtime_same || !owner_same || st.st_mode & 0o044 & !d.mode != 0 {
            return Ok(Err(Keep::Modified));
        }
        if st.st_nlink as u64 > self.links.get(&(d as *const Entry as usize)).copied().unwrap_or(1) {
            return Ok(Err(Keep::Linked));
        }
        let allocated: u64 = data_extents(fd, d.size).map_err(|e| Error::io(path(), e))?.iter().map(|(a, b)| b - a).sum();
        if allocated == 0 {
            return Ok(Err(Keep::Empty));
        }
        let atime = SystemTime::UNIX_EPOCH + Duration::new(st.st_atime.max(0) as u64, st.st_atime_nsec as u32);
        Ok(Ok(Eligible { entry: entry_i, key: (st.st_dev, st.st_ino), allocated, marker, atime }))
    }

    /// Makes sure the file carries a fresh marker (a complete file has none)
    /// and no origin record: with its data still in place that is a
    /// consistent stub, so a crash between this and the punch loses nothing.
    ///
    /// The origin record goes first: written beside it, the marker would not
    /// fit in the inode, and ext4 would give it an xattr block of its own
    /// (4 KiB per stub, kept after the origin goes). A crash between the two
    /// leaves the file whole with neither record, which thaw treats as the
    /// user's and never empties.
    pub fn restub(&self, file: &File, el: &Eligible) -> Result<(), Error> {
        let fd = file.as_fd();
        let at = |e| Error::io(super::hydrator::fd_path(fd), e);
        // Read again, not taken from `el`: a worker may have completed the
        // file (marker removed, origin written) since it was checked.
        let stub = marker::read(fd).map_err(at)?.is_some();
        marker::remove_origin(fd).map_err(at)?;
        if !stub {
            marker::write(fd, &Marker::new(self.id.clone(), el.entry, el.key.1)).map_err(at)?;
        }
        Ok(())
    }

    /// Empties the file: punches out every byte and puts the entry's mtime
    /// back (a punch changes it, and a changed mtime means "a user wrote").
    pub fn punch(&self, file: &File, el: &Eligible) -> Result<(), Error> {
        let fd = file.as_fd();
        let index = self.archive.index()?;
        let entry = index.get(el.entry).expect("checked");
        let size = index.data_entry(entry).size;
        let at = |e| Error::io(super::hydrator::fd_path(fd), e);
        // Up to the end of the last block: a punch that stops at EOF only
        // zeroes the block holding the tail, which stays allocated and would
        // then count as a chunk in place.
        let block = rfs::fstat(fd).map_err(at)?.st_blksize.max(4096) as u64;
        let end = size.div_ceil(block) * block;
        rfs::fallocate(fd, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, 0, end).map_err(at)?;
        rfs::futimens(fd, &entry_times(entry)).map_err(at)
    }
}

/// Inodes (device, inode) some process other than us holds open or mapped.
pub fn held_inodes() -> HashSet<(u64, u64)> {
    let me = std::process::id().to_string();
    let mut out = HashSet::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.filter_map(Result::ok) {
        let name = p.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) || name.to_str() == Some(&me) {
            continue;
        }
        for sub in ["fd", "map_files"] {
            let Ok(entries) = std::fs::read_dir(p.path().join(sub)) else { continue };
            for e in entries.filter_map(Result::ok) {
                // stat follows the magic link to the open file without opening it.
                if let Ok(st) = rfs::stat(e.path()) {
                    out.insert((st.st_dev, st.st_ino));
                }
            }
        }
    }
    out
}

/// The tree's files the options select (paths, `--keep`), and the count kept by the profile.
fn select(stage: &Stage, archive: &Archive, opts: &Options) -> Result<(Vec<TreeFile>, u64), Error> {
    let wanted: Vec<Vec<u8>> =
        opts.paths.iter().map(|p| crate::archive::index::normalize_path(p.as_os_str().as_bytes()).unwrap_or_default()).collect();
    let keep: HashSet<Vec<u8>> = match &opts.keep {
        Some(p) => {
            let prof = Profile::load(p)?;
            prof.check_archive(archive, p)?;
            prof.paths().into_iter().collect()
        }
        None => HashSet::new(),
    };
    let under =
        |rel: &[u8]| wanted.is_empty() || wanted.iter().any(|p| rel == &p[..] || (rel.starts_with(p) && rel.get(p.len()) == Some(&b'/')));
    let mut kept = 0;
    let files = stage
        .tree_files()?
        .into_iter()
        .filter(|f| under(&f.rel))
        .filter(|f| {
            let k = keep.contains(&f.rel);
            kept += u64::from(k);
            !k
        })
        .collect();
    Ok((files, kept))
}

fn too_recent(opts: &Options, last: SystemTime) -> bool {
    opts.older_than.is_some_and(|d| SystemTime::now().duration_since(last).unwrap_or_default() < d)
}

/// `thaw dehydrate DIR` while nothing serves it: under the tree's lock,
/// straight in the stage. Last read is the file's atime.
pub fn dehydrate_offline(stage: &Stage, archive: &Archive, opts: &Options) -> Result<Summary, Error> {
    let _lock = stage.lock()?;
    if stage.is_served() {
        return Err(Error::Setup(format!("{}: is being served: ask its daemon", stage.dir.display())));
    }
    let rules = Rules::new(archive)?;
    let (files, kept) = select(stage, archive, opts)?;
    let mut s = Summary { kept_profile: kept, ..Default::default() };
    let tree = stage.tree_fd()?;
    for batch in files.chunks(batch()) {
        let mut todo = Vec::new();
        for f in batch {
            let Some(file) = open_tree_file(tree, f, OFlags::RDWR)? else { continue };
            match rules.check(&file)? {
                Err(k) => s.count(k),
                Ok(el) if too_recent(opts, el.atime) => s.count(Keep::Recent),
                Ok(el) => todo.push((file, el)),
            }
        }
        let held = held_inodes();
        for (file, el) in todo {
            if held.contains(&el.key) {
                s.kept_held += 1;
                continue;
            }
            rules.restub(&file, &el)?;
            rules.punch(&file, &el)?;
            s.dehydrated += 1;
            s.bytes_freed += el.allocated;
        }
    }
    Ok(s)
}

/// Files looked at between two scans for holders: each stays open until its
/// scan, so a large tree (the Linux source has 80k files) goes in batches
/// that keep the open files well under the fd limit.
fn batch() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(4096);
    (soft / 4).clamp(16, 1024) as usize
}

/// A file the daemon is about to evict: its state and the access count seen.
pub struct Victim {
    file: File,
    el: Eligible,
    st: Arc<FileState>,
    seen: u64,
}

/// Turns `file` into a stub the daemon knows, ready to evict: checked,
/// marker in place, ignore mark gone, access count noted. `Err(keep)` when
/// it stays as it is.
pub fn prepare(rules: &Rules<'_>, hyd: &Hydrator, events: &Events, file: File, opts: &Options) -> Result<Result<Victim, Keep>, Error> {
    let el = match rules.check(&file)? {
        Ok(el) if too_recent(opts, el.atime) => return Ok(Err(Keep::Recent)),
        Ok(el) => el,
        Err(k) => return Ok(Err(k)),
    };
    {
        // Not while a worker completes the file: its origin-then-marker
        // swap and this marker-then-origin one must not interleave.
        let _markers = hyd.marker_lock();
        rules.restub(&file, &el)?;
    }
    let Lookup::Stub(st, _) = hyd.lookup(file.as_fd())? else { return Ok(Err(Keep::NotOurs)) };
    // From here on every access of the inode comes to the daemon.
    events.watch(file.as_fd()).map_err(|e| Error::io(super::hydrator::fd_path(file.as_fd()), e))?;
    let (seen, last) = st.accesses();
    let last_read = last.map_or(el.atime, |t| (SystemTime::now() - t.elapsed()).max(el.atime));
    if too_recent(opts, last_read) {
        return Ok(Err(Keep::Recent));
    }
    Ok(Ok(Victim { file, el, st, seen }))
}

/// Evicts the victims no process holds, counting what it did in `s`.
/// Returns the bytes of chunks that were in place in the evicted files (the
/// measure the budget counts in, like the hydrator's `bytes_written`).
pub fn evict(rules: &Rules<'_>, victims: Vec<Victim>, s: &mut Summary) -> Result<u64, Error> {
    let held = held_inodes();
    let mut chunk_bytes = 0;
    for v in victims {
        if held.contains(&v.el.key) {
            s.kept_held += 1;
            continue;
        }
        match v.st.evict_with(v.seen, || rules.punch(&v.file, &v.el))? {
            Some(done) => {
                s.dehydrated += 1;
                s.bytes_freed += v.el.allocated;
                chunk_bytes += done;
            }
            None => s.kept_busy += 1,
        }
    }
    Ok(chunk_bytes)
}

/// `thaw dehydrate DIR` inside the daemon serving it (see the module doc).
pub fn dehydrate_served(stage: &Stage, hyd: &Hydrator, events: &Events, opts: &Options) -> Result<Summary, Error> {
    let archive = hyd.archive();
    let rules = Rules::new(archive)?;
    let (files, kept) = select(stage, archive, opts)?;
    let mut s = Summary { kept_profile: kept, ..Default::default() };
    let tree = stage.tree_fd()?;
    let started = Instant::now();
    for batch in files.chunks(batch()) {
        let mut victims = Vec::new();
        for f in batch {
            let Some(file) = open_tree_file(tree, f, OFlags::RDWR)? else { continue };
            match prepare(&rules, hyd, events, file, opts)? {
                Ok(v) => victims.push(v),
                Err(k) => s.count(k),
            }
        }
        s.chunk_bytes_freed += evict(&rules, victims, &mut s)?;
    }
    tracing::info!("dehydrated {} files ({} bytes) in {:?}", s.dehydrated, s.bytes_freed, started.elapsed());
    Ok(s)
}
