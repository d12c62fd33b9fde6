//! Jute requests ⇄ the session core's messages. Each reply is encoded from
//! what the core answered alone: the core's replies say which form the
//! request asked for (create or create2, getChildren or getChildren2, ...).

use std::net::SocketAddr;

use warden_proto::jute::{self, MultiResult, Response};
use warden_proto::vocab::{CreateMode, Stat};

use crate::error::{Code, ZkError};
use crate::session::message::{
    remove_kind, Connect, Inbound, MultiOp, OpReply, Read, Reply, Request, SetWatches,
};
use crate::txn::{Op, TxnError};
use crate::watch::WatchKind;

pub fn connect(c: &jute::ConnectRequest, peer: SocketAddr) -> Connect {
    Connect {
        session_id: c.session_id as u64,
        password: c.passwd.clone(),
        timeout_ms: c.timeout_ms.max(0) as u32,
        last_zxid: c.last_zxid_seen,
        client_name: format!("zk {peer}"),
    }
}

/// What a decoded request becomes.
#[derive(Debug)]
pub enum Decoded {
    Session(Inbound),
    /// SASL without SASL configured: ZooKeeper closes the connection.
    Close(&'static str),
}

fn version(v: i32) -> Option<i32> {
    (v != -1).then_some(v)
}

fn is_ttl(flags: i32) -> bool {
    CreateMode::from_number(flags).is_some_and(CreateMode::is_ttl)
}

fn is_container(flags: i32) -> bool {
    CreateMode::from_number(flags).is_some_and(CreateMode::is_container)
}

/// A create of any of the four opcodes: `(op, with Stat)`. TTL flags on a
/// plain create, a container flag outside createContainer, or createTTL
/// without a TTL flag are BadArguments, as in ZooKeeper.
fn create(req: jute::Request) -> Result<(Op, bool), ZkError> {
    use jute::Request as J;
    let (c, mode, create_stat) = match req {
        J::Create(c) | J::Create2(c) if is_ttl(c.flags) || is_container(c.flags) => {
            return Err(ZkError::bad_arguments(format!(
                "{}: create flags {} need createTTL or createContainer",
                c.path, c.flags
            )))
        }
        J::CreateTtl(c) if !is_ttl(c.flags) => {
            return Err(ZkError::bad_arguments(format!(
                "{}: createTTL needs a TTL create mode",
                c.path
            )))
        }
        J::Create(c) => (c, None, false),
        J::Create2(c) | J::CreateTtl(c) => (c, None, true),
        J::CreateContainer(c) => (c, Some(CreateMode::Container), true),
        other => {
            return Err(ZkError::bad_arguments(format!(
                "opcode {} is not a create",
                other.opcode()
            )))
        }
    };
    let mode = match mode {
        Some(m) => m,
        None => CreateMode::from_number(c.flags)
            .ok_or_else(|| ZkError::bad_arguments(format!("unknown create mode {}", c.flags)))?,
    };
    Ok((
        Op::with_data(
            |data| Op::Create {
                path: c.path,
                data,
                acl: c.acl,
                mode,
                ttl_ms: c.ttl,
            },
            c.data,
        ),
        create_stat,
    ))
}

fn set_data(s: jute::SetDataRequest) -> Op {
    Op::with_data(
        |data| Op::SetData {
            path: s.path,
            data,
            version: version(s.version),
        },
        s.data,
    )
}

/// A write op of a multi.
fn multi_op(r: jute::Request) -> MultiOp {
    use jute::Request as J;
    let (op, create_stat) = match r {
        J::Create(_) | J::Create2(_) | J::CreateContainer(_) | J::CreateTtl(_) => match create(r) {
            Ok((op, s)) => (Ok(op), s),
            Err(e) => (Err(e), false),
        },
        J::Delete(d) => (
            Ok(Op::Delete {
                path: d.path,
                version: version(d.version),
            }),
            false,
        ),
        J::SetData(s) => (Ok(set_data(s)), false),
        J::Check(c) => (
            Ok(Op::Check {
                path: c.path,
                version: version(c.version),
            }),
            false,
        ),
        other => (
            Err(ZkError::bad_arguments(format!(
                "opcode {} may not be in a multi",
                other.opcode()
            ))),
            false,
        ),
    };
    MultiOp { op, create_stat }
}

fn read(r: Read) -> Request {
    Request::Read(r)
}

/// Maps one decoded request with its xid.
pub fn inbound(xid: i32, req: jute::Request) -> Decoded {
    use jute::Request as J;
    let request = match req {
        J::Create(_) | J::Create2(_) | J::CreateContainer(_) | J::CreateTtl(_) => {
            match create(req) {
                Ok((op, create_stat)) => Request::Write { op, create_stat },
                Err(e) => Request::Refused(e.into()),
            }
        }
        J::Delete(d) => Request::Write {
            op: Op::Delete {
                path: d.path,
                version: version(d.version),
            },
            create_stat: false,
        },
        J::SetData(s) => Request::Write {
            op: set_data(s),
            create_stat: false,
        },
        J::SetAcl(s) => Request::Write {
            op: Op::SetAcl {
                path: s.path,
                acl: s.acl,
                version: version(s.version),
            },
            create_stat: false,
        },
        J::Multi(ops) => Request::Multi(ops.into_iter().map(multi_op).collect()),
        J::Exists(p) => read(Read::Exists {
            path: p.path,
            watch: p.watch,
        }),
        J::GetData(p) => read(Read::GetData {
            path: p.path,
            watch: p.watch,
        }),
        J::GetChildren(p) => read(Read::GetChildren {
            path: p.path,
            watch: p.watch,
            with_stat: false,
        }),
        J::GetChildren2(p) => read(Read::GetChildren {
            path: p.path,
            watch: p.watch,
            with_stat: true,
        }),
        J::GetAcl(path) => read(Read::GetAcl { path }),
        J::Sync(path) => Request::Sync { path },
        J::Ping => return Decoded::Session(Inbound::Ping),
        J::Check(c) => read(Read::Check {
            path: c.path,
            version: version(c.version),
        }),
        J::MultiRead(ops) => {
            let mut reads = Vec::with_capacity(ops.len());
            for o in ops {
                reads.push(Ok(match o {
                    J::GetData(p) => Read::GetData {
                        path: p.path,
                        watch: p.watch,
                    },
                    J::GetChildren(p) => Read::GetChildren {
                        path: p.path,
                        watch: p.watch,
                        with_stat: false,
                    },
                    other => {
                        return refused(
                            xid,
                            ZkError::bad_arguments(format!(
                                "opcode {} may not be in a multiRead",
                                other.opcode()
                            )),
                        )
                    }
                }));
            }
            read(Read::Multi(reads))
        }
        J::Reconfig(_) => Request::Refused(
            ZkError::new(
                Code::ReconfigDisabled,
                "dynamic reconfiguration is disabled",
            )
            .into(),
        ),
        J::CheckWatches(w) => read(Read::CheckWatches {
            path: w.path,
            kind: remove_kind(w.watcher_type),
        }),
        J::RemoveWatches(w) => read(Read::RemoveWatches {
            path: w.path,
            kind: remove_kind(w.watcher_type),
        }),
        J::Auth(a) => Request::Auth {
            scheme: a.scheme,
            credentials: a.auth,
        },
        J::SetWatches(s) => read(Read::SetWatches(SetWatches {
            relative_zxid: s.relative_zxid,
            data: s.data,
            exist: s.exist,
            child: s.child,
            persistent: vec![],
            persistent_recursive: vec![],
        })),
        J::SetWatches2(s) => read(Read::SetWatches(SetWatches {
            relative_zxid: s.relative_zxid,
            data: s.data,
            exist: s.exist,
            child: s.child,
            persistent: s.persistent,
            persistent_recursive: s.persistent_recursive,
        })),
        J::Sasl(_) => return Decoded::Close("a SASL request, but SASL is not configured"),
        J::GetEphemerals(prefix) => read(Read::GetEphemerals { prefix }),
        J::GetAllChildrenNumber(path) => read(Read::CountDescendants { path }),
        J::AddWatch(a) => match a.mode {
            0 => read(Read::AddWatch {
                path: a.path,
                kind: WatchKind::Persistent,
            }),
            1 => read(Read::AddWatch {
                path: a.path,
                kind: WatchKind::PersistentRecursive,
            }),
            m => Request::Refused(
                ZkError::bad_arguments(format!("unknown addWatch mode {m}")).into(),
            ),
        },
        J::WhoAmI => Request::WhoAmI,
        J::CloseSession => {
            return Decoded::Session(Inbound::Close {
                xid: i64::from(xid),
            })
        }
    };
    Decoded::Session(Inbound::Request {
        xid: i64::from(xid),
        request,
    })
}

/// A request answered with an error in its turn.
pub fn refused(xid: i32, e: ZkError) -> Decoded {
    Decoded::Session(Inbound::Request {
        xid: i64::from(xid),
        request: Request::Refused(e.into()),
    })
}

fn stat(s: Stat) -> jute::Stat {
    jute::Stat::from(s)
}

/// The reply's error code and body. A failed multi is a successful reply
/// listing each op's error; exists on a missing node is NoNode.
pub fn reply(result: Result<Reply, TxnError>) -> (i32, Response) {
    let reply = match result {
        Ok(r) => r,
        Err(e) if !e.multi.is_empty() => {
            return (
                0,
                Response::Multi(
                    e.multi
                        .iter()
                        .map(|c| MultiResult::Error(c.number()))
                        .collect(),
                ),
            )
        }
        Err(e) => return (e.error.code.number(), Response::Empty),
    };
    let body = match reply {
        Reply::Empty | Reply::Checked(_) | Reply::Authenticated => Response::Empty,
        Reply::Created { path, stat: None } => Response::Create(path),
        Reply::Created {
            path,
            stat: Some(s),
        } => Response::Create2(path, stat(s)),
        Reply::Stat(s) => Response::Stat(stat(s)),
        Reply::Exists(Some(s)) => Response::Stat(stat(s)),
        Reply::Exists(None) => return (Code::NoNode.number(), Response::Empty),
        Reply::Data { data, stat: s } => Response::Data(data, stat(s)),
        Reply::Children {
            children,
            stat: None,
        } => Response::Children(children),
        Reply::Children {
            children,
            stat: Some(s),
        } => Response::Children2(children, stat(s)),
        Reply::Acl { acl, stat: s } => Response::Acl(acl, stat(s)),
        Reply::Paths(p) => Response::Ephemerals(p),
        Reply::Count(c) => Response::Count(c),
        Reply::Multi(ops) => Response::Multi(
            ops.into_iter()
                .map(|o| match o {
                    OpReply::Created { path, stat: None } => MultiResult::Create(path),
                    OpReply::Created {
                        path,
                        stat: Some(s),
                    } => MultiResult::Create2(path, stat(s)),
                    OpReply::Deleted => MultiResult::Delete,
                    OpReply::SetData(s) => MultiResult::SetData(stat(s)),
                    OpReply::Checked => MultiResult::Check,
                })
                .collect(),
        ),
        Reply::MultiRead(results) => Response::Multi(
            results
                .into_iter()
                .map(|r| match r {
                    Ok(Reply::Data { data, stat: s }) => MultiResult::GetData(data, stat(s)),
                    Ok(Reply::Children { children, .. }) => MultiResult::GetChildren(children),
                    Ok(_) => MultiResult::Error(Code::SystemError.number()),
                    Err(c) => MultiResult::Error(c.number()),
                })
                .collect(),
        ),
        Reply::Synced { path } => Response::Sync(path),
        Reply::WatchAdded => Response::ErrorBody(0),
        Reply::WhoAmI(ids) => Response::WhoAmI(
            ids.into_iter()
                .map(|i| jute::ClientInfo {
                    user: i.user().to_string(),
                    auth_scheme: i.scheme,
                })
                .collect(),
        ),
    };
    (0, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_of(d: Decoded) -> Request {
        match d {
            Decoded::Session(Inbound::Request { request, .. }) => request,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn exists_on_a_missing_node_is_no_node() {
        assert_eq!(reply(Ok(Reply::Exists(None))), (-101, Response::Empty));
    }

    #[test]
    fn children_reply_follows_the_request() {
        let r = request_of(inbound(
            1,
            jute::Request::GetChildren(jute::PathWatch {
                path: "/".into(),
                watch: false,
            }),
        ));
        assert!(matches!(
            r,
            Request::Read(Read::GetChildren {
                with_stat: false,
                ..
            })
        ));
        let children = |stat| Reply::Children {
            children: vec!["a".into()],
            stat,
        };
        assert!(matches!(reply(Ok(children(None))).1, Response::Children(_)));
        assert!(matches!(
            reply(Ok(children(Some(Stat::default())))).1,
            Response::Children2(..)
        ));
        assert_eq!(
            reply(Ok(Reply::Synced { path: "/s".into() })).1,
            Response::Sync("/s".into())
        );
    }

    #[test]
    fn failed_multi_lists_each_ops_error() {
        let e = TxnError {
            error: ZkError::new(Code::NoNode, "/x"),
            multi: vec![Code::Ok, Code::NoNode],
        };
        assert_eq!(
            reply(Err(e)),
            (
                0,
                Response::Multi(vec![MultiResult::Error(0), MultiResult::Error(-101)])
            )
        );
    }

    #[test]
    fn ttl_flags_need_create_ttl() {
        let c = jute::CreateRequest {
            path: "/t".into(),
            flags: 5,
            ttl: 100,
            ..Default::default()
        };
        assert!(matches!(
            request_of(inbound(1, jute::Request::Create(c.clone()))),
            Request::Refused(TxnError { error, .. }) if error.code == Code::BadArguments
        ));
        assert!(matches!(
            request_of(inbound(1, jute::Request::CreateTtl(c))),
            Request::Write {
                create_stat: true,
                ..
            }
        ));
        let m = request_of(inbound(
            7,
            jute::Request::Multi(vec![jute::Request::Create(jute::CreateRequest {
                path: "/t".into(),
                flags: 5,
                ..Default::default()
            })]),
        ));
        let Request::Multi(ops) = m else {
            panic!("a multi")
        };
        assert_eq!(ops[0].op.as_ref().unwrap_err().code, Code::BadArguments);
    }
}
