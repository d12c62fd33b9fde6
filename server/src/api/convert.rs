//! Conversions between the wire messages and the server's own types.

use warden_proto as pb;

use crate::error::{Code, ZkError};
use crate::tree::Stat;
use crate::txn::{Acl, CreateMode, Op, Outcome, TxnError};
use crate::watch::WatchEventType;

pub fn stat(s: &Stat) -> pb::Stat {
    pb::Stat::from(*s)
}

pub fn code(c: Code) -> i32 {
    c.number()
}

pub fn acl_in(a: &[pb::Acl]) -> Vec<Acl> {
    a.iter().cloned().map(Acl::from).collect()
}

pub fn acl_out(a: &[Acl]) -> Vec<pb::Acl> {
    a.iter().cloned().map(pb::Acl::from).collect()
}

pub fn create_mode(m: i32) -> Result<CreateMode, ZkError> {
    CreateMode::from_number(m)
        .ok_or_else(|| ZkError::bad_arguments(format!("unknown create mode {m}")))
}

pub fn create_op(c: &pb::Create) -> Result<Op, ZkError> {
    Ok(Op::Create {
        path: c.path.clone(),
        data: c.data.clone(),
        acl: acl_in(&c.acl),
        mode: create_mode(c.mode)?,
        ttl_ms: c.ttl_ms,
    })
}

/// A multi's sub-op.
pub fn multi_op(o: &pb::Op) -> Result<Op, ZkError> {
    match &o.op {
        Some(pb::op::Op::Create(c)) => create_op(c),
        Some(pb::op::Op::Delete(d)) => Ok(Op::Delete {
            path: d.path.clone(),
            version: d.version,
        }),
        Some(pb::op::Op::SetData(s)) => Ok(Op::SetData {
            path: s.path.clone(),
            data: s.data.clone(),
            version: s.version,
        }),
        Some(pb::op::Op::Check(c)) => Ok(Op::Check {
            path: c.path.clone(),
            version: c.version,
        }),
        None => Err(ZkError::bad_arguments("a multi op has no operation")),
    }
}

fn op_result(o: &Outcome) -> pb::op_result::Result {
    match o {
        Outcome::Created { path, stat: s } => pb::op_result::Result::Create(pb::CreateResult {
            path: path.clone(),
            stat: Some(stat(s)),
        }),
        Outcome::Stat(s) => pb::op_result::Result::Stat(stat(s)),
        _ => pb::op_result::Result::Empty(pb::Empty {}),
    }
}

/// A successful write's result.
pub fn outcome(o: &Outcome) -> pb::response::Result {
    match o {
        Outcome::Created { path, stat: s } => pb::response::Result::Create(pb::CreateResult {
            path: path.clone(),
            stat: Some(stat(s)),
        }),
        Outcome::Stat(s) => pb::response::Result::Stat(stat(s)),
        Outcome::Multi(v) => pb::response::Result::Multi(pb::MultiResult {
            results: v
                .iter()
                .map(|o| pb::OpResult {
                    error: 0,
                    result: Some(op_result(o)),
                })
                .collect(),
        }),
        _ => pb::response::Result::Empty(pb::Empty {}),
    }
}

pub fn error_response(xid: i64, zxid: i64, e: &ZkError) -> pb::Response {
    pb::Response {
        xid,
        zxid,
        error: code(e.code),
        message: e.message.clone(),
        result: None,
    }
}

pub fn txn_error_response(xid: i64, zxid: i64, e: &TxnError) -> pb::Response {
    let mut r = error_response(xid, zxid, &e.error);
    if !e.multi.is_empty() {
        r.result = Some(pb::response::Result::Multi(pb::MultiResult {
            results: e
                .multi
                .iter()
                .map(|c| pb::OpResult {
                    error: code(*c),
                    result: None,
                })
                .collect(),
        }));
    }
    r
}

pub fn event_type(t: WatchEventType) -> i32 {
    t.number()
}
