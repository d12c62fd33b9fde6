//! One ZooKeeper-protocol connection: jute frames are decoded into the
//! session core's messages ([`super::codec`]), served by the session core
//! (`session::serve`), and its answers and events encoded back, in order.
//!
//! The reader feeds the core through a small bounded channel, so a client
//! that pipelines more than the core takes (`session::MAX_IN_FLIGHT`
//! unanswered) is pushed back through TCP; the writer drains the core's
//! bounded outgoing queue, which cuts a client that stops reading.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use warden_proto::jute::{self, frame::split_frame, op, xid, DecodeError};
use warden_proto::vocab::KeeperState;

use super::codec::{self, Decoded};
use super::four_letter;
use crate::error::{Code, ZkError};
use crate::net::accept::Conn;
use crate::session::message::{Inbound, Outbound, Reply};
use crate::session::outq::{self, OutRx};
use crate::session::{self, Ctx};

/// How long a new connection may take to send its first frame.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// Requests decoded and not yet taken by the session core.
const INBOUND: usize = 64;

type OwnedReadHalf = ReadHalf<Conn>;
type OwnedWriteHalf = WriteHalf<Conn>;

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
pub async fn serve(ctx: Ctx, sock: Conn) {
    let peer = sock.remote.addr;
    let x509 = sock.remote.x509.clone();
    let (mut rd, mut wr) = tokio::io::split(sock);
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
    let (in_tx, in_rx) = mpsc::channel(INBOUND);
    let (out_tx, out_rx) = outq::channel(outq::CAPACITY);
    let reg = ctx.conns.register("zk", Some(peer), x509);
    tokio::spawn(session::serve(
        ctx.clone(),
        reg,
        codec::connect(&connect, peer),
        ReceiverStream::new(in_rx),
        out_tx,
    ));
    let mut writer = tokio::spawn(write_loop(wr, peer, out_rx, connect.read_only.is_some()));
    tokio::select! {
        _ = read_loop(rd, buf, peer, in_tx) => {
            let _ = (&mut writer).await;
        }
        _ = &mut writer => {}
    }
}

/// Decodes requests and feeds the session core, in order.
async fn read_loop(
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    peer: SocketAddr,
    in_tx: mpsc::Sender<Inbound>,
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
        let (decoded, last) = match jute::decode_request(&body) {
            Ok((h, req)) => {
                tracing::debug!(%peer, xid = h.xid, op = op::name(h.opcode), "zk: request");
                let closing = matches!(req, jute::Request::CloseSession);
                (codec::inbound(h.xid, req), closing)
            }
            Err(DecodeError::UnknownOpcode { xid, opcode }) => {
                // As ZooKeeper's UnimplementedRequestProcessor: answer, then close.
                tracing::warn!(%peer, xid, opcode, "zk: unknown opcode; answering Unimplemented and closing the connection");
                let e = ZkError::new(Code::Unimplemented, format!("unknown opcode {opcode}"));
                (codec::refused(xid, e), true)
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "zk: malformed request; closing the connection");
                return;
            }
        };
        match decoded {
            Decoded::Session(m) => {
                // Waits while the core has as many requests as it takes.
                if in_tx.send(m).await.is_err() || last {
                    return;
                }
            }
            Decoded::Close(why) => {
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
    read_only_byte: bool,
) {
    let read_only = read_only_byte.then_some(false);
    // The session's first answer: Connected, or why not.
    let (connected_zxid, session_timeout) = loop {
        match out_rx.recv().await {
            Some(Ok(Outbound::Connected {
                session_id,
                password,
                timeout_ms,
                last_zxid,
                ..
            })) => {
                let resp = jute::ConnectResponse {
                    protocol_version: 0,
                    timeout_ms: timeout_ms as i32,
                    session_id: session_id as i64,
                    passwd: password,
                    read_only,
                };
                if wr.write_all(&jute::frame(&resp.encode())).await.is_err() {
                    return;
                }
                break (last_zxid, Duration::from_millis(u64::from(timeout_ms)));
            }
            Some(Ok(Outbound::Ended { code, message })) => {
                if code == Code::SessionExpired || code == Code::AuthFailed {
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
                tracing::info!(%peer, code = code.name(), %message, "zk: session refused; closing the connection");
                let _ = wr.shutdown().await;
                return;
            }
            Some(_) => continue,
            None => return,
        }
    };
    // A client that reads nothing for a whole session timeout is stalled:
    // its connection is closed (the session lives on until it expires).
    let stall = session_timeout.max(session::MIN_STALL);
    let mut w = Writer {
        peer,
        zxid: connected_zxid,
        buf: Vec::new(),
        close: false,
    };
    loop {
        match out_rx.recv().await {
            Some(Ok(o)) => w.outbound(o),
            Some(Err(cut)) => {
                tracing::info!(%peer, reason = %cut.0, "zk: closing the connection");
                w.close = true;
            }
            None => w.close = true,
        }
        while !w.close && w.buf.len() < 64 * 1024 {
            match out_rx.try_recv() {
                Some(Ok(o)) => w.outbound(o),
                Some(Err(_)) => w.close = true,
                None => break,
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

/// The writer's state: the newest zxid sent, and the output buffer.
struct Writer {
    peer: SocketAddr,
    /// The newest zxid of anything sent. An answer without a zxid of its
    /// own (a request refused before the log) carries this one and not
    /// the live tree's: an event for a newer zxid may still be queued
    /// behind it, and a header zxid must not run ahead of the events the
    /// client has been sent (invariant 2; clients resume watches from it).
    zxid: i64,
    buf: Vec<u8>,
    close: bool,
}

impl Writer {
    fn push(&mut self, body: &[u8]) {
        self.buf.extend_from_slice(&jute::frame(body));
    }

    /// Encodes one item from the session core.
    fn outbound(&mut self, o: Outbound) {
        let (header, body) = match o {
            Outbound::Event { zxid, kind, path } => {
                self.zxid = self.zxid.max(zxid);
                let bytes = jute::encode_event(&jute::WatcherEvent {
                    event_type: kind.number(),
                    state: KeeperState::SyncConnected.number(),
                    path,
                });
                self.push(&bytes);
                return;
            }
            // A ping is answered with xid -2 whatever xid it was sent with,
            // as ZooKeeper does.
            Outbound::Pong { zxid } => (
                jute::ReplyHeader {
                    xid: xid::PING,
                    zxid: self.seen(zxid),
                    err: 0,
                },
                jute::Response::Empty,
            ),
            Outbound::Answer(a) => {
                // ZooKeeper answers auth with zxid 0.
                let zxid = match a.result {
                    Ok(Reply::Authenticated) => 0,
                    _ => self.seen(a.zxid),
                };
                let xid = a.xid as i32;
                let (err, body) = codec::reply(a.result);
                (jute::ReplyHeader { xid, zxid, err }, body)
            }
            Outbound::Ended { code, message } => {
                tracing::info!(peer = %self.peer, code = code.name(), %message, "zk: session ended; closing the connection");
                self.close = true;
                return;
            }
            Outbound::Connected { .. } | Outbound::GoAway { .. } => return,
        };
        let bytes = jute::encode_reply(&header, &body);
        self.push(&bytes);
    }

    /// The zxid a reply header carries: its own, or (0: none) the newest sent.
    fn seen(&mut self, zxid: i64) -> i64 {
        self.zxid = self.zxid.max(zxid);
        if zxid > 0 {
            zxid
        } else {
            self.zxid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::message::Answer;

    fn writer() -> Writer {
        Writer {
            peer: "127.0.0.1:1".parse().unwrap(),
            zxid: 5,
            buf: Vec::new(),
            close: false,
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

    fn event(zxid: i64) -> Outbound {
        Outbound::Event {
            zxid,
            kind: crate::watch::WatchEventType::NodeDataChanged,
            path: "/a".into(),
        }
    }

    fn refused(xid: i64, code: Code) -> Outbound {
        Outbound::Answer(Answer::error(xid, 0, ZkError::new(code, "")))
    }

    #[test]
    fn answers_without_a_zxid_carry_the_zxid_already_sent_not_a_newer_one() {
        let mut w = writer();
        w.outbound(refused(1, Code::BadArguments));
        w.outbound(event(9));
        w.outbound(Outbound::Answer(Answer {
            xid: 2,
            zxid: 0,
            result: Ok(Reply::WhoAmI(vec![])),
        }));
        // A write refused before reaching the log: no zxid of its own.
        w.outbound(refused(3, Code::SessionExpired));
        let h = headers(&w.buf);
        assert_eq!(h[0], (1, 5, Code::BadArguments.number()));
        assert_eq!(h[1].0, xid::NOTIFICATION);
        assert_eq!(h[2], (2, 9, 0));
        assert_eq!(h[3], (3, 9, Code::SessionExpired.number()));
    }

    #[test]
    fn pings_are_answered_with_the_ping_xid_and_auth_with_zxid_zero() {
        let mut w = writer();
        w.outbound(Outbound::Pong { zxid: 8 });
        w.outbound(Outbound::Answer(Answer {
            xid: -4,
            zxid: 0,
            result: Ok(Reply::Authenticated),
        }));
        assert!(!w.close);
        assert_eq!(headers(&w.buf), vec![(xid::PING, 8, 0), (-4, 0, 0)]);
    }
}
