//! The `thaw` command line: a thin layer over the library.
#![forbid(unsafe_code)]

/// `eprintln!` that never panics: a closed or full stderr must not turn a
/// finished command (or a daemon's clean stop) into a crash.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use indicatif::{ProgressBar, ProgressStyle};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::{self, IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use thaw::archive::{self, Archive, EntryKind, WriterOptions};
use thaw::hydrate::{self, events::OpenPolicy, mount::GuardOptions, ServeOptions};
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

#[derive(Parser)]
#[command(
    name = "thaw",
    version,
    about = "Make a huge archive usable instantly: stubs now, bytes on first read",
    after_help = "Logs go to stderr. RUST_LOG, when set, picks what is logged instead of -v (e.g. RUST_LOG=thaw=debug)."
)]
struct Cli {
    /// Log more: -v info (serve and run: every event), -vv debug, -vvv trace
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 100)]
    verbose: u8,
    /// Requests in flight at once to a remote archive (http://, https://, s3://);
    /// default THAW_REMOTE_CONCURRENCY, else 8
    #[arg(long, global = true, display_order = 101)]
    remote_concurrency: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct PackOpts {
    /// zstd compression level (1-19)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    level: i32,
    /// Piece size P: files larger than P are cut into frames of P bytes, each
    /// verified on its own (a multiple of 4K, 4K-32M)
    #[arg(long, default_value = "1M", value_parser = parse_size)]
    piece_size: usize,
    /// Run size S: smaller entries share frames of up to S bytes (P-32M)
    #[arg(long, default_value = "4M", value_parser = parse_size)]
    run_size: usize,
    /// Sets both the piece and the run size (format 1's frame size)
    #[arg(long, value_parser = parse_size, conflicts_with_all = ["piece_size", "run_size"])]
    frame_size: Option<usize>,
    /// Archive format: 2, or 1 for older thaws (then only --frame-size applies)
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2))]
    format: u32,
    /// Compression threads (default: all cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Format 2 index block target in raw bytes (small values make test fixtures with many blocks)
    #[arg(long, default_value = "32K", value_parser = parse_size, hide = true)]
    index_block_size: usize,
}

impl PackOpts {
    fn writer(&self) -> WriterOptions {
        let mut o = WriterOptions {
            level: self.level,
            piece_size: self.piece_size,
            run_size: self.run_size,
            threads: threads(self.threads),
            ..Default::default()
        };
        if self.format == 1 {
            o = WriterOptions::v1(self.piece_size, self.level, o.threads);
        }
        let o = WriterOptions { format: self.format, block_target: self.index_block_size, ..o };
        match self.frame_size {
            Some(f) => o.with_frame_size(f),
            None => o,
        }
    }
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
        /// Put the files this access profile names first, in its order and contiguous
        #[arg(long, value_name = "PROFILE")]
        order: Option<PathBuf>,
        /// Also write the --order profile as a profile of the new archive (its id), for `--prefetch` with it
        #[arg(long, value_name = "PROFILE", requires = "order")]
        profile_out: Option<PathBuf>,
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
    /// Check an archive (every frame and the index), or a tree (every hydrated byte against its archive)
    Verify {
        /// An archive, or a directory made by `thaw populate`
        target: PathBuf,
    },
    /// Lay the archive's tree out as sparse stubs under DIR (shown in DIR while served)
    Populate {
        archive: PathBuf,
        dir: PathBuf,
        /// Threads creating stubs (default: 4 per core, at most 64: creating
        /// inodes waits on the disk for inode tables and bitmaps)
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Serve DIR: stubs are filled from the archive as they are read (runs until SIGINT/SIGTERM)
    Serve {
        archive: PathBuf,
        dir: PathBuf,
        #[command(flatten)]
        opts: ServeArgs,
    },
    /// Populate if needed, serve, run a command, stop; exits with the command's status
    Run {
        archive: PathBuf,
        dir: PathBuf,
        #[command(flatten)]
        opts: ServeArgs,
        /// The command and its arguments
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Files complete / partial / untouched, bytes hydrated vs total, disk used
    Status {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Fill stubs completely (all, or the given paths relative to DIR), in parallel
    Hydrate {
        dir: PathBuf,
        paths: Vec<PathBuf>,
        /// Then leave DIR a plain directory that needs no daemon (the stage goes away)
        #[arg(long)]
        detach: bool,
    },
    /// Turn files hydrated from the archive back into stubs (all, or the given paths);
    /// files users wrote, created, renamed over or linked, and files held open or mapped, are kept
    Dehydrate {
        dir: PathBuf,
        paths: Vec<PathBuf>,
        /// Only files not read for this long (e.g. 30m, 12h, 7d; by last read: see `thaw help dehydrate`)
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Keep the files this access profile names
        #[arg(long, value_name = "PROFILE")]
        keep: Option<PathBuf>,
    },
    /// Print a shell completion script to stdout
    Completions { shell: Shell },
    /// Print the thaw(1) man page to stdout, or write it and one page per command into a directory
    Man {
        /// Write thaw.1 and thaw-COMMAND.1 here instead
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Give a tree populated by thaw 0.1 current stub markers, or with --to move
    /// a stage onto another archive of the same tree (as root, while not served)
    Upgrade {
        dir: PathBuf,
        /// The archive to move the stage onto (e.g. the format 2 conversion of
        /// the format 1 archive it was populated from; both are read)
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// (internal) outlives the daemon: answers readers with EIO, stops them, unmounts DIR
    #[command(name = "__guard", hide = true)]
    Guard {
        dir: PathBuf,
        mount_id: u64,
        /// The daemon's fanotify group, inherited
        #[arg(long)]
        fanotify_fd: Option<i32>,
        #[arg(long)]
        no_kill_readers: bool,
    },
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Threads answering events
    #[arg(long)]
    workers: Option<usize>,
    /// Chunks hydrated ahead of a sequential reader (0 = off)
    #[arg(long)]
    readahead: Option<usize>,
    /// Hydrate the next small files of a directory ahead of a reader that
    /// reads it in listing order (a first read of a whole tree: find | xargs
    /// cat). Off by default: while thaw fills a file its mtime is briefly the
    /// current time, and a walker that stats each file just before reading
    /// it (cp -a, tar c, rsync) can meet a file being filled ahead of it
    #[arg(long)]
    walk_ahead: bool,
    /// Who gets a whole stub on open (hole-aware copiers read zeros otherwise):
    /// `copiers` (cp, tar, rsync, ... by process name), `all`, `none`, or a comma-separated list of names.
    /// Unless `none`, a stub of one chunk is filled whole on any open (its first read saves an event)
    #[arg(long, default_value = "copiers")]
    hydrate_on_open: String,
    /// Frame cache size (e.g. 64M)
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    cache: usize,
    /// Seconds a reader may wait for its data before it gets EIO
    #[arg(long, default_value_t = 60)]
    event_timeout: u64,
    /// When the daemon dies, leave processes that still hold stubs of DIR alone
    /// (their reads fail with EIO until they close them) instead of killing them
    #[arg(long)]
    no_kill_readers: bool,
    /// What carries the watch: each stub's inode ("stubs": no other file ever
    /// raises an event, but each untouched stub pins about 1 KiB of kernel
    /// memory), the whole mount ("mount"), or stubs up to 250,000 of them ("auto")
    #[arg(long, default_value = "auto", value_name = "auto|stubs|mount")]
    marks: hydrate::marks::MarkScope,
    /// Stubs above which --marks auto uses the mount mark (for tests)
    #[arg(long, hide = true, default_value_t = hydrate::marks::AUTO_STUB_LIMIT)]
    marks_limit: u64,
    /// Nice value of the daemon's threads (readers wait on them)
    #[arg(long, default_value_t = -5, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    nice: i32,
    /// Keep the archive bytes hydrated in DIR under SIZE (e.g. 10G): least recently
    /// read files go back to stubs
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_disk: Option<usize>,
    /// Write the ranges readers asked for, in first-access order, to this profile when serving stops
    #[arg(long, value_name = "PROFILE")]
    record: Option<PathBuf>,
    /// Hydrate this profile's ranges in the background as soon as DIR is served (readers come first)
    #[arg(long, value_name = "PROFILE")]
    prefetch: Option<PathBuf>,
    /// Threads the prefetch uses
    #[arg(long, default_value_t = 2)]
    prefetch_threads: usize,
}

impl ServeArgs {
    /// The daemon's options; `verbose` (the global `-v`) logs every event.
    fn options(&self, verbose: bool) -> ServeOptions {
        let mut o = ServeOptions::default();
        if let Some(w) = self.workers {
            o.workers = w.max(1);
        }
        o.walk_ahead = self.walk_ahead;
        if let Some(r) = self.readahead {
            o.readahead = r;
        }
        o.open_policy = match self.hydrate_on_open.as_str() {
            "copiers" => OpenPolicy::default_copiers(),
            "all" => OpenPolicy::All,
            "none" => OpenPolicy::Never,
            list => OpenPolicy::Copiers(list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
        };
        o.cache_bytes = self.cache;
        o.verbose = verbose;
        o.event_timeout = std::time::Duration::from_secs(self.event_timeout.max(1));
        o.marks = self.marks;
        o.marks_limit = self.marks_limit;
        o.nice = self.nice;
        o.guard = std::env::current_exe().ok().map(|exe| GuardOptions { exe, kill_readers: !self.no_kill_readers });
        o.max_disk = self.max_disk.map(|n| n as u64);
        o.record = self.record.clone();
        o.prefetch = self.prefetch.clone();
        o.prefetch_threads = self.prefetch_threads.max(1);
        o
    }
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

/// `90s`, `30m`, `12h`, `7d` (a bare number is seconds).
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().map_err(|e| format!("{s:?}: {e}"))?;
    let mul = match &s[split..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => return Err(format!("unknown duration unit {other:?} (use s, m, h or d)")),
    };
    Ok(std::time::Duration::from_secs(n * mul))
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

/// Opens an archive for the rest of the process: it is never freed, since
/// dropping a large index entry by entry only slows the exit.
fn open(path: &Path) -> Result<&'static Archive> {
    let a: &'static Archive = Box::leak(Box::new(open_shared(path, None)?));
    let _ = OPENED.set(a);
    Ok(a)
}

/// The archive a command opened, for the transfer figures logged at the end.
static OPENED: std::sync::OnceLock<&'static Archive> = std::sync::OnceLock::new();

/// Opens ARCHIVE (a path or a URL) to serve `dir`: a remote archive is read
/// at the version `populate` recorded for that same URL, or not at all.
/// Its index comes from the tail `populate` kept in the stage when there
/// is one (if that fails, it is fetched again).
fn open_for_dir(path: &Path, dir: &Path) -> Result<Archive> {
    let stage = thaw::tree::stage::Stage::new(dir);
    let info = stage.info().ok().filter(|i| i.archive.as_path() == path);
    let version = info.as_ref().and_then(|i| i.archive_version.clone());
    if let (Some(info), Some(_)) = (&info, &version) {
        if let Ok(Some(tail)) = stage.read_file(thaw::tree::stage::TAIL) {
            match archive::remote::open_with_tail(path, version.as_deref(), Some(tail)) {
                // The whole index is read here (serving needs it anyway), so
                // a damaged block in the kept tail falls back too.
                Ok(a) if a.id_hex() == info.id => match a.index() {
                    Ok(_) => return Ok(a),
                    Err(e) => tracing::warn!("the index in the tail kept in the stage is damaged ({e}); opening it afresh"),
                },
                Ok(a) => tracing::warn!("the tail kept in the stage gives archive id {}, not {}; opening it afresh", a.id_hex(), info.id),
                Err(e) => {
                    tracing::warn!("cannot open {} with the tail kept in the stage ({e}); opening it afresh", archive::remote::shown(path))
                }
            }
        }
    }
    open_shared(path, version.as_deref())
}

/// Logs what a remote archive cost (`-v`): requests and bytes.
fn log_transfer(a: &Archive) {
    if archive::remote::is_remote(Path::new(&a.source_name())) {
        let t = a.transfer();
        tracing::info!("{}: {} requests, {} bytes received", a.source_name(), t.requests, t.bytes);
    }
}

fn open_shared(path: &Path, version: Option<&str>) -> Result<Archive> {
    let started = std::time::Instant::now();
    let a = archive::remote::open(path, version).with_context(|| format!("cannot open {}", archive::remote::shown(path)))?;
    tracing::info!(
        "{}: {} entries, {} frames, index read in {:.1} ms",
        archive::remote::shown(path),
        a.entry_count(),
        a.seek_table().len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(a)
}

/// Warnings the library collected along the way (skipped sockets, ...).
fn warn_all(warnings: &[String]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
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
    // (shift, special bit, letter when also executable, letter when not)
    for (shift, special, on, off) in [(6, 0o4000, 's', 'S'), (3, 0o2000, 's', 'S'), (0, 0o1000, 't', 'T')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (mode & special != 0, bits & 1 != 0) {
            (true, true) => on,
            (true, false) => off,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

fn main() {
    // Die quietly on a closed pipe (`thaw ls A | head`), like other Unix tools.
    thaw::sys::process::default_sigpipe();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let mut remote = archive::remote::RemoteOptions::from_env();
    if let Some(n) = cli.remote_concurrency {
        remote.concurrency = n.max(1);
    }
    // The daemon reads ahead itself, within a file (--readahead); the
    // source's byte-level readahead would run past the ends of files.
    if matches!(cli.cmd, Cmd::Serve { .. } | Cmd::Run { .. }) && std::env::var_os("THAW_REMOTE_READAHEAD").is_none() {
        remote.readahead_max = 0;
    }
    archive::remote::set_defaults(remote);
    let result = run(cli);
    if let Some(a) = OPENED.get() {
        log_transfer(a);
    }
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            if e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)) {
                std::process::exit(0);
            }
            note!("thaw: error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Logs go to stderr as `thaw: LEVEL: message`. `RUST_LOG` wins; otherwise
/// `-v`, `-vv`, `-vvv` mean info, debug, trace, and the default is warn.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let filter = EnvFilter::builder().with_default_directive(level.into()).from_env_lossy();
    // A log line that cannot be written (stderr on a full disk, a closed
    // pipe) is dropped: reporting that on stderr would panic the daemon.
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).log_internal_errors(false).event_format(LogLine).init();
}

/// One log event as `thaw: LEVEL: message fields`: the shape of thaw's
/// messages before it logged through `tracing`, and no timestamps (journald
/// and terminals add their own).
struct LogLine;

impl<S, N> FormatEvent<S, N> for LogLine
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: format::Writer<'_>, event: &tracing::Event<'_>) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(w, "thaw: {level}: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

fn run(cli: Cli) -> Result<i32> {
    let verbose = cli.verbose > 0;
    match cli.cmd {
        Cmd::Pack { src, output, opts, order, profile_out } => pack(&src, &output, &opts, order.as_deref(), profile_out.as_deref()),
        Cmd::Convert { input, output, opts } => convert(&input, &output, &opts),
        Cmd::Ls { archive, long, json } => ls(&archive, long, json),
        Cmd::Cat { archive, path } => cat(&archive, &path),
        Cmd::Extract { archive, dir, threads } => extract(&archive, &dir, threads),
        Cmd::Info { archive, json } => info(&archive, json),
        Cmd::Verify { target } if target.is_dir() => verify_tree(&target),
        Cmd::Verify { target } => verify_archive(&target),
        Cmd::Populate { archive, dir, threads: t } => {
            populate(&archive, &dir, Some(t.unwrap_or_else(thaw::tree::populate::default_threads)))
        }
        Cmd::Serve { archive, dir, opts } => {
            let a = Arc::new(open_for_dir(&archive, &dir)?);
            let stop = Arc::new(hydrate::stop::Stop::new().context("cannot make an eventfd")?);
            survive_broken_pipes()?;
            let s = stop.clone();
            on_stop_signal(move || {
                s.request();
                notify_systemd(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
            })?;
            let stats = hydrate::serve(a.clone(), &dir, opts.options(verbose), &stop, &mut || {
                let _ = writeln!(io::stdout(), "ready: serving {} (stop with Ctrl-C or SIGTERM)", dir.display());
                let _ = io::stdout().flush();
                notify_systemd(&[NotifyState::Ready, NotifyState::Status(&format!("serving {}", dir.display()))]);
            })
            .with_context(|| format!("cannot serve {}", dir.display()))?;
            log_transfer(&a);
            note!(
                "stopped: {} events, {} chunks ({}) written, {} files completed, {} denied",
                stats.events,
                stats.chunks_written,
                human(stats.bytes_written),
                stats.files_completed,
                stats.events_denied
            );
            Ok(0)
        }
        Cmd::Run { archive, dir, opts, command } => run_command(&archive, &dir, opts.options(verbose), &command),
        Cmd::Status { dir, json } => status(&dir, json),
        Cmd::Hydrate { dir, paths, detach } => hydrate_paths(&dir, &paths, detach),
        Cmd::Dehydrate { dir, paths, older_than, keep } => dehydrate(&dir, hydrate::dehydrate::Options { paths, older_than, keep }),
        Cmd::Completions { shell } => completions(shell),
        Cmd::Man { dir } => man(dir.as_deref()),
        Cmd::Upgrade { dir, to: None } => upgrade(&dir),
        Cmd::Upgrade { dir, to: Some(to) } => upgrade_to(&dir, &to),
        Cmd::Guard { dir, mount_id, fanotify_fd, no_kill_readers } => {
            let fan = fanotify_fd.and_then(|fd| thaw::sys::fanotify::Fanotify::from_inherited(fd).ok());
            Ok(hydrate::guard::guard_main(&dir, mount_id, fan, !no_kill_readers))
        }
    }
}

/// Runs `write` on `output`, or for an `s3://` output on a temporary local
/// file (in TMPDIR) that is then uploaded with a multipart upload and removed.
fn with_output<T>(output: &Path, write: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let url = match archive::remote::Location::parse(output)? {
        archive::remote::Location::Local(p) => return write(&p),
        archive::remote::Location::Remote(url) => url,
    };
    let tmp = std::env::temp_dir().join(format!(".thaw-upload-{}.tar.zst", std::process::id()));
    let r = write(&tmp).and_then(|t| {
        let n = archive::remote::upload(&tmp, &url)
            .with_context(|| format!("cannot upload the archive to {}", archive::remote::shown(output)))?;
        note!("uploaded {} to {}", human(n), archive::remote::shown(output));
        Ok(t)
    });
    let _ = std::fs::remove_file(&tmp);
    r
}

/// `thaw pack`
fn pack(src: &Path, output: &Path, opts: &PackOpts, order: Option<&Path>, profile_out: Option<&Path>) -> Result<i32> {
    let profile = match order {
        Some(p) => Some(hydrate::profile::Profile::load(p).with_context(|| format!("cannot read the profile {}", p.display()))?),
        None => None,
    };
    let first = profile.as_ref().map(|p| p.paths()).unwrap_or_default();
    let pb = bar("packing");
    let (s, rekeyed) = with_output(output, |out| {
        let s = archive::pack::pack_ordered(src, out, opts.writer(), &first, &|t| pb.set_length(t), &|n| pb.inc(n))
            .with_context(|| format!("cannot pack {} into {}", src.display(), archive::remote::shown(output)))?;
        // The profile for the new archive, from the file just written (before any upload).
        let rekeyed = match (&profile, profile_out) {
            (Some(p), Some(to)) => {
                let a = Archive::open(out).with_context(|| format!("cannot read back {}", out.display()))?;
                let (q, dropped) = p.for_archive(&a)?;
                q.save(to).with_context(|| format!("cannot write the profile {}", to.display()))?;
                Some((to.to_path_buf(), q.ranges.len(), dropped))
            }
            _ => None,
        };
        Ok((s, rekeyed))
    })?;
    pb.finish_and_clear();
    warn_all(&s.warnings);
    note!(
        "packed {} entries, {} -> {} ({:.3}x), id {}",
        s.entries,
        human(s.data_bytes),
        human(s.archive_bytes),
        s.archive_bytes as f64 / s.data_bytes.max(1) as f64,
        archive::index::id_hex(&s.id)
    );
    if let Some((to, kept, dropped)) = rekeyed {
        note!("wrote {} for the new archive: {kept} ranges ({dropped} of paths it has not, dropped)", to.display());
    }
    Ok(0)
}

/// `thaw convert`
fn convert(input: &Path, output: &Path, opts: &PackOpts) -> Result<i32> {
    let pb = bar("converting");
    pb.set_length(std::fs::metadata(input).map(|m| m.len()).unwrap_or(0));
    let s = with_output(output, |out| {
        archive::convert::convert(input, out, opts.writer(), &|n| pb.inc(n))
            .with_context(|| format!("cannot convert {} into {}", input.display(), archive::remote::shown(output)))
    })?;
    pb.finish_and_clear();
    warn_all(&s.warnings);
    note!("converted {} entries, id {}", s.entries, archive::index::id_hex(&s.id));
    Ok(0)
}

/// `thaw ls`: paths, a long listing, or JSON, from the index alone.
fn ls(archive: &Path, long: bool, json: bool) -> Result<i32> {
    let a = open(archive)?;
    let out = io::stdout();
    let mut out = io::BufWriter::new(out.lock());
    if json {
        let mut list = Vec::new();
        a.for_each_entry(&mut |_, e| {
            list.push(entry_json(e));
            Ok(())
        })?;
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
    } else {
        let io_err = |e| archive::Error::io("stdout", e);
        a.for_each_entry(&mut |_, e| ls_line(&mut out, e, long).map_err(io_err))?;
    }
    out.flush()?;
    Ok(0)
}

/// One line of `thaw ls` (`-l`: mode, owner, size, mtime, path, link).
fn ls_line(out: &mut impl Write, e: &archive::Entry, long: bool) -> io::Result<()> {
    {
        {
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
            out.write_all(b"\n")
        }
    }
}

/// `thaw cat`: one file to stdout, decoding only the frames it covers.
fn cat(archive: &Path, path: &Path) -> Result<i32> {
    let a = open(archive)?;
    let p = path.as_os_str().as_bytes();
    let e = a.lookup(p)?.ok_or_else(|| archive::Error::NotFound(path.display().to_string()))?;
    let data = a.data_entry(&e)?;
    if data.kind != EntryKind::File {
        bail!("{}: is a {:?}, not a regular file", path.display(), e.kind);
    }
    a.prefetch(&data, 0, data.size);
    let out = io::stdout();
    let mut out = out.lock();
    // Piece-sized reads, so each piece is verified once; a file of several
    // pieces is also checked whole, as it streams out.
    let mut buf = vec![0u8; a.piece_size().unwrap_or(1 << 20) as usize];
    let mut whole = xxhash_rust::xxh3::Xxh3::new();
    let mut off = 0;
    while off < data.size {
        let n =
            a.read_at(&data, off, &mut buf).with_context(|| format!("{}: reading {}", archive::remote::shown(archive), path.display()))?;
        out.write_all(&buf[..n])?;
        whole.update(&buf[..n]);
        off += n as u64;
    }
    if data.data_xxh3.is_some_and(|x| x != whole.digest()) {
        bail!("{}: {}: data checksum mismatch", archive.display(), path.display());
    }
    out.flush()?;
    Ok(0)
}

/// `thaw extract`
fn extract(archive: &Path, dir: &Path, t: Option<usize>) -> Result<i32> {
    let a = open(archive)?;
    let pb = bar("extracting");
    pb.set_length(a.entries()?.iter().map(|e| e.size).sum());
    let s = thaw::tree::extract::extract(a, dir, threads(t), &|n| pb.inc(n))
        .with_context(|| format!("cannot extract {} into {}", archive::remote::shown(archive), dir.display()))?;
    pb.finish_and_clear();
    warn_all(&s.warnings);
    note!("extracted {} entries, {}", s.entries, human(s.bytes));
    Ok(0)
}

/// `thaw info`: what the index and the seek table say, as text or JSON.
fn info(archive: &Path, json: bool) -> Result<i32> {
    let a = open(archive)?;
    let t = a.seek_table();
    let mut counts = std::collections::HashMap::new();
    let mut data = 0u64;
    a.for_each_entry(&mut |_, e| {
        *counts.entry(e.kind.letter()).or_insert(0usize) += 1;
        data += e.size;
        Ok(())
    })?;
    let count = |k: EntryKind| counts.get(&k.letter()).copied().unwrap_or(0);
    let ratio = a.file_len() as f64 / t.stream_len().max(1) as f64;
    if json {
        let info = serde_json::json!({
            "archive": archive::remote::shown(archive),
            "format_version": a.version(),
            "id": a.id_hex(),
            "entries": a.entry_count(),
            "files": count(EntryKind::File),
            "dirs": count(EntryKind::Dir),
            "symlinks": count(EntryKind::Symlink),
            "hardlinks": count(EntryKind::Hardlink),
            "frames": t.len(),
            "data_bytes": data,
            "tar_stream_bytes": t.stream_len(),
            "archive_bytes": a.file_len(),
            "index_and_seek_table_bytes": a.trailer_len(),
            "ratio": ratio,
        });
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(0);
    }
    println!("archive        {}", archive::remote::shown(archive));
    println!("format         {} (thaw archive, seekable .tar.zst)", a.version());
    println!("id             {}", a.id_hex());
    println!(
        "entries        {} ({} files, {} dirs, {} symlinks, {} hard links)",
        a.entry_count(),
        count(EntryKind::File),
        count(EntryKind::Dir),
        count(EntryKind::Symlink),
        count(EntryKind::Hardlink)
    );
    println!("frames         {}", t.len());
    println!("file data      {}", human(data));
    println!("tar stream     {}", human(t.stream_len()));
    println!("archive        {} (index + seek table {})", human(a.file_len()), human(a.trailer_len()));
    println!("ratio          {ratio:.3} (archive / tar stream)");
    Ok(0)
}

/// `thaw verify DIR`: every hydrated byte against the archive. Exits 1 on a problem.
fn verify_tree(dir: &Path) -> Result<i32> {
    let r = hydrate::status::verify_tree(dir, None).with_context(|| format!("cannot verify {}", dir.display()))?;
    for p in &r.problems {
        note!("{}: {p}", dir.display());
    }
    for e in &r.empty_stubs {
        println!("untouched stub: {e}");
    }
    for m in &r.modified {
        println!("modified by a user, not compared: {m}");
    }
    if r.files_modified > 0 {
        println!("{}: modified: {}, not compared", dir.display(), r.files_modified);
    }
    println!(
        "{}: {} files checked, {} compared with the archive, {} untouched stubs, {} added files skipped, {} problem(s)",
        dir.display(),
        r.files_checked,
        human(r.bytes_compared),
        r.empty_stubs.len(),
        r.files_added,
        r.problems.len()
    );
    Ok(if r.problems.is_empty() { 0 } else { 1 })
}

/// `thaw verify ARCHIVE`: every frame and the index. Exits 1 on a problem.
fn verify_archive(archive: &Path) -> Result<i32> {
    let a = open(archive)?;
    let pb = bar("verifying");
    pb.set_length(a.seek_table().len() as u64);
    let r = archive::verify::verify(a, &|n| pb.inc(n))?;
    pb.finish_and_clear();
    for p in &r.problems {
        note!("{}: {p}", archive::remote::shown(archive));
    }
    if !r.problems.is_empty() {
        note!("{}: {} problem(s)", archive::remote::shown(archive), r.problems.len());
        return Ok(1);
    }
    println!("{}: ok ({} frames, {} entries checked)", archive::remote::shown(archive), r.frames, r.entries_checked);
    Ok(0)
}

/// `thaw populate`
fn populate(archive: &Path, dir: &Path, t: Option<usize>) -> Result<i32> {
    let a = open(archive)?;
    let started = std::time::Instant::now();
    let s = thaw::tree::populate::populate(a, archive, dir, threads(t))
        .with_context(|| format!("cannot populate {} from {}", dir.display(), archive::remote::shown(archive)))?;
    warn_all(&s.warnings);
    note!(
        "populated {} entries ({} stubs, {}) in {:.2}s; `thaw serve {} {}` shows them",
        s.entries,
        s.stubs,
        human(s.bytes),
        started.elapsed().as_secs_f64(),
        archive::remote::shown(archive),
        dir.display()
    );
    Ok(0)
}

/// `thaw status`: how much of DIR is hydrated, as text or JSON.
fn status(dir: &Path, json: bool) -> Result<i32> {
    let s = hydrate::status::status(dir).with_context(|| format!("cannot read the state of {}", dir.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(0);
    }
    let pct = |a: u64, b: u64| if b == 0 { 100.0 } else { a as f64 * 100.0 / b as f64 };
    println!("dir            {} ({})", s.dir.display(), if s.served { "served" } else { "not served: empty until `thaw serve`" });
    println!("archive        {} ({})", s.archive.display(), s.id);
    println!(
        "files          {} complete, {} partial, {} untouched (of {})",
        s.files_complete, s.files_partial, s.files_untouched, s.files_total
    );
    if s.files_modified > 0 {
        println!("modified       {} files written to by users (counted above)", s.files_modified);
    }
    if s.files_added > 0 {
        println!("added          {} files not from the archive (not counted above)", s.files_added);
    }
    println!("hydrated       {} of {} ({:.2}%)", human(s.bytes_hydrated), human(s.bytes_total), pct(s.bytes_hydrated, s.bytes_total));
    println!("disk used      {}", human(s.disk_bytes));
    println!("last serve     {} events, {} frames ({}) decoded", s.events_served, s.frames_decoded, human(s.bytes_decoded));
    Ok(0)
}

/// `thaw hydrate`: fill stubs now (all, or those under `paths`), and with
/// `--detach` leave DIR a plain directory.
fn hydrate_paths(dir: &Path, paths: &[PathBuf], detach: bool) -> Result<i32> {
    if detach && !paths.is_empty() {
        bail!("--detach needs the whole tree hydrated: give no paths");
    }
    let pb = bar("hydrating");
    let n = hydrate::status::hydrate(dir, None, paths, &|n| pb.inc(n)).with_context(|| format!("cannot hydrate {}", dir.display()))?;
    pb.finish_and_clear();
    note!("hydrated {n} files");
    if detach {
        let files = hydrate::status::detach(dir).with_context(|| format!("cannot detach {}", dir.display()))?;
        note!("detached {}: {files} files, a plain directory now (no daemon needed)", dir.display());
    }
    Ok(0)
}

/// `thaw dehydrate`: files back to stubs, through the daemon when served.
fn dehydrate(dir: &Path, opts: hydrate::dehydrate::Options) -> Result<i32> {
    let s = hydrate::control::dehydrate(dir, &opts).with_context(|| format!("cannot dehydrate {}", dir.display()))?;
    note!(
        "dehydrated {} files ({} freed); kept: {} modified by users, {} not thaw's, {} hard-linked, {} open or mapped, {} read recently, {} in the profile, {} busy; {} already stubs",
        s.dehydrated,
        human(s.bytes_freed),
        s.kept_modified,
        s.kept_not_ours,
        s.kept_linked,
        s.kept_held,
        s.kept_recent,
        s.kept_profile,
        s.kept_busy,
        s.already_stubs
    );
    Ok(0)
}

/// `thaw completions SHELL`: the completion script, to stdout.
fn completions(shell: Shell) -> Result<i32> {
    let mut out = io::stdout().lock();
    // clap_complete offers hidden commands too (clap issue 1335): complete a
    // copy of the root that has only the visible ones, so `__guard` is not offered.
    let cli = Cli::command();
    let mut visible = clap::Command::new("thaw")
        .version(env!("CARGO_PKG_VERSION"))
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut visible, "thaw", &mut out);
    out.flush()?;
    Ok(0)
}

/// `thaw man`: thaw(1) to stdout, or with `--dir` thaw.1 and one
/// thaw-COMMAND.1 per command written into DIR.
fn man(dir: Option<&Path>) -> Result<i32> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir).with_context(|| format!("cannot write man pages into {}", dir.display()))?;
        }
        None => {
            let mut out = io::stdout().lock();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(0)
}

/// A daemon must outlive a closed stderr (a log pipe that went away): a
/// write then fails with EPIPE instead of killing it with SIGPIPE.
fn survive_broken_pipes() -> Result<()> {
    signal_hook::flag::register(signal_hook::consts::SIGPIPE, Arc::new(AtomicBool::new(false))).context("cannot handle SIGPIPE")?;
    Ok(())
}

/// Calls `then` on SIGINT or SIGTERM, on the thread that waits for them
/// (so it may do more than a signal handler could).
fn on_stop_signal(then: impl Fn() + Send + 'static) -> Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot catch SIGINT/SIGTERM")?;
    std::thread::Builder::new().name("thaw-signals".into()).spawn(move || {
        for _ in signals.forever() {
            then();
        }
    })?;
    Ok(())
}

/// Tells systemd about our state when it started us with `Type=notify`
/// (`NOTIFY_SOCKET` set); does nothing otherwise.
fn notify_systemd(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// `thaw upgrade`
fn upgrade(dir: &Path) -> Result<i32> {
    let s = thaw::tree::populate::upgrade(dir).with_context(|| format!("cannot upgrade {}", dir.display()))?;
    for r in &s.refused {
        note!("thaw: refused: {r} (now an ordinary file)");
    }
    match s.already_current {
        true => println!("{}: already current, nothing to do", dir.display()),
        false => println!("{}: upgraded {} stubs, refused {}", dir.display(), s.upgraded, s.refused.len()),
    }
    Ok(0)
}

/// `thaw upgrade DIR --to NEW`
fn upgrade_to(dir: &Path, to: &Path) -> Result<i32> {
    let s = thaw::tree::upgrade::upgrade_to(dir, to).with_context(|| format!("cannot move {} onto {}", dir.display(), to.display()))?;
    for r in &s.refused {
        note!("thaw: cannot move {r}");
    }
    if !s.refused.is_empty() {
        bail!("{}: {} stubs cannot move onto {}; nothing was changed", dir.display(), s.refused.len(), to.display());
    }
    println!("{}: {} stubs moved onto {} ({} already)", dir.display(), s.moved, to.display(), s.already);
    Ok(0)
}

/// `thaw run`: the library supervises; this prints what it did.
fn run_command(archive: &Path, dir: &Path, opts: ServeOptions, command: &[std::ffi::OsString]) -> Result<i32> {
    let a = Arc::new(open_for_dir(archive, dir)?);
    let interrupted = Arc::new(AtomicBool::new(false));
    survive_broken_pipes()?;
    let i = interrupted.clone();
    on_stop_signal(move || i.store(true, Ordering::Relaxed))?;
    let out = hydrate::supervise::run(a.clone(), archive, dir, opts, command, &interrupted)
        .with_context(|| format!("cannot run {:?} on {}", command[0], dir.display()))?;
    if let Some(s) = &out.populated {
        note!("thaw: populated {} entries ({} stubs)", s.entries, s.stubs);
    }
    log_transfer(&a);
    let st = &out.stats;
    note!("thaw: {} events, {} written, {} files completed", st.events, human(st.bytes_written), st.files_completed);
    Ok(out.code)
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
