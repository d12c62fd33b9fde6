//! Shared by the ZooKeeper-protocol compatibility tests (`zk_*.rs`): which
//! server they run against, and small helpers.
//!
//! By default each test starts its own `warden-server` and talks to its
//! ZooKeeper listener (`ServerProc::zk_addr`). With
//! `WARDEN_ZK_REFERENCE=HOST:PORT` the same tests run against that server
//! instead — an Apache ZooKeeper started with
//! `python3 tests/compat/zookeeper.py` — which is how they were checked
//! to expect exactly what ZooKeeper does. Every test works under its own
//! random root, so a shared reference server is fine.
#![allow(dead_code)]

use std::time::Duration;

use warden_tests::{ServerOpts, ServerProc};

/// How long any single step may take before a test fails (a loaded
/// two-core CI machine included).
pub const STEP: Duration = Duration::from_secs(20);

/// The server a test talks to.
pub enum Target {
    /// A fresh Warden server of this test's own.
    Warden(Box<ServerProc>),
    /// An external server named by `WARDEN_ZK_REFERENCE`.
    Reference(String),
}

impl Target {
    /// A Warden server with the harness's defaults (or the reference server).
    pub fn start() -> Target {
        Self::start_with(ServerOpts::default())
    }

    /// A Warden server with these options (or the reference server, which
    /// keeps its own settings).
    pub fn start_with(opts: ServerOpts) -> Target {
        match std::env::var("WARDEN_ZK_REFERENCE") {
            Ok(addr) if !addr.is_empty() => Target::Reference(addr),
            _ => Target::Warden(Box::new(ServerProc::start_with(opts))),
        }
    }

    /// `HOST:PORT` of the ZooKeeper-protocol listener.
    pub fn zk_addr(&self) -> String {
        match self {
            Target::Warden(s) => s.zk_addr(),
            Target::Reference(a) => a.clone(),
        }
    }

    /// The Warden server, if this is one (for its gRPC API and its log).
    pub fn warden(&self) -> Option<&ServerProc> {
        match self {
            Target::Warden(s) => Some(s),
            Target::Reference(_) => None,
        }
    }

    /// The server's log, to show when a test fails (empty for a reference).
    pub fn log(&self) -> String {
        self.warden().map(|s| s.log()).unwrap_or_default()
    }
}

/// A path no other test (or earlier run against a shared reference server)
/// uses: `/<prefix>-<random hex>`.
pub fn unique_root(prefix: &str) -> String {
    format!("/{prefix}-{:016x}", rand::random::<u64>())
}
