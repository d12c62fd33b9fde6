//! A znode and its Stat.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::txn::Acl;

/// ZooKeeper's Stat: the metadata every read returns (warden-proto's; in
/// snapshots as bincode, its fields in order, as when it was defined here).
pub use warden_proto::vocab::Stat;

/// What kind of node this is, which decides when it goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum NodeKind {
    Persistent,
    /// Deleted when the owning session closes.
    Ephemeral(u64),
    /// Deleted once it has had children and has none left.
    Container,
    /// Deleted when unmodified for this many ms and childless.
    Ttl(i64),
}

impl NodeKind {
    /// The `ephemeralOwner` clients see: the session for ephemerals, 0 for
    /// everything else — containers and TTL nodes included, as ZooKeeper's
    /// `getClientEphemeralOwner` hides its internal markers for them.
    pub fn ephemeral_owner(self) -> u64 {
        match self {
            NodeKind::Ephemeral(s) => s,
            NodeKind::Persistent | NodeKind::Container | NodeKind::Ttl(_) => 0,
        }
    }
}

/// A znode: data, ACL, Stat and the names of its children (kept sorted, so
/// `getChildren` answers in byte order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub data: Vec<u8>,
    pub acl: Vec<Acl>,
    pub stat: Stat,
    pub kind: NodeKind,
    pub children: BTreeSet<String>,
    /// Children created so far: the next sequential child's suffix. Not
    /// cversion, which deletes move too — ZooKeeper numbers sequential
    /// children by creations (`n-3` follows `n-0..2` and a delete of `n-2`)
    /// while its Stat's cversion counts creations and deletions.
    pub seq: i32,
    /// The data is null (ZooKeeper's `create(path, null)` and
    /// `setData(path, null)`), not empty; `data` is then empty.
    pub null: bool,
}
