//! The one way writes enter the log, with group commit.
//!
//! openraft 0.9 makes each log append durable before it takes the next
//! client write, so one write per entry would mean one fsync per write. The
//! proposer therefore gathers every txn submitted while earlier entries are
//! being made durable into one entry (a [`TxnBatch`]); each txn keeps its own
//! zxid (see [`crate::txn::zxid`]). Txns leave the queue in submission order,
//! so a session's writes stay in order.
//!
//! In an ensemble, a member that is not the leader hands its batches to the
//! [`Forwarder`], which sends them to the leader in the same order.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::forward::{self, Batch, Forwarder};
use super::network::Peers;
use super::state_machine::Shared;
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
    /// The ensemble's peers; `None` for an ensemble of one.
    peers: Option<Peers>,
    shared: Arc<Shared>,
}

/// The leader's wall clock in ms, recorded in each txn (ctime, mtime, TTLs).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn write_error(e: ClientWriteError<u64, super::member::MemberNode>) -> ZkError {
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
    /// Starts the batching task (and, in an ensemble, the forwarder).
    pub fn start(raft: Raft, shared: Arc<Shared>, peers: Option<Peers>) -> Proposer {
        let (tx, rx) = mpsc::unbounded_channel();
        let forwarder = peers.clone().map(|p| {
            (
                p.identity.me,
                Forwarder::start(raft.clone(), p, shared.clone()),
            )
        });
        tokio::spawn(batcher(raft.clone(), forwarder, rx, shared.clone()));
        Proposer {
            raft,
            tx,
            peers,
            shared,
        }
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
    /// write committed before the call (on a follower: the leader's read
    /// index, then this member's apply).
    pub async fn sync(&self) -> Result<(), ZkError> {
        if let Some(peers) = &self.peers {
            if self.raft.metrics().borrow().current_leader != Some(peers.identity.me) {
                return self.sync_through_leader(peers).await;
            }
        }
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

impl Proposer {
    async fn sync_through_leader(&self, peers: &Peers) -> Result<(), ZkError> {
        let lost = |why: String| ZkError::new(Code::ConnectionLoss, format!("sync failed: {why}"));
        let (id, addr) = forward::leader(&self.raft, forward::LEADER_WAIT)
            .await
            .ok_or_else(|| lost("no leader".into()))?;
        let mut client = peers.client(&addr).map_err(|e| lost(e.to_string()))?;
        let reply = tokio::time::timeout(
            forward::LEADER_WAIT,
            client.read_index(peers.identity.header()),
        )
        .await
        .map_err(|_| lost(format!("the leader (member {id}) did not answer")))?
        .map_err(|s| lost(s.message().to_string()))?
        .into_inner();
        if reply.error != 0 {
            return Err(ZkError::new(Code::from_number(reply.error), reply.message));
        }
        if self
            .shared
            .wait_applied(reply.index, forward::LEADER_WAIT)
            .await
        {
            Ok(())
        } else {
            Err(lost("this member did not catch up in time".into()))
        }
    }
}

/// Proposes a batch on this member (the leader) and hands each txn its
/// result; a batch refused because leadership moved was not appended.
///
/// `ensemble_me`: in an ensemble, this member's id. A leader that loses its
/// majority meanwhile cannot commit the batch until the partition heals
/// (and openraft 0.9 does not make it step down), so its writers are told
/// at once that the outcome is unknown rather than left waiting.
pub async fn write_local(raft: Raft, b: Batch, ensemble_me: Option<u64>) {
    let Batch {
        txns,
        replies,
        permit,
    } = b;
    match raft.client_write_ff(TxnBatch(txns)).await {
        Ok(result) => {
            tokio::spawn(async move {
                let out = match ensemble_me {
                    None => result.await,
                    Some(me) => tokio::select! {
                        out = result => out,
                        () = quorum_lost(&raft, me) => {
                            drop(permit);
                            let e = ZkError::new(
                                Code::ConnectionLoss,
                                "this member leads but lost contact with a majority; the write may or may not be applied once the partition heals",
                            );
                            forward::fail_all(replies, &e);
                            return;
                        }
                    },
                };
                drop(permit);
                match out {
                    Ok(Ok(resp)) => {
                        let mut results = resp.data.into_iter();
                        for s in replies {
                            let r = results.next().ok_or_else(|| {
                                ZkError::new(Code::SystemError, "a txn had no result")
                            });
                            let _ = s.send(r);
                        }
                    }
                    Ok(Err(e)) => forward::fail_all(replies, &write_error(e)),
                    Err(_) => forward::fail_all(
                        replies,
                        &ZkError::new(Code::ConnectionLoss, "the server is shutting down"),
                    ),
                }
            });
        }
        Err(e) => {
            let e = ZkError::new(Code::SystemError, format!("consensus has stopped: {e}"));
            forward::fail_all(replies, &e);
        }
    }
}

/// Resolves once this member no longer leads with a majority's recent
/// acknowledgement (checked every heartbeat interval).
async fn quorum_lost(raft: &Raft, me: u64) {
    let mut tick = tokio::time::interval(Duration::from_millis(super::HEARTBEAT_MS));
    loop {
        tick.tick().await;
        if !super::leads_with_quorum(raft, me, true) {
            return;
        }
    }
}

async fn batcher(
    raft: Raft,
    forwarder: Option<(u64, Forwarder)>,
    mut rx: mpsc::UnboundedReceiver<Submission>,
    shared: Arc<Shared>,
) {
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
        let (txns, replies): (Vec<Txn>, Vec<_>) = batch.into_iter().unzip();
        let b = Batch {
            txns,
            replies,
            permit,
        };
        // Held while leadership is handed off; kept until the batch is in
        // the log (or forwarded).
        let _pass = shared.hold.pass().await;
        match &forwarder {
            Some((me, f)) if raft.metrics().borrow().current_leader != Some(*me) => f.send(b),
            Some((me, _)) if !super::leads_with_quorum(&raft, *me, true) => {
                tracing::debug!(
                    millis_since_quorum_ack = ?raft.metrics().borrow().millis_since_quorum_ack,
                    "refused a batch: leading without a majority's recent acknowledgement"
                );
                b.fail(ZkError::new(
                    Code::ConnectionLoss,
                    "this member leads but has lost contact with a majority; the write was not applied; try another member",
                ))
            }
            _ => write_local(raft.clone(), b, forwarder.as_ref().map(|(me, _)| *me)).await,
        }
    }
}
