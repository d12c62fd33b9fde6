//! The on-disk layout of a data folder, and the checks made when opening it.
//!
//! sled holds three trees — `logs` (index → crc32 + entry), `meta` (vote,
//! committed, last purged) and `snapshot` (meta + data, each with a crc32).
//! sled writes are durable only after `flush`. Beside sled, two small
//! `durable.N` files record how far the log was known durable, so a folder
//! that lost acknowledged entries (a truncated or damaged file) is refused
//! rather than served as a silently shortened history.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StartupError;

/// An open data folder: the sled database and the folder lock.
#[derive(Clone)]
pub struct Store {
    pub dir: PathBuf,
    pub db: sled::Db,
    pub logs: sled::Tree,
    pub meta: sled::Tree,
    pub snapshot: sled::Tree,
    _lock: std::sync::Arc<File>,
}

/// Encodes a value with bincode behind a crc32, so damage is detected on read.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, bincode::Error> {
    let body = bincode::serialize(v)?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes what [`encode`] wrote, failing on a checksum mismatch.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() < 4 {
        return Err("record shorter than its checksum".into());
    }
    let (crc, body) = bytes.split_at(4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != want {
        return Err("checksum mismatch".into());
    }
    bincode::deserialize(body).map_err(|e| format!("undecodable record: {e}"))
}

pub fn index_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// Opens sled, turning a panic inside its recovery (which some kinds of
/// corruption cause) into an error.
fn open_sled(path: &Path) -> Result<sled::Db, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(|| sled::Config::new().path(path).open());
    std::panic::set_hook(hook);
    match r {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!(
            "its recovery failed: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "corrupt data".into())
        )),
    }
}

impl Store {
    /// Opens (or creates) a data folder, taking its lock.
    pub fn open(dir: &Path) -> Result<Store, StartupError> {
        let d = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|source| StartupError::DataDirIo {
            dir: d.clone(),
            source,
        })?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StartupError::DataDirIo {
                dir: d.clone(),
                source,
            })?;
        match lock.try_lock_exclusive() {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let mut holder = String::new();
                let _ = File::open(&lock_path).and_then(|mut f| f.read_to_string(&mut holder));
                let holder = holder.trim();
                return Err(StartupError::DataDirLocked {
                    dir: d,
                    holder: if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    },
                });
            }
        }
        let _ = lock.set_len(0);
        let _ = (&lock).write_all(std::process::id().to_string().as_bytes());
        let damaged = |detail: String| StartupError::DataDirDamaged {
            dir: d.clone(),
            detail,
        };
        let db = open_sled(&dir.join("sled"))
            .map_err(|e| damaged(format!("the database cannot be opened ({e})")))?;
        let open = |name: &str| {
            db.open_tree(name)
                .map_err(|e| damaged(format!("tree {name}: {e}")))
        };
        Ok(Store {
            logs: open("logs")?,
            meta: open("meta")?,
            snapshot: open("snapshot")?,
            dir: dir.to_path_buf(),
            db,
            _lock: std::sync::Arc::new(lock),
        })
    }

    pub fn get_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        match self.meta.get(key).map_err(|e| e.to_string())? {
            Some(v) => decode(&v).map(Some),
            None => Ok(None),
        }
    }

    pub fn put_meta<T: Serialize>(&self, key: &str, v: &T) -> Result<(), String> {
        let bytes = encode(v).map_err(|e| e.to_string())?;
        self.meta.insert(key, bytes).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Removes the log entries whose indexes lie in `range` (one batch).
    pub fn remove_logs<R: std::ops::RangeBounds<[u8; 8]>>(&self, range: R) -> sled::Result<()> {
        let mut batch = sled::Batch::default();
        for item in self.logs.range(range) {
            batch.remove(item?.0);
        }
        self.logs.apply_batch(batch)
    }

    /// The highest index known durable, from the two `durable.N` files.
    pub fn read_watermark(&self) -> u64 {
        (0..2)
            .filter_map(|slot| {
                let bytes = std::fs::read(self.dir.join(format!("durable.{slot}"))).ok()?;
                if bytes.len() != 12 {
                    return None;
                }
                let idx = u64::from_le_bytes(bytes[..8].try_into().ok()?);
                let crc = u32::from_le_bytes(bytes[8..].try_into().ok()?);
                (crc32fast::hash(&bytes[..8]) == crc).then_some(idx)
            })
            .max()
            .unwrap_or(0)
    }

    /// Records that the log is durable up to `index`, alternating between two
    /// files so a crash mid-write leaves the other intact.
    pub fn write_watermark(&self, index: u64, slot: usize) -> std::io::Result<()> {
        let mut bytes = index.to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
        let mut f = File::create(self.dir.join(format!("durable.{}", slot % 2)))?;
        f.write_all(&bytes)?;
        f.sync_all()
    }
}
