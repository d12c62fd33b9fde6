//! The data folder: what is on disk, and when it is durable.
//!
//! ```text
//! DIR/LOCK            holder's pid; an exclusive lock while a server runs
//! DIR/log/*.wal       the Raft log in segment files (see [`wal`])
//! DIR/snapshot        the latest snapshot (see [`snapshot`])
//! DIR/vote            Raft's vote
//! DIR/purged          the last log id dropped into the snapshot
//! DIR/durable.0, .1   the highest log id known durable and committed
//! ```
//!
//! A reply is sent only after the log entries it depends on are behind a
//! real barrier: `fdatasync` of the segment (its bytes and its length) and,
//! for a new segment, `fsync` of `log/`. Small files are replaced
//! atomically (temporary file, sync, rename, directory sync). Nothing uses
//! `sync_file_range`, which persists no metadata and flushes no disk cache.
//!
//! - [`file`] — checksummed records, atomic replacement, directory syncs.
//! - [`wal`] — the segment log, its group-commit barrier, torn-tail recovery.
//! - [`snapshot`] — the snapshot file.

pub mod file;
pub mod snapshot;
pub mod wal;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StartupError;
use file::{decode, encode, read_optional, sync_dir, write_atomic};

/// A failure of the data folder, typed so callers can tell damage (refuse
/// to serve: [`StorageError::is_damage`]) from an I/O error or a bug.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A record or file fails its checksum or does not decode, with good
    /// records after it (a torn tail is not damage).
    #[error("{0}")]
    Corrupt(String),
    /// Entries are missing between two the log holds, or before its first,
    /// and no snapshot covers them.
    #[error("{0}")]
    Gap(String),
    /// The log ends before entries that were acknowledged as durable.
    #[error("{0}")]
    LostHistory(String),
    /// Not a file of this format, or of a version this Warden does not read.
    #[error("{0}")]
    Format(String),
    /// An earlier barrier failed: nothing written since is trusted.
    #[error("{0}")]
    Failed(String),
    #[error("cannot encode a record: {0}")]
    Encode(String),
    #[error("log entry {0} is not in the log")]
    Missing(u64),
    #[error("log entry {index} appended where entry {want} belongs")]
    Sequence { index: u64, want: u64 },
}

impl StorageError {
    /// Whether the data folder is damaged (as opposed to unreadable now).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StorageError::Corrupt(_)
                | StorageError::Gap(_)
                | StorageError::LostHistory(_)
                | StorageError::Format(_)
        )
    }

    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Whether barriers are real. Only tests turn them off
/// (`--unsafe-no-fsync`), to show that the power-loss test notices.
#[derive(Debug, Clone, Copy)]
pub struct Durability {
    pub sync: bool,
}

impl Default for Durability {
    fn default() -> Self {
        Durability { sync: true }
    }
}

/// An open data folder: its path and its lock. Everything a server keeps
/// on disk is reached through it.
pub struct DataDir {
    dir: PathBuf,
    durability: Durability,
    _lock: File,
}

impl DataDir {
    /// Opens (or creates) a data folder and takes its lock.
    pub fn open(dir: &Path, durability: Durability) -> Result<DataDir, StartupError> {
        let d = dir.display().to_string();
        let io = |source| StartupError::DataDirIo {
            dir: d.clone(),
            source,
        };
        let fresh = !dir.exists();
        std::fs::create_dir_all(dir).map_err(io)?;
        if fresh {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = sync_dir(parent, durability);
            }
        }
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
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
        if dir.join("sled").exists() && !dir.join("log").exists() {
            return Err(StartupError::DataDirOldFormat { dir: d });
        }
        // Temporary files of an interrupted atomic replacement.
        for e in std::fs::read_dir(dir).map_err(io)?.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(DataDir {
            dir: dir.to_path_buf(),
            durability,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The folder of the log's segments.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Reads a small checksummed file (`vote`, `purged`).
    pub fn read_record<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StorageError> {
        let path = self.dir.join(name);
        match read_optional(&path)? {
            Some(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|why| StorageError::Corrupt(format!("{}: {why}", path.display()))),
            None => Ok(None),
        }
    }

    /// Replaces a small checksummed file atomically and durably.
    pub fn write_record<T: Serialize>(&self, name: &str, v: &T) -> Result<(), StorageError> {
        write_atomic(&self.dir, name, &[&encode(v)?], self.durability)
    }

    /// The highest durable point recorded in `durable.0`/`durable.1`
    /// (the larger by `key` of the two that decode).
    pub fn read_watermark<T: DeserializeOwned>(&self, key: impl Fn(&T) -> u64) -> Option<T> {
        (0..2)
            .filter_map(|slot| {
                let bytes = std::fs::read(self.dir.join(format!("durable.{slot}"))).ok()?;
                decode::<T>(&bytes).ok()
            })
            .max_by_key(|v| key(v))
    }

    /// Records a durable point, alternating between two files so a crash
    /// mid-write leaves the other intact.
    pub fn write_watermark<T: Serialize>(&self, v: &T, slot: usize) -> Result<(), StorageError> {
        let path = self.dir.join(format!("durable.{}", slot % 2));
        let created = !path.exists();
        let bytes = encode(v)?;
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&path)?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        write().map_err(|e| StorageError::io("writing", &path, e))?;
        if created {
            sync_dir(&self.dir, Durability::default())?;
        }
        Ok(())
    }
}
