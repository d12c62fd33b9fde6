//! The state-machine adapter: applies committed entries to the `DataTree`,
//! routes their effects to watches and the session tracker, and takes and
//! installs snapshots (the serialized tree and session table).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    StoredMembership,
};
use parking_lot::RwLock;

use super::member::MemberNode;
use super::{storage_error, LogId, StorageError, TypeConfig};
use crate::metrics::Metrics;
use crate::session::SessionTracker;
use crate::storage::snapshot::{Received, SnapshotData};
use crate::storage::{Engine, StorageError as DiskError};
use crate::tree::{effective_acl, DataTree, Effects, EventKind, FrozenTree};
use crate::txn::Acl;
use crate::txn::{zxid, TxnResponse};
use crate::watch::WatchManager;
use std::collections::HashMap;
use tokio_util::either::Either;

/// The applied state: the tree plus what Raft needs to resume from it.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct SmState {
    pub tree: DataTree,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership<u64, MemberNode>,
}

/// What the state machine shares with the request path: the tree (read by
/// sessions, written only here), the watch registry and the session tracker.
pub struct Shared {
    pub state: RwLock<SmState>,
    pub watches: Arc<WatchManager>,
    pub sessions: Arc<SessionTracker>,
    pub metrics: Arc<Metrics>,
    /// The last log index applied, for waiters (a forwarded write's reply
    /// waits until this member has applied it).
    applied: tokio::sync::watch::Sender<u64>,
    /// Holds new writes while leadership is handed off.
    pub hold: super::hold::Hold,
    /// How many snapshots are reading the live tree, each from its freeze
    /// until it is written or dropped ([`Reading`]): replacing the whole
    /// state waits until none is, so a frozen view never outlives its tree.
    readers: parking_lot::Mutex<usize>,
    readers_done: parking_lot::Condvar,
    /// When to ask for a snapshot: see [`Shared::snapshot_wanted`].
    snapshots: SnapshotDue,
}

/// Counts txns applied since the last snapshot and asks for the next one
/// after `every` (ZooKeeper's `snapCount`): the log a restart replays is
/// bounded in txns, whatever their batching into entries.
struct SnapshotDue {
    every: AtomicU64,
    since: AtomicU64,
    asked: AtomicBool,
    wanted: tokio::sync::Notify,
}

impl Shared {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Shared> {
        Arc::new(Shared {
            state: RwLock::new(SmState {
                tree: DataTree::new(),
                ..SmState::default()
            }),
            watches: Arc::new(WatchManager::new()),
            sessions: Arc::new(SessionTracker::new()),
            metrics,
            applied: tokio::sync::watch::channel(0).0,
            hold: super::hold::Hold::default(),
            readers: parking_lot::Mutex::new(0),
            readers_done: parking_lot::Condvar::new(),
            snapshots: SnapshotDue {
                every: AtomicU64::new(u64::MAX),
                since: AtomicU64::new(0),
                asked: AtomicBool::new(false),
                wanted: tokio::sync::Notify::new(),
            },
        })
    }

    /// Asks for a snapshot after every `n` txns applied.
    pub fn snapshot_every(&self, n: u64) {
        self.snapshots.every.store(n.max(1), Ordering::Relaxed);
    }

    /// Resolves when enough txns were applied that a snapshot is due; the
    /// caller asks openraft for one until [`Shared::snapshot_pending`] is
    /// false (a snapshot began).
    pub async fn snapshot_wanted(&self) {
        self.snapshots.wanted.notified().await
    }

    pub fn snapshot_pending(&self) -> bool {
        self.snapshots.asked.load(Ordering::Relaxed)
    }

    fn count_applied(&self, txns: u64) {
        let d = &self.snapshots;
        let since = d.since.fetch_add(txns, Ordering::Relaxed) + txns;
        if since >= d.every.load(Ordering::Relaxed) && !d.asked.swap(true, Ordering::Relaxed) {
            d.wanted.notify_one();
        }
    }

    /// Waits until this member has applied log index `index`; false on
    /// timeout.
    pub async fn wait_applied(&self, index: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|a| *a >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn note_applied(&self, st: &SmState) {
        let index = st.last_applied.map(|l| l.index).unwrap_or(0);
        self.applied.send_if_modified(|a| {
            let moved = index > *a;
            *a = (*a).max(index);
            moved
        });
    }

    /// Replaces the whole state (startup or snapshot install) and gives every
    /// session in it a fresh full timeout.
    fn replace(&self, mut new: SmState) {
        new.tree.rebuild_indexes();
        let now = Instant::now();
        for (id, s) in new.tree.sessions() {
            self.sessions.opened(*id, s.timeout_ms, now);
        }
        self.metrics.znodes.set(new.tree.node_count() as i64);
        self.metrics.sessions.set(new.tree.session_count() as i64);
        let mut readers = self.readers.lock();
        while *readers > 0 {
            self.readers_done.wait(&mut readers);
        }
        let mut st = self.state.write();
        *st = new;
        // Sessions the snapshot no longer has ended while this member was
        // behind: their clients learn it. The others reconnect, so that
        // their watches fire for what the snapshot changed.
        for id in self.sessions.ids() {
            if st.tree.session(id).is_none() {
                self.sessions.closed(id);
                self.watches.session_closed(id);
            }
        }
        self.watches.reconnect_all(
            "this member caught up from a snapshot; reconnect to re-register watches",
        );
        self.note_applied(&st);
    }
}

/// openraft's view of the state machine.
pub struct StateMachine {
    shared: Arc<Shared>,
    engine: Arc<dyn Engine>,
}

fn snapshot_err(verb: ErrorVerb, e: &DiskError) -> StorageError {
    storage_error(ErrorSubject::Snapshot(None), verb, e)
}

/// A snapshot or its meta that does not decode.
fn undecodable(what: &str, e: bincode::Error) -> DiskError {
    DiskError::Corrupt(format!("{what}: {e}"))
}

/// A snapshot's meta from its stored bytes.
fn decode_meta(bytes: &[u8]) -> Result<SnapshotMeta<u64, MemberNode>, DiskError> {
    bincode::deserialize(bytes).map_err(|e| undecodable("snapshot meta", e))
}

/// A stored snapshot: its meta and its bytes.
pub type StoredSnapshot = (SnapshotMeta<u64, MemberNode>, Vec<u8>);

/// Loads the stored snapshot, if any.
pub fn load_snapshot(engine: &dyn Engine) -> Result<Option<StoredSnapshot>, DiskError> {
    let Some(stored) = engine.read_snapshot()? else {
        return Ok(None);
    };
    Ok(Some((decode_meta(&stored.meta)?, stored.data)))
}

/// Opens a snapshot's data in the current layout (layout 4: the tree in
/// blocks that decode in parallel, ACLs by number; `tree::layout`).
/// Layout 3 (nodes without their children's names, as serde lays out
/// [`SmState`]) began with `WRDNST03`, layout 2 (null data kept apart)
/// with `WRDNST02`; layout 1 has no marker: its first bytes are the node
/// count, which is never any of them.
const STATE_V4: &[u8; 8] = b"WRDNST04";
const STATE_V3: &[u8; 8] = b"WRDNST03";
const STATE_V2: &[u8; 8] = b"WRDNST02";

/// The applied state as a snapshot holds it (all at once; a live server
/// writes the same layout from a frozen tree, [`build`]).
pub fn encode_state(st: &SmState) -> Result<Vec<u8>, bincode::Error> {
    let mut bytes = STATE_V4.to_vec();
    crate::tree::layout::encode(&st.tree, &mut bytes)?;
    encode_raft_tail(&st.last_applied, &st.membership, &mut bytes)?;
    Ok(bytes)
}

/// What follows the tree in layout 4: the log id applied and the membership.
fn encode_raft_tail(
    last_applied: &Option<LogId>,
    membership: &StoredMembership<u64, MemberNode>,
    out: &mut Vec<u8>,
) -> Result<(), bincode::Error> {
    bincode::serialize_into(&mut *out, last_applied)?;
    bincode::serialize_into(out, membership)
}

/// The applied state a snapshot holds, in this layout or an earlier one.
pub fn decode_state(bytes: &[u8]) -> Result<SmState, DiskError> {
    if let Some(v4) = bytes.strip_prefix(STATE_V4) {
        let (tree, mut rest) = crate::tree::layout::decode(v4)
            .map_err(|e| DiskError::Corrupt(format!("snapshot data: {e}")))?;
        let last_applied =
            bincode::deserialize_from(&mut rest).map_err(|e| undecodable("snapshot data", e))?;
        let membership =
            bincode::deserialize_from(&mut rest).map_err(|e| undecodable("snapshot data", e))?;
        return Ok(SmState {
            tree,
            last_applied,
            membership,
        });
    }
    if let Some(v3) = bytes.strip_prefix(STATE_V3) {
        return bincode::deserialize(v3).map_err(|e| undecodable("snapshot data", e));
    }
    if bytes.starts_with(b"WRDNST") && !bytes.starts_with(STATE_V2) {
        return Err(DiskError::Corrupt(format!(
            "snapshot layout {} is not one this Warden reads (it reads 1 to 4): it was written by a newer version; run that version",
            String::from_utf8_lossy(&bytes[6..bytes.len().min(8)])
        )));
    }
    match bytes.strip_prefix(STATE_V2) {
        Some(v2) => decode_old::<crate::tree::v2::DataTree>(v2),
        None => decode_old::<crate::tree::v1::DataTree>(bytes),
    }
}

/// [`SmState`] as layouts 1 and 2 laid it out: the same fields, with the
/// tree as it was then (`T`).
#[derive(serde::Deserialize)]
struct OldSmState<T> {
    tree: T,
    last_applied: Option<LogId>,
    membership: StoredMembership<u64, MemberNode>,
}

/// Reads a state in an old layout whose tree converts to today's.
fn decode_old<T>(bytes: &[u8]) -> Result<SmState, DiskError>
where
    T: serde::de::DeserializeOwned + Into<DataTree>,
{
    let old: OldSmState<T> =
        bincode::deserialize(bytes).map_err(|e| undecodable("snapshot data", e))?;
    Ok(SmState {
        tree: old.tree.into(),
        last_applied: old.last_applied,
        membership: old.membership,
    })
}

impl StateMachine {
    /// Opens the state machine from the stored snapshot (if any); openraft
    /// then re-applies the committed log after it.
    pub fn open(
        engine: Arc<dyn Engine>,
        stored: Option<StoredSnapshot>,
        shared: Arc<Shared>,
    ) -> Result<StateMachine, DiskError> {
        if let Some((_, bytes)) = stored {
            shared.replace(decode_state(&bytes)?);
        }
        Ok(StateMachine { shared, engine })
    }
}

/// Applies entries to a state; shared by the live state machine and the
/// offline replay tool.
pub fn apply_entry(
    st: &mut SmState,
    entry: Entry<TypeConfig>,
    on_effects: &mut dyn FnMut(&SmState, i64, Effects),
) -> Vec<TxnResponse> {
    let index = entry.log_id.index;
    st.last_applied = Some(entry.log_id);
    match entry.payload {
        EntryPayload::Normal(batch) => batch
            .0
            .iter()
            .enumerate()
            .map(|(pos, txn)| {
                let z = zxid(index, pos);
                let mut fx = Effects::default();
                let r = st.tree.apply(z, txn, &mut fx);
                on_effects(st, z, fx);
                r
            })
            .collect(),
        EntryPayload::Blank => {
            st.tree.note_zxid(zxid(index, 0));
            Vec::new()
        }
        EntryPayload::Membership(m) => {
            let z = zxid(index, 0);
            let mut fx = Effects::default();
            st.tree.set_config(z, zookeeper_config(&m, z), &mut fx);
            on_effects(st, z, fx);
            st.membership = StoredMembership::new(Some(entry.log_id), m);
            Vec::new()
        }
    }
}

/// Applies committed entries to the shared state, firing their effects.
/// `txns`: how many the entries hold ([`txns_in`]).
fn apply_all(
    shared: &Shared,
    st: &mut SmState,
    entries: Vec<Entry<TypeConfig>>,
    txns: usize,
) -> Result<Vec<Vec<TxnResponse>>, StorageError> {
    let mut out = Vec::new();
    let mut on_effects = |st: &SmState, zxid: i64, fx: Effects| {
        let now = Instant::now();
        for (id, timeout) in &fx.sessions_opened {
            shared.sessions.opened(*id, *timeout, now);
        }
        // A node's ACL when its event fires: from the tree, or as it was
        // when the txn deleted it (the last deletion of that path wins).
        let gone: HashMap<&str, &[Acl]> = fx
            .gone
            .iter()
            .map(|(p, acl)| (p.as_str(), &acl[..]))
            .collect();
        shared.watches.trigger(zxid, &fx.events, |kind, p| {
            let live = || st.tree.node(p).map(|n| effective_acl(p, n));
            match kind {
                EventKind::Deleted => gone.get(p).copied().or_else(live),
                _ => live().or_else(|| gone.get(p).copied()),
            }
        });
        for id in &fx.sessions_closed {
            shared.sessions.closed(*id);
            shared.watches.session_closed(*id);
        }
    };
    for e in entries {
        out.push(apply_entry(st, e, &mut on_effects));
    }
    shared.count_applied(txns as u64);
    shared.metrics.znodes.set(st.tree.node_count() as i64);
    shared.metrics.sessions.set(st.tree.session_count() as i64);
    shared.metrics.last_applied.set(st.tree.last_zxid());
    shared.note_applied(st);
    Ok(out)
}

/// The txns an entry holds, as the snapshot cadence counts them: a batch's
/// (at least one), or one for any other entry.
fn txns_in(e: &Entry<TypeConfig>) -> usize {
    match &e.payload {
        EntryPayload::Normal(batch) => batch.0.len().max(1),
        _ => 1,
    }
}

/// The most txns applied on the runtime's worker without handing it off.
const INLINE_APPLY_TXNS: usize = 64;

/// Runs `f`, which may block, without holding up the runtime's other tasks
/// (on a multi-threaded runtime; inline on a single-threaded one, as in
/// openraft's storage suite).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, MemberNode>), StorageError> {
        let st = self.shared.state.read();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<TxnResponse>>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let shared = &self.shared;
        let entries: Vec<_> = entries.into_iter().collect();
        let txns: usize = entries.iter().map(txns_in).sum();
        // A few txns with the lock free apply here, in microseconds:
        // handing the runtime's worker off (`block_in_place`) would cost
        // more than the apply, on every write. Waiting for the lock (a
        // snapshot chunk or a long read holds it) or a large batch blocks,
        // so the runtime's other tasks (heartbeats among them) move away.
        if txns <= INLINE_APPLY_TXNS {
            if let Some(mut st) = shared.state.try_write() {
                return apply_all(shared, &mut st, entries, txns);
            }
        }
        blocking(|| apply_all(shared, &mut shared.state.write(), entries, txns))
    }

    /// Freezes the state where it is: openraft asks for a builder between
    /// applies, so this is the state at `last_applied`. The builder then
    /// reads it while later entries apply.
    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let frozen = {
            // Counted before the freeze, under the same lock `replace`
            // takes, so no replacement slips in between.
            let mut readers = self.shared.readers.lock();
            *readers += 1;
            let reading = Reading(self.shared.clone());
            let mut st = self.shared.state.write();
            drop(readers);
            self.shared.snapshots.since.store(0, Ordering::Relaxed);
            self.shared.snapshots.asked.store(false, Ordering::Relaxed);
            Frozen {
                meta: SnapshotMeta {
                    last_log_id: st.last_applied,
                    last_membership: st.membership.clone(),
                    snapshot_id: format!(
                        "{}-{}",
                        st.last_applied.map(|l| l.index).unwrap_or(0),
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_millis())
                            .unwrap_or(0)
                    ),
                },
                tree: st.tree.freeze(),
                reading,
            }
        };
        SnapshotBuilder {
            shared: self.shared.clone(),
            engine: self.engine.clone(),
            frozen: Some(frozen),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        let engine = self.engine.clone();
        let place = blocking(|| engine.receive_snapshot());
        Ok(Box::new(
            place.map_err(|e| snapshot_err(ErrorVerb::Write, &e))?,
        ))
    }

    /// Checks and decodes the snapshot file the leader sent, then keeps it
    /// as this member's snapshot and replaces the state with it.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, MemberNode>,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        // Decoding and storing a large snapshot runs on a blocking thread,
        // as building one does.
        let (shared, engine, meta) = (self.shared.clone(), self.engine.clone(), meta.clone());
        let mut received = match *snapshot {
            Either::Left(f) => Received::File(f.into_std().await),
            Either::Right(m) => Received::Memory(m.into_inner()),
        };
        tokio::task::spawn_blocking(move || {
            let read = |e: &DiskError| snapshot_err(ErrorVerb::Read, e);
            let stored = engine.read_received(&mut received).map_err(|e| read(&e))?;
            let sent = decode_meta(&stored.meta).map_err(|e| read(&e))?;
            if sent.snapshot_id != meta.snapshot_id || sent.last_log_id != meta.last_log_id {
                return Err(read(&DiskError::Corrupt(format!(
                    "the snapshot received is {} up to {:?}, not {} up to {:?} as announced",
                    sent.snapshot_id, sent.last_log_id, meta.snapshot_id, meta.last_log_id
                ))));
            }
            let st = decode_state(&stored.data).map_err(|e| read(&e))?;
            let bytes = stored.data.len();
            drop(stored);
            engine
                .keep_received(received)
                .map_err(|e| snapshot_err(ErrorVerb::Write, &e))?;
            tracing::info!(last_log = ?meta.last_log_id, bytes, "installed a snapshot");
            shared.replace(st);
            shared.metrics.snapshots_installed.inc();
            Ok::<_, StorageError>(())
        })
        .await
        .map_err(|e| snapshot_err(ErrorVerb::Write, &DiskError::Encode(e.to_string())))??;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let engine = self.engine.clone();
        blocking(|| open_current(&*engine)).map_err(|e| snapshot_err(ErrorVerb::Read, &e))
    }
}

/// The stored snapshot as openraft sends it: its meta, and the file
/// itself to read as it goes out.
fn open_current(engine: &dyn Engine) -> Result<Option<Snapshot<TypeConfig>>, DiskError> {
    let Some((meta, data)) = engine.open_snapshot()? else {
        return Ok(None);
    };
    Ok(Some(Snapshot {
        meta: decode_meta(&meta)?,
        snapshot: Box::new(data),
    }))
}

/// Writes the state as it was when the builder was made into a snapshot,
/// reading the live tree a chunk at a time.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    engine: Arc<dyn Engine>,
    frozen: Option<Frozen>,
}

/// The state frozen for a snapshot: its meta and the frozen tree.
struct Frozen {
    meta: SnapshotMeta<u64, MemberNode>,
    tree: FrozenTree,
    reading: Reading,
}

/// One snapshot reading the live tree (see `Shared::readers`): counted
/// from the freeze, let go when the snapshot is written or dropped.
struct Reading(Arc<Shared>);

impl Drop for Reading {
    fn drop(&mut self) {
        *self.0.readers.lock() -= 1;
        self.0.readers_done.notify_all();
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Serializing a large tree and writing it out takes long enough to
        // starve the runtime's few threads of the heartbeats and appends a
        // follower must answer in time: it runs off the runtime.
        let (shared, engine) = (self.shared.clone(), self.engine.clone());
        let frozen = self.frozen.take().ok_or_else(|| {
            snapshot_err(
                ErrorVerb::Write,
                &DiskError::Encode("this snapshot builder was used already".into()),
            )
        })?;
        // Background work, on threads of its own. The file is written at a
        // lower CPU priority than the threads that answer clients (on a busy
        // machine a snapshot takes longer instead); the tree is read at the
        // normal one, since applies wait for each chunk's read lock and a
        // reader at low priority, descheduled while holding it, would make
        // them wait for its next time slice.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("warden-snapshot".into())
            .spawn(move || {
                let _ = tx.send(build(&shared, &*engine, frozen));
            })
            .map_err(|e| snapshot_err(ErrorVerb::Write, &DiskError::Encode(e.to_string())))?;
        let meta = rx.await.map_err(|_| {
            snapshot_err(
                ErrorVerb::Write,
                &DiskError::Encode("the snapshot thread stopped".into()),
            )
        })??;
        // openraft keeps only the meta of a snapshot just built (its
        // state-machine worker); the stored file is handed back for
        // callers that read it, such as its storage test suite.
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || open_current(&*engine))
            .await
            .map_err(|e| snapshot_err(ErrorVerb::Read, &DiskError::Encode(e.to_string())))?
            .map_err(|e| snapshot_err(ErrorVerb::Read, &e))?
            .filter(|s| s.meta.snapshot_id == meta.snapshot_id)
            .ok_or_else(|| {
                snapshot_err(
                    ErrorVerb::Read,
                    &DiskError::Corrupt("the snapshot just written is not the one stored".into()),
                )
            })
    }
}

/// Nodes read from the live tree per hold of its read lock: writes wait
/// for at most one chunk's encoding (a few hundred microseconds).
const SNAPSHOT_CHUNK: usize = 512;

/// Lowers the calling thread's CPU priority (nice 10; on Linux nice is
/// per thread). Best effort: a failure leaves it as it was.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only changes the calling thread's nice value.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Chunks read and not yet written, at most: the reader waits for the
/// writer beyond this, so memory stays bounded.
const SNAPSHOT_QUEUE: usize = 4;

/// Writes the frozen state into the stored snapshot, piece by piece, in
/// layout 4 ([`encode_state`]'s layout, for the state at the freeze): this
/// thread reads and encodes the tree a chunk at a time, a second one at a
/// lower priority writes the chunks out.
fn build(
    shared: &Shared,
    engine: &dyn Engine,
    frozen: Frozen,
) -> Result<SnapshotMeta<u64, MemberNode>, StorageError> {
    let started = Instant::now();
    let Frozen {
        meta,
        mut tree,
        reading: _reading,
    } = frozen;
    let m = bincode::serialize(&meta)
        .map_err(|e| snapshot_err(ErrorVerb::Write, &DiskError::Encode(e.to_string())))?;
    // `None` after the last chunk: a reader that stops without it failed,
    // and the writer must not store what it has as a whole snapshot.
    let (chunks, queued) = std::sync::mpsc::sync_channel::<Option<Vec<u8>>>(SNAPSHOT_QUEUE);
    let (written, read) = std::thread::scope(|scope| {
        let writer = std::thread::Builder::new()
            .name("warden-snapshot-write".into())
            .spawn_scoped(scope, move || {
                lower_priority();
                let mut next = |buf: &mut Vec<u8>| match queued.recv() {
                    Ok(Some(chunk)) => {
                        *buf = chunk;
                        Ok(true)
                    }
                    Ok(None) => Ok(false),
                    Err(_) => Err(DiskError::Encode(
                        "the snapshot's reader stopped before the end".into(),
                    )),
                };
                engine.write_snapshot(&m, &mut next)
            })
            .map_err(|e| DiskError::Encode(format!("cannot start the snapshot writer: {e}")))?;
        let read = read_chunks(shared, &mut tree, &meta, &chunks);
        drop(chunks);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(DiskError::Encode("the snapshot writer panicked".into())));
        Ok::<_, DiskError>((written, read))
    })
    .map_err(|e| snapshot_err(ErrorVerb::Write, &e))?;
    // A failed read fails the writer too; the read's error says why.
    read.map_err(|e| snapshot_err(ErrorVerb::Write, &e))?;
    let bytes = written.map_err(|e| snapshot_err(ErrorVerb::Write, &e))?;
    shared.metrics.snapshots.inc();
    tracing::info!(
        last_log = ?meta.last_log_id.map(|l| l.index),
        bytes,
        ms = started.elapsed().as_millis() as u64,
        "took a snapshot"
    );
    Ok(meta)
}

/// Reads the frozen tree into chunks of the snapshot's bytes and sends
/// them, the head first and the tail last. Stops early if the writer has
/// gone (it failed; its error is reported).
fn read_chunks(
    shared: &Shared,
    tree: &mut FrozenTree,
    meta: &SnapshotMeta<u64, MemberNode>,
    chunks: &std::sync::mpsc::SyncSender<Option<Vec<u8>>>,
) -> Result<(), DiskError> {
    let encode = |e: bincode::Error| DiskError::Encode(e.to_string());
    let mut buf = Vec::from(STATE_V4);
    tree.encode_head(&mut buf);
    let mut read = 0usize;
    loop {
        let chunk_started = Instant::now();
        let n = {
            let st = shared.state.read();
            st.tree
                .read_frozen(tree, SNAPSHOT_CHUNK, &mut buf)
                .map_err(encode)?
        };
        read += n;
        if n == 0 {
            if read != tree.node_count() {
                return Err(DiskError::Corrupt(format!(
                    "a snapshot read {read} nodes of the {} frozen; none was stored",
                    tree.node_count()
                )));
            }
            tree.encode_tail(&mut buf).map_err(encode)?;
            encode_raft_tail(&meta.last_log_id, &meta.last_membership, &mut buf).map_err(encode)?;
        }
        if chunks.send(Some(std::mem::take(&mut buf))).is_err() {
            return Ok(());
        }
        // Paced: a snapshot is background work and takes at most about
        // half of one core, so on a small busy machine it takes longer
        // rather than delaying the clients' requests.
        std::thread::sleep(chunk_started.elapsed());
        if n == 0 {
            let _ = chunks.send(None);
            return Ok(());
        }
    }
}

/// `/zookeeper/config` for a membership, in ZooKeeper's format: a
/// `server.ID=HOST:PORT:PORT:ROLE[;ZK_CLIENT_ADDRESS]` line per member (the
/// peer port stands for both of ZooKeeper's quorum and election ports; the
/// role is `participant` for a voter and `observer` for a learner; the
/// client address once the member has announced it), then `version=` the
/// zxid in hex. Empty for a single server, as ZooKeeper's standalone mode
/// has it.
fn zookeeper_config(m: &openraft::Membership<u64, MemberNode>, zxid: i64) -> Vec<u8> {
    if m.nodes().count() < 2 {
        return Vec::new();
    }
    let mut text = String::new();
    for (id, n) in m.nodes() {
        let role = match m.voter_ids().any(|v| v == *id) {
            true => "participant",
            false => "observer",
        };
        let peer = &n.peer;
        let port = port_of(peer);
        text.push_str(&format!("server.{id}={peer}:{port}:{role}"));
        if let Some(zk) = &n.zk {
            text.push_str(&format!(";{zk}"));
        }
        text.push('\n');
    }
    text.push_str(&format!("version={zxid:x}"));
    text.into_bytes()
}

/// The port of `HOST:PORT`.
fn port_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or("", |(_, p)| p)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// A txn creating a persistent node at `path`.
    fn create(path: &str, data: Vec<u8>) -> crate::txn::Txn {
        crate::txn::Txn {
            session_id: 0,
            time_ms: 5,
            op: crate::txn::Op::Create {
                path: path.to_string(),
                data,
                acl: Vec::new(),
                mode: crate::txn::CreateMode::Persistent,
                ttl_ms: 0,
            },
        }
    }

    /// Layout 4 is written; layout 3 (serde's form of the state) still
    /// reads back the same; a newer layout is refused, saying why.
    #[test]
    fn snapshot_layouts_read_back_and_a_newer_one_is_refused() {
        let mut st = SmState::default();
        let mut fx = Effects::default();
        for (i, p) in ["/a", "/a/b", "/c"].iter().enumerate() {
            let txn = create(p, vec![i as u8; 3]);
            assert!(st.tree.apply(i as i64 + 1, &txn, &mut fx).result.is_ok());
        }
        st.last_applied = Some(openraft::LogId::new(
            openraft::CommittedLeaderId::new(2, 1),
            9,
        ));
        let hash = st.tree.state_hash();
        let v4 = encode_state(&st).unwrap();
        assert!(v4.starts_with(STATE_V4));
        let mut v3 = STATE_V3.to_vec();
        bincode::serialize_into(&mut v3, &st).unwrap();
        for bytes in [&v4, &v3] {
            let back = decode_state(bytes).unwrap();
            assert_eq!(back.tree.state_hash(), hash);
            assert_eq!(back.last_applied, st.last_applied);
            assert_eq!(back.tree.node_count(), st.tree.node_count());
        }
        let mut newer = v4.clone();
        newer[7] = b'9';
        let err = decode_state(&newer).err().expect("refused").to_string();
        assert!(
            err.contains("layout 09") && err.contains("newer version"),
            "{err}"
        );
        assert!(decode_state(&v4[..v4.len() - 3]).is_err(), "a cut snapshot");
    }

    /// A snapshot whose reader fails midway (its freeze superseded by a
    /// newer one) stores nothing: the writer must not take the chunks it
    /// got for a whole snapshot. The newer one then builds and is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_whose_read_fails_stores_nothing() {
        use openraft::RaftSnapshotBuilder;
        let engine: Arc<dyn Engine> = Arc::new(crate::storage::MemoryEngine::new());
        let shared = Shared::new(Arc::new(Metrics::new()));
        let mut sm = StateMachine::open(engine.clone(), None, shared.clone()).unwrap();
        let mut fx = Effects::default();
        let mut apply = |from: usize, to: usize| {
            let mut st = shared.state.write();
            for i in from..to {
                let txn = create(&format!("/n{i}"), vec![1; 10]);
                assert!(st.tree.apply(i as i64 + 1, &txn, &mut fx).result.is_ok());
            }
            st.last_applied = Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(1, 1),
                to as u64,
            ));
        };
        apply(0, 3 * SNAPSHOT_CHUNK);
        let first = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        apply(3 * SNAPSHOT_CHUNK, 4 * SNAPSHOT_CHUNK);
        let mut superseded = sm.get_snapshot_builder().await;
        let mut newer = sm.get_snapshot_builder().await;
        let err = superseded.build_snapshot().await.expect_err("refused");
        assert!(err.to_string().contains("snapshot"), "{err}");
        let (meta, _) = load_snapshot(&*engine).unwrap().expect("a snapshot");
        assert_eq!(meta.snapshot_id, first.meta.snapshot_id);
        let built = newer.build_snapshot().await.unwrap();
        let (meta, data) = load_snapshot(&*engine).unwrap().expect("a snapshot");
        assert_eq!(meta.snapshot_id, built.meta.snapshot_id);
        assert_eq!(
            decode_state(&data).unwrap().tree.state_hash(),
            shared.state.read().tree.state_hash()
        );
    }

    #[test]
    fn zookeeper_config_lists_members_in_zookeepers_format() {
        let mut nodes: BTreeMap<u64, MemberNode> = (1..=3)
            .map(|i| (i, MemberNode::new(format!("10.0.0.{i}:7182"))))
            .collect();
        nodes.get_mut(&1).unwrap().zk = Some("10.0.0.1:2181".into());
        nodes.insert(4, MemberNode::new("10.0.0.4:7182"));
        let m = openraft::Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes);
        let text = String::from_utf8(zookeeper_config(&m, 0x1000)).unwrap();
        assert_eq!(
            text,
            "server.1=10.0.0.1:7182:7182:participant;10.0.0.1:2181\n\
             server.2=10.0.0.2:7182:7182:participant\n\
             server.3=10.0.0.3:7182:7182:participant\n\
             server.4=10.0.0.4:7182:7182:observer\n\
             version=1000"
        );
        let single = openraft::Membership::new(
            vec![BTreeSet::from([1])],
            BTreeMap::from([(1, MemberNode::new("127.0.0.1:7181"))]),
        );
        assert!(zookeeper_config(&single, 1).is_empty());
    }
}
