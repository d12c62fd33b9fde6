//! Watches: one-shot data/exists/child watches and persistent (recursive)
//! watches, triggered from apply results and queued on the owning session's
//! connection in zxid order.
//!
//! Watches belong to a session's *current connection*, as in ZooKeeper: when
//! the connection goes, so do its watches, and the client re-registers them
//! (with its last seen zxid) on the next connection.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::Code;
use crate::tree::{path, DataTree, EventKind};
use crate::txn::Acl;

/// The event types a client sees, with ZooKeeper's numbers (apply fires
/// the four node events; the `*WatchRemoved` ones are the client's own).
pub use warden_proto::vocab::EventType as WatchEventType;

/// The ACL an event is checked against when its node's is not known:
/// no one may READ it (the super user passes every check).
static UNKNOWN_ACL: std::sync::LazyLock<Vec<Acl>> = std::sync::LazyLock::new(|| {
    vec![Acl {
        perms: 0,
        scheme: "world".into(),
        id: "anyone".into(),
    }]
});

/// Where a session's events go: the connection serving it. Implemented by
/// each protocol adapter so events share the stream (and order) of responses.
pub trait EventSink: Send + Sync {
    /// Queues a watch event. Must not block: it is called under the tree
    /// lock. `acl`: the node's ACL, when the event is to reach only a
    /// connection that may READ the node (ZooKeeper 3.8.4+); `None` for
    /// events that are not filtered (those setWatches fires).
    fn event(&self, zxid: i64, kind: WatchEventType, path: &str, acl: Option<&[Acl]>);
    /// The session ended (closed, expired, or moved to another connection).
    fn session_ended(&self, code: Code);
    /// Drop the connection but keep the session: its client reconnects and
    /// re-registers its watches, which then fire for whatever changed.
    fn reconnect(&self, why: &str);
}

/// Which kind of registration to add or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// getData and exists watches: created, deleted, data changed.
    Data,
    /// getChildren watches: children changed, deleted.
    Child,
    Persistent,
    PersistentRecursive,
}

const KINDS: [WatchKind; 4] = [
    WatchKind::Data,
    WatchKind::Child,
    WatchKind::Persistent,
    WatchKind::PersistentRecursive,
];

/// Watches a client re-registers after reconnecting, with the last zxid it saw.
#[derive(Debug, Clone, Copy)]
pub struct Rewatch<'a> {
    pub relative_zxid: i64,
    pub data: &'a [String],
    pub exist: &'a [String],
    pub child: &'a [String],
}

/// Which watches `remove` removes: ZooKeeper's `WatcherType`.
pub use warden_proto::vocab::WatcherType as RemoveKind;

struct Attached {
    conn_id: u64,
    sink: Arc<dyn EventSink>,
}

#[derive(Default)]
struct Inner {
    sinks: HashMap<u64, Attached>,
    /// kind -> path -> sessions
    table: HashMap<(u8, String), HashSet<u64>>,
    /// session -> (kind, path) registrations, for cleanup
    by_session: HashMap<u64, HashSet<(u8, String)>>,
    recursive_count: usize,
}

/// The server's watch registry and event router.
#[derive(Default)]
pub struct WatchManager {
    inner: Mutex<Inner>,
    events_sent: std::sync::atomic::AtomicU64,
}

impl WatchManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds a session to a connection. Returns the connection it replaces,
    /// whose watches are dropped (the client re-registers them).
    pub fn attach(
        &self,
        session: u64,
        conn_id: u64,
        sink: Arc<dyn EventSink>,
    ) -> Option<Arc<dyn EventSink>> {
        let mut g = self.inner.lock();
        let old = g.sinks.insert(session, Attached { conn_id, sink });
        if old.is_some() {
            Self::drop_watches(&mut g, session);
        }
        old.map(|a| a.sink)
    }

    /// The connection currently serving a session.
    pub fn sink_of(&self, session: u64) -> Option<Arc<dyn EventSink>> {
        self.inner
            .lock()
            .sinks
            .get(&session)
            .map(|a| a.sink.clone())
    }

    /// A connection ended: drop its watches, keep the session.
    pub fn detach(&self, session: u64, conn_id: u64) {
        let mut g = self.inner.lock();
        if g.sinks.get(&session).map(|a| a.conn_id) == Some(conn_id) {
            g.sinks.remove(&session);
            Self::drop_watches(&mut g, session);
        }
    }

    /// Every attached connection is dropped (sessions kept): the tree was
    /// replaced wholesale (a snapshot installed), so no event was fired for
    /// what changed; re-registered watches fire for it instead.
    pub fn reconnect_all(&self, why: &str) {
        let sinks: Vec<Arc<dyn EventSink>> = {
            let mut g = self.inner.lock();
            let sessions: Vec<u64> = g.sinks.keys().copied().collect();
            for s in &sessions {
                Self::drop_watches(&mut g, *s);
            }
            g.sinks.drain().map(|(_, a)| a.sink).collect()
        };
        for sink in sinks {
            sink.reconnect(why);
        }
    }

    /// The session is gone: tell its connection and forget it.
    pub fn session_closed(&self, session: u64) {
        let sink = {
            let mut g = self.inner.lock();
            Self::drop_watches(&mut g, session);
            g.sinks.remove(&session)
        };
        if let Some(a) = sink {
            a.sink.session_ended(Code::SessionExpired);
        }
    }

    fn drop_watches(g: &mut Inner, session: u64) {
        if let Some(regs) = g.by_session.remove(&session) {
            for key in regs {
                Self::unlink(g, session, &key);
            }
        }
    }

    /// Takes a session out of the table entry for `key` (its own record in
    /// `by_session` is the caller's to remove).
    fn unlink(g: &mut Inner, session: u64, key: &(u8, String)) {
        if key.0 == WatchKind::PersistentRecursive as u8 {
            g.recursive_count -= 1;
        }
        if let Some(set) = g.table.get_mut(key) {
            set.remove(&session);
            if set.is_empty() {
                g.table.remove(key);
            }
        }
    }

    /// Registers a watch. Call while holding the tree's read lock, right
    /// after the read it belongs to, so no change can slip in between.
    pub fn add(&self, session: u64, kind: WatchKind, path: &str) {
        let mut g = self.inner.lock();
        let key = (kind as u8, path.to_string());
        if g.by_session.entry(session).or_default().insert(key.clone()) {
            if kind == WatchKind::PersistentRecursive {
                g.recursive_count += 1;
            }
            g.table.entry(key).or_default().insert(session);
        }
    }

    /// Removes a session's watches on a path; false if there were none.
    pub fn remove(&self, session: u64, path: &str, which: RemoveKind) -> bool {
        let kinds: &[WatchKind] = match which {
            RemoveKind::Children => &[WatchKind::Child],
            RemoveKind::Data => &[WatchKind::Data],
            RemoveKind::Any => &KINDS,
        };
        let mut g = self.inner.lock();
        let mut found = false;
        for &k in kinds {
            let key = (k as u8, path.to_string());
            let removed = g
                .by_session
                .get_mut(&session)
                .map(|s| s.remove(&key))
                .unwrap_or(false);
            if removed {
                found = true;
                Self::unlink(&mut g, session, &key);
            }
        }
        found
    }

    /// Whether the session has such a watch on the path (checkWatches).
    pub fn has(&self, session: u64, path: &str, which: RemoveKind) -> bool {
        let kinds: &[WatchKind] = match which {
            RemoveKind::Children => &[WatchKind::Child],
            RemoveKind::Data => &[WatchKind::Data],
            RemoveKind::Any => &KINDS,
        };
        let g = self.inner.lock();
        let Some(regs) = g.by_session.get(&session) else {
            return false;
        };
        kinds
            .iter()
            .any(|&k| regs.contains(&(k as u8, path.to_string())))
    }

    /// Number of registrations (session, kind, path).
    pub fn count(&self) -> usize {
        self.inner.lock().by_session.values().map(|s| s.len()).sum()
    }

    /// Watch events queued to connections since start.
    pub fn events_sent(&self) -> u64 {
        self.events_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lists (session, kind, path) for the four-letter words and tests.
    pub fn list(&self) -> Vec<(u64, WatchKind, String)> {
        let g = self.inner.lock();
        let mut out = Vec::new();
        for (s, regs) in &g.by_session {
            for (k, p) in regs {
                out.push((*s, KINDS[*k as usize], p.clone()));
            }
        }
        out.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
        out
    }

    /// Routes apply's changes to watchers, ZooKeeper's way. Called under the
    /// tree's write lock so events precede any later read's response.
    /// `acl_of`: the ACL of a changed node (a deleted one's as it was), to
    /// hold back events from connections that may not READ it; an event
    /// whose node's ACL is unknown reaches no one but the super user.
    pub fn trigger<'a>(
        &self,
        zxid: i64,
        changes: &[(EventKind, String)],
        acl_of: impl Fn(EventKind, &str) -> Option<&'a [Acl]>,
    ) {
        if changes.is_empty() {
            return;
        }
        let mut g = self.inner.lock();
        for (kind, p) in changes {
            let (ty, oneshot): (WatchEventType, &[WatchKind]) = match kind {
                EventKind::Created => (WatchEventType::NodeCreated, &[WatchKind::Data]),
                EventKind::Deleted => (
                    WatchEventType::NodeDeleted,
                    &[WatchKind::Data, WatchKind::Child],
                ),
                EventKind::DataChanged => (WatchEventType::NodeDataChanged, &[WatchKind::Data]),
                EventKind::ChildrenChanged => {
                    (WatchEventType::NodeChildrenChanged, &[WatchKind::Child])
                }
            };
            let mut targets: HashSet<u64> = HashSet::new();
            for &k in oneshot {
                let key = (k as u8, p.clone());
                if let Some(set) = g.table.remove(&key) {
                    for s in &set {
                        if let Some(regs) = g.by_session.get_mut(s) {
                            regs.remove(&key);
                        }
                    }
                    targets.extend(set);
                }
            }
            if let Some(set) = g.table.get(&(WatchKind::Persistent as u8, p.clone())) {
                targets.extend(set.iter().copied());
            }
            if g.recursive_count > 0 && *kind != EventKind::ChildrenChanged {
                let mut cur = Some(p.as_str());
                while let Some(a) = cur {
                    if let Some(set) = g
                        .table
                        .get(&(WatchKind::PersistentRecursive as u8, a.to_string()))
                    {
                        targets.extend(set.iter().copied());
                    }
                    cur = path::parent(a);
                }
            }
            if targets.is_empty() {
                continue;
            }
            let acl = Some(acl_of(*kind, p).unwrap_or(&UNKNOWN_ACL));
            let mut targets: Vec<u64> = targets.into_iter().collect();
            targets.sort_unstable();
            for s in targets {
                if let Some(a) = g.sinks.get(&s) {
                    a.sink.event(zxid, ty, p, acl);
                    self.events_sent
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }

    /// Re-registers watches after a reconnect, firing at once those whose
    /// node changed after `rel_zxid` (ZooKeeper's setWatches).
    pub fn set_watches(&self, tree: &DataTree, session: u64, zxid: i64, w: &Rewatch<'_>) {
        let Rewatch {
            relative_zxid: rel_zxid,
            data,
            exist,
            child,
        } = *w;
        let sink = self
            .inner
            .lock()
            .sinks
            .get(&session)
            .map(|a| a.sink.clone());
        let fire = |ty, p: &str| {
            if let Some(s) = &sink {
                s.event(zxid, ty, p, None);
                self.events_sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        for p in data {
            match tree.node(p) {
                None => fire(WatchEventType::NodeDeleted, p),
                Some(n) if n.stat.mzxid > rel_zxid => fire(WatchEventType::NodeDataChanged, p),
                Some(_) => self.add(session, WatchKind::Data, p),
            }
        }
        for p in exist {
            match tree.node(p) {
                Some(_) => fire(WatchEventType::NodeCreated, p),
                None => self.add(session, WatchKind::Data, p),
            }
        }
        for p in child {
            match tree.node(p) {
                None => fire(WatchEventType::NodeDeleted, p),
                Some(n) if n.stat.pzxid > rel_zxid => fire(WatchEventType::NodeChildrenChanged, p),
                Some(_) => self.add(session, WatchKind::Child, p),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Rec(Mutex<Vec<(WatchEventType, String)>>);
    impl EventSink for Rec {
        fn event(&self, _zxid: i64, kind: WatchEventType, path: &str, _acl: Option<&[Acl]>) {
            self.0.lock().push((kind, path.to_string()));
        }
        fn session_ended(&self, _code: Code) {}
        fn reconnect(&self, _why: &str) {}
    }

    fn setup() -> (WatchManager, Arc<Rec>, Arc<Rec>) {
        let m = WatchManager::new();
        let a = Arc::new(Rec::default());
        let b = Arc::new(Rec::default());
        m.attach(1, 1, a.clone());
        m.attach(2, 2, b.clone());
        (m, a, b)
    }

    #[test]
    fn oneshot_fires_once() {
        let (m, a, _) = setup();
        m.add(1, WatchKind::Data, "/x");
        m.add(1, WatchKind::Data, "/x");
        m.trigger(5, &[(EventKind::DataChanged, "/x".into())], |_, _| None);
        m.trigger(6, &[(EventKind::DataChanged, "/x".into())], |_, _| None);
        assert_eq!(
            *a.0.lock(),
            vec![(WatchEventType::NodeDataChanged, "/x".into())]
        );
        assert_eq!(m.count(), 0);
    }

    #[test]
    fn child_watch_gets_children_changed_and_deleted_only() {
        let (m, a, _) = setup();
        m.add(1, WatchKind::Child, "/p");
        m.trigger(5, &[(EventKind::DataChanged, "/p".into())], |_, _| None);
        assert!(a.0.lock().is_empty());
        m.trigger(6, &[(EventKind::ChildrenChanged, "/p".into())], |_, _| None);
        m.add(1, WatchKind::Child, "/p");
        m.trigger(7, &[(EventKind::Deleted, "/p".into())], |_, _| None);
        assert_eq!(
            *a.0.lock(),
            vec![
                (WatchEventType::NodeChildrenChanged, "/p".into()),
                (WatchEventType::NodeDeleted, "/p".into())
            ]
        );
    }

    #[test]
    fn persistent_and_recursive() {
        let (m, a, b) = setup();
        m.add(1, WatchKind::Persistent, "/p");
        m.add(2, WatchKind::PersistentRecursive, "/p");
        let changes = vec![
            (EventKind::Created, "/p/c".to_string()),
            (EventKind::ChildrenChanged, "/p".to_string()),
            (EventKind::DataChanged, "/p".to_string()),
        ];
        m.trigger(5, &changes, |_, _| None);
        m.trigger(6, &changes, |_, _| None);
        assert_eq!(a.0.lock().len(), 4, "persistent: children + data, twice");
        assert_eq!(
            b.0.lock().len(),
            4,
            "recursive: created + data, twice, no child events"
        );
        assert!(m.has(2, "/p", RemoveKind::Any));
        assert!(!m.has(2, "/p", RemoveKind::Data));
        assert!(m.remove(2, "/p", RemoveKind::Any));
        assert!(!m.remove(2, "/p", RemoveKind::Any));
        assert_eq!(m.count(), 1);
    }

    #[test]
    fn detach_drops_watches_of_that_connection_only() {
        let (m, a, _) = setup();
        m.add(1, WatchKind::Data, "/x");
        m.detach(1, 99);
        assert_eq!(m.count(), 1, "a stale connection id changes nothing");
        m.detach(1, 1);
        assert_eq!(m.count(), 0);
        m.trigger(5, &[(EventKind::DataChanged, "/x".into())], |_, _| None);
        assert!(a.0.lock().is_empty());
    }
}
