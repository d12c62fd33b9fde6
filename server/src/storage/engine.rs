//! The storage engine behind a trait: what a server keeps — the Raft log,
//! a few small records (vote, purge point, durable point) and the latest
//! snapshot — and when it is durable.
//!
//! Two engines implement it: [`super::disk::DiskEngine`], the data folder
//! (segment log, atomic small files, `fdatasync` barriers), and
//! [`super::memory::MemoryEngine`], which keeps everything in memory for
//! tests whose point is not the disk. The log store and the state machine
//! (`crate::raft`) are written against this trait only.

use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::file::{decode, encode};
use super::snapshot::{Pieces, Received, SnapshotData, Stored};
use super::StorageError;

/// The small records kept beside the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Record {
    /// Raft's vote.
    Vote,
    /// The last log id dropped into the snapshot.
    Purged,
    /// The highest log id known durable and committed, in two slots
    /// written in turn so a crash mid-write leaves the other intact.
    Durable(u8),
    /// The id of the ensemble this member belongs to.
    Cluster,
}

/// What makes every append before it durable. Taken under the log's lock
/// and run outside it, so appends go on while the barrier runs.
pub struct Barrier(Box<dyn FnOnce() -> Result<(), StorageError> + Send>);

impl Barrier {
    pub fn new(f: impl FnOnce() -> Result<(), StorageError> + Send + 'static) -> Barrier {
        Barrier(Box::new(f))
    }

    /// Nothing to sync.
    pub fn none() -> Barrier {
        Barrier::new(|| Ok(()))
    }

    pub fn run(self) -> Result<(), StorageError> {
        (self.0)()
    }
}

/// A storage engine. Log payloads and record bytes are opaque here; the
/// log store encodes them.
pub trait Engine: Send + Sync + 'static {
    /// The index of the first entry held (or of the next one, when empty).
    fn first_index(&self) -> u64;
    /// The index the next append must have.
    fn next_index(&self) -> u64;
    /// The last entry's index, if the log holds any.
    fn last_index(&self) -> Option<u64> {
        let (first, next) = (self.first_index(), self.next_index());
        (next > first).then(|| next - 1)
    }
    /// Appends entries `(index, payload)`, consecutive from
    /// [`Engine::next_index`] — or from an index the log holds, which
    /// replaces that entry and every later one (Raft's rule). A fresh log
    /// starts at the first index appended. Durable after the next
    /// [`Engine::barrier`] has run.
    fn append(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError>;
    /// The barrier for everything appended so far.
    fn barrier(&self) -> Barrier;
    /// The entries of `range` the log holds (the range is clamped to
    /// them), read under one lock so a concurrent purge or truncate cannot
    /// split it.
    fn read_range(&self, range: Range<u64>) -> Result<Vec<(u64, Vec<u8>)>, StorageError>;
    /// Removes entries from `index` on, durably.
    fn truncate(&self, index: u64) -> Result<(), StorageError>;
    /// Forgets entries up to and including `upto` (they are in a snapshot).
    fn purge(&self, upto: u64) -> Result<(), StorageError>;

    fn read_record(&self, r: Record) -> Result<Option<Vec<u8>>, StorageError>;
    /// Replaces a record durably.
    fn write_record(&self, r: Record, bytes: &[u8]) -> Result<(), StorageError>;

    fn read_snapshot(&self) -> Result<Option<Stored>, StorageError>;
    /// Replaces the snapshot durably with `meta` and the data `data` yields
    /// piece by piece: a crash (or a failing piece) leaves the old one or
    /// the new. Returns the data's length.
    fn write_snapshot(&self, meta: &[u8], data: Pieces<'_>) -> Result<u64, StorageError>;
    /// The stored snapshot file, whole, and its meta: what openraft
    /// streams to a member that needs it, read as it is sent rather than
    /// held in memory.
    fn open_snapshot(&self) -> Result<Option<(Vec<u8>, SnapshotData)>, StorageError>;
    /// An empty place to receive a snapshot file into.
    fn receive_snapshot(&self) -> Result<SnapshotData, StorageError>;
    /// Checks a snapshot file received (all of it, and flushed) and reads
    /// what it holds; it is not kept yet.
    fn read_received(&self, received: &mut Received) -> Result<Stored, StorageError> {
        let bytes = received.bytes().map_err(|e| {
            StorageError::io("reading", std::path::Path::new("the snapshot received"), e)
        })?;
        super::snapshot::parse(bytes, "the snapshot received")
    }
    /// Makes a received snapshot file the stored one, durably: a crash
    /// leaves the old one or the new.
    fn keep_received(&self, received: Received) -> Result<(), StorageError>;

    /// The damaged end of the log found at open, described for an error
    /// message, if any (a power cut leaves one on disk).
    fn torn_tail(&self) -> Option<String> {
        None
    }
    /// Cuts off the torn tail found at open and finishes an interrupted
    /// purge; called once the log is known to hold everything
    /// acknowledged. Returns a description of what was cut, for the log.
    fn finish_recovery(&self) -> Result<Option<String>, StorageError> {
        Ok(None)
    }
}

/// Reads a record written by [`write_record`].
pub fn read_record<T: DeserializeOwned>(
    e: &dyn Engine,
    r: Record,
) -> Result<Option<T>, StorageError> {
    match e.read_record(r)? {
        Some(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|why| StorageError::Corrupt(format!("{r:?} record: {why}"))),
        None => Ok(None),
    }
}

/// Writes a record, checksummed.
pub fn write_record<T: Serialize>(e: &dyn Engine, r: Record, v: &T) -> Result<(), StorageError> {
    e.write_record(r, &encode(v)?)
}

/// The durable point: the larger (by `key`) of the two slots that decode.
/// A slot that does not decode was torn mid-write; the other one holds.
pub fn read_durable<T: DeserializeOwned>(e: &dyn Engine, key: impl Fn(&T) -> u64) -> Option<T> {
    (0..2)
        .filter_map(|slot| {
            let bytes = e.read_record(Record::Durable(slot)).ok()??;
            decode::<T>(&bytes).ok()
        })
        .max_by_key(|v| key(v))
}
