//! warden-server: a durable, hierarchical znode store with sessions,
//! ephemeral and sequential nodes, and watches.
//!
//! A write travels one way: a client frame is decoded ([`api`]) and reaches
//! its session task ([`session`]), becomes a [`txn::Txn`] proposed to
//! consensus ([`raft`]), is made durable in the log (one `fdatasync` for
//! many entries), and once committed is applied to the
//! [`tree::DataTree`], which fires [`watch`]es; the reply then goes
//! out on the session's ordered stream. Reads are served from the local tree
//! in order with the session's earlier requests.
//!
//! The parts:
//! - [`tree`] — the in-memory tree and its pure, deterministic `apply`.
//! - [`acl`] — ACL checks, schemes and the digest, as ZooKeeper has them.
//! - [`txn`] — the log entry and its result.
//! - [`session`] — the session core: one task per connection keeping the
//!   session's order, its own request and reply types, reads, expiry.
//! - [`watch`] — watch registration and event routing.
//! - [`raft`] — openraft's log store and state machine over [`storage`], and peers.
//! - [`storage`] — the storage engines behind one trait: the data folder
//!   (segment log, snapshot file, barriers) and an in-memory one.
//! - [`api`] — codecs at the edge: the gRPC service and the ZooKeeper wire
//!   protocol listener (`api::zk`, with the four-letter words), both mapped
//!   onto the session core's messages.
//! - [`net`] — accepting connections: TLS, client certificates, the
//!   per-address connection limit.
//! - [`admin`] — HTTP `/metrics`, `/health`, `/status`.
//! - [`config`] — flags, config file and defaults.
//! - [`server`] — wiring it all together, startup and shutdown.
//! - [`replay`] — rebuilds a data folder's tree offline, for checks.
//!
//! Other crates use [`server::run`] (or [`server::run_with`] on bound
//! listeners, as the tests' in-process server does), [`config`],
//! [`replay`] and [`digest`]; everything else is internal.

pub(crate) mod acl;
pub(crate) mod admin;
pub(crate) mod api;
#[doc(hidden)]
pub mod bench;
pub mod config;
pub mod error;
pub(crate) mod metrics;
pub mod net;
pub(crate) mod raft;
pub mod replay;
pub mod server;
pub(crate) mod session;
pub(crate) mod storage;
pub(crate) mod tree;
pub(crate) mod txn;
pub(crate) mod watch;

pub use acl::digest;
