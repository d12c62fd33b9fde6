//! The gRPC service: one bidirectional stream per session, plus `Status`.
//! [`codec`] maps its frames onto the session core's messages.

pub mod codec;

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use warden_proto as pb;

use crate::error::Code;
use crate::session::{self, outq, Ctx};

/// How long a new stream may take to send its Connect frame.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// The `Warden` gRPC service.
pub struct WardenService {
    pub ctx: Ctx,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::ServerFrame, Status>> + Send>>;

#[tonic::async_trait]
impl pb::warden_server::Warden for WardenService {
    type SessionStream = FrameStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::ClientFrame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (tx, rx) = outq::channel(outq::CAPACITY);
        let ctx = self.ctx.clone();
        let remote = request
            .extensions()
            .get::<crate::net::accept::Remote>()
            .cloned();
        let conn = ctx.conns.register(
            "grpc",
            remote.as_ref().map(|r| r.addr),
            remote.and_then(|r| r.x509),
        );
        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            let connect = match tokio::time::timeout(HANDSHAKE, inbound.next()).await {
                Ok(Some(Ok(pb::ClientFrame {
                    frame: Some(pb::client_frame::Frame::Connect(c)),
                }))) => codec::connect(c),
                Ok(Some(Ok(_))) => {
                    session::conn::refuse(
                        &tx,
                        Code::BadArguments,
                        "the first frame of a session stream must be Connect".into(),
                    );
                    return;
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "connection failed before Connect");
                    return;
                }
                Ok(None) | Err(_) => return,
            };
            let frames =
                tokio_stream::StreamExt::map_while(inbound, |f| match f.map(codec::inbound) {
                    Ok(Ok(m)) => Some(m),
                    Ok(Err(why)) => {
                        tracing::info!("protocol error: {why}; closing the connection");
                        None
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "connection dropped");
                        None
                    }
                });
            session::serve(ctx, conn, connect, Box::pin(frames), tx).await;
        });
        Ok(Response::new(Box::pin(
            rx.into_stream().map(codec::outbound),
        )))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(status(&self.ctx)))
    }

    async fn members(
        &self,
        _request: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersReply>, Status> {
        let d = match &self.ctx.ensemble {
            Some(e) => e.as_leader_sees_it().await.map_err(|e| e.status())?,
            None => return Ok(Response::new(single_member(&self.ctx))),
        };
        Ok(Response::new(members_reply(&d)))
    }

    async fn change_membership(
        &self,
        request: Request<pb::MembershipChange>,
    ) -> Result<Response<pb::MembersReply>, Status> {
        use crate::raft::membership::Change;
        use pb::membership_change::Change as C;
        let Some(e) = &self.ctx.ensemble else {
            return Err(not_an_ensemble());
        };
        let change = match request.into_inner().change {
            Some(C::Add(a)) => {
                if a.id == 0 || a.id > 127 {
                    return Err(Status::invalid_argument(format!(
                        "member id {} is out of range; use 1 to 127",
                        a.id
                    )));
                }
                if a.peer_address.rsplit_once(':').is_none() {
                    return Err(Status::invalid_argument(format!(
                        "peer address {:?} is not HOST:PORT",
                        a.peer_address
                    )));
                }
                Change::Add {
                    id: a.id,
                    peer: a.peer_address,
                    observer: a.learner,
                }
            }
            Some(C::Remove(id)) => Change::Remove { id },
            Some(C::Promote(id)) => Change::Promote { id },
            None => return Err(Status::invalid_argument("no change given")),
        };
        tracing::info!(?change, "membership change asked for");
        e.change(change).await.map_err(|e| e.status())?;
        let d = e.as_leader_sees_it().await.map_err(|e| e.status())?;
        Ok(Response::new(members_reply(&d)))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderReply>, Status> {
        let Some(e) = &self.ctx.ensemble else {
            return Err(not_an_ensemble());
        };
        let to = request.into_inner().to;
        let started = std::time::Instant::now();
        let before = e.describe().leader;
        e.change(crate::raft::membership::Change::Transfer {
            to: (to != 0).then_some(to),
        })
        .await
        .map_err(|e| e.status())?;
        // This member learns of the new leader from its first message.
        let m = e
            .raft
            .wait(Some(Duration::from_secs(2)))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != before,
                "the new leader",
            )
            .await
            .map_err(|_| {
                Status::unavailable(
                    "leadership moved, but this member has not heard from the new leader yet",
                )
            })?;
        Ok(Response::new(pb::TransferLeaderReply {
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            took_ms: started.elapsed().as_millis() as u32,
        }))
    }
}

fn not_an_ensemble() -> Status {
    Status::failed_precondition(
        "this server is an ensemble of one (started without --peers): membership changes need an ensemble; found one with --peers",
    )
}

/// A member as the admin API shows it.
fn member(
    id: u64,
    n: &crate::raft::member::MemberNode,
    voter: bool,
    leader: Option<u64>,
    lag: Option<u64>,
) -> pb::Member {
    let role = match () {
        _ if leader == Some(id) => "leader",
        _ if voter => "follower",
        _ if n.observer => "observer",
        _ => "learner",
    };
    pb::Member {
        id,
        peer_address: n.peer.clone(),
        caught_up: lag.is_some_and(|l| l <= crate::raft::membership::PROMOTE_LAG),
        lag,
        client_address: n.client.clone().unwrap_or_default(),
        zk_address: n.zk.clone().unwrap_or_default(),
        admin_address: n.admin.clone().unwrap_or_default(),
        voter,
        observer: n.observer,
        role: role.into(),
    }
}

fn members_reply(d: &crate::raft::membership::Described) -> pb::MembersReply {
    let m = &d.membership;
    pb::MembersReply {
        leader_id: d.leader.unwrap_or(0),
        members: m
            .nodes()
            .map(|(id, n)| {
                let voter = m.voter_ids().any(|v| v == *id);
                member(*id, n, voter, d.leader, d.lags.get(id).copied())
            })
            .collect(),
        changing: d.changing,
    }
}

/// A single server's one member.
fn single_member(ctx: &Ctx) -> pb::MembersReply {
    let me = ctx.config.server_id;
    let node = crate::raft::member::MemberNode {
        client: Some(ctx.config.listen.to_string()),
        zk: ctx.config.zk_listen.map(|a| a.to_string()),
        admin: Some(ctx.config.admin_listen.to_string()),
        ..crate::raft::member::MemberNode::new("")
    };
    pb::MembersReply {
        leader_id: me,
        members: vec![member(me, &node, true, Some(me), Some(0))],
        changing: false,
    }
}

/// This member's view of itself and of the ensemble.
pub fn status(ctx: &Ctx) -> pb::StatusResponse {
    let m = ctx.proposer.raft.metrics().borrow().clone();
    let me = ctx.config.server_id;
    let role = match m.state {
        _ if !ctx.config.is_ensemble() => "standalone",
        openraft::ServerState::Leader => "leader",
        openraft::ServerState::Follower => "follower",
        openraft::ServerState::Candidate => "candidate",
        openraft::ServerState::Learner => "learner",
        openraft::ServerState::Shutdown => "stopped",
    };
    let last_log = m.last_log_index.unwrap_or(0);
    let lags = crate::raft::membership::lags(&m, me);
    let membership = m.membership_config.membership();
    let members = membership
        .nodes()
        .map(|(id, n)| {
            let voter = membership.voter_ids().any(|v| v == *id);
            member(*id, n, voter, m.current_leader, lags.get(id).copied())
        })
        .collect();
    let st = ctx.shared.state.read();
    pb::StatusResponse {
        server_id: me,
        version: env!("CARGO_PKG_VERSION").to_string(),
        last_applied: st.last_applied.map(|l| l.index).unwrap_or(0),
        znodes: st.tree.node_count() as u64,
        sessions: st.tree.session_count() as u64,
        watches: ctx.shared.watches.count() as u64,
        state_hash: format!("{:016x}", st.tree.state_hash()),
        leader: m.current_leader == Some(me),
        role: role.into(),
        term: m.current_term,
        leader_id: m.current_leader.unwrap_or(0),
        last_log_index: last_log,
        committed: ctx.shared.metrics.committed.get().max(0) as u64,
        members,
    }
}
