//! A member as the ensemble's membership records it: where peers reach it,
//! where clients reach it (gRPC, ZooKeeper protocol, admin HTTP), and
//! whether it is a permanent non-voting member (ZooKeeper's observer).
//!
//! The record travels in openraft's membership entries, in the log and in
//! snapshots. It is encoded as one string, `PEER[;key=value…][;observer]`,
//! so that its bincode form is the same as openraft's `BasicNode { addr }`
//! that earlier versions stored: a data folder written before client
//! addresses were recorded reads back as a member with only its peer
//! address. Unknown keys are ignored, so a newer version's additions do
//! not stop an older one from reading the log during a rolling upgrade.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One member's addresses and kind, as recorded in the membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Wire", from = "Wire")]
pub struct MemberNode {
    /// Where peers reach it (`--peer-listen`).
    pub peer: String,
    /// Its gRPC client address (`--listen`), once it has announced it.
    pub client: Option<String>,
    /// Its ZooKeeper-protocol address (`--zk-listen`), if it serves one.
    pub zk: Option<String>,
    /// Its admin HTTP address (`--admin-listen`).
    pub admin: Option<String>,
    /// Added with `--learner`: never promoted to a voter automatically.
    pub observer: bool,
}

/// The stored form: openraft's `BasicNode` layout.
#[derive(Serialize, Deserialize)]
struct Wire {
    addr: String,
}

impl MemberNode {
    /// A member known only by its peer address.
    pub fn new(peer: impl Into<String>) -> MemberNode {
        MemberNode {
            peer: peer.into(),
            ..MemberNode::default()
        }
    }

    /// Parses the stored string; never fails (see the module).
    pub fn decode(s: &str) -> MemberNode {
        let mut parts = s.split(';');
        let mut m = MemberNode::new(parts.next().unwrap_or_default());
        for part in parts {
            match part.split_once('=') {
                Some(("client", v)) => m.client = Some(v.to_string()),
                Some(("zk", v)) => m.zk = Some(v.to_string()),
                Some(("admin", v)) => m.admin = Some(v.to_string()),
                None if part == "observer" => m.observer = true,
                _ => {}
            }
        }
        m
    }

    /// The stored string.
    pub fn encode(&self) -> String {
        let mut s = self.peer.clone();
        for (key, value) in [
            ("client", &self.client),
            ("zk", &self.zk),
            ("admin", &self.admin),
        ] {
            if let Some(v) = value {
                s.push_str(&format!(";{key}={v}"));
            }
        }
        if self.observer {
            s.push_str(";observer");
        }
        s
    }

    /// The same member with the client addresses of `other` (its peer
    /// address and kind unchanged).
    pub fn with_addresses_of(&self, other: &MemberNode) -> MemberNode {
        MemberNode {
            peer: self.peer.clone(),
            client: other.client.clone(),
            zk: other.zk.clone(),
            admin: other.admin.clone(),
            observer: self.observer,
        }
    }
}

impl From<Wire> for MemberNode {
    fn from(w: Wire) -> MemberNode {
        MemberNode::decode(&w.addr)
    }
}

impl From<MemberNode> for Wire {
    fn from(m: MemberNode) -> Wire {
        Wire { addr: m.encode() }
    }
}

impl fmt::Display for MemberNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_what_basic_node_stored() {
        let full = MemberNode {
            peer: "10.0.0.1:7182".into(),
            client: Some("10.0.0.1:7181".into()),
            zk: Some("10.0.0.1:2181".into()),
            admin: Some("10.0.0.1:7180".into()),
            observer: true,
        };
        let bytes = bincode::serialize(&full).unwrap();
        assert_eq!(bincode::deserialize::<MemberNode>(&bytes).unwrap(), full);

        let old = bincode::serialize(&openraft::BasicNode::new("10.0.0.2:7182")).unwrap();
        let read: MemberNode = bincode::deserialize(&old).unwrap();
        assert_eq!(read, MemberNode::new("10.0.0.2:7182"));
        assert_eq!(bincode::serialize(&read).unwrap(), old);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let m = MemberNode::decode("h:1;zk=h:2;future=x;observer;other");
        assert_eq!(m.peer, "h:1");
        assert_eq!(m.zk.as_deref(), Some("h:2"));
        assert!(m.observer);
        assert_eq!(m.client, None);
    }
}
