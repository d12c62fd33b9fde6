//! Storage: where a server keeps its Raft log, its small records and its
//! snapshot, and when they are durable — behind one trait ([`Engine`]).
//!
//! A reply is sent only after the log entries it depends on are behind a
//! real barrier: on disk, `fdatasync` of the segment (its bytes and its
//! length) and, for a new segment, `fsync` of `log/`. Small files are
//! replaced atomically (temporary file, sync, rename, directory sync).
//! Nothing uses `sync_file_range`, which persists no metadata and flushes
//! no disk cache.
//!
//! - [`engine`] — the [`Engine`] trait, the records it keeps, barriers.
//! - [`disk`] — the data folder engine ([`DiskEngine`]): lock, small files.
//! - [`memory`] — the in-memory engine ([`MemoryEngine`]), for tests.
//! - [`wal`] — the disk log: segments, group-commit barrier, torn tails.
//! - [`snapshot`] — the snapshot file format (versioned, checksummed).
//! - [`file`] — checksummed records, atomic replacement, directory syncs.

pub mod disk;
pub mod engine;
pub mod file;
pub mod memory;
pub mod snapshot;
pub mod wal;

use std::path::{Path, PathBuf};

pub use disk::DiskEngine;
pub use engine::Engine;
pub use memory::MemoryEngine;

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
