//! The peer network, server side: the `Peer` gRPC service on the peer
//! port. It hands Raft's messages to openraft, proposes the writes
//! followers forward (when this member leads), answers read-index
//! requests, and takes followers' reports of live sessions.
//!
//! Every call is checked first: a caller from another ensemble is refused
//! with `FailedPrecondition` and a warning in the log.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use warden_proto::peer as pb;

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest};

use super::election::{self, LeaderContact};
use super::forward::ForwardError;
use super::membership::{self, Change, Ensemble, MembershipError};
use super::network::Identity;
use super::proposer::now_ms;
use super::state_machine::Shared;
use super::{Raft, TypeConfig};
use crate::txn::{Txn, TxnBatch, TxnResponse};

/// Forwarded batches a follower may have in flight on its stream.
const FORWARD_WINDOW: usize = 64;

/// The `Peer` service.
pub struct PeerService {
    pub raft: Raft,
    pub identity: Identity,
    pub shared: Arc<Shared>,
    pub contact: Arc<LeaderContact>,
    pub ensemble: Arc<Ensemble>,
}

impl PeerService {
    /// Refuses a caller from another ensemble.
    fn check(&self, header: Option<&pb::PeerHeader>) -> Result<(), Status> {
        let Some(h) = header else {
            return Err(Status::invalid_argument("a peer call without a header"));
        };
        if h.cluster != self.identity.cluster {
            tracing::warn!(
                peer = h.from,
                their_ensemble = %h.cluster,
                our_ensemble = %self.identity.cluster,
                "refused a peer call from another ensemble (check --peers and the data folders)"
            );
            return Err(Status::failed_precondition(format!(
                "member {} belongs to ensemble {}, not {}; check --peers and the data folders",
                self.identity.me, self.identity.cluster, h.cluster
            )));
        }
        Ok(())
    }

    /// Notes a leader's message as it arrives (not once handled: a busy
    /// member still hears its leader, and the sender may give up waiting
    /// and drop the call before it is handled).
    fn note_leader(&self, vote: &openraft::Vote<u64>) {
        if vote.is_committed() && *vote >= self.raft.metrics().borrow().vote {
            self.contact.heard();
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    bincode::deserialize(bytes).map_err(|e| Status::invalid_argument(format!("undecodable: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Status> {
    bincode::serialize(v).map_err(|e| Status::internal(format!("unencodable: {e}")))
}

/// Sends a forwarded batch's outcome back to the follower, by sequence.
async fn send_result(
    tx: &mpsc::Sender<Result<pb::ForwardResult, Status>>,
    seq: u64,
    out: Result<Vec<TxnResponse>, ForwardError>,
) {
    let results = bincode::serialize(&out).unwrap_or_default();
    let _ = tx.send(Ok(pb::ForwardResult { seq, results })).await;
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<pb::ForwardResult, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn raft(
        &self,
        request: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        let r = request.into_inner();
        self.check(r.header.as_ref())?;
        let payload = match pb::RaftKind::try_from(r.kind) {
            Ok(pb::RaftKind::AppendEntries) => {
                let request: AppendEntriesRequest<TypeConfig> = decode(&r.payload)?;
                self.note_leader(&request.vote);
                encode(&self.raft.append_entries(request).await)?
            }
            Ok(pb::RaftKind::Vote) => encode(&self.raft.vote(decode(&r.payload)?).await)?,
            Ok(pb::RaftKind::InstallSnapshot) => {
                let request: InstallSnapshotRequest<TypeConfig> = decode(&r.payload)?;
                self.note_leader(&request.vote);
                encode(&self.raft.install_snapshot(request).await)?
            }
            _ => return Err(Status::invalid_argument("unknown Raft call")),
        };
        Ok(Response::new(pb::RaftReply { payload }))
    }

    type ForwardStream = ResultStream;

    async fn forward(
        &self,
        request: Request<Streaming<pb::ForwardBatch>>,
    ) -> Result<Response<ResultStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(FORWARD_WINDOW);
        let raft = self.raft.clone();
        let identity = self.identity.clone();
        let checker = PeerService {
            raft: self.raft.clone(),
            identity: self.identity.clone(),
            shared: self.shared.clone(),
            contact: self.contact.clone(),
            ensemble: self.ensemble.clone(),
        };
        tokio::spawn(async move {
            let mut checked = false;
            while let Some(Ok(batch)) = inbound.next().await {
                if !checked {
                    if let Err(s) = checker.check(batch.header.as_ref()) {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                    checked = true;
                }
                let seq = batch.seq;
                let txns: Vec<Txn> = match decode(&batch.txns) {
                    Ok(t) => t,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                };
                // Held while leadership is handed off, then refused as
                // below if it moved: the follower sends it to the new leader.
                let pass = checker.shared.hold.pass().await;
                // A leader cut off from its majority refuses, as for its
                // own clients: the follower's writer is told at once.
                if !super::leads_with_quorum(&raft, identity.me, true) {
                    send_result(&tx, seq, Err(ForwardError::NotLeader(identity.me))).await;
                    continue;
                }
                // The leader's clock goes into the log (ctime, mtime, TTLs).
                let now = now_ms();
                let txns = txns
                    .into_iter()
                    .map(|t| Txn { time_ms: now, ..t })
                    .collect();
                let result = raft.client_write_ff(TxnBatch(txns)).await;
                drop(pass);
                let tx = tx.clone();
                let me = identity.me;
                // Proposed in arrival order; answered as each commits.
                tokio::spawn(async move {
                    let out: Result<Vec<TxnResponse>, ForwardError> = match result {
                        Ok(pending) => match pending.await {
                            Ok(Ok(resp)) => Ok(resp.data),
                            Ok(Err(ClientWriteError::ForwardToLeader(_))) => {
                                Err(ForwardError::NotLeader(me))
                            }
                            Ok(Err(e)) => Err(ForwardError::Failed(e.to_string())),
                            Err(_) => Err(ForwardError::Failed("the leader is stopping".into())),
                        },
                        Err(e) => Err(ForwardError::Failed(format!("consensus has stopped: {e}"))),
                    };
                    send_result(&tx, seq, out).await;
                });
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn read_index(
        &self,
        request: Request<pb::PeerHeader>,
    ) -> Result<Response<pb::ReadIndexReply>, Status> {
        self.check(Some(request.get_ref()))?;
        let reply = match self.raft.get_read_log_id().await {
            Ok((read, _)) => pb::ReadIndexReply {
                index: read.map(|l| l.index).unwrap_or(0),
                error: 0,
                message: String::new(),
            },
            Err(RaftError::APIError(e)) => pb::ReadIndexReply {
                index: 0,
                error: crate::error::Code::ConnectionLoss.number(),
                message: format!("no read index: {e}"),
            },
            Err(RaftError::Fatal(e)) => pb::ReadIndexReply {
                index: 0,
                error: crate::error::Code::SystemError.number(),
                message: format!("consensus has stopped: {e}"),
            },
        };
        Ok(Response::new(reply))
    }

    async fn touch(
        &self,
        request: Request<pb::TouchRequest>,
    ) -> Result<Response<pb::TouchReply>, Status> {
        let r = request.into_inner();
        self.check(r.header.as_ref())?;
        let now = Instant::now();
        for s in r.sessions {
            self.shared.sessions.touch(s, now);
        }
        Ok(Response::new(pb::TouchReply {}))
    }

    async fn pre_vote(
        &self,
        request: Request<pb::PreVoteRequest>,
    ) -> Result<Response<pb::PreVoteReply>, Status> {
        let r = request.into_inner();
        self.check(r.header.as_ref())?;
        let candidate: Option<openraft::LogId<u64>> = decode(&r.last_log)?;
        let answer = election::answer(
            &self.raft,
            self.identity.me,
            &self.contact,
            candidate.as_ref(),
        );
        Ok(Response::new(pb::PreVoteReply {
            granted: answer.is_ok(),
            reason: answer.err().unwrap_or_default(),
        }))
    }

    async fn describe(
        &self,
        request: Request<pb::PeerHeader>,
    ) -> Result<Response<pb::DescribeReply>, Status> {
        // A member started with --join does not know the ensemble's id yet.
        if !request.get_ref().cluster.is_empty() {
            self.check(Some(request.get_ref()))?;
        }
        let applied = self
            .shared
            .state
            .read()
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0);
        Ok(Response::new(membership::encode_described(
            &self.ensemble.describe(),
            applied,
        )))
    }

    async fn change_membership(
        &self,
        request: Request<pb::MembershipRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let r = request.into_inner();
        self.check(r.header.as_ref())?;
        let change: Change = decode(&r.change)?;
        let result: Result<(), MembershipError> = self.ensemble.lead_change(change).await;
        Ok(Response::new(pb::MembershipReply {
            result: encode(&result)?,
        }))
    }

    async fn take_over(
        &self,
        request: Request<pb::TakeOverRequest>,
    ) -> Result<Response<pb::TakeOverReply>, Status> {
        let r = request.into_inner();
        self.check(r.header.as_ref())?;
        let result = self.ensemble.take_over(r.term).await;
        Ok(Response::new(pb::TakeOverReply {
            elected: result.is_ok(),
            reason: result.err().unwrap_or_default(),
        }))
    }
}
