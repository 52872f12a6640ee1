//! The daemon's control socket: `thaw dehydrate DIR` on a served tree asks
//! the daemon, which alone can empty a file safely while readers come and
//! go (see [`super::dehydrate`]). The socket is `control.sock` in the stage,
//! which is root's and mode 0700, so only root can reach it. One request per
//! connection: a JSON line in, a JSON line out.

use super::dehydrate::{self, Options, Summary};
use super::stop::Stop;
use super::Error;
use crate::tree::stage::Stage;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Name of the socket in the stage.
pub const SOCKET: &str = "control.sock";

/// A request to the daemon.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Request {
    /// `thaw dehydrate`.
    Dehydrate(Options),
}

/// The daemon's answer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Reply {
    /// What the dehydration did.
    Dehydrated(Summary),
    /// Why it failed.
    Failed(String),
}

/// The socket's path through the stage's fd (short, whatever the stage's
/// path: a socket path is limited to 107 bytes).
fn socket_path(stage: &Stage) -> Result<PathBuf, Error> {
    Ok(PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", stage.stage_fd()?.as_raw_fd())))
}

/// Serves control requests until `stop` is requested; `handle` answers each.
pub fn listen(
    stage: Stage,
    stop: Arc<Stop>,
    handle: impl Fn(&Stage, Request) -> Reply + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let path = socket_path(&stage)?;
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| Error::io(stage.root().join(SOCKET).display(), e))?;
    listener.set_nonblocking(true).map_err(|e| Error::io(SOCKET, e))?;
    std::thread::Builder::new()
        .name("thaw-control".into())
        .spawn(move || {
            while !stop.requested() {
                match stop.wait(listener.as_fd(), None) {
                    Ok(true) => {}
                    // Stopping (a request still queued is refused by the close).
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!("control socket: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
                match listener.accept() {
                    Ok((conn, _)) => {
                        if let Err(e) = answer(&stage, conn, &handle) {
                            tracing::warn!("control request: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        tracing::warn!("control socket: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            if let Ok(p) = socket_path(&stage) {
                let _ = std::fs::remove_file(p);
            }
        })
        .map_err(|e| Error::Setup(format!("control thread: {e}")))
}

fn answer(stage: &Stage, conn: UnixStream, handle: &dyn Fn(&Stage, Request) -> Reply) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(req) => handle(stage, req),
        Err(e) => Reply::Failed(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&conn).write_all(&out)
}

/// Asks the daemon serving `stage`'s tree to dehydrate.
pub fn request_dehydrate(stage: &Stage, opts: &Options) -> Result<Summary, Error> {
    let path = socket_path(stage)?;
    let shown = stage.root().join(SOCKET).display().to_string();
    let conn = UnixStream::connect(&path).map_err(|e| {
        Error::Setup(format!("{shown}: cannot reach the daemon serving {} ({e}); is it a thaw that knows dehydrate?", stage.dir.display()))
    })?;
    let mut req = serde_json::to_vec(&Request::Dehydrate(opts.clone())).map_err(|e| Error::Setup(e.to_string()))?;
    req.push(b'\n');
    (&conn).write_all(&req).map_err(|e| Error::io(&shown, e))?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).map_err(|e| Error::io(&shown, e))?;
    match serde_json::from_str::<Reply>(&line) {
        Ok(Reply::Dehydrated(s)) => Ok(s),
        Ok(Reply::Failed(why)) => Err(Error::Setup(format!("the daemon: {why}"))),
        Err(e) => Err(Error::Setup(format!("{shown}: unreadable reply {line:?}: {e}"))),
    }
}

/// `thaw dehydrate DIR`: through the daemon when one serves DIR, else offline.
pub fn dehydrate(dir: &std::path::Path, opts: &Options) -> Result<Summary, Error> {
    let stage = Stage::open(dir)?;
    if stage.is_served() {
        return request_dehydrate(&stage, opts);
    }
    let info = stage.info()?;
    let archive = crate::archive::Archive::open(&info.archive)?;
    stage.check_archive(&archive)?;
    dehydrate::dehydrate_offline(&stage, &archive, opts)
}
