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

/// Version of the stub markers a stage's tree carries. 2: `trusted.thaw`
/// bound to the inode (see [`super::marker`]). Stages from thaw 0.1 have no
/// such field and read as 1: their `user.thaw` markers can be forged.
pub const STUBS_VERSION: u32 = 2;

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
    /// Marker version of the stubs ([`STUBS_VERSION`]); 1 when absent (thaw 0.1).
    #[serde(default = "legacy_stubs")]
    pub stubs_version: u32,
}

fn legacy_stubs() -> u32 {
    1
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
        if info.stubs_version < STUBS_VERSION {
            return Err(Error::Refused {
                path: self.dir.display().to_string(),
                why: format!(
                    "populated by thaw 0.1, whose stub markers (user.thaw) any user can forge; \
                     run `thaw upgrade {}` as root while it is not served",
                    self.dir.display()
                ),
            });
        }
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
