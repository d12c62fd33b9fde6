//! The ZooKeeper wire protocol (jute) listener: existing ZooKeeper clients
//! (kazoo, Curator, zkCli, the `zookeeper-client` crate) talk to Warden
//! unmodified on this port (`--zk-listen`, default 127.0.0.1:2181).
//!
//! - [`connection`] — one connection: jute frames in, the session core
//!   (`session::serve`) in the middle, jute replies out.
//! - [`codec`] — jute requests to the session core's messages, and its
//!   answers back to jute replies.
//! - [`four_letter`] — ruok, srvr, stat, mntr and the other admin words.
//!
//! The wire format itself is `warden_proto::jute`.

pub mod codec;
pub mod connection;
pub mod four_letter;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::session::Ctx;

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
