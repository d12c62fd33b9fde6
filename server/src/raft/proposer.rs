//! The one way writes enter the log, with group commit.
//!
//! openraft 0.9 makes each log append durable before it takes the next
//! client write, so one write per entry would mean one fsync per write. The
//! proposer therefore gathers every txn submitted while earlier entries are
//! being made durable into one entry (a [`TxnBatch`]); each txn keeps its own
//! zxid (see [`crate::txn::zxid`]). Txns leave the queue in submission order,
//! so a session's writes stay in order.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Code, ZkError};
use crate::raft::Raft;
use crate::txn::{Op, Txn, TxnBatch, TxnResponse, MAX_BATCH};

/// Entries in flight at once: one being flushed, one being gathered.
const IN_FLIGHT: usize = 2;
/// A batch stops growing past this much data.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// A submitted write's pending result.
pub type WriteReceiver = oneshot::Receiver<Result<TxnResponse, ZkError>>;

type Submission = (Txn, oneshot::Sender<Result<TxnResponse, ZkError>>);

/// Submits txns to consensus and maps its failures to ZooKeeper codes.
#[derive(Clone)]
pub struct Proposer {
    pub raft: Raft,
    tx: mpsc::UnboundedSender<Submission>,
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
    /// Starts the batching task.
    pub fn start(raft: Raft) -> Proposer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(batcher(raft.clone(), rx));
        Proposer { raft, tx }
    }

    /// Queues a txn without waiting. Calls from one task reach the log in
    /// call order, which is what keeps a session's writes in order.
    pub fn submit(&self, session_id: u64, op: Op) -> Result<WriteReceiver, ZkError> {
        let txn = Txn {
            session_id,
            time_ms: now_ms(),
            op,
        };
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((txn, tx))
            .map_err(|_| ZkError::new(Code::ConnectionLoss, "the server is shutting down"))?;
        Ok(rx)
    }

    /// Waits for a submitted txn's result.
    pub async fn wait(rx: WriteReceiver) -> Result<TxnResponse, ZkError> {
        rx.await.unwrap_or_else(|_| {
            Err(ZkError::new(
                Code::ConnectionLoss,
                "the server is shutting down",
            ))
        })
    }

    /// Submits and waits.
    pub async fn propose(&self, session_id: u64, op: Op) -> Result<TxnResponse, ZkError> {
        Self::wait(self.submit(session_id, op)?).await
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

async fn batcher(raft: Raft, mut rx: mpsc::UnboundedReceiver<Submission>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Wait for a slot first: whatever arrives meanwhile joins this batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut bytes = TxnBatch::data_len(&first.0);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(s) => {
                    bytes += TxnBatch::data_len(&s.0);
                    batch.push(s);
                }
                Err(_) => break,
            }
        }
        let (txns, senders): (Vec<Txn>, Vec<_>) = batch.into_iter().unzip();
        match raft.client_write_ff(TxnBatch(txns)).await {
            Ok(result) => {
                tokio::spawn(async move {
                    let out = result.await;
                    drop(permit);
                    match out {
                        Ok(Ok(resp)) => {
                            let mut results = resp.data.into_iter();
                            for s in senders {
                                let r = results.next().ok_or_else(|| {
                                    ZkError::new(Code::SystemError, "a txn had no result")
                                });
                                let _ = s.send(r);
                            }
                        }
                        Ok(Err(e)) => {
                            let e = write_error(e);
                            for s in senders {
                                let _ = s.send(Err(e.clone()));
                            }
                        }
                        Err(_) => {
                            for s in senders {
                                let _ = s.send(Err(ZkError::new(
                                    Code::ConnectionLoss,
                                    "the server is shutting down",
                                )));
                            }
                        }
                    }
                });
            }
            Err(e) => {
                let e = ZkError::new(Code::SystemError, format!("consensus has stopped: {e}"));
                for s in senders {
                    let _ = s.send(Err(e.clone()));
                }
            }
        }
    }
}
