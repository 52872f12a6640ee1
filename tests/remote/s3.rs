//! S3 through moto in server mode: pack uploads, populate and serve read
//! ranges, and the secret key never shows anywhere.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;

use crate::common::{assert_same_tree, every_type_tree, Compare, Run};
use crate::servers::{Moto, SECRET};
use crate::support::{scratch_dir, start_serve_logged};
use crate::util::{stage_files, stats, transfer};

fn thaw_s3<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = crate::common::thaw_cmd().args(args).envs(Moto::shared().env()).stdin(std::process::Stdio::null()).output().unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

#[test]
fn pack_to_s3_then_serve_from_s3_without_leaking_the_secret() {
    let moto = Moto::shared();
    let bucket = format!("thaw-{}", std::process::id());
    moto.create_bucket(&bucket);
    let s = scratch_dir("remote-s3");
    let src = s.join("src");
    fs::create_dir(&src).unwrap();
    every_type_tree(&src, false);
    let url = format!("s3://{bucket}/caches/a.tar.zst");
    let mut outputs = String::new();
    let run = thaw_s3([
        OsStr::new("-vv"),
        OsStr::new("pack"),
        src.as_os_str(),
        OsStr::new("-o"),
        OsStr::new(&url),
        OsStr::new("--frame-size"),
        OsStr::new("64K"),
    ])
    .ok();
    outputs.push_str(&run.stderr);
    assert!(run.stderr.contains("uploaded"), "{}", run.stderr);
    let dir = s.join("lazy");
    let run = thaw_s3([OsStr::new("-vvv"), OsStr::new("populate"), OsStr::new(&url), dir.as_os_str()]).ok();
    outputs.push_str(&run.stderr);
    let (requests, _) = transfer(&run.stderr);
    assert!(requests <= 2, "populate from S3 took {requests} requests");
    let log = s.join("serve.log");
    let envs: Vec<(&str, String)> = moto.env();
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut child = start_serve_logged(Path::new(&url), &dir, &["-vv"], &envs, &log);
    assert_same_tree(&src, &dir, Compare::ALL);
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
    assert!(crate::support::wait_deadline(&mut child, std::time::Duration::from_secs(30)).expect("serve did not stop").success());
    outputs.push_str(&fs::read_to_string(&log).unwrap());
    let st = stats(&dir);
    assert!(st["remote_requests"].as_u64().unwrap() >= 1, "{st}");
    for args in [vec!["status", "--json"], vec!["verify"]] {
        let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        a.push(dir.as_os_str());
        let run = thaw_s3(&a).ok();
        outputs.push_str(&String::from_utf8_lossy(&run.stdout));
        outputs.push_str(&run.stderr);
    }
    let missing = thaw_s3([OsStr::new("info"), OsStr::new(&format!("s3://{bucket}/nope.tar.zst"))]).fails_with(&["not found"]);
    outputs.push_str(&missing.stderr);
    outputs.push_str(&stage_files(&dir));
    assert!(!outputs.contains(SECRET), "the secret key leaked:\n{outputs}");
    assert!(outputs.contains("requests"), "no transfer figures logged");
}
