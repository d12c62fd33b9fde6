//! The in-memory engine: the same contract as the data folder, with no
//! disk. For tests whose point is consensus or semantics, not durability
//! (and openraft's storage suite runs against both engines).

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use parking_lot::Mutex;

use super::engine::{Barrier, Engine, Record};
use super::snapshot::{self, Pieces, Received, SnapshotData, Stored};
use super::StorageError;
use tokio_util::either::Either;

#[derive(Default)]
struct Log {
    first: u64,
    entries: VecDeque<Vec<u8>>,
    /// Nothing was ever appended or purged: the first append sets where
    /// the log starts.
    fresh: bool,
}

impl Log {
    fn next(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    fn truncate(&mut self, index: u64) {
        if index < self.next() {
            let keep = index.saturating_sub(self.first) as usize;
            self.entries.truncate(keep);
        }
    }
}

/// Everything in memory; lost with the process.
pub struct MemoryEngine {
    log: Mutex<Log>,
    records: Mutex<HashMap<Record, Vec<u8>>>,
    /// The snapshot file's bytes.
    snapshot: Mutex<Option<Vec<u8>>>,
}

impl Default for MemoryEngine {
    fn default() -> Self {
        MemoryEngine {
            log: Mutex::new(Log {
                fresh: true,
                ..Log::default()
            }),
            records: Mutex::default(),
            snapshot: Mutex::default(),
        }
    }
}

impl MemoryEngine {
    pub fn new() -> MemoryEngine {
        MemoryEngine::default()
    }
}

impl Engine for MemoryEngine {
    fn first_index(&self) -> u64 {
        self.log.lock().first
    }

    fn next_index(&self) -> u64 {
        self.log.lock().next()
    }

    fn append(&self, entries: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError> {
        let mut log = self.log.lock();
        match entries.first() {
            Some((index, _)) if log.fresh => log.first = *index,
            Some((index, _)) if *index >= log.first && *index < log.next() => log.truncate(*index),
            _ => {}
        }
        log.fresh = false;
        for (index, payload) in entries {
            let want = log.next();
            if index != want {
                return Err(StorageError::Sequence { index, want });
            }
            log.entries.push_back(payload);
        }
        Ok(())
    }

    fn barrier(&self) -> Barrier {
        Barrier::none()
    }

    fn read_range(&self, range: Range<u64>) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let log = self.log.lock();
        let (start, end) = (range.start.max(log.first), range.end.min(log.next()));
        Ok((start..end)
            .map(|i| (i, log.entries[(i - log.first) as usize].clone()))
            .collect())
    }

    fn truncate(&self, index: u64) -> Result<(), StorageError> {
        self.log.lock().truncate(index);
        Ok(())
    }

    fn purge(&self, upto: u64) -> Result<(), StorageError> {
        let mut log = self.log.lock();
        log.fresh = false;
        if upto >= log.first {
            let n = ((upto - log.first + 1) as usize).min(log.entries.len());
            log.entries.drain(..n);
            log.first = upto + 1;
        }
        Ok(())
    }

    fn read_record(&self, r: Record) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.records.lock().get(&r).cloned())
    }

    fn write_record(&self, r: Record, bytes: &[u8]) -> Result<(), StorageError> {
        self.records.lock().insert(r, bytes.to_vec());
        Ok(())
    }

    fn read_snapshot(&self) -> Result<Option<Stored>, StorageError> {
        let bytes = self.snapshot.lock().clone();
        bytes
            .map(|b| snapshot::parse(b, "the snapshot"))
            .transpose()
    }

    fn write_snapshot(&self, meta: &[u8], data: Pieces<'_>) -> Result<u64, StorageError> {
        let mut file = std::io::Cursor::new(Vec::new());
        let mut failed = None;
        let len = snapshot::write_to(&mut file, meta, data, &mut failed, false).map_err(|e| {
            failed
                .take()
                .unwrap_or_else(|| StorageError::Encode(e.to_string()))
        })?;
        *self.snapshot.lock() = Some(file.into_inner());
        Ok(len)
    }

    fn open_snapshot(&self) -> Result<Option<(Vec<u8>, SnapshotData)>, StorageError> {
        let Some(bytes) = self.snapshot.lock().clone() else {
            return Ok(None);
        };
        let meta = snapshot::parse(bytes.clone(), "the snapshot")?.meta;
        Ok(Some((meta, Either::Right(std::io::Cursor::new(bytes)))))
    }

    fn receive_snapshot(&self) -> Result<SnapshotData, StorageError> {
        Ok(Either::Right(std::io::Cursor::new(Vec::new())))
    }

    fn keep_received(&self, mut received: Received) -> Result<(), StorageError> {
        let bytes = received
            .bytes()
            .map_err(|e| StorageError::Encode(format!("reading the snapshot received: {e}")))?;
        *self.snapshot.lock() = Some(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(r: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        r.map(|i| (i, vec![i as u8])).collect()
    }

    #[test]
    fn follows_the_log_contract() {
        let m = MemoryEngine::new();
        m.append(entries(3..6)).unwrap();
        assert_eq!((m.first_index(), m.last_index()), (3, Some(5)));
        assert!(matches!(
            m.append(entries(7..8)),
            Err(StorageError::Sequence { index: 7, want: 6 })
        ));
        // An index the log holds replaces it and everything after.
        m.append(vec![(4, vec![40])]).unwrap();
        assert_eq!(
            m.read_range(0..10).unwrap(),
            vec![(3, vec![3]), (4, vec![40])]
        );
        assert_eq!(m.last_index(), Some(4));
        m.purge(3).unwrap();
        assert_eq!(m.read_range(3..4).unwrap(), vec![]);
        m.purge(9).unwrap();
        assert_eq!((m.first_index(), m.last_index()), (10, None));
        m.append(entries(10..11)).unwrap();
        m.truncate(10).unwrap();
        assert_eq!(m.next_index(), 10);
    }
}
