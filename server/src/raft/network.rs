//! The peer network, client side: openraft's calls to other members over
//! the `Peer` gRPC service (`proto/peer.proto`), one HTTP/2 connection per
//! peer shared by Raft's messages and forwarded writes.
//!
//! Raft's messages travel as bincode inside the protobuf envelope, which
//! names the ensemble and the sender; the other side refuses a caller from
//! another ensemble (see [`super::cluster`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::member::MemberNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use warden_proto::peer as pb;

use super::TypeConfig;
use crate::net::tls::Tls;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Who this member is, for the header of every peer call.
#[derive(Clone, Debug)]
pub struct Identity {
    pub cluster: String,
    pub me: u64,
}

impl Identity {
    pub fn header(&self) -> pb::PeerHeader {
        pb::PeerHeader {
            cluster: self.cluster.clone(),
            from: self.me,
        }
    }
}

/// Connections to peers, by peer address, shared by every user.
#[derive(Clone)]
pub struct Peers {
    pub identity: Identity,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Peer address → where to dial it instead (tests' per-link proxies).
    routes: Arc<HashMap<String, String>>,
    /// Mutual TLS with peers, when the server has a certificate.
    tls: Option<Arc<Tls>>,
}

impl Peers {
    pub fn new(
        identity: Identity,
        routes: HashMap<String, String>,
        tls: Option<Arc<Tls>>,
    ) -> Peers {
        Peers {
            identity,
            channels: Arc::default(),
            routes: Arc::new(routes),
            tls,
        }
    }

    /// Drops every cached link, so the next calls dial again (with newly
    /// read certificates).
    pub fn forget_connections(&self) {
        self.channels.lock().clear();
    }

    /// The (lazily connected) channel to a peer address.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        if let Some(c) = self.channels.lock().get(addr) {
            return Ok(c.clone());
        }
        let dial = self.routes.get(addr).map_or(addr, String::as_str);
        let tls = self.tls.as_ref().and_then(|t| t.peer_client());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{dial}"))?;
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls)?;
        }
        let c = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        self.channels.lock().insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// A client of the `Peer` service at `addr`.
    pub fn client(
        &self,
        addr: &str,
    ) -> Result<pb::peer_client::PeerClient<Channel>, tonic::transport::Error> {
        Ok(pb::peer_client::PeerClient::new(self.channel(addr)?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }
}

/// Creates openraft's connections to peers.
#[derive(Clone)]
pub struct PeerNetwork {
    pub peers: Peers,
}

/// openraft's connection to one peer.
pub struct PeerLink {
    target: u64,
    addr: String,
    peers: Peers,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerLink;
    async fn new_client(&mut self, target: u64, node: &MemberNode) -> PeerLink {
        PeerLink {
            target,
            addr: node.peer.clone(),
            peers: self.peers.clone(),
        }
    }
}

fn unreachable(why: impl std::fmt::Display) -> Unreachable {
    Unreachable::new(&std::io::Error::other(why.to_string()))
}

impl PeerLink {
    /// One Raft call: the request as bincode, the peer's `Result` back.
    async fn call<Req, Resp, E>(
        &mut self,
        kind: pb::RaftKind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, MemberNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload =
            bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self
            .peers
            .client(&self.addr)
            .map_err(|e| RPCError::Unreachable(unreachable(e)))?;
        let request = pb::RaftRequest {
            header: Some(self.peers.identity.header()),
            kind: kind as i32,
            payload,
        };
        // A slow answer is a network error, not an unreachable peer: openraft
        // retries the former at once and backs off from the latter, and a
        // busy follower left without appends for a back-off would start
        // asking for an election.
        let reply = tokio::time::timeout(option.hard_ttl(), client.raft(request))
            .await
            .map_err(|_| {
                RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
                    "peer {} at {} did not answer within {:?}",
                    self.target,
                    self.addr,
                    option.hard_ttl()
                ))))
            })?
            .map_err(|s| match s.code() {
                tonic::Code::Unavailable | tonic::Code::FailedPrecondition => {
                    RPCError::Unreachable(unreachable(format!(
                        "peer {} at {}: {}",
                        self.target,
                        self.addr,
                        s.message()
                    )))
                }
                _ => RPCError::Network(NetworkError::new(&s)),
            })?
            .into_inner();
        let result: Result<Resp, RaftError<u64, E>> = bincode::deserialize(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// How long openraft waits before calling a peer it could not reach again.
const UNREACHABLE_BACKOFF: Duration = Duration::from_millis(200);

impl RaftNetwork<TypeConfig> for PeerLink {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(UNREACHABLE_BACKOFF))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, MemberNode, RaftError<u64>>> {
        self.call(pb::RaftKind::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, MemberNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call(pb::RaftKind::InstallSnapshot, &rpc, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, MemberNode, RaftError<u64>>> {
        self.call(pb::RaftKind::Vote, &rpc, &option).await
    }
}
