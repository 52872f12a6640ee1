//! `serve --max-disk SIZE`: keeps the bytes hydrated from the archive under
//! SIZE. Files stay stubs when complete ([`Hydrator::keep_stubs`]), so every
//! read comes to the daemon and says which file was read last; before a
//! worker fills a range that would take the tree over its budget, the least
//! recently read files go back to stubs ([`super::dehydrate`]), down to 90 %
//! of it, never one a process holds open or mapped and never one a user
//! changed (those are not counted either: their bytes are the user's).

use super::chunks::lock;
use super::dehydrate::{evict, prepare, Options, Rules, Summary, Victim};
use super::events::Events;
use super::hydrator::{FileState, Hydrator};
use super::Error;
use crate::tree::stage::{open_rel, Stage};
use rustix::fs::OFlags;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Room a writer made under the budget; given back when dropped.
pub struct Room<'a> {
    budget: &'a Budget,
    need: u64,
}

impl Drop for Room<'_> {
    fn drop(&mut self) {
        self.budget.reserved.fetch_sub(self.need, Ordering::Relaxed);
    }
}

/// The disk budget of one serve.
pub struct Budget {
    max: u64,
    /// Archive bytes in the tree when serving began.
    base: u64,
    /// Bytes given back since.
    evicted: AtomicU64,
    /// Bytes writers made room for and are writing now (see [`Room`]).
    reserved: AtomicU64,
    /// Files given back since.
    pub files_evicted: AtomicU64,
    /// One eviction at a time.
    busy: Mutex<()>,
    /// The stub tree (unwatched).
    tree: OwnedFd,
}

impl Budget {
    /// A budget of `max` bytes. Every file already hydrated from the archive
    /// becomes a stub the hydrator knows (never read yet, so first to go).
    pub fn new(max: u64, stage: &Stage, hyd: &Hydrator) -> Result<Budget, Error> {
        let tree = stage.tree_fd()?.try_clone_to_owned().map_err(|e| Error::io(stage.tree().display(), e))?;
        let rules = Rules::new(hyd.archive())?;
        let mut base = 0;
        for f in stage.tree_files()? {
            let Some(file) = crate::tree::stage::open_tree_file(tree.as_fd(), &f, OFlags::RDWR)? else { continue };
            if let Ok(el) = rules.check(&file)? {
                rules.restub(&file, &el)?;
                if let super::hydrator::Lookup::Stub(st, _) = hyd.lookup(file.as_fd())? {
                    base += st.chunks.done_bytes();
                }
            }
        }
        let (evicted, reserved, files_evicted) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        Ok(Budget { max, base, evicted, reserved, files_evicted, busy: Mutex::new(()), tree })
    }

    /// Archive bytes in the tree now (as written, less what was given
    /// back), plus what writers have made room for and not written yet.
    pub fn used(&self, hyd: &Hydrator) -> u64 {
        let now = self.base + hyd.stats.bytes_written.load(Ordering::Relaxed) + self.reserved.load(Ordering::Relaxed);
        now.saturating_sub(self.evicted.load(Ordering::Relaxed))
    }

    /// Counts bytes given back by a `thaw dehydrate` the daemon ran.
    pub fn note_evicted(&self, chunk_bytes: u64, files: u64) {
        self.evicted.fetch_add(chunk_bytes, Ordering::Relaxed);
        self.files_evicted.fetch_add(files, Ordering::Relaxed);
    }

    /// Makes room for `need` more bytes: evicts least recently read files
    /// until the tree is at 90 % of the budget less `need`. The room is
    /// held for the caller (so concurrent writers do not all count on the
    /// same free space) until the returned [`Room`] is dropped, once the
    /// bytes are written (and counted as such).
    pub fn make_room(&self, hyd: &Hydrator, events: &Events, need: u64) -> Room<'_> {
        let _one = lock(&self.busy);
        self.evict_for(hyd, events, need);
        self.reserved.fetch_add(need, Ordering::Relaxed);
        Room { budget: self, need }
    }

    fn evict_for(&self, hyd: &Hydrator, events: &Events, need: u64) {
        let used = self.used(hyd);
        if used + need <= self.max {
            return;
        }
        let target = (self.max / 10 * 9).saturating_sub(need);
        match self.evict_down(hyd, events, used.saturating_sub(target)) {
            Ok((s, chunk_bytes)) => {
                self.note_evicted(chunk_bytes, s.dehydrated);
                tracing::debug!("budget: {} files ({} bytes) back to stubs", s.dehydrated, s.bytes_freed);
            }
            Err(e) => tracing::warn!("budget: {}", super::chain(&e)),
        }
    }

    /// Evicts at least `want` bytes if it can, least recently read first.
    fn evict_down(&self, hyd: &Hydrator, events: &Events, want: u64) -> Result<(Summary, u64), Error> {
        let rules = Rules::new(hyd.archive())?;
        let mut states: Vec<_> =
            hyd.states().into_iter().map(|st| (st.accesses().1, st)).filter(|(_, st)| st.chunks.done_bytes() > 0).collect();
        states.sort_by_key(|(last, _)| *last);
        let mut states = states.into_iter().map(|(_, st)| st);
        let (mut s, mut freed) = (Summary::default(), 0);
        // Batches (one /proc scan each) until enough is freed or no file is left:
        // some files are held or busy, so each batch plans for more than is missing.
        while freed < want {
            let mut victims = Vec::new();
            let mut planned = 0;
            for st in states.by_ref() {
                if let Some(v) = self.victim(&rules, hyd, events, &st)? {
                    planned += st.chunks.done_bytes();
                    victims.push(v);
                }
                if planned >= (want - freed) + (want - freed) / 2 {
                    break;
                }
            }
            if victims.is_empty() {
                break;
            }
            freed += evict(&rules, victims, &mut s)?;
        }
        Ok((s, freed))
    }

    /// The stub of `st` ready to evict, if it still is at its entry's path.
    fn victim(&self, rules: &Rules<'_>, hyd: &Hydrator, events: &Events, st: &FileState) -> Result<Option<Victim>, Error> {
        let Some(entry) = hyd.archive().index()?.get(st.entry) else { return Ok(None) };
        let Some(file) = open_rel(self.tree.as_fd(), &entry.path, OFlags::RDWR)? else { return Ok(None) };
        if !rustix::fs::fstat(file.as_fd()).is_ok_and(|s| (s.st_dev, s.st_ino) == st.key) {
            return Ok(None);
        }
        Ok(prepare(rules, hyd, events, file, &Options::default())?.ok())
    }
}
