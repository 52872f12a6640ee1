//! In-memory entry points for the fuzz targets in `fuzz/` (see
//! fuzz/README.md). Not a stable API: hidden from the docs, used by nothing
//! but the fuzzers and tests. Everything else the targets call is the
//! library's ordinary public API (`SeekTable`, `index::decode_entries`,
//! `Index::new`, `Archive::from_source`, `sys::fanotify::decode`).

use crate::archive::convert::{convert_stream, ConvertSummary};
use crate::archive::{Archive, Error, Source, WriterOptions};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// An archive held in memory, read through the same [`Source`] trait as a file.
pub struct MemSource(pub Arc<Vec<u8>>);

impl Source for MemSource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let short = || Error::io("<memory>", io::Error::from(io::ErrorKind::UnexpectedEof));
        let start = usize::try_from(offset).map_err(|_| short())?;
        let end = start.checked_add(buf.len()).ok_or_else(short)?;
        buf.copy_from_slice(self.0.get(start..end).ok_or_else(short)?);
        Ok(())
    }
    fn name(&self) -> String {
        "<memory>".into()
    }
}

/// Opens an archive held in memory.
pub fn open_mem(bytes: &[u8]) -> Result<Archive, Error> {
    Archive::from_source(Box::new(MemSource(Arc::new(bytes.to_vec()))))
}

/// A `Write` into a shared buffer (the writer wants `'static` output).
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `thaw convert` of an uncompressed tar stream held in memory, with the
/// smallest piece and run size (so small inputs still span several frames),
/// small index blocks and one compression thread; returns the summary and
/// the archive's bytes.
pub fn convert_in_memory(tar: &[u8]) -> Result<(ConvertSummary, Vec<u8>), Error> {
    let out = SharedBuf::default();
    let opts = WriterOptions { level: 1, piece_size: 4096, run_size: 4096, threads: 1, block_target: 1024, ..WriterOptions::default() };
    let (summary, writer) = convert_stream(tar, "<memory>", out.clone(), opts, &|_| {})?;
    drop(writer);
    let bytes = std::mem::take(&mut *out.0.lock().unwrap());
    Ok((summary, bytes))
}
