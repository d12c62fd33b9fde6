//! `DataTree`: the in-memory znode store and the pure `apply` function.
//!
//! Apply does no I/O and reads no clock or randomness: everything comes from
//! the [`Txn`], so every replica that applies the same log reaches the same
//! tree and the same [`DataTree::state_hash`].

pub mod layout;
mod node;
mod nodes;
pub mod path;
pub mod quota;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use node::AclCache;
pub use node::{Node, NodeKind, NodeStat, Stat};
use nodes::Freeze;
pub use nodes::NodeMap;
use std::sync::Arc;

use crate::acl::AuthId;
use crate::error::{Code, ZkError};
use crate::txn::{Acl, CreateMode, Op, Outcome, Txn, TxnError, TxnResponse};

/// A change a watch may care about, produced by apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    Deleted,
    DataChanged,
    ChildrenChanged,
}

/// A session as the replicated state knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub timeout_ms: u32,
    pub password: Vec<u8>,
}

/// Side effects of one apply, for the watch manager and session tracker.
#[derive(Debug, Default)]
pub struct Effects {
    pub events: Vec<(EventKind, String)>,
    /// The ACLs of the nodes deleted, moved out with them: a watch event
    /// reaches only connections that may READ its node, and a deleted
    /// node is gone from the tree when watches fire.
    pub gone: Vec<(String, Arc<[Acl]>)>,
    pub sessions_opened: Vec<(u64, u32)>,
    pub sessions_closed: Vec<u64>,
}

/// One undo record for all-or-nothing multi. A parent's children are never
/// copied: a multi of k creates under a parent of n children would
/// otherwise copy k × n names (and stall the log behind it).
enum Undo {
    /// A node that was created (`None`: remove it) or deleted (put it
    /// back; it had no children).
    Node {
        path: String,
        node: Option<Box<Node>>,
    },
    /// A node's own fields before a change: its stat (a parent's child
    /// count with it) and sequence counter, and its data or ACL if those
    /// changed.
    Fields {
        path: String,
        stat: NodeStat,
        seq: i32,
        /// The data and whether it was null.
        data: Option<(Box<[u8]>, bool)>,
        acl: Option<Arc<[Acl]>>,
    },
}

/// ZooKeeper's dynamic configuration node.
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// The tree as snapshots laid it out before null data were kept apart
/// from empty (layout 1): read, never written; it becomes layout 2.
pub mod v1 {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::Deserialize;

    use super::{v2, NodeKind, SessionInfo, Stat};
    use crate::txn::Acl;

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    struct Node {
        data: Vec<u8>,
        acl: Vec<Acl>,
        stat: Stat,
        kind: NodeKind,
        children: BTreeSet<String>,
        seq: i32,
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct DataTree {
        nodes: BTreeMap<String, Node>,
        sessions: BTreeMap<u64, SessionInfo>,
        last_zxid: i64,
    }

    impl From<DataTree> for super::DataTree {
        fn from(old: DataTree) -> super::DataTree {
            let nodes = old.nodes.into_iter().map(|(p, n)| {
                let node = v2::Node {
                    data: n.data,
                    acl: n.acl,
                    stat: n.stat,
                    kind: n.kind,
                    children: n.children,
                    seq: n.seq,
                    null: false,
                };
                (p, node)
            });
            let mut t: super::DataTree = v2::DataTree {
                nodes: nodes.collect(),
                sessions: old.sessions,
                last_zxid: old.last_zxid,
            }
            .into();
            // Written before Warden kept quota usage: count it.
            t.recount_quotas();
            t
        }
    }

    /// The layout-1 form of a tree with no null data (tests write it).
    #[cfg(test)]
    pub fn from_current(t: &super::DataTree) -> DataTree {
        let v2 = v2::from_current(t);
        DataTree {
            nodes: v2
                .nodes
                .into_iter()
                .map(|(p, n)| {
                    let node = Node {
                        data: n.data,
                        acl: n.acl,
                        stat: n.stat,
                        kind: n.kind,
                        children: n.children,
                        seq: n.seq,
                    };
                    (p, node)
                })
                .collect(),
            sessions: v2.sessions,
            last_zxid: v2.last_zxid,
        }
    }
}

/// The tree as snapshots laid it out while nodes kept their children's
/// names (layout 2, with null data): read, never written.
pub mod v2 {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::Deserialize;

    use super::{NodeKind, SessionInfo, Stat};
    use crate::txn::Acl;

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub(super) struct Node {
        pub(super) data: Vec<u8>,
        pub(super) acl: Vec<Acl>,
        pub(super) stat: Stat,
        pub(super) kind: NodeKind,
        /// Read only to be skipped (tests write it).
        #[cfg_attr(not(test), allow(dead_code))]
        pub(super) children: BTreeSet<String>,
        pub(super) seq: i32,
        pub(super) null: bool,
    }

    /// The layout-2 form of a tree (tests write it).
    #[cfg(test)]
    pub fn from_current(t: &super::DataTree) -> DataTree {
        DataTree {
            nodes: t
                .nodes
                .iter()
                .map(|(p, n)| {
                    let node = Node {
                        data: n.data.to_vec(),
                        acl: n.acl.to_vec(),
                        stat: n.zk_stat(),
                        kind: n.kind,
                        children: t.children(p).unwrap_or_default().into_iter().collect(),
                        seq: n.seq,
                        null: n.null,
                    };
                    (p.to_string(), node)
                })
                .collect(),
            sessions: t.sessions.clone(),
            last_zxid: t.last_zxid,
        }
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct DataTree {
        pub(super) nodes: BTreeMap<String, Node>,
        pub(super) sessions: BTreeMap<u64, SessionInfo>,
        pub(super) last_zxid: i64,
    }

    impl From<DataTree> for super::DataTree {
        fn from(old: DataTree) -> super::DataTree {
            let mut t = super::DataTree {
                nodes: old
                    .nodes
                    .into_iter()
                    .map(|(p, n)| {
                        let node = super::Node {
                            data: n.data.into(),
                            acl: n.acl.into(),
                            stat: (&n.stat).into(),
                            kind: n.kind,
                            seq: n.seq,
                            null: n.null,
                        };
                        (p.into(), Box::new(node))
                    })
                    .collect(),
                sessions: old.sessions,
                last_zxid: old.last_zxid,
                ephemerals: BTreeMap::new(),
                reapable: BTreeSet::new(),
                quotas: BTreeSet::new(),
                acls: Default::default(),
            };
            t.rebuild_indexes();
            t
        }
    }
}

/// Mixed into the state hash for a node whose data is null.
const NULL_DATA_MARK: u64 = 0x6e75_6c6c_6461_7461;

/// The replicated state: every znode and every live session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataTree {
    /// By full path; a short path is kept inline in the key. Boxed, so the
    /// map's half-empty leaves (sorted inserts fill them half) hold
    /// pointers, not whole nodes. Read from a snapshot, the map is built
    /// in one pass with full leaves.
    nodes: NodeMap,
    sessions: BTreeMap<u64, SessionInfo>,
    last_zxid: i64,
    #[serde(skip)]
    ephemerals: BTreeMap<u64, BTreeSet<String>>,
    #[serde(skip)]
    reapable: BTreeSet<String>,
    /// Subtrees with a quota (`quota`), from their limits nodes.
    #[serde(skip)]
    quotas: BTreeSet<String>,
    /// The distinct ACLs nodes share.
    #[serde(skip)]
    acls: AclCache,
}

/// A tree frozen for a snapshot: what it held at the freeze besides its
/// nodes, which are read from the live tree ([`DataTree::read_frozen`]).
/// Written in snapshot layout 4 (`layout`): [`FrozenTree::encode_head`],
/// the blocks read, then [`FrozenTree::encode_tail`].
pub struct FrozenTree {
    freeze: Arc<Freeze>,
    node_count: usize,
    blocks: layout::Blocks,
    sessions: BTreeMap<u64, SessionInfo>,
    last_zxid: i64,
}

impl FrozenTree {
    /// What comes before the nodes: their count.
    pub fn encode_head(&self, out: &mut Vec<u8>) {
        layout::head(self.node_count, out);
    }

    /// What comes after the nodes: the ACLs they use, the sessions and the
    /// last zxid.
    pub fn encode_tail(&mut self, out: &mut Vec<u8>) -> Result<(), bincode::Error> {
        std::mem::take(&mut self.blocks).tail(&self.sessions, self.last_zxid, out)
    }

    /// How many nodes the tree held at the freeze: as many are read.
    pub fn node_count(&self) -> usize {
        self.node_count
    }
}

impl Drop for FrozenTree {
    /// Writes stop keeping nodes for a snapshot that is done or dropped.
    fn drop(&mut self) {
        self.freeze.end();
    }
}

/// Who a write is applied for: the identities whose permissions are
/// checked (`None`: the server's own ops, unchecked), and whether hard
/// quota limits refuse it (`--enforce-quota` on the member it came to).
#[derive(Clone, Copy, Default)]
struct Who<'a> {
    auth: Option<&'a [AuthId]>,
    enforce_quota: bool,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// The genesis tree: `/`, plus `/zookeeper`, `/zookeeper/config` (empty:
    /// no dynamic reconfiguration) and `/zookeeper/quota` as ZooKeeper 3.5+
    /// has them, so ZooKeeper tools (zkCli's `config`, Curator's ensemble
    /// tracker) find what they expect.
    pub fn new() -> Self {
        let mut t = DataTree {
            nodes: NodeMap::default(),
            sessions: BTreeMap::new(),
            last_zxid: 0,
            ephemerals: BTreeMap::new(),
            reapable: BTreeSet::new(),
            quotas: BTreeSet::new(),
            acls: AclCache::default(),
        };
        let open = t.acls.intern(&Acl::open());
        let mk = |children: &[&str]| {
            Box::new(Node {
                data: Box::default(),
                acl: open.clone(),
                stat: NodeStat {
                    num_children: children.len() as i32,
                    cversion: children.len() as i32,
                    ..NodeStat::default()
                },
                kind: NodeKind::Persistent,
                seq: children.len() as i32,
                null: false,
            })
        };
        t.nodes.insert("/", mk(&["zookeeper"]));
        t.nodes.insert("/zookeeper", mk(&["config", "quota"]));
        t.nodes.insert(CONFIG_PATH, mk(&[]));
        t.nodes.insert("/zookeeper/quota", mk(&[]));
        t
    }

    /// Rebuilds the derived indexes after deserializing a snapshot.
    pub fn rebuild_indexes(&mut self) {
        self.ephemerals.clear();
        self.reapable.clear();
        // Only the kinds the indexes hold (most nodes are persistent).
        let entries: Vec<(String, NodeKind)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.kind != NodeKind::Persistent)
            .map(|(p, n)| (p.to_string(), n.kind))
            .collect();
        for (p, k) in entries {
            self.index_add(&p, k);
        }
        self.rebuild_quotas();
        // Nodes read from a snapshot before layout 4 each have their own
        // copy of their ACL: share them (layout 4 shares them as it reads).
        if self.acls.is_empty() {
            let mut acls = AclCache::default();
            for n in self.nodes.values_mut() {
                n.acl = acls.intern(&n.acl);
            }
            self.acls = acls;
        }
    }

    fn index_add(&mut self, path: &str, kind: NodeKind) {
        match kind {
            NodeKind::Ephemeral(s) => {
                self.ephemerals
                    .entry(s)
                    .or_default()
                    .insert(path.to_string());
            }
            NodeKind::Container | NodeKind::Ttl(_) => {
                self.reapable.insert(path.to_string());
            }
            NodeKind::Persistent => {}
        }
    }

    fn index_remove(&mut self, path: &str, kind: NodeKind) {
        match kind {
            NodeKind::Ephemeral(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            NodeKind::Container | NodeKind::Ttl(_) => {
                self.reapable.remove(path);
            }
            NodeKind::Persistent => {}
        }
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path).map(|n| &**n)
    }
    pub fn session(&self, id: u64) -> Option<&SessionInfo> {
        self.sessions.get(&id)
    }
    pub fn sessions(&self) -> impl Iterator<Item = (&u64, &SessionInfo)> {
        self.sessions.iter()
    }

    /// Number of ephemeral nodes (all sessions).
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    /// Sessions that own ephemerals, with their paths (for `dump`).
    pub fn ephemerals_by_session(&self) -> impl Iterator<Item = (&u64, &BTreeSet<String>)> {
        self.ephemerals.iter()
    }

    /// Bytes of paths and data in the tree, as ZooKeeper's
    /// `approximateDataSize` counts them. Walks the tree: for the admin
    /// four-letter words, not for request paths.
    pub fn approximate_data_size(&self) -> u64 {
        self.nodes
            .iter()
            .map(|(p, n)| (p.len() + n.data.len()) as u64)
            .sum()
    }

    /// Ephemeral paths owned by a session, sorted.
    pub fn ephemerals_of(&self, session: u64) -> Vec<String> {
        self.ephemerals
            .get(&session)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Containers and TTL nodes that are eligible for deletion at `now_ms`.
    pub fn reap_candidates(&self, now_ms: i64) -> Vec<String> {
        self.reapable
            .iter()
            .filter(|p| self.is_reapable(p, now_ms))
            .cloned()
            .collect()
    }

    fn is_reapable(&self, path: &str, now_ms: i64) -> bool {
        match self.nodes.get(path) {
            Some(n) if n.stat.num_children == 0 => match n.kind {
                NodeKind::Container => n.stat.cversion > 0,
                NodeKind::Ttl(ttl) => now_ms - n.stat.mtime > ttl,
                _ => false,
            },
            _ => false,
        }
    }

    /// The names of `path`'s children in byte order (`getChildren`): the
    /// nodes whose paths are `path/NAME`. One walk over the path map from
    /// `path/`, seeking past a child's own subtree when it meets one, so a
    /// listing costs about a step per child (and a lookup per child that
    /// has children).
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        let n = self.nodes.get(path)?;
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let mut out = Vec::with_capacity(n.stat.num_children.clamp(0, 1 << 16) as usize);
        let start = match path {
            "/" => Bound::Excluded(prefix.as_str()),
            _ => Bound::Included(prefix.as_str()),
        };
        let mut walk = self.nodes.range::<str, _>((start, Bound::Unbounded));
        while let Some((key, _)) = walk.next() {
            let Some(rest) = key.strip_prefix(prefix.as_str()) else {
                break;
            };
            match rest.find('/') {
                None => out.push(rest.to_string()),
                // A deeper node: its child, which sorts before it, is
                // listed; skip the rest of that child's subtree ('0'
                // follows '/').
                Some(i) => {
                    let past = format!("{prefix}{}0", &rest[..i]);
                    walk = self
                        .nodes
                        .range::<str, _>((Bound::Included(past.as_str()), Bound::Unbounded));
                }
            }
        }
        Some(out)
    }

    /// Counts every node below `path` (not `path` itself).
    pub fn count_descendants(&self, path: &str) -> Result<usize, ZkError> {
        if !self.nodes.contains_key(path) {
            return Err(ZkError::no_node(path));
        }
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        Ok(self
            .nodes
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| p.as_str() != "/")
            .count())
    }

    /// A hash of every node and session, equal on replicas with equal state.
    /// FNV-1a over a canonical encoding: stable across builds and platforms.
    pub fn state_hash(&self) -> u64 {
        let mut h = Fnv::new();
        for (path, n) in &self.nodes {
            h.bytes(path.as_bytes());
            h.bytes(&n.data);
            let s = &n.zk_stat();
            for v in [s.czxid, s.mzxid, s.ctime, s.mtime, s.pzxid] {
                h.u64(v as u64);
            }
            for v in [
                s.version,
                s.cversion,
                s.aversion,
                s.data_length,
                s.num_children,
            ] {
                h.u64(v as u32 as u64);
            }
            h.u64(s.ephemeral_owner);
            // The kind decides what reaps or expires a node, so replicas
            // that differ only in it must not hash alike.
            let (kind, arg) = match n.kind {
                NodeKind::Persistent => (0, 0),
                NodeKind::Ephemeral(session) => (1, session),
                NodeKind::Container => (2, 0),
                NodeKind::Ttl(ttl) => (3, ttl as u64),
            };
            h.u64(kind);
            h.u64(arg);
            h.u64(n.seq as u32 as u64);
            // Only null data adds to the hash, so histories without any
            // keep the hash they had before null data was kept apart.
            if n.null {
                h.u64(NULL_DATA_MARK);
            }
            for a in n.acl.iter() {
                h.u64(a.perms as u64);
                h.bytes(a.scheme.as_bytes());
                h.bytes(a.id.as_bytes());
            }
        }
        for (id, s) in &self.sessions {
            h.u64(*id);
            h.u64(s.timeout_ms as u64);
            h.bytes(&s.password);
        }
        h.0
    }

    /// Freezes the tree as it is now for a snapshot, which then reads it a
    /// chunk at a time ([`DataTree::read_frozen`]) while writes go on (see
    /// `nodes` for how). The sessions and zxid, small, are copied now.
    pub fn freeze(&mut self) -> FrozenTree {
        FrozenTree {
            freeze: self.nodes.freeze(),
            node_count: self.nodes.len(),
            blocks: layout::Blocks::default(),
            sessions: self.sessions.clone(),
            last_zxid: self.last_zxid,
        }
    }

    /// Appends the next nodes of the frozen tree `f`, at most `max`, to
    /// `out` as a block of snapshot layout 4 (`layout`); returns how many
    /// (0: all read, and nothing appended).
    pub fn read_frozen(
        &self,
        f: &mut FrozenTree,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, bincode::Error> {
        // Under the state's read lock nothing can end the freeze while
        // this reads (freezing again and replacing nodes need the write
        // lock): checked once here.
        if f.freeze.ended() {
            return Err(Box::new(bincode::ErrorKind::Custom(
                "this snapshot's frozen view was ended (a newer snapshot began)".into(),
            )));
        }
        let at = layout::Blocks::start(out);
        let blocks = &mut f.blocks;
        let n = self.nodes.read_frozen(&f.freeze, max, |path, node| {
            blocks.push(path, node, &mut *out)
        })?;
        layout::Blocks::finish(at, n, out);
        Ok(n)
    }

    /// Applies one committed txn at `zxid`. Never panics: every failure is a
    /// recorded result, and a failed txn changes nothing.
    pub fn apply(&mut self, zxid: i64, txn: &Txn, fx: &mut Effects) -> TxnResponse {
        if zxid > self.last_zxid {
            self.last_zxid = zxid;
        }
        let (op, enforce_quota) = match &txn.op {
            Op::EnforceQuota(op) => (&**op, true),
            op => (op, false),
        };
        let (op, auth) = match op {
            Op::Authorized { auth, op } => (&**op, Some(auth.as_slice())),
            op => (op, None),
        };
        let who = Who {
            auth,
            enforce_quota,
        };
        let result = match op {
            Op::Multi(ops) => self.apply_multi(zxid, txn, ops, who, fx),
            Op::Authorized { .. } => Err(TxnError::from(ZkError::bad_arguments(
                "an authorized op in another",
            ))),
            op => {
                let mut events = Vec::new();
                let r = self.apply_op(zxid, txn, op, who, &mut events, fx, None);
                fx.events.extend(events);
                r.map_err(TxnError::from)
            }
        };
        TxnResponse { zxid, result }
    }

    /// Replaces `/zookeeper/config` (ZooKeeper's dynamic configuration,
    /// read by zkCli's `config` and Curator) when the ensemble's members
    /// change; a data watch on it fires.
    pub fn set_config(&mut self, zxid: i64, data: Vec<u8>, fx: &mut Effects) {
        self.note_zxid(zxid);
        let Some(n) = self.nodes.get_mut(CONFIG_PATH) else {
            return;
        };
        if *n.data == *data {
            return;
        }
        n.data = data.into();
        n.null = false;
        n.stat.version = n.stat.version.wrapping_add(1);
        n.stat.mzxid = zxid;
        fx.events
            .push((EventKind::DataChanged, CONFIG_PATH.to_string()));
    }

    /// Advances the zxid for a log entry that carries no txn.
    pub fn note_zxid(&mut self, zxid: i64) {
        if zxid > self.last_zxid {
            self.last_zxid = zxid;
        }
    }

    fn apply_multi(
        &mut self,
        zxid: i64,
        txn: &Txn,
        ops: &[Op],
        who: Who<'_>,
        fx: &mut Effects,
    ) -> Result<Outcome, TxnError> {
        let mut undo = Vec::new();
        let mut events = Vec::new();
        let mut outcomes = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                Op::Create { .. }
                | Op::Delete { .. }
                | Op::SetData { .. }
                | Op::Check { .. }
                | Op::NullData(_) => {
                    self.apply_op(zxid, txn, op, who, &mut events, fx, Some(&mut undo))
                }
                other => Err(ZkError::bad_arguments(format!(
                    "a multi may not contain {}",
                    other.name()
                ))),
            };
            match r {
                Ok(o) => outcomes.push(o),
                Err(error) => {
                    for u in undo.into_iter().rev() {
                        self.restore(u);
                    }
                    self.rebuild_quotas();
                    let multi = (0..ops.len())
                        .map(|j| match j.cmp(&i) {
                            std::cmp::Ordering::Less => Code::Ok,
                            std::cmp::Ordering::Equal => error.code,
                            std::cmp::Ordering::Greater => Code::RuntimeInconsistency,
                        })
                        .collect();
                    return Err(TxnError { error, multi });
                }
            }
        }
        fx.events.extend(events);
        Ok(Outcome::Multi(outcomes))
    }

    fn restore(&mut self, u: Undo) {
        match u {
            Undo::Node { path, node } => {
                if let Some(old) = self.nodes.get(path.as_str()).map(|n| n.kind) {
                    self.index_remove(&path, old);
                }
                match node {
                    Some(n) => {
                        self.index_add(&path, n.kind);
                        self.nodes.insert(&path, n);
                    }
                    None => {
                        self.nodes.remove(path.as_str());
                    }
                }
            }
            Undo::Fields {
                path,
                stat,
                seq,
                data,
                acl,
            } => {
                let Some(n) = self.nodes.get_mut(path.as_str()) else {
                    return;
                };
                n.stat = stat;
                n.seq = seq;
                if let Some((d, null)) = data {
                    n.data = d;
                    n.null = null;
                }
                if let Some(a) = acl {
                    n.acl = a;
                }
            }
        }
    }

    /// Records `path`'s whole node (or its absence) before it is created
    /// or deleted.
    fn save_node(&self, undo: &mut Option<&mut Vec<Undo>>, path: &str) {
        if let Some(u) = undo.as_mut() {
            u.push(Undo::Node {
                path: path.to_string(),
                node: self.nodes.get(path).cloned(),
            });
        }
    }

    /// Records `path`'s own fields before a change: its data and ACL only
    /// when `data` / `acl` say they change.
    fn save_fields(&self, undo: &mut Option<&mut Vec<Undo>>, path: &str, data: bool, acl: bool) {
        let (Some(u), Some(n)) = (undo.as_mut(), self.nodes.get(path)) else {
            return;
        };
        u.push(Undo::Fields {
            path: path.to_string(),
            stat: n.stat,
            seq: n.seq,
            data: data.then(|| (n.data.clone(), n.null)),
            acl: acl.then(|| n.acl.clone()),
        });
    }

    /// Applies one op. `auth`: the writer's identities, whose permissions
    /// are checked (in ZooKeeper's order among the other checks); `None`
    /// for the server's own ops.
    #[allow(clippy::too_many_arguments)]
    fn apply_op(
        &mut self,
        zxid: i64,
        txn: &Txn,
        op: &Op,
        who: Who<'_>,
        events: &mut Vec<(EventKind, String)>,
        fx: &mut Effects,
        mut undo: Option<&mut Vec<Undo>>,
    ) -> Result<Outcome, ZkError> {
        let auth = who.auth;
        match op {
            Op::Create {
                path,
                data,
                acl,
                mode,
                ttl_ms,
            } => {
                op.validate()?;
                let (created, stat) = self.create(
                    zxid, txn, path, data, acl, *mode, *ttl_ms, who, events, &mut undo,
                )?;
                Ok(Outcome::Created {
                    path: created,
                    stat,
                })
            }
            Op::Delete { path, version } => {
                path::validate_path(path)?;
                path::check_not_special(path)?;
                let n = self
                    .nodes
                    .get(path.as_str())
                    .ok_or_else(|| ZkError::no_node(path))?;
                self.permit(auth, path::parent(path).unwrap_or("/"), path, Acl::DELETE)?;
                check_version(path, *version, n.stat.version)?;
                if n.stat.num_children > 0 {
                    return Err(ZkError::new(Code::NotEmpty, path.clone()));
                }
                self.delete_node(zxid, path, events, &mut fx.gone, &mut undo);
                Ok(Outcome::Deleted)
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                op.validate()?;
                self.permit(auth, path, path, Acl::WRITE)?;
                let old = self
                    .nodes
                    .get(path.as_str())
                    .ok_or_else(|| ZkError::no_node(path))?
                    .data
                    .len();
                let grows = data.len() as i64 - old as i64;
                if who.enforce_quota {
                    self.check_quota(path, grows, 0)?;
                }
                self.save_fields(&mut undo, path, true, false);
                let n = self
                    .nodes
                    .get_mut(path.as_str())
                    .ok_or_else(|| ZkError::no_node(path))?;
                check_version(path, *version, n.stat.version)?;
                n.data = data.as_slice().into();
                n.null = false;
                n.stat.version = n.stat.version.wrapping_add(1);
                n.stat.mzxid = zxid;
                n.stat.mtime = txn.time_ms;
                let stat = n.zk_stat();
                events.push((EventKind::DataChanged, path.clone()));
                self.charge_quota(path, grows, 0, &mut undo);
                Ok(Outcome::Stat(stat))
            }
            Op::SetAcl { path, acl, version } => {
                path::validate_path(path)?;
                if acl.is_empty() {
                    return Err(ZkError::new(Code::InvalidAcl, format!("{path}: empty ACL")));
                }
                self.permit(auth, path, path, Acl::ADMIN)?;
                self.save_fields(&mut undo, path, false, true);
                let n = self
                    .nodes
                    .get_mut(path.as_str())
                    .ok_or_else(|| ZkError::no_node(path))?;
                check_version(path, *version, n.stat.aversion)?;
                n.acl = self.acls.intern(acl);
                n.stat.aversion = n.stat.aversion.wrapping_add(1);
                Ok(Outcome::Stat(n.zk_stat()))
            }
            Op::Check { path, version } => {
                path::validate_path(path)?;
                let n = self
                    .nodes
                    .get(path.as_str())
                    .ok_or_else(|| ZkError::no_node(path))?;
                self.permit(auth, path, path, Acl::READ)?;
                check_version(path, *version, n.stat.version)?;
                Ok(Outcome::Checked)
            }
            Op::NullData(inner) => {
                op.validate()?;
                let outcome = self.apply_op(zxid, txn, inner, who, events, fx, undo)?;
                let path = match (&**inner, &outcome) {
                    (Op::Create { .. }, Outcome::Created { path, .. }) => path,
                    (Op::SetData { path, .. }, _) => path,
                    _ => return Ok(outcome),
                };
                // (A quota stats node created null is filled in already.)
                if let Some(n) = self
                    .nodes
                    .get_mut(path.as_str())
                    .filter(|n| n.data.is_empty())
                {
                    n.null = true;
                }
                Ok(outcome)
            }
            Op::Multi(_) => Err(ZkError::bad_arguments("a multi may not contain a multi")),
            Op::Authorized { .. } | Op::EnforceQuota(_) => Err(ZkError::bad_arguments(
                "an authorized or quota-checked op in another",
            )),
            Op::CreateSession {
                session_id,
                password,
                timeout_ms,
            } => {
                if *session_id == 0 || self.sessions.contains_key(session_id) {
                    return Err(ZkError::new(
                        Code::SystemError,
                        format!("session id 0x{session_id:x} is taken; retry"),
                    ));
                }
                self.sessions.insert(
                    *session_id,
                    SessionInfo {
                        timeout_ms: *timeout_ms,
                        password: password.clone(),
                    },
                );
                fx.sessions_opened.push((*session_id, *timeout_ms));
                Ok(Outcome::SessionCreated {
                    session_id: *session_id,
                    password: password.clone(),
                    timeout_ms: *timeout_ms,
                })
            }
            Op::CloseSession { session_id } => {
                if self.sessions.remove(session_id).is_none() {
                    return Err(ZkError::new(
                        Code::SessionExpired,
                        format!("session 0x{session_id:x} is not open"),
                    ));
                }
                for p in self.ephemerals_of(*session_id) {
                    self.delete_node(zxid, &p, events, &mut fx.gone, &mut undo);
                }
                self.ephemerals.remove(session_id);
                fx.sessions_closed.push(*session_id);
                Ok(Outcome::SessionClosed)
            }
            Op::Reap { paths } => {
                let mut deleted = Vec::new();
                for p in paths {
                    if self.is_reapable(p, txn.time_ms) {
                        self.delete_node(zxid, p, events, &mut fx.gone, &mut undo);
                        deleted.push(p.clone());
                    }
                }
                Ok(Outcome::Reaped(deleted))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        zxid: i64,
        txn: &Txn,
        raw_path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: i64,
        who: Who<'_>,
        events: &mut Vec<(EventKind, String)>,
        undo: &mut Option<&mut Vec<Undo>>,
    ) -> Result<(String, Stat), ZkError> {
        let parent_path = match raw_path.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => raw_path[..i].to_string(),
            None => return Err(ZkError::bad_arguments(format!("invalid path {raw_path:?}"))),
        };
        let parent = self
            .nodes
            .get(parent_path.as_str())
            .ok_or_else(|| ZkError::no_node(raw_path))?;
        self.permit(who.auth, &parent_path, raw_path, Acl::CREATE)?;
        let path = if mode.is_sequential() {
            format!("{raw_path}{:010}", parent.seq)
        } else {
            raw_path.to_string()
        };
        path::validate_path(&path)?;
        if path == "/" || self.nodes.contains_key(path.as_str()) {
            return Err(ZkError::node_exists(&path));
        }
        if matches!(parent.kind, NodeKind::Ephemeral(_)) {
            return Err(ZkError::new(Code::NoChildrenForEphemerals, path));
        }
        let kind = if mode.is_ephemeral() {
            if !self.sessions.contains_key(&txn.session_id) {
                return Err(ZkError::new(
                    Code::SessionExpired,
                    format!(
                        "session 0x{:x} is not open; cannot create ephemeral {path}",
                        txn.session_id
                    ),
                ));
            }
            NodeKind::Ephemeral(txn.session_id)
        } else if mode == CreateMode::Container {
            NodeKind::Container
        } else if mode.is_ttl() {
            NodeKind::Ttl(ttl_ms)
        } else {
            NodeKind::Persistent
        };
        if who.enforce_quota {
            self.check_quota(&path, data.len() as i64, 1)?;
        }
        self.save_fields(undo, &parent_path, false, false);
        self.save_node(undo, &path);
        let stat = NodeStat {
            czxid: zxid,
            mzxid: zxid,
            ctime: txn.time_ms,
            mtime: txn.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            num_children: 0,
            pzxid: zxid,
        };
        if let Some(p) = self.nodes.get_mut(parent_path.as_str()) {
            p.seq = p.seq.wrapping_add(1);
            p.stat.cversion = p.stat.cversion.wrapping_add(1);
            p.stat.pzxid = zxid;
            p.stat.num_children = p.stat.num_children.wrapping_add(1);
        }
        let acl = match acl.is_empty() {
            true => self.acls.intern(&Acl::open()),
            false => self.acls.intern(acl),
        };
        let node = Box::new(Node {
            data: data.into(),
            acl,
            stat,
            kind,
            seq: 0,
            null: false,
        });
        let created = node.zk_stat();
        self.nodes.insert(&path, node);
        self.index_add(&path, kind);
        self.quota_node_created(&path, undo);
        self.charge_quota(&path, data.len() as i64, 1, undo);
        events.push((EventKind::Created, path.clone()));
        events.push((EventKind::ChildrenChanged, parent_path));
        Ok((path, created))
    }

    /// Removes a node known to exist and be childless, updating its parent.
    fn delete_node(
        &mut self,
        zxid: i64,
        path: &str,
        events: &mut Vec<(EventKind, String)>,
        gone: &mut Vec<(String, Arc<[Acl]>)>,
        undo: &mut Option<&mut Vec<Undo>>,
    ) {
        let Some(parent_path) = path::parent(path).map(str::to_string) else {
            return;
        };
        self.save_fields(undo, &parent_path, false, false);
        self.save_node(undo, path);
        let Some(n) = self.nodes.remove(path) else {
            return;
        };
        self.index_remove(path, n.kind);
        let bytes = n.data.len() as i64;
        gone.push((path.to_string(), n.acl));
        self.quota_node_deleted(path);
        self.charge_quota(path, -bytes, -1, undo);
        if let Some(p) = self.nodes.get_mut(parent_path.as_str()) {
            // As ZooKeeper: a delete is a change to the children, so it
            // moves cversion and pzxid (but not `seq`, which counts creations).
            p.stat.cversion = p.stat.cversion.wrapping_add(1);
            p.stat.pzxid = zxid;
            p.stat.num_children = p.stat.num_children.wrapping_sub(1);
        }
        events.push((EventKind::Deleted, path.to_string()));
        events.push((EventKind::ChildrenChanged, parent_path));
    }
}

/// `/zookeeper/config`'s ACL as clients see and are held to it: readable by
/// anyone, changed only by the ensemble itself (ZooKeeper's
/// `READ_ACL_UNSAFE` there). Applied when checking rather than stored, so
/// trees built by earlier versions, whose node holds the open ACL, keep
/// the same state hash.
static CONFIG_ACL: std::sync::LazyLock<Vec<Acl>> = std::sync::LazyLock::new(|| {
    vec![Acl {
        perms: Acl::READ,
        scheme: "world".into(),
        id: "anyone".into(),
    }]
});

/// The ACL that governs node `n` at `path` (see [`CONFIG_ACL`]).
pub fn effective_acl<'a>(path: &str, n: &'a Node) -> &'a [Acl] {
    match path {
        CONFIG_PATH => &CONFIG_ACL,
        _ => &n.acl,
    }
}

impl DataTree {
    /// Whether `auth` (none: the server itself) may do `perm` on the node
    /// at `on` (existing: checked by the caller), for an op on `path`.
    fn permit(
        &self,
        auth: Option<&[AuthId]>,
        on: &str,
        path: &str,
        perm: i32,
    ) -> Result<(), ZkError> {
        match (auth, self.nodes.get(on)) {
            (Some(auth), Some(n)) => crate::acl::check(path, effective_acl(on, n), auth, perm),
            _ => Ok(()),
        }
    }
}

fn check_version(path: &str, expected: Option<i32>, actual: i32) -> Result<(), ZkError> {
    match expected {
        Some(v) if v != -1 && v != actual => Err(ZkError::bad_version(path, v, actual)),
        _ => Ok(()),
    }
}

/// FNV-1a, 64-bit: a small stable hash for divergence checks.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn u64(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;
