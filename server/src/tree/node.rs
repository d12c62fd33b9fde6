//! A znode and its Stat.

use std::sync::Arc;

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

/// What a node keeps of ZooKeeper's Stat: the rest (`dataLength`,
/// `ephemeralOwner`) follows from its data and kind ([`Node::zk_stat`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl From<&Stat> for NodeStat {
    fn from(s: &Stat) -> NodeStat {
        NodeStat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            num_children: s.num_children,
            pzxid: s.pzxid,
        }
    }
}

/// A znode: data, ACL and Stat. Its children are the nodes whose paths
/// extend its own (`DataTree::children`): no list of names is kept, and
/// `stat.num_children` counts them.
///
/// Kept small (issue 14): data without spare capacity, the ACL shared with
/// every node that has the same one (interned by the tree, ZooKeeper's ACL
/// cache idea), no list of children. In snapshots data and ACL are laid
/// out as the `Vec`s they replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub data: Box<[u8]>,
    pub acl: Arc<[Acl]>,
    pub stat: NodeStat,
    pub kind: NodeKind,
    /// Children created so far: the next sequential child's suffix. Not
    /// cversion, which deletes move too — ZooKeeper numbers sequential
    /// children by creations (`n-3` follows `n-0..2` and a delete of `n-2`)
    /// while its Stat's cversion counts creations and deletions.
    pub seq: i32,
    /// The data is null (ZooKeeper's `create(path, null)` and
    /// `setData(path, null)`), not empty; `data` is then empty.
    pub null: bool,
}

impl Node {
    /// The node's Stat as ZooKeeper reports it.
    pub fn zk_stat(&self) -> Stat {
        let s = &self.stat;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: self.kind.ephemeral_owner(),
            data_length: self.data.len() as i32,
            num_children: s.num_children,
            pzxid: s.pzxid,
        }
    }
}

/// One shared copy of each distinct ACL the tree holds (ZooKeeper's
/// `ReferenceCountedACLCache`): most nodes share a handful of ACLs, so a
/// node keeps a pointer rather than its own list.
#[derive(Debug, Default, Clone)]
pub struct AclCache {
    acls: std::collections::HashSet<Arc<[Acl]>>,
    /// How many entries the cache had after its last sweep.
    swept: usize,
}

impl AclCache {
    pub fn is_empty(&self) -> bool {
        self.acls.is_empty()
    }

    /// The shared copy of `acl`.
    pub fn intern(&mut self, acl: &[Acl]) -> Arc<[Acl]> {
        if let Some(a) = self.acls.get(acl) {
            return a.clone();
        }
        // ACLs no node uses any more go, now and then (their count doubled).
        if self.acls.len() >= 1024 && self.acls.len() >= 2 * self.swept {
            self.acls.retain(|a| Arc::strong_count(a) > 1);
            self.swept = self.acls.len();
        }
        let a: Arc<[Acl]> = acl.into();
        self.acls.insert(a.clone());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snapshots written while these were `Vec`s and `String`s still read.
    #[test]
    fn compact_fields_keep_the_snapshot_layout() {
        let data = vec![1u8, 2, 3];
        let boxed: Box<[u8]> = data.clone().into();
        assert_eq!(
            bincode::serialize(&data).unwrap(),
            bincode::serialize(&boxed).unwrap()
        );
        let acl = Acl::open();
        let shared: Arc<[Acl]> = acl.clone().into();
        assert_eq!(
            bincode::serialize(&acl).unwrap(),
            bincode::serialize(&shared).unwrap()
        );
        let path = "/a/b".to_string();
        let compact = compact_str::CompactString::from(path.as_str());
        assert_eq!(
            bincode::serialize(&path).unwrap(),
            bincode::serialize(&compact).unwrap()
        );
    }

    #[test]
    fn equal_acls_are_shared() {
        let mut cache = AclCache::default();
        let a = cache.intern(&Acl::open());
        let b = cache.intern(&Acl::open());
        assert!(Arc::ptr_eq(&a, &b));
        let other = cache.intern(&[]);
        assert!(!Arc::ptr_eq(&a, &other));
    }
}
