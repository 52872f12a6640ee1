//! Shared steps of the remote tests: publishing an archive on nginx and
//! reading thaw's transfer figures.

use std::path::Path;

use crate::servers::Nginx;

/// Copies `archive` into nginx's root under a name unique to this process
/// and returns (URL, URI). The copy is renamed into place, as a publisher would.
pub fn publish(archive: &Path, name: &str) -> (String, String) {
    let n = Nginx::shared().lock().unwrap();
    let file = format!("{name}.{}.tar.zst", std::process::id());
    replace(&n.root.join(&file), archive);
    (n.url(&file), format!("/{file}"))
}

/// Puts a copy of `archive` at `dest` by rename, with an mtime unlike any
/// earlier copy's (nginx's ETag is mtime and size): a new ETag.
pub fn replace(dest: &Path, archive: &Path) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let tmp = dest.with_extension("tmp");
    std::fs::copy(archive, &tmp).unwrap();
    let bump = std::time::Duration::from_secs(1000 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    std::fs::File::options().write(true).open(&tmp).unwrap().set_modified(std::time::SystemTime::now() - bump).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// Requests nginx logged for `uri`.
pub fn served_requests(uri: &str) -> usize {
    Nginx::shared().lock().unwrap().requests_for(uri)
}

/// (requests, bytes) from the `-v` line "URL: N requests, M bytes received".
pub fn transfer(stderr: &str) -> (u64, u64) {
    let line = stderr.lines().rev().find(|l| l.ends_with("bytes received")).unwrap_or_else(|| panic!("no transfer line in: {stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = |w: &str| words[words.iter().position(|x| *x == w).unwrap() - 1].trim_end_matches(',').parse::<u64>().unwrap();
    (n("requests,"), n("bytes"))
}

/// The stage's `archive.json` and `stats.json` of `dir`, as text.
pub fn stage_files(dir: &Path) -> String {
    let stage = dir.parent().unwrap().join(format!(".{}.thaw", dir.file_name().unwrap().to_string_lossy()));
    let mut out = String::new();
    for f in ["archive.json", "stats.json"] {
        out.push_str(&std::fs::read_to_string(stage.join(f)).unwrap_or_default());
    }
    out
}

/// The saved serve statistics of `dir`.
pub fn stats(dir: &Path) -> serde_json::Value {
    let stage = dir.parent().unwrap().join(format!(".{}.thaw", dir.file_name().unwrap().to_string_lossy()));
    serde_json::from_slice(&std::fs::read(stage.join("stats.json")).unwrap()).unwrap()
}
