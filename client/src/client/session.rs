//! The session task: the one place that talks to the server.
//!
//! Every `Client` handle sends [`Command`]s into one channel; this task gives
//! each request the next xid, writes it to the stream (so requests are
//! pipelined and leave in call order), and matches `Response`s back to their
//! callers by xid. It also routes watch events and pings when idle.
//!
//! It outlives any one connection. When the stream breaks it moves to
//! `Suspended`, fails the requests in flight with `ConnectionLoss` (their
//! outcome is unknown), queues new ones, and reconnects — same session id,
//! password and last seen zxid — to the servers in random order, backing off
//! between rounds. Once connected it first re-registers every watch
//! (`SetWatches`, relative to the last zxid seen, so changes missed meanwhile
//! fire at once), then releases the queue: `Reconnected`. If the session
//! cannot have survived (suspended longer than its timeout, or the server
//! says it expired) it is `Lost`: everything waiting fails with
//! `SessionExpired`, and — unless told otherwise — a new session is opened.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use warden_proto::v1 as proto;

use super::connect::{self, Connection, RoundError};
use crate::connect_string::ServerAddr;
use crate::error::{Error, ErrorCode};
use crate::path::Chroot;
use crate::retry::RetryPolicy;
use crate::state::{ConnectionState, StateCell};
use crate::tls::TlsOptions;
use crate::types::{AddWatchMode, EventType, WatchedEvent, WatcherType};
use crate::watch::{OneshotKind, OneshotSender, StreamSender, WatchRegistry};

/// What a `Client` handle asks of the session task.
pub(crate) enum Command {
    /// Send a request; answer with the server's raw response.
    Request {
        op: proto::request::Op,
        watch: Option<WatchRequest>,
        reply: oneshot::Sender<Result<proto::Response, Error>>,
    },
    /// Close the session and end the stream.
    Close {
        reply: oneshot::Sender<Result<(), Error>>,
    },
}

/// What a request does to the local watch table once the server answers.
pub(crate) enum WatchRequest {
    /// Register a one-shot watch if the read succeeded. An `Exist` watch is
    /// filed as a data watch when the node exists, as ZooKeeper does.
    Oneshot {
        kind: OneshotKind,
        path: String,
        tx: OneshotSender,
    },
    /// Register a persistent watch if `add_watch` succeeded.
    Stream {
        mode: AddWatchMode,
        path: String,
        tx: StreamSender,
    },
    /// Drop local watches if `remove_watches` succeeded.
    Remove { path: String, which: WatcherType },
}

/// Session facts readable from any handle without asking the task.
pub(crate) struct Shared {
    session_id: AtomicU64,
    password: Mutex<Vec<u8>>,
    timeout_ms: AtomicU32,
    server_id: AtomicU64,
    server: Mutex<ServerAddr>,
    last_zxid: AtomicI64,
    closed_by_client: AtomicBool,
    /// Why the session task stopped, once it has.
    terminal: Mutex<Option<Error>>,
    /// What `add_auth` authenticated with, sent again on every new
    /// connection before anything else.
    auth: Mutex<Vec<(String, Vec<u8>)>>,
    pub state: StateCell,
}

impl Shared {
    pub fn new(conn: &Connection, fallback_timeout_ms: u32) -> Shared {
        let shared = Shared {
            session_id: AtomicU64::new(0),
            password: Mutex::new(Vec::new()),
            timeout_ms: AtomicU32::new(1),
            server_id: AtomicU64::new(0),
            server: Mutex::new(conn.server.clone()),
            last_zxid: AtomicI64::new(0),
            closed_by_client: AtomicBool::new(false),
            terminal: Mutex::new(None),
            auth: Mutex::new(Vec::new()),
            state: StateCell::new(ConnectionState::Connected),
        };
        shared.adopt(conn, fallback_timeout_ms);
        // A new session has seen nothing yet: the server's state at connect
        // time is where it starts. (A resumed one keeps its own last zxid,
        // which is what its watches are re-registered relative to.)
        shared.saw_zxid(conn.connected.last_zxid);
        shared
    }

    /// Takes the session (id, password, timeout) and server of a connection.
    fn adopt(&self, conn: &Connection, fallback_timeout_ms: u32) {
        let c = &conn.connected;
        self.session_id.store(c.session_id, Ordering::Relaxed);
        *self.password.lock() = c.password.clone();
        let timeout_ms = if c.timeout_ms == 0 {
            fallback_timeout_ms
        } else {
            c.timeout_ms
        };
        self.timeout_ms.store(timeout_ms.max(1), Ordering::Relaxed);
        self.server_id.store(c.server_id, Ordering::Relaxed);
        *self.server.lock() = conn.server.clone();
    }

    /// Remembers credentials that authenticated, to send on reconnects.
    pub fn remember_auth(&self, scheme: &str, credentials: Vec<u8>) {
        let entry = (scheme.to_string(), credentials);
        let mut auth = self.auth.lock();
        if !auth.contains(&entry) {
            auth.push(entry);
        }
    }

    pub fn session_id(&self) -> u64 {
        self.session_id.load(Ordering::Relaxed)
    }

    pub fn password(&self) -> Vec<u8> {
        self.password.lock().clone()
    }

    /// The negotiated session timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeout_ms.load(Ordering::Relaxed)))
    }

    pub fn server_id(&self) -> u64 {
        self.server_id.load(Ordering::Relaxed)
    }

    pub fn server(&self) -> ServerAddr {
        self.server.lock().clone()
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid.load(Ordering::Relaxed)
    }

    fn saw_zxid(&self, zxid: i64) {
        if zxid > 0 {
            self.last_zxid.fetch_max(zxid, Ordering::Relaxed);
        }
    }

    /// True once `close()` has completed.
    pub fn closed_by_client(&self) -> bool {
        self.closed_by_client.load(Ordering::Relaxed)
    }

    /// `close()` on a client whose task already stopped (the session was
    /// lost for good): nothing to tell the server, just the final state.
    pub fn mark_closed(&self) {
        self.closed_by_client.store(true, Ordering::Relaxed);
        *self.terminal.lock() = Some(closed_error());
        self.set_state(ConnectionState::Closed);
    }

    /// The error for calls made after the session task stopped.
    pub fn terminal_error(&self) -> Error {
        self.terminal
            .lock()
            .clone()
            .unwrap_or_else(|| Error::connection_loss("the session task has stopped"))
    }

    fn set_state(&self, state: ConnectionState) {
        self.state.set(state, self.session_id());
    }
}

/// What the task needs to reconnect: where, and on which terms.
pub(crate) struct Settings {
    pub servers: Vec<ServerAddr>,
    /// The session timeout asked for when a new session is opened.
    pub requested_timeout_ms: u32,
    /// Per reconnect attempt at most this (also bounds a `close()` made
    /// while disconnected).
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    pub renew_expired_session: bool,
    pub client_name: String,
    pub tls: Option<TlsOptions>,
}

/// The error every call gets after `close()`.
fn closed_error() -> Error {
    Error::new(
        ErrorCode::SessionExpired,
        "the session was closed by this client",
    )
}

/// A request in flight: sent, awaiting its response.
struct Pending {
    reply: oneshot::Sender<Result<proto::Response, Error>>,
    watch: Option<WatchRequest>,
}

/// A request waiting for a connection (made while suspended, or while the
/// watches are being re-registered).
struct Queued {
    op: proto::request::Op,
    watch: Option<WatchRequest>,
    reply: oneshot::Sender<Result<proto::Response, Error>>,
    /// Fail it with `ConnectionLoss` if still here by then.
    deadline: Instant,
}

/// A `close()` in progress, and everyone waiting for it.
struct Closing {
    /// The xid of the `Close` sent on the current connection, if sent.
    xid: Option<i64>,
    replies: Vec<oneshot::Sender<Result<(), Error>>>,
    /// While disconnected: give up waiting for a connection at this point.
    deadline: Instant,
}

/// Why serving one connection ended.
enum Served {
    /// `close()` completed: the server answered the `Close` request.
    Closed,
    /// Every `Client` handle was dropped.
    Dropped,
    /// The server is stopping and said so (`GoAway`); it answered every
    /// request sent, then ended the stream: the session moves elsewhere.
    Moved,
    /// The stream broke; the session may be alive.
    Broken(Error),
    /// The server ended the session (expired, or taken over).
    Expired(Error),
}

/// Why the task stops for good.
enum Stop {
    /// Closed on the server.
    Closed,
    /// `close()` gave up waiting for a connection; the session will expire
    /// on the server.
    ClosedLocally(Error),
    /// The session was lost and renewing is off.
    Lost(Error),
    /// Every `Client` handle was dropped (the session is left to expire).
    Dropped,
}

/// How a connection came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The one `Client::connect` opened.
    Initial,
    /// The same session, resumed after a break.
    Resumed,
    /// A new session after the old one was lost.
    Renewed,
}

/// The task that owns the session. See the module docs.
pub(crate) struct SessionTask {
    shared: Arc<Shared>,
    chroot: Chroot,
    settings: Settings,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The current stream; `None` while suspended or lost.
    conn: Option<Connection>,
    /// Connected and done re-registering watches: requests go straight out.
    ready: bool,
    /// The xid of the `SetWatches` being answered.
    set_watches_xid: Option<i64>,
    pending: HashMap<i64, Pending>,
    queued: VecDeque<Queued>,
    watches: WatchRegistry,
    next_xid: i64,
    closing: Option<Closing>,
    last_sent: Instant,
    last_received: Instant,
    /// When the current suspension began.
    suspended_since: Instant,
    /// The session is gone: never resume it; the next connect opens a new one.
    lost: bool,
    /// The server sent `GoAway` (with other members' addresses): nothing
    /// more is sent on this stream, and the next connection goes elsewhere.
    moving: Option<Vec<ServerAddr>>,
}

impl SessionTask {
    pub fn new(
        shared: Arc<Shared>,
        chroot: Chroot,
        commands: mpsc::UnboundedReceiver<Command>,
        conn: Connection,
        settings: Settings,
    ) -> SessionTask {
        let now = Instant::now();
        SessionTask {
            shared,
            chroot,
            settings,
            commands,
            conn: Some(conn),
            ready: false,
            set_watches_xid: None,
            pending: HashMap::new(),
            queued: VecDeque::new(),
            watches: WatchRegistry::default(),
            next_xid: 1,
            closing: None,
            last_sent: now,
            last_received: now,
            suspended_since: now,
            lost: false,
            moving: None,
        }
    }

    /// Ping when nothing was sent for a third of the timeout.
    fn ping_interval(&self) -> Duration {
        (self.shared.timeout() / 3).max(Duration::from_millis(1))
    }

    /// Give up on a server that sent nothing for two thirds of the timeout
    /// (it had at least one ping to answer in that time), as ZooKeeper does.
    fn read_timeout(&self) -> Duration {
        (self.shared.timeout() * 2 / 3).max(Duration::from_millis(2))
    }

    /// Runs until the session is closed, lost for good, or every handle is
    /// dropped; then fails whatever is left.
    pub async fn run(mut self) {
        let mut start = Start::Initial;
        let stop = loop {
            match self.serve(start).await {
                Served::Closed => break Stop::Closed,
                Served::Dropped => break Stop::Dropped,
                Served::Moved => self.move_on(),
                Served::Broken(error) => self.suspend(error),
                Served::Expired(error) => {
                    if let Some(stop) = self.lose(error) {
                        break stop;
                    }
                }
            }
            match self.reconnect().await {
                Ok(next) => start = next,
                Err(stop) => break stop,
            }
        };
        self.finish(stop).await;
    }

    fn set_state(&self, state: ConnectionState) {
        self.shared.set_state(state);
    }

    // ----- connected --------------------------------------------------------

    /// Serves the current connection until it ends.
    async fn serve(&mut self, start: Start) -> Served {
        let now = Instant::now();
        self.last_sent = now;
        self.last_received = now;
        self.ready = false;
        if let Err(end) = self.replay_auth(start) {
            return end;
        }
        let started = match start {
            Start::Initial => self.become_ready(None),
            Start::Renewed => self.become_ready(Some(ConnectionState::Reconnected)),
            Start::Resumed => self.rewatch(),
        };
        if let Err(end) = started {
            return end;
        }
        loop {
            let ping_at = self.last_sent + self.ping_interval();
            let dead_at = self.last_received + self.read_timeout();
            let mut wake = ping_at.min(dead_at);
            if let Some(q) = self.queued.front() {
                wake = wake.min(q.deadline);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Served::Broken(Error::connection_loss("no connection"));
            };
            tokio::select! {
                frame = conn.inbound.message() => {
                    if let Some(end) = self.on_inbound(frame) {
                        return end;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => {
                        if let Err(end) = self.on_command_up(command) {
                            return end;
                        }
                    }
                    None => return Served::Dropped,
                },
                _ = sleep_until(wake) => {
                    if let Err(end) = self.on_tick_up(dead_at) {
                        return end;
                    }
                }
            }
        }
    }

    /// On a new connection: authenticate again with what `add_auth`
    /// authenticated with, before anything else (as ZooKeeper's client
    /// does). The answers are only logged: a refusal ends the connection.
    fn replay_auth(&mut self, start: Start) -> Result<(), Served> {
        if start == Start::Initial {
            return Ok(());
        }
        let auth = self.shared.auth.lock().clone();
        for (scheme, credentials) in auth {
            let xid = self.take_xid();
            let (reply, _) = oneshot::channel();
            self.pending.insert(xid, Pending { reply, watch: None });
            self.send(proto::client_frame::Frame::Request(proto::Request {
                xid,
                op: Some(proto::request::Op::AddAuth(proto::AddAuth {
                    scheme,
                    credentials,
                })),
            }))?;
        }
        Ok(())
    }

    /// After resuming: re-register every watch before anything else goes
    /// out. Requests wait in the queue until the server has answered.
    fn rewatch(&mut self) -> Result<(), Served> {
        let paths = self.watches.paths();
        if paths.is_empty() {
            return self.become_ready(Some(ConnectionState::Reconnected));
        }
        let to_server = |paths: Vec<String>| -> Vec<String> {
            paths.iter().map(|p| self.chroot.to_server(p)).collect()
        };
        let set = proto::SetWatches {
            relative_zxid: self.shared.last_zxid(),
            data_watches: to_server(paths.data),
            exist_watches: to_server(paths.exist),
            child_watches: to_server(paths.child),
            persistent_watches: to_server(paths.persistent),
            persistent_recursive_watches: to_server(paths.recursive),
        };
        tracing::debug!(
            session = format_args!("{:#x}", self.shared.session_id()),
            relative_zxid = set.relative_zxid,
            data = set.data_watches.len(),
            exist = set.exist_watches.len(),
            child = set.child_watches.len(),
            persistent = set.persistent_watches.len(),
            recursive = set.persistent_recursive_watches.len(),
            "re-registering watches"
        );
        let xid = self.take_xid();
        self.set_watches_xid = Some(xid);
        self.send(proto::client_frame::Frame::Request(proto::Request {
            xid,
            op: Some(proto::request::Op::SetWatches(set)),
        }))
    }

    /// Requests may go out now: announce the state, then release the queue
    /// in order (and a `close()` made meanwhile, last).
    fn become_ready(&mut self, state: Option<ConnectionState>) -> Result<(), Served> {
        self.ready = true;
        if let Some(state) = state {
            self.set_state(state);
        }
        while let Some(q) = self.queued.pop_front() {
            if q.reply.is_closed() {
                continue; // the caller gave up: never sent
            }
            self.send_request(q.op, q.watch, q.reply)?;
        }
        if let Some(closing) = &self.closing {
            if closing.xid.is_none() {
                self.send_close()?;
            }
        }
        Ok(())
    }

    /// Writes one frame to the stream.
    fn send(&mut self, frame: proto::client_frame::Frame) -> Result<(), Served> {
        self.last_sent = Instant::now();
        let Some(conn) = &self.conn else {
            return Err(Served::Broken(Error::connection_loss("no connection")));
        };
        conn.out
            .as_ref()
            .ok_or(())
            .and_then(|out| {
                out.send(proto::ClientFrame { frame: Some(frame) })
                    .map_err(|_| ())
            })
            .map_err(|()| {
                Served::Broken(Error::connection_loss(format!(
                    "the stream to {} is closed",
                    conn.server
                )))
            })
    }

    fn send_request(
        &mut self,
        op: proto::request::Op,
        watch: Option<WatchRequest>,
        reply: oneshot::Sender<Result<proto::Response, Error>>,
    ) -> Result<(), Served> {
        let xid = self.take_xid();
        // Pending first, so a failed send fails this request too.
        self.pending.insert(xid, Pending { reply, watch });
        let frame = proto::client_frame::Frame::Request(proto::Request { xid, op: Some(op) });
        self.send(frame)
    }

    fn send_close(&mut self) -> Result<(), Served> {
        let xid = self.take_xid();
        if let Some(closing) = &mut self.closing {
            closing.xid = Some(xid);
        }
        self.send(proto::client_frame::Frame::Close(proto::Close { xid }))
    }

    fn take_xid(&mut self) -> i64 {
        let xid = self.next_xid;
        self.next_xid += 1;
        xid
    }

    fn queue(
        &mut self,
        op: proto::request::Op,
        watch: Option<WatchRequest>,
        reply: oneshot::Sender<Result<proto::Response, Error>>,
    ) {
        self.queued.push_back(Queued {
            op,
            watch,
            reply,
            deadline: Instant::now() + self.shared.timeout(),
        });
    }

    fn on_command_up(&mut self, command: Command) -> Result<(), Served> {
        match command {
            Command::Request { op, watch, reply } => {
                if self.closing.is_some() {
                    let _ = reply.send(Err(closed_error()));
                    Ok(())
                } else if self.ready {
                    self.send_request(op, watch, reply)
                } else {
                    self.queue(op, watch, reply);
                    Ok(())
                }
            }
            Command::Close { reply } => {
                if let Some(closing) = &mut self.closing {
                    closing.replies.push(reply);
                    return Ok(());
                }
                self.closing = Some(Closing {
                    xid: None,
                    replies: vec![reply],
                    deadline: Instant::now() + self.settings.connect_timeout,
                });
                if self.ready {
                    self.send_close()
                } else {
                    Ok(())
                }
            }
        }
    }

    fn on_tick_up(&mut self, dead_at: Instant) -> Result<(), Served> {
        let now = Instant::now();
        self.expire_queued(now);
        if now >= dead_at {
            // A frame that arrived just now still counts.
            let frame = self
                .conn
                .as_mut()
                .and_then(|c| c.inbound.message().now_or_never());
            return match frame {
                Some(frame) => match self.on_inbound(frame) {
                    Some(end) => Err(end),
                    None => Ok(()),
                },
                None => {
                    let server = self.shared.server();
                    Err(Served::Broken(Error::connection_loss(format!(
                        "no answer from {server} for {} ms",
                        self.read_timeout().as_millis()
                    ))))
                }
            };
        }
        if self.moving.is_none() && now >= self.last_sent + self.ping_interval() {
            self.send(proto::client_frame::Frame::Ping(proto::Ping {}))?;
        }
        Ok(())
    }

    /// Fails queued requests whose wait for a connection is over.
    fn expire_queued(&mut self, now: Instant) {
        if !self.queued.iter().any(|q| q.deadline <= now) {
            return;
        }
        let timeout = self.shared.timeout();
        let (expired, kept): (VecDeque<Queued>, VecDeque<Queued>) =
            std::mem::take(&mut self.queued)
                .into_iter()
                .partition(|q| q.deadline <= now);
        self.queued = kept;
        let error = Error::connection_loss(format!(
            "not connected to a server within the session timeout ({} ms)",
            timeout.as_millis()
        ));
        for q in expired {
            let _ = q.reply.send(Err(error.clone()));
        }
    }

    /// Handles what the inbound stream yielded: a frame, its end, or an error.
    fn on_inbound(
        &mut self,
        frame: Result<Option<proto::ServerFrame>, tonic::Status>,
    ) -> Option<Served> {
        let server = self.shared.server();
        match frame {
            Ok(Some(frame)) => {
                self.last_received = Instant::now();
                self.on_frame(frame)
            }
            Ok(None) if self.moving.is_some() => Some(Served::Moved),
            Ok(None) => Some(Served::Broken(Error::connection_loss(format!(
                "{server} ended the session stream"
            )))),
            Err(status) => Some(Served::Broken(Error::from_status(
                &format!("session stream to {server} failed"),
                status,
            ))),
        }
    }

    fn on_frame(&mut self, frame: proto::ServerFrame) -> Option<Served> {
        use proto::server_frame::Frame;
        match frame.frame? {
            Frame::Response(response) => self.on_response(response),
            Frame::WatchEvent(event) => {
                self.shared.saw_zxid(event.zxid);
                let Some(event_type) = EventType::from_i32(event.r#type) else {
                    tracing::debug!(kind = event.r#type, path = %event.path, "ignoring a non-node watch event");
                    return None;
                };
                let event = WatchedEvent {
                    event_type,
                    path: self.chroot.to_client(&event.path),
                    zxid: event.zxid,
                };
                self.watches.deliver(&event);
                None
            }
            Frame::Pong(pong) => {
                self.shared.saw_zxid(pong.zxid);
                None
            }
            Frame::ConnectError(refused) => {
                let code = ErrorCode::from_i32(refused.code);
                let message = if refused.message.is_empty() {
                    format!("{} ended the session", self.shared.server())
                } else {
                    refused.message
                };
                Some(if session_is_gone(code) {
                    Served::Expired(Error::new(code, message))
                } else {
                    Served::Broken(Error::connection_loss(format!("{code}: {message}")))
                })
            }
            Frame::Connected(_) => {
                tracing::warn!(server = %self.shared.server(), "ignoring a second Connected frame");
                None
            }
            Frame::GoAway(g) => {
                tracing::debug!(server = %self.shared.server(), members = ?g.members, reason = %g.reason, "the server is stopping; the session moves");
                let members = g
                    .members
                    .iter()
                    .filter_map(|m| crate::connect_string::parse_server(m).ok())
                    .collect();
                self.moving = Some(members);
                // New requests wait for the next connection; ending the
                // request stream tells the server nothing more comes, so
                // it answers what it has and ends the stream.
                self.ready = false;
                if let Some(conn) = &mut self.conn {
                    conn.out = None;
                }
                None
            }
        }
    }

    fn on_response(&mut self, response: proto::Response) -> Option<Served> {
        self.shared.saw_zxid(response.zxid);
        let code = ErrorCode::from_i32(response.error);
        if self.set_watches_xid == Some(response.xid) {
            self.set_watches_xid = None;
            if !code.is_ok() {
                // Rare (the paths were valid when first set): the watches
                // cannot be trusted, so their holders learn it.
                tracing::warn!(%code, message = %response.message, "the server refused to re-register watches");
                self.watches.fail_all(&Error::new(
                    code,
                    format!("re-registering watches failed: {}", response.message),
                ));
            }
            if self.moving.is_some() {
                // Sent before the GoAway; the queue goes to the next server.
                return None;
            }
            return self.become_ready(Some(ConnectionState::Reconnected)).err();
        }
        if let Some(closing) = &self.closing {
            if closing.xid == Some(response.xid) {
                if !matches!(code, ErrorCode::Ok | ErrorCode::SessionExpired) {
                    tracing::warn!(%code, message = %response.message, "the server answered Close with an error");
                }
                return Some(Served::Closed);
            }
        }
        let Some(pending) = self.pending.remove(&response.xid) else {
            tracing::warn!(xid = response.xid, "ignoring a response to an unknown xid");
            return None;
        };
        if let Some(watch) = pending.watch {
            self.apply_watch(watch, code, &response);
        }
        // The caller may have given up waiting; that is fine.
        let _ = pending.reply.send(Ok(response));
        None
    }

    /// Updates the watch table for an answered request — before the caller
    /// sees the answer, so no event can slip between the two.
    fn apply_watch(&mut self, watch: WatchRequest, code: ErrorCode, response: &proto::Response) {
        match watch {
            WatchRequest::Oneshot {
                kind: OneshotKind::Exist,
                path,
                tx,
            } => {
                let exists = match &response.result {
                    Some(proto::response::Result::Exists(e)) => e.stat.is_some(),
                    Some(proto::response::Result::Stat(_)) => true,
                    _ => false,
                };
                match code {
                    ErrorCode::Ok if exists => {
                        self.watches.add_oneshot(OneshotKind::Data, path, tx)
                    }
                    ErrorCode::Ok | ErrorCode::NoNode => {
                        self.watches.add_oneshot(OneshotKind::Exist, path, tx)
                    }
                    _ => {}
                }
            }
            WatchRequest::Oneshot { kind, path, tx } => {
                if code.is_ok() {
                    self.watches.add_oneshot(kind, path, tx);
                }
            }
            WatchRequest::Stream { mode, path, tx } => {
                if code.is_ok() {
                    self.watches.add_stream(mode, path, tx);
                }
            }
            WatchRequest::Remove { path, which } => {
                if code.is_ok() {
                    self.watches.remove(&path, which);
                }
            }
        }
    }

    // ----- disconnected -----------------------------------------------------

    /// The stream broke, the session may live: fail what was in flight,
    /// keep the watches, and go looking for a server.
    fn suspend(&mut self, error: Error) {
        let error = if error.is_connection_loss() {
            error
        } else {
            Error::connection_loss(error.to_string())
        };
        tracing::debug!(
            session = format_args!("{:#x}", self.shared.session_id()),
            %error,
            "connection lost; the session is suspended"
        );
        self.set_state(ConnectionState::Suspended);
        self.disconnect(&error);
    }

    /// The server that said `GoAway` answered everything and ended the
    /// stream: look for another server without failing anything or
    /// announcing a suspension (requests made meanwhile are queued).
    fn move_on(&mut self) {
        tracing::debug!(
            session = format_args!("{:#x}", self.shared.session_id()),
            server = %self.shared.server(),
            "moving the session to another server"
        );
        self.disconnect(&Error::connection_loss(
            "the server stopped before answering",
        ));
    }

    /// Drops the connection, keeping the session: what was in flight fails
    /// with `error` (after a GoAway nothing is), and a pending `close()`
    /// goes again once connected (its outcome is unknown).
    fn disconnect(&mut self, error: &Error) {
        let now = Instant::now();
        self.conn = None;
        self.ready = false;
        self.set_watches_xid = None;
        self.suspended_since = now;
        for (_, pending) in self.pending.drain() {
            let _ = pending.reply.send(Err(error.clone()));
        }
        if let Some(closing) = &mut self.closing {
            closing.xid = None;
            closing.deadline = now + self.settings.connect_timeout;
        }
    }

    /// The session is gone. Everything that depended on it fails with
    /// `SessionExpired`. Returns how the task stops, unless it goes on to
    /// open a new session.
    fn lose(&mut self, reason: Error) -> Option<Stop> {
        let session = self.shared.session_id();
        let why = match reason.code() {
            ErrorCode::SessionExpired => reason.message(),
            code => format!("({code}) {}", reason.message()),
        };
        let error = Error::new(
            ErrorCode::SessionExpired,
            format!("session {session:#x} is lost: {why}"),
        );
        tracing::debug!(session = format_args!("{session:#x}"), %reason, "session lost");
        self.conn = None;
        self.ready = false;
        self.set_watches_xid = None;
        self.lost = true;
        self.set_state(ConnectionState::Lost);
        for (_, pending) in self.pending.drain() {
            let _ = pending.reply.send(Err(error.clone()));
        }
        for q in self.queued.drain(..) {
            let _ = q.reply.send(Err(error.clone()));
        }
        self.watches.fail_all(&error);
        if self.closing.is_some() {
            // Nothing left to close.
            return Some(Stop::Closed);
        }
        if !self.settings.renew_expired_session {
            return Some(Stop::Lost(error));
        }
        None
    }

    /// When a suspended session must be presumed expired.
    fn expires_at(&self) -> Instant {
        self.suspended_since + self.shared.timeout()
    }

    fn connect_request(&self) -> proto::Connect {
        let (session_id, password) = if self.lost {
            (0, Vec::new())
        } else {
            (self.shared.session_id(), self.shared.password())
        };
        proto::Connect {
            session_id,
            password,
            timeout_ms: self.settings.requested_timeout_ms,
            last_zxid: self.shared.last_zxid(),
            client_name: self.settings.client_name.clone(),
        }
    }

    /// How long one server may take to accept, during a reconnect: a share
    /// of the session timeout (as ZooKeeper), at most `connect_timeout`.
    fn per_attempt(&self) -> Duration {
        let n = u32::try_from(self.settings.servers.len())
            .unwrap_or(u32::MAX)
            .max(1);
        (self.shared.timeout() / n)
            .min(self.settings.connect_timeout)
            .max(Duration::from_millis(100))
    }

    /// Rounds of connect attempts, backing off between them, while serving
    /// commands (they queue) and watching the clocks (expiry, queued calls,
    /// a pending close). Returns the new connection, set as current.
    async fn reconnect(&mut self) -> Result<Start, Stop> {
        let mut round: u32 = 0;
        loop {
            let renewing = self.lost;
            let request = self.connect_request();
            let pause = match round {
                0 => Duration::ZERO,
                n => self.settings.retry.delay(n - 1),
            };
            let mut servers = self.settings.servers.clone();
            // Members a stopping server named, after those of the connect
            // string (the stopping one is tried last, as `last`).
            for m in self.moving.iter().flatten() {
                if !servers.contains(m) {
                    servers.push(m.clone());
                }
            }
            let per_attempt = self.per_attempt();
            let last = self.shared.server();
            let tls = self.settings.tls.clone();
            let attempt = async move {
                tokio::time::sleep(pause).await;
                connect::connect_round(&servers, &request, per_attempt, Some(&last), tls.as_ref())
                    .await
            };
            tokio::pin!(attempt);
            let outcome = loop {
                let mut wake = None::<Instant>;
                let mut consider = |t: Instant| wake = Some(wake.map_or(t, |w: Instant| w.min(t)));
                if !self.lost {
                    consider(self.expires_at());
                }
                if let Some(q) = self.queued.front() {
                    consider(q.deadline);
                }
                if let Some(c) = &self.closing {
                    consider(c.deadline);
                }
                let timer = async move {
                    match wake {
                        Some(at) => sleep_until(at).await,
                        None => futures::future::pending().await,
                    }
                };
                tokio::select! {
                    result = &mut attempt => break Some(result),
                    command = self.commands.recv() => match command {
                        Some(command) => {
                            if let Some(stop) = self.on_command_down(command) {
                                return Err(stop);
                            }
                        }
                        None => return Err(Stop::Dropped),
                    },
                    _ = timer => {
                        let now = Instant::now();
                        if let Some(c) = &self.closing {
                            if now >= c.deadline {
                                return Err(Stop::ClosedLocally(Error::connection_loss(format!(
                                    "closed without reaching a server within {} ms; the session \
                                     will expire on the server after its timeout",
                                    self.settings.connect_timeout.as_millis()
                                ))));
                            }
                        }
                        if !self.lost && now >= self.expires_at() {
                            if let Some(stop) = self.lose(self.timeout_error()) {
                                return Err(stop);
                            }
                            // Abandon attempts to resume; open a new session.
                            break None;
                        }
                        // After the expiry check: calls made before the
                        // session was lost learn that, not a timeout.
                        self.expire_queued(now);
                    }
                }
            };
            match outcome {
                None => round = 0,
                Some(Ok(conn)) => {
                    self.moving = None;
                    if renewing {
                        self.shared.adopt(&conn, self.settings.requested_timeout_ms);
                        self.shared.saw_zxid(conn.connected.last_zxid);
                        self.lost = false;
                        tracing::debug!(
                            session = format_args!("{:#x}", self.shared.session_id()),
                            server = %conn.server,
                            "opened a new session"
                        );
                        self.conn = Some(conn);
                        return Ok(Start::Renewed);
                    }
                    if conn.connected.session_id != self.shared.session_id() {
                        let why = Error::new(
                            ErrorCode::SessionExpired,
                            format!(
                                "{} offered session {:#x} instead",
                                conn.server, conn.connected.session_id
                            ),
                        );
                        if let Some(stop) = self.lose(why) {
                            return Err(stop);
                        }
                        round = 0;
                        continue;
                    }
                    if Instant::now() >= self.expires_at() {
                        // Too late: the session is presumed gone even if the
                        // server still had it.
                        if let Some(stop) = self.lose(self.timeout_error()) {
                            return Err(stop);
                        }
                        round = 0;
                        continue;
                    }
                    self.shared.adopt(&conn, self.settings.requested_timeout_ms);
                    tracing::debug!(
                        session = format_args!("{:#x}", self.shared.session_id()),
                        server = %conn.server,
                        "resumed the session"
                    );
                    self.conn = Some(conn);
                    return Ok(Start::Resumed);
                }
                Some(Err(RoundError::Refused(error))) if !renewing => {
                    if let Some(stop) = self.lose(error) {
                        return Err(stop);
                    }
                    round = 0;
                }
                Some(Err(RoundError::Refused(error) | RoundError::NoServer(error))) => {
                    tracing::debug!(round, %error, "no server accepted the session; backing off");
                    round = round.saturating_add(1);
                }
            }
        }
    }

    fn timeout_error(&self) -> Error {
        Error::new(
            ErrorCode::SessionExpired,
            format!(
                "not reconnected within the session timeout ({} ms)",
                self.shared.timeout().as_millis()
            ),
        )
    }

    fn on_command_down(&mut self, command: Command) -> Option<Stop> {
        match command {
            Command::Request { op, watch, reply } => {
                if self.closing.is_some() {
                    let _ = reply.send(Err(closed_error()));
                } else {
                    self.queue(op, watch, reply);
                }
                None
            }
            Command::Close { reply } => {
                match &mut self.closing {
                    Some(closing) => closing.replies.push(reply),
                    None => {
                        self.closing = Some(Closing {
                            xid: None,
                            replies: vec![reply],
                            deadline: Instant::now() + self.settings.connect_timeout,
                        })
                    }
                }
                // A lost session has nothing to close on the server.
                self.lost.then_some(Stop::Closed)
            }
        }
    }

    // ----- the end ----------------------------------------------------------

    /// Fails everything still waiting, records why the task stopped, and
    /// (after a clean close) lets the server finish the stream.
    async fn finish(mut self, stop: Stop) {
        let (error, close_result) = match &stop {
            Stop::Closed => (closed_error(), Ok(())),
            Stop::ClosedLocally(e) => (closed_error(), Err(e.clone())),
            Stop::Lost(e) => (e.clone(), Ok(())),
            Stop::Dropped => (
                Error::connection_loss("every handle to the client was dropped"),
                Ok(()),
            ),
        };
        match &stop {
            Stop::Closed | Stop::ClosedLocally(_) => {
                self.shared.closed_by_client.store(true, Ordering::Relaxed);
                *self.shared.terminal.lock() = Some(error.clone());
                self.set_state(ConnectionState::Closed);
                tracing::debug!(
                    session = format_args!("{:#x}", self.shared.session_id()),
                    "session closed"
                );
            }
            Stop::Lost(_) | Stop::Dropped => {
                *self.shared.terminal.lock() = Some(error.clone());
                tracing::debug!(
                    session = format_args!("{:#x}", self.shared.session_id()),
                    %error,
                    "session task stopped"
                );
            }
        }

        if let Some(closing) = self.closing.take() {
            for reply in closing.replies {
                let _ = reply.send(close_result.clone());
            }
        }
        for (_, pending) in self.pending.drain() {
            let _ = pending.reply.send(Err(error.clone()));
        }
        for q in self.queued.drain(..) {
            let _ = q.reply.send(Err(error.clone()));
        }
        self.watches.fail_all(&error);
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Command::Close { reply } => {
                    if matches!(stop, Stop::Lost(_)) {
                        self.shared.mark_closed();
                    }
                    let _ = reply.send(close_result.clone());
                }
            }
        }

        // Half-close our side; after a clean close, give the server a moment
        // to end its side so it sees an orderly goodbye, not a reset.
        if let Some(Connection {
            out, mut inbound, ..
        }) = self.conn.take()
        {
            drop(out);
            if matches!(stop, Stop::Closed) {
                let drain = async { while let Ok(Some(_)) = inbound.message().await {} };
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            }
        }
    }
}

/// Codes with which a server ends a session (rather than just a stream).
fn session_is_gone(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::SessionExpired | ErrorCode::SessionMoved | ErrorCode::AuthFailed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_session_codes_end_the_session() {
        for code in [
            ErrorCode::SessionExpired,
            ErrorCode::SessionMoved,
            ErrorCode::AuthFailed,
        ] {
            assert!(session_is_gone(code), "{code}");
        }
        for code in [
            ErrorCode::ConnectionLoss,
            ErrorCode::SystemError,
            ErrorCode::Unknown(-999),
        ] {
            assert!(!session_is_gone(code), "{code}");
        }
    }
}
