//! One ZooKeeper-protocol connection, adapted onto the shared session
//! model (`api::connection::serve`).
//!
//! The reader decodes jute frames into `pb::ClientFrame`s for the session
//! and tells the writer, in request order, what each reply must look like
//! (an [`Expect`]) or hands it a reply it makes itself (auth, whoAmI,
//! errors). The session answers in request order, so the writer pairs each
//! `pb` answer with the oldest expectation; watch events go out as they
//! come (xid -1), which keeps the session's order of events and replies.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Status;
use warden_proto as pb;
use warden_proto::jute::{self, frame::split_frame, op, xid, DecodeError, MultiResult};
use warden_proto::vocab::KeeperState;

use super::convert::{self, Expect, Local, Mapped};
use super::four_letter;
use crate::api::connection::{self, Ctx, MAX_IN_FLIGHT, MIN_STALL};
use crate::api::outq::{self, OutRx};
use crate::api::registry::ConnInfo;
use crate::error::Code;

/// How long a new connection may take to send its first frame.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// Why reading a frame stopped.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("the client closed the connection")]
    Eof,
}

/// What the writer is told, in request order.
enum Entry {
    /// The next session answer belongs to this request.
    Remote(Expect),
    /// A reply the adapter makes; `close` ends the connection after it.
    Local { reply: Local, close: bool },
}

/// Reads until `buf` holds at least `n` bytes.
async fn fill(rd: &mut OwnedReadHalf, buf: &mut BytesMut, n: usize) -> Result<(), ReadError> {
    while buf.len() < n {
        if rd.read_buf(buf).await? == 0 {
            return Err(ReadError::Eof);
        }
    }
    Ok(())
}

/// Reads one whole frame's body; the length is checked before its bytes
/// are buffered, so a connection holds at most one maximal frame.
async fn read_frame(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<Bytes, ReadError> {
    loop {
        if let Some((_, used)) = split_frame(buf, jute::DEFAULT_MAX_FRAME)? {
            let mut f = buf.split_to(used).freeze();
            return Ok(f.split_off(4));
        }
        if let Ok(Some(len)) = jute::frame::frame_len(buf, jute::DEFAULT_MAX_FRAME) {
            buf.reserve((len + 4).saturating_sub(buf.len()));
        }
        if rd.read_buf(buf).await? == 0 {
            return Err(ReadError::Eof);
        }
    }
}

fn looks_like_http(head: &[u8]) -> bool {
    [
        &b"GET "[..],
        b"POST",
        b"PUT ",
        b"HEAD",
        b"PRI ",
        b"OPTI",
        b"DELE",
    ]
    .contains(&head)
}

/// Serves one accepted connection: a four-letter word, or a session.
pub async fn serve(ctx: Ctx, sock: TcpStream, peer: SocketAddr) {
    let _ = sock.set_nodelay(true);
    let (mut rd, mut wr) = sock.into_split();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    match tokio::time::timeout(HANDSHAKE, fill(&mut rd, &mut buf, 4)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "zk: connection closed before its first frame");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "zk: no first frame within 30 s; closing the connection");
            return;
        }
    }
    let head = [buf[0], buf[1], buf[2], buf[3]];
    if let Some(word) = four_letter::known(&head) {
        let text = four_letter::answer(&ctx, word);
        tracing::debug!(%peer, word, "zk: four-letter word");
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.shutdown().await;
        return;
    }
    let body = match tokio::time::timeout(HANDSHAKE, read_frame(&mut rd, &mut buf)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            if looks_like_http(&head) {
                tracing::info!(%peer, "zk: an HTTP request on the ZooKeeper port; closing the connection (admin HTTP is on --admin-listen)");
            } else {
                tracing::info!(%peer, error = %e, "zk: bad first frame; closing the connection");
            }
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "zk: connect request not complete within 30 s; closing the connection");
            return;
        }
    };
    let connect = match jute::ConnectRequest::decode(&body) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%peer, error = %e, "zk: malformed connect request; closing the connection");
            return;
        }
    };
    let (in_tx, in_rx) = mpsc::unbounded_channel::<Result<pb::ClientFrame, Status>>();
    let (out_tx, out_rx) = outq::channel(outq::CAPACITY);
    let (exp_tx, exp_rx) = mpsc::unbounded_channel::<Entry>();
    let _ = in_tx.send(Ok(pb::ClientFrame {
        frame: Some(pb::client_frame::Frame::Connect(pb::Connect {
            session_id: connect.session_id as u64,
            password: connect.passwd.clone(),
            timeout_ms: connect.timeout_ms.max(0) as u32,
            last_zxid: connect.last_zxid_seen,
            client_name: format!("zk {peer}"),
        })),
    }));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let reg = ctx.conns.register("zk", Some(peer));
    let keepalive = Keepalive {
        ctx: ctx.clone(),
        conn: reg.info.clone(),
    };
    tokio::spawn(connection::serve(
        ctx.clone(),
        reg,
        UnboundedReceiverStream::new(in_rx),
        out_tx,
    ));
    let mut writer = tokio::spawn(write_loop(
        wr,
        peer,
        out_rx,
        exp_rx,
        connect.read_only.is_some(),
        in_flight.clone(),
    ));
    tokio::select! {
        _ = read_loop(rd, buf, peer, in_tx, exp_tx, in_flight, keepalive) => {
            let _ = (&mut writer).await;
        }
        _ = &mut writer => {}
    }
}

/// Renews the session for requests the adapter answers itself (auth,
/// whoAmI, refused requests), which never reach the session: any request
/// counts as a ping.
struct Keepalive {
    ctx: Ctx,
    conn: Arc<ConnInfo>,
}

impl Keepalive {
    fn touch(&self) {
        let session = self.conn.session.load(Ordering::Relaxed);
        if session != 0 {
            self.ctx.shared.sessions.touch(session, Instant::now());
        }
    }
}

/// Decodes requests and feeds the session and the writer, in order.
async fn read_loop(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    peer: SocketAddr,
    in_tx: mpsc::UnboundedSender<Result<pb::ClientFrame, Status>>,
    exp_tx: mpsc::UnboundedSender<Entry>,
    in_flight: Arc<Semaphore>,
    keepalive: Keepalive,
) {
    loop {
        let body = match read_frame(&mut rd, &mut buf).await {
            Ok(b) => b,
            Err(ReadError::Eof) => {
                tracing::debug!(%peer, "zk: client closed the connection");
                return;
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "zk: closing the connection");
                return;
            }
        };
        let (h, req) = match jute::decode_request(&body) {
            Ok(r) => r,
            Err(DecodeError::UnknownOpcode { xid, opcode }) => {
                // As ZooKeeper's UnimplementedRequestProcessor: answer, then close.
                tracing::warn!(%peer, xid, opcode, "zk: unknown opcode; answering Unimplemented and closing the connection");
                let _ = exp_tx.send(Entry::Local {
                    reply: Local::Error {
                        xid,
                        code: Code::Unimplemented,
                    },
                    close: true,
                });
                return;
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "zk: malformed request; closing the connection");
                return;
            }
        };
        tracing::debug!(%peer, xid = h.xid, op = op::name(h.opcode), "zk: request");
        match convert::request(h.xid, &req) {
            Mapped::Session(frame, expect) => {
                let closing = expect.opcode == op::CLOSE_SESSION;
                // Returned by the writer when the answer goes out.
                match in_flight.acquire().await {
                    Ok(p) => p.forget(),
                    Err(_) => return,
                }
                // The expectation goes first, so it is queued before the answer can exist.
                if exp_tx.send(Entry::Remote(expect)).is_err()
                    || in_tx
                        .send(Ok(pb::ClientFrame { frame: Some(frame) }))
                        .is_err()
                {
                    return;
                }
                if closing {
                    return;
                }
            }
            Mapped::Local(reply) => {
                keepalive.touch();
                // Local replies count too: a client that sends auth packets
                // without reading is slowed like any other.
                match in_flight.acquire().await {
                    Ok(p) => p.forget(),
                    Err(_) => return,
                }
                if exp_tx
                    .send(Entry::Local {
                        reply,
                        close: false,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Mapped::Close(why) => {
                tracing::info!(%peer, "zk: {why}; closing the connection");
                return;
            }
        }
    }
}

/// Encodes and writes everything the client receives, in order.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    peer: SocketAddr,
    mut out_rx: OutRx,
    mut exp_rx: mpsc::UnboundedReceiver<Entry>,
    read_only_byte: bool,
    in_flight: Arc<Semaphore>,
) {
    use pb::server_frame::Frame as F;
    let read_only = read_only_byte.then_some(false);
    // The session's first answer: Connected, or why not.
    let (connected_zxid, session_timeout) = loop {
        let frame = match out_rx.recv().await {
            Some(Ok(pb::ServerFrame { frame: Some(f) })) => f,
            Some(_) => continue,
            None => return,
        };
        match frame {
            F::Connected(c) => {
                let timeout = Duration::from_millis(u64::from(c.timeout_ms));
                let resp = jute::ConnectResponse {
                    protocol_version: 0,
                    timeout_ms: c.timeout_ms as i32,
                    session_id: c.session_id as i64,
                    passwd: c.password,
                    read_only,
                };
                if wr.write_all(&jute::frame(&resp.encode())).await.is_err() {
                    return;
                }
                break (c.last_zxid, timeout);
            }
            F::ConnectError(e) => {
                if e.code == Code::SessionExpired.number() || e.code == Code::AuthFailed.number() {
                    // ZooKeeper's answer to an unknown session or a wrong
                    // password: timeout 0, then the connection closes.
                    let resp = jute::ConnectResponse {
                        protocol_version: 0,
                        timeout_ms: 0,
                        session_id: 0,
                        passwd: vec![0; 16],
                        read_only,
                    };
                    let _ = wr.write_all(&jute::frame(&resp.encode())).await;
                }
                tracing::info!(%peer, code = e.code, message = %e.message, "zk: session refused; closing the connection");
                let _ = wr.shutdown().await;
                return;
            }
            _ => continue,
        }
    };
    // A client that reads nothing for a whole session timeout is stalled:
    // its connection is closed (the session lives on until it expires), so
    // its unread answers and events do not pile up here.
    let stall = session_timeout.max(MIN_STALL);
    let mut w = Writer {
        peer,
        zxid: connected_zxid,
        fifo: VecDeque::new(),
        auths: vec![jute::ClientInfo {
            auth_scheme: "ip".into(),
            user: peer.ip().to_string(),
        }],
        buf: Vec::new(),
        close: false,
        in_flight,
    };
    let mut exp_open = true;
    loop {
        tokio::select! {
            e = exp_rx.recv(), if exp_open => match e {
                Some(e) => w.fifo.push_back(e),
                None => exp_open = false,
            },
            f = out_rx.recv() => match f {
                Some(Ok(f)) => w.frame(f, &mut exp_rx),
                _ => {
                    // The session is over: its last answers are written;
                    // flush replies made here that were waiting behind them.
                    while let Ok(e) = exp_rx.try_recv() {
                        w.fifo.push_back(e);
                    }
                    w.flush_locals();
                    w.close = true;
                }
            },
        }
        w.flush_locals();
        while !w.close && w.buf.len() < 64 * 1024 {
            match out_rx.try_recv() {
                Some(Ok(f)) => {
                    w.frame(f, &mut exp_rx);
                    w.flush_locals();
                }
                _ => break,
            }
        }
        if !w.buf.is_empty() {
            match tokio::time::timeout(stall, wr.write_all(&w.buf)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "zk: write failed; closing the connection");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, stalled_ms = stall.as_millis() as u64, "zk: the client has not read its replies for a session timeout; closing the connection");
                    return;
                }
            }
        }
        w.buf.clear();
        if w.close {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// The writer's state: expected replies in order, and the output buffer.
struct Writer {
    peer: SocketAddr,
    /// The newest zxid of anything forwarded from the session. A reply
    /// made here, or a session answer without a zxid, carries this one and
    /// not the live tree's: an event for a newer zxid may still be queued
    /// behind it, and a header zxid must not run ahead of the events the
    /// client has been sent (invariant 2; clients resume watches from it).
    zxid: i64,
    fifo: VecDeque<Entry>,
    /// Who this connection authenticated as (whoAmI).
    auths: Vec<jute::ClientInfo>,
    buf: Vec<u8>,
    close: bool,
    /// Permits of the requests in flight, returned as each is answered.
    in_flight: Arc<Semaphore>,
}

impl Writer {
    fn push(&mut self, body: &[u8]) {
        self.buf.extend_from_slice(&jute::frame(body));
    }

    /// Writes the adapter's own replies that are next in order.
    fn flush_locals(&mut self) {
        while matches!(self.fifo.front(), Some(Entry::Local { .. })) {
            let Some(Entry::Local { reply, close }) = self.fifo.pop_front() else {
                break;
            };
            let (header, body) = match reply {
                Local::Error { xid, code } => (
                    jute::ReplyHeader {
                        xid,
                        zxid: self.zxid,
                        err: code.number(),
                    },
                    jute::Response::Empty,
                ),
                Local::Auth { xid, scheme, id } => {
                    tracing::info!(peer = %self.peer, %scheme, %id, "zk: auth accepted (ACLs are stored, not enforced)");
                    let info = jute::ClientInfo {
                        auth_scheme: scheme,
                        user: id,
                    };
                    if !self.auths.contains(&info) {
                        self.auths.push(info);
                    }
                    (
                        jute::ReplyHeader {
                            xid,
                            zxid: 0,
                            err: 0,
                        },
                        jute::Response::Empty,
                    )
                }
                Local::MultiError { xid, errors } => (
                    jute::ReplyHeader {
                        xid,
                        zxid: self.zxid,
                        err: 0,
                    },
                    jute::Response::Multi(errors.into_iter().map(MultiResult::Error).collect()),
                ),
                Local::WhoAmI { xid } => (
                    jute::ReplyHeader {
                        xid,
                        zxid: self.zxid,
                        err: 0,
                    },
                    jute::Response::WhoAmI(self.auths.clone()),
                ),
            };
            let bytes = jute::encode_reply(&header, &body);
            self.push(&bytes);
            if close {
                self.close = true;
                self.fifo.clear();
                return;
            }
            self.in_flight.add_permits(1);
        }
    }

    /// Handles one frame from the session.
    fn frame(&mut self, f: pb::ServerFrame, exp_rx: &mut mpsc::UnboundedReceiver<Entry>) {
        use pb::server_frame::Frame as F;
        let Some(f) = f.frame else { return };
        let (rxid, zxid, answer) = match f {
            F::WatchEvent(ev) => {
                self.zxid = self.zxid.max(ev.zxid);
                let bytes = jute::encode_event(&jute::WatcherEvent {
                    event_type: ev.r#type,
                    state: KeeperState::SyncConnected.number(),
                    path: ev.path,
                });
                self.push(&bytes);
                return;
            }
            F::Response(r) => (r.xid, r.zxid, Some(r)),
            F::Pong(p) => (xid::PING as i64, p.zxid, None),
            F::ConnectError(e) => {
                tracing::info!(peer = %self.peer, code = e.code, message = %e.message, "zk: session ended; closing the connection");
                self.close = true;
                return;
            }
            F::Connected(_) => return,
        };
        // Its expectation was queued before the request reached the session.
        while let Ok(e) = exp_rx.try_recv() {
            self.fifo.push_back(e);
        }
        self.flush_locals();
        let Some(Entry::Remote(expect)) = self.fifo.pop_front() else {
            tracing::error!(peer = %self.peer, xid = rxid, "zk: an answer with no request waiting for it; closing the connection");
            self.close = true;
            return;
        };
        self.in_flight.add_permits(1);
        // A ping is answered with xid -2 whatever xid it was sent with, as
        // ZooKeeper does; every other answer echoes its request's xid.
        let (paired, xid) = match answer {
            None => (expect.opcode == op::PING, xid::PING),
            Some(_) => (expect.xid as i64 == rxid, expect.xid),
        };
        if !paired {
            tracing::error!(peer = %self.peer, expected = expect.xid, got = rxid, "zk: answers out of order; closing the connection");
            self.close = true;
            return;
        }
        let (err, body) = match &answer {
            Some(r) => convert::reply(&expect, r),
            None => (0, jute::Response::Empty),
        };
        self.zxid = self.zxid.max(zxid);
        let zxid = if zxid > 0 { zxid } else { self.zxid };
        let header = jute::ReplyHeader { xid, zxid, err };
        let bytes = jute::encode_reply(&header, &body);
        self.push(&bytes);
        if expect.opcode == op::CLOSE_SESSION {
            self.close = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Writer {
        Writer {
            peer: "127.0.0.1:1".parse().unwrap(),
            zxid: 5,
            fifo: VecDeque::new(),
            auths: vec![],
            buf: Vec::new(),
            close: false,
            in_flight: Arc::new(Semaphore::new(0)),
        }
    }

    /// (xid, zxid, err) of each reply frame written, events included.
    fn headers(buf: &[u8]) -> Vec<(i32, i64, i32)> {
        let mut out = Vec::new();
        let mut rest = buf;
        while let Ok(Some((body, used))) = split_frame(rest, jute::DEFAULT_MAX_FRAME) {
            let mut r = jute::wire::Reader::new(body);
            out.push((
                r.int("xid").unwrap(),
                r.long("zxid").unwrap(),
                r.int("err").unwrap(),
            ));
            rest = &rest[used..];
        }
        out
    }

    fn event(zxid: i64) -> pb::ServerFrame {
        pb::ServerFrame {
            frame: Some(pb::server_frame::Frame::WatchEvent(pb::WatchEvent {
                zxid,
                r#type: 3,
                path: "/a".into(),
            })),
        }
    }

    #[test]
    fn replies_made_here_carry_the_zxid_already_sent_not_a_newer_one() {
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let mut w = writer();
        w.fifo.push_back(Entry::Local {
            reply: Local::Error {
                xid: 1,
                code: Code::BadArguments,
            },
            close: false,
        });
        w.flush_locals();
        w.frame(event(9), &mut rx);
        w.fifo.push_back(Entry::Local {
            reply: Local::WhoAmI { xid: 2 },
            close: false,
        });
        w.fifo.push_back(Entry::Remote(Expect {
            xid: 3,
            opcode: op::DELETE,
            sub_ops: vec![],
            path: String::new(),
        }));
        // A write refused before reaching the log: no zxid of its own.
        w.frame(
            pb::ServerFrame {
                frame: Some(pb::server_frame::Frame::Response(pb::Response {
                    xid: 3,
                    zxid: 0,
                    error: Code::SessionExpired.number(),
                    message: String::new(),
                    result: None,
                })),
            },
            &mut rx,
        );
        let h = headers(&w.buf);
        assert_eq!(h[0], (1, 5, Code::BadArguments.number()));
        assert_eq!(h[1].0, xid::NOTIFICATION);
        assert_eq!(h[2], (2, 9, 0));
        assert_eq!(h[3], (3, 9, Code::SessionExpired.number()));
        assert_eq!(
            w.in_flight.available_permits(),
            3,
            "a permit back per reply"
        );
    }

    #[test]
    fn a_ping_sent_with_any_xid_is_answered_with_the_ping_xid() {
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let mut w = writer();
        w.fifo.push_back(Entry::Remote(Expect {
            xid: 42,
            opcode: op::PING,
            sub_ops: vec![],
            path: String::new(),
        }));
        w.frame(
            pb::ServerFrame {
                frame: Some(pb::server_frame::Frame::Pong(pb::Pong { zxid: 8 })),
            },
            &mut rx,
        );
        assert!(!w.close, "not taken for an answer out of order");
        assert_eq!(headers(&w.buf), vec![(xid::PING, 8, 0)]);
    }
}
