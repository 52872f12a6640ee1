//! Archives over HTTP(S) and S3: a [`Source`] that reads byte ranges of one
//! version of one object through `object_store`, below the reader's frame
//! cache. It keeps the compressed ranges it fetched (so a frame is fetched
//! once while it may be needed), runs one request per run of adjacent
//! missing bytes, reads ahead of sequential readers, and keeps at most
//! `concurrency` requests in flight. Every request after the first is
//! conditional on the object's version (ETag, else Last-Modified and size):
//! a replaced object fails reads, it never mixes bytes of two versions.
//!
//! Credentials come from the AWS environment (`object_store`'s
//! `AmazonS3Builder::from_env`); URLs carrying credentials (user:password@)
//! or query strings are refused, so nothing secret is ever shown or stored.

use super::reader::{Source, Transfer};
use super::{Archive, Error};
use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, RetryConfig};
use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};
use url::Url;

/// Bytes the first request takes from the end of the object: what the
/// reader's first read of the trailer takes (the seek table and, when it
/// fits, the whole index), so opening costs one request.
pub const TAIL_PREFETCH: u64 = super::reader::TAIL_READ;

/// How remote archives are read; [`RemoteOptions::from_env`] reads the
/// `THAW_REMOTE_*` variables, `thaw --remote-concurrency` overrides one.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Requests in flight at once per archive (`THAW_REMOTE_CONCURRENCY`, default 8).
    pub concurrency: usize,
    /// Longest one request may take, body included (`THAW_REMOTE_TIMEOUT` seconds, default 20).
    pub request_timeout: Duration,
    /// Longest a connection attempt may take (5 s).
    pub connect_timeout: Duration,
    /// Transient failures (timeouts, resets, 5xx, short bodies) are retried
    /// with backoff until this long after the first try
    /// (`THAW_REMOTE_DEADLINE` seconds, default 30); then the read fails.
    pub deadline: Duration,
    /// Budget of the compressed-range cache in bytes (64 MiB).
    pub cache_bytes: usize,
    /// Largest readahead window for a sequential reader
    /// (`THAW_REMOTE_READAHEAD` bytes, default 4 MiB; 0 turns it off; `serve`
    /// and `run` default to 0: the daemon reads ahead within files itself).
    pub readahead_max: u64,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            concurrency: 8,
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(30),
            cache_bytes: 64 << 20,
            readahead_max: 4 << 20,
        }
    }
}

impl RemoteOptions {
    /// The defaults, changed by the `THAW_REMOTE_*` variables that are set.
    pub fn from_env() -> RemoteOptions {
        let mut o = RemoteOptions::default();
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = num("THAW_REMOTE_CONCURRENCY") {
            o.concurrency = (n as usize).max(1);
        }
        if let Some(n) = num("THAW_REMOTE_TIMEOUT") {
            o.request_timeout = Duration::from_secs(n.max(1));
        }
        if let Some(n) = num("THAW_REMOTE_DEADLINE") {
            o.deadline = Duration::from_secs(n);
        }
        if let Some(n) = num("THAW_REMOTE_READAHEAD") {
            o.readahead_max = n;
        }
        o
    }
}

static DEFAULTS: OnceLock<RemoteOptions> = OnceLock::new();

/// Sets the options every later remote open uses (the command line's); the
/// first call wins.
pub fn set_defaults(o: RemoteOptions) {
    let _ = DEFAULTS.set(o);
}

fn defaults() -> RemoteOptions {
    DEFAULTS.get().cloned().unwrap_or_else(RemoteOptions::from_env)
}

/// Where an `ARCHIVE` argument points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file (a plain path, or a `file://` URL).
    Local(PathBuf),
    /// An `http://`, `https://` or `s3://` URL.
    Remote(Url),
}

/// True if `arg` is written as a URL thaw reads remotely (`http(s)://`, `s3://`).
pub fn is_remote(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| ["http://", "https://", "s3://"].iter().any(|p| s.len() > p.len() && s[..p.len()].eq_ignore_ascii_case(p)))
}

impl Location {
    /// Reads an `ARCHIVE` argument: a URL for the schemes thaw knows, else a path.
    pub fn parse(arg: &Path) -> Result<Location, Error> {
        let Some(s) = arg.to_str().filter(|s| s.contains("://")) else { return Ok(Location::Local(arg.to_path_buf())) };
        let bad = |why: &str| Error::Unsupported(format!("{}: {why}", shown_arg(s)));
        let url = Url::parse(s).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if url.scheme() == "file" {
            return url.to_file_path().map(Location::Local).map_err(|()| bad("a file:// URL must name an absolute local path"));
        }
        if !matches!(url.scheme(), "http" | "https" | "s3") {
            return Err(bad("thaw reads archives from http://, https://, s3:// and file:// URLs"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in the URL are refused (they would show in logs and the stage); for S3 use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("URLs with a query (e.g. presigned URLs) are not supported"));
        }
        if url.host_str().is_none_or(str::is_empty) || url.path().trim_matches('/').is_empty() {
            return Err(bad("names no host/bucket and object"));
        }
        Ok(Location::Remote(url))
    }
}

/// An `ARCHIVE` argument for messages: a path as it is, a URL without
/// anything after `?` or `#` and without a user:password part.
pub fn shown(arg: &Path) -> String {
    match arg.to_str() {
        Some(s) if s.contains("://") => shown_arg(s),
        _ => arg.display().to_string(),
    }
}

/// [`shown`] for a URL.
fn shown_arg(s: &str) -> String {
    let s = s.split(['?', '#']).next().unwrap_or_default();
    match (s.find("://"), s.find('@')) {
        (Some(i), Some(at)) if at > i && !s[i + 3..at].contains('/') => format!("{}{}", &s[..i + 3], &s[at + 1..]),
        _ => s.to_string(),
    }
}

/// Opens the archive at `arg` (a path or a URL). For a remote one,
/// `expect_version` (recorded by `populate`) makes even the first request
/// conditional on it.
pub fn open(arg: &Path, expect_version: Option<&str>) -> Result<Archive, Error> {
    open_with_tail(arg, expect_version, None)
}

/// Largest kept tail [`open_with_tail`] takes (a bigger one is ignored).
pub const KEPT_TAIL_MAX: usize = 64 << 20;

/// [`open`], given the archive's last bytes as `populate` kept them in the
/// stage (at least the index and seek table): with `expect_version` too,
/// the opening request then asks for one byte only (it still checks the
/// version and tells the size), and the index is read from `kept_tail`
/// instead of fetched again. The bytes are checked like fetched ones (the
/// index checksums and the archive id).
pub fn open_with_tail(arg: &Path, expect_version: Option<&str>, kept_tail: Option<Vec<u8>>) -> Result<Archive, Error> {
    match Location::parse(arg)? {
        Location::Local(p) => Archive::open(&p),
        Location::Remote(url) => Archive::from_source(Box::new(RemoteSource::open(&url, expect_version, &defaults(), kept_tail)?)),
    }
}

/// The version of the object a source reads, as recorded in a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Version {
    /// The object's ETag, quoted as the server sent it.
    ETag(String),
    /// For servers without ETags: Last-Modified and size.
    Modified(chrono::DateTime<chrono::Utc>, u64),
}

impl Version {
    fn of(meta: &ObjectMeta) -> Version {
        match &meta.e_tag {
            Some(t) if !t.is_empty() => Version::ETag(t.clone()),
            _ => Version::Modified(meta.last_modified, meta.size),
        }
    }

    fn parse(s: &str) -> Option<Version> {
        if let Some(t) = s.strip_prefix("etag:") {
            return Some(Version::ETag(t.to_string()));
        }
        let (at, size) = s.strip_prefix("modified:")?.rsplit_once(";size:")?;
        Some(Version::Modified(chrono::DateTime::parse_from_rfc3339(at).ok()?.to_utc(), size.parse().ok()?))
    }

    fn text(&self) -> String {
        match self {
            Version::ETag(t) => format!("etag:{t}"),
            Version::Modified(at, size) => format!("modified:{};size:{size}", at.to_rfc3339()),
        }
    }

    /// The request conditions that make a server refuse any other version.
    fn conditions(&self, o: &mut GetOptions) {
        match self {
            Version::ETag(t) => o.if_match = Some(t.clone()),
            Version::Modified(at, _) => o.if_unmodified_since = Some(*at),
        }
    }

    /// Whether a response's metadata is of this version (servers that ignore
    /// the conditions are caught here).
    fn matches(&self, meta: &ObjectMeta) -> bool {
        match self {
            Version::ETag(t) => meta.e_tag.as_deref() == Some(t.as_str()),
            Version::Modified(at, size) => meta.last_modified == *at && meta.size == *size,
        }
    }
}

/// Why a request failed, kept cloneable for every reader waiting on it.
#[derive(Debug, Clone)]
struct Fault {
    kind: FaultKind,
    why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    /// Worth retrying: timeout, reset, 5xx, short body.
    Transient,
    /// The object is not the version pinned at open.
    Changed,
    /// 404, 403, 401, or anything else a retry will not fix.
    Final,
}

impl Fault {
    fn new(kind: FaultKind, why: impl Into<String>) -> Fault {
        Fault { kind, why: why.into() }
    }

    /// Classifies an `object_store` error. 4xx answers get thaw's own words
    /// (their bodies can echo request details); others keep the store's message.
    fn from_store(e: &object_store::Error, shown: &str) -> Fault {
        use object_store::Error as E;
        let chain = super::error_chain(e);
        let status = |code: &str| chain.contains(&format!("status code: {code}")) || chain.contains(&format!("{code} "));
        match e {
            E::NotFound { .. } => {
                Fault::new(FaultKind::Final, format!("not found (HTTP 404): check the URL; for s3:// the bucket and key ({shown})"))
            }
            E::Precondition { .. } => Fault::new(FaultKind::Changed, "the object was replaced (HTTP 412: its version no longer matches)"),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => Fault::new(FaultKind::Final, denied()),
            _ if status("403") || status("401") => Fault::new(FaultKind::Final, denied()),
            _ if status("404") => Fault::new(FaultKind::Final, "not found (HTTP 404): check the URL".to_string()),
            _ if status("412") => Fault::new(FaultKind::Changed, "the object was replaced (HTTP 412: its version no longer matches)"),
            E::NotSupported { .. } => Fault::new(FaultKind::Final, format!("the server does not support range requests: {chain}")),
            E::Generic { .. } if status("400") || status("416") => Fault::new(FaultKind::Final, format!("request refused: {chain}")),
            _ => Fault::new(FaultKind::Transient, chain),
        }
    }

    fn into_error(self, shown: &str, range: Option<&Range<u64>>) -> Error {
        let at = range.map(|r| format!(" bytes {}-{}", r.start, r.end.saturating_sub(1))).unwrap_or_default();
        match self.kind {
            FaultKind::Changed => Error::Changed { path: shown.to_string(), what: self.why },
            _ => Error::io(format!("{shown}{at}"), io::Error::other(self.why)),
        }
    }
}

fn denied() -> String {
    "access denied (HTTP 403/401): check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
     AWS_SESSION_TOKEN) and that they may read this object"
        .to_string()
}

/// One request's outcome, shared by every reader that waits for it.
#[derive(Default)]
struct Flight {
    done: Mutex<Option<Result<Bytes, Fault>>>,
    cv: Condvar,
}

impl Flight {
    fn complete(&self, r: Result<Bytes, Fault>) {
        *self.done.lock().unwrap() = Some(r);
        self.cv.notify_all();
    }

    /// Waits for the outcome, at most `limit` (a stuck request must not hang a reader).
    fn wait(&self, limit: Duration) -> Result<Bytes, Fault> {
        let g = self.done.lock().unwrap();
        let (g, _) = self.cv.wait_timeout_while(g, limit, |d| d.is_none()).unwrap();
        g.clone().unwrap_or_else(|| Err(Fault::new(FaultKind::Transient, format!("no answer within {} s", limit.as_secs()))))
    }
}

/// A cached run of compressed bytes.
struct Piece {
    data: Bytes,
    last_use: u64,
}

/// The compressed-range cache, the requests in flight and the sequential
/// streams seen. Pieces and flights never overlap.
#[derive(Default)]
struct Ranges {
    pieces: BTreeMap<u64, Piece>,
    bytes: usize,
    tick: u64,
    flights: Vec<(Range<u64>, Arc<Flight>)>,
    /// (next expected offset, readahead window) of recent sequential readers.
    streams: Vec<(u64, u64)>,
}

/// A request to start: its range and the flight its readers wait on.
type NewFlight = (Range<u64>, Arc<Flight>);

/// Where one part of a read comes from.
enum Part {
    Cached(u64, Bytes),
    Flying(u64, Arc<Flight>),
}

impl Ranges {
    /// The cached piece holding `pos`, as (start, bytes).
    fn piece_at(&mut self, pos: u64) -> Option<(u64, Bytes)> {
        self.tick += 1;
        let tick = self.tick;
        let (&s, p) = self.pieces.range_mut(..=pos).next_back()?;
        (s + p.data.len() as u64 > pos).then(|| {
            p.last_use = tick;
            (s, p.data.clone())
        })
    }

    fn flight_at(&self, pos: u64) -> Option<(u64, Arc<Flight>)> {
        self.flights.iter().find(|(r, _)| r.contains(&pos)).map(|(r, f)| (r.start, f.clone()))
    }

    /// The first byte at or after `pos` that is cached or in flight.
    fn next_known(&self, pos: u64) -> u64 {
        let piece = self.pieces.range(pos..).next().map(|(&s, _)| s);
        let flight = self.flights.iter().map(|(r, _)| r.start).filter(|&s| s >= pos).min();
        piece.into_iter().chain(flight).min().unwrap_or(u64::MAX)
    }

    /// Splits `want` into cached parts, parts in flight, and gaps; each gap
    /// becomes a new flight (returned to be started) whose end may be pushed
    /// on to `stretch_to` when it reaches the end of `want` (readahead).
    fn plan(&mut self, want: Range<u64>, stretch_to: u64) -> (Vec<(Range<u64>, Part)>, Vec<NewFlight>) {
        let (mut parts, mut new) = (Vec::new(), Vec::new());
        let mut pos = want.start;
        while pos < want.end {
            if let Some((s, data)) = self.piece_at(pos) {
                let end = (s + data.len() as u64).min(want.end);
                parts.push((pos..end, Part::Cached(s, data)));
                pos = end;
            } else if let Some((s, f)) = self.flight_at(pos) {
                let end = self.flights.iter().find(|(r, _)| r.start == s).map_or(pos, |(r, _)| r.end).min(want.end);
                parts.push((pos..end, Part::Flying(s, f)));
                pos = end;
            } else {
                let known = self.next_known(pos);
                let end = known.min(want.end);
                let fetch_end = if end == want.end { known.min(stretch_to.max(end)) } else { end };
                let f = Arc::new(Flight::default());
                self.flights.push((pos..fetch_end, f.clone()));
                new.push((pos..fetch_end, f.clone()));
                parts.push((pos..end, Part::Flying(pos, f)));
                pos = end;
            }
        }
        (parts, new)
    }

    /// Records a read of `r` and returns the readahead window for it: 0 for a
    /// read that does not continue an earlier one, then growing (×2) up to `max`.
    fn sequential(&mut self, r: &Range<u64>, max: u64) -> u64 {
        let len = r.end - r.start;
        let window = match self.streams.iter_mut().find(|(next, _)| *next == r.start) {
            Some(s) => {
                s.1 = if s.1 == 0 { len } else { s.1.saturating_mul(2) }.min(max);
                s.0 = r.end;
                s.1
            }
            None => {
                if self.streams.len() >= 32 {
                    self.streams.remove(0);
                }
                self.streams.push((r.end, 0));
                0
            }
        };
        window
    }

    fn insert(&mut self, start: u64, data: Bytes, budget: usize) {
        self.tick += 1;
        self.bytes += data.len();
        self.pieces.insert(start, Piece { data, last_use: self.tick });
        while self.bytes > budget && self.pieces.len() > 1 {
            let Some(victim) = self.pieces.iter().min_by_key(|(_, p)| p.last_use).map(|(&k, _)| k) else { break };
            let p = self.pieces.remove(&victim).expect("present");
            self.bytes -= p.data.len();
        }
    }
}

/// What the request tasks share.
struct Conn {
    store: Box<dyn ObjectStore>,
    path: ObjPath,
    /// The URL for messages (never with credentials: those are refused).
    shown: String,
    opts: RemoteOptions,
    limit: tokio::sync::Semaphore,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Conn {
    /// One ranged GET, retried with backoff while the failure is transient and
    /// the deadline has not passed. `want` checks the version of each answer.
    async fn get(&self, range: GetRange, want: Option<&Version>, len: Option<u64>) -> Result<(Bytes, ObjectMeta), Fault> {
        let _permit = self.limit.acquire().await.map_err(|_| Fault::new(FaultKind::Final, "closed"))?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let r = self.get_once(range.clone(), want, len).await;
            match r {
                Err(f) if f.kind == FaultKind::Transient && started.elapsed() + pause < self.opts.deadline => {
                    tracing::info!("{} ({range}): {}; retrying in {} ms", self.shown, f.why, pause.as_millis());
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(mut f) if f.kind == FaultKind::Transient => {
                    f.why = format!("{} (gave up after {:.1} s)", f.why, started.elapsed().as_secs_f64());
                    return Err(f);
                }
                r => return r,
            }
        }
    }

    async fn get_once(&self, range: GetRange, want: Option<&Version>, len: Option<u64>) -> Result<(Bytes, ObjectMeta), Fault> {
        let mut o = GetOptions { range: Some(range), ..Default::default() };
        if let Some(v) = want {
            v.conditions(&mut o);
        }
        let res = self.store.get_opts(&self.path, o).await.map_err(|e| Fault::from_store(&e, &self.shown))?;
        let (meta, got) = (res.meta.clone(), res.range.clone());
        if want.is_some_and(|v| !v.matches(&meta)) || len.is_some_and(|l| l != meta.size) {
            return Err(Fault::new(FaultKind::Changed, "the object was replaced (its version or size no longer matches)"));
        }
        let data = res.bytes().await.map_err(|e| Fault::from_store(&e, &self.shown))?;
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        if data.len() as u64 != got.end - got.start {
            return Err(Fault::new(FaultKind::Transient, format!("short body: {} of {} bytes", data.len(), got.end - got.start)));
        }
        Ok((data, meta))
    }
}

/// What a [`RemoteSource`] and its request tasks share.
struct Inner {
    conn: Conn,
    len: u64,
    version: Version,
    ranges: Mutex<Ranges>,
    /// Set by the first [`Source::prefetch`]: a reader that says what it
    /// needs gets no speculative readahead (it would run past what it needs).
    hinted: std::sync::atomic::AtomicBool,
}

impl Inner {
    /// A request task: fetches `r`, caches it, and wakes its readers.
    async fn fetch(self: Arc<Inner>, r: Range<u64>, flight: Arc<Flight>) {
        let res = self.conn.get(GetRange::Bounded(r.clone()), Some(&self.version), Some(self.len)).await.map(|(b, _)| b);
        {
            let mut g = self.ranges.lock().unwrap();
            g.flights.retain(|(_, f)| !Arc::ptr_eq(f, &flight));
            if let Ok(b) = &res {
                g.insert(r.start, b.clone(), self.conn.opts.cache_bytes);
            }
        }
        if let Err(f) = &res {
            tracing::warn!("{} bytes {}-{}: {}", self.conn.shown, r.start, r.end - 1, f.why);
        }
        flight.complete(res);
    }
}

/// An object read by ranges over HTTP(S) or S3 (see the module doc). Owns a
/// small tokio runtime (2 threads) that runs the requests; readers block.
pub struct RemoteSource {
    inner: Arc<Inner>,
    rt: tokio::runtime::Runtime,
}

impl RemoteSource {
    /// Opens `url` with one request: the last [`TAIL_PREFETCH`] bytes, which
    /// also tell the size and version. With `expect` (a version recorded by
    /// `populate`), that request is already conditional on it, and with a
    /// `kept_tail` too (see [`open_with_tail`]) it asks for the last byte only.
    pub fn open(url: &Url, expect: Option<&str>, opts: &RemoteOptions, kept_tail: Option<Vec<u8>>) -> Result<RemoteSource, Error> {
        let shown = shown_arg(url.as_str());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("thaw-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::io(&shown, e))?;
        let (store, path) = store_for(url, opts)?;
        let conn = Conn {
            store,
            path,
            shown: shown.clone(),
            opts: opts.clone(),
            limit: tokio::sync::Semaphore::new(opts.concurrency.max(1)),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        let want = match expect {
            Some(s) => Some(Version::parse(s).ok_or_else(|| Error::corrupt("stage", format!("unreadable archive version {s:?}")))?),
            None => None,
        };
        let kept = kept_tail.filter(|t| want.is_some() && !t.is_empty() && t.len() <= KEPT_TAIL_MAX);
        let ask = if kept.is_some() { 1 } else { TAIL_PREFETCH };
        let (tail, meta) = rt.block_on(conn.get(GetRange::Suffix(ask), want.as_ref(), None)).map_err(|f| {
            let f = match (f.kind, &want) {
                (FaultKind::Changed, Some(_)) => Fault { why: format!("{}; it is not the version `thaw populate` recorded", f.why), ..f },
                _ => f,
            };
            f.into_error(&shown, None)
        })?;
        let version = want.unwrap_or_else(|| Version::of(&meta));
        let tail = match kept {
            Some(t) if t.len() as u64 <= meta.size && t.last() == tail.last() => Bytes::from(t),
            Some(_) => {
                return Err(Error::corrupt("stage", format!("the archive tail kept by populate does not end like {shown}")));
            }
            None => tail,
        };
        let mut ranges = Ranges::default();
        let n = tail.len();
        ranges.insert(meta.size - n as u64, tail, opts.cache_bytes.max(n));
        tracing::debug!("{shown}: {} bytes, version {}", meta.size, version.text());
        let inner = Inner { conn, len: meta.size, version, ranges: Mutex::new(ranges), hinted: Default::default() };
        Ok(RemoteSource { inner: Arc::new(inner), rt })
    }

    fn spawn(&self, new: Vec<NewFlight>) {
        for (r, f) in new {
            self.rt.spawn(self.inner.clone().fetch(r, f));
        }
    }

    /// Longest a reader waits for one part: a request's whole retry budget, and some.
    fn wait_limit(&self) -> Duration {
        let o = &self.inner.conn.opts;
        o.deadline + o.request_timeout + Duration::from_secs(5)
    }
}

impl Source for RemoteSource {
    fn len(&self) -> u64 {
        self.inner.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let end = offset.checked_add(buf.len() as u64).filter(|&e| e <= self.inner.len);
        let Some(end) = end else {
            return Err(Error::io(&self.inner.conn.shown, io::Error::from(io::ErrorKind::UnexpectedEof)));
        };
        let want = offset..end;
        let (parts, ahead) = {
            let mut g = self.inner.ranges.lock().unwrap();
            let max = if self.inner.hinted.load(Ordering::Relaxed) { 0 } else { self.inner.conn.opts.readahead_max };
            let window = g.sequential(&want, max);
            let stretch = end.saturating_add(window).min(self.inner.len);
            let (parts, new) = g.plan(want.clone(), stretch);
            // Readahead past what the read itself starts: only when at least
            // half a window is missing, so requests stay large.
            let mut ahead = Vec::new();
            if window > 0 && new.is_empty() {
                let from = g.covered_to(end);
                if from < stretch && stretch - from >= window / 2 {
                    let (_, more) = g.plan(from..stretch, stretch);
                    ahead = more;
                }
            }
            (parts, [new, ahead])
        };
        for new in ahead {
            self.spawn(new);
        }
        let limit = self.wait_limit();
        for (r, part) in parts {
            let (start, data) = match part {
                Part::Cached(s, d) => (s, d),
                Part::Flying(s, f) => (s, f.wait(limit).map_err(|f| f.into_error(&self.inner.conn.shown, Some(&r)))?),
            };
            let from = (r.start - start) as usize;
            let n = (r.end - r.start) as usize;
            if data.len() < from + n {
                return Err(Error::io(&self.inner.conn.shown, io::Error::other("internal: a cached range is shorter than recorded")));
            }
            buf[(r.start - offset) as usize..(r.end - offset) as usize].copy_from_slice(&data[from..from + n]);
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.inner.conn.shown.clone()
    }

    fn version(&self) -> Option<String> {
        Some(self.inner.version.text())
    }

    fn transfer(&self) -> Transfer {
        Transfer { requests: self.inner.conn.requests.load(Ordering::Relaxed), bytes: self.inner.conn.bytes.load(Ordering::Relaxed) }
    }

    fn prefetch(&self, range: Range<u64>) {
        self.inner.hinted.store(true, Ordering::Relaxed);
        let range = range.start..range.end.min(self.inner.len);
        if range.is_empty() {
            return;
        }
        let (_, new) = self.inner.ranges.lock().unwrap().plan(range.clone(), range.end);
        self.spawn(new);
    }
}

impl Ranges {
    /// The end of the run of cached or in-flight bytes that starts at `pos`.
    fn covered_to(&mut self, mut pos: u64) -> u64 {
        loop {
            if let Some((s, d)) = self.piece_at(pos) {
                pos = s + d.len() as u64;
            } else if let Some(end) = self.flights.iter().find(|(r, _)| r.contains(&pos)).map(|(r, _)| r.end) {
                pos = end;
            } else {
                return pos;
            }
        }
    }
}

/// The client settings every store gets: the timeouts and the retry policy
/// (see [`RemoteOptions`]).
fn client_options(opts: &RemoteOptions, allow_http: bool) -> (ClientOptions, RetryConfig) {
    let client =
        ClientOptions::new().with_timeout(opts.request_timeout).with_connect_timeout(opts.connect_timeout).with_allow_http(allow_http);
    let backoff = BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(2), base: 2.0 };
    (client, RetryConfig { backoff, max_retries: 8, retry_timeout: opts.deadline })
}

/// The store and object path for a URL (checked by [`Location::parse`]).
fn store_for(url: &Url, opts: &RemoteOptions) -> Result<(Box<dyn ObjectStore>, ObjPath), Error> {
    let shown = shown_arg(url.as_str());
    let fail = |e: object_store::Error| Error::Unsupported(format!("{shown}: {}", super::error_chain(&e)));
    let path = ObjPath::from_url_path(url.path()).map_err(|e| Error::Unsupported(format!("{shown}: bad object path: {e}")))?;
    match url.scheme() {
        "s3" => {
            let endpoint = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"].iter().find_map(|k| std::env::var(k).ok());
            let (client, retry) = client_options(opts, endpoint.is_some_and(|e| e.starts_with("http://")));
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(fail)?;
            Ok((Box::new(store), path))
        }
        _ => {
            let (client, retry) = client_options(opts, url.scheme() == "http");
            let base = format!("{}://{}", url.scheme(), &url[url::Position::BeforeHost..url::Position::AfterPort]);
            let store = object_store::http::HttpBuilder::new()
                .with_url(base)
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(fail)?;
            Ok((Box::new(store), path))
        }
    }
}

/// Uploads the local file `file` to `dest` (`s3://bucket/key`) with a
/// multipart upload; returns the bytes sent. `pack` and `convert` write the
/// archive locally first, then call this.
pub fn upload(file: &Path, dest: &Url) -> Result<u64, Error> {
    use std::io::Read;
    let shown = shown_arg(dest.as_str());
    if dest.scheme() != "s3" {
        return Err(Error::Unsupported(format!("{shown}: thaw writes archives to a local path or to s3://bucket/key")));
    }
    let opts = defaults();
    let (store, path) = store_for(dest, &opts)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| Error::io(&shown, e))?;
    let mut f = std::fs::File::open(file).map_err(|e| Error::io(file.display(), e))?;
    let fail = |e: object_store::Error| Fault::from_store(&e, &shown).into_error(&shown, None);
    rt.block_on(async {
        let upload = store.put_multipart(&path).await.map_err(fail)?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, 16 << 20);
        let mut buf = vec![0u8; 8 << 20];
        let mut sent = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(file.display(), e))?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(opts.concurrency.max(1)).await.map_err(fail)?;
            w.write(&buf[..n]);
            sent += n as u64;
        }
        w.finish().await.map_err(fail)?;
        Ok(sent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(Location::parse(Path::new("a/b.tar.zst")).unwrap(), Location::Local("a/b.tar.zst".into()));
        assert_eq!(Location::parse(Path::new("file:///x/y.tar.zst")).unwrap(), Location::Local("/x/y.tar.zst".into()));
        assert!(matches!(Location::parse(Path::new("s3://bucket/key.tar.zst")).unwrap(), Location::Remote(_)));
        assert!(matches!(Location::parse(Path::new("https://h:8080/a/b")).unwrap(), Location::Remote(_)));
        let e = Location::parse(Path::new("https://user:SECRETPW@h/a")).unwrap_err().to_string();
        assert!(!e.contains("SECRETPW") && e.contains("credentials"), "{e}");
        let e = Location::parse(Path::new("https://h/a?X-Amz-Signature=SECRETSIG")).unwrap_err().to_string();
        assert!(!e.contains("SECRETSIG"), "{e}");
        assert!(Location::parse(Path::new("ftp://h/a")).is_err());
        assert!(is_remote(Path::new("S3://b/k")) && !is_remote(Path::new("file:///a")) && !is_remote(Path::new("/a")));
    }

    #[test]
    fn versions_round_trip() {
        for v in [Version::ETag("\"abc-12\"".into()), Version::Modified(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(), 42)] {
            assert_eq!(Version::parse(&v.text()), Some(v));
        }
        assert_eq!(Version::parse("nonsense"), None);
    }

    #[test]
    fn plan_splits_and_stretches() {
        let mut r = Ranges::default();
        r.insert(100, Bytes::from(vec![1u8; 100]), 1 << 20);
        let (parts, new) = r.plan(50..250, 400);
        assert_eq!(parts.len(), 3);
        assert_eq!(new.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(), vec![50..100, 200..400]);
        // Now in flight: a second reader waits on the same flights.
        let (parts, new) = r.plan(60..300, 300);
        assert!(new.is_empty() && parts.len() == 3);
        assert_eq!(r.covered_to(50), 400);
    }

    #[test]
    fn readahead_grows_on_sequential_reads() {
        let mut r = Ranges::default();
        assert_eq!(r.sequential(&(0..10), 100), 0);
        assert_eq!(r.sequential(&(10..20), 100), 10);
        assert_eq!(r.sequential(&(20..30), 100), 20);
        assert_eq!(r.sequential(&(500..510), 100), 0);
        assert_eq!(r.sequential(&(30..40), 100), 40);
        assert_eq!(r.sequential(&(40..50), 100), 80);
        assert_eq!(r.sequential(&(50..60), 100), 100);
    }
}
