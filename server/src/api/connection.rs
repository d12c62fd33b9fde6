//! One client connection serving one session, whatever the protocol: the
//! gRPC stream feeds [`serve`] directly, and the ZooKeeper listener
//! (`api::zk`) feeds it frames decoded from jute.
//!
//! Two tasks per connection keep the per-session FIFO (invariant 2):
//! - the *reader* takes frames in order, submits writes to the log at once
//!   (so they pipeline and share fsyncs) and queues every request, in order;
//! - the *responder* answers the queue in order: it awaits each write's
//!   result, and runs each read only when everything before it is answered,
//!   so a read sees the session's earlier writes.
//!
//! A write that arrives while one of the session's reads is still queued
//! is *deferred*: the responder submits it once that read is served (with
//! every deferred write behind it up to the next read, so they still share
//! a flush). A read therefore sees exactly the session's earlier writes and
//! none of its later ones, as in ZooKeeper.
//!
//! Watch events are pushed onto the same outgoing queue by apply, under the
//! tree lock, so an event for zxid Z always precedes a response that
//! reflects a state at or after Z.
//!
//! Both protocols get the same bounds: at most [`MAX_IN_FLIGHT`] requests
//! are queued unanswered (past that the reader stops reading, so the
//! client's transport pushes back), and the outgoing queue
//! ([`super::outq`]) cuts a connection whose client has not read for a
//! session timeout or is more than its capacity behind; the session is
//! kept.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use rand::RngCore;
use tokio::sync::{mpsc, watch, Notify};
use tonic::Status;
use warden_proto as pb;
use warden_proto::vocab::AddWatchMode;

use super::convert;
use super::registry::{ConnInfo, Registered, Registry};
use crate::config::Config;
use crate::error::{Code, ZkError};
use crate::metrics::Metrics;
use crate::raft::proposer::{Proposer, WriteReceiver};
use crate::raft::state_machine::Shared;
use crate::tree::DataTree;
use crate::txn::{Op, Outcome};
use crate::watch::{EventSink, RemoveKind, Rewatch, WatchEventType, WatchKind};

pub use super::outq::Out;

/// Requests one connection may have unanswered before its reader stops
/// reading (ZooKeeper's `globalOutstandingLimit` default): a client that
/// pipelines without reading its replies is slowed, not buffered forever.
/// The ZooKeeper adapter applies it too, to the replies it makes itself.
pub const MAX_IN_FLIGHT: usize = 1000;

/// The shortest time a client may leave its replies unread before its
/// connection is cut (the session timeout, if longer, applies); both
/// protocols use it.
pub const MIN_STALL: Duration = Duration::from_secs(2);

/// Everything a connection needs from the server.
#[derive(Clone)]
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub proposer: Proposer,
    pub config: Arc<Config>,
    pub shutdown: watch::Receiver<bool>,
    pub turns: Arc<SessionTurns>,
    /// Live connections of both protocols.
    pub conns: Arc<Registry>,
}

/// One connection at a time per session: a resumed session's new
/// connection starts only after the previous one has answered everything
/// it accepted, so the session's requests stay in order across connections.
#[derive(Default)]
pub struct SessionTurns {
    locks: parking_lot::Mutex<std::collections::HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

impl SessionTurns {
    fn lock_of(&self, session: u64) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().entry(session).or_default().clone()
    }

    fn forget_if_idle(&self, session: u64) {
        let mut g = self.locks.lock();
        if g.get(&session)
            .map(|l| Arc::strong_count(l) == 1)
            .unwrap_or(false)
        {
            g.remove(&session);
        }
    }
}

/// The session's event sink: the connection's outgoing channel.
struct Sink {
    out: Out,
    closing: AtomicBool,
    ended: Notify,
}

fn frame(f: pb::server_frame::Frame) -> Result<pb::ServerFrame, Status> {
    Ok(pb::ServerFrame { frame: Some(f) })
}

impl EventSink for Sink {
    fn event(&self, zxid: i64, kind: WatchEventType, path: &str) {
        let _ = self
            .out
            .send(frame(pb::server_frame::Frame::WatchEvent(pb::WatchEvent {
                zxid,
                r#type: convert::event_type(kind),
                path: path.to_string(),
            })));
    }

    fn session_ended(&self, code: Code) {
        if !self.closing.load(Ordering::SeqCst) {
            let message = match code {
                Code::SessionMoved => "the session was resumed on another connection".to_string(),
                _ => "the session has expired; open a new session".to_string(),
            };
            let _ = self.out.send(frame(pb::server_frame::Frame::ConnectError(
                pb::ConnectError {
                    code: code.number(),
                    message,
                },
            )));
        }
        self.ended.notify_one();
    }
}

/// What keeps a session's later writes from overtaking its earlier reads.
#[derive(Default)]
struct Order {
    /// Reads queued and not served yet.
    reads: AtomicUsize,
    /// Writes deferred and not submitted yet.
    deferred: AtomicUsize,
    /// The client sent closeSession: the writes deferred before it still
    /// go in, although the session is already marked closing.
    client_closed: AtomicBool,
}

impl Order {
    /// A write must wait for the responder if a read is ahead of it, or
    /// if an earlier write is already waiting (writes enter the log in order).
    fn must_defer(&self) -> bool {
        self.reads.load(Ordering::SeqCst) > 0 || self.deferred.load(Ordering::SeqCst) > 0
    }
}

/// A queued answer, in request order.
enum Pending {
    Write {
        xid: i64,
        op: &'static str,
        rx: WriteReceiver,
        started: Instant,
    },
    /// A validated write the responder submits when its turn comes.
    Deferred {
        xid: i64,
        op: &'static str,
        txn: Op,
        started: Instant,
    },
    Read {
        xid: i64,
        op: pb::request::Op,
        started: Instant,
    },
    Sync {
        xid: i64,
        started: Instant,
    },
    Ready(pb::Response, &'static str),
    Pong,
}

fn connect_error(out: &Out, code: Code, message: String) {
    tracing::info!(code = code.name(), %message, "refused a connection");
    let _ = out.send(frame(pb::server_frame::Frame::ConnectError(
        pb::ConnectError {
            code: code.number(),
            message,
        },
    )));
}

/// Serves one stream until the client leaves, the session ends or the
/// server shuts down. `conn` lists the connection (for `cons`) meanwhile.
pub async fn serve<S>(ctx: Ctx, conn: Registered, mut inbound: S, out: Out)
where
    S: Stream<Item = Result<pb::ClientFrame, Status>> + Send + Unpin,
{
    let metrics = ctx.shared.metrics.clone();
    metrics.connections.inc();
    let first = tokio::time::timeout(Duration::from_secs(30), inbound.next()).await;
    let connect = match first {
        Ok(Some(Ok(pb::ClientFrame {
            frame: Some(pb::client_frame::Frame::Connect(c)),
        }))) => c,
        Ok(Some(Ok(_))) => {
            connect_error(
                &out,
                Code::BadArguments,
                "the first frame of a session stream must be Connect".into(),
            );
            metrics.connections.dec();
            return;
        }
        Ok(Some(Err(e))) => {
            tracing::debug!(error = %e, "connection failed before Connect");
            metrics.connections.dec();
            return;
        }
        Ok(None) | Err(_) => {
            metrics.connections.dec();
            return;
        }
    };
    match open_session(&ctx, &connect).await {
        Ok((session, password, timeout_ms)) => {
            conn.info.session.store(session, Ordering::Relaxed);
            conn.info.timeout_ms.store(timeout_ms, Ordering::Relaxed);
            run_session(
                &ctx,
                conn.info.clone(),
                session,
                password,
                timeout_ms,
                inbound,
                out,
            )
            .await;
        }
        Err(e) => connect_error(&out, e.code, e.message),
    }
    metrics.connections.dec();
}

/// Creates a new session, or checks the id and password of one being resumed.
async fn open_session(ctx: &Ctx, c: &pb::Connect) -> Result<(u64, Vec<u8>, u32), ZkError> {
    let last_zxid = ctx.shared.state.read().tree.last_zxid();
    if c.last_zxid > last_zxid {
        return Err(ZkError::new(
            Code::ConnectionLoss,
            format!(
                "this server has applied up to zxid {last_zxid} but the client has seen {}; try another server",
                c.last_zxid
            ),
        ));
    }
    if c.session_id != 0 {
        let info = ctx.shared.state.read().tree.session(c.session_id).cloned();
        let Some(info) = info else {
            return Err(ZkError::new(
                Code::SessionExpired,
                format!(
                    "session 0x{:x} has expired or never existed; open a new session",
                    c.session_id
                ),
            ));
        };
        if info.password != c.password {
            return Err(ZkError::new(
                Code::AuthFailed,
                format!("wrong password for session 0x{:x}", c.session_id),
            ));
        }
        if !ctx.shared.sessions.touch(c.session_id, Instant::now()) {
            return Err(ZkError::new(
                Code::SessionExpired,
                format!(
                    "session 0x{:x} is expiring; open a new session",
                    c.session_id
                ),
            ));
        }
        tracing::info!(session = format!("0x{:x}", c.session_id), "session resumed");
        return Ok((c.session_id, info.password, info.timeout_ms));
    }
    let timeout_ms = ctx.config.negotiate_timeout(c.timeout_ms);
    for _ in 0..5 {
        let (id, password) = {
            let mut rng = rand::rng();
            let mut password = vec![0u8; 16];
            rng.fill_bytes(&mut password);
            (session_id(ctx.config.server_id, rng.next_u64()), password)
        };
        let r = ctx
            .proposer
            .propose(
                0,
                Op::CreateSession {
                    session_id: id,
                    password,
                    timeout_ms,
                },
            )
            .await?;
        match r.result {
            Ok(Outcome::SessionCreated {
                session_id,
                password,
                timeout_ms,
            }) => {
                tracing::info!(
                    session = format!("0x{session_id:x}"),
                    timeout_ms,
                    client = %c.client_name,
                    "session opened"
                );
                return Ok((session_id, password, timeout_ms));
            }
            Ok(_) => {
                return Err(ZkError::new(
                    Code::SystemError,
                    "unexpected result opening a session",
                ))
            }
            Err(e) if e.error.code == Code::SystemError => continue,
            Err(e) => return Err(e.error),
        }
    }
    Err(ZkError::new(
        Code::SystemError,
        "could not allocate a session id",
    ))
}

/// A new session id: the server id in the top byte, as ZooKeeper's, and
/// random bits below. The top byte keeps ids clear of ZooKeeper's
/// ephemeral-owner markers (0x80 containers, 0xFF TTL nodes), which tools
/// decode from `ephemeralOwner`.
fn session_id(server_id: u64, random: u64) -> u64 {
    ((server_id & 0x7F) << 56) | (random & 0x00FF_FFFF_FFFF_FFFF) | 1
}

async fn run_session<S>(
    ctx: &Ctx,
    conn: Arc<ConnInfo>,
    session: u64,
    password: Vec<u8>,
    timeout_ms: u32,
    mut inbound: S,
    out: Out,
) where
    S: Stream<Item = Result<pb::ClientFrame, Status>> + Send + Unpin,
{
    let conn_id = conn.id;
    let sink = Arc::new(Sink {
        out: out.clone(),
        closing: AtomicBool::new(false),
        ended: Notify::new(),
    });
    // Tell the previous connection (if any) to end, and wait for its turn.
    if let Some(old) = ctx.shared.watches.sink_of(session) {
        old.session_ended(Code::SessionMoved);
    }
    let turn = ctx.turns.lock_of(session);
    let Ok(turn) = tokio::time::timeout(Duration::from_secs(10), turn.lock_owned()).await else {
        connect_error(
            &out,
            Code::ConnectionLoss,
            format!("the previous connection of session 0x{session:x} is still finishing; retry"),
        );
        return;
    };
    let last_zxid = {
        let st = ctx.shared.state.read();
        if let Some(old) = ctx.shared.watches.attach(session, conn_id, sink.clone()) {
            old.session_ended(Code::SessionMoved);
        }
        st.tree.last_zxid()
    };
    let _ = out.send(frame(pb::server_frame::Frame::Connected(pb::Connected {
        session_id: session,
        password,
        timeout_ms,
        server_id: ctx.config.server_id,
        last_zxid,
        read_only: false,
    })));
    let (pend_tx, pend_rx) = mpsc::channel(MAX_IN_FLIGHT);
    let order = Arc::new(Order::default());
    let watchdog = tokio::spawn(watch_output(
        out.clone(),
        sink.clone(),
        Duration::from_millis(timeout_ms as u64).max(MIN_STALL),
        format!("0x{session:x}"),
    ));
    let responder = tokio::spawn(respond(
        ctx.clone(),
        conn.clone(),
        session,
        order.clone(),
        pend_rx,
        out,
    ));
    let mut shutdown = ctx.shutdown.clone();
    let sid = format!("0x{session:x}");
    loop {
        let msg = tokio::select! {
            m = inbound.next() => m,
            _ = sink.ended.notified() => break,
            _ = shutdown.changed() => break,
        };
        let f = match msg {
            Some(Ok(f)) => f,
            None => {
                tracing::debug!(session = %sid, "client closed the stream");
                break;
            }
            Some(Err(e)) => {
                tracing::debug!(session = %sid, error = %e, "connection dropped");
                break;
            }
        };
        let now = Instant::now();
        ctx.shared.sessions.touch(session, now);
        ctx.conns.received(&conn);
        let p = match f.frame {
            Some(pb::client_frame::Frame::Ping(_)) => Pending::Pong,
            Some(pb::client_frame::Frame::Request(r)) => {
                request(ctx, session, &order, r, now).await
            }
            Some(pb::client_frame::Frame::Close(c)) => {
                sink.closing.store(true, Ordering::SeqCst);
                order.client_closed.store(true, Ordering::SeqCst);
                ctx.shared.sessions.mark_closing(session);
                let txn = Op::CloseSession {
                    session_id: session,
                };
                let p = if order.must_defer() {
                    order.deferred.fetch_add(1, Ordering::SeqCst);
                    Pending::Deferred {
                        xid: c.xid,
                        op: "close_session",
                        txn,
                        started: now,
                    }
                } else {
                    match ctx.proposer.submit(session, txn) {
                        Ok(rx) => Pending::Write {
                            xid: c.xid,
                            op: "close_session",
                            rx,
                            started: now,
                        },
                        Err(e) => {
                            Pending::Ready(convert::error_response(c.xid, 0, &e), "close_session")
                        }
                    }
                };
                let _ = pend_tx.send(p).await;
                tracing::info!(session = %sid, "session closed by client");
                break;
            }
            Some(pb::client_frame::Frame::Connect(_)) => {
                tracing::info!(session = %sid, "protocol error: Connect on an open session; closing the connection");
                break;
            }
            None => {
                tracing::info!(session = %sid, "protocol error: empty frame; closing the connection");
                break;
            }
        };
        // Waits while MAX_IN_FLIGHT requests are unanswered.
        let queued = tokio::select! {
            r = pend_tx.send(p) => r.is_ok(),
            _ = sink.ended.notified() => false,
            _ = shutdown.changed() => false,
        };
        if !queued {
            break;
        }
    }
    watchdog.abort();
    drop(pend_tx);
    let _ = responder.await;
    ctx.shared.watches.detach(session, conn_id);
    drop(turn);
    ctx.turns.forget_if_idle(session);
}

/// Cuts the connection when its client has read nothing for `stall` while
/// frames wait, and ends the reader once the connection is cut (also when
/// the queue cut it for being too far behind). The session is kept.
async fn watch_output(out: Out, sink: Arc<Sink>, stall: Duration, sid: String) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if out.stalled_for().is_some_and(|d| d >= stall) {
            tracing::info!(session = %sid, stalled_ms = stall.as_millis() as u64, "the client has not read for a session timeout; closing the connection (the session is kept)");
            out.cut("the client did not read for a session timeout; reconnect");
        }
        if out.is_cut() {
            tracing::info!(session = %sid, "closing a connection whose client stopped reading (the session is kept)");
            sink.ended.notify_one();
            return;
        }
    }
}

/// Turns a request into its queue entry, submitting writes at once.
async fn request(ctx: &Ctx, session: u64, order: &Order, r: pb::Request, now: Instant) -> Pending {
    use pb::request::Op as R;
    let xid = r.xid;
    let Some(op) = r.op else {
        return Pending::Ready(
            convert::error_response(
                xid,
                0,
                &ZkError::new(Code::Unimplemented, "unknown or missing operation"),
            ),
            "unknown",
        );
    };
    let write = match &op {
        R::Create(c) => convert::create_op(c),
        R::Delete(d) => Ok(Op::Delete {
            path: d.path.clone(),
            version: d.version,
        }),
        R::SetData(s) => Ok(Op::SetData {
            path: s.path.clone(),
            data: s.data.clone(),
            version: s.version,
        }),
        R::SetAcl(s) => Ok(Op::SetAcl {
            path: s.path.clone(),
            acl: convert::acl_in(&s.acl),
            version: s.version,
        }),
        R::Multi(m) => m
            .ops
            .iter()
            .map(convert::multi_op)
            .collect::<Result<Vec<_>, _>>()
            .map(Op::Multi),
        R::Sync(_) => {
            return Pending::Sync { xid, started: now };
        }
        _ => {
            order.reads.fetch_add(1, Ordering::SeqCst);
            return Pending::Read {
                xid,
                op,
                started: now,
            };
        }
    };
    let name = match &write {
        Ok(o) => o.name(),
        Err(_) => "invalid",
    };
    let submitted = async {
        let op = write?;
        op.validate()?;
        if !ctx.shared.sessions.is_live(session) {
            return Err(ZkError::new(
                Code::SessionExpired,
                format!("session 0x{session:x} has expired"),
            ));
        }
        if order.must_defer() {
            order.deferred.fetch_add(1, Ordering::SeqCst);
            return Ok(Err(op));
        }
        ctx.proposer.submit(session, op).map(Ok)
    }
    .await;
    match submitted {
        Ok(Ok(rx)) => Pending::Write {
            xid,
            op: name,
            rx,
            started: now,
        },
        Ok(Err(txn)) => Pending::Deferred {
            xid,
            op: name,
            txn,
            started: now,
        },
        Err(e) => Pending::Ready(convert::error_response(xid, 0, &e), name),
    }
}

/// Submits a deferred write; the result is awaited in its turn. The
/// session is checked again: it may have expired while the write waited,
/// and an expired session's write must not reach the log.
fn submit_deferred(ctx: &Ctx, session: u64, order: &Order, p: Pending) -> Pending {
    let Pending::Deferred {
        xid,
        op,
        txn,
        started,
    } = p
    else {
        return p;
    };
    let r = if ctx.shared.sessions.is_live(session) || order.client_closed.load(Ordering::SeqCst) {
        ctx.proposer.submit(session, txn)
    } else {
        Err(ZkError::new(
            Code::SessionExpired,
            format!("session 0x{session:x} expired while this write waited for an earlier read"),
        ))
    };
    order.deferred.fetch_sub(1, Ordering::SeqCst);
    match r {
        Ok(rx) => Pending::Write {
            xid,
            op,
            rx,
            started,
        },
        Err(e) => Pending::Ready(convert::error_response(xid, 0, &e), op),
    }
}

/// Answers queued requests strictly in order.
async fn respond(
    ctx: Ctx,
    conn: Arc<ConnInfo>,
    session: u64,
    order: Arc<Order>,
    mut rx: mpsc::Receiver<Pending>,
    out: Out,
) {
    let metrics = ctx.shared.metrics.clone();
    // Entries taken from the queue early, to submit deferred writes together.
    let mut ahead: VecDeque<Pending> = VecDeque::new();
    loop {
        let p = match ahead.pop_front() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => break,
            },
        };
        let p = if matches!(p, Pending::Deferred { .. }) {
            // Every read before it is answered: submit it, and the deferred
            // writes right behind it up to the next read.
            let first = submit_deferred(&ctx, session, &order, p);
            while ahead.len() < MAX_IN_FLIGHT {
                match rx.try_recv() {
                    Ok(next) => ahead.push_back(next),
                    Err(_) => break,
                }
            }
            for slot in ahead.iter_mut() {
                match slot {
                    Pending::Read { .. } => break,
                    Pending::Deferred { .. } => {
                        let taken = std::mem::replace(slot, Pending::Pong);
                        *slot = submit_deferred(&ctx, session, &order, taken);
                    }
                    _ => {}
                }
            }
            first
        } else {
            p
        };
        let (resp, op, started) = match p {
            Pending::Deferred { xid, op, .. } => (
                convert::error_response(
                    xid,
                    0,
                    &ZkError::new(Code::SystemError, "a deferred write was not submitted"),
                ),
                op,
                None,
            ),
            Pending::Pong => {
                let zxid = ctx.shared.state.read().tree.last_zxid();
                ctx.conns.answered(&conn, "ping", None);
                if out
                    .send(frame(pb::server_frame::Frame::Pong(pb::Pong { zxid })))
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Pending::Ready(r, op) => (r, op, None),
            Pending::Write {
                xid,
                op,
                rx,
                started,
            } => {
                let r = match Proposer::wait(rx).await {
                    Ok(t) => match &t.result {
                        Ok(o) => pb::Response {
                            xid,
                            zxid: t.zxid,
                            error: 0,
                            message: String::new(),
                            result: Some(convert::outcome(o)),
                        },
                        Err(e) => convert::txn_error_response(xid, t.zxid, e),
                    },
                    Err(e) => convert::error_response(xid, 0, &e),
                };
                (r, op, Some(started))
            }
            Pending::Sync { xid, started } => {
                let r = match ctx.proposer.sync().await {
                    Ok(()) => pb::Response {
                        xid,
                        zxid: ctx.shared.state.read().tree.last_zxid(),
                        error: 0,
                        message: String::new(),
                        result: Some(pb::response::Result::Empty(pb::Empty {})),
                    },
                    Err(e) => convert::error_response(xid, 0, &e),
                };
                (r, "sync", Some(started))
            }
            Pending::Read { xid, op, started } => {
                let st = ctx.shared.state.read();
                let (name, r) = read(&ctx, &st.tree, session, xid, op);
                order.reads.fetch_sub(1, Ordering::SeqCst);
                record(&metrics, session, name, Some(started), &r);
                ctx.conns.answered(&conn, name, Some(started.elapsed()));
                // Sent under the tree lock: the event of a later change, which
                // apply queues under the write lock, cannot overtake this reply
                // (the client registers the watch when the reply arrives).
                let sent = out
                    .send(frame(pb::server_frame::Frame::Response(r)))
                    .is_ok();
                drop(st);
                if !sent {
                    break;
                }
                continue;
            }
        };
        record(&metrics, session, op, started, &resp);
        ctx.conns.answered(&conn, op, started.map(|s| s.elapsed()));
        if out
            .send(frame(pb::server_frame::Frame::Response(resp)))
            .is_err()
        {
            break;
        }
    }
}

/// Counts an answer in the metrics and the debug log.
fn record(
    metrics: &Metrics,
    session: u64,
    op: &'static str,
    started: Option<Instant>,
    resp: &pb::Response,
) {
    metrics.requests.with_label_values(&[op]).inc();
    if resp.error != 0 {
        let name = pb::ErrorCode::try_from(resp.error)
            .map(|c| c.as_str_name())
            .unwrap_or("UNKNOWN");
        metrics.request_errors.with_label_values(&[name]).inc();
    }
    if let Some(s) = started {
        metrics
            .request_latency
            .with_label_values(&[op])
            .observe(s.elapsed().as_secs_f64());
    }
    tracing::debug!(
        session = format!("0x{session:x}"),
        xid = resp.xid,
        op,
        error = resp.error,
        "answered"
    );
}

/// The watcher type a request names; unspecified or unknown means any.
fn remove_kind(watcher_type: i32) -> RemoveKind {
    RemoveKind::from_number(watcher_type).unwrap_or(RemoveKind::Any)
}

fn validate(path: &str) -> Result<(), ZkError> {
    crate::tree::path::validate_path(path)
}

/// Serves a read from the local tree, registering its watch under the same
/// lock so no change can slip between the read and the watch.
fn read(
    ctx: &Ctx,
    tree: &DataTree,
    session: u64,
    xid: i64,
    op: pb::request::Op,
) -> (&'static str, pb::Response) {
    use pb::request::Op as R;
    use pb::response::Result as Res;
    let zxid = tree.last_zxid();
    let watches = &ctx.shared.watches;
    let ok = |r: Res| pb::Response {
        xid,
        zxid,
        error: 0,
        message: String::new(),
        result: Some(r),
    };
    let get_data = |g: &pb::GetData| -> Result<pb::DataResult, ZkError> {
        validate(&g.path)?;
        let n = tree
            .node(&g.path)
            .ok_or_else(|| ZkError::no_node(&g.path))?;
        if g.watch {
            watches.add(session, WatchKind::Data, &g.path);
        }
        Ok(pb::DataResult {
            data: n.data.clone(),
            stat: Some(convert::stat(&n.stat)),
        })
    };
    let get_children = |g: &pb::GetChildren| -> Result<pb::ChildrenResult, ZkError> {
        validate(&g.path)?;
        let n = tree
            .node(&g.path)
            .ok_or_else(|| ZkError::no_node(&g.path))?;
        if g.watch {
            watches.add(session, WatchKind::Child, &g.path);
        }
        Ok(pb::ChildrenResult {
            children: n.children.iter().cloned().collect(),
            stat: Some(convert::stat(&n.stat)),
        })
    };
    let exists = |g: &pb::Exists| -> Result<pb::ExistsResult, ZkError> {
        validate(&g.path)?;
        if g.watch {
            watches.add(session, WatchKind::Data, &g.path);
        }
        Ok(pb::ExistsResult {
            stat: tree.node(&g.path).map(|n| convert::stat(&n.stat)),
        })
    };
    let (name, r): (&'static str, Result<Res, ZkError>) = match op {
        R::GetData(g) => ("get_data", get_data(&g).map(Res::Data)),
        R::GetChildren(g) => ("get_children", get_children(&g).map(Res::Children)),
        R::Exists(g) => ("exists", exists(&g).map(Res::Exists)),
        R::GetAcl(g) => (
            "get_acl",
            validate(&g.path).and_then(|_| {
                let n = tree
                    .node(&g.path)
                    .ok_or_else(|| ZkError::no_node(&g.path))?;
                Ok(Res::Acl(pb::AclResult {
                    acl: convert::acl_out(&n.acl),
                    stat: Some(convert::stat(&n.stat)),
                }))
            }),
        ),
        R::GetEphemerals(g) => (
            "get_ephemerals",
            Ok(Res::Paths(pb::PathsResult {
                paths: tree
                    .ephemerals_of(session)
                    .into_iter()
                    .filter(|p| p.starts_with(&g.prefix))
                    .collect(),
            })),
        ),
        R::GetAllChildrenNumber(g) => (
            "get_all_children_number",
            validate(&g.path).and_then(|_| {
                Ok(Res::Count(pb::CountResult {
                    count: tree.count_descendants(&g.path)? as i32,
                }))
            }),
        ),
        R::MultiRead(m) => {
            let results = m
                .ops
                .iter()
                .map(|o| {
                    let r = match &o.op {
                        Some(pb::read_op::Op::GetData(g)) => {
                            get_data(g).map(pb::read_op_result::Result::Data)
                        }
                        Some(pb::read_op::Op::GetChildren(g)) => {
                            get_children(g).map(pb::read_op_result::Result::Children)
                        }
                        Some(pb::read_op::Op::Exists(g)) => {
                            exists(g).map(pb::read_op_result::Result::Exists)
                        }
                        None => Err(ZkError::bad_arguments("a read op has no operation")),
                    };
                    match r {
                        Ok(r) => pb::ReadOpResult {
                            error: 0,
                            result: Some(r),
                        },
                        Err(e) => pb::ReadOpResult {
                            error: e.code.number(),
                            result: None,
                        },
                    }
                })
                .collect();
            (
                "multi_read",
                Ok(Res::MultiRead(pb::MultiReadResult { results })),
            )
        }
        R::AddWatch(a) => (
            "add_watch",
            validate(&a.path).map(|_| {
                let kind = match AddWatchMode::from_number(a.mode) {
                    Some(AddWatchMode::PersistentRecursive) => WatchKind::PersistentRecursive,
                    _ => WatchKind::Persistent,
                };
                watches.add(session, kind, &a.path);
                Res::Empty(pb::Empty {})
            }),
        ),
        R::RemoveWatches(rw) => (
            "remove_watches",
            validate(&rw.path).and_then(|_| {
                if watches.remove(session, &rw.path, remove_kind(rw.watcher_type)) {
                    Ok(Res::Empty(pb::Empty {}))
                } else {
                    Err(ZkError::new(Code::NoWatcher, rw.path.clone()))
                }
            }),
        ),
        R::CheckWatches(cw) => (
            "check_watches",
            validate(&cw.path).and_then(|_| {
                if watches.has(session, &cw.path, remove_kind(cw.watcher_type)) {
                    Ok(Res::Empty(pb::Empty {}))
                } else {
                    Err(ZkError::new(Code::NoWatcher, cw.path.clone()))
                }
            }),
        ),
        R::SetWatches(s) => {
            let all = s
                .data_watches
                .iter()
                .chain(&s.exist_watches)
                .chain(&s.child_watches)
                .chain(&s.persistent_watches)
                .chain(&s.persistent_recursive_watches);
            let r = all
                .map(|p| validate(p))
                .collect::<Result<Vec<()>, _>>()
                .map(|_| {
                    watches.set_watches(
                        tree,
                        session,
                        zxid,
                        &Rewatch {
                            relative_zxid: s.relative_zxid,
                            data: &s.data_watches,
                            exist: &s.exist_watches,
                            child: &s.child_watches,
                        },
                    );
                    for p in &s.persistent_watches {
                        watches.add(session, WatchKind::Persistent, p);
                    }
                    for p in &s.persistent_recursive_watches {
                        watches.add(session, WatchKind::PersistentRecursive, p);
                    }
                    Res::Empty(pb::Empty {})
                });
            ("set_watches", r)
        }
        R::Check(c) => (
            "check",
            validate(&c.path).and_then(|_| {
                let n = tree
                    .node(&c.path)
                    .ok_or_else(|| ZkError::no_node(&c.path))?;
                match c.version {
                    Some(v) if v != -1 && v != n.stat.version => {
                        Err(ZkError::bad_version(&c.path, v, n.stat.version))
                    }
                    _ => Ok(Res::Stat(convert::stat(&n.stat))),
                }
            }),
        ),
        R::Create(_) | R::Delete(_) | R::SetData(_) | R::SetAcl(_) | R::Multi(_) | R::Sync(_) => (
            "invalid",
            Err(ZkError::new(
                Code::SystemError,
                "a write reached the read path",
            )),
        ),
    };
    match r {
        Ok(res) => (name, ok(res)),
        Err(e) => (name, convert::error_response(xid, zxid, &e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_carry_the_server_id_and_no_marker_byte() {
        for (server, random) in [(1, u64::MAX), (0, 0), (200, 0xFF00_0000_0000_0000)] {
            let id = super::session_id(server, random);
            assert_eq!(id >> 56, server & 0x7F);
            assert_ne!(id, 0);
            assert!(id >> 56 < 0x80, "{id:#x}");
        }
    }
}
