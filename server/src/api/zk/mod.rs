//! The ZooKeeper wire protocol (jute) listener: existing ZooKeeper clients
//! speak to Warden unmodified on this port.

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection::Ctx;

/// Accepts ZooKeeper-protocol connections until shutdown.
pub async fn accept_loop(ctx: Ctx, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        match accepted {
            Ok((sock, peer)) => {
                tracing::debug!(%peer, "zk connection accepted; the protocol is not served yet");
                drop((sock, &ctx));
            }
            Err(e) => tracing::warn!(error = %e, "zk listener could not accept a connection"),
        }
    }
}
