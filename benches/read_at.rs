//! Random 4 KiB `Archive::read_at` throughput (issue #2), beside `pread` of
//! the same ranges from an extracted copy, in three cache states:
//!
//! - hot: a few targets whose frames all fit the frame cache, primed;
//! - warm: targets spread over the whole archive, archive in the page cache,
//!   frame cache at its default budget (most reads decode a frame);
//! - cold: page cache dropped and a fresh `Archive` (empty frame cache) at
//!   the start of every sample (needs root; skipped with a note otherwise).
//!
//! `THAW_BENCH_ARCHIVE` and `THAW_BENCH_TREE` (the same tree, extracted)
//! point at real inputs (benches/run.sh passes the Linux source); without
//! them a synthetic tree is generated and packed in a temp directory.
//! `THAW_BENCH_QUICK` shortens the cold measurement.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::fs::File;
use std::hint::black_box;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thaw::archive::{Archive, EntryKind, WriterOptions};

const READ: u64 = 4096;

/// One random range: an entry of the archive and a 4 KiB-aligned offset in it.
#[derive(Clone, Copy)]
struct Target {
    entry: usize,
    offset: u64,
}

/// xorshift64*: deterministic targets without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `n` targets uniform over the data bytes of the archive's regular files
/// (a file is picked in proportion to its size); with `budget`, only over
/// the largest files of at most 4 MiB that add up to `budget` bytes.
fn targets(a: &Archive, n: usize, seed: u64, budget: Option<u64>) -> Vec<Target> {
    let mut files: Vec<(usize, u64)> = a
        .entries()
        .expect("index")
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EntryKind::File && e.size >= READ)
        .map(|(i, e)| (i, e.size))
        .collect();
    if let Some(budget) = budget {
        // Large files first (few frames each), until the budget is spent.
        files.retain(|&(_, size)| size <= 4 << 20);
        files.sort_by_key(|&(i, size)| (std::cmp::Reverse(size), i));
        let mut spent = 0;
        files.retain(|&(_, size)| {
            spent += size;
            spent <= budget
        });
    }
    assert!(!files.is_empty(), "the archive has no file of at least 4 KiB");
    let mut cumulative = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for &(_, size) in &files {
        total += size;
        cumulative.push(total);
    }
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| {
            let at = rng.next() % total;
            let k = cumulative.partition_point(|&c| c <= at);
            let (entry, size) = files[k];
            let within = at - (cumulative[k] - size);
            let offset = (within / READ * READ).min(size - READ);
            Target { entry, offset }
        })
        .collect()
}

/// The inputs: an archive and the same tree extracted.
struct Inputs {
    archive: PathBuf,
    tree: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

fn inputs() -> Inputs {
    if let (Ok(a), Ok(t)) = (std::env::var("THAW_BENCH_ARCHIVE"), std::env::var("THAW_BENCH_TREE")) {
        return Inputs { archive: a.into(), tree: t.into(), _tmp: None };
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let tree = tmp.path().join("tree");
    synthetic_tree(&tree);
    let archive = tmp.path().join("synthetic.tar.zst");
    thaw::archive::pack::pack(&tree, &archive, WriterOptions::default(), &|_| {}, &|_| {}).expect("pack");
    Inputs { archive, tree, _tmp: Some(tmp) }
}

/// 96 files of 64 KiB – 4 MiB of compressible bytes (about 150 MiB).
fn synthetic_tree(dir: &Path) {
    let mut rng = Rng(0x7468_6177);
    for d in 0..8 {
        let sub = dir.join(format!("d{d}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for f in 0..12 {
            let size = (64 << 10) + (rng.next() % (4 << 20)) as usize;
            let data: Vec<u8> = (0..size).map(|_| b'a' + (rng.next() % 16) as u8).collect();
            std::fs::write(sub.join(format!("f{f}")), data).expect("write");
        }
    }
}

/// Drops the page cache; false without root.
fn drop_caches() -> bool {
    let synced = std::process::Command::new("sync").status().is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// The targets' files in the extracted tree, each opened once.
struct Native {
    files: Vec<File>,
    /// (index into `files`, offset) per target.
    reads: Vec<(usize, u64)>,
}

impl Native {
    fn open(a: &Archive, tree: &Path, t: &[Target]) -> Native {
        let mut by_entry = std::collections::HashMap::new();
        let mut files = Vec::new();
        let reads = t
            .iter()
            .map(|x| {
                let k = *by_entry.entry(x.entry).or_insert_with(|| {
                    let p = tree.join(std::ffi::OsStr::from_bytes(&a.entries().expect("index")[x.entry].path));
                    files.push(File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
                    files.len() - 1
                });
                (k, x.offset)
            })
            .collect();
        Native { files, reads }
    }

    fn read(&self, i: usize, buf: &mut [u8]) {
        let (k, off) = self.reads[i % self.reads.len()];
        self.files[k].read_exact_at(buf, off).expect("pread");
        black_box(&buf[..]);
    }
}

fn read_thaw(a: &Archive, t: &Target, buf: &mut [u8]) {
    let n = a.read_at(&a.entries().expect("index")[t.entry], t.offset, buf).expect("read_at");
    assert_eq!(n, buf.len());
    black_box(&buf[..]);
}

fn bench(c: &mut Criterion) {
    let inp = inputs();
    let archive = Archive::open(&inp.archive).expect("open archive");
    let mut buf = vec![0u8; READ as usize];

    // Targets: spread over everything (warm, cold), or within 16 MiB of
    // files, whose frames fit the default 64 MiB frame cache (hot).
    let spread = targets(&archive, 512, 1, None);
    let hot = targets(&archive, 512, 2, Some(16 << 20));
    for t in spread.iter().chain(&hot).take(64) {
        let e = &archive.entries().expect("index")[t.entry];
        let p = inp.tree.join(std::ffi::OsStr::from_bytes(&e.path));
        let mut native = vec![0u8; READ as usize];
        File::open(&p).and_then(|f| f.read_exact_at(&mut native, t.offset)).expect("native read");
        read_thaw(&archive, t, &mut buf);
        assert_eq!(buf, native, "{}: archive and tree differ at {}", p.display(), t.offset);
    }

    // Page cache warm: read the archive and the tree once.
    let _ = std::fs::read(&inp.archive);
    let native_spread = Native::open(&archive, &inp.tree, &spread);
    let native_hot = Native::open(&archive, &inp.tree, &hot);
    for n in [&native_spread, &native_hot] {
        for i in 0..n.reads.len() {
            n.read(i, &mut buf);
        }
    }

    for (name, ts, native) in [("hot", &hot, &native_hot), ("warm", &spread, &native_spread)] {
        let mut g = c.benchmark_group(format!("read_at_4k_{name}"));
        g.throughput(Throughput::Bytes(READ));
        let mut i = 0usize;
        for t in ts.iter() {
            read_thaw(&archive, t, &mut buf);
        }
        g.bench_function("thaw", |b| {
            b.iter(|| {
                read_thaw(&archive, &ts[i % ts.len()], &mut buf);
                i += 1;
            })
        });
        let mut j = 0usize;
        g.bench_function("native", |b| {
            b.iter(|| {
                native.read(j, &mut buf);
                j += 1;
            })
        });
        g.finish();
    }

    if !drop_caches() {
        eprintln!("read_at: cannot drop the page cache (not root?): cold benchmarks skipped");
        return;
    }
    let mut g = c.benchmark_group("read_at_4k_cold");
    g.throughput(Throughput::Bytes(READ)).sampling_mode(SamplingMode::Flat).sample_size(10);
    let quick = std::env::var_os("THAW_BENCH_QUICK").is_some();
    g.measurement_time(Duration::from_secs(if quick { 4 } else { 20 })).warm_up_time(Duration::from_secs(1));
    let mut seed = 100u64;
    g.bench_function("thaw", |b| {
        b.iter_custom(|iters| {
            seed += 1;
            let ts = targets(&archive, iters as usize, seed, None);
            assert!(drop_caches(), "drop_caches failed");
            let fresh = Archive::open(&inp.archive).expect("open archive");
            let start = Instant::now();
            for t in &ts {
                read_thaw(&fresh, t, &mut buf);
            }
            start.elapsed()
        })
    });
    g.bench_function("native", |b| {
        b.iter_custom(|iters| {
            seed += 1;
            let ts = targets(&archive, iters as usize, seed, None);
            assert!(drop_caches(), "drop_caches failed");
            // Files are opened outside the timed part (as the archive's index
            // is), in chunks that stay well below the open-file limit.
            let mut spent = Duration::ZERO;
            for chunk in ts.chunks(256) {
                let files = Native::open(&archive, &inp.tree, chunk);
                let start = Instant::now();
                for i in 0..chunk.len() {
                    files.read(i, &mut buf);
                }
                spent += start.elapsed();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
