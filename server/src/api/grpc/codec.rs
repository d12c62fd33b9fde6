//! gRPC frames ⇄ the session core's messages.

use warden_proto as pb;
use warden_proto::vocab::AddWatchMode;

use crate::error::ZkError;
use crate::session::message::{
    remove_kind, Answer, Connect, Inbound, MultiOp, OpReply, Outbound, Read, Reply, Request,
    SetWatches,
};
use crate::session::outq::Cut;
use crate::txn::{Acl, CreateMode, Op, TxnError};
use crate::watch::WatchKind;

pub fn connect(c: pb::Connect) -> Connect {
    Connect {
        session_id: c.session_id,
        password: c.password,
        timeout_ms: c.timeout_ms,
        last_zxid: c.last_zxid,
        client_name: c.client_name,
    }
}

/// A frame after Connect, or why the connection must close.
pub fn inbound(f: pb::ClientFrame) -> Result<Inbound, &'static str> {
    use pb::client_frame::Frame as F;
    match f.frame {
        Some(F::Ping(_)) => Ok(Inbound::Ping),
        Some(F::Close(c)) => Ok(Inbound::Close { xid: c.xid }),
        Some(F::Request(r)) => Ok(Inbound::Request {
            xid: r.xid,
            request: r.op.map(request).unwrap_or_else(|| {
                Request::Refused(
                    ZkError::new(
                        crate::error::Code::Unimplemented,
                        "unknown or missing operation",
                    )
                    .into(),
                )
            }),
        }),
        Some(F::Connect(_)) => Err("Connect on an open session"),
        None => Err("an empty frame"),
    }
}

fn acl(a: Vec<pb::Acl>) -> Vec<Acl> {
    a.into_iter().map(Acl::from).collect()
}

fn create(c: pb::Create) -> Result<Op, ZkError> {
    let mode = CreateMode::from_number(c.mode)
        .ok_or_else(|| ZkError::bad_arguments(format!("unknown create mode {}", c.mode)))?;
    // The gRPC API's default ACL: none given means world:anyone, all
    // permissions (ZooKeeper's protocol has no default: an empty ACL is
    // InvalidACL there).
    let acl = match c.acl.is_empty() {
        true => Acl::open(),
        false => acl(c.acl),
    };
    let data = nullable(c.data, c.null_data, &c.path)?;
    Ok(Op::with_data(
        |data| Op::Create {
            path: c.path,
            data,
            acl,
            mode,
            ttl_ms: c.ttl_ms,
        },
        data,
    ))
}

/// The data a request carries: `None` when it asks for null data.
fn nullable(data: Vec<u8>, null: bool, path: &str) -> Result<Option<Vec<u8>>, ZkError> {
    match (null, data.is_empty()) {
        (false, _) => Ok(Some(data)),
        (true, true) => Ok(None),
        (true, false) => Err(ZkError::bad_arguments(format!(
            "{path}: null_data with data; send one or the other"
        ))),
    }
}

fn set_data(s: pb::SetData) -> Result<Op, ZkError> {
    let data = nullable(s.data, s.null_data, &s.path)?;
    Ok(Op::with_data(
        |data| Op::SetData {
            path: s.path,
            data,
            version: s.version,
        },
        data,
    ))
}

fn multi_op(o: pb::Op) -> Result<Op, ZkError> {
    match o.op {
        Some(pb::op::Op::Create(c)) => create(c),
        Some(pb::op::Op::Delete(d)) => Ok(Op::Delete {
            path: d.path,
            version: d.version,
        }),
        Some(pb::op::Op::SetData(s)) => set_data(s),
        Some(pb::op::Op::Check(c)) => Ok(Op::Check {
            path: c.path,
            version: c.version,
        }),
        None => Err(ZkError::bad_arguments("a multi op has no operation")),
    }
}

fn read_op(o: pb::ReadOp) -> Result<Read, ZkError> {
    match o.op {
        Some(pb::read_op::Op::GetData(g)) => Ok(Read::GetData {
            path: g.path,
            watch: g.watch,
        }),
        Some(pb::read_op::Op::GetChildren(g)) => Ok(Read::GetChildren {
            path: g.path,
            watch: g.watch,
            with_stat: true,
        }),
        Some(pb::read_op::Op::Exists(g)) => Ok(Read::Exists {
            path: g.path,
            watch: g.watch,
        }),
        None => Err(ZkError::bad_arguments("a read op has no operation")),
    }
}

fn write(op: Result<Op, ZkError>) -> Request {
    match op {
        Ok(op) => Request::Write {
            op,
            create_stat: true,
        },
        Err(e) => Request::Refused(e.into()),
    }
}

pub fn request(op: pb::request::Op) -> Request {
    use pb::request::Op as R;
    match op {
        R::Create(c) => write(create(c)),
        R::Delete(d) => write(Ok(Op::Delete {
            path: d.path,
            version: d.version,
        })),
        R::SetData(s) => write(set_data(s)),
        R::SetAcl(s) => write(Ok(Op::SetAcl {
            path: s.path,
            acl: acl(s.acl),
            version: s.version,
        })),
        R::Multi(m) => Request::Multi(
            m.ops
                .into_iter()
                .map(|o| MultiOp {
                    op: multi_op(o),
                    create_stat: true,
                })
                .collect(),
        ),
        R::Sync(s) => Request::Sync { path: s.path },
        R::GetData(g) => Request::Read(Read::GetData {
            path: g.path,
            watch: g.watch,
        }),
        R::GetChildren(g) => Request::Read(Read::GetChildren {
            path: g.path,
            watch: g.watch,
            with_stat: true,
        }),
        R::Exists(g) => Request::Read(Read::Exists {
            path: g.path,
            watch: g.watch,
        }),
        R::GetAcl(g) => Request::Read(Read::GetAcl { path: g.path }),
        R::GetEphemerals(g) => Request::Read(Read::GetEphemerals { prefix: g.prefix }),
        R::GetAllChildrenNumber(g) => Request::Read(Read::CountDescendants { path: g.path }),
        R::Check(c) => Request::Read(Read::Check {
            path: c.path,
            version: c.version,
        }),
        R::MultiRead(m) => Request::Read(Read::Multi(m.ops.into_iter().map(read_op).collect())),
        R::AddWatch(a) => Request::Read(Read::AddWatch {
            path: a.path,
            kind: match AddWatchMode::from_number(a.mode) {
                Some(AddWatchMode::PersistentRecursive) => WatchKind::PersistentRecursive,
                _ => WatchKind::Persistent,
            },
        }),
        R::RemoveWatches(r) => Request::Read(Read::RemoveWatches {
            path: r.path,
            kind: remove_kind(r.watcher_type),
        }),
        R::CheckWatches(c) => Request::Read(Read::CheckWatches {
            path: c.path,
            kind: remove_kind(c.watcher_type),
        }),
        R::SetWatches(s) => Request::Read(Read::SetWatches(SetWatches {
            relative_zxid: s.relative_zxid,
            data: s.data_watches,
            exist: s.exist_watches,
            child: s.child_watches,
            persistent: s.persistent_watches,
            persistent_recursive: s.persistent_recursive_watches,
        })),
        R::AddAuth(a) => Request::Auth {
            scheme: a.scheme,
            credentials: a.credentials,
        },
        R::WhoAmI(_) => Request::WhoAmI,
    }
}

fn frame(f: pb::server_frame::Frame) -> pb::ServerFrame {
    pb::ServerFrame { frame: Some(f) }
}

/// An outgoing item as a gRPC frame; a cut ends the stream with
/// `ResourceExhausted`.
pub fn outbound(o: Result<Outbound, Cut>) -> Result<pb::ServerFrame, tonic::Status> {
    use pb::server_frame::Frame as F;
    let o = o.map_err(|Cut(why)| tonic::Status::resource_exhausted(why))?;
    Ok(frame(match o {
        Outbound::Connected {
            session_id,
            password,
            timeout_ms,
            server_id,
            last_zxid,
        } => F::Connected(pb::Connected {
            session_id,
            password,
            timeout_ms,
            server_id,
            last_zxid,
            read_only: false,
        }),
        Outbound::Ended { code, message } => F::ConnectError(pb::ConnectError {
            code: code.number(),
            message,
        }),
        Outbound::Answer(a) => F::Response(response(a)),
        Outbound::Pong { zxid } => F::Pong(pb::Pong { zxid }),
        Outbound::Event { zxid, kind, path } => F::WatchEvent(pb::WatchEvent {
            zxid,
            r#type: kind.number(),
            path,
        }),
        Outbound::GoAway { members } => F::GoAway(pb::GoAway {
            members,
            reason: "this member is stopping".into(),
        }),
    }))
}

fn stat(s: crate::tree::Stat) -> Option<pb::Stat> {
    Some(pb::Stat::from(s))
}

fn created(path: String, s: Option<crate::tree::Stat>) -> pb::CreateResult {
    pb::CreateResult {
        path,
        stat: s.map(pb::Stat::from),
    }
}

pub fn response(a: Answer) -> pb::Response {
    let Answer { xid, zxid, result } = a;
    match result {
        Ok(reply) => pb::Response {
            xid,
            zxid,
            error: 0,
            message: String::new(),
            result: Some(result_of(reply)),
        },
        Err(TxnError { error, multi }) => pb::Response {
            xid,
            zxid,
            error: error.code.number(),
            message: error.message,
            result: (!multi.is_empty()).then(|| {
                pb::response::Result::Multi(pb::MultiResult {
                    results: multi
                        .into_iter()
                        .map(|c| pb::OpResult {
                            error: c.number(),
                            result: None,
                        })
                        .collect(),
                })
            }),
        },
    }
}

fn result_of(reply: Reply) -> pb::response::Result {
    use pb::response::Result as Res;
    match reply {
        Reply::Created { path, stat } => Res::Create(created(path, stat)),
        Reply::Stat(s) | Reply::Checked(s) => Res::Stat(pb::Stat::from(s)),
        Reply::Exists(s) => Res::Exists(pb::ExistsResult {
            stat: s.map(pb::Stat::from),
        }),
        Reply::Data { data, stat: s } => Res::Data(data_result(data, s)),
        Reply::Children { children, stat } => Res::Children(pb::ChildrenResult {
            children,
            stat: stat.map(pb::Stat::from),
        }),
        Reply::Acl { acl, stat: s } => Res::Acl(pb::AclResult {
            acl: acl.into_iter().map(pb::Acl::from).collect(),
            stat: stat(s),
        }),
        Reply::Paths(paths) => Res::Paths(pb::PathsResult { paths }),
        Reply::Count(count) => Res::Count(pb::CountResult { count }),
        Reply::Multi(ops) => Res::Multi(pb::MultiResult {
            results: ops
                .into_iter()
                .map(|o| pb::OpResult {
                    error: 0,
                    result: Some(match o {
                        OpReply::Created { path, stat } => {
                            pb::op_result::Result::Create(created(path, stat))
                        }
                        OpReply::SetData(s) => pb::op_result::Result::Stat(pb::Stat::from(s)),
                        OpReply::Deleted | OpReply::Checked => {
                            pb::op_result::Result::Empty(pb::Empty {})
                        }
                    }),
                })
                .collect(),
        }),
        Reply::MultiRead(results) => Res::MultiRead(pb::MultiReadResult {
            results: results
                .into_iter()
                .map(|r| match r {
                    Ok(r) => pb::ReadOpResult {
                        error: 0,
                        result: read_result(r),
                    },
                    Err(code) => pb::ReadOpResult {
                        error: code.number(),
                        result: None,
                    },
                })
                .collect(),
        }),
        Reply::WhoAmI(ids) => Res::WhoAmI(pb::WhoAmIResult {
            ids: ids
                .iter()
                .map(|i| pb::ClientInfo {
                    scheme: i.scheme.clone(),
                    user: i.user().to_string(),
                })
                .collect(),
        }),
        Reply::Empty | Reply::Synced { .. } | Reply::WatchAdded | Reply::Authenticated => {
            Res::Empty(pb::Empty {})
        }
    }
}

fn data_result(data: Option<Vec<u8>>, s: crate::tree::Stat) -> pb::DataResult {
    pb::DataResult {
        null_data: data.is_none(),
        data: data.unwrap_or_default(),
        stat: stat(s),
    }
}

fn read_result(r: Reply) -> Option<pb::read_op_result::Result> {
    use pb::read_op_result::Result as R;
    match r {
        Reply::Data { data, stat: s } => Some(R::Data(data_result(data, s))),
        Reply::Children { children, stat } => Some(R::Children(pb::ChildrenResult {
            children,
            stat: stat.map(pb::Stat::from),
        })),
        Reply::Exists(s) => Some(R::Exists(pb::ExistsResult {
            stat: s.map(pb::Stat::from),
        })),
        _ => None,
    }
}
