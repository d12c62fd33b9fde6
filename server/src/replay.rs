//! Offline replay: rebuild the tree from a data folder's snapshot and log,
//! exactly as a starting server would, and report its state hash. Tests use
//! it to check that what a server serves equals a replay of what it logged.

use std::path::Path;

use openraft::Entry;

use crate::error::StartupError;
use crate::raft::log_store::{open_wal, recover};
use crate::raft::state_machine::{apply_entry, load_snapshot, SmState};
use crate::raft::{LogId, TypeConfig};
use crate::storage::{DataDir, Durability, StorageError};

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub last_applied: u64,
    pub state_hash: u64,
    pub znodes: usize,
    pub sessions: usize,
}

/// Replays `dir` up to `upto` (default: the last committed entry).
pub fn replay(dir: &Path, upto: Option<u64>) -> Result<ReplayReport, StartupError> {
    let data = DataDir::open(dir, Durability::default())?;
    let shown = dir.display().to_string();
    let storage = |e| StartupError::storage(&shown, e);
    let snap = load_snapshot(&data).map_err(storage)?;
    let mut wal = open_wal(&data).map_err(storage)?;
    recover(
        &data,
        &mut wal,
        snap.as_ref()
            .and_then(|(m, _)| m.last_log_id.map(|l| l.index)),
    )
    .map_err(storage)?;
    let mut st = match snap {
        Some((_, bytes)) => {
            let mut st: SmState = bincode::deserialize(&bytes)
                .map_err(|e| storage(StorageError::Corrupt(format!("snapshot data: {e}"))))?;
            st.tree.rebuild_indexes();
            st
        }
        None => SmState::default(),
    };
    let committed = data.read_watermark::<LogId>(|l| l.index);
    let end = match wal.last_index() {
        Some(last) => upto.or(committed.map(|c| c.index)).unwrap_or(0).min(last),
        None => 0,
    };
    let start = st
        .last_applied
        .map(|l| l.index + 1)
        .unwrap_or(0)
        .max(wal.first_index());
    for i in (start..=end).filter(|_| wal.last_index().is_some()) {
        let bytes = wal.read(i).map_err(storage)?;
        let e: Entry<TypeConfig> = bincode::deserialize(&bytes)
            .map_err(|e| storage(StorageError::Corrupt(format!("log entry {i}: {e}"))))?;
        apply_entry(&mut st, e, &mut |_, _, _| {});
    }
    Ok(ReplayReport {
        last_applied: st.last_applied.map(|l| l.index).unwrap_or(0),
        state_hash: st.tree.state_hash(),
        znodes: st.tree.node_count(),
        sessions: st.tree.session_count(),
    })
}
