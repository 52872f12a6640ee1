//! A frame decoded only as far as someone needs it (issue #10's early stop).
//!
//! A small file sits somewhere in a frame of up to several MiB; decoding the
//! whole frame to serve it multiplies the work by the frame's size over the
//! file's. [`PartialFrame`] keeps the frame's decoder between requests: it
//! decodes up to the end of what was asked (rounded up to a zstd block, at
//! most 128 KiB, plus one input step), and a later request for more resumes
//! where it stopped, so no byte is ever decoded twice.
//!
//! Bytes of an unfinished frame have not been checked by zstd's content
//! checksum (that comes at the frame's end): the caller serves them only
//! through a checksum of its own (the format's per-entry and per-piece
//! XXH3). Reaching the end checks zstd's checksum and the content size.

use crate::sys::mem::FrameBuf;
use zstd::zstd_safe::{self, DCtx, DParameter, InBuffer, OutBuffer};

/// Compressed bytes handed to the decoder per step: about 128 KiB of output
/// at typical ratios, so a request overshoots by at most that much.
const STEP: usize = 32 * 1024;

/// Smallest read of compressed bytes. A read covers what the request
/// should need, estimated from the frame's ratio (its compressed share of
/// the bytes wanted), plus a margin; when the estimate falls short, each
/// later read at least doubles what was read. So a file anywhere in a frame
/// costs one read in the common case (one disk or network round trip when
/// cold), and a file at the start of a frame does not pay for the rest of it.
const FIRST_READ: usize = 64 * 1024;

/// Reads compressed bytes of the frame: `(offset in the frame, buffer)`.
pub type ReadFrame<'a> = dyn FnMut(usize, &mut [u8]) -> Result<(), String> + 'a;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartialError {
    /// Reading the compressed frame failed.
    #[error("{0}")]
    Read(String),
    /// zstd refused the data (corruption, or a checksum mismatch at the end).
    #[error("zstd: {0}")]
    Zstd(String),
    /// The bytes were taken ([`PartialFrame::take_decoded`]): use them from where they went.
    #[error("frame already handed over whole")]
    Spent,
    /// The frame ended before, or went on after, its stated content size.
    #[error("frame decodes to {got} bytes, expected {want}")]
    Size {
        /// Bytes the frame produced (so far, when it ended early).
        got: usize,
        /// Its content size.
        want: usize,
    },
}

/// One zstd frame, decoded up to [`PartialFrame::decoded`]`().len()` bytes.
pub struct PartialFrame {
    dctx: DCtx<'static>,
    /// The compressed bytes read so far, of `total`.
    input: Vec<u8>,
    total: usize,
    in_pos: usize,
    /// Capacity = the content size, never reallocated (zstd writes into it
    /// directly: `ZSTD_d_stableOutBuffer`); length = bytes decoded so far.
    out: FrameBuf,
    size: usize,
    done: bool,
    spent: bool,
}

impl std::fmt::Debug for PartialFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialFrame").field("decoded", &self.out.len()).field("size", &self.size).field("done", &self.done).finish()
    }
}

fn zstd_err(code: usize) -> PartialError {
    PartialError::Zstd(zstd_safe::get_error_name(code).to_string())
}

impl PartialFrame {
    /// A decoder for a zstd frame of `total` compressed and `size`
    /// decompressed bytes, read as needed through [`PartialFrame::advance`]'s reader.
    pub fn new(total: usize, size: usize) -> Result<PartialFrame, PartialError> {
        let mut dctx = DCtx::create();
        dctx.set_parameter(DParameter::StableOutBuffer(true)).map_err(zstd_err)?;
        let out = FrameBuf::with_capacity(size);
        Ok(PartialFrame { dctx, input: Vec::new(), total, in_pos: 0, out, size, done: false, spent: false })
    }

    /// The frame's content size.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The bytes decoded so far (a prefix of the frame's content).
    pub fn decoded(&self) -> &[u8] {
        &self.out
    }

    /// True once the whole frame is decoded and zstd's checks passed.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// Bytes the decoder and its buffers hold (for cache budgets).
    pub fn footprint(&self) -> usize {
        self.out.capacity() + self.input.capacity() + DCtx::sizeof(&self.dctx)
    }

    /// Decodes until at least `want` bytes (capped at the content size) are
    /// out. An error leaves the frame unusable: drop it.
    pub fn advance(&mut self, want: usize, read: &mut ReadFrame<'_>) -> Result<&[u8], PartialError> {
        if self.spent {
            return Err(PartialError::Spent);
        }
        let want = want.min(self.size);
        while self.out.len() < want || (want == self.size && !self.done) {
            if self.done {
                break;
            }
            self.step(want, read)?;
        }
        Ok(&self.out)
    }

    /// Hands over the decoded bytes of a complete frame (for a whole-frame
    /// cache); the frame is then spent: [`PartialFrame::is_spent`] is true
    /// and it decodes nothing more.
    pub fn take_decoded(&mut self) -> FrameBuf {
        self.spent = true;
        std::mem::replace(&mut self.out, FrameBuf::with_capacity(0))
    }

    /// True once [`PartialFrame::take_decoded`] took the bytes.
    pub fn is_spent(&self) -> bool {
        self.spent
    }

    /// Decodes the rest of the frame.
    pub fn finish(&mut self, read: &mut ReadFrame<'_>) -> Result<&[u8], PartialError> {
        self.advance(self.size, read)
    }

    fn step(&mut self, want: usize, read: &mut ReadFrame<'_>) -> Result<(), PartialError> {
        if self.in_pos == self.input.len() && self.input.len() < self.total {
            let at = self.input.len();
            let n = (self.total - at).min(read_size(at, want, self.size, self.total));
            self.input.resize(at + n, 0);
            if let Err(e) = read(at, &mut self.input[at..]) {
                self.input.truncate(at);
                return Err(PartialError::Read(e));
            }
        }
        let end = (self.in_pos + STEP).min(self.input.len());
        let mut input = InBuffer::around(&self.input[..end]);
        input.set_pos(self.in_pos);
        let before = (self.in_pos, self.out.len());
        let pos = self.out.len();
        let mut output = OutBuffer::around_pos(&mut self.out, pos);
        let hint = self.dctx.decompress_stream(&mut output, &mut input).map_err(zstd_err)?;
        self.in_pos = input.pos();
        let got = self.out.len();
        if hint == 0 {
            // The frame is over: its checksum matched; the size must too.
            if got != self.size || self.in_pos != self.total {
                return Err(PartialError::Size { got, want: self.size });
            }
            self.done = true;
        } else if (self.in_pos, got) == before && end == self.total {
            // All input consumed, no progress, frame not over: truncated (or too big).
            return Err(PartialError::Size { got, want: self.size });
        }
        Ok(())
    }
}

/// How many compressed bytes to read next, `at` being read already, for
/// `want` bytes of output from a frame of `size` (`total` compressed; the
/// caller caps the result at what is left of the frame):
/// the estimate of the input `want` needs at the frame's average ratio, an
/// eighth more and one step for the zstd block that holds its end, and at
/// least [`FIRST_READ`] or as much again as was read.
pub(crate) fn read_size(at: usize, want: usize, size: usize, total: usize) -> usize {
    let estimate = (total as u128 * want as u128 / size.max(1) as u128) as usize;
    let needed = (estimate + estimate / 8 + STEP).saturating_sub(at);
    needed.max(at).max(FIRST_READ)
}

#[cfg(test)]
mod tests {
    use super::{read_size, PartialError, PartialFrame, FIRST_READ};

    fn content(n: usize) -> Vec<u8> {
        // Compressible but not trivially: a counter's text.
        let mut v = Vec::with_capacity(n + 16);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(format!("{:x} ", x & 0xff_ffff).as_bytes());
        }
        v.truncate(n);
        v
    }

    /// A compressed frame that counts the bytes read from it.
    struct Src {
        frame: Vec<u8>,
        read: usize,
    }

    impl Src {
        fn read(&mut self, at: usize, buf: &mut [u8]) -> Result<(), String> {
            self.read += buf.len();
            buf.copy_from_slice(self.frame.get(at..at + buf.len()).ok_or("short")?);
            Ok(())
        }
    }

    /// A decoder over `frame`, and the frame to read it from.
    fn over(frame: Vec<u8>, size: usize) -> (PartialFrame, Src) {
        (PartialFrame::new(frame.len(), size).unwrap(), Src { frame, read: 0 })
    }

    fn frame(data: &[u8]) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        c.include_checksum(true).unwrap();
        c.include_contentsize(true).unwrap();
        c.compress(data).unwrap()
    }

    #[test]
    fn decodes_a_prefix_then_resumes_without_redoing_it() {
        let data = content(4 << 20);
        let z = frame(&data);
        let total = z.len();
        let (mut f, mut src) = over(z, data.len());
        let got = f.advance(10_000, &mut |a, b| src.read(a, b)).unwrap().len();
        assert!((10_000..1 << 20).contains(&got), "decoded {got} bytes for 10,000");
        // zstd needs the whole first block (up to 128 KiB of output) before it produces any.
        assert!(src.read <= 192 << 10 && src.read < total / 4, "read {} of {total} compressed bytes for 10,000 of output", src.read);
        assert_eq!(f.decoded(), &data[..got]);
        assert!(!f.is_complete());
        let got2 = f.advance(2 << 20, &mut |a, b| src.read(a, b)).unwrap().len();
        assert!((2 << 20..3 << 20).contains(&got2), "decoded {got2}");
        assert_eq!(f.finish(&mut |a, b| src.read(a, b)).unwrap(), &data[..]);
        assert!(f.is_complete());
        assert_eq!(src.read, total, "every compressed byte read exactly once");
        // Asking again is free and changes nothing.
        assert_eq!(f.advance(5, &mut |a, b| src.read(a, b)).unwrap().len(), data.len());
    }

    #[test]
    fn one_read_covers_a_request_deep_in_the_frame() {
        let data = content(4 << 20);
        let z = frame(&data);
        let total = z.len();
        let mut reads = 0;
        let (mut f, mut src) = over(z, data.len());
        f.advance(3 << 20, &mut |a, b| {
            reads += 1;
            src.read(a, b)
        })
        .unwrap();
        assert_eq!(reads, 1, "a request at 3/4 of the frame took {reads} reads");
        assert!(src.read < total, "read all {total} bytes for 3/4 of the frame");
        // Small requests still start small; the doubling rule still holds.
        assert_eq!(read_size(0, 100, 4 << 20, 1 << 20), FIRST_READ);
        assert_eq!(read_size(1 << 20, 100, 4 << 20, 1 << 20), 1 << 20);
    }

    #[test]
    fn a_corrupt_or_short_frame_is_an_error_by_its_end() {
        let data = content(1 << 20);
        let good = frame(&data);
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 2] ^= 0x40; // inside the content checksum
        let (mut f, mut src) = over(flipped, data.len());
        assert!(matches!(f.finish(&mut |a, b| src.read(a, b)), Err(PartialError::Zstd(_))));

        let (mut f, mut src) = over(good[..good.len() / 2].to_vec(), data.len());
        assert!(f.finish(&mut |a, b| src.read(a, b)).is_err(), "a truncated frame must not pass");

        let (mut f, mut src) = over(good.clone(), data.len() + 1);
        assert!(f.finish(&mut |a, b| src.read(a, b)).is_err(), "a frame shorter than its stated size must not pass");

        let (mut f, _) = over(good, data.len());
        let mut failing = |_: usize, _: &mut [u8]| Err("disk on fire".to_string());
        assert_eq!(f.finish(&mut failing).unwrap_err(), PartialError::Read("disk on fire".into()));
    }

    #[test]
    fn an_empty_frame_completes() {
        let (mut f, mut src) = over(frame(b""), 0);
        assert_eq!(f.finish(&mut |a, b| src.read(a, b)).unwrap(), b"");
        assert!(f.is_complete());
    }
}
