//! The durable per-file cursor: which file (client, date, the file's identity on disk and its
//! head), which generation, and the byte offset up to which every line has been acknowledged by
//! the broker. Saved crash-safely: temp file, fsync, rename, fsync of the directory.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tradeflow_core::log_format::LogFileName;

/// Bytes of a file's head kept to recognise it (a rewritten file has a different head).
pub const HEAD_BYTES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The log file name (client and date).
    pub file: String,
    pub generation: u32,
    /// Every line before this offset is acknowledged by the broker.
    pub offset: u64,
    /// Device and inode of the file this cursor belongs to.
    pub dev: u64,
    pub ino: u64,
    /// The first bytes of the file (up to HEAD_BYTES), hex.
    pub head: String,
}

impl Cursor {
    pub fn new(name: &LogFileName, generation: u32, dev: u64, ino: u64) -> Self {
        Self { file: name.to_string(), generation, offset: 0, dev, ino, head: String::new() }
    }

    pub fn head_bytes(&self) -> Vec<u8> {
        from_hex(&self.head)
    }

    pub fn set_head(&mut self, head: &[u8]) {
        self.head = to_hex(&head[..head.len().min(HEAD_BYTES)]);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cursor file {path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

/// The directory of cursors, one file per log file.
#[derive(Clone, Debug)]
pub struct CursorStore {
    dir: PathBuf,
}

impl CursorStore {
    pub fn open(dir: &Path) -> Result<Self, CursorError> {
        std::fs::create_dir_all(dir).map_err(|source| CursorError::Io {
            action: "cannot create state directory",
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self { dir: dir.to_owned() })
    }

    fn path(&self, name: &LogFileName) -> PathBuf {
        self.dir.join(format!("{name}.cursor"))
    }

    pub fn load(&self, name: &LogFileName) -> Result<Option<Cursor>, CursorError> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|source| CursorError::Corrupt { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CursorError::Io { action: "cannot read", path, source }),
        }
    }

    /// Replaces the stored cursor atomically and durably.
    pub fn save(&self, name: &LogFileName, cursor: &Cursor) -> Result<(), CursorError> {
        let path = self.path(name);
        let tmp = self.dir.join(format!(".{name}.cursor.tmp"));
        let io = |action: &'static str, p: &Path| {
            let p = p.to_owned();
            move |source| CursorError::Io { action, path: p, source }
        };
        let bytes = serde_json::to_vec(cursor).unwrap_or_default();
        let mut f =
            OpenOptions::new().create(true).truncate(true).write(true).open(&tmp).map_err(io("cannot create", &tmp))?;
        f.write_all(&bytes).map_err(io("cannot write", &tmp))?;
        f.sync_all().map_err(io("cannot fsync", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io("cannot rename into", &path))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io("cannot fsync", &self.dir))?;
        Ok(())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = CursorStore::open(&dir.path().join("state")).unwrap();
        let name = LogFileName::parse("tradeLog_client7.2026.11.22.log").unwrap();
        assert_eq!(store.load(&name).unwrap(), None);
        let mut c = Cursor::new(&name, 2, 1, 99);
        c.offset = 1234;
        c.set_head(b"OrderNo:1|\xff");
        store.save(&name, &c).unwrap();
        let loaded = store.load(&name).unwrap().unwrap();
        assert_eq!(loaded, c);
        assert_eq!(loaded.head_bytes(), b"OrderNo:1|\xff");
        c.offset = 2000;
        store.save(&name, &c).unwrap();
        assert_eq!(store.load(&name).unwrap().unwrap().offset, 2000);
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("state")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temp files left: {names:?}");
        std::fs::write(dir.path().join("state").join(format!("{name}.cursor")), b"{oops").unwrap();
        assert!(matches!(store.load(&name), Err(CursorError::Corrupt { .. })));
    }
}
