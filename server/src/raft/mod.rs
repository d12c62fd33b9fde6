//! Consensus: openraft's type config, the [`proposer`] (the one way into
//! the log: batching, and forwarding once there are peers), the
//! [`log_store`] over a storage engine, the [`state_machine`] adapter over
//! the `DataTree`, and the ensemble: the peer [`network`] (client side) and
//! [`peer_service`] (server side), [`forward`]ing a follower's writes to the
//! leader, the [`cluster`] id that keeps ensembles apart, and the
//! [`election`] driver with its pre-vote.
//!
//! A single server is a one-voter cluster; writes take the same path as they
//! will in an ensemble.

// openraft's storage traits fix `StorageError` as the error type.
#![allow(clippy::result_large_err)]

pub mod cluster;
pub mod election;
pub mod forward;
pub mod hold;
pub mod log_store;
pub mod member;
pub mod membership;
pub mod network;
pub mod peer_service;
pub mod proposer;
pub mod state_machine;
#[cfg(test)]
mod storage_suite;

use crate::txn::{TxnBatch, TxnResponse};

openraft::declare_raft_types!(
    /// Warden's openraft configuration: batches of txns in, their responses out.
    pub TypeConfig:
        D = TxnBatch,
        R = Vec<TxnResponse>,
        NodeId = u64,
        Node = member::MemberNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::storage::snapshot::SnapshotData,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The running consensus node.
pub type Raft = openraft::Raft<TypeConfig>;

/// Raft's timing: a leader sends heartbeats this often, and a follower
/// that hears none for a random time between the two election timeouts
/// starts an election.
pub const HEARTBEAT_MS: u64 = 100;
pub const ELECTION_TIMEOUT_MIN_MS: u64 = 300;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 600;

/// openraft's leader lease in an ensemble (it is openraft's
/// `election_timeout_max`): how long a member refuses to vote after hearing
/// from a leader. Elections are decided by our pre-vote
/// ([`election`]), which waits longer, so the lease is kept short: it is
/// what a planned hand-off must wait out ([`membership`]).
pub const LEASE_MS: u64 = 150;

/// Whether this member leads and a majority has acknowledged it within an
/// election timeout. openraft 0.9 keeps an isolated leader leading (it
/// cannot step down), so the proposer refuses new writes on a leader
/// without a quorum rather than letting them wait forever, and only a
/// leader with a quorum expires sessions.
pub fn leads_with_quorum(raft: &Raft, me: u64, ensemble: bool) -> bool {
    let m = raft.metrics();
    let m = m.borrow();
    m.current_leader == Some(me)
        // None right after an election, which itself took a majority.
        && (!ensemble
            || m
                .millis_since_quorum_ack
                .is_none_or(|ms| ms <= ELECTION_TIMEOUT_MAX_MS))
}
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
