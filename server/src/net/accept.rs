//! Accepting connections: the per-address connection limit, the TLS
//! handshake (with a clear refusal of a plain-text client on a TLS port)
//! and the client certificate's identity, the same for every listener.
//!
//! Handshakes run in their own tasks, so a slow or silent client cannot
//! hold up the next one; finished connections wait in a small bounded
//! queue for the server that serves them.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::tls::{Role, Tls};

/// How long a client may take over the TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepted connections waiting to be served.
const WAITING: usize = 64;

/// Who is on the other end of a connection: its address, and the subject
/// of the certificate it presented (the `x509` identity), if any.
#[derive(Debug, Clone)]
pub struct Remote {
    pub addr: SocketAddr,
    pub x509: Option<String>,
}

/// Open connections per client address, against `--max-connections-per-ip`
/// (ZooKeeper's `maxClientCnxns`); shared by the gRPC and ZooKeeper
/// listeners, as ZooKeeper counts every client connection.
pub struct PerAddress {
    /// 0: no limit.
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    pub fn new(limit: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            limit,
            open: Mutex::default(),
        })
    }

    /// A place for one more connection from `ip`, or `None` at the limit.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock();
        let n = open.entry(ip).or_default();
        if self.limit > 0 && *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }
}

/// One counted connection; given back when the connection closes.
struct Slot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// How a listener admits connections.
#[derive(Clone)]
pub struct Gate {
    /// For logs: "gRPC", "ZooKeeper", "admin", "peer".
    pub name: &'static str,
    /// TLS, when this listener speaks it.
    pub tls: Option<(Arc<Tls>, Role)>,
    /// The per-address limit, on client listeners.
    pub limit: Option<Arc<PerAddress>>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection, handshake done.
pub struct Conn {
    io: Io,
    pub remote: Remote,
    _slot: Option<Slot>,
}

/// Starts accepting on `listener` until `stop`; connections come out of
/// the returned queue.
pub fn incoming(
    listener: TcpListener,
    gate: Gate,
    mut stop: watch::Receiver<bool>,
) -> mpsc::Receiver<Conn> {
    let (tx, rx) = mpsc::channel(WAITING);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => return,
                _ = tx.closed() => return,
            };
            let (sock, addr) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = gate.name, error = %e, "could not accept a connection");
                    // e.g. out of file descriptors: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let slot = match &gate.limit {
                Some(limit) => match limit.take(addr.ip()) {
                    Some(s) => Some(s),
                    None => {
                        tracing::warn!(listener = gate.name, client = %addr.ip(), limit = limit.limit, "too many connections from one address; closing the new one (raise --max-connections-per-ip, 0 for no limit)");
                        continue;
                    }
                },
                None => None,
            };
            let _ = sock.set_nodelay(true);
            let tx = tx.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                if let Some(conn) = admit(sock, addr, slot, &gate).await {
                    let _ = tx.send(conn).await;
                }
            });
        }
    });
    rx
}

/// The TLS handshake, if this listener speaks TLS.
async fn admit(sock: TcpStream, addr: SocketAddr, slot: Option<Slot>, gate: &Gate) -> Option<Conn> {
    let Some((tls, role)) = &gate.tls else {
        return Some(Conn {
            io: Io::Plain(sock),
            remote: Remote { addr, x509: None },
            _slot: slot,
        });
    };
    let config = tls.server_config(*role)?;
    let mut first = [0u8; 8];
    let n = match tokio::time::timeout(HANDSHAKE, sock.peek(&mut first)).await {
        Ok(Ok(n)) => n,
        Ok(Err(_)) | Err(_) => return None,
    };
    // Every TLS connection starts with a handshake record (type 22).
    if n > 0 && first[0] != 0x16 {
        refuse_plain(sock, addr, gate, &first[..n]).await;
        return None;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = match tokio::time::timeout(HANDSHAKE, acceptor.accept(sock)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(listener = gate.name, client = %addr, error = %e, "TLS handshake failed; closing the connection");
            return None;
        }
        Err(_) => {
            tracing::info!(listener = gate.name, client = %addr, "TLS handshake not done within 10 s; closing the connection");
            return None;
        }
    };
    let x509 = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| super::tls::subject(c));
    tracing::debug!(listener = gate.name, client = %addr, x509 = ?x509, "TLS connection accepted");
    Some(Conn {
        io: Io::Tls(Box::new(stream)),
        remote: Remote { addr, x509 },
        _slot: slot,
    })
}

/// A plain-text client on a TLS port: logged, told (if it speaks HTTP/1,
/// which can show a message) and closed.
async fn refuse_plain(mut sock: TcpStream, addr: SocketAddr, gate: &Gate, first: &[u8]) {
    tracing::info!(listener = gate.name, client = %addr, "a plain-text client on a TLS port; closing the connection (the client must connect with TLS)");
    let http1 = [&b"GET "[..], b"POST", b"HEAD", b"PUT "]
        .iter()
        .any(|m| first.starts_with(m));
    if http1 {
        // Read the request's head first: closing with it unread would reset
        // the connection, and the client might never see the answer.
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let body = "this port speaks TLS: use https://\n";
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(HANDSHAKE, sock.write_all(reply.as_bytes())).await;
    }
    let _ = sock.shutdown().await;
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// gRPC handlers find the [`Remote`] among a request's extensions.
impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Remote;
    fn connect_info(&self) -> Remote {
        self.remote.clone()
    }
}

/// The queue of accepted connections as a stream, for tonic.
pub fn stream(
    rx: mpsc::Receiver<Conn>,
) -> impl futures::Stream<Item = Result<Conn, io::Error>> + Send + 'static {
    futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}

/// The queue of accepted connections as an axum listener, for admin HTTP.
pub struct AxumListener {
    pub rx: mpsc::Receiver<Conn>,
    pub local: SocketAddr,
}

impl axum::serve::Listener for AxumListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => {
                let addr = c.remote.addr;
                (c, addr)
            }
            // The accept loop stopped: the server is stopping, and axum's
            // graceful shutdown ends the serve loop.
            None => futures::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_open_connections_per_address() {
        let limit = PerAddress::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let one = limit.take(a).unwrap();
        let _two = limit.take(a).unwrap();
        assert!(limit.take(a).is_none(), "a third from one address");
        let _other = limit.take(b).expect("another address is not held back");
        drop(one);
        assert!(
            limit.take(a).is_some(),
            "a closed connection frees its place"
        );
        let open = PerAddress::new(0);
        let held: Vec<_> = (0..100).map(|_| open.take(a).unwrap()).collect();
        assert_eq!(held.len(), 100);
    }
}
