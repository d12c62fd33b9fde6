//! Offline replay: rebuild the tree from a data folder's snapshot and log,
//! exactly as a starting server would, and report its state hash. Tests use
//! it to check that what a server serves equals a replay of what it logged.

use std::path::Path;

use openraft::Entry;

use crate::error::StartupError;
use crate::raft::log_store::{read_durable, recover};
use crate::raft::state_machine::{apply_entry, decode_state, load_snapshot, SmState};
use crate::raft::TypeConfig;
use crate::storage::{DiskEngine, Durability, Engine, StorageError};

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
    let engine = DiskEngine::open(dir, Durability::default())?;
    let shown = dir.display().to_string();
    let storage = |e| StartupError::storage(&shown, e);
    let snap = load_snapshot(&engine).map_err(storage)?;
    recover(
        &engine,
        snap.as_ref()
            .and_then(|(m, _)| m.last_log_id.map(|l| l.index)),
    )
    .map_err(storage)?;
    let mut st = match snap {
        Some((_, bytes)) => {
            let mut st = decode_state(&bytes).map_err(storage)?;
            st.tree.rebuild_indexes();
            st
        }
        None => SmState::default(),
    };
    let committed = read_durable(&engine);
    let start = st.last_applied.map(|l| l.index + 1).unwrap_or(0);
    let end = match engine.last_index() {
        Some(last) => upto.or(committed.map(|c| c.index)).unwrap_or(0).min(last),
        None => return Ok(report(&st)),
    };
    for (i, bytes) in engine.read_range(start..end + 1).map_err(storage)? {
        let e: Entry<TypeConfig> = bincode::deserialize(&bytes)
            .map_err(|e| storage(StorageError::Corrupt(format!("log entry {i}: {e}"))))?;
        apply_entry(&mut st, e, &mut |_, _, _| {});
    }
    Ok(report(&st))
}

fn report(st: &SmState) -> ReplayReport {
    ReplayReport {
        last_applied: st.last_applied.map(|l| l.index).unwrap_or(0),
        state_hash: st.tree.state_hash(),
        znodes: st.tree.node_count(),
        sessions: st.tree.session_count(),
    }
}
