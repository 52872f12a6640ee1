//! The command line itself: shell completions, man pages and logging, all
//! derived from the clap definitions in `src/main.rs`. Runs the built
//! binary; needs neither root nor fanotify.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Every command a user can type (the hidden `__guard` is not one of them).
const COMMANDS: &[&str] = &[
    "pack",
    "convert",
    "ls",
    "cat",
    "extract",
    "info",
    "verify",
    "populate",
    "serve",
    "run",
    "status",
    "hydrate",
    "dehydrate",
    "upgrade",
    "completions",
    "man",
];

fn thaw(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_thaw")).args(args).env_remove("RUST_LOG").output().expect("run thaw");
    assert!(out.status.success(), "thaw {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn fixture() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/small.tar.zst").display().to_string()
}

#[test]
fn completions_name_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = String::from_utf8(thaw(&["completions", shell]).stdout).unwrap();
        assert!(!out.is_empty(), "{shell}: empty completion script");
        for cmd in COMMANDS {
            assert!(out.contains(cmd), "{shell}: completion script does not mention {cmd}");
        }
        assert!(!out.contains("__guard"), "{shell}: completes the hidden __guard command");
    }
}

#[test]
fn man_page_lists_every_command() {
    let out = String::from_utf8(thaw(&["man"]).stdout).unwrap();
    assert!(out.contains(".TH thaw 1"), "not thaw(1): {}", &out[..out.len().min(200)]);
    for cmd in COMMANDS {
        assert!(out.contains(&format!("thaw\\-{cmd}(1)")), "thaw(1) does not list {cmd}");
    }
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = thaw(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(out.stdout.is_empty());
    let mut want: Vec<String> = COMMANDS.iter().map(|c| format!("thaw-{c}.1")).collect();
    want.push("thaw.1".into());
    want.sort();
    let mut got: Vec<String> = std::fs::read_dir(&pages).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    got.sort();
    assert_eq!(got, want);
    for page in &got {
        let text = std::fs::read_to_string(pages.join(page)).unwrap();
        assert!(text.contains(".TH "), "{page} has no title");
    }
}

#[test]
fn verbose_flag_logs_to_stderr_only() {
    let quiet = thaw(&["info", &fixture()]);
    assert!(quiet.stderr.is_empty(), "default level printed: {}", String::from_utf8_lossy(&quiet.stderr));
    // Global: before or after the command.
    for args in [vec!["-v", "info", &fixture()], vec!["info", &fixture(), "-v"]] {
        let loud = thaw(&args.iter().map(|s| &**s).collect::<Vec<_>>());
        assert_eq!(loud.stdout, quiet.stdout, "-v changed the output");
        let log = String::from_utf8(loud.stderr).unwrap();
        assert!(log.starts_with("thaw: info: ") && log.contains("30 entries"), "{log}");
    }
}

#[test]
fn rust_log_overrides_verbose_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_thaw")).args(["-v", "info", &fixture()]).env("RUST_LOG", "error").output().unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "RUST_LOG=error still logged: {}", String::from_utf8_lossy(&out.stderr));
}
