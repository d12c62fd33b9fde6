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

use tokio::sync::mpsc;

use crate::net::accept::Conn;
use crate::session::Ctx;

/// Serves accepted ZooKeeper-protocol connections (handshake done, see
/// `net::accept`) until the accept loop stops; each is served by its own
/// task, so one bad connection never stops the others.
pub async fn accept_loop(ctx: Ctx, mut accepted: mpsc::Receiver<Conn>) {
    while let Some(conn) = accepted.recv().await {
        tracing::debug!(peer = %conn.remote.addr, "zk: connection accepted");
        tokio::spawn(connection::serve(ctx.clone(), conn));
    }
}
