//! A small in-memory stand-in for warden-server, speaking the real gRPC
//! protocol, so the client's session handling (pipelining, xids, watches,
//! close, connection loss) and the CLI can be tested without the server.
//!
//! It implements just enough ZooKeeper semantics for that: persistent,
//! ephemeral and sequential nodes, versions, multi, one-shot and persistent
//! watches, resuming a session (id + password) on a new stream, and
//! `SetWatches`. Watches belong to a connection, as on the real server.
//!
//! Faults a test can cause: `create /__kill` ends that stream with an
//! error; `create /__mute` makes the server stop answering that stream;
//! [`Mock::cut`] ends a session's stream, [`Mock::expire`] expires a
//! session (telling its stream), [`Mock::set_down`] refuses new streams,
//! [`Mock::fail_next`] breaks the stream at the next request of a kind
//! (before or after applying it).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{TcpListenerStream, UnboundedReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use warden_proto::v1 as proto;
use warden_proto::v1::request::Op as ReqOp;
use warden_proto::v1::response::Result as Res;
use warden_proto::v1::warden_server::{Warden, WardenServer};
use warden_proto::ErrorCode as Code;

type Out = mpsc::UnboundedSender<Result<proto::ServerFrame, Status>>;

#[derive(Clone, Default)]
struct Node {
    data: Vec<u8>,
    stat: proto::Stat,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Data,
    Child,
    Persistent,
    Recursive,
}

struct Watch {
    session: u64,
    path: String,
    kind: Kind,
}

/// A session and the stream serving it, if any.
struct Session {
    password: Vec<u8>,
    conn: Option<(u64, Out)>,
}

/// A fault armed by [`Mock::fail_next`].
struct Fault {
    op: &'static str,
    apply: bool,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    zxid: i64,
    next_session: u64,
    next_conn: u64,
    sessions: HashMap<u64, Session>,
    watches: Vec<Watch>,
    /// Every xid received, per session, to check ordering.
    xids: HashMap<u64, Vec<i64>>,
    pings: u64,
    /// Streams the server no longer answers (not even pings).
    muted: BTreeSet<u64>,
    /// Streams ended by the server: frames still arriving on them are ignored.
    dead: BTreeSet<u64>,
    /// Refuse new streams.
    down: bool,
    /// Every Connect received, in order.
    connects: Vec<proto::Connect>,
    /// Every SetWatches received: (session, request).
    set_watches: Vec<(u64, proto::SetWatches)>,
    faults: Vec<Fault>,
    /// Every request received: (session, op), in arrival order.
    ops: Vec<(u64, &'static str)>,
}

/// The mock server's shared state; clone freely.
#[derive(Clone)]
pub struct Mock {
    state: Arc<Mutex<State>>,
}

/// A running mock server.
pub struct MockServer {
    pub addr: SocketAddr,
    pub mock: Mock,
    accept: tokio::task::JoinHandle<()>,
}

impl MockServer {
    pub async fn start() -> MockServer {
        let mut state = State::default();
        state.nodes.insert("/".into(), Node::default());
        state.next_session = 0x100;
        let mock = Mock {
            state: Arc::new(Mutex::new(state)),
        };
        MockServer::start_shared(&mock).await
    }

    /// Another server over the same state (an ensemble that agrees on
    /// everything), on its own port.
    pub async fn start_shared(mock: &Mock) -> MockServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = WardenServer::new(mock.clone());
        let accept = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        MockServer {
            addr,
            mock: mock.clone(),
            accept,
        }
    }

    /// Stops listening: new connections to this server are refused
    /// (streams already open are not touched: `cut` them).
    pub fn stop_accepting(&self) {
        self.accept.abort();
    }

    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }
}

impl Mock {
    /// The xids a session sent, in arrival order.
    pub fn xids(&self, session: u64) -> Vec<i64> {
        self.state
            .lock()
            .xids
            .get(&session)
            .cloned()
            .unwrap_or_default()
    }

    pub fn pings(&self) -> u64 {
        self.state.lock().pings
    }

    pub fn exists(&self, path: &str) -> bool {
        self.state.lock().nodes.contains_key(path)
    }

    /// Changes a node's data as another session would.
    pub fn external_set(&self, path: &str, data: &[u8]) {
        let mut st = self.state.lock();
        let r = st.set_data(path, data, None);
        assert_eq!(r.0, Code::Ok, "external set {path}");
        st.fire(r.2);
    }

    /// Creates a persistent node as another session would.
    pub fn external_create(&self, path: &str) {
        let mut st = self.state.lock();
        let c = proto::Create {
            path: path.into(),
            ..Default::default()
        };
        let (code, _, events) = st.create(&c, 0);
        assert_eq!(code, Code::Ok, "external create {path}");
        st.fire(events);
    }

    /// Deletes a node as another session would.
    pub fn external_delete(&self, path: &str) {
        let mut st = self.state.lock();
        let (code, events) = st.delete(path, None);
        assert_eq!(code, Code::Ok, "external delete {path}");
        st.fire(events);
    }

    /// The names of a node's children, sorted.
    pub fn children(&self, path: &str) -> Vec<String> {
        let mut c = self.state.lock().children(path);
        c.sort();
        c
    }

    /// The highest zxid so far.
    pub fn zxid(&self) -> i64 {
        self.state.lock().zxid
    }

    /// True while the session exists (it was neither closed nor expired).
    pub fn has_session(&self, session: u64) -> bool {
        self.state.lock().sessions.contains_key(&session)
    }

    /// True while a stream serves the session.
    pub fn is_attached(&self, session: u64) -> bool {
        self.state
            .lock()
            .sessions
            .get(&session)
            .is_some_and(|s| s.conn.is_some())
    }

    /// Every Connect received so far, in order.
    pub fn connects(&self) -> Vec<proto::Connect> {
        self.state.lock().connects.clone()
    }

    /// The kinds of request a session sent, in arrival order.
    pub fn ops(&self, session: u64) -> Vec<&'static str> {
        let st = self.state.lock();
        st.ops
            .iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, op)| *op)
            .collect()
    }

    /// Every SetWatches received so far: (session, request).
    pub fn set_watches(&self) -> Vec<(u64, proto::SetWatches)> {
        self.state.lock().set_watches.clone()
    }

    /// Ends the session's current stream with an error, as a dropped
    /// connection would; the session lives on.
    pub fn cut(&self, session: u64) {
        let mut st = self.state.lock();
        st.end_stream(session, Some(Status::unavailable("cut by test")));
    }

    /// Expires the session: its ephemerals go, its stream is told
    /// `SESSION_EXPIRED` and ends, and it can no longer be resumed.
    pub fn expire(&self, session: u64) {
        let mut st = self.state.lock();
        if let Some(Session {
            conn: Some((_, out)),
            ..
        }) = st.sessions.get(&session)
        {
            let _ = out.send(frame(proto::server_frame::Frame::ConnectError(
                proto::ConnectError {
                    code: Code::SessionExpired as i32,
                    message: format!("session {session:#x} has expired"),
                },
            )));
        }
        st.end_stream(session, None);
        st.close_session(session);
    }

    /// While down, new streams are refused (existing ones are not touched:
    /// `cut` them).
    pub fn set_down(&self, down: bool) {
        self.state.lock().down = down;
    }

    /// Breaks the stream at the next request of kind `op` ("create",
    /// "get_data", ...): after applying it (the answer is lost) when
    /// `apply`, else before (the request is lost).
    pub fn fail_next(&self, op: &'static str, apply: bool) {
        self.state.lock().faults.push(Fault { op, apply });
    }
}

fn op_name(op: &ReqOp) -> &'static str {
    match op {
        ReqOp::Create(_) => "create",
        ReqOp::Delete(_) => "delete",
        ReqOp::SetData(_) => "set_data",
        ReqOp::GetData(_) => "get_data",
        ReqOp::Exists(_) => "exists",
        ReqOp::GetChildren(_) => "get_children",
        ReqOp::Sync(_) => "sync",
        ReqOp::Multi(_) => "multi",
        ReqOp::GetAcl(_) => "get_acl",
        ReqOp::SetAcl(_) => "set_acl",
        ReqOp::AddWatch(_) => "add_watch",
        ReqOp::RemoveWatches(_) => "remove_watches",
        ReqOp::SetWatches(_) => "set_watches",
        ReqOp::GetEphemerals(_) => "get_ephemerals",
        ReqOp::GetAllChildrenNumber(_) => "get_all_children_number",
        ReqOp::Check(_) => "check",
        ReqOp::MultiRead(_) => "multi_read",
        ReqOp::CheckWatches(_) => "check_watches",
    }
}

fn parent(path: &str) -> Option<String> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/".into()),
        Some(i) => Some(path[..i].into()),
        None => None,
    }
}

fn is_under(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

type Event = (proto::EventType, String);

impl State {
    fn children(&self, path: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|k| parent(k).as_deref() == Some(path))
            .map(|k| k.rsplit('/').next().unwrap_or("").to_string())
            .collect()
    }

    fn create(
        &mut self,
        c: &proto::Create,
        session: u64,
    ) -> (Code, Option<(String, proto::Stat)>, Vec<Event>) {
        let Some(par) = parent(&c.path) else {
            return (Code::NodeExists, None, vec![]);
        };
        let mode = proto::CreateMode::try_from(c.mode).unwrap_or(proto::CreateMode::Persistent);
        let Some(p) = self.nodes.get(&par).cloned() else {
            return (Code::NoNode, None, vec![]);
        };
        if p.stat.ephemeral_owner != 0 {
            return (Code::NoChildrenForEphemerals, None, vec![]);
        }
        let sequential = matches!(
            mode,
            proto::CreateMode::PersistentSequential
                | proto::CreateMode::EphemeralSequential
                | proto::CreateMode::PersistentSequentialWithTtl
        );
        let path = if sequential {
            format!("{}{:010}", c.path, p.stat.cversion)
        } else {
            c.path.clone()
        };
        if self.nodes.contains_key(&path) {
            return (Code::NodeExists, None, vec![]);
        }
        self.zxid += 1;
        let ephemeral = matches!(
            mode,
            proto::CreateMode::Ephemeral | proto::CreateMode::EphemeralSequential
        );
        let stat = proto::Stat {
            czxid: self.zxid,
            mzxid: self.zxid,
            ctime: 1000,
            mtime: 1000,
            pzxid: self.zxid,
            ephemeral_owner: if ephemeral { session } else { 0 },
            data_length: c.data.len() as i32,
            ..Default::default()
        };
        self.nodes.insert(
            path.clone(),
            Node {
                data: c.data.clone(),
                stat,
            },
        );
        let zxid = self.zxid;
        if let Some(p) = self.nodes.get_mut(&par) {
            p.stat.cversion += 1;
            p.stat.num_children += 1;
            p.stat.pzxid = zxid;
        }
        (
            Code::Ok,
            Some((path.clone(), stat)),
            vec![
                (proto::EventType::NodeCreated, path),
                (proto::EventType::NodeChildrenChanged, par),
            ],
        )
    }

    fn delete(&mut self, path: &str, version: Option<i32>) -> (Code, Vec<Event>) {
        let Some(n) = self.nodes.get(path) else {
            return (Code::NoNode, vec![]);
        };
        if path == "/" {
            return (Code::BadArguments, vec![]);
        }
        if version.is_some_and(|v| v != n.stat.version) {
            return (Code::BadVersion, vec![]);
        }
        if n.stat.num_children > 0 {
            return (Code::NotEmpty, vec![]);
        }
        self.nodes.remove(path);
        self.zxid += 1;
        let zxid = self.zxid;
        let par = parent(path).unwrap_or_default();
        if let Some(p) = self.nodes.get_mut(&par) {
            p.stat.cversion += 1;
            p.stat.num_children -= 1;
            p.stat.pzxid = zxid;
        }
        (
            Code::Ok,
            vec![
                (proto::EventType::NodeDeleted, path.to_string()),
                (proto::EventType::NodeChildrenChanged, par),
            ],
        )
    }

    fn set_data(
        &mut self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> (Code, Option<proto::Stat>, Vec<Event>) {
        self.zxid += 1;
        let zxid = self.zxid;
        let Some(n) = self.nodes.get_mut(path) else {
            return (Code::NoNode, None, vec![]);
        };
        if version.is_some_and(|v| v != n.stat.version) {
            return (Code::BadVersion, None, vec![]);
        }
        n.data = data.to_vec();
        n.stat.version += 1;
        n.stat.mzxid = zxid;
        n.stat.data_length = data.len() as i32;
        (
            Code::Ok,
            Some(n.stat),
            vec![(proto::EventType::NodeDataChanged, path.to_string())],
        )
    }

    /// Sends each event to the sessions watching it, once per session, and
    /// drops the one-shot watches that fired.
    fn fire(&mut self, events: Vec<Event>) {
        for (kind, path) in events {
            let mut sessions = BTreeSet::new();
            self.watches.retain(|w| {
                let hit = match w.kind {
                    Kind::Data => {
                        w.path == path
                            && matches!(
                                kind,
                                proto::EventType::NodeCreated
                                    | proto::EventType::NodeDeleted
                                    | proto::EventType::NodeDataChanged
                            )
                    }
                    Kind::Child => {
                        w.path == path
                            && matches!(
                                kind,
                                proto::EventType::NodeChildrenChanged
                                    | proto::EventType::NodeDeleted
                            )
                    }
                    Kind::Persistent => w.path == path,
                    Kind::Recursive => {
                        kind != proto::EventType::NodeChildrenChanged && is_under(&path, &w.path)
                    }
                };
                if hit {
                    sessions.insert(w.session);
                }
                !(hit && matches!(w.kind, Kind::Data | Kind::Child))
            });
            for s in sessions {
                if let Some(Session {
                    conn: Some((_, out)),
                    ..
                }) = self.sessions.get(&s)
                {
                    let _ = out.send(Ok(proto::ServerFrame {
                        frame: Some(proto::server_frame::Frame::WatchEvent(proto::WatchEvent {
                            zxid: self.zxid,
                            r#type: kind as i32,
                            path: path.clone(),
                        })),
                    }));
                }
            }
        }
    }

    fn watch(&mut self, session: u64, path: &str, kind: Kind) {
        self.watches.push(Watch {
            session,
            path: path.to_string(),
            kind,
        });
    }

    fn handle(&mut self, session: u64, op: ReqOp) -> (Code, Option<Res>, Vec<Event>) {
        match op {
            ReqOp::Create(c) => match self.create(&c, session) {
                (Code::Ok, Some((path, stat)), ev) => (
                    Code::Ok,
                    Some(Res::Create(proto::CreateResult {
                        path,
                        stat: Some(stat),
                    })),
                    ev,
                ),
                (code, _, _) => (code, None, vec![]),
            },
            ReqOp::Delete(d) => {
                let (code, ev) = self.delete(&d.path, d.version);
                (code, Some(Res::Empty(proto::Empty {})), ev)
            }
            ReqOp::SetData(s) => {
                let (code, stat, ev) = self.set_data(&s.path, &s.data, s.version);
                (code, stat.map(Res::Stat), ev)
            }
            ReqOp::GetData(g) => match self.nodes.get(&g.path).cloned() {
                Some(n) => {
                    if g.watch {
                        self.watch(session, &g.path, Kind::Data);
                    }
                    (
                        Code::Ok,
                        Some(Res::Data(proto::DataResult {
                            data: n.data,
                            stat: Some(n.stat),
                        })),
                        vec![],
                    )
                }
                None => (Code::NoNode, None, vec![]),
            },
            ReqOp::Exists(e) => {
                if e.watch {
                    self.watch(session, &e.path, Kind::Data);
                }
                let stat = self.nodes.get(&e.path).map(|n| n.stat);
                (
                    Code::Ok,
                    Some(Res::Exists(proto::ExistsResult { stat })),
                    vec![],
                )
            }
            ReqOp::GetChildren(g) => match self.nodes.get(&g.path).cloned() {
                Some(n) => {
                    if g.watch {
                        self.watch(session, &g.path, Kind::Child);
                    }
                    let mut children = self.children(&g.path);
                    children.reverse(); // the client must not rely on order
                    (
                        Code::Ok,
                        Some(Res::Children(proto::ChildrenResult {
                            children,
                            stat: Some(n.stat),
                        })),
                        vec![],
                    )
                }
                None => (Code::NoNode, None, vec![]),
            },
            ReqOp::AddWatch(a) => {
                let kind = if a.mode == proto::AddWatchMode::PersistentRecursiveWatch as i32 {
                    Kind::Recursive
                } else {
                    Kind::Persistent
                };
                self.watch(session, &a.path, kind);
                (Code::Ok, Some(Res::Empty(proto::Empty {})), vec![])
            }
            ReqOp::RemoveWatches(r) => {
                let before = self.watches.len();
                self.watches
                    .retain(|w| !(w.session == session && w.path == r.path));
                let code = if self.watches.len() == before {
                    Code::NoWatcher
                } else {
                    Code::Ok
                };
                (code, Some(Res::Empty(proto::Empty {})), vec![])
            }
            ReqOp::Sync(_) => (Code::Ok, Some(Res::Empty(proto::Empty {})), vec![]),
            ReqOp::GetEphemerals(g) => {
                let paths = self
                    .nodes
                    .iter()
                    .filter(|(k, n)| n.stat.ephemeral_owner == session && k.starts_with(&g.prefix))
                    .map(|(k, _)| k.clone())
                    .collect();
                (
                    Code::Ok,
                    Some(Res::Paths(proto::PathsResult { paths })),
                    vec![],
                )
            }
            ReqOp::Multi(m) => self.multi(session, m),
            ReqOp::SetWatches(sw) => {
                self.set_watches_for(session, &sw);
                (Code::Ok, Some(Res::Empty(proto::Empty {})), vec![])
            }
            _ => (Code::Unimplemented, None, vec![]),
        }
    }

    fn multi(&mut self, session: u64, m: proto::Multi) -> (Code, Option<Res>, Vec<Event>) {
        let saved = (self.nodes.clone(), self.zxid);
        let mut results = Vec::new();
        let mut events = Vec::new();
        let mut failed = None;
        for (i, op) in m.ops.into_iter().enumerate() {
            use proto::op::Op as W;
            use proto::op_result::Result as R;
            let (code, result, ev) = match op.op {
                Some(W::Create(c)) => match self.create(&c, session) {
                    (Code::Ok, Some((path, stat)), ev) => (
                        Code::Ok,
                        Some(R::Create(proto::CreateResult {
                            path,
                            stat: Some(stat),
                        })),
                        ev,
                    ),
                    (code, _, _) => (code, None, vec![]),
                },
                Some(W::Delete(d)) => {
                    let (code, ev) = self.delete(&d.path, d.version);
                    (code, Some(R::Empty(proto::Empty {})), ev)
                }
                Some(W::SetData(s)) => {
                    let (code, stat, ev) = self.set_data(&s.path, &s.data, s.version);
                    (code, stat.map(R::Stat), ev)
                }
                Some(W::Check(c)) => match self.nodes.get(&c.path) {
                    None => (Code::NoNode, None, vec![]),
                    Some(n) if c.version.is_some_and(|v| v != n.stat.version) => {
                        (Code::BadVersion, None, vec![])
                    }
                    Some(_) => (Code::Ok, Some(R::Empty(proto::Empty {})), vec![]),
                },
                None => (Code::BadArguments, None, vec![]),
            };
            if code != Code::Ok {
                failed = Some((i, code));
                break;
            }
            results.push(proto::OpResult { error: 0, result });
            events.extend(ev);
        }
        if let Some((index, code)) = failed {
            self.nodes = saved.0;
            self.zxid = saved.1;
            // Ok before the failure, then the failing op's code (the mock
            // stops there; the client must cope with a short list).
            let mut codes = vec![Code::Ok as i32; index];
            codes.push(code as i32);
            let results = codes
                .into_iter()
                .map(|error| proto::OpResult {
                    error,
                    result: None,
                })
                .collect();
            return (
                code,
                Some(Res::Multi(proto::MultiResult { results })),
                vec![],
            );
        }
        (
            Code::Ok,
            Some(Res::Multi(proto::MultiResult { results })),
            events,
        )
    }

    /// Ends the session's current stream (with `error`, if given) and
    /// drops its watches, which belong to the stream.
    fn end_stream(&mut self, session: u64, error: Option<Status>) {
        let conn = self.sessions.get_mut(&session).and_then(|s| s.conn.take());
        if let Some((conn_id, out)) = conn {
            if let Some(status) = error {
                let _ = out.send(Err(status));
            }
            self.dead.insert(conn_id);
        }
        self.watches.retain(|w| w.session != session);
    }

    /// Sends one event to one session.
    fn notify(&self, session: u64, kind: proto::EventType, path: &str) {
        if let Some(Session {
            conn: Some((_, out)),
            ..
        }) = self.sessions.get(&session)
        {
            let _ = out.send(frame(proto::server_frame::Frame::WatchEvent(
                proto::WatchEvent {
                    zxid: self.zxid,
                    r#type: kind as i32,
                    path: path.to_string(),
                },
            )));
        }
    }

    /// Re-registers watches, firing at once those whose node changed after
    /// `relative_zxid` (as the real server does).
    fn set_watches_for(&mut self, session: u64, sw: &proto::SetWatches) {
        use proto::EventType as E;
        self.set_watches.push((session, sw.clone()));
        let rel = sw.relative_zxid;
        for p in &sw.data_watches {
            match self.nodes.get(p).map(|n| n.stat.mzxid) {
                None => self.notify(session, E::NodeDeleted, p),
                Some(m) if m > rel => self.notify(session, E::NodeDataChanged, p),
                Some(_) => self.watch(session, p, Kind::Data),
            }
        }
        for p in &sw.exist_watches {
            match self.nodes.get(p) {
                Some(_) => self.notify(session, E::NodeCreated, p),
                None => self.watch(session, p, Kind::Data),
            }
        }
        for p in &sw.child_watches {
            match self.nodes.get(p).map(|n| n.stat.pzxid) {
                None => self.notify(session, E::NodeDeleted, p),
                Some(z) if z > rel => self.notify(session, E::NodeChildrenChanged, p),
                Some(_) => self.watch(session, p, Kind::Child),
            }
        }
        for p in &sw.persistent_watches {
            self.watch(session, p, Kind::Persistent);
        }
        for p in &sw.persistent_recursive_watches {
            self.watch(session, p, Kind::Recursive);
        }
    }

    fn close_session(&mut self, session: u64) {
        let mine: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.stat.ephemeral_owner == session)
            .map(|(k, _)| k.clone())
            .collect();
        for path in mine.into_iter().rev() {
            let (_, ev) = self.delete(&path, None);
            self.fire(ev);
        }
        self.watches.retain(|w| w.session != session);
        self.sessions.remove(&session);
    }
}

fn frame(f: proto::server_frame::Frame) -> Result<proto::ServerFrame, Status> {
    Ok(proto::ServerFrame { frame: Some(f) })
}

#[tonic::async_trait]
impl Warden for Mock {
    type SessionStream = UnboundedReceiverStream<Result<proto::ServerFrame, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<proto::ClientFrame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if self.state.lock().down {
            return Err(Status::unavailable("the mock server is down"));
        }
        let mut inbound = request.into_inner();
        let (out, rx) = mpsc::unbounded_channel();
        let state = self.state.clone();
        tokio::spawn(async move {
            use proto::client_frame::Frame as C;
            use proto::server_frame::Frame as S;
            let Ok(Some(proto::ClientFrame {
                frame: Some(C::Connect(connect)),
            })) = inbound.message().await
            else {
                let _ = out.send(Err(Status::invalid_argument("first frame must be Connect")));
                return;
            };
            let (session, conn_id) = {
                let mut st = state.lock();
                st.connects.push(connect.clone());
                let refuse = |code: Code, message: String| {
                    let _ = out.send(frame(S::ConnectError(proto::ConnectError {
                        code: code as i32,
                        message,
                    })));
                };
                if connect.last_zxid > st.zxid {
                    refuse(
                        Code::ConnectionLoss,
                        format!("the client has seen zxid {}", connect.last_zxid),
                    );
                    return;
                }
                let id = if connect.session_id != 0 {
                    match st.sessions.get(&connect.session_id) {
                        Some(s) if s.password == connect.password => connect.session_id,
                        Some(_) => {
                            refuse(Code::AuthFailed, "wrong password".into());
                            return;
                        }
                        None => {
                            refuse(
                                Code::SessionExpired,
                                format!("session {:#x} expired", connect.session_id),
                            );
                            return;
                        }
                    }
                } else {
                    st.next_session += 1;
                    st.next_session
                };
                // A resumed session leaves its old stream (and its watches).
                st.end_stream(id, None);
                st.next_conn += 1;
                let conn_id = st.next_conn;
                let password = id.to_be_bytes().repeat(2);
                st.sessions.insert(
                    id,
                    Session {
                        password: password.clone(),
                        conn: Some((conn_id, out.clone())),
                    },
                );
                let _ = out.send(frame(S::Connected(proto::Connected {
                    session_id: id,
                    password,
                    timeout_ms: connect.timeout_ms.clamp(300, 40_000),
                    server_id: 1,
                    last_zxid: st.zxid,
                    read_only: false,
                })));
                (id, conn_id)
            };
            while let Ok(Some(msg)) = inbound.message().await {
                let mut st = state.lock();
                if st.dead.contains(&conn_id) {
                    return;
                }
                if st.muted.contains(&conn_id) {
                    continue;
                }
                match msg.frame {
                    Some(C::Request(req)) => {
                        st.xids.entry(session).or_default().push(req.xid);
                        if let Some(op) = &req.op {
                            let name = op_name(op);
                            st.ops.push((session, name));
                        }
                        if let Some(ReqOp::Create(c)) = &req.op {
                            if c.path == "/__mute" {
                                st.muted.insert(conn_id);
                                continue;
                            }
                            if c.path == "/__kill" {
                                st.end_stream(session, Some(Status::unavailable("killed by test")));
                                return;
                            }
                        }
                        let fault = req.op.as_ref().and_then(|op| {
                            let name = op_name(op);
                            let i = st.faults.iter().position(|f| f.op == name)?;
                            Some(st.faults.remove(i))
                        });
                        if let Some(Fault { apply: false, .. }) = fault {
                            st.end_stream(session, Some(Status::unavailable("request lost")));
                            return;
                        }
                        let (code, result, events) = match req.op {
                            Some(op) => st.handle(session, op),
                            None => (Code::BadArguments, None, vec![]),
                        };
                        // Events first, then the response (server invariant 2).
                        st.fire(events);
                        if fault.is_some() {
                            st.end_stream(session, Some(Status::unavailable("answer lost")));
                            return;
                        }
                        let _ = out.send(frame(S::Response(proto::Response {
                            xid: req.xid,
                            zxid: st.zxid,
                            error: code as i32,
                            message: String::new(),
                            result: if code == Code::Ok || matches!(result, Some(Res::Multi(_))) {
                                result
                            } else {
                                None
                            },
                        })));
                    }
                    Some(C::Ping(_)) => {
                        st.pings += 1;
                        let _ = out.send(frame(S::Pong(proto::Pong { zxid: st.zxid })));
                    }
                    Some(C::Close(c)) => {
                        st.close_session(session);
                        let _ = out.send(frame(S::Response(proto::Response {
                            xid: c.xid,
                            zxid: st.zxid,
                            error: 0,
                            message: String::new(),
                            result: Some(Res::Empty(proto::Empty {})),
                        })));
                        return;
                    }
                    _ => {}
                }
            }
            // Stream ended without Close: the session lives on (no expiry
            // here), its watches go with the stream.
            let mut st = state.lock();
            let current = st
                .sessions
                .get(&session)
                .and_then(|s| s.conn.as_ref())
                .map(|(id, _)| *id);
            if current == Some(conn_id) {
                st.end_stream(session, None);
            }
        });
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusResponse>, Status> {
        Err(Status::unimplemented("mock"))
    }
}
