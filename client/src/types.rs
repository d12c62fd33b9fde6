//! The plain Rust types of the client API.
//!
//! The generated protobuf types carry enums as `i32` and optional messages as
//! `Option`; these types are what a caller holds instead, so a match on a
//! `CreateMode` or a `Stat` field never needs the proto crate. The ZooKeeper
//! vocabulary among them (`Stat`, `CreateMode`, `Acl`, `EventType`, ...) is
//! warden-proto's, with its wire conversions; the rest is the client's own.

use std::time::Duration;

use warden_proto::v1 as proto;

use crate::error::Error;

/// ZooKeeper's vocabulary, shared with the server and both wire formats:
/// a znode's [`Stat`], the node kinds of [`CreateMode`], [`Acl`] entries,
/// watch [`EventType`]s, and the [`AddWatchMode`] and [`WatcherType`] of
/// `add_watch` and `remove_watches`.
pub use warden_proto::vocab::{Acl, AddWatchMode, CreateMode, EventType, Stat, WatcherType};

/// Unwraps a stat the protocol says must be there.
pub(crate) fn required_stat(stat: Option<proto::Stat>, what: &str) -> Result<Stat, Error> {
    stat.map(Stat::from)
        .ok_or_else(|| Error::protocol(format!("server sent a {what} result without a stat")))
}

/// Everything `create` needs besides path and data.
///
/// A separate struct so the common call stays `create(path, data, mode)`
/// while TTLs and ACLs remain available (`create_with`, `Op::create_with`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    pub mode: CreateMode,
    /// Required for (and only allowed with) the `*WithTtl` modes.
    pub ttl: Option<Duration>,
    /// Empty means the server's default (`world:anyone`, all permissions).
    pub acl: Vec<Acl>,
}

impl CreateOptions {
    /// Options for `mode`, no TTL, default ACL.
    pub fn new(mode: CreateMode) -> CreateOptions {
        CreateOptions {
            mode,
            ..CreateOptions::default()
        }
    }

    /// Sets the TTL (use with a `*WithTtl` mode).
    pub fn with_ttl(mut self, ttl: Duration) -> CreateOptions {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the ACL.
    pub fn with_acl(mut self, acl: Vec<Acl>) -> CreateOptions {
        self.acl = acl;
        self
    }

    /// Checks that mode and TTL agree.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match (self.mode.is_ttl(), self.ttl) {
            (true, None) => Err(Error::bad_arguments(format!("{:?} needs a TTL", self.mode))),
            (true, Some(ttl)) if ttl.is_zero() => {
                Err(Error::bad_arguments("the TTL must be greater than zero"))
            }
            (true, Some(ttl)) if i64::try_from(ttl.as_millis()).is_err() => {
                Err(Error::bad_arguments("the TTL is too large"))
            }
            (false, Some(_)) => Err(Error::bad_arguments(format!(
                "a TTL is only allowed with the TTL modes, not {:?}",
                self.mode
            ))),
            _ => Ok(()),
        }
    }

    /// The TTL in milliseconds as the wire carries it (0 = none). Rounds
    /// a sub-millisecond TTL up to 1 ms so it stays "set".
    pub(crate) fn ttl_ms(&self) -> i64 {
        match self.ttl {
            None => 0,
            Some(ttl) => i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1),
        }
    }
}

impl From<CreateMode> for CreateOptions {
    fn from(mode: CreateMode) -> Self {
        CreateOptions::new(mode)
    }
}

/// One write (or check) inside a [`multi`](crate::Client::multi).
///
/// A multi applies all of its ops or none, which is how recipes make a
/// decision and its bookkeeping one atomic step (e.g. "claim this fire only
/// if the leader's fencing node is still at version V").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Vec<u8>,
        options: CreateOptions,
    },
    /// `version: None` deletes whatever version is there.
    Delete { path: String, version: Option<i32> },
    /// `version: None` overwrites whatever version is there.
    SetData {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    /// Succeeds when the node exists (and, if given, is at `version`).
    Check { path: String, version: Option<i32> },
}

impl Op {
    /// A create op.
    pub fn create(path: impl Into<String>, data: impl Into<Vec<u8>>, mode: CreateMode) -> Op {
        Op::create_with(path, data, CreateOptions::new(mode))
    }

    /// A create op with TTL or ACL.
    pub fn create_with(
        path: impl Into<String>,
        data: impl Into<Vec<u8>>,
        options: CreateOptions,
    ) -> Op {
        Op::Create {
            path: path.into(),
            data: data.into(),
            options,
        }
    }

    /// A delete op.
    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Delete {
            path: path.into(),
            version,
        }
    }

    /// A set-data op.
    pub fn set_data(path: impl Into<String>, data: impl Into<Vec<u8>>, version: Option<i32>) -> Op {
        Op::SetData {
            path: path.into(),
            data: data.into(),
            version,
        }
    }

    /// A check op.
    pub fn check(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Check {
            path: path.into(),
            version,
        }
    }

    /// The op's (client-side) path.
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. } => path,
        }
    }
}

/// What one op of a successful multi produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The created path (chroot stripped) and, if the server sent it, its stat.
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    /// The node's stat after the write.
    SetData {
        stat: Stat,
    },
    Check,
}

/// One identity of this connection, as `who_am_i` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientInfo {
    /// `ip`, `digest`, `super`, `x509`.
    pub scheme: String,
    /// The client's address, the digest user's name, …
    pub user: String,
}

/// One watch notification: what happened, where, and at which zxid.
///
/// The path is the client's (chroot stripped). Like ZooKeeper's, an event
/// says only that something changed; read the node again for its new state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub path: String,
    /// The zxid of the change (0 for events the client makes itself, such
    /// as the `*WatchRemoved` ones).
    pub zxid: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn create_options_check_ttl() {
        assert!(CreateOptions::new(CreateMode::Persistent)
            .validate()
            .is_ok());
        let needs = CreateOptions::new(CreateMode::PersistentWithTtl).validate();
        assert_eq!(needs.unwrap_err().code(), ErrorCode::BadArguments);
        let zero = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::ZERO);
        assert!(zero.validate().is_err());
        let ok = CreateOptions::new(CreateMode::PersistentSequentialWithTtl)
            .with_ttl(Duration::from_millis(1500));
        assert!(ok.validate().is_ok());
        assert_eq!(ok.ttl_ms(), 1500);
        let tiny =
            CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_micros(10));
        assert_eq!(tiny.ttl_ms(), 1);
        let stray = CreateOptions::new(CreateMode::Ephemeral).with_ttl(Duration::from_secs(1));
        assert!(stray.validate().is_err());
    }

    #[test]
    fn modes_and_events_map_to_the_wire() {
        assert_eq!(
            CreateMode::EphemeralSequential.to_proto() as i32,
            proto::CreateMode::EphemeralSequential as i32
        );
        assert!(CreateMode::EphemeralSequential.is_sequential());
        assert!(CreateMode::EphemeralSequential.is_ephemeral());
        assert!(!CreateMode::Container.is_ephemeral());
        assert_eq!(EventType::from_i32(3), Some(EventType::NodeDataChanged));
        assert_eq!(
            EventType::from_i32(7),
            Some(EventType::PersistentWatchRemoved)
        );
        assert_eq!(EventType::from_i32(0), None);
        assert_eq!(EventType::from_i32(-1), None);
        assert_eq!(EventType::from_i32(99), None);
        assert_eq!(
            EventType::NodeChildrenChanged.to_string(),
            "NodeChildrenChanged"
        );
    }

    #[test]
    fn stat_converts_every_field() {
        let p = proto::Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let s = Stat::from(p);
        assert_eq!(
            (s.czxid, s.mzxid, s.ctime, s.mtime, s.version, s.cversion),
            (1, 2, 3, 4, 5, 6)
        );
        assert_eq!(
            (
                s.aversion,
                s.ephemeral_owner,
                s.data_length,
                s.num_children,
                s.pzxid
            ),
            (7, 8, 9, 10, 11)
        );
        assert!(required_stat(None, "get").is_err());
    }
}
