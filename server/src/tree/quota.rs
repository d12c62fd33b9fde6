//! ZooKeeper's quotas, kept as ZooKeeper 3.8 keeps them: a client (zkCli's
//! `setquota`, `warden quota set`) writes the limits of a subtree `P` to
//! `/zookeeper/quota/P/zookeeper_limits` and creates
//! `/zookeeper/quota/P/zookeeper_stats`; from then on the tree keeps that
//! stats node's `count=N,bytes=M` (nodes and data bytes under `P`, `P`
//! included) up to date with every create, delete and setData below `P`.
//! Hard limits (`countHardLimit`, `byteHardLimit`) refuse the write that
//! would exceed them with `QuotaExceeded` when the writer's member runs with
//! `--enforce-quota` (the txn says so, so every member decides alike); soft
//! limits (`count`, `bytes`) are only reported.
//!
//! As in ZooKeeper, a write is charged to the deepest quota above it only,
//! and the stats node changes without a new version or a watch event.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::{path, DataTree, Undo};
use crate::error::{Code, ZkError};

/// Where quotas live.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// The node holding a subtree's limits.
pub const LIMITS: &str = "zookeeper_limits";
/// The node holding a subtree's usage.
pub const STATS: &str = "zookeeper_stats";

/// A `key=value` list as ZooKeeper's `StatsTrack` reads and writes it:
/// `count=N,bytes=M`, then any other keys sorted, after an extra `=` that
/// older parsers skip (`count=1,bytes=2=;byteHardLimit=9;countHardLimit=5`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatsTrack(BTreeMap<String, i64>);

impl StatsTrack {
    pub fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let mut m = BTreeMap::new();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                continue;
            };
            m.insert(k.to_string(), v.parse().unwrap_or(-1));
        }
        StatsTrack(m)
    }

    /// A value; -1 when absent (no limit).
    pub fn get(&self, key: &str) -> i64 {
        self.0.get(key).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, key: &str, v: i64) {
        self.0.insert(key.to_string(), v);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("count={},bytes={}", self.get("count"), self.get("bytes"));
        let rest: Vec<_> = self
            .0
            .iter()
            .filter(|(k, _)| *k != "count" && *k != "bytes")
            .collect();
        if !rest.is_empty() {
            s.push('=');
            for (k, v) in rest {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        s.into_bytes()
    }
}

/// The subtree a quota node under [`QUOTA_ROOT`] is about, and its kind:
/// `/zookeeper/quota/a/b/zookeeper_limits` is (`/a/b`, `zookeeper_limits`).
fn quota_node(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(QUOTA_ROOT)?;
    let (subtree, name) = rest.rsplit_once('/')?;
    (!subtree.is_empty() && (name == LIMITS || name == STATS)).then_some((subtree, name))
}

fn stats_path(subtree: &str) -> String {
    format!("{QUOTA_ROOT}{subtree}/{STATS}")
}

fn limits_path(subtree: &str) -> String {
    format!("{QUOTA_ROOT}{subtree}/{LIMITS}")
}

impl DataTree {
    /// The deepest subtree with a quota that holds `path` (itself included).
    pub(super) fn quota_of(&self, path: &str) -> Option<String> {
        if self.quotas.is_empty() {
            return None;
        }
        let mut p = path;
        loop {
            if self.quotas.contains(p) {
                return Some(p.to_string());
            }
            p = path::parent(p)?;
            if p == "/" {
                return None;
            }
        }
    }

    /// Finds every quota again, from the limits nodes (after a snapshot is
    /// read or a multi undone).
    pub(super) fn rebuild_quotas(&mut self) {
        self.quotas = self
            .nodes
            .range::<str, _>((
                Bound::Included(format!("{QUOTA_ROOT}/").as_str()),
                Bound::Unbounded,
            ))
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(QUOTA_ROOT))
            .filter_map(|p| quota_node(p))
            .filter(|(_, name)| *name == LIMITS)
            .map(|(subtree, _)| subtree.to_string())
            .collect();
    }

    /// After `path` was created: a limits node starts a quota; a stats node
    /// is filled with what its subtree holds now (as ZooKeeper does,
    /// whatever the client wrote there).
    pub(super) fn quota_node_created(&mut self, path: &str, undo: &mut Option<&mut Vec<Undo>>) {
        let Some((subtree, name)) = quota_node(path) else {
            return;
        };
        if name == LIMITS {
            self.quotas.insert(subtree.to_string());
            return;
        }
        let (count, bytes) = self.usage(subtree);
        let mut stats = StatsTrack::default();
        stats.set("count", count);
        stats.set("bytes", bytes);
        self.write_stats(path, &stats, undo);
    }

    /// Counts every quota's subtree again into its stats node: for a tree
    /// from a snapshot written before Warden kept quota stats (whose stats
    /// nodes hold what the client wrote), so every member starts from the
    /// subtree's real usage, as ZooKeeper recounts at every load.
    pub(super) fn recount_quotas(&mut self) {
        let quotas: Vec<String> = self.quotas.iter().cloned().collect();
        for subtree in quotas {
            let at = stats_path(&subtree);
            if self.nodes.contains_key(at.as_str()) {
                let (count, bytes) = self.usage(&subtree);
                let mut stats = StatsTrack::default();
                stats.set("count", count);
                stats.set("bytes", bytes);
                self.write_stats(&at, &stats, &mut None);
            }
        }
    }

    /// After `path` was deleted: a deleted limits node ends its quota.
    pub(super) fn quota_node_deleted(&mut self, path: &str) {
        if let Some((subtree, LIMITS)) = quota_node(path) {
            self.quotas.remove(subtree);
        }
    }

    /// Nodes and data bytes in `subtree`, itself included.
    fn usage(&self, subtree: &str) -> (i64, i64) {
        let below = format!("{subtree}/");
        let inside = |p: &str| p == subtree || p.starts_with(&below);
        self.nodes
            .range::<str, _>((Bound::Included(subtree), Bound::Unbounded))
            .take_while(|(p, _)| p.starts_with(subtree))
            .filter(|(p, _)| inside(p))
            .fold((0, 0), |(c, b), (_, n)| (c + 1, b + n.data.len() as i64))
    }

    /// Charges a change under a quota to its stats node.
    pub(super) fn charge_quota(
        &mut self,
        path: &str,
        bytes: i64,
        count: i64,
        undo: &mut Option<&mut Vec<Undo>>,
    ) {
        let Some(subtree) = self.quota_of(path) else {
            return;
        };
        let at = stats_path(&subtree);
        let Some(n) = self.nodes.get(at.as_str()) else {
            return;
        };
        let mut stats = StatsTrack::parse(&n.data);
        // Saturating: a client may have written anything there.
        stats.set("count", stats.get("count").saturating_add(count));
        stats.set("bytes", stats.get("bytes").saturating_add(bytes));
        self.write_stats(&at, &stats, undo);
    }

    fn write_stats(&mut self, at: &str, stats: &StatsTrack, undo: &mut Option<&mut Vec<Undo>>) {
        self.save_fields(undo, at, true, false);
        if let Some(n) = self.nodes.get_mut(at) {
            n.data = stats.encode().into();
            n.null = false;
        }
    }

    /// `QuotaExceeded` if adding `bytes` and `count` under `path` would pass
    /// a hard limit (ZooKeeper's `checkQuota`, with `zookeeper.enforceQuota`).
    pub(super) fn check_quota(&self, path: &str, bytes: i64, count: i64) -> Result<(), ZkError> {
        let Some(subtree) = self.quota_of(path) else {
            return Ok(());
        };
        let read = |p: String| {
            self.nodes
                .get(p.as_str())
                .map(|n| StatsTrack::parse(&n.data))
        };
        let (Some(limits), Some(used)) = (read(limits_path(&subtree)), read(stats_path(&subtree)))
        else {
            return Ok(());
        };
        let over = |diff: i64, used: i64, hard: i64| {
            diff != 0 && hard > -1 && used.saturating_add(diff) > hard
        };
        if over(count, used.get("count"), limits.get("countHardLimit"))
            || over(bytes, used.get("bytes"), limits.get("byteHardLimit"))
        {
            return Err(ZkError::new(Code::QuotaExceeded, subtree));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_read_and_write_as_zookeeper_does() {
        let s = StatsTrack::parse(b"count=3,bytes=10");
        assert_eq!((s.get("count"), s.get("bytes")), (3, 10));
        assert_eq!(s.encode(), b"count=3,bytes=10");
        let mut l = StatsTrack::parse(b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=5");
        assert_eq!(l.get("countHardLimit"), 5);
        l.set("byteHardLimit", 100);
        assert_eq!(
            String::from_utf8(l.encode()).unwrap(),
            "count=-1,bytes=-1=;byteHardLimit=100;countHardLimit=5"
        );
        assert_eq!(StatsTrack::parse(b"").get("count"), -1);
        assert_eq!(StatsTrack::parse(b"junk,count=x").get("count"), -1);
    }

    #[test]
    fn quota_nodes_name_their_subtree() {
        assert_eq!(
            quota_node("/zookeeper/quota/a/b/zookeeper_limits"),
            Some(("/a/b", LIMITS))
        );
        assert_eq!(
            quota_node("/zookeeper/quota/a/zookeeper_stats"),
            Some(("/a", STATS))
        );
        assert_eq!(quota_node("/zookeeper/quota/zookeeper_limits"), None);
        assert_eq!(quota_node("/zookeeper/quota/a/other"), None);
        assert_eq!(quota_node("/a/zookeeper_limits"), None);
    }
}
