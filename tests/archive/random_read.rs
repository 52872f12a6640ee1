//! Random-range `Archive::read_at` against the original bytes (property
//! test over several frame sizes), the frame-cut rules, and the
//! at-most-two-reads open.

use crate::common::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use thaw::archive::Archive;

const FRAME_SIZES: [usize; 3] = [4096, 16 << 10, 64 << 10];

/// Files whose sizes sit around frame and block boundaries for frame size `f`.
fn files_for(f: usize, seed: u64) -> Vec<MemFile> {
    let sizes = [0, 1, 511, 512, 513, f - 600, f - 1, f, f + 1, 2 * f + 7, 3 * f + 4096, 7 * f / 2, 1000, 20_000, 100_000];
    sizes.iter().enumerate().map(|(i, &n)| MemFile { path: format!("f{i:02}-{n}").into_bytes(), data: data(seed + i as u64, n) }).collect()
}

struct Fixture {
    archive: Archive,
    files: Vec<MemFile>,
}

/// One archive per frame size, built once for all cases.
fn fixtures() -> &'static [Fixture] {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        FRAME_SIZES
            .iter()
            .map(|&f| {
                let files = files_for(f, f as u64);
                let archive = open_mem(&archive_of(&files, f)).unwrap();
                archive.set_cache_budget(3 * f);
                Fixture { archive, files }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn read_at_matches_the_original(which in 0..FRAME_SIZES.len(), file in 0usize..15, start in 0.0f64..1.1, len in 0usize..300_000) {
        let fx = &fixtures()[which];
        let want = &fx.files[file].data;
        let entry = &fx.archive.lookup(&fx.files[file].path).unwrap().unwrap();
        let off = (start * want.len() as f64) as u64;
        let mut buf = vec![0xAAu8; len];
        let n = fx.archive.read_at(entry, off, &mut buf).unwrap();
        let lo = (off as usize).min(want.len());
        let hi = (lo + len).min(want.len());
        prop_assert_eq!(n, hi - lo);
        prop_assert!(buf[..n] == want[lo..hi], "bytes differ at {}+{}", off, len);
    }
}

#[test]
fn reads_decode_only_the_frames_they_overlap() {
    for &f in &FRAME_SIZES {
        let files = files_for(f, 77);
        let bytes = archive_of(&files, f);
        let probe = open_mem(&bytes).unwrap();
        let t = probe.seek_table();
        for mf in &files {
            let e = &probe.lookup(&mf.path).unwrap().unwrap();
            let size = mf.data.len() as u64;
            if size == 0 {
                continue;
            }
            let first = t.frame_at(e.data_offset);
            let frames = probe.frames_for(e, 0, size);
            if size >= f as u64 {
                // A file of a frame or more starts its own frame; frame k holds bytes [kF, (k+1)F).
                assert_eq!(t.stream_offset(first), e.data_offset, "{} (F={f})", e.path_lossy());
                assert_eq!(frames.len() as u64, size.div_ceil(f as u64), "{} (F={f})", e.path_lossy());
                for (k, i) in frames.clone().enumerate() {
                    if (k as u64 + 1) * (f as u64) <= size {
                        assert_eq!(t.frame(i).decompressed as usize, f, "{} frame {k}", e.path_lossy());
                    }
                }
            } else if size.div_ceil(512) * 512 + 512 <= f as u64 {
                // Header and data of a small file fit one frame.
                assert_eq!(frames.len(), 1, "{} (F={f}) spans {frames:?}", e.path_lossy());
            }
            // Reading one byte, or a range, decodes exactly the frames overlapping it.
            for (off, len) in [(0, 1), (size / 2, 1), (size - 1, 1), (size / 3, size / 3 + 1), (0, size)] {
                let a = open_mem(&bytes).unwrap();
                let want = a.frames_for(e, off, len);
                let mut buf = vec![0u8; len as usize];
                assert_eq!(a.read_at(e, off, &mut buf).unwrap(), len as usize);
                assert_eq!(a.frames_decoded(), want.len() as u64, "{} {off}+{len} (F={f})", e.path_lossy());
                let lo = t.frame_at(e.data_offset + off);
                let hi = t.frame_at(e.data_offset + off + len - 1);
                assert_eq!(want, lo..hi + 1);
                assert!(buf[..] == mf.data[off as usize..(off + len) as usize]);
            }
        }
    }
}

fn reads_to_open(bytes: Vec<u8>) -> usize {
    let reads = Arc::new(AtomicUsize::new(0));
    let src = Counting { inner: MemSource(Arc::new(bytes)), reads: reads.clone() };
    let a = Archive::from_source(Box::new(src)).unwrap();
    assert!(!a.entries().unwrap().is_empty());
    reads.load(Ordering::Relaxed)
}

#[test]
fn open_finds_the_index_in_at_most_two_reads() {
    // A small archive: one read of the tail holds index and seek table.
    let small = archive_of(&files_for(4096, 1), 4096);
    assert_eq!(reads_to_open(small), 1);
    // An index bigger than the first 256 KiB tail read: one more read.
    let mut r = Rng(5);
    let many: Vec<MemFile> = (0..3000)
        .map(|i| {
            let name: String = (0..12).map(|_| format!("{:016x}", r.next())).collect();
            MemFile { path: format!("{i:05}-{name}").into_bytes(), data: Vec::new() }
        })
        .collect();
    let big = archive_of(&many, 64 << 10);
    let a = open_mem(&big).unwrap();
    assert!(a.trailer_len() > 256 << 10, "index only {} bytes", a.trailer_len());
    assert_eq!(reads_to_open(big), 2);
}
