//! The log entry: what a write proposes and what applying it returns.
//!
//! Everything apply needs is inside the [`Txn`] — the leader's clock, the
//! session, random session ids and passwords — so every replica computes the
//! same tree from the same log.

use serde::{Deserialize, Serialize};

use crate::error::{Code, ZkError};
use crate::tree::Stat;

/// The largest data a znode may hold, as ZooKeeper's default `jute.maxbuffer`.
pub const MAX_DATA_LEN: usize = 1024 * 1024;

/// ZooKeeper's ACL entry and create modes, from warden-proto's vocabulary.
/// Both are in the txn log as bincode: `Acl` as its three fields in order,
/// `CreateMode` by variant position, as when the server defined them.
pub use warden_proto::vocab::{Acl, CreateMode};

/// One state change. `Multi` holds only create/delete/set_data/check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
        acl: Vec<Acl>,
        mode: CreateMode,
        ttl_ms: i64,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: Option<i32>,
    },
    Check {
        path: String,
        version: Option<i32>,
    },
    Multi(Vec<Op>),
    CreateSession {
        session_id: u64,
        password: Vec<u8>,
        timeout_ms: u32,
    },
    CloseSession {
        session_id: u64,
    },
    /// Deletes the listed containers and TTL nodes that are still eligible at
    /// the txn's time (the leader proposes candidates; apply re-checks).
    Reap {
        paths: Vec<String>,
    },
    /// A client's write (a single op or a multi) with the identities its
    /// connection had: applied only where the nodes' ACLs let them
    /// (`acl::check`, at apply time, so in the log's order). The ops the
    /// server proposes itself come without one, unchecked.
    Authorized {
        auth: Vec<crate::acl::AuthId>,
        op: Box<Op>,
    },
    /// The `Create` or `SetData` inside, with null data (ZooKeeper keeps
    /// `create(path, null)` apart from empty data; the inner op's data is
    /// empty). A wrapper, so that log entries written before it still
    /// decode.
    NullData(Box<Op>),
    /// A client's write (an `Authorized` op) from a member running with
    /// `--enforce-quota`: hard quota limits refuse it with `QuotaExceeded`
    /// (ZooKeeper's `zookeeper.enforceQuota`). In the txn, so every member
    /// decides alike.
    EnforceQuota(Box<Op>),
}

impl Op {
    /// `op` (a `Create` or `SetData`) with null data when `data` is `None`.
    pub fn with_data(op: impl FnOnce(Vec<u8>) -> Op, data: Option<Vec<u8>>) -> Op {
        match data {
            Some(d) => op(d),
            None => Op::NullData(Box::new(op(Vec::new()))),
        }
    }

    /// Bytes of data the op carries, through its wrappers (a client's
    /// writes come `Authorized`, perhaps inside `EnforceQuota`).
    pub fn data_len(&self) -> usize {
        match self {
            Op::Create { data, .. } | Op::SetData { data, .. } => data.len(),
            Op::Multi(ops) => ops.iter().map(Op::data_len).sum(),
            Op::Authorized { op, .. } | Op::NullData(op) | Op::EnforceQuota(op) => op.data_len(),
            _ => 0,
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Delete { .. } => "delete",
            Op::SetData { .. } => "set_data",
            Op::SetAcl { .. } => "set_acl",
            Op::Check { .. } => "check",
            Op::Multi(_) => "multi",
            Op::CreateSession { .. } => "create_session",
            Op::CloseSession { .. } => "close_session",
            Op::Reap { .. } => "reap",
            Op::Authorized { op, .. } => op.name(),
            Op::NullData(op) | Op::EnforceQuota(op) => op.name(),
        }
    }

    /// Checks what can be checked before proposing: paths, data size, TTLs,
    /// which ops a multi may hold. Apply re-checks everything that depends on state.
    pub fn validate(&self) -> Result<(), ZkError> {
        use crate::tree::path::validate_path;
        match self {
            Op::Create {
                path,
                data,
                mode,
                ttl_ms,
                ..
            } => {
                if mode.is_sequential() {
                    validate_path(&format!("{path}0000000000"))?;
                } else {
                    validate_path(path)?;
                }
                check_data(data)?;
                if mode.is_ttl() && *ttl_ms <= 0 {
                    return Err(ZkError::bad_arguments(format!(
                        "{path}: a TTL node needs a TTL above 0 ms"
                    )));
                }
                if !mode.is_ttl() && *ttl_ms != 0 {
                    return Err(ZkError::bad_arguments(format!(
                        "{path}: a TTL was given for a node mode that has none; use a TTL mode"
                    )));
                }
                if *ttl_ms > 0xFF_FFFF_FFFF {
                    return Err(ZkError::bad_arguments(format!("{path}: TTL is too large")));
                }
                Ok(())
            }
            Op::Delete { path, .. } | Op::Check { path, .. } | Op::SetAcl { path, .. } => {
                validate_path(path)
            }
            Op::SetData { path, data, .. } => {
                validate_path(path)?;
                check_data(data)
            }
            Op::Multi(ops) => {
                for op in ops {
                    match op {
                        Op::Create { .. }
                        | Op::Delete { .. }
                        | Op::SetData { .. }
                        | Op::Check { .. }
                        | Op::NullData(_) => op.validate()?,
                        other => {
                            return Err(ZkError::bad_arguments(format!(
                                "a multi may not contain {}",
                                other.name()
                            )))
                        }
                    }
                }
                Ok(())
            }
            Op::CreateSession { .. } | Op::CloseSession { .. } | Op::Reap { .. } => Ok(()),
            Op::Authorized { op, .. } => match **op {
                Op::Authorized { .. } => Err(ZkError::bad_arguments("an authorized op in another")),
                ref op => op.validate(),
            },
            Op::EnforceQuota(op) => match &**op {
                Op::Authorized { .. } => op.validate(),
                _ => Err(ZkError::bad_arguments(
                    "quota enforcement goes around an authorized op",
                )),
            },
            Op::NullData(op) => match &**op {
                Op::Create { data, .. } | Op::SetData { data, .. } if data.is_empty() => {
                    op.validate()
                }
                _ => Err(ZkError::bad_arguments(
                    "null data goes with one create or setData of no data",
                )),
            },
        }
    }
}

fn check_data(data: &[u8]) -> Result<(), ZkError> {
    if data.len() > MAX_DATA_LEN {
        return Err(ZkError::bad_arguments(format!(
            "data is {} bytes; the limit is {MAX_DATA_LEN} bytes (1 MiB)",
            data.len()
        )));
    }
    Ok(())
}

/// A proposal: the operation plus the context apply must not read from the
/// environment (the proposing session and the leader's wall clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Txn {
    pub session_id: u64,
    pub time_ms: i64,
    pub op: Op,
}

/// How many low bits of a zxid number a txn within its log entry.
pub const BATCH_BITS: u32 = 12;
/// The most txns one log entry carries.
pub const MAX_BATCH: usize = 1 << BATCH_BITS;

/// The zxid of the `pos`-th txn of the entry at log `index`: strictly
/// increasing in log order, unique per txn.
pub fn zxid(index: u64, pos: usize) -> i64 {
    ((index << BATCH_BITS) | pos as u64) as i64
}

/// A log entry's payload: the txns the proposer gathered while the previous
/// entry was being made durable (group commit above consensus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnBatch(pub Vec<Txn>);

impl TxnBatch {
    /// Bytes of data the batch carries, to bound an entry's size.
    pub fn data_len(txn: &Txn) -> usize {
        txn.op.data_len()
    }
}

/// What a successful op produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    Stat(Stat),
    Checked,
    Multi(Vec<Outcome>),
    SessionCreated {
        session_id: u64,
        password: Vec<u8>,
        timeout_ms: u32,
    },
    SessionClosed,
    Reaped(Vec<String>),
}

/// A failed txn. For a multi, `multi` holds each op's code: ops before the
/// failing one `Ok`, the failing one its error, the rest `RuntimeInconsistency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnError {
    pub error: ZkError,
    pub multi: Vec<Code>,
}

impl From<ZkError> for TxnError {
    fn from(error: ZkError) -> Self {
        TxnError {
            error,
            multi: Vec::new(),
        }
    }
}

/// The state machine's answer to one log entry: its zxid and result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnResponse {
    pub zxid: i64,
    pub result: Result<Outcome, TxnError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_oversized_data_and_bad_multi() {
        let big = Op::SetData {
            path: "/a".into(),
            data: vec![0; MAX_DATA_LEN + 1],
            version: None,
        };
        assert_eq!(big.validate().unwrap_err().code, Code::BadArguments);
        let ok = Op::SetData {
            path: "/a".into(),
            data: vec![0; MAX_DATA_LEN],
            version: None,
        };
        assert!(ok.validate().is_ok());
        let nested = Op::Multi(vec![Op::Multi(vec![])]);
        assert_eq!(nested.validate().unwrap_err().code, Code::BadArguments);
        let seq = Op::Create {
            path: "/q/".into(),
            data: vec![],
            acl: vec![],
            mode: CreateMode::PersistentSequential,
            ttl_ms: 0,
        };
        assert!(seq.validate().is_ok());
    }

    /// The txn log and snapshots hold Acl, CreateMode and Stat as bincode;
    /// these are the bytes they had when the server defined the types, so
    /// a change to warden-proto's vocabulary cannot change the format unseen.
    #[test]
    fn vocabulary_keeps_its_log_and_snapshot_encoding() {
        let acl = bincode::serialize(&Acl::open()).unwrap();
        let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 31, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"world");
        want.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(b"anyone");
        assert_eq!(acl, want);
        for (i, mode) in CreateMode::ALL.iter().enumerate() {
            assert_eq!(bincode::serialize(mode).unwrap(), vec![i as u8, 0, 0, 0]);
        }
        assert_eq!(CreateMode::ALL[6], CreateMode::PersistentSequentialWithTtl);
        let stat = Stat {
            czxid: 1,
            mzxid: -2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: -6,
            aversion: 7,
            ephemeral_owner: u64::MAX - 3,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut want = Vec::new();
        want.extend_from_slice(&1i64.to_le_bytes());
        want.extend_from_slice(&(-2i64).to_le_bytes());
        want.extend_from_slice(&3i64.to_le_bytes());
        want.extend_from_slice(&4i64.to_le_bytes());
        want.extend_from_slice(&5i32.to_le_bytes());
        want.extend_from_slice(&(-6i32).to_le_bytes());
        want.extend_from_slice(&7i32.to_le_bytes());
        want.extend_from_slice(&(u64::MAX - 3).to_le_bytes());
        want.extend_from_slice(&9i32.to_le_bytes());
        want.extend_from_slice(&10i32.to_le_bytes());
        want.extend_from_slice(&11i64.to_le_bytes());
        assert_eq!(bincode::serialize(&stat).unwrap(), want);
        assert_eq!(want.len(), 68);
    }
}
