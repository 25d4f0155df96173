//! The durable per-file cursor: which file (client, date, the file's identity on disk and its
//! head), which generation, the byte offset up to which every line has been acknowledged by the
//! broker, and the proof of the bytes before that offset (their CRC-32): a file rewritten in place
//! that keeps its head is still found out (the issue 23 case 3). Saved crash-safely: temp file,
//! fsync, rename, fsync of the directory.

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
    /// CRC-32 of the file's bytes before `offset`; `None` in cursors saved before it existed
    /// (they are proven by their head once, then get one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_crc32: Option<u32>,
}

impl Cursor {
    pub fn new(name: &LogFileName, generation: u32, dev: u64, ino: u64) -> Self {
        Self { file: name.to_string(), generation, offset: 0, dev, ino, head: String::new(), prefix_crc32: Some(0) }
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

/// CRC-32 of the first `len` bytes of `file`; `None` when the file is shorter. Reads in 1 MiB
/// blocks (once per file at start: about a millisecond per MiB).
pub fn prefix_crc32(file: &File, len: u64) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::FileExt as _;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; (len.min(1 << 20)) as usize];
    let mut at = 0u64;
    while at < len {
        let want = ((len - at) as usize).min(buf.len());
        let n = file.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(Some(hasher.finalize()))
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

    #[test]
    fn old_cursors_without_a_hash_still_load() {
        let old = r#"{"file":"tradeLog_client7.2026.11.22.log","generation":1,"offset":5,"dev":1,"ino":2,"head":"41"}"#;
        let c: Cursor = serde_json::from_str(old).unwrap();
        assert_eq!((c.offset, c.prefix_crc32), (5, None));
    }

    #[test]
    fn prefix_crc_is_the_crc_of_the_bytes_before_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\nworld\n").unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(prefix_crc32(&f, 6).unwrap(), Some(crc32fast::hash(b"hello\n")));
        assert_eq!(prefix_crc32(&f, 0).unwrap(), Some(0));
        assert_eq!(prefix_crc32(&f, 13).unwrap(), None);
    }
}
