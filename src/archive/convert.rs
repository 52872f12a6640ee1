//! `thaw convert`: re-frames an existing `.tar`, `.tar.gz`, `.tar.xz` or
//! `.tar.zst` into a thaw archive in one streaming pass (no extraction).

use super::index::{normalize_path, Entry, EntryKind, Index};
use super::pack::write_atomically;
use super::writer::{ArchiveWriter, EarlyEnd, MemberData, Progress, WriterOptions};
use super::Error;
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::rc::Rc;

/// What `convert` did, for the command's report.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    /// Entries in the new archive's index.
    pub entries: usize,
    /// The new archive's id.
    pub id: [u8; 16],
    /// Members left out (unsupported types, members a later one replaces).
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

/// Re-frames the tar stream in `input` (any supported compression) into a
/// thaw archive at `out`, written under a temporary name and renamed when complete.
pub fn convert(input: &Path, out: &Path, opts: WriterOptions, progress: Progress<'_>) -> Result<ConvertSummary, Error> {
    let stream = open_tar_stream(input)?;
    let name = input.display().to_string();
    write_atomically(out, |file| convert_stream(stream, &name, file, opts, progress).map(|(summary, _)| summary))
}

/// Re-frames an uncompressed tar stream into a thaw archive written to `out`
/// (`name` names the input in messages); returns the summary and the output.
/// The archive is complete only when this returns Ok.
pub fn convert_stream<R: Read, W: Write + Send + 'static>(
    stream: R,
    name: &str,
    out: W,
    opts: WriterOptions,
    progress: Progress<'_>,
) -> Result<(ConvertSummary, Box<dyn Write + Send>), Error> {
    let ended = Rc::new(Cell::new(false));
    let stream = EndWatch { inner: stream, ended: ended.clone() };
    let mut w = ArchiveWriter::new(out, opts)?;
    let mut members = MemberEntries::default();
    let mut tar = tar::Archive::new(stream);
    for item in tar.entries().map_err(|e| Error::io(name, e))? {
        let mut item = item.map_err(|e| bad_header(name, w.entries().last(), ended.get(), e))?;
        let Some(e) = members.entry(&mut item, w.entries())? else { continue };
        if e.kind == EntryKind::File && e.size > 0 {
            let size = e.size;
            w.append(e, Some(&mut MemberData::new(&mut item, size, EarlyEnd::Truncated, progress)))?;
        } else {
            w.append(e, None)?;
        }
    }
    let mut warnings = members.warnings;
    warnings.extend(w.keep_winners());
    let n = w.entries().len();
    // Check the result as a reader will, before it is renamed into place.
    Index::new(w.entries().to_vec(), u64::MAX)?;
    let (out, id) = w.finish()?;
    Ok((ConvertSummary { entries: n, id, warnings }, out))
}

/// An unreadable member header: say where, and whether the input simply ended.
fn bad_header(name: &str, last: Option<&Entry>, ended: bool, e: io::Error) -> Error {
    let place = match last {
        Some(l) => format!("in the header after member {:?}", l.path_lossy()),
        None => "in the first header".into(),
    };
    let why = if ended { format!("input ends {place} (truncated tar): {e}") } else { format!("{place}: {e}") };
    Error::corrupt("input tar", format!("{name}: {why}"))
}

/// Notes when the input stream has ended, to tell truncation from damage.
struct EndWatch<R> {
    inner: R,
    ended: Rc<Cell<bool>>,
}

impl<R: Read> Read for EndWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended.set(true);
        }
        Ok(n)
    }
}

/// Turns tar members into index entries, in stream order. `verify` uses it
/// too, to check an archive's index against its tar stream.
#[derive(Debug, Default)]
pub struct MemberEntries {
    /// Path -> position of its latest member among the entries so far.
    seen: HashMap<Vec<u8>, usize>,
    /// Members skipped so far (unsupported tar types), one line each.
    pub warnings: Vec<String>,
}

impl MemberEntries {
    /// The entry for `item`, the member after `earlier` (the entries made so
    /// far, in order); None for members thaw skips (the root `./`, sockets...).
    pub fn entry<R: Read>(&mut self, item: &mut tar::Entry<'_, R>, earlier: &[Entry]) -> Result<Option<Entry>, Error> {
        let raw_path = item.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let bad = |why: String| Error::BadEntry { path: shown.clone(), why };
        let Some(kind) = EntryKind::from_tar(item.header().entry_type()) else {
            self.warnings.push(format!("{shown}: tar entry type {:?} skipped", item.header().entry_type()));
            return Ok(None);
        };
        let Some(path) = normalize_path(&raw_path) else {
            if raw_path.split(|&b| b == b'/').any(|c| c == b"..") {
                return Err(bad("`..` in the path (would escape the target directory)".into()));
            }
            return Ok(None); // the root `./` entry
        };
        let mut e = Entry::new(path, kind);
        header_fields(&mut e, item.header()).map_err(|err| bad(err.to_string()))?;
        if let Some(exts) = item.pax_extensions().map_err(|err| bad(err.to_string()))? {
            for ext in exts {
                let ext = ext.map_err(|err| bad(err.to_string()))?;
                pax_field(&mut e, ext.key_bytes(), ext.value_bytes());
            }
        }
        e.xattrs.sort();
        // One value per name (format 2 requires strictly increasing names).
        e.xattrs.dedup_by(|b, a| a.0 == b.0);
        match kind {
            EntryKind::Symlink => {
                e.link = item.link_name_bytes().ok_or_else(|| bad("symlink without a target".into()))?.into_owned();
            }
            EntryKind::Hardlink => {
                let l = item.link_name_bytes().ok_or_else(|| bad("hard link without a target".into()))?;
                e.link = normalize_path(&l).ok_or_else(|| bad("hard link target escapes the archive".into()))?;
                if let Some(t) = self.seen.get(&e.link).map(|&i| &earlier[i]) {
                    copy_if_not_file(&mut e, t);
                }
            }
            EntryKind::File => e.size = item.size(),
            _ => {}
        }
        self.seen.insert(e.path.clone(), earlier.len());
        Ok(Some(e))
    }
}

/// thaw hard-links regular files only: a link to a symlink, fifo or device
/// (GNU tar records `ln` of a symlink so) becomes a copy of it. A link to a
/// link stays one: [`super::members::resolve`] finds the file behind it.
fn copy_if_not_file(e: &mut Entry, target: &Entry) {
    match target.kind {
        EntryKind::File | EntryKind::Dir | EntryKind::Hardlink => {}
        other => {
            e.kind = other;
            e.link = target.link.clone();
            e.dev_major = target.dev_major;
            e.dev_minor = target.dev_minor;
        }
    }
}

/// Metadata from the member's own header.
fn header_fields(e: &mut Entry, h: &tar::Header) -> io::Result<()> {
    e.mode = h.mode()? & 0o7777;
    e.uid = h.uid().unwrap_or(0) as u32;
    e.gid = h.gid().unwrap_or(0) as u32;
    e.uname = h.username_bytes().unwrap_or_default().to_vec();
    e.gname = h.groupname_bytes().unwrap_or_default().to_vec();
    e.mtime = h.mtime().unwrap_or(0) as i64;
    if matches!(e.kind, EntryKind::CharDev | EntryKind::BlockDev) {
        e.dev_major = h.device_major().ok().flatten().unwrap_or(0);
        e.dev_minor = h.device_minor().ok().flatten().unwrap_or(0);
    }
    Ok(())
}

/// One PAX record: exact mtime, ids and names, `SCHILY.xattr.*`.
fn pax_field(e: &mut Entry, k: &[u8], v: &[u8]) {
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
