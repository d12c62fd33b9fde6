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

async fn health(State(ctx): State<Ctx>) -> impl IntoResponse {
    let leader = ctx.proposer.raft.metrics().borrow().current_leader;
    match leader {
        Some(_) => (StatusCode::OK, "ok\n".to_string()),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no leader\n".to_string()),
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
