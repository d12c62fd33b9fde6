//! The client's recipes end to end against real servers: contenders on
//! separate sessions and in separate processes (`recipe_worker`), faults
//! injected with signals and a proxy. Each test records what happened, then
//! checks the record.

use std::time::Duration;

use warden_client::{Client, CreateMode};
use warden_tests::{connect_within, quick_retry, InProcServer, ServerOpts, PHASE};

/// The distributed queue, caches, persistent ephemeral node, service registry.
mod data;
/// Leader latches and selectors, and `warden elect`.
mod election;
/// The fair lock and its fencing token, and `warden lock`.
mod lock;
/// The set partitioner.
mod partitioner;
/// Read-write lock, semaphore, multi-lock, barriers, shared counter.
mod sync;

/// A session of `addr` asking for `timeout`, with a quick back-off so it
/// follows a cut or a restart closely.
async fn client(addr: &str, timeout: Duration) -> Client {
    connect_within(PHASE, addr, quick_retry(timeout)).await
}

/// A server with a short tick, so its container reaper runs often (and
/// sessions may be long enough for a busy machine).
fn reaping_server() -> InProcServer {
    InProcServer::start_with(ServerOpts {
        tick_ms: 20,
        max_session_timeout_ms: Some(10_000),
        ..ServerOpts::default()
    })
}

/// Makes `root` an empty container that had a child, which the reaper
/// deletes at a next tick.
async fn about_to_be_reaped(c: &Client, root: &str) {
    c.create(root, Vec::new(), CreateMode::Container)
        .await
        .unwrap();
    c.create(&format!("{root}/k"), Vec::new(), CreateMode::Persistent)
        .await
        .unwrap();
    c.delete(&format!("{root}/k"), None).await.unwrap();
}
