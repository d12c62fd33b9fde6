//! The disk engine: the data folder.
//!
//! ```text
//! DIR/LOCK            holder's pid; an exclusive lock while a server runs
//! DIR/log/*.wal       the Raft log in segment files (see [`super::wal`])
//! DIR/snapshot        the latest snapshot (see [`super::snapshot`])
//! DIR/vote            Raft's vote
//! DIR/purged          the last log id dropped into the snapshot
//! DIR/durable.0, .1   the highest log id known durable and committed
//! DIR/cluster         the id of the ensemble this member belongs to
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use parking_lot::Mutex;

use super::engine::{Barrier, Engine, Record};
use super::file::{read_optional, sync_dir, write_atomic, write_atomic_with};
use super::snapshot::{self, Pieces, Received, SnapshotData, Stored};
use super::wal::Wal;
use super::{Durability, StorageError};
use crate::error::StartupError;
use tokio_util::either::Either;

/// Whether `f` is the file at `path`.
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Where a snapshot sent by the leader is received before it is kept.
const INCOMING: &str = "snapshot.incoming";

/// Segments are started anew past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// An open data folder: its lock, its small files and its segment log.
pub struct DiskEngine {
    dir: PathBuf,
    durability: Durability,
    wal: Mutex<Wal>,
    _lock: File,
}

/// Takes a data folder's lock, creating the folder if needed.
fn lock(dir: &Path, durability: Durability) -> Result<File, StartupError> {
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
    Ok(lock)
}

impl DiskEngine {
    /// Opens (or creates) a data folder, takes its lock and opens its log
    /// (nothing is cut or removed until [`Engine::finish_recovery`]).
    pub fn open(dir: &Path, durability: Durability) -> Result<DiskEngine, StartupError> {
        let lock = lock(dir, durability)?;
        // What a snapshot being written or received when the server
        // stopped left behind: never read, and as large as the tree.
        for leftover in [format!("{}.tmp", snapshot::NAME), INCOMING.to_string()] {
            let path = dir.join(&leftover);
            if path.exists() {
                tracing::info!(path = %path.display(), "removing an unfinished snapshot");
                std::fs::remove_file(&path).map_err(|e| {
                    StartupError::storage(
                        &dir.display().to_string(),
                        StorageError::io("removing", &path, e),
                    )
                })?;
            }
        }
        let purged = read_optional(&dir.join(file_name(Record::Purged)))
            .and_then(|b| {
                b.map(|b| {
                    super::file::decode::<crate::raft::LogId>(&b)
                        .map_err(|why| StorageError::Corrupt(format!("purged: {why}")))
                })
                .transpose()
            })
            .map_err(|e| StartupError::storage(&dir.display().to_string(), e))?;
        let wal = Wal::open(
            &dir.join("log"),
            purged.map(|p| p.index),
            durability,
            SEGMENT_BYTES,
        )
        .map_err(|e| StartupError::storage(&dir.display().to_string(), e))?;
        Ok(DiskEngine {
            dir: dir.to_path_buf(),
            durability,
            wal: Mutex::new(wal),
            _lock: lock,
        })
    }
}

fn file_name(r: Record) -> String {
    match r {
        Record::Vote => "vote".into(),
        Record::Purged => "purged".into(),
        Record::Durable(slot) => format!("durable.{}", slot % 2),
        Record::Cluster => "cluster".into(),
    }
}

impl Engine for DiskEngine {
    fn first_index(&self) -> u64 {
        self.wal.lock().first_index()
    }

    fn next_index(&self) -> u64 {
        self.wal.lock().next_index()
    }

    fn last_index(&self) -> Option<u64> {
        self.wal.lock().last_index()
    }

    fn append(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError> {
        self.wal.lock().append(entries)
    }

    fn barrier(&self) -> Barrier {
        let job = self.wal.lock().take_sync_job();
        Barrier::new(move || job.run())
    }

    fn read_range(&self, range: Range<u64>) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let wal = self.wal.lock();
        let (start, end) = (
            range.start.max(wal.first_index()),
            range.end.min(wal.next_index()),
        );
        (start..end).map(|i| Ok((i, wal.read(i)?))).collect()
    }

    fn truncate(&self, index: u64) -> Result<(), StorageError> {
        self.wal.lock().truncate(index)
    }

    fn purge(&self, upto: u64) -> Result<(), StorageError> {
        self.wal.lock().purge(upto)
    }

    fn read_record(&self, r: Record) -> Result<Option<Vec<u8>>, StorageError> {
        read_optional(&self.dir.join(file_name(r)))
    }

    /// Vote and purge point are replaced atomically (temporary file,
    /// sync, rename, directory sync); the durable point overwrites its
    /// slot in place and syncs it, since the other slot survives a torn
    /// write.
    fn write_record(&self, r: Record, bytes: &[u8]) -> Result<(), StorageError> {
        let name = file_name(r);
        match r {
            Record::Vote | Record::Purged | Record::Cluster => {
                write_atomic(&self.dir, &name, &[bytes], self.durability)
            }
            Record::Durable(_) => {
                let path = self.dir.join(&name);
                let created = !path.exists();
                let write = || -> std::io::Result<()> {
                    let mut f = File::create(&path)?;
                    f.write_all(bytes)?;
                    f.sync_all()
                };
                write().map_err(|e| StorageError::io("writing", &path, e))?;
                if created {
                    sync_dir(&self.dir, Durability::default())?;
                }
                Ok(())
            }
        }
    }

    fn read_snapshot(&self) -> Result<Option<Stored>, StorageError> {
        snapshot::read(&self.dir)
    }

    fn write_snapshot(&self, meta: &[u8], data: Pieces<'_>) -> Result<u64, StorageError> {
        snapshot::write(&self.dir, meta, data, self.durability)
    }

    fn open_snapshot(&self) -> Result<Option<(Vec<u8>, SnapshotData)>, StorageError> {
        let path = self.dir.join(snapshot::NAME);
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("opening", &path, e)),
        };
        let meta = snapshot::read_meta(&mut f, &path.display().to_string())?;
        Ok(Some((meta, Either::Left(tokio::fs::File::from_std(f)))))
    }

    fn receive_snapshot(&self) -> Result<SnapshotData, StorageError> {
        let path = self.dir.join(INCOMING);
        let f = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StorageError::io("creating", &path, e))?;
        Ok(Either::Left(tokio::fs::File::from_std(f)))
    }

    fn keep_received(&self, received: Received) -> Result<(), StorageError> {
        let incoming = self.dir.join(INCOMING);
        match received {
            // Received into `snapshot.incoming`, as openraft does: that
            // file becomes the snapshot.
            Received::File(f) if same_file(&f, &incoming) => {
                if self.durability.sync {
                    f.sync_all()
                        .map_err(|e| StorageError::io("syncing", &incoming, e))?;
                }
                drop(f);
                std::fs::rename(&incoming, self.dir.join(snapshot::NAME))
                    .map_err(|e| StorageError::io("renaming", &incoming, e))?;
                sync_dir(&self.dir, self.durability)
            }
            Received::File(mut f) => {
                write_atomic_with(&self.dir, snapshot::NAME, self.durability, |out| {
                    f.seek(std::io::SeekFrom::Start(0))?;
                    std::io::copy(&mut f, out).map(drop)
                })
            }
            Received::Memory(bytes) => {
                write_atomic(&self.dir, snapshot::NAME, &[&bytes], self.durability)
            }
        }
    }

    fn torn_tail(&self) -> Option<String> {
        self.wal.lock().torn_tail().map(|t| {
            format!(
                "{} has a bad record at byte {}: {}",
                t.segment.display(),
                t.offset,
                t.reason
            )
        })
    }

    fn finish_recovery(&self) -> Result<Option<String>, StorageError> {
        let cut = self.wal.lock().finish_recovery()?;
        Ok(cut.map(|t| {
            format!(
                "cut {} bytes off {} at byte {} ({}), {} later segment(s) removed",
                t.dropped_bytes,
                t.segment.display(),
                t.offset,
                t.reason,
                t.later_segments.len()
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot cut off while being written or received is removed when
    /// the folder is opened; the stored one stays.
    #[test]
    fn opening_removes_unfinished_snapshots_and_keeps_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = Durability::default();
        {
            let e = DiskEngine::open(dir.path(), d).unwrap();
            e.write_snapshot(b"meta", &mut snapshot::whole(b"data"))
                .unwrap();
        }
        std::fs::write(dir.path().join("snapshot.tmp"), b"half a snapshot").unwrap();
        std::fs::write(dir.path().join(INCOMING), b"half another").unwrap();
        let e = DiskEngine::open(dir.path(), d).unwrap();
        assert!(!dir.path().join("snapshot.tmp").exists());
        assert!(!dir.path().join(INCOMING).exists());
        assert_eq!(e.read_snapshot().unwrap().unwrap().data, b"data");
    }
}
