//! Admin HTTP: `/metrics` (Prometheus text), `/health` and `/status`
//! (JSON), and `POST /snapshot` (take a snapshot now).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

use crate::api::grpc;
use crate::session::Ctx;

/// The admin router.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/snapshot", post(snapshot))
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

/// Takes a snapshot of everything applied so far and answers once it is
/// stored (ZooKeeper 3.9's `snapshot` admin command): before a planned
/// restart, so that it replays little, and for the benchmark of writes
/// during a snapshot. Writes go on while it is taken.
async fn snapshot(State(ctx): State<Ctx>) -> impl IntoResponse {
    let raft = &ctx.proposer.raft;
    let want = raft.metrics().borrow().last_applied.map(|l| l.index);
    let started = std::time::Instant::now();
    if let Err(e) = raft.trigger().snapshot().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot take a snapshot: {e}\n"),
        );
    }
    let taken = raft
        .wait(Some(std::time::Duration::from_secs(600)))
        .metrics(
            |m| m.snapshot.map(|l| l.index) >= want,
            "a snapshot of what was applied",
        )
        .await;
    match taken {
        Ok(m) => (
            StatusCode::OK,
            serde_json::json!({
                "last_log_index": m.snapshot.map(|l| l.index),
                "ms": started.elapsed().as_millis() as u64,
            })
            .to_string(),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the snapshot did not finish: {e}\n"),
        ),
    }
}

fn first_log_index(ctx: &Ctx) -> u64 {
    let m = ctx.proposer.raft.metrics().borrow().clone();
    m.purged.map(|l| l.index + 1).unwrap_or(0)
}
