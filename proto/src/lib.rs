//! The Warden wire protocols, compiled from `proto/warden.proto` (clients)
//! and `proto/peer.proto` (between the members of an ensemble, [`peer`]).
//!
//! Both the server and the client depend on this crate; nothing else does the
//! encoding. Error codes and watch event types carry ZooKeeper's numbers so the
//! two protocols Warden speaks share one vocabulary, [`vocab`]: error codes,
//! `Stat`, `Acl`, `CreateMode`, event and watcher types, defined once with
//! their conversions to and from both wire formats. [`path`] holds the
//! znode path rules both sides apply; [`jute`] is a codec for ZooKeeper's
//! own wire protocol, which the server also speaks.

#![allow(clippy::large_enum_variant, clippy::enum_variant_names)]

/// The generated messages and the `Warden` service's client and server.
pub mod v1 {
    tonic::include_proto!("warden.v1");
}

/// The `Peer` service between the members of an ensemble
/// (`proto/peer.proto`): Raft's messages, forwarded writes, read indexes
/// and session liveness reports.
pub mod peer {
    tonic::include_proto!("warden.peer.v1");
}

pub mod jute;
pub mod path;
pub mod vocab;

pub use v1::*;
