//! The entries of an open archive, whatever the format: format 1's index is
//! decoded whole at open (one "block" in stream order); format 2's blocks
//! are read on demand, one block per lookup, through a small single-flight
//! cache. Entry number `n` (what stub markers name) is the position in the
//! format's order: stream order in format 1, path order in format 2.

use super::index::{Entry, Index};
use super::index_v2::{self, BlockContext, DirRecord, Header};
use super::reader::{Cache, Source};
use super::Error;
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// Compressed index blocks a listing of a remote archive asks for at once.
const HINT_INDEX_BYTES: u64 = 32 << 20;

/// Decoded blocks kept by a format 2 catalog (about 50 kernel-tree blocks).
const BLOCK_CACHE_BYTES: usize = 4 << 20;

/// The entries of an archive.
pub(crate) enum Catalog {
    /// Format 1: the whole index, validated at open.
    V1 {
        /// Every entry, in stream order.
        index: Index,
    },
    /// Format 2: blocks read on demand.
    V2(Box<V2Catalog>),
}

/// Format 2's directory and block cache.
pub(crate) struct V2Catalog {
    pub(crate) header: Header,
    dir: Vec<DirRecord>,
    /// File offset of each block.
    block_off: Vec<u64>,
    /// Entry number of each block's first entry, then `E`.
    first: Vec<u64>,
    blocks: Cache<Vec<Entry>>,
    /// Every entry, checked as a whole (built by the first full pass).
    full: OnceLock<Index>,
}

impl V2Catalog {
    /// A catalog over the checked directory `dir` of an index frame starting
    /// at file offset `index_start`.
    pub(crate) fn new(header: Header, dir: Vec<DirRecord>, index_start: u64) -> V2Catalog {
        let mut block_off = Vec::with_capacity(dir.len());
        let mut first = Vec::with_capacity(dir.len() + 1);
        let (mut off, mut n) = (index_start + index_v2::PROLOGUE_LEN as u64, 0);
        for r in &dir {
            block_off.push(off);
            first.push(n);
            off += r.c_len;
            n += r.count;
        }
        first.push(n);
        V2Catalog { header, dir, block_off, first, blocks: Cache::new(BLOCK_CACHE_BYTES), full: OnceLock::new() }
    }

    /// Where the blocks lie in the file: end to end, the first's start to the last's end.
    fn blocks_range(&self) -> std::ops::Range<u64> {
        let start = self.block_off.first().copied().unwrap_or(0);
        start..self.block_off.last().zip(self.dir.last()).map_or(start, |(&o, r)| o + r.c_len)
    }

    /// Reads and decodes block `b`, bypassing the cache.
    fn load(&self, source: &dyn Source, b: usize) -> Result<Vec<Entry>, Error> {
        let mut buf = vec![0u8; self.dir[b].c_len as usize];
        source.read_exact_at(&mut buf, self.block_off[b])?;
        self.decode(b, &buf)
    }

    /// Decodes block `b` from its compressed bytes.
    fn decode(&self, b: usize, buf: &[u8]) -> Result<Vec<Entry>, Error> {
        let r = &self.dir[b];
        let cx = BlockContext {
            piece_size: u64::from(self.header.piece_size),
            stream_len: self.header.stream_len,
            next_key: self.dir.get(b + 1).map(|n| &n.first_path[..]),
        };
        index_v2::decode_block(r, buf, &cx).map_err(|e| match e {
            Error::Corrupt { what, why } => Error::Corrupt { what: format!("{what} {b}"), why },
            other => other,
        })
    }

    /// Block `b` through the cache.
    fn block(&self, source: &dyn Source, b: usize) -> Result<Arc<Vec<Entry>>, Error> {
        self.blocks.get(b, || {
            let v = self.load(source, b)?;
            Ok((v, self.dir[b].r_len as usize * 2))
        })
    }

    fn find(&self, source: &dyn Source, path: &[u8]) -> Result<Option<(u64, Entry)>, Error> {
        if let Some(index) = self.full.get() {
            return Ok(index.position(path).map(|i| (i as u64, index.entries()[i].clone())));
        }
        let b = self.dir.partition_point(|r| r.first_path.as_slice() <= path);
        if b == 0 {
            return Ok(None);
        }
        let block = self.block(source, b - 1)?;
        Ok(block.binary_search_by(|e| e.path.as_slice().cmp(path)).ok().map(|i| (self.first[b - 1] + i as u64, block[i].clone())))
    }

    fn entry(&self, source: &dyn Source, n: u64) -> Result<Option<Entry>, Error> {
        if n >= self.header.entry_count {
            return Ok(None);
        }
        if let Some(index) = self.full.get() {
            return Ok(index.get(n as usize).cloned());
        }
        let b = self.first.partition_point(|&f| f <= n) - 1;
        let block = self.block(source, b)?;
        Ok(block.get((n - self.first[b]) as usize).cloned())
    }

    /// Every entry, block by block, through `f` (entry number, entry); at
    /// most one block decoded at a time, the cache left alone. A remote
    /// source is first asked for all the blocks at once when they are at
    /// most [`HINT_INDEX_BYTES`]: one request instead of a readahead that
    /// grows from small ones (10 requests for a kernel tree's 1.7 MiB).
    fn for_each(&self, source: &dyn Source, f: &mut dyn FnMut(u64, &Entry) -> Result<(), Error>) -> Result<(), Error> {
        if source.version().is_some() && self.header.blocks_len <= HINT_INDEX_BYTES {
            source.prefetch(self.blocks_range());
        }
        for b in 0..self.dir.len() {
            for (i, e) in self.load(source, b)?.iter().enumerate() {
                f(self.first[b] + i as u64, e)?;
            }
        }
        Ok(())
    }

    /// The whole index, with the checks only a full pass can make (no entry
    /// below a non-directory, hard links to earlier files, distinct members).
    fn full(&self, source: &dyn Source) -> Result<&Index, Error> {
        if let Some(i) = self.full.get() {
            return Ok(i);
        }
        // The blocks lie end to end: one read for all of them (one request
        // from a remote source), then decoded in parallel and moved (not
        // cloned) into one list, in order. The read starts at the index
        // frame's prologue, which `populate` copies into the stage next:
        // then that costs no request of its own.
        let blocks = self.blocks_range();
        let (start, end) = (blocks.start.saturating_sub(index_v2::PROLOGUE_LEN as u64), blocks.end);
        let mut all_bytes =
            vec![0u8; usize::try_from(end - start).map_err(|_| Error::Corrupt { what: "index".into(), why: "too large".into() })?];
        source.read_exact_at(&mut all_bytes, start)?;
        let blocks: Vec<Vec<Entry>> = (0..self.dir.len())
            .into_par_iter()
            .map(|b| {
                let from = (self.block_off[b] - start) as usize;
                self.decode(b, &all_bytes[from..from + self.dir[b].c_len as usize])
            })
            .collect::<Result<_, _>>()?;
        let mut all = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
        for b in blocks {
            all.extend(b);
        }
        let index = Index::new_sorted(all, self.header.stream_len)?;
        Ok(self.full.get_or_init(|| index))
    }
}

impl Catalog {
    /// Number of entries.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Catalog::V1 { index, .. } => index.len() as u64,
            Catalog::V2(c) => c.header.entry_count,
        }
    }

    /// The entry at a normalized path, with its number.
    pub(crate) fn find(&self, source: &dyn Source, path: &[u8]) -> Result<Option<(u64, Entry)>, Error> {
        match self {
            Catalog::V1 { index, .. } => Ok(index.position(path).map(|i| (i as u64, index.entries()[i].clone()))),
            Catalog::V2(c) => c.find(source, path),
        }
    }

    /// Entry number `n`.
    pub(crate) fn entry(&self, source: &dyn Source, n: u64) -> Result<Option<Entry>, Error> {
        match self {
            Catalog::V1 { index, .. } => Ok(usize::try_from(n).ok().and_then(|n| index.get(n)).cloned()),
            Catalog::V2(c) => c.entry(source, n),
        }
    }

    /// Every entry in order, streamed.
    pub(crate) fn for_each(&self, source: &dyn Source, f: &mut dyn FnMut(u64, &Entry) -> Result<(), Error>) -> Result<(), Error> {
        match self {
            Catalog::V1 { index, .. } => index.entries().iter().enumerate().try_for_each(|(i, e)| f(i as u64, e)),
            Catalog::V2(c) => match c.full.get() {
                Some(index) => index.entries().iter().enumerate().try_for_each(|(i, e)| f(i as u64, e)),
                None => c.for_each(source, f),
            },
        }
    }

    /// The whole index (format 2: decoded and checked on first use).
    pub(crate) fn full(&self, source: &dyn Source) -> Result<&Index, Error> {
        match self {
            Catalog::V1 { index, .. } => Ok(index),
            Catalog::V2(c) => c.full(source),
        }
    }

    /// Blocks decoded so far through the cache (format 2), for tests.
    pub(crate) fn blocks_decoded(&self) -> u64 {
        match self {
            Catalog::V1 { .. } => 0,
            Catalog::V2(c) => c.blocks.decodes.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}
