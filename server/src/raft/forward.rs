//! Forwarding: on a follower, the proposer's batches go to the leader over
//! one long-lived stream (`Peer.Forward`), in order, and their results come
//! back by sequence number. A result is handed to the waiting sessions
//! only once this member has applied the entry, so a session reads its own
//! writes and sees the write's watch events before its reply.
//!
//! A batch is never sent twice unless the leader said it appended nothing
//! (it no longer led, as after a hand-off): such a batch goes to the next
//! leader before any later one. One that was sent but whose result never
//! came (the leader died, the link broke) fails with `ConnectionLoss`: it
//! may or may not have been applied, as with ZooKeeper. One that was not
//! sent yet waits (up to [`LEADER_WAIT`]) for a leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use warden_proto::peer as pb;

use super::network::Peers;
use super::state_machine::Shared;
use super::Raft;
use crate::error::{Code, ZkError};
use crate::txn::{Txn, TxnResponse};

/// How long a write waits for a leader before it fails.
pub const LEADER_WAIT: Duration = Duration::from_secs(5);

/// How long a forwarded write's reply waits for this member to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// Why the leader did not answer a forwarded batch with results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardError {
    /// The member was not (or no longer) the leader: nothing was appended.
    NotLeader(u64),
    Failed(String),
}

/// Where one txn's result goes.
pub type Reply = oneshot::Sender<Result<TxnResponse, ZkError>>;

/// A batch of txns to propose, with where each result goes and the
/// proposer's in-flight slot, released when the results are delivered.
pub struct Batch {
    pub txns: Vec<Txn>,
    pub replies: Vec<Reply>,
    pub permit: OwnedSemaphorePermit,
}

impl Batch {
    pub fn fail(self, e: ZkError) {
        fail_all(self.replies, &e);
    }
}

/// Answers every txn of a batch with the same error.
pub fn fail_all(replies: Vec<Reply>, e: &ZkError) {
    for r in replies {
        let _ = r.send(Err(e.clone()));
    }
}

/// The current leader: its id and peer address, waiting up to `timeout`
/// for one.
pub async fn leader(raft: &Raft, timeout: Duration) -> Option<(u64, String)> {
    let m = raft
        .wait(Some(timeout))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .ok()?;
    let id = m.current_leader?;
    let addr = m.membership_config.membership().get_node(&id)?.peer.clone();
    Some((id, addr))
}

/// Hands batches to the forwarding task.
#[derive(Clone)]
pub struct Forwarder {
    tx: mpsc::UnboundedSender<Batch>,
}

impl Forwarder {
    pub fn start(raft: Raft, peers: Peers, shared: Arc<Shared>) -> Forwarder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, peers, shared, rx));
        Forwarder { tx }
    }

    /// Queues a batch for the leader (in order with the ones before it).
    pub fn send(&self, b: Batch) {
        if let Err(mpsc::error::SendError(b)) = self.tx.send(b) {
            b.fail(ZkError::new(
                Code::ConnectionLoss,
                "the server is shutting down",
            ));
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, Batch>>>;

/// Batches a leader refused (it no longer led), by sequence number.
type Refused = Arc<Mutex<std::collections::BTreeMap<u64, Batch>>>;

/// The stream to one leader.
struct Link {
    leader: u64,
    tx: mpsc::Sender<pb::ForwardBatch>,
    pending: Pending,
    /// Batches the leader refused because it no longer led (nothing was
    /// appended), by sequence: sent again, first and in order, to the next
    /// leader.
    refused: Refused,
    next_seq: u64,
}

impl Link {
    fn alive(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Waits (until `deadline`) for every batch sent on this link to be
    /// answered, then takes the refused ones, oldest first. Later batches
    /// must not overtake them on the way to the next leader: a session's
    /// writes stay in order across a change of leader.
    async fn settle(&self, deadline: tokio::time::Instant) -> Vec<Batch> {
        while !self.pending.lock().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        std::mem::take(&mut *self.refused.lock())
            .into_values()
            .collect()
    }
}

async fn run(
    raft: Raft,
    peers: Peers,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Batch>,
) {
    let me = peers.identity.me;
    let mut link: Option<Link> = None;
    // Batches to send before the next one from `rx`: refused ones, in order.
    let mut queue: std::collections::VecDeque<Batch> = Default::default();
    // Rung when a leader refuses a batch, which must not wait for the next
    // write to be sent again.
    let refusal = Arc::new(tokio::sync::Notify::new());
    loop {
        let batch = match queue.pop_front() {
            Some(b) => b,
            None => tokio::select! {
                b = rx.recv() => match b {
                    Some(b) => b,
                    None => return,
                },
                () = refusal.notified() => {
                    if let Some(old) = link.take() {
                        // Sent again once this member knows the next leader.
                        let _ = raft
                            .wait(Some(Duration::from_secs(1)))
                            .metrics(|m| m.current_leader != Some(old.leader), "another leader")
                            .await;
                        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
                        queue.extend(old.settle(deadline).await);
                    }
                    continue;
                }
            },
        };
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut batch = Some(batch);
        while let Some(b) = batch.take() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some((id, addr)) = leader(&raft, left).await else {
                b.fail(ZkError::new(
                    Code::ConnectionLoss,
                    "no leader was elected in time; the write was not applied",
                ));
                break;
            };
            let current = link.as_ref().is_some_and(|l| l.leader == id && l.alive());
            if !current {
                if let Some(old) = link.take() {
                    // What the old leader refused goes first, in order.
                    let refused = old.settle(deadline).await;
                    if !refused.is_empty() {
                        tracing::debug!(
                            batches = refused.len(),
                            leader = id,
                            "sending writes the previous leader refused to the new one"
                        );
                        queue.push_front(b);
                        for r in refused.into_iter().rev() {
                            queue.push_front(r);
                        }
                        break;
                    }
                }
            }
            if id == me {
                // Elected meanwhile: propose here.
                super::proposer::write_local(raft.clone(), b, Some(me)).await;
                break;
            }
            if !current {
                link = match open(&peers, &shared, id, &addr, refusal.clone()).await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        tracing::debug!(leader = id, %addr, error = %e, "cannot reach the leader; retrying");
                        if tokio::time::Instant::now() >= deadline {
                            b.fail(ZkError::new(
                                Code::ConnectionLoss,
                                format!("the leader (member {id}) cannot be reached; the write was not applied"),
                            ));
                        } else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            batch = Some(b);
                        }
                        continue;
                    }
                };
            }
            let l = link.as_mut().expect("opened");
            let seq = l.next_seq;
            l.next_seq += 1;
            let txns = match bincode::serialize(&b.txns) {
                Ok(t) => t,
                Err(e) => {
                    b.fail(ZkError::new(Code::SystemError, e.to_string()));
                    break;
                }
            };
            shared.metrics.forwarded_writes.inc_by(b.txns.len() as u64);
            l.pending.lock().insert(seq, b);
            let sent =
                l.tx.send(pb::ForwardBatch {
                    header: Some(peers.identity.header()),
                    seq,
                    txns,
                })
                .await;
            if sent.is_err() {
                // The link died before the batch left: it can go again.
                if let Some(b) = l.pending.lock().remove(&seq) {
                    batch = Some(b);
                }
                link = None;
            }
        }
    }
}

/// Opens a stream to the leader and starts reading its results.
async fn open(
    peers: &Peers,
    shared: &Arc<Shared>,
    leader: u64,
    addr: &str,
    refusal: Arc<tokio::sync::Notify>,
) -> Result<Link, String> {
    let mut client = peers.client(addr).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(64);
    let mut results = tokio::time::timeout(
        Duration::from_secs(2),
        client.forward(ReceiverStream::new(rx)),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|s| s.to_string())?
    .into_inner();
    tracing::info!(leader, %addr, "forwarding writes to the leader");
    let pending: Pending = Arc::default();
    let refused: Refused = Arc::default();
    let p = pending.clone();
    let r_ = refused.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        let why = loop {
            match results.next().await {
                Some(Ok(r)) => {
                    let out: Result<Vec<TxnResponse>, ForwardError> =
                        bincode::deserialize(&r.results)
                            .unwrap_or_else(|e| Err(ForwardError::Failed(e.to_string())));
                    // Moved under the pending lock, so that once pending is
                    // empty every refused batch is in `refused`.
                    let mut pending = p.lock();
                    let Some(b) = pending.remove(&r.seq) else {
                        continue;
                    };
                    if let Err(ForwardError::NotLeader(_)) = out {
                        r_.lock().insert(r.seq, b);
                        refusal.notify_one();
                        continue;
                    }
                    drop(pending);
                    tokio::spawn(deliver(shared.clone(), b, out));
                }
                Some(Err(s)) => break s.message().to_string(),
                None => break "the leader closed the stream".to_string(),
            }
        };
        tracing::info!(leader, reason = %why, "the forwarding link to the leader ended");
        let orphans: Vec<Batch> = p.lock().drain().map(|(_, b)| b).collect();
        for b in orphans {
            b.fail(ZkError::new(
                Code::ConnectionLoss,
                "the link to the leader broke while this write was in flight; it may or may not have been applied",
            ));
        }
    });
    Ok(Link {
        leader,
        tx,
        pending,
        refused,
        next_seq: 0,
    })
}

/// Hands a batch its results once this member has applied them.
pub async fn deliver(shared: Arc<Shared>, b: Batch, out: Result<Vec<TxnResponse>, ForwardError>) {
    let results = match out {
        Ok(r) => r,
        Err(ForwardError::NotLeader(m)) => {
            return b.fail(ZkError::new(
                Code::ConnectionLoss,
                format!("member {m} stopped leading before this write; it was not applied"),
            ))
        }
        Err(ForwardError::Failed(why)) => {
            return b.fail(ZkError::new(Code::ConnectionLoss, why));
        }
    };
    let index = results
        .iter()
        .map(|r| (r.zxid as u64) >> crate::txn::BATCH_BITS)
        .max()
        .unwrap_or(0);
    if !shared.wait_applied(index, APPLY_WAIT).await {
        return b.fail(ZkError::new(
            Code::ConnectionLoss,
            "the write committed but this member has not applied it in time; reconnect",
        ));
    }
    let Batch {
        replies, permit, ..
    } = b;
    let mut results = results.into_iter();
    for r in replies {
        let _ = r.send(
            results
                .next()
                .ok_or_else(|| ZkError::new(Code::SystemError, "a forwarded txn had no result")),
        );
    }
    drop(permit);
}
