//! The session core's own messages: what a codec hands the core (a
//! [`Connect`], then [`Inbound`] items) and what the core hands back
//! ([`Outbound`]).
//!
//! Both wire protocols are mapped onto these at the edges (`api::grpc`,
//! `api::zk`). A reply says everything its codec needs to encode it —
//! create or create2, getChildren or getChildren2, the kind of each op of a
//! multi, the path a sync named — so a codec keeps no record of the
//! requests it has in flight.

use crate::error::{Code, ZkError};
use crate::tree::Stat;
use crate::txn::{Acl, Op, TxnError};
use crate::watch::{RemoveKind, WatchEventType, WatchKind};

/// The first thing a client sends: open a session, or resume one.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// 0 opens a new session.
    pub session_id: u64,
    pub password: Vec<u8>,
    pub timeout_ms: u32,
    /// The newest zxid the client has seen; a server behind it refuses.
    pub last_zxid: i64,
    /// Who is connecting, for the log.
    pub client_name: String,
}

/// Everything a client sends after [`Connect`], in order.
#[derive(Debug, Clone)]
pub enum Inbound {
    Request {
        xid: i64,
        request: Request,
    },
    Ping,
    /// closeSession: the session ends once the requests before it are answered.
    Close {
        xid: i64,
    },
}

/// One client request, in the server's terms.
#[derive(Debug, Clone)]
pub enum Request {
    /// create, delete, setData, setACL: proposed to the log.
    /// `create_stat`: a create's reply carries the new node's Stat
    /// (ZooKeeper's create2, createContainer and createTTL; always on gRPC).
    Write {
        op: Op,
        create_stat: bool,
    },
    /// Writes applied together or not at all. An op its codec could not
    /// accept is `Err`: the multi then fails with one code per op.
    Multi(Vec<MultiOp>),
    /// Linearizable: answered once this server has applied everything
    /// committed when it was received.
    Sync {
        path: String,
    },
    Read(Read),
    /// Adds an identity to the connection (ZooKeeper's auth packet).
    Auth {
        scheme: String,
        credentials: Vec<u8>,
    },
    /// The connection's identities.
    WhoAmI,
    /// A request its codec refused (a flag its opcode does not allow, an
    /// unknown operation): answered with this failure, in order.
    Refused(TxnError),
}

/// One op of a multi.
#[derive(Debug, Clone)]
pub struct MultiOp {
    pub op: Result<Op, ZkError>,
    pub create_stat: bool,
}

/// Requests served from the local tree and watch manager, in session order.
#[derive(Debug, Clone)]
pub enum Read {
    GetData {
        path: String,
        watch: bool,
    },
    /// `with_stat`: getChildren2 (and gRPC) answer the parent's Stat too.
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetAcl {
        path: String,
    },
    /// The session's ephemerals whose path starts with `prefix`.
    GetEphemerals {
        prefix: String,
    },
    /// getAllChildrenNumber: how many nodes are below `path`.
    CountDescendants {
        path: String,
    },
    /// The node exists (at `version`, if given).
    Check {
        path: String,
        version: Option<i32>,
    },
    /// getData, getChildren and exists, each answered on its own.
    Multi(Vec<Result<Read, ZkError>>),
    AddWatch {
        path: String,
        kind: WatchKind,
    },
    RemoveWatches {
        path: String,
        kind: RemoveKind,
    },
    CheckWatches {
        path: String,
        kind: RemoveKind,
    },
    SetWatches(SetWatches),
}

/// Watches a client re-registers after reconnecting, with the last zxid
/// it saw: those whose node changed since fire at once.
#[derive(Debug, Clone, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// The watcher type a request names; unspecified or unknown means any.
pub fn remove_kind(watcher_type: i32) -> RemoveKind {
    RemoveKind::from_number(watcher_type).unwrap_or(RemoveKind::Any)
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// delete, closeSession, the watch requests, setWatches.
    Empty,
    Created {
        path: String,
        stat: Option<Stat>,
    },
    /// setData, setACL.
    Stat(Stat),
    /// The node's Stat, or none if it does not exist.
    Exists(Option<Stat>),
    Data {
        /// `None`: the data is null.
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    Children {
        children: Vec<String>,
        stat: Option<Stat>,
    },
    Acl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    /// getEphemerals.
    Paths(Vec<String>),
    /// getAllChildrenNumber.
    Count(i32),
    /// A check outside a multi passed.
    Checked(Stat),
    Multi(Vec<OpReply>),
    /// Each read's reply (Data, Children or Exists), or its error.
    MultiRead(Vec<Result<Reply, Code>>),
    Synced {
        path: String,
    },
    WatchAdded,
    Authenticated,
    WhoAmI(Vec<crate::acl::AuthId>),
}

/// The result of one op of a successful multi.
#[derive(Debug, Clone, PartialEq)]
pub enum OpReply {
    Created { path: String, stat: Option<Stat> },
    Deleted,
    SetData(Stat),
    Checked,
}

/// The answer to request `xid`. `zxid` is the state it reflects; 0 for a
/// request refused before it reached the log or the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub xid: i64,
    pub zxid: i64,
    pub result: Result<Reply, TxnError>,
}

impl Answer {
    pub fn error(xid: i64, zxid: i64, e: impl Into<TxnError>) -> Answer {
        Answer {
            xid,
            zxid,
            result: Err(e.into()),
        }
    }
}

/// Everything the core sends a client, in the order it must arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Connected {
        session_id: u64,
        password: Vec<u8>,
        timeout_ms: u32,
        server_id: u64,
        /// The zxid this server had applied when the session was attached.
        last_zxid: i64,
    },
    /// The session could not be opened, or it ended (expired, closed, or
    /// resumed on another connection). Nothing follows.
    Ended {
        code: Code,
        message: String,
    },
    Answer(Answer),
    Pong {
        zxid: i64,
    },
    Event {
        zxid: i64,
        kind: WatchEventType,
        path: String,
    },
    /// This member is stopping: the client should end the connection once
    /// it has sent its last request, and resume elsewhere (`members`:
    /// other members' client addresses). gRPC only; a ZooKeeper-protocol
    /// connection is closed instead.
    GoAway {
        members: Vec<String>,
    },
}
