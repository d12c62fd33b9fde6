//! warden-server: a durable, hierarchical znode store with sessions,
//! ephemeral and sequential nodes, and watches.
//!
//! A write travels one way: a client frame is decoded ([`api`]) and reaches
//! its session task ([`session`]), becomes a [`txn::Txn`] proposed to consensus ([`raft`]), is made
//! durable in the log (one `fdatasync` for many entries), and once committed is applied
//! to the [`tree::DataTree`], which fires [`watch`]es; the reply then goes
//! out on the session's ordered stream. Reads are served from the local tree
//! in order with the session's earlier requests.
//!
//! The parts:
//! - [`tree`] — the in-memory tree and its pure, deterministic `apply`.
//! - [`txn`] — the log entry and its result.
//! - [`session`] — the session core: one task per connection keeping the
//!   session's order, its own request and reply types, reads, expiry.
//! - [`watch`] — watch registration and event routing.
//! - [`raft`] — openraft's log store and state machine over [`storage`], and peers.
//! - [`storage`] — the data folder: segment log, snapshot file, barriers.
//! - [`api`] — codecs at the edge: the gRPC service and the ZooKeeper wire
//!   protocol listener (`api::zk`, with the four-letter words), both mapped
//!   onto the session core's messages.
//! - [`admin`] — HTTP `/metrics`, `/health`, `/status`.
//! - [`config`] — flags, config file and defaults.
//! - [`server`] — wiring it all together, startup and shutdown.

pub mod admin;
pub mod api;
pub mod config;
pub mod error;
pub mod metrics;
pub mod raft;
pub mod replay;
pub mod server;
pub mod session;
pub mod storage;
pub mod tree;
pub mod txn;
pub mod watch;
