//! Reads: one function per read op over the tree and the watch manager.
//!
//! Each checks the node's ACL as ZooKeeper does (after `NoNode`, before
//! setting a watch; `exists` needs no permission). Each is called with the
//! tree's read lock held, and registers its watch
//! under that same lock, so no change can slip between a read and its
//! watch (the change's event is queued by apply under the write lock, after
//! the reply).

use super::message::{Read, Reply, SetWatches};
use crate::acl::{self, AuthId};
use crate::error::{Code, ZkError};
use crate::tree::path::validate_path;
use crate::tree::{effective_acl, DataTree};
use crate::txn::Acl;
use crate::watch::{RemoveKind, Rewatch, WatchKind, WatchManager};

/// What a read sees: the tree, the watches, and whose read it is.
pub struct View<'a> {
    pub tree: &'a DataTree,
    pub watches: &'a WatchManager,
    pub session: u64,
    /// Who the connection is, for the nodes' ACLs.
    pub auth: &'a [AuthId],
}

/// The op's name for metrics and logs.
pub fn name(r: &Read) -> &'static str {
    match r {
        Read::GetData { .. } => "get_data",
        Read::GetChildren { .. } => "get_children",
        Read::Exists { .. } => "exists",
        Read::GetAcl { .. } => "get_acl",
        Read::GetEphemerals { .. } => "get_ephemerals",
        Read::CountDescendants { .. } => "get_all_children_number",
        Read::Check { .. } => "check",
        Read::Multi(_) => "multi_read",
        Read::AddWatch { .. } => "add_watch",
        Read::RemoveWatches { .. } => "remove_watches",
        Read::CheckWatches { .. } => "check_watches",
        Read::SetWatches(_) => "set_watches",
    }
}

/// Serves one read.
pub fn serve(v: &View<'_>, r: &Read) -> Result<Reply, ZkError> {
    match r {
        Read::GetData { path, watch } => get_data(v, path, *watch),
        Read::GetChildren {
            path,
            watch,
            with_stat,
        } => get_children(v, path, *watch, *with_stat),
        Read::Exists { path, watch } => exists(v, path, *watch),
        Read::GetAcl { path } => get_acl(v, path),
        Read::GetEphemerals { prefix } => Ok(get_ephemerals(v, prefix)),
        Read::CountDescendants { path } => count_descendants(v, path),
        Read::Check { path, version } => check(v, path, *version),
        Read::Multi(reads) => Ok(multi_read(v, reads)),
        Read::AddWatch { path, kind } => add_watch(v, path, *kind),
        Read::RemoveWatches { path, kind } => remove_watches(v, path, *kind),
        Read::CheckWatches { path, kind } => check_watches(v, path, *kind),
        Read::SetWatches(s) => set_watches(v, s),
    }
}

pub fn get_data(v: &View<'_>, path: &str, watch: bool) -> Result<Reply, ZkError> {
    validate_path(path)?;
    let n = v.tree.node(path).ok_or_else(|| ZkError::no_node(path))?;
    acl::check(path, effective_acl(path, n), v.auth, Acl::READ)?;
    if watch {
        v.watches.add(v.session, WatchKind::Data, path);
    }
    Ok(Reply::Data {
        data: (!n.null).then(|| n.data.to_vec()),
        stat: n.zk_stat(),
    })
}

pub fn get_children(
    v: &View<'_>,
    path: &str,
    watch: bool,
    with_stat: bool,
) -> Result<Reply, ZkError> {
    validate_path(path)?;
    let n = v.tree.node(path).ok_or_else(|| ZkError::no_node(path))?;
    acl::check(path, effective_acl(path, n), v.auth, Acl::READ)?;
    if watch {
        v.watches.add(v.session, WatchKind::Child, path);
    }
    Ok(Reply::Children {
        children: v.tree.children(path).unwrap_or_default(),
        stat: with_stat.then(|| n.zk_stat()),
    })
}

/// Sets a watch whether or not the node exists, as ZooKeeper does.
pub fn exists(v: &View<'_>, path: &str, watch: bool) -> Result<Reply, ZkError> {
    validate_path(path)?;
    if watch {
        v.watches.add(v.session, WatchKind::Data, path);
    }
    Ok(Reply::Exists(v.tree.node(path).map(|n| n.zk_stat())))
}

/// Needs READ or ADMIN; without ADMIN, digest hashes are hidden (as in
/// ZooKeeper).
pub fn get_acl(v: &View<'_>, path: &str) -> Result<Reply, ZkError> {
    validate_path(path)?;
    let n = v.tree.node(path).ok_or_else(|| ZkError::no_node(path))?;
    acl::check(path, effective_acl(path, n), v.auth, Acl::READ | Acl::ADMIN)?;
    let shown = match acl::check(path, effective_acl(path, n), v.auth, Acl::ADMIN) {
        Ok(()) => effective_acl(path, n).to_vec(),
        Err(_) => acl::redacted(effective_acl(path, n)),
    };
    Ok(Reply::Acl {
        acl: shown,
        stat: n.zk_stat(),
    })
}

pub fn get_ephemerals(v: &View<'_>, prefix: &str) -> Reply {
    Reply::Paths(
        v.tree
            .ephemerals_of(v.session)
            .into_iter()
            .filter(|p| p.starts_with(prefix))
            .collect(),
    )
}

pub fn count_descendants(v: &View<'_>, path: &str) -> Result<Reply, ZkError> {
    validate_path(path)?;
    let n = v.tree.node(path).ok_or_else(|| ZkError::no_node(path))?;
    acl::check(path, effective_acl(path, n), v.auth, Acl::READ)?;
    Ok(Reply::Count(v.tree.count_descendants(path)? as i32))
}

pub fn check(v: &View<'_>, path: &str, version: Option<i32>) -> Result<Reply, ZkError> {
    validate_path(path)?;
    let n = v.tree.node(path).ok_or_else(|| ZkError::no_node(path))?;
    acl::check(path, effective_acl(path, n), v.auth, Acl::READ)?;
    match version {
        Some(want) if want != -1 && want != n.stat.version => {
            Err(ZkError::bad_version(path, want, n.stat.version))
        }
        _ => Ok(Reply::Checked(n.zk_stat())),
    }
}

/// Each read answered on its own; only getData, getChildren and exists
/// may be in one.
pub fn multi_read(v: &View<'_>, reads: &[Result<Read, ZkError>]) -> Reply {
    let results = reads
        .iter()
        .map(|r| {
            let r = match r {
                Ok(r @ (Read::GetData { .. } | Read::GetChildren { .. } | Read::Exists { .. })) => {
                    serve(v, r)
                }
                Ok(other) => Err(ZkError::bad_arguments(format!(
                    "a multiRead may not contain {}",
                    name(other)
                ))),
                Err(e) => Err(e.clone()),
            };
            r.map_err(|e| e.code)
        })
        .collect();
    Reply::MultiRead(results)
}

pub fn add_watch(v: &View<'_>, path: &str, kind: WatchKind) -> Result<Reply, ZkError> {
    validate_path(path)?;
    v.watches.add(v.session, kind, path);
    Ok(Reply::WatchAdded)
}

pub fn remove_watches(v: &View<'_>, path: &str, kind: RemoveKind) -> Result<Reply, ZkError> {
    validate_path(path)?;
    if v.watches.remove(v.session, path, kind) {
        Ok(Reply::Empty)
    } else {
        Err(ZkError::new(Code::NoWatcher, path))
    }
}

pub fn check_watches(v: &View<'_>, path: &str, kind: RemoveKind) -> Result<Reply, ZkError> {
    validate_path(path)?;
    if v.watches.has(v.session, path, kind) {
        Ok(Reply::Empty)
    } else {
        Err(ZkError::new(Code::NoWatcher, path))
    }
}

/// Re-registers a reconnecting client's watches; those whose node changed
/// after the client's last zxid fire at once (ZooKeeper's setWatches).
pub fn set_watches(v: &View<'_>, s: &SetWatches) -> Result<Reply, ZkError> {
    for p in s
        .data
        .iter()
        .chain(&s.exist)
        .chain(&s.child)
        .chain(&s.persistent)
        .chain(&s.persistent_recursive)
    {
        validate_path(p)?;
    }
    v.watches.set_watches(
        v.tree,
        v.session,
        v.tree.last_zxid(),
        &Rewatch {
            relative_zxid: s.relative_zxid,
            data: &s.data,
            exist: &s.exist,
            child: &s.child,
        },
    );
    for p in &s.persistent {
        v.watches.add(v.session, WatchKind::Persistent, p);
    }
    for p in &s.persistent_recursive {
        v.watches.add(v.session, WatchKind::PersistentRecursive, p);
    }
    Ok(Reply::Empty)
}
