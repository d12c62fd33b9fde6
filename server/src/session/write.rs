//! Writes: a request checked into the op the log takes, and the op's
//! outcome shaped back into the reply its request asked for.

use super::message::{MultiOp, OpReply, Reply};
use super::order::Shape;
use crate::acl::{self, AuthId};
use crate::error::{Code, ZkError};
use crate::txn::{Op, Outcome, TxnError};

/// A single write, validated. `create_stat`: a create answers its Stat.
pub fn single(op: Op, create_stat: bool) -> Result<(Op, Shape), TxnError> {
    op.validate()?;
    Ok((op, Shape(vec![create_stat])))
}

/// A multi, validated op by op. If one fails, so does the multi, with one
/// code per op as ZooKeeper answers: `Ok` before the failing op, its
/// error, `RuntimeInconsistency` after.
pub fn multi(ops: Vec<MultiOp>) -> Result<(Op, Shape), TxnError> {
    let n = ops.len();
    let mut checked = Vec::with_capacity(n);
    let mut shape = Vec::with_capacity(n);
    for (i, m) in ops.into_iter().enumerate() {
        let op = m.op.and_then(|op| {
            match op {
                Op::Create { .. }
                | Op::Delete { .. }
                | Op::SetData { .. }
                | Op::Check { .. }
                | Op::NullData(_) => {}
                other => {
                    return Err(ZkError::bad_arguments(format!(
                        "a multi may not contain {}",
                        other.name()
                    )))
                }
            }
            op.validate()?;
            Ok(op)
        });
        match op {
            Ok(op) => {
                checked.push(op);
                shape.push(m.create_stat);
            }
            Err(error) => return Err(multi_failed(i, n, error)),
        }
    }
    Ok((Op::Multi(checked), Shape(shape)))
}

/// A multi of `n` ops whose op `i` failed with `error`: `Ok` before it,
/// its error, `RuntimeInconsistency` after (ZooKeeper's answer).
fn multi_failed(i: usize, n: usize, error: ZkError) -> TxnError {
    let mut multi = vec![Code::Ok; i];
    multi.push(error.code);
    multi.resize(n, Code::RuntimeInconsistency);
    TxnError { error, multi }
}

/// A client's checked write as the log takes it: the ACLs it sets made
/// final for this connection (`acl::fixup`: `auth` entries replaced,
/// entries validated, duplicates removed; `InvalidACL` otherwise), and the
/// connection's identities attached, for the permission checks at apply.
/// With `enforce_quota` (`--enforce-quota`), hard quota limits apply to it.
pub fn authorize(op: Op, auth: &[AuthId], enforce_quota: bool) -> Result<Op, TxnError> {
    let fixed = match op {
        Op::Multi(ops) => {
            let n = ops.len();
            let mut out = Vec::with_capacity(n);
            for (i, op) in ops.into_iter().enumerate() {
                out.push(fix_acl(op, auth).map_err(|e| multi_failed(i, n, e))?);
            }
            Op::Multi(out)
        }
        op => fix_acl(op, auth)?,
    };
    let op = Op::Authorized {
        auth: auth.to_vec(),
        op: Box::new(fixed),
    };
    Ok(match enforce_quota {
        true => Op::EnforceQuota(Box::new(op)),
        false => op,
    })
}

fn fix_acl(op: Op, auth: &[AuthId]) -> Result<Op, ZkError> {
    Ok(match op {
        Op::Create {
            path,
            data,
            acl,
            mode,
            ttl_ms,
        } => Op::Create {
            acl: acl::fixup(&path, &acl, auth)?,
            path,
            data,
            mode,
            ttl_ms,
        },
        Op::SetAcl { path, acl, version } => Op::SetAcl {
            acl: acl::fixup(&path, &acl, auth)?,
            path,
            version,
        },
        Op::NullData(op) => Op::NullData(Box::new(fix_acl(*op, auth)?)),
        other => other,
    })
}

/// The reply to a committed write.
pub fn reply(outcome: Outcome, shape: &Shape) -> Reply {
    let stat_of = |i: usize| shape.0.get(i).copied().unwrap_or(true);
    match outcome {
        Outcome::Created { path, stat } => Reply::Created {
            path,
            stat: stat_of(0).then_some(stat),
        },
        Outcome::Stat(s) => Reply::Stat(s),
        Outcome::Multi(results) => Reply::Multi(
            results
                .into_iter()
                .enumerate()
                .map(|(i, o)| match o {
                    Outcome::Created { path, stat } => OpReply::Created {
                        path,
                        stat: stat_of(i).then_some(stat),
                    },
                    Outcome::Stat(s) => OpReply::SetData(s),
                    Outcome::Deleted => OpReply::Deleted,
                    _ => OpReply::Checked,
                })
                .collect(),
        ),
        Outcome::Deleted
        | Outcome::Checked
        | Outcome::SessionCreated { .. }
        | Outcome::SessionClosed
        | Outcome::Reaped(_) => Reply::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ZkError;
    use crate::tree::Stat;

    fn create(path: &str) -> Op {
        Op::Create {
            path: path.into(),
            data: vec![],
            acl: vec![],
            mode: crate::txn::CreateMode::Persistent,
            ttl_ms: 0,
        }
    }

    #[test]
    fn a_multi_with_a_bad_op_fails_with_a_code_per_op() {
        let ops = vec![
            MultiOp {
                op: Ok(create("/ok")),
                create_stat: false,
            },
            MultiOp {
                op: Ok(Op::Delete {
                    path: "/bad/".into(),
                    version: None,
                }),
                create_stat: false,
            },
            MultiOp {
                op: Err(ZkError::bad_arguments("not a write")),
                create_stat: false,
            },
        ];
        let e = multi(ops).unwrap_err();
        assert_eq!(e.error.code, Code::BadArguments);
        assert_eq!(
            e.multi,
            vec![Code::Ok, Code::BadArguments, Code::RuntimeInconsistency]
        );
        let e = multi(vec![MultiOp {
            op: Ok(Op::CloseSession { session_id: 1 }),
            create_stat: true,
        }])
        .unwrap_err();
        assert_eq!(e.multi, vec![Code::BadArguments]);
    }

    #[test]
    fn each_create_answers_as_its_request_asked() {
        let stat = Stat::default();
        let created = |p: &str| Outcome::Created {
            path: p.into(),
            stat,
        };
        let r = reply(
            Outcome::Multi(vec![created("/a"), Outcome::Deleted, created("/b")]),
            &Shape(vec![false, false, true]),
        );
        assert_eq!(
            r,
            Reply::Multi(vec![
                OpReply::Created {
                    path: "/a".into(),
                    stat: None
                },
                OpReply::Deleted,
                OpReply::Created {
                    path: "/b".into(),
                    stat: Some(stat)
                },
            ])
        );
        assert_eq!(
            reply(created("/c"), &Shape(vec![false])),
            Reply::Created {
                path: "/c".into(),
                stat: None
            }
        );
    }
}
