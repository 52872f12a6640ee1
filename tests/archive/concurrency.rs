//! Many threads reading one archive: every byte right under a small cache
//! budget, and a frame wanted by many threads at once is decoded once.

use crate::common::*;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use thaw::archive::{Archive, Entry, Source};

const F: usize = 4096;

fn archive_and_files() -> (Vec<u8>, Vec<MemFile>) {
    let files: Vec<MemFile> = (0..24)
        .map(|i| {
            let size = [0usize, 100, 3000, 5000, 9000, 40_000, 130_000][i % 7] + i * 37;
            MemFile { path: format!("dir{}/file{i}", i % 3).into_bytes(), data: data(1000 + i as u64, size) }
        })
        .collect();
    // Top-level file entries with slashes are fine for the reader (no dir entries needed).
    (archive_of(&files, F), files)
}

#[test]
fn sixteen_threads_read_random_ranges_correctly_with_a_small_cache() {
    let (bytes, files) = archive_and_files();
    let a = open_mem(&bytes).unwrap();
    assert!(a.seek_table().len() > 100, "{} frames", a.seek_table().len());
    // Room for 6 frames: constant eviction while threads share frames.
    a.set_cache_budget(6 * F);
    let entries: Vec<Entry> = files.iter().map(|f| a.lookup(&f.path).unwrap().unwrap()).collect();
    std::thread::scope(|s| {
        for t in 0..16u64 {
            let (a, files, entries) = (&a, &files, &entries);
            s.spawn(move || {
                let mut r = Rng(t * 7919 + 1);
                let mut buf = vec![0u8; 20_000];
                for _ in 0..400 {
                    let i = r.below(files.len() as u64) as usize;
                    let want = &files[i].data;
                    let off = r.below(want.len() as u64 + 10);
                    let len = r.below(buf.len() as u64) as usize;
                    let n = a.read_at(&entries[i], off, &mut buf[..len]).unwrap();
                    let lo = (off as usize).min(want.len());
                    let hi = (lo + len).min(want.len());
                    assert_eq!(n, hi - lo);
                    assert!(buf[..n] == want[lo..hi], "thread {t}: {} at {off}+{len}", files[i].path.escape_ascii());
                }
            });
        }
    });
    // The budget bounds the cache: far more decodes than frames.
    assert!(a.frames_decoded() > a.seek_table().len() as u64, "{} decodes", a.frames_decoded());
}

/// A source whose reads take a while, so that concurrent requests for one
/// frame really overlap while it is being decoded.
struct Slow(MemSource);

impl Source for Slow {
    fn len(&self) -> u64 {
        self.0.len()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), thaw::archive::Error> {
        std::thread::sleep(Duration::from_millis(30));
        self.0.read_exact_at(buf, offset)
    }
    fn name(&self) -> String {
        "slow".into()
    }
}

#[test]
fn a_frame_wanted_by_many_threads_at_once_is_decoded_once() {
    let (bytes, files) = archive_and_files();
    let a = Archive::from_source(Box::new(Slow(MemSource(Arc::new(bytes))))).unwrap();
    let big = files.iter().find(|f| f.data.len() > 100_000).unwrap();
    let e = &a.lookup(&big.path).unwrap().unwrap();
    const N: usize = 16;
    for round in 0..8u64 {
        // A range inside one frame of the big file, different each round.
        let off = round * F as u64 * 3 + 100;
        assert_eq!(a.frames_for(e, off, 1000).len(), 1);
        let before = a.frames_decoded();
        let barrier = Barrier::new(N);
        std::thread::scope(|s| {
            for _ in 0..N {
                s.spawn(|| {
                    let mut buf = vec![0u8; 1000];
                    barrier.wait();
                    assert_eq!(a.read_at(e, off, &mut buf).unwrap(), 1000);
                    assert!(buf[..] == big.data[off as usize..off as usize + 1000]);
                });
            }
        });
        assert_eq!(a.frames_decoded() - before, 1, "round {round}: the frame was decoded more than once");
    }
    // And frame() itself: N callers, one decode, one shared buffer.
    let before = a.frames_decoded();
    let barrier = Barrier::new(N);
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    a.frame(a.seek_table().len() - 2).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(a.frames_decoded() - before, 1);
    assert!(got.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
}

#[test]
fn archive_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Archive>();
}
