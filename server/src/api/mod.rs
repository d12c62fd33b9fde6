//! The client-facing APIs: the gRPC service, the ZooKeeper wire protocol
//! listener ([`zk`]) and their shared per-connection session handling. Both are thin adapters onto the shared session model: the
//! tree, the watch manager, the session tracker and the proposer.

pub mod connection;
pub mod convert;
pub mod grpc;
pub mod outq;
pub mod registry;
pub mod zk;
