//! `thaw verify ARCHIVE`: decodes every frame (in parallel, checking sizes
//! and checksums) and walks the tar stream, checking that every member the
//! stock `tar` would see agrees with the index.

use super::convert::MemberEntries;
use super::index::{Entry, EntryKind};
use super::members::resolve;
use super::{Archive, Error};
use crate::sys::mem::FrameBuf;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::io::{self, Read};

/// What `verify` found; the archive is sound when `problems` is empty.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Data frames in the seek table (all are decoded and checksummed).
    pub frames: usize,
    /// Index entries compared with the tar stream's members.
    pub entries_checked: usize,
    /// Every bad frame and every disagreement between index and tar stream.
    pub problems: Vec<String>,
}

/// Reads the uncompressed tar stream, decoding frames in parallel batches.
struct StreamReader<'a> {
    archive: &'a Archive,
    next: usize,
    ready: VecDeque<FrameBuf>,
    pos: usize,
    batch: usize,
    problems: Vec<String>,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl Read for StreamReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(front) = self.ready.front() {
                if self.pos < front.len() {
                    let n = (front.len() - self.pos).min(buf.len());
                    buf[..n].copy_from_slice(&front[self.pos..self.pos + n]);
                    self.pos += n;
                    return Ok(n);
                }
                self.ready.pop_front();
                self.pos = 0;
                continue;
            }
            let total = self.archive.seek_table().len();
            if self.next >= total {
                return Ok(0);
            }
            let end = (self.next + self.batch).min(total);
            let decoded: Vec<Result<FrameBuf, Error>> = (self.next..end).into_par_iter().map(|i| self.archive.decode_frame(i)).collect();
            for (i, d) in (self.next..end).zip(decoded) {
                (self.progress)(1);
                match d {
                    Ok(v) => self.ready.push_back(v),
                    Err(e) => {
                        let why = super::error_chain(&e);
                        self.problems.push(if why.starts_with("frame ") { why } else { format!("frame {i}: {why}") });
                        // Keep offsets right for the tar walk: zeros in place of the frame.
                        self.ready.push_back(FrameBuf::zeroed(self.archive.seek_table().frame(i).decompressed as usize));
                    }
                }
            }
            self.next = end;
        }
    }
}

/// Checks every frame against the seek table and the index against the tar
/// stream; `progress` is called once per frame decoded. Problems go in the
/// report, so one bad frame does not hide the rest.
pub fn verify(archive: &Archive, progress: &(dyn Fn(u64) + Sync)) -> Result<VerifyReport, Error> {
    let mut reader = StreamReader {
        archive,
        next: 0,
        ready: VecDeque::new(),
        pos: 0,
        batch: rayon::current_num_threads() * 2,
        problems: Vec::new(),
        progress,
    };
    let mut report = VerifyReport { frames: archive.seek_table().len(), ..Default::default() };
    let prologue = archive.check_prologue().err().map(|e| format!("index: {}", super::error_chain(&e)));
    let index = archive.entries();
    let tar_problems = match (stream_entries(&mut reader, archive.piece_size()), index) {
        (Ok(members), Ok(index)) => {
            // What `convert` would index from this stream, against the index.
            let (mut expected, _) = resolve(members);
            if archive.piece_size().is_some() {
                expected.sort_unstable_by(|a, b| a.path.cmp(&b.path));
            }
            report.entries_checked = expected.len().min(index.len());
            let mut p = compare(&expected, index);
            p.extend(frame_rule(archive, index));
            p
        }
        (Err(e), _) => vec![format!("tar stream: {}", super::error_chain(&e))],
        (_, Err(e)) => vec![format!("index: {}", super::error_chain(&e))],
    };
    // Drain the remaining frames so every checksum is checked.
    let _ = io::copy(&mut reader, &mut io::sink());
    report.problems = reader.problems;
    report.problems.extend(prologue);
    report.problems.extend(tar_problems);
    Ok(report)
}

/// Format 2's frame rule: each chunk of a file (the file when it is at most
/// one piece, else each piece) lies inside one frame.
fn frame_rule(archive: &Archive, index: &[Entry]) -> Vec<String> {
    if archive.piece_size().is_none() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for e in index.iter().filter(|e| e.kind == EntryKind::File) {
        for (k, (s, end)) in archive.chunks(e).into_iter().enumerate() {
            if archive.frames_for(e, s, end - s).len() != 1 {
                problems.push(format!("{}: chunk {k} spans frames (breaks the frame rule)", e.path_lossy()));
            }
        }
    }
    problems
}

/// XXH3 of a member's data, and of each piece when it is larger than `piece`.
fn hash_data(r: &mut dyn Read, size: u64, piece: u64) -> io::Result<(u64, Vec<u64>)> {
    let mut whole = xxhash_rust::xxh3::Xxh3::new();
    let mut pieces = Vec::new();
    let mut buf = vec![0u8; (piece.min(size) as usize).max(1)];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n])?;
        whole.update(&buf[..n]);
        if size > piece {
            pieces.push(xxhash_rust::xxh3::xxh3_64(&buf[..n]));
        }
        left -= n as u64;
    }
    Ok((whole.digest(), pieces))
}

/// Every member of the tar stream as an entry, with its data offset (and
/// with `piece`, format 2's piece size, the XXH3 of its data and pieces).
fn stream_entries(reader: &mut StreamReader<'_>, piece: Option<u64>) -> Result<Vec<Entry>, Error> {
    let mut tar = tar::Archive::new(reader);
    let mut members = MemberEntries::default();
    let mut out = Vec::new();
    for m in tar.entries().map_err(|e| Error::corrupt("tar stream", e.to_string()))? {
        let mut m = m.map_err(|e| Error::corrupt("tar stream", e.to_string()))?;
        if let Some(mut e) = members.entry(&mut m, &out)? {
            e.data_offset = m.raw_file_position();
            if let (Some(p), EntryKind::File) = (piece, e.kind) {
                let (x, pieces) =
                    hash_data(&mut m, e.size, p).map_err(|err| Error::corrupt("tar stream", format!("{}: {err}", e.path_lossy())))?;
                e.data_xxh3 = Some(x);
                e.piece_xxh3 = pieces;
            }
            out.push(e);
        }
    }
    Ok(out)
}

/// Where the index disagrees with the tar stream (path, type, file data), up
/// to the first entry out of step.
fn compare(expected: &[Entry], index: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    for (want, got) in expected.iter().zip(index) {
        let shown = want.path_lossy();
        if want.path != got.path || want.kind != got.kind {
            problems.push(format!("{shown}: index has {:?} ({:?}) at this position", got.path_lossy(), got.kind));
            return problems;
        }
        if want.kind == EntryKind::File && (want.size != got.size || want.data_offset != got.data_offset) {
            problems.push(format!(
                "{shown}: tar says {} bytes at {}, index says {} at {}",
                want.size, want.data_offset, got.size, got.data_offset
            ));
        } else if want.kind == EntryKind::File
            && got.data_xxh3.is_some()
            && (want.data_xxh3, &want.piece_xxh3) != (got.data_xxh3, &got.piece_xxh3)
        {
            problems.push(format!("{shown}: the data's XXH3 (file or piece) differs from the index"));
        }
    }
    if let Some(e) = expected.get(index.len()) {
        problems.push(format!("{}: in the tar stream but not in the index", e.path_lossy()));
    }
    if let Some(e) = index.get(expected.len()) {
        problems.push(format!("{}: in the index but not in the tar stream", e.path_lossy()));
    }
    problems
}
