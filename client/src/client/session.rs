//! The session task: the one place that talks to the server.
//!
//! Every `Client` handle sends [`Command`]s into one channel; this task gives
//! each request the next xid, writes it to the stream (so requests are
//! pipelined and leave in call order), and matches `Response`s back to their
//! callers by xid. It also routes watch events, pings when idle, and — when
//! the stream dies — fails everything pending with the reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use warden_proto::v1 as proto;

use super::connect::Connection;
use crate::error::{Error, ErrorCode};
use crate::path::Chroot;
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
    pub session_id: u64,
    pub password: Vec<u8>,
    timeout_ms: AtomicU32,
    server_id: AtomicU64,
    last_zxid: AtomicI64,
    closed_by_client: AtomicBool,
    /// Why the session task stopped, once it has.
    terminal: Mutex<Option<Error>>,
}

impl Shared {
    pub fn new(connected: &proto::Connected, fallback_timeout_ms: u32) -> Shared {
        let timeout_ms = if connected.timeout_ms == 0 {
            fallback_timeout_ms
        } else {
            connected.timeout_ms
        };
        Shared {
            session_id: connected.session_id,
            password: connected.password.clone(),
            timeout_ms: AtomicU32::new(timeout_ms.max(1)),
            server_id: AtomicU64::new(connected.server_id),
            last_zxid: AtomicI64::new(connected.last_zxid.max(0)),
            closed_by_client: AtomicBool::new(false),
            terminal: Mutex::new(None),
        }
    }

    /// The negotiated session timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeout_ms.load(Ordering::Relaxed)))
    }

    pub fn server_id(&self) -> u64 {
        self.server_id.load(Ordering::Relaxed)
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

    /// The error for calls made after the session task stopped.
    pub fn terminal_error(&self) -> Error {
        self.terminal
            .lock()
            .clone()
            .unwrap_or_else(|| Error::connection_loss("the session task has stopped"))
    }
}

/// The error every call gets after `close()`.
fn closed_error() -> Error {
    Error::new(
        ErrorCode::SessionExpired,
        "the session was closed by this client",
    )
}

/// A request awaiting its response.
struct Pending {
    reply: oneshot::Sender<Result<proto::Response, Error>>,
    watch: Option<WatchRequest>,
}

/// A `Close` awaiting its response, and everyone waiting for it.
struct Closing {
    xid: i64,
    replies: Vec<oneshot::Sender<Result<(), Error>>>,
}

/// How the loop ended.
enum End {
    /// `close()` completed: the server answered the `Close` request.
    Closed,
    /// The stream (or the session) is gone.
    Lost(Error),
}

/// The task that owns the session stream. See the module docs.
pub(crate) struct SessionTask {
    shared: Arc<Shared>,
    chroot: Chroot,
    commands: mpsc::UnboundedReceiver<Command>,
    conn: Connection,
    pending: HashMap<i64, Pending>,
    watches: WatchRegistry,
    next_xid: i64,
    closing: Option<Closing>,
    last_sent: Instant,
    last_received: Instant,
}

impl SessionTask {
    pub fn new(
        shared: Arc<Shared>,
        chroot: Chroot,
        commands: mpsc::UnboundedReceiver<Command>,
        conn: Connection,
    ) -> SessionTask {
        let now = Instant::now();
        SessionTask {
            shared,
            chroot,
            commands,
            conn,
            pending: HashMap::new(),
            watches: WatchRegistry::default(),
            next_xid: 1,
            closing: None,
            last_sent: now,
            last_received: now,
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

    /// Runs until the session is closed or lost, then fails what is left.
    pub async fn run(mut self) {
        let end = loop {
            let ping_at = self.last_sent + self.ping_interval();
            let dead_at = self.last_received + self.read_timeout();
            tokio::select! {
                frame = self.conn.inbound.message() => {
                    if let Some(end) = self.on_inbound(frame) {
                        break end;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => {
                        if let Some(end) = self.on_command(command) {
                            break end;
                        }
                    }
                    None => {
                        break End::Lost(Error::connection_loss(
                            "every handle to the client was dropped",
                        ))
                    }
                },
                _ = sleep_until(ping_at.min(dead_at)) => {
                    if Instant::now() >= dead_at {
                        // A frame that arrived just now still counts.
                        match self.conn.inbound.message().now_or_never() {
                            Some(frame) => {
                                if let Some(end) = self.on_inbound(frame) {
                                    break end;
                                }
                                continue;
                            }
                            None => {
                                break End::Lost(Error::connection_loss(format!(
                                    "no answer from {} for {} ms",
                                    self.conn.server,
                                    self.read_timeout().as_millis()
                                )))
                            }
                        }
                    }
                    let ping = proto::client_frame::Frame::Ping(proto::Ping {});
                    if let Err(end) = self.send(ping) {
                        break end;
                    }
                }
            }
        };
        self.shutdown(end).await;
    }

    /// Writes one frame to the stream.
    fn send(&mut self, frame: proto::client_frame::Frame) -> Result<(), End> {
        self.last_sent = Instant::now();
        self.conn
            .out
            .send(proto::ClientFrame { frame: Some(frame) })
            .map_err(|_| {
                End::Lost(Error::connection_loss(format!(
                    "the stream to {} is closed",
                    self.conn.server
                )))
            })
    }

    fn take_xid(&mut self) -> i64 {
        let xid = self.next_xid;
        self.next_xid += 1;
        xid
    }

    fn on_command(&mut self, command: Command) -> Option<End> {
        match command {
            Command::Request { op, watch, reply } => {
                if self.closing.is_some() {
                    let _ = reply.send(Err(closed_error()));
                    return None;
                }
                let xid = self.take_xid();
                // Pending first, so a failed send fails this request too.
                self.pending.insert(xid, Pending { reply, watch });
                let frame =
                    proto::client_frame::Frame::Request(proto::Request { xid, op: Some(op) });
                self.send(frame).err()
            }
            Command::Close { reply } => {
                if let Some(closing) = &mut self.closing {
                    closing.replies.push(reply);
                    return None;
                }
                let xid = self.take_xid();
                self.closing = Some(Closing {
                    xid,
                    replies: vec![reply],
                });
                self.send(proto::client_frame::Frame::Close(proto::Close { xid }))
                    .err()
            }
        }
    }

    /// Handles what the inbound stream yielded: a frame, its end, or an error.
    fn on_inbound(
        &mut self,
        frame: Result<Option<proto::ServerFrame>, tonic::Status>,
    ) -> Option<End> {
        match frame {
            Ok(Some(frame)) => {
                self.last_received = Instant::now();
                self.on_frame(frame)
            }
            Ok(None) => Some(End::Lost(Error::connection_loss(format!(
                "{} ended the session stream",
                self.conn.server
            )))),
            Err(status) => Some(End::Lost(Error::from_status(
                &format!("session stream to {} failed", self.conn.server),
                status,
            ))),
        }
    }

    fn on_frame(&mut self, frame: proto::ServerFrame) -> Option<End> {
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
                    format!("{} ended the session", self.conn.server)
                } else {
                    refused.message
                };
                Some(End::Lost(Error::new(code, message)))
            }
            Frame::Connected(_) => {
                tracing::warn!(server = %self.conn.server, "ignoring a second Connected frame");
                None
            }
        }
    }

    fn on_response(&mut self, response: proto::Response) -> Option<End> {
        self.shared.saw_zxid(response.zxid);
        let code = ErrorCode::from_i32(response.error);
        if let Some(closing) = &self.closing {
            if closing.xid == response.xid {
                if !matches!(code, ErrorCode::Ok | ErrorCode::SessionExpired) {
                    tracing::warn!(%code, message = %response.message, "the server answered Close with an error");
                }
                return Some(End::Closed);
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

    /// Fails everything still waiting, records why the session ended, and
    /// (after a clean close) lets the server finish the stream.
    async fn shutdown(mut self, end: End) {
        // Reconnecting to another server (same session) would start here for
        // `End::Lost` with a ConnectionLoss error; today the session ends.
        let error = match &end {
            End::Closed => {
                self.shared.closed_by_client.store(true, Ordering::Relaxed);
                closed_error()
            }
            End::Lost(error) => error.clone(),
        };
        match &end {
            End::Closed => tracing::debug!(session = self.shared.session_id, "session closed"),
            End::Lost(e) => {
                tracing::debug!(session = self.shared.session_id, error = %e, "session lost")
            }
        }
        *self.shared.terminal.lock() = Some(error.clone());

        let close_result = match end {
            End::Closed => Ok(()),
            End::Lost(_) => Err(error.clone()),
        };
        if let Some(closing) = self.closing.take() {
            for reply in closing.replies {
                let _ = reply.send(close_result.clone());
            }
        }
        for (_, pending) in self.pending.drain() {
            let _ = pending.reply.send(Err(error.clone()));
        }
        self.watches.fail_all(&error);
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Command::Close { reply } => {
                    let _ = reply.send(close_result.clone());
                }
            }
        }

        // Half-close our side; after a clean close, give the server a moment
        // to end its side so it sees an orderly goodbye, not a reset.
        let Connection {
            out, mut inbound, ..
        } = self.conn;
        drop(out);
        if close_result.is_ok() {
            let drain = async { while let Ok(Some(_)) = inbound.message().await {} };
            let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        }
    }
}
