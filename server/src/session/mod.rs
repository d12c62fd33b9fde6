//! The session core: one task per client connection, protocol neutral,
//! keeping each session's order of requests, replies and events.
//!
//! - [`message`] — the core's own request, reply and event types; the
//!   codecs in `api` map the wire protocols onto them.
//! - [`conn`] — the connection task: opens or resumes the session, takes
//!   requests, answers them in order, and pushes events.
//! - [`order`] — the per-session queue: when a write may enter the log
//!   (not before the session's earlier reads are served).
//! - [`read`] — one function per read op over the tree and watch manager.
//! - [`write`] — a write request checked into a log op, and its outcome
//!   shaped into the reply its request asked for.
//! - [`open`] — a new session proposed to the log, or one resumed.
//! - [`outq`] — the bounded outgoing queue, cut when a client stops reading.
//! - [`registry`] — the live connections, for the four-letter words.
//! - [`tracker`] — when each session was last heard from; expiry.

pub mod conn;
pub mod message;
pub mod open;
pub mod order;
pub mod outq;
pub mod read;
pub mod registry;
pub mod tracker;
pub mod write;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

pub use conn::{serve, MIN_STALL};
pub use tracker::SessionTracker;

use crate::config::Config;
use crate::raft::proposer::Proposer;
use crate::raft::state_machine::Shared;
use registry::Registry;

/// Everything a connection needs from the server.
#[derive(Clone)]
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub proposer: Proposer,
    pub config: Arc<Config>,
    pub shutdown: watch::Receiver<bool>,
    /// Set when a graceful stop begins: connections move elsewhere (gRPC
    /// clients are told the other members' client addresses, here).
    pub drain: watch::Receiver<Option<Arc<[String]>>>,
    pub turns: Arc<SessionTurns>,
    /// Live connections of both protocols.
    pub conns: Arc<Registry>,
    /// Membership changes and hand-offs; `None` for a single server.
    pub ensemble: Option<Arc<crate::raft::membership::Ensemble>>,
}

/// One connection at a time per session: a resumed session's new
/// connection starts only after the previous one has answered everything
/// it accepted, so the session's requests stay in order across connections.
#[derive(Default)]
pub struct SessionTurns {
    locks: parking_lot::Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

impl SessionTurns {
    fn lock_of(&self, session: u64) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().entry(session).or_default().clone()
    }

    fn forget_if_idle(&self, session: u64) {
        let mut g = self.locks.lock();
        if g.get(&session)
            .map(|l| Arc::strong_count(l) == 1)
            .unwrap_or(false)
        {
            g.remove(&session);
        }
    }
}
