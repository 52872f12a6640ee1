//! Faults between thaw and the server, made by the proxy in
//! tests/support/servers.rs: transient ones are retried within the
//! deadline; then readers get EIO and the log names URL, range and cause.

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::{data, pack, thaw_cmd, Run};
use crate::servers::{FaultProxy, Faults, Nginx};
use crate::support::{scratch_dir, start_serve_logged};
use crate::util::publish;

/// An archive of a few files on nginx, and a proxy in front of nginx.
fn setup(name: &str) -> (crate::support::ScratchDir, FaultProxy, String) {
    let s = scratch_dir(name);
    let src = s.join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..6 {
        fs::write(src.join(format!("f{i}")), data(i + 10, 900_000)).unwrap();
    }
    let archive = s.join("a.tar.zst");
    pack(&src, &archive, "1M");
    let (_, uri) = publish(&archive, name);
    let port = Nginx::shared().lock().unwrap().port;
    let proxy = FaultProxy::start(port);
    let url = proxy.url(uri.trim_start_matches('/'));
    (s, proxy, url)
}

/// `thaw ARGS` with short timeouts, so faults resolve quickly.
fn thaw_short(args: &[&str]) -> Run {
    let out = thaw_cmd()
        .args(args)
        .env("THAW_REMOTE_TIMEOUT", "2")
        .env("THAW_REMOTE_DEADLINE", "4")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

#[test]
fn transient_faults_are_retried_and_the_bytes_are_exact() {
    let (s, proxy, url) = setup("faults-retry");
    let want = fs::read(s.join("src/f3")).unwrap();
    for (what, faults) in [
        ("503 three times", Faults { unavailable: 3, ..Default::default() }),
        ("two resets", Faults { resets: 2, ..Default::default() }),
        ("two truncated bodies", Faults { truncations: 2, ..Default::default() }),
        ("a slow answer", Faults { delays: 1, delay: Duration::from_millis(500), ..Default::default() }),
    ] {
        proxy.set(faults);
        let before = proxy.requests.load(Ordering::SeqCst);
        let run = thaw_short(&["-v", "cat", &url, "f3"]).ok();
        assert!(run.stdout == want, "{what}: wrong bytes");
        assert!(proxy.requests.load(Ordering::SeqCst) > before + 1, "{what}: nothing was retried");
    }
}

#[test]
fn a_dead_server_fails_reads_with_eio_within_the_deadline() {
    let (s, proxy, url) = setup("faults-dead");
    let dir = s.join("lazy");
    thaw_short(&["populate", &url, &dir.display().to_string()]).ok();
    let log = s.join("serve.log");
    let envs = [("THAW_REMOTE_TIMEOUT", "2"), ("THAW_REMOTE_DEADLINE", "4")];
    let mut child = start_serve_logged(Path::new(&url), &dir, &["--readahead", "0"], &envs, &log);
    proxy.set(Faults { dead: true, ..Default::default() });
    let started = Instant::now();
    let err = fs::read(dir.join("f2")).expect_err("read from a dead server");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "EIO took {:?}", started.elapsed());
    // The server comes back: the same read works.
    proxy.set(Faults::default());
    assert_eq!(fs::read(dir.join("f2")).unwrap(), fs::read(s.join("src/f2")).unwrap());
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
    let st = crate::support::wait_deadline(&mut child, Duration::from_secs(20)).expect("serve did not stop");
    assert!(st.success());
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains(&url) && text.contains("bytes ") && text.contains("gave up"), "the log lacks URL, range or cause: {text}");
    // A timeout: every answer slower than the 2 s request timeout.
    proxy.set(Faults { delays: 1000, delay: Duration::from_secs(5), ..Default::default() });
    let started = Instant::now();
    thaw_short(&["cat", &url, "f1"]).fails_with(&[&url]);
    assert!(started.elapsed() < Duration::from_secs(20), "a timing-out server took {:?}", started.elapsed());
}

#[test]
fn an_object_swapped_behind_a_server_that_ignores_if_match_is_caught() {
    let (s, proxy, url) = setup("faults-swap");
    // Another archive under another name, which the proxy will serve instead.
    let other = s.join("b.tar.zst");
    let src2 = s.join("src2");
    fs::create_dir(&src2).unwrap();
    fs::write(src2.join("f0"), data(99, 3_000_000)).unwrap();
    pack(&src2, &other, "1M");
    let (_, other_uri) = publish(&other, "faults-swap-other");
    let dir = s.join("lazy");
    thaw_short(&["populate", &url, &dir.display().to_string()]).ok();
    let log = s.join("serve.log");
    let mut child = start_serve_logged(Path::new(&url), &dir, &["--readahead", "0"], &[], &log);
    let uri = format!("/{}", url.splitn(4, '/').nth(3).unwrap());
    proxy.set(Faults { swap: Some((uri, other_uri)), strip_if_match: true, ..Default::default() });
    let err = fs::read(dir.join("f0")).expect_err("read the swapped object");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
    crate::support::wait_deadline(&mut child, Duration::from_secs(20)).expect("serve did not stop");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("replaced"), "{text}");
}
