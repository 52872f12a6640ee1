//! The `thaw` command line: a thin layer over the library.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{self, IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use thaw::archive::{self, Archive, EntryKind, WriterOptions};

#[derive(Parser)]
#[command(name = "thaw", version, about = "Make a huge archive usable instantly: stubs now, bytes on first read")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct PackOpts {
    /// zstd compression level (1-19)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    level: i32,
    /// Target uncompressed frame size (e.g. 1M, 512K, 4M)
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    frame_size: usize,
    /// Compression threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pack a directory into a thaw archive (a seekable .tar.zst)
    Pack {
        src: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        opts: PackOpts,
    },
    /// Re-frame a .tar, .tar.gz, .tar.xz or .tar.zst into a thaw archive (streaming)
    Convert {
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        opts: PackOpts,
    },
    /// List the archive's entries (from the index only)
    Ls {
        archive: PathBuf,
        /// Long listing: type, mode, owner, size, mtime
        #[arg(short, long)]
        long: bool,
        /// JSON array of entries
        #[arg(long)]
        json: bool,
    },
    /// Write one file's contents to stdout, decoding only the frames it needs
    Cat { archive: PathBuf, path: PathBuf },
    /// Extract the whole archive with full metadata, in parallel
    Extract {
        archive: PathBuf,
        dir: PathBuf,
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Entries, frames, sizes, ratio and format version
    Info {
        archive: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check every frame and the index of an archive
    Verify { archive: PathBuf },
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let mul = match s[i..].to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                other => return Err(format!("unknown size suffix {other:?}")),
            };
            (&s[..i], mul)
        }
        None => (s, 1),
    };
    num.trim().parse::<usize>().map(|n| n * mul).map_err(|e| format!("{s:?}: {e}"))
}

fn threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

/// A byte progress bar on a TTY, hidden otherwise.
fn bar(what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg:8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn open(path: &PathBuf) -> Result<Archive> {
    Archive::open(path).with_context(|| format!("cannot open {}", path.display()))
}

fn human(n: u64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
        if v < 1024.0 || unit == "TiB" {
            return if unit == "B" { format!("{n} B") } else { format!("{v:.1} {unit}") };
        }
        v /= 1024.0;
    }
    unreachable!()
}

fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.letter());
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            if e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)) {
                std::process::exit(0);
            }
            eprintln!("thaw: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Pack { src, output, opts } => {
            let pb = bar("packing");
            let wopts = WriterOptions { level: opts.level, frame_size: opts.frame_size, threads: threads(opts.threads) };
            let s = archive::pack::pack(&src, &output, wopts, &|t| pb.set_length(t), &|n| pb.inc(n))
                .with_context(|| format!("cannot pack {} into {}", src.display(), output.display()))?;
            pb.finish_and_clear();
            for w in &s.warnings {
                eprintln!("thaw: warning: {w}");
            }
            eprintln!(
                "packed {} entries, {} -> {} ({:.3}x), id {}",
                s.entries,
                human(s.data_bytes),
                human(s.archive_bytes),
                s.archive_bytes as f64 / s.data_bytes.max(1) as f64,
                archive::index::id_hex(&s.id)
            );
        }
        Cmd::Convert { input, output, opts } => {
            let pb = bar("converting");
            pb.set_length(std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0));
            let wopts = WriterOptions { level: opts.level, frame_size: opts.frame_size, threads: threads(opts.threads) };
            let s = archive::convert::convert(&input, &output, wopts, &|n| pb.inc(n))
                .with_context(|| format!("cannot convert {} into {}", input.display(), output.display()))?;
            pb.finish_and_clear();
            for w in &s.warnings {
                eprintln!("thaw: warning: {w}");
            }
            eprintln!("converted {} entries, id {}", s.entries, archive::index::id_hex(&s.id));
        }
        Cmd::Ls { archive, long, json } => {
            let a = open(&archive)?;
            let out = io::stdout();
            let mut out = io::BufWriter::new(out.lock());
            if json {
                let list: Vec<_> = a.entries().iter().map(entry_json).collect();
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                for e in a.entries() {
                    if long {
                        let owner = if e.uname.is_empty() { e.uid.to_string() } else { String::from_utf8_lossy(&e.uname).into() };
                        let group = if e.gname.is_empty() { e.gid.to_string() } else { String::from_utf8_lossy(&e.gname).into() };
                        write!(out, "{} {owner}/{group} {:>12} {}.{:09} ", mode_string(e.kind, e.mode), e.size, e.mtime, e.mtime_nsec)?;
                    }
                    out.write_all(&e.path)?;
                    if long && !e.link.is_empty() {
                        out.write_all(if e.kind == EntryKind::Hardlink { b" link to " } else { b" -> " })?;
                        out.write_all(&e.link)?;
                    }
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
        }
        Cmd::Cat { archive, path } => {
            let a = open(&archive)?;
            let p = path.as_os_str().as_bytes();
            let e = a.lookup(p).ok_or_else(|| archive::Error::NotFound(path.display().to_string()))?;
            let data = a.index().data_entry(e);
            if data.kind != EntryKind::File {
                bail!("{}: is a {:?}, not a regular file", path.display(), e.kind);
            }
            let out = io::stdout();
            let mut out = out.lock();
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0;
            while off < data.size {
                let n = a.read_at(data, off, &mut buf).with_context(|| format!("{}: reading {}", archive.display(), path.display()))?;
                out.write_all(&buf[..n])?;
                off += n as u64;
            }
            out.flush()?;
        }
        Cmd::Extract { archive, dir, threads: t } => {
            let a = open(&archive)?;
            let pb = bar("extracting");
            pb.set_length(a.entries().iter().map(|e| e.size).sum());
            let s = thaw::tree::extract::extract(&a, &dir, threads(t), &|n| pb.inc(n))
                .with_context(|| format!("cannot extract {} into {}", archive.display(), dir.display()))?;
            pb.finish_and_clear();
            for w in &s.warnings {
                eprintln!("thaw: warning: {w}");
            }
            eprintln!("extracted {} entries, {}", s.entries, human(s.bytes));
        }
        Cmd::Info { archive, json } => {
            let a = open(&archive)?;
            let t = a.seek_table();
            let count = |k: EntryKind| a.entries().iter().filter(|e| e.kind == k).count();
            let data: u64 = a.entries().iter().map(|e| e.size).sum();
            let info = serde_json::json!({
                "archive": archive.display().to_string(),
                "format_version": a.version(),
                "id": a.id_hex(),
                "entries": a.entries().len(),
                "files": count(EntryKind::File),
                "dirs": count(EntryKind::Dir),
                "symlinks": count(EntryKind::Symlink),
                "hardlinks": count(EntryKind::Hardlink),
                "frames": t.len(),
                "data_bytes": data,
                "tar_stream_bytes": t.stream_len(),
                "archive_bytes": a.file_len(),
                "index_and_seek_table_bytes": a.trailer_len(),
                "ratio": a.file_len() as f64 / t.stream_len().max(1) as f64,
            });
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("archive        {}", archive.display());
                println!("format         thaw archive v{} (seekable .tar.zst)", a.version());
                println!("id             {}", a.id_hex());
                println!(
                    "entries        {} ({} files, {} dirs, {} symlinks, {} hard links)",
                    a.entries().len(),
                    count(EntryKind::File),
                    count(EntryKind::Dir),
                    count(EntryKind::Symlink),
                    count(EntryKind::Hardlink)
                );
                println!("frames         {}", t.len());
                println!("file data      {}", human(data));
                println!("tar stream     {}", human(t.stream_len()));
                println!("archive        {} (index + seek table {})", human(a.file_len()), human(a.trailer_len()));
                println!("ratio          {:.3} (archive / tar stream)", a.file_len() as f64 / t.stream_len().max(1) as f64);
            }
        }
        Cmd::Verify { archive } => {
            let a = open(&archive)?;
            let pb = bar("verifying");
            pb.set_length(a.seek_table().len() as u64);
            let r = archive::verify::verify(&a, &|n| pb.inc(n))?;
            pb.finish_and_clear();
            for p in &r.problems {
                eprintln!("{}: {p}", archive.display());
            }
            if !r.problems.is_empty() {
                eprintln!("{}: {} problem(s)", archive.display(), r.problems.len());
                return Ok(1);
            }
            println!("{}: ok ({} frames, {} entries checked)", archive.display(), r.frames, r.entries_checked);
        }
    }
    Ok(0)
}

fn entry_json(e: &archive::Entry) -> serde_json::Value {
    let mut v = serde_json::json!({
        "path": String::from_utf8_lossy(&e.path),
        "type": e.kind,
        "mode": format!("{:04o}", e.mode),
        "uid": e.uid,
        "gid": e.gid,
        "user": String::from_utf8_lossy(&e.uname),
        "group": String::from_utf8_lossy(&e.gname),
        "mtime": e.mtime,
        "mtime_nsec": e.mtime_nsec,
        "size": e.size,
    });
    if std::str::from_utf8(&e.path).is_err() {
        v["path_bytes"] = serde_json::json!(e.path);
    }
    if !e.link.is_empty() {
        v["link"] = serde_json::json!(String::from_utf8_lossy(&e.link));
    }
    if e.kind == EntryKind::File {
        v["data_offset"] = serde_json::json!(e.data_offset);
    }
    if !e.xattrs.is_empty() {
        v["xattrs"] = e.xattrs.iter().map(|(k, _)| serde_json::json!(String::from_utf8_lossy(k))).collect();
    }
    v
}
