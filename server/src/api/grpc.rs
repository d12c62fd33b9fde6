//! The gRPC service: one bidirectional stream per session, plus `Status`.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};
use warden_proto as pb;

use super::connection::{self, Ctx};
use super::outq;

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
        tokio::spawn(connection::serve(ctx, conn, request.into_inner(), tx));
        Ok(Response::new(Box::pin(rx.into_stream())))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(status(&self.ctx)))
    }
}

/// This server's view of itself.
pub fn status(ctx: &Ctx) -> pb::StatusResponse {
    let m = ctx.proposer.raft.metrics().borrow().clone();
    let st = ctx.shared.state.read();
    pb::StatusResponse {
        server_id: ctx.config.server_id,
        version: env!("CARGO_PKG_VERSION").to_string(),
        last_applied: st.last_applied.map(|l| l.index).unwrap_or(0),
        znodes: st.tree.node_count() as u64,
        sessions: st.tree.session_count() as u64,
        watches: ctx.shared.watches.count() as u64,
        state_hash: format!("{:016x}", st.tree.state_hash()),
        leader: m.current_leader == Some(ctx.config.server_id),
    }
}
