//! ZooKeeper's vocabulary, defined once for the server, the client and both
//! wire formats: error [`Code`]s, [`Stat`], [`Acl`], [`CreateMode`], watch
//! [`EventType`]s, [`KeeperState`], [`WatcherType`] and [`AddWatchMode`].
//!
//! Every enum carries ZooKeeper's numbers and names, which warden.proto
//! uses too (the build fails if the two ever disagree); jute carries the
//! numbers as they are. The conversions to and from the protobuf types
//! ([`crate::v1`]) and the jute records ([`crate::jute`]) are all here:
//! `Stat` converts to and from both, `Acl` to and from protobuf's and is
//! itself the jute record; nothing else maps them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::jute;
use crate::v1 as pb;

/// Declares a vocabulary enum from one table: a row per variant with
/// ZooKeeper's number, ZooKeeper's name where it is not the variant's
/// (`as "InvalidACL"`), and the protobuf value where it is named otherwise
/// (`<=> PersistentWatch`). It generates `number`, `from_number`, `name`,
/// `ALL` and `Display`; with `<=> pb::Enum`, the conversions to and from
/// the protobuf enum and a compile-time check that both number alike; with
/// `unknown Variant`, a variant that keeps a number this side does not know.
macro_rules! zk_enum {
    (@name $v:ident) => { stringify!($v) };
    (@name $v:ident $name:literal) => { $name };
    (@pb $p:ident $v:ident) => { pb::$p::$v };
    (@pb $p:ident $v:ident $pv:ident) => { pb::$p::$pv };

    // A closed set: a number outside it is not one of these.
    (@closed
        $(#[$meta:meta])*
        pub enum $t:ident {
            $( $(#[$vmeta:meta])* $v:ident = $n:literal $(as $name:literal)? $(<=> $pv:ident)?, )*
        }
    ) => {
        $(#[$meta])*
        pub enum $t {
            $( $(#[$vmeta])* $v = $n, )*
        }

        impl $t {
            /// Every value, in ZooKeeper's order.
            pub const ALL: &'static [$t] = &[$($t::$v),*];

            /// ZooKeeper's number.
            pub const fn number(self) -> i32 {
                self as i32
            }

            /// The value with ZooKeeper's number `n`, if there is one.
            pub const fn from_number(n: i32) -> Option<$t> {
                match n {
                    $( $n => Some($t::$v), )*
                    _ => None,
                }
            }

            /// ZooKeeper's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $t::$v => zk_enum!(@name $v $($name)?), )*
                }
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };

    (
        $(#[$meta:meta])*
        pub enum $t:ident <=> pb::$p:ident, unknown $unknown:ident {
            $( $(#[$vmeta:meta])* $v:ident = $n:literal $(as $name:literal)? $(<=> $pv:ident)?, )*
        }
    ) => {
        $(#[$meta])*
        pub enum $t {
            $( $(#[$vmeta])* $v, )*
            /// A number this side does not know (as it was sent).
            $unknown(i32),
        }

        impl $t {
            /// Every known value, in ZooKeeper's order.
            pub const ALL: &'static [$t] = &[$($t::$v),*];

            /// ZooKeeper's number.
            pub const fn number(self) -> i32 {
                match self {
                    $( $t::$v => $n, )*
                    $t::$unknown(n) => n,
                }
            }

            /// The value with ZooKeeper's number `n` (an unknown one keeps it).
            pub const fn from_number(n: i32) -> $t {
                match n {
                    $( $n => $t::$v, )*
                    n => $t::$unknown(n),
                }
            }

            /// ZooKeeper's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $t::$v => zk_enum!(@name $v $($name)?), )*
                    $t::$unknown(_) => stringify!($unknown),
                }
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $t::$unknown(n) => write!(f, "{}({n})", stringify!($unknown)),
                    known => f.write_str(known.name()),
                }
            }
        }

        impl From<pb::$p> for $t {
            fn from(p: pb::$p) -> $t {
                $t::from_number(p as i32)
            }
        }

        impl TryFrom<$t> for pb::$p {
            /// The number of an unknown value.
            type Error = i32;

            fn try_from(v: $t) -> Result<pb::$p, i32> {
                match v {
                    $( $t::$v => Ok(zk_enum!(@pb $p $v $($pv)?)), )*
                    $t::$unknown(n) => Err(n),
                }
            }
        }

        const _: () = { $( assert!(zk_enum!(@pb $p $v $($pv)?) as i32 == $n); )* };
    };

    (
        $(#[$meta:meta])*
        pub enum $t:ident <=> pb::$p:ident {
            $( $(#[$vmeta:meta])* $v:ident = $n:literal $(as $name:literal)? $(<=> $pv:ident)?, )*
        }
    ) => {
        zk_enum!(@closed $(#[$meta])* pub enum $t {
            $( $(#[$vmeta])* $v = $n $(as $name)? $(<=> $pv)?, )*
        });

        impl $t {
            /// The protobuf value.
            pub const fn to_proto(self) -> pb::$p {
                match self {
                    $( $t::$v => zk_enum!(@pb $p $v $($pv)?), )*
                }
            }
        }

        impl From<$t> for pb::$p {
            fn from(v: $t) -> pb::$p {
                v.to_proto()
            }
        }

        impl TryFrom<pb::$p> for $t {
            /// The number of a protobuf value that is not one of these.
            type Error = i32;

            fn try_from(p: pb::$p) -> Result<$t, i32> {
                $t::from_number(p as i32).ok_or(p as i32)
            }
        }

        const _: () = { $( assert!(zk_enum!(@pb $p $v $($pv)?) as i32 == $n); )* };
    };

    (
        $(#[$meta:meta])*
        pub enum $t:ident {
            $( $(#[$vmeta:meta])* $v:ident = $n:literal $(as $name:literal)?, )*
        }
    ) => {
        zk_enum!(@closed $(#[$meta])* pub enum $t {
            $( $(#[$vmeta])* $v = $n $(as $name)?, )*
        });
    };
}

zk_enum! {
    /// ZooKeeper's error codes (`KeeperException.Code`), with ZooKeeper's
    /// names and numbers: what every failure reports, on both protocols.
    ///
    /// It exists so callers can branch on *what* went wrong (`NodeExists`
    /// means "someone else won", `BadVersion` means "retry with fresh data")
    /// without parsing strings. `Unknown` keeps a number a newer peer might
    /// send.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[non_exhaustive]
    pub enum Code <=> pb::ErrorCode, unknown Unknown {
        Ok = 0,
        SystemError = -1,
        RuntimeInconsistency = -2,
        DataInconsistency = -3,
        ConnectionLoss = -4,
        MarshallingError = -5,
        Unimplemented = -6,
        OperationTimeout = -7,
        BadArguments = -8,
        UnknownSession = -12,
        NewConfigNoQuorum = -13,
        ReconfigInProgress = -14,
        ApiError = -100,
        NoNode = -101,
        NoAuth = -102,
        BadVersion = -103,
        NoChildrenForEphemerals = -108,
        NodeExists = -110,
        NotEmpty = -111,
        SessionExpired = -112,
        InvalidCallback = -113,
        InvalidAcl = -114 as "InvalidACL",
        AuthFailed = -115,
        SessionMoved = -118,
        NotReadOnly = -119,
        EphemeralOnLocalSession = -120,
        NoWatcher = -121,
        RequestTimeout = -122,
        ReconfigDisabled = -123,
        SessionClosedRequireSaslAuth = -124,
        QuotaExceeded = -125,
        Throttled = -127,
    }
}

impl Code {
    /// The code for a number as it travels on the wire: [`Code::from_number`].
    pub const fn from_i32(number: i32) -> Code {
        Code::from_number(number)
    }

    /// ZooKeeper's number for the code: [`Code::number`].
    pub const fn as_i32(self) -> i32 {
        self.number()
    }

    /// True for `Ok`.
    pub fn is_ok(self) -> bool {
        self == Code::Ok
    }
}

zk_enum! {
    /// What kind of node a create makes (`CreateMode`), with ZooKeeper's
    /// flag numbers.
    ///
    /// Ephemeral nodes live as long as the session (the basis of locks,
    /// elections and service registration); sequential nodes get a unique,
    /// increasing `%010d` suffix (the basis of fair queues); containers
    /// vanish once their last child goes; TTL nodes vanish when unmodified
    /// and childless for their TTL.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum CreateMode <=> pb::CreateMode {
        #[default]
        Persistent = 0,
        Ephemeral = 1,
        PersistentSequential = 2,
        EphemeralSequential = 3,
        Container = 4,
        PersistentWithTtl = 5,
        PersistentSequentialWithTtl = 6,
    }
}

impl CreateMode {
    /// True for the modes that append a sequence number.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// True for the modes that die with the session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// True for the container mode.
    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    /// True for the modes that need a TTL.
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

zk_enum! {
    /// What happened to a watched node (`Watcher.Event.EventType`).
    ///
    /// A watcher can tell "the data changed" from "the node is gone" without
    /// another read. ZooKeeper's `None` (-1), which only goes with a change
    /// of [`KeeperState`], is not a node event and is not here.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum EventType <=> pb::EventType {
        NodeCreated = 1,
        NodeDeleted = 2,
        NodeDataChanged = 3,
        NodeChildrenChanged = 4,
        /// A data or exists watch was removed by `removeWatches`.
        DataWatchRemoved = 5,
        /// A child watch was removed by `removeWatches`.
        ChildWatchRemoved = 6,
        /// A persistent (or persistent-recursive) watch was removed.
        PersistentWatchRemoved = 7,
    }
}

impl EventType {
    /// The type for a wire number; `None` for numbers that are not node
    /// events (unspecified, connection-state `None`, unknown):
    /// [`EventType::from_number`].
    pub const fn from_i32(n: i32) -> Option<EventType> {
        EventType::from_number(n)
    }
}

zk_enum! {
    /// The connection state a ZooKeeper notification carries
    /// (`Watcher.Event.KeeperState`). The deprecated `Unknown` (-1) and
    /// `NoSyncConnected` (1) are left out.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum KeeperState {
        Disconnected = 0,
        SyncConnected = 3,
        AuthFailed = 4,
        ConnectedReadOnly = 5,
        SaslAuthenticated = 6,
        Closed = 7,
        Expired = -112,
    }
}

zk_enum! {
    /// Which watches `removeWatches` and `checkWatches` mean
    /// (`Watcher.WatcherType`).
    ///
    /// `Data` covers data and exists watches, `Children` child watches, `Any`
    /// both; persistent watches on the path are removed with `Data` and `Any`
    /// (and, for non-recursive ones, with `Children`), as in ZooKeeper.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum WatcherType <=> pb::WatcherType {
        Children = 1,
        Data = 2,
        Any = 3,
    }
}

zk_enum! {
    /// The kind of watch `addWatch` sets (`AddWatchMode`).
    ///
    /// Persistent watches stay after they fire (no gap between an event and
    /// re-arming, unlike one-shot watches); recursive ones also cover every
    /// descendant, which is what caches over a whole subtree need.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum AddWatchMode <=> pb::AddWatchMode {
        /// Every event on the node itself, including `NodeChildrenChanged`.
        Persistent = 0 as "PERSISTENT" <=> PersistentWatch,
        /// Created/deleted/data events on the node and all its descendants
        /// (no `NodeChildrenChanged`).
        PersistentRecursive = 1 as "PERSISTENT_RECURSIVE" <=> PersistentRecursiveWatch,
    }
}

/// A znode's metadata, with ZooKeeper's meaning for every field.
///
/// Versions in a `Stat` are the currency of optimistic concurrency
/// (`setData(path, data, stat.version)`), and czxid is the fencing token
/// recipes hand out. The field order is ZooKeeper's (and the server's
/// snapshot encoding).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stat {
    /// zxid of the change that created the node.
    pub czxid: i64,
    /// zxid of the change that last modified the node's data.
    pub mzxid: i64,
    /// Creation time, milliseconds since the Unix epoch.
    pub ctime: i64,
    /// Last data modification time, milliseconds since the Unix epoch.
    pub mtime: i64,
    /// Number of changes to the data (ZooKeeper's `dataVersion`).
    pub version: i32,
    /// Number of changes to the children (`cversion`).
    pub cversion: i32,
    /// Number of changes to the ACL (`aclVersion`).
    pub aversion: i32,
    /// Session id of the owner if the node is ephemeral, else 0.
    pub ephemeral_owner: u64,
    /// Length of the data in bytes.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// zxid of the change that last modified the children.
    pub pzxid: i64,
}

/// `From` both ways between [`Stat`] and a wire record of the same fields;
/// `as` keeps the bits where the record's `ephemeral_owner` is signed.
macro_rules! stat_both_ways {
    ($wire:path) => {
        stat_both_ways!(@one Stat => $wire);
        stat_both_ways!(@one $wire => Stat);
    };
    (@one $from:path => $to:path) => {
        impl From<$from> for $to {
            fn from(s: $from) -> $to {
                $to {
                    czxid: s.czxid,
                    mzxid: s.mzxid,
                    ctime: s.ctime,
                    mtime: s.mtime,
                    version: s.version,
                    cversion: s.cversion,
                    aversion: s.aversion,
                    ephemeral_owner: s.ephemeral_owner as _,
                    data_length: s.data_length,
                    num_children: s.num_children,
                    pzxid: s.pzxid,
                }
            }
        }
    };
}

stat_both_ways!(pb::Stat);
stat_both_ways!(jute::Stat);

jute::records::jute_record! {
    /// An access-control entry: permissions for a (scheme, id), as
    /// ZooKeeper's `ACL` with its `Id` inlined. Warden stores ACLs and
    /// returns them, but does not enforce them; they exist so ZooKeeper
    /// tooling that reads and writes ACLs keeps working.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub struct Acl {
        /// A bit set of [`Acl::READ`], [`Acl::WRITE`], ...
        pub perms: i32 = "acl.perms",
        /// `world`, `auth`, `digest`, `ip`, ...
        pub scheme: String = "acl.scheme",
        /// The identity within the scheme (`anyone` for `world`).
        pub id: String = "acl.id",
    }
}

impl Acl {
    /// ZooKeeper's permission bits (`ZooDefs.Perms`).
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;

    /// `world:anyone` with every permission — ZooKeeper's `OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: Acl::ALL,
            scheme: "world".into(),
            id: "anyone".into(),
        }]
    }

    /// The same as [`Acl::open_unsafe`], under the server's name for it.
    pub fn open() -> Vec<Acl> {
        Acl::open_unsafe()
    }
}

impl From<pb::Acl> for Acl {
    fn from(a: pb::Acl) -> Acl {
        Acl {
            perms: a.perms,
            scheme: a.scheme,
            id: a.id,
        }
    }
}

impl From<Acl> for pb::Acl {
    fn from(a: Acl) -> pb::Acl {
        pb::Acl {
            perms: a.perms,
            scheme: a.scheme,
            id: a.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_zookeepers_numbers_and_names() {
        assert_eq!(Code::ALL.len(), 32);
        for &c in Code::ALL {
            assert_eq!(Code::from_number(c.number()), c);
            let p = pb::ErrorCode::try_from(c).unwrap();
            assert_eq!(p as i32, c.number());
            assert_eq!(Code::from(p), c);
            assert_eq!(c.to_string(), c.name());
            // The protobuf name is the ZooKeeper name in upper snake case.
            let snake: String = c
                .name()
                .replace("ACL", "Acl")
                .chars()
                .enumerate()
                .flat_map(|(i, ch)| {
                    let sep = (i > 0 && ch.is_ascii_uppercase()).then_some('_');
                    sep.into_iter().chain([ch.to_ascii_uppercase()])
                })
                .collect();
            assert_eq!(p.as_str_name(), snake);
        }
        assert_eq!(Code::NoNode.number(), -101);
        assert_eq!(Code::InvalidAcl.name(), "InvalidACL");
        assert_eq!(Code::from_number(-9999), Code::Unknown(-9999));
        assert_eq!(Code::Unknown(-9999).number(), -9999);
        assert_eq!(Code::Unknown(-9999).name(), "Unknown");
        assert_eq!(Code::Unknown(-9999).to_string(), "Unknown(-9999)");
        assert_eq!(pb::ErrorCode::try_from(Code::Unknown(-9999)), Err(-9999));
    }

    #[test]
    fn enums_match_the_protobuf_enums() {
        for &m in CreateMode::ALL {
            assert_eq!(CreateMode::try_from(m.to_proto()), Ok(m));
            assert_eq!(CreateMode::from_number(m.number()), Some(m));
        }
        assert_eq!(CreateMode::from_number(7), None);
        for &e in EventType::ALL {
            assert_eq!(EventType::try_from(pb::EventType::from(e)), Ok(e));
        }
        assert_eq!(EventType::try_from(pb::EventType::None), Err(-1));
        assert_eq!(EventType::try_from(pb::EventType::EventUnspecified), Err(0));
        for &w in WatcherType::ALL {
            assert_eq!(WatcherType::try_from(w.to_proto()), Ok(w));
        }
        assert_eq!(WatcherType::try_from(pb::WatcherType::Unspecified), Err(0));
        for &a in AddWatchMode::ALL {
            assert_eq!(AddWatchMode::try_from(a.to_proto()), Ok(a));
        }
        assert_eq!(
            AddWatchMode::PersistentRecursive.to_proto(),
            pb::AddWatchMode::PersistentRecursiveWatch
        );
        assert_eq!(KeeperState::SyncConnected.number(), 3);
        assert_eq!(KeeperState::from_number(-112), Some(KeeperState::Expired));
    }

    #[test]
    fn create_mode_predicates() {
        use CreateMode as M;
        let seq: Vec<_> = M::ALL.iter().filter(|m| m.is_sequential()).collect();
        assert_eq!(
            seq,
            [
                &M::PersistentSequential,
                &M::EphemeralSequential,
                &M::PersistentSequentialWithTtl
            ]
        );
        let eph: Vec<_> = M::ALL.iter().filter(|m| m.is_ephemeral()).collect();
        assert_eq!(eph, [&M::Ephemeral, &M::EphemeralSequential]);
        let ttl: Vec<_> = M::ALL.iter().filter(|m| m.is_ttl()).collect();
        assert_eq!(
            ttl,
            [&M::PersistentWithTtl, &M::PersistentSequentialWithTtl]
        );
        assert!(M::Container.is_container() && !M::Persistent.is_container());
        assert_eq!(M::default(), M::Persistent);
    }

    #[test]
    fn stat_and_acl_convert_every_field() {
        // A distinct value in every field, so a swap would show.
        let s = Stat {
            czxid: 101,
            mzxid: 102,
            ctime: 103,
            mtime: 104,
            version: 105,
            cversion: 106,
            aversion: 107,
            ephemeral_owner: u64::MAX - 7,
            data_length: 109,
            num_children: 110,
            pzxid: 111,
        };
        let p = pb::Stat::from(s);
        assert_eq!(
            (p.czxid, p.pzxid, p.ephemeral_owner),
            (101, 111, u64::MAX - 7)
        );
        assert_eq!(Stat::from(p), s);
        let j = jute::Stat::from(s);
        assert_eq!((j.czxid, j.pzxid, j.ephemeral_owner), (101, 111, -8));
        assert_eq!(Stat::from(j), s);
        let a = Acl::open_unsafe().remove(0);
        assert_eq!(Acl::from(pb::Acl::from(a.clone())), a);
        assert_eq!(
            (a.perms, a.scheme.as_str(), a.id.as_str()),
            (31, "world", "anyone")
        );
    }
}
