//! One client connection serving one session, whatever its protocol: a
//! codec (`api::grpc`, `api::zk`) decodes frames into [`Inbound`] items
//! and encodes the [`Outbound`] items this task queues.
//!
//! One task per connection keeps the session's order (invariant 2): it
//! takes requests as they arrive — submitting writes to the log at once,
//! unless a read is ahead of them ([`super::order`]) — and answers the
//! queue strictly in order: a write when its result comes, a read when
//! everything before it is answered, so a read sees the session's earlier
//! writes.
//!
//! Watch events are pushed onto the same outgoing queue by apply, under the
//! tree lock, and reads are answered under that lock too, so an event for
//! zxid Z always precedes a response that reflects a state at or after Z.
//!
//! Both protocols get the same bounds: at most [`MAX_IN_FLIGHT`] requests
//! wait unanswered (past that the task stops taking requests, so the
//! client's transport pushes back), and the outgoing queue
//! ([`super::outq`]) cuts a connection whose client has not read for a
//! session timeout (at least [`MIN_STALL`]) or is more than its capacity
//! behind; the session is kept.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use tokio::sync::Notify;

use super::message::{Answer, Connect, Inbound, Outbound, Reply, Request};
use super::open::{open_session, Opened};
use super::order::{Item, Queue, Shape, Write};
use super::outq::Out;
use super::read::{self, View};
use super::registry::{ConnInfo, Registered};
use super::{write, Ctx};
use crate::acl::{self, AuthId};
use crate::error::{Code, ZkError};
use crate::metrics::Metrics;
use crate::raft::proposer::{Proposer, WriteReceiver};
use crate::txn::Acl;
use crate::txn::{Op, TxnError};
use crate::watch::{EventSink, WatchEventType};

/// Requests one connection may have unanswered before it stops taking
/// more (ZooKeeper's `globalOutstandingLimit` default): a client that
/// pipelines without reading its replies is slowed, not buffered forever.
pub const MAX_IN_FLIGHT: usize = 1000;

/// The shortest time a client may leave its replies unread before its
/// connection is cut (the session timeout, if longer, applies).
pub const MIN_STALL: Duration = Duration::from_secs(2);

/// How long a resumed session's new connection waits for the previous
/// one to finish answering.
const TURN_WAIT: Duration = Duration::from_secs(10);

/// The session's event sink: the connection's outgoing queue.
struct Sink {
    out: Out,
    /// Who the connection is (kept in step with the session's
    /// identities): an event for a node it may not READ is held back.
    identities: parking_lot::RwLock<Vec<AuthId>>,
    /// The client sent closeSession: its end is not news to it.
    closing: AtomicBool,
    ended: Notify,
}

impl EventSink for Sink {
    fn event(&self, zxid: i64, kind: WatchEventType, path: &str, acl: Option<&[Acl]>) {
        if let Some(acl) = acl {
            if acl::check(path, acl, &self.identities.read(), Acl::READ).is_err() {
                tracing::debug!(
                    path,
                    ?kind,
                    "watch event held back: the connection may not read the node"
                );
                return;
            }
        }
        let _ = self.out.send(Outbound::Event {
            zxid,
            kind,
            path: path.to_string(),
        });
    }

    fn session_ended(&self, code: Code) {
        if !self.closing.load(Ordering::SeqCst) {
            let message = match code {
                Code::SessionMoved => "the session was resumed on another connection".to_string(),
                _ => "the session has expired; open a new session".to_string(),
            };
            let _ = self.out.send(Outbound::Ended { code, message });
        }
        self.ended.notify_one();
    }

    fn reconnect(&self, why: &str) {
        self.out.cut(why);
    }
}

/// Refuses a connection: the client is told why, and nothing follows.
pub fn refuse(out: &Out, code: Code, message: String) {
    tracing::info!(code = code.name(), %message, "refused a connection");
    let _ = out.send(Outbound::Ended { code, message });
}

/// Serves one connection until the client leaves, the session ends or the
/// server shuts down. `conn` lists the connection (for `cons`) meanwhile.
pub async fn serve<S>(ctx: Ctx, conn: Registered, connect: Connect, inbound: S, out: Out)
where
    S: Stream<Item = Inbound> + Send + Unpin,
{
    let metrics = ctx.shared.metrics.clone();
    metrics.connections.inc();
    match open_session(&ctx, &connect).await {
        Ok(opened) => {
            conn.info
                .session
                .store(opened.session_id, Ordering::Relaxed);
            conn.info
                .timeout_ms
                .store(opened.timeout_ms, Ordering::Relaxed);
            run(&ctx, conn.info.clone(), opened, inbound, out).await;
        }
        Err(e) => refuse(&out, e.code, e.message),
    }
    metrics.connections.dec();
}

/// The answer the head of the queue is waiting for: a write's result or a
/// sync's read index.
type Waiting = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// One connection's session state.
struct Session<'a> {
    ctx: &'a Ctx,
    conn: Arc<ConnInfo>,
    id: u64,
    sid: String,
    queue: Queue<WriteReceiver>,
    /// The head request whose answer is awaited (it has left `queue`).
    waiting: Option<(Waiting, &'static str, Instant)>,
    /// Who the connection has authenticated as (whoAmI).
    identities: Vec<AuthId>,
    /// Its event sink, which filters events by the same identities.
    sink: Arc<Sink>,
    /// `addauth` failed: the connection takes no more requests and closes
    /// once it has answered (as ZooKeeper does).
    auth_failed: bool,
    /// The client sent closeSession: the writes queued before it still go
    /// in, although the session is already marked closing.
    client_closed: bool,
    out: Out,
}

async fn run<S>(ctx: &Ctx, conn: Arc<ConnInfo>, opened: Opened, mut inbound: S, out: Out)
where
    S: Stream<Item = Inbound> + Send + Unpin,
{
    let Opened {
        session_id: id,
        password,
        timeout_ms,
    } = opened;
    // What the connection proves by itself: its address and, over TLS,
    // its certificate (ZooKeeper's X509AuthenticationProvider).
    let identities: Vec<AuthId> = conn
        .peer
        .map(|p| AuthId::new("ip", &p.ip().to_string()))
        .into_iter()
        .chain(conn.x509.as_deref().map(|s| AuthId::new("x509", s)))
        .collect();
    let sink = Arc::new(Sink {
        identities: parking_lot::RwLock::new(identities.clone()),
        out: out.clone(),
        closing: AtomicBool::new(false),
        ended: Notify::new(),
    });
    // Tell the previous connection (if any) to end, and wait for its turn:
    // it answers everything it accepted first, so the session's requests
    // stay in order across connections.
    if let Some(old) = ctx.shared.watches.sink_of(id) {
        old.session_ended(Code::SessionMoved);
    }
    let turn = ctx.turns.lock_of(id);
    let Ok(turn) = tokio::time::timeout(TURN_WAIT, turn.lock_owned()).await else {
        refuse(
            &out,
            Code::ConnectionLoss,
            format!("the previous connection of session 0x{id:x} is still finishing; retry"),
        );
        return;
    };
    let last_zxid = {
        let st = ctx.shared.state.read();
        if let Some(old) = ctx.shared.watches.attach(id, conn.id, sink.clone()) {
            old.session_ended(Code::SessionMoved);
        }
        st.tree.last_zxid()
    };
    let _ = out.send(Outbound::Connected {
        session_id: id,
        password,
        timeout_ms,
        server_id: ctx.config.server_id,
        last_zxid,
    });
    let stall = Duration::from_millis(u64::from(timeout_ms)).max(MIN_STALL);
    let mut s = Session {
        ctx,
        conn,
        id,
        sid: format!("0x{id:x}"),
        queue: Queue::default(),
        waiting: None,
        identities,
        sink: sink.clone(),
        auth_failed: false,
        client_closed: false,
        out,
    };
    let mut shutdown = ctx.shutdown.clone();
    let mut drain = ctx.drain.clone();
    if drain.borrow().is_some() {
        drain.mark_changed();
    }
    // GoAway sent: the client ends the stream once it has sent its last
    // request, so everything it sent is read and answered here.
    let mut told_to_move = false;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut reading = true;
    loop {
        if s.answer_ready().is_err() {
            break;
        }
        if !reading && s.waiting.is_none() && s.queue.is_empty() {
            break;
        }
        let room = s.queue.len() < MAX_IN_FLIGHT;
        tokio::select! {
            answer = async { (&mut s.waiting.as_mut().expect("guarded").0).await }, if s.waiting.is_some() => {
                let (_, name, started) = s.waiting.take().expect("guarded");
                if s.send_answer(answer, name, Some(started)).is_err() {
                    break;
                }
            }
            m = inbound.next(), if reading && room => match m {
                Some(m) => {
                    if !s.accept(m, &sink) {
                        reading = false;
                    }
                }
                None => {
                    tracing::debug!(session = %s.sid, "the client closed the connection");
                    reading = false;
                }
            },
            _ = sink.ended.notified(), if reading => reading = false,
            _ = shutdown.changed(), if reading => reading = false,
            _ = drain.changed(), if reading && !told_to_move => {
                let members = drain.borrow().clone();
                if let Some(members) = members {
                    if s.conn.protocol == "grpc" {
                        tracing::debug!(session = %s.sid, "this member is stopping: telling the client to move");
                        let _ = s.out.send(Outbound::GoAway { members: members.to_vec() });
                        told_to_move = true;
                    } else {
                        // A ZooKeeper client moves when its connection closes.
                        reading = false;
                    }
                }
            }
            _ = tick.tick() => {
                if s.out.stalled_for().is_some_and(|d| d >= stall) {
                    tracing::info!(session = %s.sid, stalled_ms = stall.as_millis() as u64, "the client has not read for a session timeout; closing the connection (the session is kept)");
                    s.out.cut("the client did not read for a session timeout; reconnect");
                }
                if s.out.is_cut() {
                    tracing::info!(session = %s.sid, "closing a connection whose client stopped reading (the session is kept)");
                    break;
                }
            }
        }
    }
    ctx.shared.watches.detach(id, s.conn.id);
    drop(s);
    drop(turn);
    ctx.turns.forget_if_idle(id);
}

/// Why answering stopped: the connection is gone.
struct Gone;

impl Session<'_> {
    /// Takes one request. False when the connection takes no more (the
    /// client closed its session, or broke the protocol).
    fn accept(&mut self, m: Inbound, sink: &Sink) -> bool {
        let ctx = self.ctx;
        let now = Instant::now();
        ctx.shared.sessions.touch(self.id, now);
        ctx.conns.received(&self.conn);
        match m {
            Inbound::Ping => self.queue.push(Item::Pong),
            Inbound::Close { xid } => {
                sink.closing.store(true, Ordering::SeqCst);
                self.client_closed = true;
                ctx.shared.sessions.mark_closing(self.id);
                self.push_write(Write {
                    xid,
                    name: "close_session",
                    op: Op::CloseSession {
                        session_id: self.id,
                    },
                    shape: Shape(vec![]),
                    started: now,
                });
                tracing::info!(session = %self.sid, "session closed by client");
                return false;
            }
            Inbound::Request { xid, request } => self.request(xid, request, now),
        }
        !self.auth_failed
    }

    fn request(&mut self, xid: i64, request: Request, started: Instant) {
        let checked = match request {
            Request::Write { op, create_stat } => {
                let name = op.name();
                (write::single(op, create_stat), name)
            }
            Request::Multi(ops) => (write::multi(ops), "multi"),
            Request::Read(r) => {
                self.queue.push(Item::Read {
                    xid,
                    read: r,
                    started,
                });
                return;
            }
            Request::Sync { path } => {
                self.queue.push(Item::Sync { xid, path, started });
                return;
            }
            Request::Auth {
                scheme,
                credentials,
            } => {
                let super_digest = self.ctx.config.super_digest.as_deref();
                match acl::authenticate(&scheme, &credentials, super_digest) {
                    Ok(ids) => {
                        for id in ids {
                            tracing::info!(session = %self.sid, scheme = %id.scheme, user = %id.user(), "authenticated");
                            if !self.identities.contains(&id) {
                                self.identities.push(id);
                            }
                        }
                        *self.sink.identities.write() = self.identities.clone();
                        self.ready(xid, Ok(Reply::Authenticated), "auth");
                    }
                    Err(e) => {
                        tracing::info!(session = %self.sid, %scheme, error = %e, "authentication failed; closing the connection");
                        self.auth_failed = true;
                        self.ready(xid, Err(e.into()), "auth");
                    }
                }
                return;
            }
            Request::WhoAmI => {
                let who = Reply::WhoAmI(self.identities.clone());
                self.ready(xid, Ok(who), "whoami");
                return;
            }
            Request::Refused(e) => {
                self.ready(xid, Err(e), "refused");
                return;
            }
        };
        let (checked, name) = checked;
        let checked = checked.and_then(|(op, shape)| {
            write::authorize(op, &self.identities, self.ctx.config.enforce_quota)
                .map(|op| (op, shape))
        });
        match (checked, name) {
            (Ok((op, shape)), name) => {
                if self.ctx.shared.sessions.is_live(self.id) {
                    self.push_write(Write {
                        xid,
                        name,
                        op,
                        shape,
                        started,
                    });
                } else {
                    let e = ZkError::new(
                        Code::SessionExpired,
                        format!("session {} has expired", self.sid),
                    );
                    self.ready(xid, Err(e.into()), name);
                }
            }
            (Err(e), name) => self.ready(xid, Err(e), name),
        }
    }

    fn ready(&mut self, xid: i64, result: Result<Reply, TxnError>, name: &'static str) {
        self.queue.push(Item::Ready(
            Answer {
                xid,
                zxid: 0,
                result,
            },
            name,
        ));
    }

    fn push_write(&mut self, w: Write) {
        let submit = submitter(self.ctx, self.id, self.client_closed);
        self.queue.push_write(w, submit);
    }

    /// Answers everything at the head of the queue that can be answered
    /// now, up to the first write or sync whose answer must be awaited.
    fn answer_ready(&mut self) -> Result<(), Gone> {
        while self.waiting.is_none() {
            let submit = submitter(self.ctx, self.id, self.client_closed);
            let Some(item) = self.queue.pop(submit) else {
                return Ok(());
            };
            match item {
                Item::Pong => {
                    let zxid = self.ctx.shared.state.read().tree.last_zxid();
                    self.ctx.conns.answered(&self.conn, "ping", None);
                    self.out.send(Outbound::Pong { zxid }).map_err(|_| Gone)?;
                }
                Item::Ready(answer, name) => self.send_answer(answer, name, None)?,
                Item::Read {
                    xid,
                    read: r,
                    started,
                } => {
                    let shared = &self.ctx.shared;
                    let st = shared.state.read();
                    let view = View {
                        tree: &st.tree,
                        watches: &shared.watches,
                        session: self.id,
                        auth: &self.identities,
                    };
                    let answer = Answer {
                        xid,
                        zxid: st.tree.last_zxid(),
                        result: read::serve(&view, &r).map_err(TxnError::from),
                    };
                    // Sent under the tree lock: the event of a later change,
                    // which apply queues under the write lock, cannot
                    // overtake this reply (the client registers the watch
                    // when the reply arrives).
                    let sent = self.send_answer(answer, read::name(&r), Some(started));
                    drop(st);
                    sent?;
                }
                Item::Submitted {
                    xid,
                    name,
                    handle,
                    shape,
                    started,
                } => {
                    let fut = async move {
                        match Proposer::wait(handle).await {
                            Ok(t) => Answer {
                                xid,
                                zxid: t.zxid,
                                result: t.result.map(|o| write::reply(o, &shape)),
                            },
                            Err(e) => Answer::error(xid, 0, e),
                        }
                    };
                    self.waiting = Some((Box::pin(fut), name, started));
                }
                Item::Sync { xid, path, started } => {
                    let proposer = self.ctx.proposer.clone();
                    let shared = self.ctx.shared.clone();
                    let fut = async move {
                        match proposer.sync().await {
                            Ok(()) => Answer {
                                xid,
                                zxid: shared.state.read().tree.last_zxid(),
                                result: Ok(Reply::Synced { path }),
                            },
                            Err(e) => Answer::error(xid, 0, e),
                        }
                    };
                    self.waiting = Some((Box::pin(fut), "sync", started));
                }
                Item::Deferred(w) => {
                    let e = ZkError::new(Code::SystemError, "a deferred write was not submitted");
                    self.send_answer(Answer::error(w.xid, 0, e), w.name, None)?;
                }
            }
        }
        Ok(())
    }

    fn send_answer(
        &self,
        answer: Answer,
        name: &'static str,
        started: Option<Instant>,
    ) -> Result<(), Gone> {
        record(&self.ctx.shared.metrics, &self.sid, name, started, &answer);
        self.ctx
            .conns
            .answered(&self.conn, name, started.map(|s| s.elapsed()));
        self.out.send(Outbound::Answer(answer)).map_err(|_| Gone)
    }
}

/// Submits a session's write to the log. The session is checked again:
/// it may have expired while the write waited behind a read, and an
/// expired session's write must not reach the log (a closing session's
/// writes queued before its closeSession still go in).
fn submitter(
    ctx: &Ctx,
    session: u64,
    client_closed: bool,
) -> impl FnMut(Op) -> Result<WriteReceiver, ZkError> + '_ {
    move |op| {
        let closing = client_closed || matches!(op, Op::CloseSession { .. });
        if closing || ctx.shared.sessions.is_live(session) {
            ctx.proposer.submit(session, op)
        } else {
            Err(ZkError::new(
                Code::SessionExpired,
                format!(
                    "session 0x{session:x} expired while this write waited for an earlier read"
                ),
            ))
        }
    }
}

/// Counts an answer in the metrics and the debug log.
fn record(metrics: &Metrics, sid: &str, op: &'static str, started: Option<Instant>, a: &Answer) {
    metrics.requests.with_label_values(&[op]).inc();
    let error = match &a.result {
        Ok(_) => Code::Ok,
        Err(e) => e.error.code,
    };
    if error != Code::Ok {
        let name = warden_proto::ErrorCode::try_from(error)
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
        session = sid,
        xid = a.xid,
        zxid = a.zxid,
        op,
        error = error.number(),
        "answered"
    );
}
