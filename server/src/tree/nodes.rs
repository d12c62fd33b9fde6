//! `NodeMap`: the path map of every znode, and the frozen view a snapshot
//! reads while writes go on.
//!
//! A snapshot is taken copy-on-write, node by node. [`NodeMap::freeze`]
//! marks the point the snapshot stands for; from then on a write keeps the
//! node it is about to change (or its absence) — only the first time, and
//! only while the snapshot has not read that path yet — and the snapshot
//! reads in path order, a chunk at a time, merging the live map with what
//! writes kept. Writes pay one copy of each node they touch ahead of the
//! reader; nothing waits for the whole tree to be written out.
//!
//! Chosen over ZooKeeper's fuzzy snapshot (serialize while applying, then
//! replay the log over it) because a Warden snapshot must be exactly the
//! state at one log index — openraft ships it to followers as that — and
//! Warden's txns are not idempotent (sequence numbers, cversion); and over
//! a persistent map, whose shared inner nodes would cost memory on every
//! znode all the time instead of on the few a snapshot races.

use std::collections::BTreeMap;
use std::ops::{Bound, Deref};
use std::sync::Arc;

use compact_str::CompactString;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Node;

/// The map from full path to node. Reads go straight to the map (it
/// dereferences to it); every change goes through the methods here, which
/// keep what a snapshot in progress still has to read.
#[derive(Debug, Default)]
pub struct NodeMap {
    map: BTreeMap<CompactString, Box<Node>>,
    frozen: Option<Arc<Freeze>>,
}

/// A snapshot's frozen view: where its reader is, and the nodes as they
/// were at its point for the paths written since that it has not read.
#[derive(Debug, Default)]
pub struct Freeze {
    state: Mutex<FreezeState>,
}

#[derive(Debug, Default)]
struct FreezeState {
    /// Every path up to and including this one has been read.
    read_upto: Option<CompactString>,
    /// Paths not read yet that were written since the freeze: the node as
    /// it was then (`None`: there was none).
    kept: BTreeMap<CompactString, Option<Box<Node>>>,
    /// The reader finished or gave up: writes stop keeping.
    ended: bool,
}

impl Freeze {
    /// Ends the frozen view: later writes keep nothing.
    pub fn end(&self) {
        let mut s = self.state.lock();
        s.ended = true;
        s.kept.clear();
    }

    pub fn ended(&self) -> bool {
        self.state.lock().ended
    }
}

impl Drop for NodeMap {
    /// A snapshot still reading a map that goes away (the state replaced)
    /// is ended: its reader gets an error, never another tree's nodes.
    fn drop(&mut self) {
        if let Some(f) = &self.frozen {
            f.end();
        }
    }
}

impl Clone for NodeMap {
    /// A copy of the nodes; a snapshot in progress stays with the original.
    fn clone(&self) -> NodeMap {
        NodeMap {
            map: self.map.clone(),
            frozen: None,
        }
    }
}

impl Deref for NodeMap {
    type Target = BTreeMap<CompactString, Box<Node>>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<'a> IntoIterator for &'a NodeMap {
    type Item = (&'a CompactString, &'a Box<Node>);
    type IntoIter = std::collections::btree_map::Iter<'a, CompactString, Box<Node>>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl FromIterator<(CompactString, Box<Node>)> for NodeMap {
    fn from_iter<I: IntoIterator<Item = (CompactString, Box<Node>)>>(iter: I) -> NodeMap {
        NodeMap {
            map: iter.into_iter().collect(),
            frozen: None,
        }
    }
}

/// Laid out as the map it holds.
impl Serialize for NodeMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

/// Reads a map written in key order (as a `BTreeMap` is) as a list, then
/// builds the map from it in one pass: full leaves and no per-insert
/// search, unlike inserting each entry. The bytes are a map's either way.
impl<'de> Deserialize<'de> for NodeMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<NodeMap, D::Error> {
        let entries = <Vec<(CompactString, Box<Node>)>>::deserialize(d)?;
        Ok(entries.into_iter().collect())
    }
}

impl NodeMap {
    /// The node at `path`, to change.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.keep(path);
        self.map.get_mut(path).map(|n| &mut **n)
    }

    pub fn insert(&mut self, path: &str, node: Box<Node>) {
        self.keep(path);
        self.map.insert(path.into(), node);
    }

    pub fn remove(&mut self, path: &str) -> Option<Box<Node>> {
        self.keep(path);
        self.map.remove(path)
    }

    /// Every node, to change in place: only for a tree no snapshot is
    /// reading (one just loaded); a snapshot in progress is ended.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Box<Node>> {
        if let Some(f) = self.frozen.take() {
            f.end();
        }
        self.map.values_mut()
    }

    /// Before `path` changes: a snapshot that has not read it yet keeps it
    /// as it was at the freeze, the first time only.
    fn keep(&mut self, path: &str) {
        let Some(f) = &self.frozen else {
            return;
        };
        let mut s = f.state.lock();
        if s.ended {
            drop(s);
            self.frozen = None;
            return;
        }
        if s.read_upto.as_deref().is_some_and(|r| path <= r) || s.kept.contains_key(path) {
            return;
        }
        let was = self.map.get(path).cloned();
        s.kept.insert(path.into(), was);
    }

    /// Freezes the map as it is now for a snapshot to read with
    /// [`NodeMap::read_frozen`]. A snapshot still in progress is ended
    /// (openraft builds one at a time).
    pub fn freeze(&mut self) -> Arc<Freeze> {
        if let Some(old) = self.frozen.take() {
            old.end();
        }
        let f = Arc::new(Freeze::default());
        self.frozen = Some(f.clone());
        f
    }

    /// Hands the next nodes of the frozen view `f`, at most `max`, in path
    /// order and as they were at the freeze, to `emit`; returns how many.
    /// 0 means every node has been read. An error from `emit` ends the
    /// read there.
    pub fn read_frozen<E>(
        &self,
        f: &Freeze,
        max: usize,
        mut emit: impl FnMut(&str, &Node) -> Result<(), E>,
    ) -> Result<usize, E> {
        let mut s = f.state.lock();
        let from = match &s.read_upto {
            Some(k) => Bound::Excluded(k.as_str()),
            None => Bound::Unbounded,
        };
        let mut live = self
            .map
            .range::<str, _>((from, Bound::Unbounded))
            .peekable();
        let mut kept = s.kept.range::<str, _>((from, Bound::Unbounded)).peekable();
        let (mut emitted, mut last): (usize, Option<&str>) = (0, None);
        while emitted < max {
            let (path, node) = match (live.peek(), kept.peek()) {
                (None, None) => break,
                (Some((l, _)), Some((k, _))) if l.as_str() < k.as_str() => {
                    let (l, n) = live.next().expect("peeked");
                    (l.as_str(), Some(&**n))
                }
                (Some((l, _)), Some((k, _))) if l.as_str() == k.as_str() => {
                    live.next();
                    let (k, n) = kept.next().expect("peeked");
                    (k.as_str(), n.as_deref())
                }
                (Some(_), None) => {
                    let (l, n) = live.next().expect("peeked");
                    (l.as_str(), Some(&**n))
                }
                _ => {
                    let (k, n) = kept.next().expect("peeked");
                    (k.as_str(), n.as_deref())
                }
            };
            last = Some(path);
            if let Some(node) = node {
                emit(path, node)?;
                emitted += 1;
            }
        }
        let Some(last) = last.map(CompactString::from) else {
            return Ok(0);
        };
        // What was kept for the paths read is no longer needed.
        let mut rest = s.kept.split_off(last.as_str());
        rest.remove(last.as_str());
        s.kept = rest;
        s.read_upto = Some(last);
        Ok(emitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{NodeKind, NodeStat};

    fn node(v: u8) -> Box<Node> {
        Box::new(Node {
            data: vec![v].into(),
            acl: Arc::from(Vec::new()),
            stat: NodeStat::default(),
            kind: NodeKind::Persistent,
            seq: 0,
            null: false,
        })
    }

    fn read_all(m: &NodeMap, f: &Freeze, chunk: usize) -> Vec<(String, u8)> {
        let mut out = Vec::new();
        while m
            .read_frozen::<()>(f, chunk, |p, n| {
                out.push((p.to_string(), n.data[0]));
                Ok(())
            })
            .unwrap()
            > 0
        {}
        out
    }

    /// Writes between chunks — ahead of the reader, behind it and at the
    /// path it stopped at; creates, deletes and changes — leave the frozen
    /// view as it was at the freeze.
    #[test]
    fn the_frozen_view_ignores_writes_made_while_it_is_read() {
        let mut m: NodeMap = (0..10u8)
            .map(|i| (CompactString::from(format!("/n{i}")), node(i)))
            .collect();
        let want: Vec<(String, u8)> = (0..10u8).map(|i| (format!("/n{i}"), i)).collect();
        let f = m.freeze();
        let mut got = Vec::new();
        let mut emit = |p: &str, n: &Node| {
            got.push((p.to_string(), n.data[0]));
            Ok::<_, ()>(())
        };
        assert_eq!(m.read_frozen(&f, 3, &mut emit).unwrap(), 3);
        // Behind the reader (read already) and ahead of it.
        m.get_mut("/n1").unwrap().data = vec![100].into();
        m.get_mut("/n2").unwrap().data = vec![102].into();
        m.get_mut("/n5").unwrap().data = vec![105].into();
        m.get_mut("/n5").unwrap().data = vec![115].into();
        m.remove("/n6");
        m.insert("/n4a", node(44));
        m.insert("/n9z", node(99));
        m.remove("/n9z");
        assert_eq!(m.read_frozen(&f, 4, &mut emit).unwrap(), 4);
        m.remove("/n8");
        m.insert("/n8", node(88));
        m.insert("/zz", node(77));
        while m.read_frozen(&f, 2, &mut emit).unwrap() > 0 {}
        assert_eq!(got, want);
        // The live map has every write.
        assert_eq!(m.get("/n5").unwrap().data[0], 115);
        assert!(m.get("/n6").is_none() && m.get("/zz").is_some());
        f.end();
        m.insert("/after", node(1));
        assert!(
            m.frozen.is_none(),
            "an ended freeze is let go at the next write"
        );
    }

    #[test]
    fn without_writes_the_frozen_view_is_the_map_in_any_chunk_size() {
        let mut m: NodeMap = (0..50u8)
            .map(|i| (CompactString::from(format!("/{i:03}")), node(i)))
            .collect();
        let want: Vec<(String, u8)> = m.iter().map(|(p, n)| (p.to_string(), n.data[0])).collect();
        for chunk in [1, 7, 50, 1000] {
            let f = m.freeze();
            assert_eq!(read_all(&m, &f, chunk), want, "chunk {chunk}");
        }
        // A second freeze ends the first.
        let first = m.freeze();
        let second = m.freeze();
        assert!(first.ended() && !second.ended());
        // A map that goes away ends the view still reading it.
        drop(m);
        assert!(second.ended());
    }

    #[test]
    fn what_writes_keep_is_let_go_as_the_reader_passes() {
        let mut m: NodeMap = (0..20u8)
            .map(|i| (CompactString::from(format!("/{i:02}")), node(i)))
            .collect();
        let f = m.freeze();
        for i in 0..20u8 {
            m.get_mut(&format!("/{i:02}")).unwrap().data = vec![200].into();
        }
        assert_eq!(f.state.lock().kept.len(), 20);
        let got = read_all(&m, &f, 5);
        assert_eq!(got.len(), 20);
        assert!(got.iter().all(|(_, v)| *v < 20));
        assert!(f.state.lock().kept.is_empty());
    }
}
