//! `thaw convert`: re-frames an existing `.tar`, `.tar.gz`, `.tar.xz` or
//! `.tar.zst` into a thaw archive in one streaming pass (no extraction).

use super::index::{normalize_path, Entry, EntryKind};
use super::pack::write_atomically;
use super::writer::{ArchiveWriter, WriterOptions};
use super::Error;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct ConvertSummary {
    pub entries: usize,
    pub id: [u8; 16],
    pub warnings: Vec<String>,
}

/// Opens `input` and wraps it in the decompressor its magic bytes call for.
pub fn open_tar_stream(input: &Path) -> Result<Box<dyn Read>, Error> {
    let file = File::open(input).map_err(|e| Error::io(input.display(), e))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let magic = {
        use std::io::BufRead;
        r.fill_buf().map_err(|e| Error::io(input.display(), e))?.get(..6).map(<[u8]>::to_vec).unwrap_or_default()
    };
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz2::read::XzDecoder::new_multi_decoder(r))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || magic.starts_with(&[0x5e, 0x2a, 0x4d, 0x18]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(|e| Error::io(input.display(), e))?)
    } else {
        Box::new(r)
    })
}

pub fn convert(input: &Path, out: &Path, opts: WriterOptions, progress: &(dyn Fn(u64) + Sync)) -> Result<ConvertSummary, Error> {
    let stream = open_tar_stream(input)?;
    let name = input.display().to_string();
    write_atomically(out, |file| {
        let mut w = ArchiveWriter::new(file, opts)?;
        let mut warnings = Vec::new();
        // Path -> position in w.entries(), to resolve hard link targets.
        let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut tar = tar::Archive::new(stream);
        let entries = tar.entries().map_err(|e| Error::io(&name, e))?;
        for item in entries {
            let mut item = item.map_err(|e| Error::corrupt("input tar", format!("{name}: {e}")))?;
            let raw_path = item.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            let bad = |why: String| Error::BadEntry { path: shown.clone(), why };
            let h = item.header().clone();
            let Some(kind) = EntryKind::from_tar(h.entry_type()) else {
                warnings.push(format!("{shown}: tar entry type {:?} skipped", h.entry_type()));
                continue;
            };
            let Some(path) = normalize_path(&raw_path) else {
                if raw_path.split(|&b| b == b'/').any(|c| c == b"..") {
                    return Err(bad("`..` in the path (would escape the target directory)".into()));
                }
                continue; // the root `./` entry
            };
            let mut e = Entry::new(path, kind);
            e.mode = h.mode().map_err(|err| bad(err.to_string()))? & 0o7777;
            e.uid = h.uid().unwrap_or(0) as u32;
            e.gid = h.gid().unwrap_or(0) as u32;
            e.uname = h.username_bytes().unwrap_or_default().to_vec();
            e.gname = h.groupname_bytes().unwrap_or_default().to_vec();
            e.mtime = h.mtime().unwrap_or(0) as i64;
            if matches!(kind, EntryKind::CharDev | EntryKind::BlockDev) {
                e.dev_major = h.device_major().ok().flatten().unwrap_or(0);
                e.dev_minor = h.device_minor().ok().flatten().unwrap_or(0);
            }
            if let Some(exts) = item.pax_extensions().map_err(|err| bad(err.to_string()))? {
                for ext in exts {
                    let ext = ext.map_err(|err| bad(err.to_string()))?;
                    let (k, v) = (ext.key_bytes(), ext.value_bytes());
                    let num = || std::str::from_utf8(v).ok();
                    match k {
                        b"mtime" => {
                            if let Some((s, ns)) = num().and_then(parse_pax_time) {
                                e.mtime = s;
                                e.mtime_nsec = ns;
                            }
                        }
                        b"uid" => e.uid = num().and_then(|s| s.parse().ok()).unwrap_or(e.uid),
                        b"gid" => e.gid = num().and_then(|s| s.parse().ok()).unwrap_or(e.gid),
                        b"uname" => e.uname = v.to_vec(),
                        b"gname" => e.gname = v.to_vec(),
                        _ => {
                            if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                                e.xattrs.push((name.to_vec(), v.to_vec()));
                            }
                        }
                    }
                }
            }
            e.xattrs.sort();
            match kind {
                EntryKind::Symlink => {
                    e.link = item.link_name_bytes().ok_or_else(|| bad("symlink without a target".into()))?.into_owned();
                }
                EntryKind::Hardlink => {
                    let l = item.link_name_bytes().ok_or_else(|| bad("hard link without a target".into()))?;
                    e.link = normalize_path(&l).ok_or_else(|| bad("hard link target escapes the archive".into()))?;
                    // thaw hard-links regular files only: a link to a link
                    // points at its file, and a link to a symlink, fifo or
                    // device (GNU tar records `ln` of a symlink so) is a copy.
                    if let Some(t) = seen.get(&e.link).map(|&i| &w.entries()[i]) {
                        match t.kind {
                            EntryKind::File | EntryKind::Dir => {}
                            EntryKind::Hardlink => e.link = t.link.clone(),
                            other => {
                                e.kind = other;
                                e.link = t.link.clone();
                                e.dev_major = t.dev_major;
                                e.dev_minor = t.dev_minor;
                            }
                        }
                    }
                }
                EntryKind::File => e.size = item.size(),
                _ => {}
            }
            seen.insert(e.path.clone(), w.entries().len());
            if kind == EntryKind::File && e.size > 0 {
                let mut counted = Counted { inner: &mut item, progress };
                w.append(e, Some(&mut counted))?;
            } else {
                w.append(e, None)?;
            }
        }
        let n = w.entries().len();
        // Check the result as a reader will, before it is renamed into place.
        super::index::Index::new(w.entries().to_vec(), u64::MAX)?;
        let (_, id) = w.finish()?;
        Ok(ConvertSummary { entries: n, id, warnings })
    })
}

struct Counted<'a, R> {
    inner: &'a mut R,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Parses a PAX time such as `1700000000.123456789` or `-1.5`.
pub fn parse_pax_time(s: &str) -> Option<(i64, u32)> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let neg = int.starts_with('-');
    let secs: i64 = int.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ns: u32 = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    if neg && ns > 0 {
        Some((secs - 1, 1_000_000_000 - ns))
    } else {
        Some((secs, ns))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pax_time() {
        assert_eq!(super::parse_pax_time("5.000000001"), Some((5, 1)));
        assert_eq!(super::parse_pax_time("12"), Some((12, 0)));
        assert_eq!(super::parse_pax_time("1.5"), Some((1, 500_000_000)));
        assert_eq!(super::parse_pax_time("-2.75"), Some((-3, 250_000_000)));
    }
}
