//! Offline replay: rebuild the tree from a data folder's snapshot and log,
//! exactly as a starting server would, and report its state hash. Tests use
//! it to check that what a server serves equals a replay of what it logged.

use std::path::Path;

use openraft::Entry;

use crate::raft::log_store::verify;
use crate::raft::state_machine::{apply_entry, load_snapshot, SmState};
use crate::raft::store::{decode, index_key, Store};
use crate::raft::{LogId, TypeConfig};

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub last_applied: u64,
    pub state_hash: u64,
    pub znodes: usize,
    pub sessions: usize,
}

/// Replays `dir` up to `upto` (default: the last committed entry).
pub fn replay(dir: &Path, upto: Option<u64>) -> Result<ReplayReport, String> {
    let store = Store::open(dir).map_err(|e| e.to_string())?;
    let snap = load_snapshot(&store)?;
    verify(
        &store,
        snap.as_ref()
            .and_then(|(m, _)| m.last_log_id.map(|l| l.index)),
    )?;
    let mut st = match snap {
        Some((_, bytes)) => {
            let mut st: SmState =
                bincode::deserialize(&bytes).map_err(|e| format!("snapshot: {e}"))?;
            st.tree.rebuild_indexes();
            st
        }
        None => SmState::default(),
    };
    let committed: Option<Option<LogId>> = store.get_meta("committed")?;
    let end = upto.or(committed.flatten().map(|c| c.index)).unwrap_or(0);
    let start = st.last_applied.map(|l| l.index + 1).unwrap_or(0);
    if end >= start {
        for item in store.logs.range(index_key(start)..=index_key(end)) {
            let (_, v) = item.map_err(|e| e.to_string())?;
            let e: Entry<TypeConfig> = decode(&v)?;
            apply_entry(&mut st, e, &mut |_, _, _| {});
        }
    }
    Ok(ReplayReport {
        last_applied: st.last_applied.map(|l| l.index).unwrap_or(0),
        state_hash: st.tree.state_hash(),
        znodes: st.tree.node_count(),
        sessions: st.tree.session_count(),
    })
}
