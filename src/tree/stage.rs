//! Where a lazily restored tree lives. The stage `PARENT/.NAME.thaw/` beside
//! `DIR` holds the stubs (`tree/`) and the bookkeeping; while `thaw serve`
//! runs, `tree/` is bind-mounted over `DIR` with a fanotify mount mark, so
//! every access through `DIR` is watched while thaw itself works through the
//! unwatched stage. When nothing serves it, `DIR` is an empty directory: no
//! reader can ever see a stub's holes as zeros through it.

use super::Error;
use crate::archive::Archive;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Name of the stub marker xattr: `thaw1 <archive id hex> <entry index>`,
/// then ` <limit>` once a user shrank the file: archive bytes at or past
/// `limit` are never written again (the user's truncate replaced them).
pub const MARKER_XATTR: &str = "user.thaw";
#[derive(Debug, Clone)]
pub struct Stage {
    /// The directory users see.
    pub dir: PathBuf,
    root: PathBuf,
}

/// What `populate` records about the archive a stage came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StageInfo {
    pub archive: PathBuf,
    pub id: String,
    pub format_version: u32,
}

impl Stage {
    pub fn new(dir: &Path) -> Stage {
        let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let name = abs.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "root".into());
        let mut stage_name = std::ffi::OsString::from(".");
        stage_name.push(&name);
        stage_name.push(".thaw");
        let root = abs.parent().unwrap_or(Path::new("/")).join(stage_name);
        Stage { dir: dir.to_path_buf(), root }
    }

    /// The stage directory, beside `DIR`.
    pub fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// The stub tree (unwatched path; only thaw itself uses it).
    pub fn tree(&self) -> PathBuf {
        self.root().join("tree")
    }

    pub fn info_path(&self) -> PathBuf {
        self.root().join("archive.json")
    }

    pub fn stats_path(&self) -> PathBuf {
        self.root().join("stats.json")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.root().join("lock")
    }

    pub fn exists(&self) -> bool {
        self.info_path().exists()
    }

    pub fn info(&self) -> Result<StageInfo, Error> {
        let p = self.info_path();
        let text = std::fs::read(&p).map_err(|e| Error::at(p.as_os_str().as_encoded_bytes(), e))?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::Refused { path: p.display().to_string(), why: format!("unreadable stage info: {e}") })
    }

    pub fn write_info(&self, info: &StageInfo) -> Result<(), Error> {
        let p = self.info_path();
        let tmp = p.with_extension("json.tmp");
        let w = |e| Error::at(p.as_os_str().as_encoded_bytes(), e);
        std::fs::write(&tmp, serde_json::to_vec_pretty(info).expect("serializable")).map_err(w)?;
        std::fs::rename(&tmp, &p).map_err(w)
    }

    /// Checks that this stage was populated from `archive`.
    pub fn check_archive(&self, archive: &Archive) -> Result<StageInfo, Error> {
        let info = self.info()?;
        if info.id != archive.id_hex() {
            return Err(Error::Refused {
                path: self.dir.display().to_string(),
                why: format!(
                    "populated from archive {} ({}), not {} ({})",
                    info.id,
                    info.archive.display(),
                    archive.id_hex(),
                    archive.source_name()
                ),
            });
        }
        Ok(info)
    }

    /// True while `DIR` shows the stub tree (a daemon is serving it).
    pub fn is_served(&self) -> bool {
        match (std::fs::metadata(&self.dir), std::fs::metadata(self.tree())) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

/// A parsed stub marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub id: String,
    pub entry: usize,
    /// Archive bytes at or past this offset belong to the user (set by a shrink).
    pub limit: Option<u64>,
}

impl Marker {
    pub fn encode(&self) -> Vec<u8> {
        match self.limit {
            None => format!("thaw1 {} {}", self.id, self.entry).into_bytes(),
            Some(l) => format!("thaw1 {} {} {l}", self.id, self.entry).into_bytes(),
        }
    }

    pub fn parse(v: &[u8]) -> Option<Marker> {
        let s = std::str::from_utf8(v).ok()?;
        let mut it = s.split(' ');
        if it.next()? != "thaw1" {
            return None;
        }
        let id = it.next()?.to_string();
        let entry = it.next()?.parse().ok()?;
        let limit = match it.next() {
            Some(l) => Some(l.parse().ok()?),
            None => None,
        };
        it.next().is_none().then_some(Marker { id, entry, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::Marker;

    #[test]
    fn marker_round_trip() {
        let m = Marker { id: "abcd".into(), entry: 42, limit: None };
        assert_eq!(Marker::parse(&m.encode()), Some(m.clone()));
        let m = Marker { limit: Some(7), ..m };
        assert_eq!(m.encode(), b"thaw1 abcd 42 7");
        assert_eq!(Marker::parse(&m.encode()), Some(m));
        assert_eq!(Marker::parse(b"thaw1 abcd x"), None);
        assert_eq!(Marker::parse(b"thaw2 abcd 1"), None);
        assert_eq!(Marker::parse(b"thaw1 abcd 1 2 3"), None);
    }
}
