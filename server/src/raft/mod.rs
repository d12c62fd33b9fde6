//! Consensus: openraft's type config, the [`proposer`] (the one way into
//! the log: batching, and forwarding once there are peers), the
//! [`log_store`] over a storage engine, the [`state_machine`] adapter over
//! the `DataTree`, and the ensemble: the peer [`network`] (client side) and
//! [`peer_service`] (server side), [`forward`]ing a follower's writes to the
//! leader, and the [`cluster`] id that keeps ensembles apart.
//!
//! A single server is a one-voter cluster; writes take the same path as they
//! will in an ensemble.

// openraft's storage traits fix `StorageError` as the error type.
#![allow(clippy::result_large_err)]

pub mod cluster;
pub mod forward;
pub mod log_store;
pub mod network;
pub mod peer_service;
pub mod proposer;
pub mod state_machine;
#[cfg(test)]
mod storage_suite;

use std::io::Cursor;

use crate::txn::{TxnBatch, TxnResponse};

openraft::declare_raft_types!(
    /// Warden's openraft configuration: batches of txns in, their responses out.
    pub TypeConfig:
        D = TxnBatch,
        R = Vec<TxnResponse>,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The running consensus node.
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type StorageError = openraft::StorageError<u64>;

/// A storage failure as openraft takes it: what was being read or
/// written, with the typed error (and its message) as the source. The one
/// place storage errors cross into consensus.
pub fn storage_error(
    subject: openraft::ErrorSubject<u64>,
    verb: openraft::ErrorVerb,
    e: &crate::storage::StorageError,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, e).into()
}
