//! The ZooKeeper wire protocol (jute) listener: existing ZooKeeper clients
//! (kazoo, Curator, zkCli, the `zookeeper-client` crate) talk to Warden
//! unmodified on this port (`--zk-listen`, default 127.0.0.1:2181).
//!
//! - [`connection`] — one connection: jute frames in, the shared session
//!   model (`api::connection::serve`) in the middle, jute replies out.
//! - [`convert`] — jute requests to `pb` requests and `pb` answers back to
//!   jute replies shaped by the opcode that asked.
//! - [`four_letter`] — ruok, srvr, stat, mntr and the other admin words.
//!
//! The codec itself is `warden_proto::jute`.

pub mod connection;
pub mod convert;
pub mod four_letter;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection::Ctx;

/// Accepts ZooKeeper-protocol connections until shutdown; each is served
/// by its own task, so one bad connection never stops the others.
pub async fn accept_loop(ctx: Ctx, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok((sock, peer)) => {
                tracing::debug!(%peer, "zk: connection accepted");
                tokio::spawn(connection::serve(ctx.clone(), sock, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "zk: could not accept a connection");
                // e.g. out of file descriptors: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
