//! A znode and its Stat.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::txn::Acl;

/// ZooKeeper's Stat: the metadata every read returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: u64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

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
}
