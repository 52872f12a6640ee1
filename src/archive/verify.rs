//! `thaw verify ARCHIVE`: decodes every frame (in parallel, checking sizes
//! and checksums) and walks the tar stream, checking that every member the
//! stock `tar` would see agrees with the index.

use super::convert::MemberEntries;
use super::index::{Entry, EntryKind};
use super::members::resolve;
use super::{Archive, Error};
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
    ready: VecDeque<Vec<u8>>,
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
            let decoded: Vec<Result<Vec<u8>, Error>> = (self.next..end).into_par_iter().map(|i| self.archive.decode_frame(i)).collect();
            for (i, d) in (self.next..end).zip(decoded) {
                (self.progress)(1);
                match d {
                    Ok(v) => self.ready.push_back(v),
                    Err(e) => {
                        let why = super::error_chain(&e);
                        self.problems.push(if why.starts_with("frame ") { why } else { format!("frame {i}: {why}") });
                        // Keep offsets right for the tar walk: zeros in place of the frame.
                        self.ready.push_back(vec![0; self.archive.seek_table().frame(i).decompressed as usize]);
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
    let tar_problems = match stream_entries(&mut reader) {
        Ok(members) => {
            // What `convert` would index from this stream, against the index.
            let (expected, _) = resolve(members);
            report.entries_checked = expected.len().min(archive.entries().len());
            compare(&expected, archive.entries())
        }
        Err(e) => vec![format!("tar stream: {}", super::error_chain(&e))],
    };
    // Drain the remaining frames so every checksum is checked.
    let _ = io::copy(&mut reader, &mut io::sink());
    report.problems = reader.problems;
    report.problems.extend(tar_problems);
    Ok(report)
}

/// Every member of the tar stream as an entry, with its data offset.
fn stream_entries(reader: &mut StreamReader<'_>) -> Result<Vec<Entry>, Error> {
    let mut tar = tar::Archive::new(reader);
    let mut members = MemberEntries::default();
    let mut out = Vec::new();
    for m in tar.entries().map_err(|e| Error::corrupt("tar stream", e.to_string()))? {
        let mut m = m.map_err(|e| Error::corrupt("tar stream", e.to_string()))?;
        if let Some(mut e) = members.entry(&mut m, &out)? {
            e.data_offset = m.raw_file_position();
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
