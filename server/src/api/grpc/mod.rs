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
        let conn = ctx.conns.register("grpc", request.remote_addr());
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
    let members = m
        .membership_config
        .membership()
        .nodes()
        .map(|(id, n)| pb::Member {
            id: *id,
            peer_address: n.addr.clone(),
            lag: m.replication.as_ref().map(|r| match r.get(id) {
                Some(Some(matched)) => last_log.saturating_sub(matched.index),
                _ if *id == me => 0,
                _ => last_log,
            }),
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
