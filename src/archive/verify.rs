//! `thaw verify ARCHIVE`: decodes every frame (in parallel, checking sizes
//! and checksums) and walks the tar stream, checking that every member the
//! stock `tar` would see agrees with the index.

use super::index::{normalize_path, EntryKind};
use super::{Archive, Error};
use rayon::prelude::*;
use std::collections::VecDeque;
use std::io::{self, Read};

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub frames: usize,
    pub entries_checked: usize,
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
            let decoded: Vec<Result<Vec<u8>, String>> = (self.next..end).into_par_iter().map(|i| self.archive.decode_frame(i)).collect();
            for (i, d) in (self.next..end).zip(decoded) {
                (self.progress)(1);
                match d {
                    Ok(v) => self.ready.push_back(v),
                    Err(why) => {
                        self.problems.push(format!("frame {i}: {why}"));
                        // Keep offsets right for the tar walk: zeros in place of the frame.
                        self.ready.push_back(vec![0; self.archive.seek_table().frame(i).decompressed as usize]);
                    }
                }
            }
            self.next = end;
        }
    }
}

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
    let mut tar_problems = Vec::new();
    {
        let mut tar = tar::Archive::new(&mut reader);
        let index = archive.index();
        let mut expected = index.entries().iter();
        match tar.entries() {
            Ok(members) => {
                for m in members {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            tar_problems.push(format!("tar stream: {e}"));
                            break;
                        }
                    };
                    let raw = m.path_bytes().into_owned();
                    let Some(path) = normalize_path(&raw) else { continue };
                    let shown = String::from_utf8_lossy(&path).into_owned();
                    let Some(e) = expected.next() else {
                        tar_problems.push(format!("{shown}: in the tar stream but not in the index"));
                        break;
                    };
                    report.entries_checked += 1;
                    if e.path != path {
                        tar_problems.push(format!("{shown}: index has {:?} at this position", e.path_lossy()));
                        break;
                    }
                    if e.kind == EntryKind::File && (m.size() != e.size || m.raw_file_position() != e.data_offset) {
                        tar_problems.push(format!(
                            "{shown}: tar says {} bytes at {}, index says {} at {}",
                            m.size(),
                            m.raw_file_position(),
                            e.size,
                            e.data_offset
                        ));
                    }
                }
                if let Some(e) = expected.next() {
                    tar_problems.push(format!("{}: in the index but not in the tar stream", e.path_lossy()));
                }
            }
            Err(e) => tar_problems.push(format!("tar stream: {e}")),
        }
    }
    // Drain the remaining frames so every checksum is checked.
    let _ = io::copy(&mut reader, &mut io::sink());
    report.problems = reader.problems;
    report.problems.extend(tar_problems);
    Ok(report)
}
