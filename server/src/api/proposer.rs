//! Submits txns to consensus and maps its failures to ZooKeeper codes.

use std::time::{SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;

use crate::error::{Code, ZkError};
use crate::raft::{Raft, TypeConfig};
use crate::txn::{Op, Txn, TxnResponse};

/// A submitted write's pending result.
pub type WriteReceiver = tokio::sync::oneshot::Receiver<
    Result<ClientWriteResponse<TypeConfig>, ClientWriteError<u64, openraft::BasicNode>>,
>;

/// The one way writes enter the log.
#[derive(Clone)]
pub struct Proposer {
    pub raft: Raft,
}

/// The leader's wall clock in ms, recorded in each txn (ctime, mtime, TTLs).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn write_error(e: ClientWriteError<u64, openraft::BasicNode>) -> ZkError {
    match e {
        ClientWriteError::ForwardToLeader(f) => ZkError::new(
            Code::ConnectionLoss,
            format!(
                "this server is not the leader (leader: {:?}); reconnect",
                f.leader_id
            ),
        ),
        ClientWriteError::ChangeMembershipError(e) => {
            ZkError::new(Code::SystemError, e.to_string())
        }
    }
}

impl Proposer {
    /// Queues a txn in the log without waiting. Calls from one task are
    /// logged in call order, which is what keeps a session's writes in order.
    pub async fn submit(&self, session_id: u64, op: Op) -> Result<WriteReceiver, ZkError> {
        let txn = Txn {
            session_id,
            time_ms: now_ms(),
            op,
        };
        self.raft
            .client_write_ff(txn)
            .await
            .map_err(|e| ZkError::new(Code::SystemError, format!("consensus has stopped: {e}")))
    }

    /// Waits for a submitted txn's result.
    pub async fn wait(rx: WriteReceiver) -> Result<TxnResponse, ZkError> {
        match rx.await {
            Ok(Ok(r)) => Ok(r.data),
            Ok(Err(e)) => Err(write_error(e)),
            Err(_) => Err(ZkError::new(
                Code::ConnectionLoss,
                "the server is shutting down",
            )),
        }
    }

    /// Submits and waits.
    pub async fn propose(&self, session_id: u64, op: Op) -> Result<TxnResponse, ZkError> {
        Self::wait(self.submit(session_id, op).await?).await
    }

    /// A linearizable point: returns once this server has applied every
    /// write committed before the call.
    pub async fn sync(&self) -> Result<(), ZkError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(e)) => Err(ZkError::new(
                Code::ConnectionLoss,
                format!("sync failed: {e}"),
            )),
            Err(RaftError::Fatal(e)) => Err(ZkError::new(
                Code::SystemError,
                format!("consensus has stopped: {e}"),
            )),
        }
    }
}
