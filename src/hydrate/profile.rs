//! Access profiles (`formats/profile.md`): which ranges of which files a
//! job's readers asked for, in first-access order. `serve --record` keeps a
//! [`Recorder`] the hydrator tells about every reader access; `--prefetch`
//! replays a [`Profile`] in the background ([`Prefetch`]) while readers
//! come first; `pack --order` and `dehydrate --keep` read its paths.

use super::chunks::lock;
use super::hydrator::{FileState, Hydrator, Lookup};
use super::Error;
use crate::archive::{Archive, EntryKind};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::ops::Range;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Version of the profile format (`formats/profile.md`).
pub const PROFILE_VERSION: u32 = 1;

/// Compressed bytes of a remote archive's frames a prefetch asks for up
/// front (half the remote source's 64 MiB range cache, so they stay there
/// until used); the rest is asked for file by file as the prefetch goes.
const PREFETCH_HINT: u64 = 32 << 20;

/// The first line of a profile.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// Always [`PROFILE_VERSION`].
    pub thaw_profile: u32,
    /// Hex id of the archive the ranges are of.
    pub archive_id: String,
}

/// One range a reader asked for first at this point of the job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProfileRange {
    /// The file's path in the archive (UTF-8; see `path_bytes`).
    pub path: String,
    /// The path's bytes when it is not UTF-8 (then `path` is lossy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
    /// Index of the file's entry in the archive (a hint: the path decides).
    pub entry: usize,
    /// Start of the range in the file.
    pub offset: u64,
    /// Length of the range.
    pub len: u64,
}

impl ProfileRange {
    /// The path's bytes.
    pub fn path_bytes(&self) -> Vec<u8> {
        self.path_bytes.clone().unwrap_or_else(|| self.path.as_bytes().to_vec())
    }
}

/// A loaded profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its header.
    pub header: Header,
    /// Its ranges, in first-access order.
    pub ranges: Vec<ProfileRange>,
}

impl Profile {
    /// Reads a profile (zstd-compressed JSON lines).
    pub fn load(path: &Path) -> Result<Profile, Error> {
        let shown = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| Error::io(&shown, e))?;
        let dec = zstd::stream::read::Decoder::new(f).map_err(|e| Error::io(&shown, e))?;
        let mut lines = std::io::BufReader::new(dec).lines();
        let bad = |n: usize, why: String| Error::Setup(format!("{shown}: line {n}: not a thaw profile: {why}"));
        let first = lines.next().ok_or_else(|| bad(1, "empty".into()))?.map_err(|e| Error::io(&shown, e))?;
        let header: Header = serde_json::from_str(&first).map_err(|e| bad(1, e.to_string()))?;
        if header.thaw_profile != PROFILE_VERSION {
            return Err(bad(1, format!("version {} (this thaw reads {PROFILE_VERSION})", header.thaw_profile)));
        }
        let mut ranges = Vec::new();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(|e| Error::io(&shown, e))?;
            if line.trim().is_empty() {
                continue;
            }
            ranges.push(serde_json::from_str(&line).map_err(|e| bad(i + 2, e.to_string()))?);
        }
        Ok(Profile { header, ranges })
    }

    /// Writes the profile, compressed, replacing `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let shown = path.display().to_string();
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let f = std::fs::File::create(&tmp)?;
            let mut enc = zstd::stream::write::Encoder::new(f, 9)?;
            serde_json::to_writer(&mut enc, &self.header)?;
            enc.write_all(b"\n")?;
            for r in &self.ranges {
                serde_json::to_writer(&mut enc, r)?;
                enc.write_all(b"\n")?;
            }
            enc.finish()?.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(shown, e)
        })
    }

    /// Refuses a profile of another archive.
    pub fn check_archive(&self, archive: &Archive, shown: &Path) -> Result<(), Error> {
        if self.header.archive_id != archive.id_hex() {
            return Err(Error::Setup(format!(
                "{}: profile of archive {}, but the archive is {}: record it again for this archive",
                shown.display(),
                self.header.archive_id,
                archive.id_hex()
            )));
        }
        Ok(())
    }

    /// The same ranges as a profile of `archive` (for one re-packed with
    /// `pack --order` of this profile): its id, and each path's entry
    /// number there. Ranges of paths that are not regular files (or not
    /// there at all) in `archive` are dropped; returns how many.
    pub fn for_archive(&self, archive: &Archive) -> Result<(Profile, usize), Error> {
        let mut ranges = Vec::with_capacity(self.ranges.len());
        let mut dropped = 0;
        for r in &self.ranges {
            match archive.find(&r.path_bytes())? {
                Some((n, e)) if e.kind == EntryKind::File && r.offset.saturating_add(r.len) <= e.size => {
                    ranges.push(ProfileRange { entry: n as usize, ..r.clone() })
                }
                _ => dropped += 1,
            }
        }
        let header = Header { thaw_profile: PROFILE_VERSION, archive_id: archive.id_hex() };
        Ok((Profile { header, ranges }, dropped))
    }

    /// The distinct paths, in first-access order.
    pub fn paths(&self) -> Vec<Vec<u8>> {
        let mut seen = HashSet::new();
        self.ranges.iter().map(ProfileRange::path_bytes).filter(|p| seen.insert(p.clone())).collect()
    }
}

/// Collects first accesses while serving.
#[derive(Debug, Default)]
pub struct Recorder {
    inner: Mutex<RecorderInner>,
}

#[derive(Debug, Default)]
struct RecorderInner {
    /// (entry, chunk) pairs seen.
    seen: HashSet<(usize, usize)>,
    /// (entry, start, end) in first-access order, adjacent chunks merged.
    order: Vec<(usize, u64, u64)>,
}

impl RecorderInner {
    /// Chunk `k` (bytes `[s, e)`) of `entry` was asked for; kept only the first time.
    fn add(&mut self, entry: usize, k: usize, s: u64, e: u64) {
        if !self.seen.insert((entry, k)) {
            return;
        }
        match self.order.last_mut() {
            Some(last) if last.0 == entry && last.2 == s => last.2 = e,
            _ => self.order.push((entry, s, e)),
        }
    }
}

impl Recorder {
    /// Notes that a reader asked for chunks `wanted` of `st`.
    pub fn note(&self, st: &FileState, wanted: Range<usize>) {
        let mut g = lock(&self.inner);
        for k in wanted {
            let (s, e) = st.chunks.range(k);
            g.add(st.entry, k, s, e);
        }
    }

    /// The profile recorded so far.
    pub fn profile(&self, archive: &Archive) -> Profile {
        let g = lock(&self.inner);
        let ranges = g
            .order
            .iter()
            .filter_map(|&(entry, s, e)| {
                let p = &archive.index().ok()?.get(entry)?.path;
                let text = String::from_utf8_lossy(p).into_owned();
                let path_bytes = std::str::from_utf8(p).is_err().then(|| p.clone());
                Some(ProfileRange { path: text, path_bytes, entry, offset: s, len: e - s })
            })
            .collect();
        Profile { header: Header { thaw_profile: PROFILE_VERSION, archive_id: archive.id_hex() }, ranges }
    }
}

/// What a prefetch did, saved in the statistics.
#[derive(Debug, Default)]
pub struct PrefetchStats {
    /// Ranges of the profile hydrated (or found in place).
    pub ranges_done: AtomicU64,
    /// Ranges whose path the archive does not have (or not as a file).
    pub ranges_skipped: AtomicU64,
    /// Times a prefetch thread stood back because readers were waiting.
    pub yields: AtomicU64,
}

/// Hydrates a profile's ranges in order on a few threads of its own,
/// pausing while any reader's event is pending (readers come first).
pub struct Prefetch {
    /// What it did so far.
    pub stats: Arc<PrefetchStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What prefetch threads need from the daemon.
pub trait PrefetchHost: Send + Sync + 'static {
    /// The hydrator filling the stubs.
    fn hydrator(&self) -> &Hydrator;
    /// Opens a file of the stub tree (unwatched) for writing, by path.
    fn open(&self, rel: &[u8]) -> Option<std::fs::File>;
    /// Reader events waiting for an answer right now.
    fn readers_waiting(&self) -> usize;
    /// A file became complete through `fd`.
    fn finished(&self, st: &FileState, fd: std::os::fd::BorrowedFd<'_>);
    /// Makes room under the disk budget (if any) for `need` more bytes,
    /// held until the returned room is dropped.
    fn make_room(&self, need: u64) -> Option<super::budget::Room<'_>>;
}

impl Prefetch {
    /// Starts `threads` threads hydrating `ranges` (resolved against the
    /// archive by path; the unknown ones counted as skipped).
    pub fn start(host: Arc<dyn PrefetchHost>, profile: &Profile, threads: usize) -> Prefetch {
        let stats = Arc::new(PrefetchStats::default());
        let index = host.hydrator().archive().index().ok();
        let mut items = Vec::new();
        let mut hints = Vec::new();
        for r in &profile.ranges {
            let path = r.path_bytes();
            match index.and_then(|i| i.lookup(&path).map(|e| (i, e))).map(|(i, e)| (i, i.data_entry(e))) {
                Some((_, d)) if matches!(d.kind, EntryKind::File) => {
                    hints.push((d.clone(), r.offset, r.len));
                    items.push((path, r.offset, r.offset + r.len));
                }
                _ => {
                    stats.ranges_skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // A remote archive: ask for the profile's first PREFETCH_HINT bytes
        // of frames now, in a few large requests, rather than file by file.
        host.hydrator().archive().prefetch_many(&hints, PREFETCH_HINT);
        let items = Arc::new(items);
        let next = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads.max(1))
            .filter_map(|i| {
                let (host, items, next, stop, stats) = (host.clone(), items.clone(), next.clone(), stop.clone(), stats.clone());
                std::thread::Builder::new()
                    .name(format!("thaw-prefetch-{i}"))
                    .spawn(move || prefetch_loop(&*host, &items, &next, &stop, &stats))
                    .ok()
            })
            .collect();
        Prefetch { stats, stop, threads }
    }

    /// Stops the threads (after the chunk each is writing) and waits for them.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

type Item = (Vec<u8>, u64, u64);

fn prefetch_loop(host: &dyn PrefetchHost, items: &[Item], next: &AtomicUsize, stop: &AtomicBool, stats: &PrefetchStats) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((path, start, end)) = items.get(i) else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if let Some(file) = host.open(path) {
            tracing::debug!("prefetch {} [{start}, {end})", String::from_utf8_lossy(path));
            prefetch_range(host, &file, *start, *end, stop, stats);
        }
        stats.ranges_done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Hydrates `[start, end)` of one file a chunk at a time, standing back
/// whenever readers are waiting.
fn prefetch_range(host: &dyn PrefetchHost, file: &std::fs::File, start: u64, end: u64, stop: &AtomicBool, stats: &PrefetchStats) {
    let hyd = host.hydrator();
    let fd = file.as_fd();
    let Ok(Lookup::Stub(st, _)) = hyd.lookup(fd) else { return };
    for k in st.chunks.wanted(start, end) {
        // Readers first: wait (a little at a time) while any is pending.
        let mut waited = 0;
        while host.readers_waiting() > 0 && waited < 200 && !stop.load(Ordering::Relaxed) {
            if waited == 0 {
                stats.yields.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(1));
            waited += 1;
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let _room = host.make_room(st.chunks.missing_bytes(k..k + 1));
        let (s, e) = st.chunks.range(k);
        match hyd.ensure_background(&st, fd, s, e) {
            Ok(r) if r.complete => host.finished(&st, fd),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("prefetch: {}", super::chain(&e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_keeps_first_access_order_and_merges_adjacent_chunks() {
        let mut g = RecorderInner::default();
        g.add(7, 0, 0, 10);
        g.add(7, 1, 10, 20);
        g.add(3, 0, 0, 5);
        g.add(7, 1, 10, 20);
        g.add(7, 2, 20, 30);
        assert_eq!(g.order, vec![(7, 0, 20), (3, 0, 5), (7, 20, 30)]);
    }
}
