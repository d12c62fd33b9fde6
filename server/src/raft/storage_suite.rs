//! openraft's own storage test suite, run against Warden's log store and
//! state machine on both storage engines: the data folder (segment log,
//! snapshot file) and the in-memory engine.
//!
//! Each test of the suite runs on its own fresh store. One is ignored:
//! after the store purged its (empty) log up to the state machine's last
//! applied entry, it appends an entry below the purge point — which
//! openraft's in-memory example store allows, a running Raft node never
//! does, and Warden's logs refuse (`StorageError::Sequence`).

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::raft::log_store::{recover, LogStore};
use crate::raft::state_machine::{Shared, StateMachine};
use crate::raft::{StorageError, TypeConfig};
use crate::storage::{DiskEngine, Durability, Engine, MemoryEngine};
use openraft::testing::{StoreBuilder, Suite};

/// A store over a data folder in a temporary directory.
struct DiskBuilder;

/// A store over the in-memory engine.
struct MemoryBuilder;

/// `inline`: barriers run in the append when the flush thread is idle (as
/// the server has them), else always on the thread; the disk store tries the
/// first, the memory store the second.
fn stores(engine: Arc<dyn Engine>, inline: bool) -> (LogStore, StateMachine) {
    recover(&*engine, None).expect("recover");
    let metrics = Arc::new(Metrics::new());
    let shared = Shared::new(metrics.clone());
    let sm = StateMachine::open(engine.clone(), None, shared).expect("state machine");
    (LogStore::new(engine, metrics, inline), sm)
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for DiskBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let tmp = tempfile::tempdir().expect("temp dir");
        let engine = DiskEngine::open(tmp.path(), Durability::default()).expect("data dir");
        let (log, sm) = stores(Arc::new(engine), true);
        Ok((tmp, log, sm))
    }
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for MemoryBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError> {
        let (log, sm) = stores(Arc::new(MemoryEngine::new()), false);
        Ok(((), log, sm))
    }
}

type Disk = Suite<TypeConfig, LogStore, StateMachine, DiskBuilder, tempfile::TempDir>;
type Memory = Suite<TypeConfig, LogStore, StateMachine, MemoryBuilder, ()>;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(f)
}

/// One `#[test]` per test of the suite and engine, each on a fresh store.
macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {
        mod disk {
            use super::*;
            $(
                #[test]
                fn $name() -> Result<(), StorageError> {
                    block_on(async {
                        let (_dir, log, sm) = DiskBuilder.build().await?;
                        Disk::$name(log, sm).await
                    })
                }
            )*
        }
        mod memory {
            use super::*;
            $(
                #[test]
                fn $name() -> Result<(), StorageError> {
                    block_on(async {
                        let (_, log, sm) = MemoryBuilder.build().await?;
                        Memory::$name(log, sm).await
                    })
                }
            )*
        }
    };
}

suite_tests!(
    last_membership_in_log_initial,
    last_membership_in_log,
    last_membership_in_log_multi_step,
    get_membership_initial,
    get_membership_from_log_and_empty_sm,
    get_membership_from_empty_log_and_sm,
    get_membership_from_log_le_sm_last_applied,
    get_membership_from_log_gt_sm_last_applied_1,
    get_membership_from_log_gt_sm_last_applied_2,
    get_initial_state_without_init,
    get_initial_state_with_state,
    get_initial_state_last_log_gt_sm,
    get_initial_state_last_log_lt_sm,
    get_initial_state_log_ids,
    get_initial_state_re_apply_committed,
    save_vote,
    get_log_entries,
    limited_get_log_entries,
    try_get_log_entry,
    initial_logs,
    get_log_state,
    get_log_id,
    last_id_in_log,
    last_applied_state,
    purge_logs_upto_0,
    purge_logs_upto_5,
    purge_logs_upto_20,
    delete_logs_since_11,
    delete_logs_since_0,
    append_to_log,
    snapshot_meta,
    apply_single,
    apply_multiple,
);

#[test]
#[ignore = "appends below the purge point, which Warden's logs refuse (see the top of this file)"]
fn get_initial_state_membership_from_log_and_sm() -> Result<(), StorageError> {
    block_on(async {
        let (_dir, log, sm) = DiskBuilder.build().await?;
        Disk::get_initial_state_membership_from_log_and_sm(log, sm).await
    })
}

/// A snapshot built on one store installs on another.
#[test]
fn transfer_snapshot() -> Result<(), StorageError> {
    block_on(Disk::transfer_snapshot(&DiskBuilder))?;
    block_on(Memory::transfer_snapshot(&MemoryBuilder))
}
