//! Real servers for the remote-archive tests, started by the tests
//! themselves: nginx (Debian's package) serving a directory with range
//! support, moto in server mode as an S3 endpoint, and a fault-injecting
//! HTTP proxy (delay, reset, 503, truncated body, object swapped).
//! A server that cannot start fails the test (never a skip).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Starts `cmd` from a thread that lives as long as the test process, with
/// a parent-death signal: the server dies with the tests (a static is
/// never dropped), and not before (the signal follows the spawning thread).
fn spawn_for_life(mut cmd: Command) -> std::io::Result<Child> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        thaw::sys::process::kill_with_parent(&mut cmd);
        let _ = tx.send(cmd.spawn());
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("spawner thread")
}

/// A loopback port free right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `port` accepts connections, or panics quoting `log`.
fn wait_listening(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited ({st}) before listening on {port}: {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(
            Instant::now() < deadline,
            "{what} not listening on {port} after 30 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nginx serving `root` (with range requests, ETags, If-Match) on a loopback
/// port, logging one line per request to `access.log`: method, URI, Range,
/// status, body bytes. `/forbidden/` answers 403.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub root: PathBuf,
    pub access_log: PathBuf,
}

impl Nginx {
    /// The one nginx of this test process, started on first use (in a
    /// directory of its own under the temp dir).
    pub fn shared() -> &'static Mutex<Nginx> {
        static N: OnceLock<Mutex<Nginx>> = OnceLock::new();
        N.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("thaw-nginx.{}", std::process::id()));
            Mutex::new(Nginx::start(&dir))
        })
    }

    pub fn start(dir: &Path) -> Nginx {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"].iter().map(PathBuf::from).find(|p| p.exists());
        let bin = bin.unwrap_or_else(|| panic!("nginx is not installed (apt-get install nginx-light): the remote tests need it"));
        let root = dir.join("www");
        std::fs::create_dir_all(root.join("forbidden")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let port = free_port();
        let access_log = dir.join("access.log");
        let conf = dir.join("nginx.conf");
        let d = dir.display();
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  log_format t '$request_method $uri \"$http_range\" $status $body_bytes_sent';\n  access_log {d}/access.log t;\n\
                 client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
                 server {{ listen 127.0.0.1:{port}; root {}; location /forbidden/ {{ return 403; }} }}\n}}\n",
                root.display()
            ),
        )
        .unwrap();
        let log = dir.join("nginx.out");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&conf).arg("-p").arg(dir).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
        let mut child = spawn_for_life(cmd).expect("start nginx");
        wait_listening(port, "nginx", &mut child, &dir.join("error.log"));
        Nginx { child, port, root, access_log }
    }

    /// The URL of `name` under the served root.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Requests logged so far for `uri` (e.g. "/a.tar.zst").
    pub fn requests_for(&self, uri: &str) -> usize {
        let log = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        log.lines().filter(|l| l.split(' ').nth(1) == Some(uri)).count()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The credentials the S3 tests give thaw: the secret is recognisable so a
/// test can grep every output and stage file for it.
pub const SECRET: &str = "THAWTESTSECRETxq7Zk2LpW9vR4";
pub const KEY_ID: &str = "AKIATHAWTESTKEYID0001";

/// moto in server mode: an S3 endpoint in its own process.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn shared() -> &'static Moto {
        static M: OnceLock<Moto> = OnceLock::new();
        M.get_or_init(Moto::start)
    }

    fn start() -> Moto {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("thaw-moto.{}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out);
        let mut child = spawn_for_life(cmd)
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): pip install 'moto[server]'; the S3 tests need it"));
        wait_listening(port, "moto_server", &mut child, &log);
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment thaw needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// Creates a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        let resp = raw_request(
            self.port,
            &format!("PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", self.port),
        );
        assert!(resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"), "create bucket {name}: {resp}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn raw_request(port: u16, req: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// What the proxy does to the requests it gets (each counter is used up
/// one request at a time, in this order: reset, 503, delay, truncate).
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Close the next N connections without an answer.
    pub resets: usize,
    /// Answer the next N requests with 503.
    pub unavailable: usize,
    /// Hold the next N answers back this long.
    pub delays: usize,
    pub delay: Duration,
    /// Send only half the body of the next N answers, then close.
    pub truncations: usize,
    /// Reset every connection (a dead server).
    pub dead: bool,
    /// Serve this path instead of the one asked for (an object swapped mid-serve).
    pub swap: Option<(String, String)>,
    /// Drop If-Match from requests (a server that ignores conditions).
    pub strip_if_match: bool,
}

/// A fault-injecting HTTP/1.1 proxy in front of an upstream server, on its
/// own loopback port; one thread per connection, `Connection: close`.
pub struct FaultProxy {
    pub port: u16,
    pub faults: Arc<Mutex<Faults>>,
    /// Requests received (faulted ones included).
    pub requests: Arc<AtomicUsize>,
}

impl FaultProxy {
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (f, n) = (faults.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (f, n) = (f.clone(), n.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, upstream, &f, &n);
                });
            }
        });
        FaultProxy { port, faults, requests }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }
}

/// Takes one fault off the counters, if any is left.
fn take(n: &mut usize) -> bool {
    let had = *n > 0;
    *n = n.saturating_sub(1);
    had
}

fn handle(mut client: TcpStream, upstream: u16, faults: &Mutex<Faults>, count: &AtomicUsize) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut b)? == 0 {
            return Ok(());
        }
        head.push(b[0]);
    }
    count.fetch_add(1, Ordering::SeqCst);
    let (reset, unavailable, delay, truncate, swap, strip) = {
        let mut f = faults.lock().unwrap();
        let reset = f.dead || take(&mut f.resets);
        let unavailable = !reset && take(&mut f.unavailable);
        let delay = (!reset && !unavailable && take(&mut f.delays)).then_some(f.delay);
        let truncate = !reset && !unavailable && take(&mut f.truncations);
        (reset, unavailable, delay, truncate, f.swap.clone(), f.strip_if_match)
    };
    if reset {
        return client.shutdown(Shutdown::Both);
    }
    if unavailable {
        client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&head).into_owned();
    if let Some((from, to)) = swap {
        text = text.replacen(&format!(" {from} "), &format!(" {to} "), 1);
    }
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let mut req = String::new();
    for l in &lines {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("connection:") || (strip && lower.starts_with("if-match:")) {
            continue;
        }
        req.push_str(l);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(req.as_bytes())?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
    if truncate {
        let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |p| p + 4);
        let keep = body_at + (resp.len() - body_at) / 2;
        client.write_all(&resp[..keep])?;
        return client.shutdown(Shutdown::Both);
    }
    client.write_all(&resp)
}

/// The address a URL's port names (for messages).
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
