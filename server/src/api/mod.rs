//! The client-facing protocols, as codecs onto the session core
//! (`crate::session`): the gRPC service ([`grpc`]) and the ZooKeeper wire
//! protocol listener with its four-letter words ([`zk`]).

pub mod grpc;
pub mod zk;
