//! Admin HTTP: `/metrics` (Prometheus text), `/health` and `/status` (JSON).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::api::grpc;
use crate::session::Ctx;

/// The admin router.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .with_state(ctx)
}

async fn metrics(State(ctx): State<Ctx>) -> impl IntoResponse {
    let m = &ctx.shared.metrics;
    m.watches.set(ctx.shared.watches.count() as i64);
    let sent = ctx.shared.watches.events_sent();
    let seen = m.watch_events.get();
    if sent > seen {
        m.watch_events.inc_by(sent - seen);
    }
    ([("content-type", "text/plain; version=0.0.4")], m.render())
}

/// 200 when this member has a leader (itself only while a majority hears
/// it) and has applied everything it knows is committed; 503 with the
/// reason otherwise.
async fn health(State(ctx): State<Ctx>) -> impl IntoResponse {
    let s = grpc::status(&ctx);
    // Apply follows commit by a moment: wait that moment before judging.
    let caught_up = ctx
        .shared
        .wait_applied(s.committed, std::time::Duration::from_secs(1))
        .await;
    let me = ctx.config.server_id;
    if s.leader_id == 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "no leader\n".to_string())
    } else if s.leader_id == me
        && !crate::raft::leads_with_quorum(&ctx.proposer.raft, me, ctx.config.is_ensemble())
    {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "this member leads but has lost contact with a majority\n".to_string(),
        )
    } else if !caught_up {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "catching up: applied {} of {} committed\n",
                s.last_applied, s.committed
            ),
        )
    } else {
        (StatusCode::OK, "ok\n".to_string())
    }
}

async fn status(State(ctx): State<Ctx>) -> impl IntoResponse {
    let s = grpc::status(&ctx);
    let body = serde_json::json!({
        "server_id": s.server_id,
        "version": s.version,
        "last_applied": s.last_applied,
        "znodes": s.znodes,
        "sessions": s.sessions,
        "watches": s.watches,
        "state_hash": s.state_hash,
        "leader": s.leader,
        "role": s.role,
        "term": s.term,
        "leader_id": (s.leader_id != 0).then_some(s.leader_id),
        "last_log_index": s.last_log_index,
        "committed": s.committed,
        "members": s.members.iter().map(|m| serde_json::json!({
            "id": m.id,
            "peer_address": m.peer_address,
            "lag": m.lag,
        })).collect::<Vec<_>>(),
        "first_log_index": first_log_index(&ctx),
        "client_listen": ctx.config.listen.to_string(),
        "zk_listen": ctx.config.zk_listen.map(|a| a.to_string()),
    });
    ([("content-type", "application/json")], body.to_string())
}

fn first_log_index(ctx: &Ctx) -> u64 {
    let m = ctx.proposer.raft.metrics().borrow().clone();
    m.purged.map(|l| l.index + 1).unwrap_or(0)
}
