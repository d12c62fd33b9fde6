//! Jute requests to the session model's `pb` requests, and `pb` answers
//! back to jute replies.

use warden_proto as pb;
use warden_proto::jute::{self, op, MultiResult, Response};
use warden_proto::vocab::{CreateMode, Stat};

use crate::error::Code;

/// What the writer needs to know to encode the reply to a request: the
/// opcode (create vs create2, getChildren vs getChildren2, ...), the ops of
/// a multi, and a sync's path (echoed back).
#[derive(Debug, Clone)]
pub struct Expect {
    pub xid: i32,
    pub opcode: i32,
    pub sub_ops: Vec<i32>,
    pub path: String,
}

/// What a jute request becomes.
pub enum Mapped {
    /// Sent through the session, answered in order.
    Session(pb::client_frame::Frame, Expect),
    /// Answered by the adapter itself (auth, whoAmI, reconfig, bad args).
    Local(Local),
    /// SASL without SASL configured: ZooKeeper closes the connection.
    Close(&'static str),
}

/// A reply the adapter makes itself, in order with the others.
#[derive(Debug, Clone)]
pub enum Local {
    Error {
        xid: i32,
        code: Code,
    },
    /// A multi refused before it reached the log: header ok and one
    /// `ErrorResult` per op, as ZooKeeper answers a multi whose op fails
    /// validation (Ok before it, its code, RuntimeInconsistency after).
    MultiError {
        xid: i32,
        errors: Vec<i32>,
    },
    /// Answered with the request's xid (-4 from most clients), as ZooKeeper.
    Auth {
        xid: i32,
        scheme: String,
        id: String,
    },
    WhoAmI {
        xid: i32,
    },
}

fn version(v: i32) -> Option<i32> {
    (v != -1).then_some(v)
}

fn acl(a: &[jute::Acl]) -> Vec<pb::Acl> {
    a.iter().cloned().map(pb::Acl::from).collect()
}

fn create(c: &jute::CreateRequest, mode: i32) -> pb::Create {
    pb::Create {
        path: c.path.clone(),
        data: c.data.clone(),
        mode,
        ttl_ms: c.ttl,
        acl: acl(&c.acl),
    }
}

fn get(p: &jute::PathWatch) -> (String, bool) {
    (p.path.clone(), p.watch)
}

/// A write op of a multi.
fn multi_op(r: &jute::Request) -> Option<pb::op::Op> {
    use jute::Request as J;
    Some(match r {
        J::Create(c) | J::Create2(c) => pb::op::Op::Create(create(c, c.flags)),
        J::CreateContainer(c) => pb::op::Op::Create(create(c, CreateMode::Container.number())),
        J::CreateTtl(c) => pb::op::Op::Create(create(c, c.flags)),
        J::Delete(d) => pb::op::Op::Delete(pb::Delete {
            path: d.path.clone(),
            version: version(d.version),
        }),
        J::SetData(s) => pb::op::Op::SetData(pb::SetData {
            path: s.path.clone(),
            data: s.data.clone(),
            version: version(s.version),
        }),
        J::Check(c) => pb::op::Op::Check(pb::Check {
            path: c.path.clone(),
            version: version(c.version),
        }),
        _ => return None,
    })
}

/// Maps a decoded request. TTL flags on a plain create, or a container
/// flag outside createContainer, are BadArguments as in ZooKeeper.
pub fn request(xid: i32, req: &jute::Request) -> Mapped {
    use jute::Request as J;
    use pb::request::Op as R;
    let opcode = req.opcode();
    let expect = |path: &str, sub_ops: Vec<i32>| Expect {
        xid,
        opcode,
        sub_ops,
        path: path.to_string(),
    };
    let session = |op: R, e: Expect| {
        Mapped::Session(
            pb::client_frame::Frame::Request(pb::Request {
                xid: xid as i64,
                op: Some(op),
            }),
            e,
        )
    };
    let bad = |code| Mapped::Local(Local::Error { xid, code });
    let is_ttl = |f: i32| CreateMode::from_number(f).is_some_and(CreateMode::is_ttl);
    let is_container = |f: i32| CreateMode::from_number(f).is_some_and(CreateMode::is_container);
    match req {
        J::Create(c) | J::Create2(c) if is_ttl(c.flags) || is_container(c.flags) => {
            bad(Code::BadArguments)
        }
        J::CreateTtl(c) if !is_ttl(c.flags) => bad(Code::BadArguments),
        J::Create(c) | J::Create2(c) | J::CreateTtl(c) => {
            session(R::Create(create(c, c.flags)), expect("", vec![]))
        }
        J::CreateContainer(c) => session(
            R::Create(create(c, CreateMode::Container.number())),
            expect("", vec![]),
        ),
        J::Delete(d) => session(
            R::Delete(pb::Delete {
                path: d.path.clone(),
                version: version(d.version),
            }),
            expect("", vec![]),
        ),
        J::Exists(p) => {
            let (path, watch) = get(p);
            session(R::Exists(pb::Exists { path, watch }), expect("", vec![]))
        }
        J::GetData(p) => {
            let (path, watch) = get(p);
            session(R::GetData(pb::GetData { path, watch }), expect("", vec![]))
        }
        J::GetChildren(p) | J::GetChildren2(p) => {
            let (path, watch) = get(p);
            session(
                R::GetChildren(pb::GetChildren { path, watch }),
                expect("", vec![]),
            )
        }
        J::SetData(s) => session(
            R::SetData(pb::SetData {
                path: s.path.clone(),
                data: s.data.clone(),
                version: version(s.version),
            }),
            expect("", vec![]),
        ),
        J::GetAcl(p) => session(
            R::GetAcl(pb::GetAcl { path: p.clone() }),
            expect("", vec![]),
        ),
        J::SetAcl(s) => session(
            R::SetAcl(pb::SetAcl {
                path: s.path.clone(),
                acl: acl(&s.acl),
                version: version(s.version),
            }),
            expect("", vec![]),
        ),
        J::Sync(p) => session(R::Sync(pb::Sync { path: p.clone() }), expect(p, vec![])),
        J::Ping => Mapped::Session(
            pb::client_frame::Frame::Ping(pb::Ping {}),
            expect("", vec![]),
        ),
        J::Check(c) => session(
            R::Check(pb::Check {
                path: c.path.clone(),
                version: version(c.version),
            }),
            expect("", vec![]),
        ),
        J::Multi(ops) => {
            let mut pb_ops = Vec::with_capacity(ops.len());
            for (i, o) in ops.iter().enumerate() {
                let bad_create = match o {
                    J::Create(c) | J::Create2(c) => is_ttl(c.flags) || is_container(c.flags),
                    J::CreateTtl(c) => !is_ttl(c.flags),
                    _ => false,
                };
                let checked = match multi_op(o) {
                    Some(op) if !bad_create => {
                        let op = pb::Op { op: Some(op) };
                        crate::api::convert::multi_op(&op)
                            .and_then(|t| t.validate())
                            .map(|_| op)
                            .map_err(|e| e.code)
                    }
                    _ => Err(Code::BadArguments),
                };
                match checked {
                    Ok(op) => pb_ops.push(op),
                    Err(code) => {
                        let mut errors = vec![0; i];
                        errors.push(code.number());
                        errors.resize(ops.len(), Code::RuntimeInconsistency.number());
                        return Mapped::Local(Local::MultiError { xid, errors });
                    }
                }
            }
            session(
                R::Multi(pb::Multi { ops: pb_ops }),
                expect("", ops.iter().map(|o| o.opcode()).collect()),
            )
        }
        J::MultiRead(ops) => {
            let mut pb_ops = Vec::with_capacity(ops.len());
            for o in ops {
                let op = match o {
                    J::GetData(p) => {
                        let (path, watch) = get(p);
                        pb::read_op::Op::GetData(pb::GetData { path, watch })
                    }
                    J::GetChildren(p) => {
                        let (path, watch) = get(p);
                        pb::read_op::Op::GetChildren(pb::GetChildren { path, watch })
                    }
                    _ => return bad(Code::BadArguments),
                };
                pb_ops.push(pb::ReadOp { op: Some(op) });
            }
            session(
                R::MultiRead(pb::MultiRead { ops: pb_ops }),
                expect("", ops.iter().map(|o| o.opcode()).collect()),
            )
        }
        J::Reconfig(_) => bad(Code::ReconfigDisabled),
        J::CheckWatches(w) => session(
            R::CheckWatches(pb::CheckWatches {
                path: w.path.clone(),
                watcher_type: w.watcher_type,
            }),
            expect("", vec![]),
        ),
        J::RemoveWatches(w) => session(
            R::RemoveWatches(pb::RemoveWatches {
                path: w.path.clone(),
                watcher_type: w.watcher_type,
            }),
            expect("", vec![]),
        ),
        J::Auth(a) => {
            let id = String::from_utf8_lossy(&a.auth).to_string();
            // digest "user:password" authenticates as "user".
            let id = match a.scheme.as_str() {
                "digest" => id.split(':').next().unwrap_or_default().to_string(),
                _ => id,
            };
            Mapped::Local(Local::Auth {
                xid,
                scheme: a.scheme.clone(),
                id,
            })
        }
        J::SetWatches(s) => session(
            R::SetWatches(pb::SetWatches {
                relative_zxid: s.relative_zxid,
                data_watches: s.data.clone(),
                exist_watches: s.exist.clone(),
                child_watches: s.child.clone(),
                persistent_watches: vec![],
                persistent_recursive_watches: vec![],
            }),
            expect("", vec![]),
        ),
        J::SetWatches2(s) => session(
            R::SetWatches(pb::SetWatches {
                relative_zxid: s.relative_zxid,
                data_watches: s.data.clone(),
                exist_watches: s.exist.clone(),
                child_watches: s.child.clone(),
                persistent_watches: s.persistent.clone(),
                persistent_recursive_watches: s.persistent_recursive.clone(),
            }),
            expect("", vec![]),
        ),
        J::Sasl(_) => Mapped::Close("a SASL request, but SASL is not configured"),
        J::GetEphemerals(p) => session(
            R::GetEphemerals(pb::GetEphemerals { prefix: p.clone() }),
            expect("", vec![]),
        ),
        J::GetAllChildrenNumber(p) => session(
            R::GetAllChildrenNumber(pb::GetAllChildrenNumber { path: p.clone() }),
            expect("", vec![]),
        ),
        J::AddWatch(a) if a.mode != 0 && a.mode != 1 => bad(Code::BadArguments),
        J::AddWatch(a) => session(
            R::AddWatch(pb::AddWatch {
                path: a.path.clone(),
                mode: a.mode,
            }),
            expect("", vec![]),
        ),
        J::WhoAmI => Mapped::Local(Local::WhoAmI { xid }),
        J::CloseSession => Mapped::Session(
            pb::client_frame::Frame::Close(pb::Close { xid: xid as i64 }),
            expect("", vec![]),
        ),
    }
}

/// A `pb::Stat` as jute's (absent: all zero).
pub fn stat(s: Option<&pb::Stat>) -> jute::Stat {
    jute::Stat::from(Stat::from(s.cloned().unwrap_or_default()))
}

/// The reply (error code, body) to a session response, shaped by what was asked.
pub fn reply(e: &Expect, r: &pb::Response) -> (i32, Response) {
    use pb::response::Result as Res;
    if r.error != 0 {
        // A failed multi is a successful reply listing each op's error.
        if let (op::MULTI, Some(Res::Multi(m))) = (e.opcode, &r.result) {
            return (
                0,
                Response::Multi(
                    m.results
                        .iter()
                        .map(|o| MultiResult::Error(o.error))
                        .collect(),
                ),
            );
        }
        return (r.error, Response::Empty);
    }
    let body = match (e.opcode, &r.result) {
        (op::CREATE, Some(Res::Create(c))) => Response::Create(c.path.clone()),
        (op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL, Some(Res::Create(c))) => {
            Response::Create2(c.path.clone(), stat(c.stat.as_ref()))
        }
        (op::EXISTS, Some(Res::Exists(x))) => match &x.stat {
            Some(s) => Response::Stat(stat(Some(s))),
            None => return (Code::NoNode.number(), Response::Empty),
        },
        (op::SET_DATA | op::SET_ACL, Some(Res::Stat(s))) => Response::Stat(stat(Some(s))),
        (op::GET_DATA, Some(Res::Data(d))) => Response::Data(d.data.clone(), stat(d.stat.as_ref())),
        (op::GET_ACL, Some(Res::Acl(a))) => Response::Acl(
            a.acl.iter().cloned().map(jute::Acl::from).collect(),
            stat(a.stat.as_ref()),
        ),
        (op::GET_CHILDREN, Some(Res::Children(c))) => Response::Children(c.children.clone()),
        (op::GET_CHILDREN2, Some(Res::Children(c))) => {
            Response::Children2(c.children.clone(), stat(c.stat.as_ref()))
        }
        (op::SYNC, _) => Response::Sync(e.path.clone()),
        (op::MULTI, Some(Res::Multi(m))) => Response::Multi(
            m.results
                .iter()
                .zip(
                    e.sub_ops
                        .iter()
                        .copied()
                        .chain(std::iter::repeat(op::ERROR)),
                )
                .map(|(o, sub)| multi_result(sub, o))
                .collect(),
        ),
        (op::MULTI_READ, Some(Res::MultiRead(m))) => Response::Multi(
            m.results
                .iter()
                .map(|o| match &o.result {
                    _ if o.error != 0 => MultiResult::Error(o.error),
                    Some(pb::read_op_result::Result::Data(d)) => {
                        MultiResult::GetData(d.data.clone(), stat(d.stat.as_ref()))
                    }
                    Some(pb::read_op_result::Result::Children(c)) => {
                        MultiResult::GetChildren(c.children.clone())
                    }
                    _ => MultiResult::Error(Code::SystemError.number()),
                })
                .collect(),
        ),
        (op::GET_EPHEMERALS, Some(Res::Paths(p))) => Response::Ephemerals(p.paths.clone()),
        (op::GET_ALL_CHILDREN_NUMBER, Some(Res::Count(c))) => Response::Count(c.count),
        (op::ADD_WATCH, _) => Response::ErrorBody(0),
        (
            op::DELETE
            | op::CHECK
            | op::SET_WATCHES
            | op::SET_WATCHES2
            | op::CHECK_WATCHES
            | op::REMOVE_WATCHES
            | op::CLOSE_SESSION
            | op::PING,
            _,
        ) => Response::Empty,
        (other, res) => {
            tracing::warn!(
                opcode = other,
                result = ?res.as_ref().map(std::mem::discriminant),
                "zk: a session answer does not fit its request; replying SystemError"
            );
            return (Code::SystemError.number(), Response::Empty);
        }
    };
    (0, body)
}

fn multi_result(sub: i32, o: &pb::OpResult) -> MultiResult {
    use pb::op_result::Result as O;
    if o.error != 0 {
        return MultiResult::Error(o.error);
    }
    match (sub, &o.result) {
        (op::CREATE, Some(O::Create(c))) => MultiResult::Create(c.path.clone()),
        (op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL, Some(O::Create(c))) => {
            MultiResult::Create2(c.path.clone(), stat(c.stat.as_ref()))
        }
        (op::DELETE, _) => MultiResult::Delete,
        (op::CHECK, _) => MultiResult::Check,
        (op::SET_DATA, Some(O::Stat(s))) => MultiResult::SetData(stat(Some(s))),
        _ => MultiResult::Error(Code::SystemError.number()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(opcode: i32) -> Expect {
        Expect {
            xid: 1,
            opcode,
            sub_ops: vec![],
            path: "/s".into(),
        }
    }

    #[test]
    fn exists_on_a_missing_node_is_no_node() {
        let r = pb::Response {
            xid: 1,
            zxid: 5,
            error: 0,
            message: String::new(),
            result: Some(pb::response::Result::Exists(pb::ExistsResult {
                stat: None,
            })),
        };
        assert_eq!(reply(&expect(op::EXISTS), &r), (-101, Response::Empty));
    }

    #[test]
    fn children_reply_follows_the_opcode() {
        let r = pb::Response {
            xid: 1,
            zxid: 5,
            error: 0,
            message: String::new(),
            result: Some(pb::response::Result::Children(pb::ChildrenResult {
                children: vec!["a".into()],
                stat: None,
            })),
        };
        assert!(matches!(
            reply(&expect(op::GET_CHILDREN), &r).1,
            Response::Children(_)
        ));
        assert!(matches!(
            reply(&expect(op::GET_CHILDREN2), &r).1,
            Response::Children2(..)
        ));
        assert_eq!(reply(&expect(op::SYNC), &r).1, Response::Sync("/s".into()));
    }

    #[test]
    fn failed_multi_lists_each_ops_error() {
        let r = pb::Response {
            xid: 1,
            zxid: 5,
            error: -110,
            message: String::new(),
            result: Some(pb::response::Result::Multi(pb::MultiResult {
                results: vec![
                    pb::OpResult {
                        error: 0,
                        result: None,
                    },
                    pb::OpResult {
                        error: -110,
                        result: None,
                    },
                ],
            })),
        };
        assert_eq!(
            reply(&expect(op::MULTI), &r),
            (
                0,
                Response::Multi(vec![MultiResult::Error(0), MultiResult::Error(-110)])
            )
        );
    }

    #[test]
    fn a_multi_op_that_fails_validation_gets_error_results() {
        let m = jute::Request::Multi(vec![
            jute::Request::Create(jute::CreateRequest {
                path: "/ok".into(),
                ..Default::default()
            }),
            jute::Request::Delete(jute::PathVersion {
                path: "/bad/".into(),
                version: -1,
            }),
            jute::Request::Create(jute::CreateRequest {
                path: "/t".into(),
                flags: 5,
                ..Default::default()
            }),
        ]);
        let Mapped::Local(Local::MultiError { xid, errors }) = request(7, &m) else {
            panic!("a multi with an invalid path is answered with error results")
        };
        assert_eq!((xid, errors), (7, vec![0, -8, -2]));
        let m = jute::Request::Multi(vec![jute::Request::Create(jute::CreateRequest {
            path: "/t".into(),
            flags: 5,
            ..Default::default()
        })]);
        assert!(matches!(
            request(7, &m),
            Mapped::Local(Local::MultiError { errors, .. }) if errors == vec![-8]
        ));
    }

    #[test]
    fn ttl_flags_need_create_ttl() {
        let c = jute::CreateRequest {
            path: "/t".into(),
            flags: 5,
            ..Default::default()
        };
        assert!(matches!(
            request(1, &jute::Request::Create(c.clone())),
            Mapped::Local(Local::Error {
                code: Code::BadArguments,
                ..
            })
        ));
        assert!(matches!(
            request(1, &jute::Request::CreateTtl(c)),
            Mapped::Session(..)
        ));
    }
}
