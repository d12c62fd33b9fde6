//! The Raft log in sled, with group commit: appends are written at once and
//! made durable by a dedicated flush thread that covers every append queued
//! while the previous flush ran — many entries, one fsync.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};
use tokio::sync::mpsc;

use super::store::{decode, encode, index_key, Store};
use super::{LogId, StorageError, TypeConfig};
use crate::metrics::Metrics;

struct FlushReq {
    callback: LogFlushed<TypeConfig>,
    last_index: u64,
    txns: usize,
}

/// Raft's log and vote in the data folder.
#[derive(Clone)]
pub struct LogStore {
    store: Store,
    flush_tx: mpsc::UnboundedSender<FlushReq>,
    committed: Arc<AtomicU64>,
    flushed: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

fn read_err(e: impl ToString) -> StorageError {
    StorageIOError::read_logs(&std::io::Error::other(e.to_string())).into()
}
fn write_err(e: impl ToString) -> StorageError {
    StorageIOError::write_logs(&std::io::Error::other(e.to_string())).into()
}

impl LogStore {
    /// Opens the log and starts the flush thread.
    pub fn new(store: Store, metrics: Arc<Metrics>) -> LogStore {
        let (flush_tx, rx) = mpsc::unbounded_channel();
        let committed = Arc::new(AtomicU64::new(0));
        let flushed = Arc::new(AtomicU64::new(0));
        let s = store.clone();
        let (c, f, m) = (committed.clone(), flushed.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("warden-fsync".into())
            .spawn(move || flush_loop(s, rx, c, f, m))
            .expect("spawn the fsync thread");
        LogStore {
            store,
            flush_tx,
            committed,
            flushed,
            metrics,
        }
    }

    /// Records the final durable point; call after consensus has stopped.
    pub fn finish(&self) {
        let _ = self.store.db.flush();
        let w = self
            .flushed
            .load(Ordering::SeqCst)
            .min(self.committed.load(Ordering::SeqCst));
        if w > self.store.read_watermark() {
            let _ = self.store.write_watermark(w, 0);
            let _ = self.store.write_watermark(w, 1);
        }
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        match self.store.logs.last().map_err(read_err)? {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = decode(&v).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
            None => Ok(None),
        }
    }
}

fn flush_loop(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<FlushReq>,
    committed: Arc<AtomicU64>,
    flushed: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
) {
    let mut last_mark = Instant::now();
    let mut slot = 0usize;
    let mut marked = store.read_watermark();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
        }
        let t = Instant::now();
        let res = store.db.flush();
        metrics.fsync_latency.observe(t.elapsed().as_secs_f64());
        metrics
            .fsync_batch
            .observe(batch.iter().map(|r| r.txns).sum::<usize>() as f64);
        if res.is_ok() {
            let max = batch.iter().map(|r| r.last_index).max().unwrap_or(0);
            flushed.fetch_max(max, Ordering::SeqCst);
        }
        for r in batch {
            let out = match &res {
                Ok(_) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            r.callback.log_io_completed(out);
        }
        let w = flushed
            .load(Ordering::SeqCst)
            .min(committed.load(Ordering::SeqCst));
        if w > marked && last_mark.elapsed() >= Duration::from_millis(200) {
            if let Err(e) = store.write_watermark(w, slot) {
                tracing::warn!(error = %e, "cannot record the durable log index");
            } else {
                marked = w;
                slot += 1;
                last_mark = Instant::now();
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        let iter = match end {
            Some(e) => self.store.logs.range(index_key(start)..index_key(e)),
            None => self.store.logs.range(index_key(start)..),
        };
        let mut out = Vec::new();
        for item in iter {
            let (_, v) = item.map_err(read_err)?;
            out.push(decode(&v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.store.get_meta("last_purged").map_err(read_err)?;
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let io = |e: String| -> StorageError {
            StorageIOError::write_vote(&std::io::Error::other(e)).into()
        };
        self.store.put_meta("vote", vote).map_err(io)?;
        self.store.db.flush().map_err(|e| io(e.to_string()))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.store
            .get_meta("vote")
            .map_err(|e| StorageIOError::read_vote(&std::io::Error::other(e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(c) = committed {
            self.committed.fetch_max(c.index, Ordering::SeqCst);
        }
        self.store
            .put_meta("committed", &committed)
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let c: Option<Option<LogId>> = self.store.get_meta("committed").map_err(read_err)?;
        let c = c.flatten();
        if let Some(c) = c {
            self.committed.fetch_max(c.index, Ordering::SeqCst);
        }
        Ok(c)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut last_index = 0;
        let mut txns = 0;
        for e in entries {
            last_index = e.log_id.index;
            if let openraft::EntryPayload::Normal(b) = &e.payload {
                txns += b.0.len();
            }
            batch.insert(&index_key(e.log_id.index), encode(&e).map_err(write_err)?);
        }
        self.store.logs.apply_batch(batch).map_err(write_err)?;
        self.metrics.last_log_index.set(last_index as i64);
        self.flush_tx
            .send(FlushReq {
                callback,
                last_index,
                txns,
            })
            .map_err(|_| write_err("the flush thread has stopped"))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.store
            .remove_logs(index_key(log_id.index)..)
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.store
            .put_meta("last_purged", &log_id)
            .map_err(write_err)?;
        self.store
            .remove_logs(..=index_key(log_id.index))
            .map_err(write_err)
    }
}

/// Checks a data folder before serving from it: every log record decodes,
/// indexes are contiguous, and nothing acknowledged is missing.
pub fn verify(store: &Store, snapshot_index: Option<u64>) -> Result<(), String> {
    let last_purged: Option<LogId> = store
        .get_meta("last_purged")
        .map_err(|e| format!("log metadata: {e}"))?;
    let mut prev = last_purged.map(|l| l.index);
    let mut last = prev;
    // A crash between recording a purge and removing its entries leaves
    // entries the snapshot already covers: finish the purge.
    if let Some(p) = last_purged {
        store
            .remove_logs(..=index_key(p.index))
            .map_err(|e| format!("finishing a purge: {e}"))?;
    }
    for item in store.logs.iter() {
        let (k, v) = item.map_err(|e| format!("reading the log: {e}"))?;
        let idx = u64::from_be_bytes(
            k.as_ref()
                .try_into()
                .map_err(|_| "a log key is malformed".to_string())?,
        );
        let e: Entry<TypeConfig> = decode(&v).map_err(|e| format!("log entry {idx}: {e}"))?;
        if e.log_id.index != idx {
            return Err(format!(
                "log entry at {idx} claims index {}",
                e.log_id.index
            ));
        }
        if let Some(p) = prev {
            if idx != p + 1 {
                return Err(format!("the log jumps from entry {p} to {idx}"));
            }
        }
        prev = Some(idx);
        last = Some(idx);
    }
    let have = last.unwrap_or(0).max(snapshot_index.unwrap_or(0));
    let durable = store.read_watermark();
    if have < durable {
        return Err(format!(
            "the log ends at entry {have} but entries up to {durable} were acknowledged as durable"
        ));
    }
    let committed: Option<Option<LogId>> = store
        .get_meta("committed")
        .map_err(|e| format!("log metadata: {e}"))?;
    if let Some(Some(c)) = committed {
        if c.index > have {
            return Err(format!(
                "the log ends at entry {have} but entry {} was committed",
                c.index
            ));
        }
    }
    Ok(())
}
