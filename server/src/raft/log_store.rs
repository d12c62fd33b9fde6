//! openraft's log storage over a storage engine ([`crate::storage::Engine`]),
//! with group commit: appends are written at once and made durable by a
//! dedicated thread whose one barrier covers every append queued while the
//! previous barrier ran — many entries, one `fdatasync`.
//!
//! An append that finds the thread idle runs its barrier right there: the
//! round trip to the thread and back (two wake-ups of sleeping threads)
//! costs as much as the barrier itself, and openraft 0.9's core awaits
//! every append's flush before it does anything else — a leader sends the
//! entries to its followers only after its own barrier — so nothing could
//! have gone on meanwhile. The thread stays for appends that find a
//! barrier running (none with openraft 0.9, which has one append in flight
//! at a time; the storage test suite runs both ways).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogReader, Vote};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::{storage_error, LogId, StorageError, TypeConfig};
use crate::metrics::Metrics;
use crate::storage::engine::{self, Engine, Record};
use crate::storage::StorageError as DiskError;

struct FlushReq {
    callback: LogFlushed<TypeConfig>,
    last_index: u64,
    txns: usize,
}

/// Raft's log and vote in a storage engine.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
    flush_tx: mpsc::UnboundedSender<FlushReq>,
    /// Run an append's barrier in the append when the thread is idle.
    inline: bool,
}

/// What the store shares with its fsync thread (which must not hold the
/// sender, so it ends when the store is dropped).
struct Inner {
    engine: Arc<dyn Engine>,
    committed: Mutex<Option<LogId>>,
    flushed: AtomicU64,
    /// The index last written to `durable.N` (kept here, not re-read).
    marked: AtomicU64,
    metrics: Arc<Metrics>,
    /// Flush requests sent to the thread and not completed yet.
    queued: AtomicU64,
    /// When the durable point was last recorded, and the slot for the next.
    mark: Mutex<(Instant, u8)>,
    /// Set when a barrier failed. Never cleared: after a failed fsync the
    /// kernel may have dropped the unsynced pages and a later fsync can
    /// succeed without them ("fsyncgate"), so no later barrier is trusted.
    failed: watch::Sender<Option<String>>,
}

fn read_err(e: &DiskError) -> StorageError {
    storage_error(ErrorSubject::Logs, ErrorVerb::Read, e)
}
fn write_err(e: &DiskError) -> StorageError {
    storage_error(ErrorSubject::Logs, ErrorVerb::Write, e)
}

/// The durable-and-committed point: recorded in the `Durable` slots,
/// checked at start, and what `read_committed` returns.
pub fn read_durable(engine: &dyn Engine) -> Option<LogId> {
    engine::read_durable::<LogId>(engine, |l| l.index)
}

/// Checks a log before serving from it — nothing acknowledged is
/// missing, and the log starts where the snapshot ends — then cuts off a
/// torn tail (bytes past the last barrier, normal after a power cut) and
/// finishes an interrupted purge.
pub fn recover(engine: &dyn Engine, snapshot_index: Option<u64>) -> Result<(), DiskError> {
    let purged: Option<LogId> = engine::read_record(engine, Record::Purged)?;
    let covered = purged.map(|p| p.index).max(snapshot_index);
    if engine.last_index().is_some() {
        let first = engine.first_index();
        let want = covered.map(|c| c + 1).unwrap_or(0);
        if first > want {
            return Err(DiskError::Gap(format!(
                "the log starts at entry {first} but entries from {want} on are in no snapshot"
            )));
        }
    }
    let have = engine.last_index().max(covered).unwrap_or(0);
    if let Some(durable) = read_durable(engine) {
        if have < durable.index {
            let torn = engine
                .torn_tail()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            return Err(DiskError::LostHistory(format!(
                "the log ends at entry {have} but entries up to {} were acknowledged as durable{torn}",
                durable.index
            )));
        }
    }
    if let Some(cut) = engine.finish_recovery()? {
        tracing::warn!(
            %cut,
            "cut off the torn end of the log (written after the last barrier, never acknowledged)"
        );
    }
    Ok(())
}

impl LogStore {
    /// Takes the recovered log and starts the flush thread. `inline`: run
    /// an append's barrier in the append when the thread is idle (the
    /// server always does; see the module's overview).
    pub fn new(engine: Arc<dyn Engine>, metrics: Arc<Metrics>, inline: bool) -> LogStore {
        let (flush_tx, rx) = mpsc::unbounded_channel();
        let durable = read_durable(&*engine);
        let inner = Arc::new(Inner {
            failed: watch::channel(None).0,
            marked: AtomicU64::new(durable.map(|l| l.index).unwrap_or(0)),
            committed: Mutex::new(durable),
            flushed: AtomicU64::new(engine.last_index().unwrap_or(0)),
            engine,
            metrics,
            queued: AtomicU64::new(0),
            mark: Mutex::new((Instant::now(), 0)),
        });
        let t = inner.clone();
        std::thread::Builder::new()
            .name("warden-fsync".into())
            .spawn(move || t.flush_loop(rx))
            .expect("spawn the fsync thread");
        LogStore {
            inner,
            flush_tx,
            inline,
        }
    }

    /// Resolves with the reason once a barrier has failed: the server must
    /// stop, since nothing written since the last good barrier can be
    /// trusted to be on disk.
    pub async fn failed(&self) -> String {
        let mut rx = self.inner.failed.subscribe();
        let why = rx.wait_for(|f| f.is_some()).await.map(|f| f.clone());
        match why {
            Ok(why) => why.unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Makes everything appended durable and records the final durable
    /// point; call after consensus has stopped.
    pub fn finish(&self) {
        if self.inner.failed.borrow().is_some() {
            return;
        }
        let last = self.inner.engine.last_index();
        if self.inner.engine.barrier().run().is_ok() {
            self.inner
                .flushed
                .fetch_max(last.unwrap_or(0), Ordering::SeqCst);
            // Both files, so the final point survives damage to either.
            self.inner.mark_durable(&[0, 1]);
        }
    }
}

impl Inner {
    /// Writes the durable-and-committed point to the watermark files
    /// `slots`, if it moved; true when written.
    fn mark_durable(&self, slots: &[u8]) -> bool {
        let flushed = self.flushed.load(Ordering::SeqCst);
        let Some(c) = *self.committed.lock() else {
            return false;
        };
        // Only a committed entry that is also durable here may be recorded.
        if c.index > flushed || self.marked.load(Ordering::SeqCst) >= c.index {
            return false;
        }
        for &slot in slots {
            if let Err(e) = engine::write_record(&*self.engine, Record::Durable(slot), &c) {
                tracing::warn!(error = %e, "cannot record the durable log index");
                return false;
            }
        }
        self.marked.store(c.index, Ordering::SeqCst);
        true
    }

    fn flush_loop(&self, mut rx: mpsc::UnboundedReceiver<FlushReq>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
            }
            let n = batch.len() as u64;
            // Taken after every request in `batch` was appended, so the
            // barrier covers them all.
            self.barrier(batch);
            self.queued.fetch_sub(n, Ordering::SeqCst);
        }
    }

    /// Runs one barrier over everything appended so far and tells each of
    /// `batch` how it went.
    fn barrier(&self, batch: Vec<FlushReq>) {
        let job = self.engine.barrier();
        let t = Instant::now();
        let poisoned = self.failed.borrow().clone();
        let res = match poisoned {
            Some(why) => Err(DiskError::Failed(why)),
            None => job.run(),
        };
        self.metrics
            .fsync_latency
            .observe(t.elapsed().as_secs_f64());
        self.metrics
            .fsync_batch
            .observe(batch.iter().map(|r| r.txns).sum::<usize>() as f64);
        match &res {
            Ok(()) => {
                let max = batch.iter().map(|r| r.last_index).max().unwrap_or(0);
                self.flushed.fetch_max(max, Ordering::SeqCst);
            }
            Err(e) if self.failed.borrow().is_none() => {
                tracing::error!(error = %e, "the log barrier failed; stopping");
                self.failed
                    .send_replace(Some(format!("the log barrier failed ({e})")));
            }
            Err(_) => {}
        }
        for r in batch {
            let out = match &res {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            r.callback.log_io_completed(out);
        }
        let mut mark = self.mark.lock();
        if mark.0.elapsed() >= Duration::from_millis(200) && self.mark_durable(&[mark.1]) {
            *mark = (Instant::now(), mark.1 ^ 1);
        }
    }

    fn entries(&self, range: std::ops::Range<u64>) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let read = self.engine.read_range(range).map_err(|e| read_err(&e))?;
        read.into_iter()
            .map(|(i, bytes)| decode_entry(i, &bytes))
            .collect()
    }
}

/// A log entry from its bytes.
pub fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry<TypeConfig>, StorageError> {
    bincode::deserialize(bytes).map_err(|e| {
        let e = DiskError::Corrupt(format!("log entry {index}: {e}"));
        storage_error(ErrorSubject::LogIndex(index), ErrorVerb::Read, &e)
    })
}

/// The most bytes of log entries one AppendEntries carries. openraft 0.9
/// gives every AppendEntries one heartbeat interval to be answered (the
/// follower's fsync included): a follower catching up gets many small
/// appends, each answered in time, rather than one big one that never is.
const APPEND_BYTES: usize = 256 * 1024;
/// Entries read from the engine at a time while filling an append.
const READ_CHUNK: u64 = 64;

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
            Bound::Included(i) => i + 1,
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        self.inner.entries(start..end)
    }

    /// What one AppendEntries carries: at most [`APPEND_BYTES`] of entries
    /// (at least one entry).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut next = start;
        while next < end {
            let read = self
                .inner
                .engine
                .read_range(next..end.min(next + READ_CHUNK))
                .map_err(|e| read_err(&e))?;
            if read.is_empty() {
                break;
            }
            for (index, entry) in read {
                if !out.is_empty() && bytes + entry.len() > APPEND_BYTES {
                    return Ok(out);
                }
                bytes += entry.len();
                out.push(decode_entry(index, &entry)?);
                next = index + 1;
            }
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let engine = &*self.inner.engine;
        let last_purged: Option<LogId> =
            engine::read_record(engine, Record::Purged).map_err(|e| read_err(&e))?;
        let last = match engine.last_index() {
            Some(i) => self.inner.entries(i..i + 1)?.pop().map(|e| e.log_id),
            None => None,
        };
        let last = last.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        engine::write_record(&*self.inner.engine, Record::Vote, vote)
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, &e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        engine::read_record(&*self.inner.engine, Record::Vote)
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, &e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut c = self.inner.committed.lock();
        if committed.map(|l| l.index) > c.map(|l| l.index) {
            *c = committed;
            self.inner
                .metrics
                .committed
                .set(committed.map(|l| l.index as i64).unwrap_or(0));
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(read_durable(&*self.inner.engine))
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
        let mut records = Vec::new();
        let mut last_index = 0;
        let mut txns = 0;
        for e in entries {
            last_index = e.log_id.index;
            if let openraft::EntryPayload::Normal(b) = &e.payload {
                txns += b.0.len();
            }
            let bytes =
                bincode::serialize(&e).map_err(|e| write_err(&DiskError::Encode(e.to_string())))?;
            records.push((e.log_id.index, bytes));
        }
        self.inner
            .engine
            .append(records)
            .map_err(|e| write_err(&e))?;
        self.inner.metrics.last_log_index.set(last_index as i64);
        let req = FlushReq {
            callback,
            last_index,
            txns,
        };
        // Appends come from one task, so an idle thread stays idle until
        // this returns.
        if self.inline && self.inner.queued.load(Ordering::SeqCst) == 0 {
            self.inner.barrier(vec![req]);
            return Ok(());
        }
        self.inner.queued.fetch_add(1, Ordering::SeqCst);
        self.flush_tx.send(req).map_err(|_| {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
            write_err(&DiskError::Failed("the flush thread has stopped".into()))
        })?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.inner
            .engine
            .truncate(log_id.index)
            .map_err(|e| write_err(&e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Recorded first: a crash before the segments go leaves only extra
        // entries, which the next start skips and removes.
        let engine = &*self.inner.engine;
        engine::write_record(engine, Record::Purged, &log_id).map_err(|e| write_err(&e))?;
        engine.purge(log_id.index).map_err(|e| write_err(&e))
    }
}
