//! Local, always-fresh copies of what is in the store (Curator's
//! `NodeCache` and `TreeCache`/`CuratorCache`).
//!
//! - [`NodeCache`] keeps one node's data and stat. It reads the node with a
//!   one-shot watch and, each time the watch fires, reads it again (setting
//!   the next watch with the read), so the copy follows every change; while
//!   the node does not exist it waits on an `exists` watch. One-shot watches
//!   are re-registered by the client after a reconnect relative to the last
//!   zxid it saw, so a change made while disconnected fires at once; after
//!   the session is lost the cache simply reads again.
//! - [`TreeCache`] keeps a whole subtree. It sets one persistent-recursive
//!   watch on the root, then loads the subtree; each event (created, data
//!   changed, deleted — anywhere below) is applied by re-reading that node.
//!   Persistent watches do not replay changes made while disconnected, so
//!   after every reconnect (and with a fresh watch after a lost session)
//!   the cache re-reads the whole subtree and reports the differences.
//!
//! Both report changes in the order they saw them; a change that is undone
//! before the cache reads may be seen only in its final state (watches say
//! *that* something changed, a read says *what* it is now), but the last
//! state is never missed.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use futures::StreamExt;
//! use warden_client::recipes::{NodeCache, TreeCache, TreeEvent};
//!
//! let config = NodeCache::start(&client, "/app/config").await?;
//! if let Some(node) = config.current() {
//!     println!("config v{}: {:?}", node.stat.version, node.data);
//! }
//! let mut changes = config.changes();
//! changes.changed().await.ok();
//!
//! let tree = TreeCache::start(&client, "/app/workers").await?;
//! println!("workers: {:?}", tree.children("/app/workers"));
//! let mut events = tree.events();
//! while let Some(event) = events.next().await {
//!     match event {
//!         TreeEvent::Added(n) => println!("+ {}", n.path),
//!         TreeEvent::Updated(n) => println!("~ {}", n.path),
//!         TreeEvent::Removed(n) => println!("- {}", n.path),
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, watch};

use super::sequence::{self, wait_connected};
use crate::path::{is_under, join, validate_path};
use crate::{
    AddWatchMode, Client, ConnectionState, Error, ErrorCode, EventType, OneshotWatch, Stat,
    WatchStream,
};

/// One cached node: its path, data and stat (Curator's `ChildData`).
///
/// It exists so a cache hands out a consistent triple — the data together
/// with the stat it was read with (for its version, or its czxid as a
/// token) — rather than two reads that may disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeData {
    pub path: String,
    pub data: Vec<u8>,
    pub stat: Stat,
}

// ----- NodeCache ---------------------------------------------------------

/// A local copy of one node, kept up to date in the background.
///
/// It exists for configuration-style reads: code that consults a node often
/// reads memory instead of the server, and code that reacts to the node
/// awaits [`changes`](NodeCache::changes). Dropping it stops the upkeep.
pub struct NodeCache {
    path: String,
    current: watch::Receiver<Option<NodeData>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCache")
            .field("path", &self.path)
            .field("current", &*self.current.borrow())
            .finish()
    }
}

impl NodeCache {
    /// Reads the node at `path` (it need not exist) and keeps the copy up to
    /// date from then on. Returns once the first read is done.
    pub async fn start(client: &Client, path: &str) -> Result<NodeCache, Error> {
        validate_path(path)?;
        let (first, watch) = read_node(client, path).await?;
        let (tx, current) = watch::channel(first);
        let task = tokio::spawn(follow_node(client.clone(), path.to_string(), tx, watch));
        Ok(NodeCache {
            path: path.to_string(),
            current,
            task,
        })
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The node as last read: `None` while it does not exist.
    pub fn current(&self) -> Option<NodeData> {
        self.current.borrow().clone()
    }

    /// A receiver that is told every time the copy changes.
    pub fn changes(&self) -> watch::Receiver<Option<NodeData>> {
        self.current.clone()
    }

    /// Stops the upkeep (the same as dropping the cache).
    pub fn close(self) {}
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the node with a watch: a data watch if it exists, an exists watch
/// (for its creation) if not.
async fn read_node(client: &Client, path: &str) -> Result<(Option<NodeData>, OneshotWatch), Error> {
    loop {
        match client.get_data_w(path).await {
            Ok((data, stat, watch)) => {
                let node = NodeData {
                    path: path.to_string(),
                    data,
                    stat,
                };
                return Ok((Some(node), watch));
            }
            Err(e) if e.code() == ErrorCode::NoNode => match client.exists_w(path).await? {
                (None, watch) => return Ok((None, watch)),
                // Created in between: read it.
                (Some(_), _) => continue,
            },
            Err(e) => return Err(e),
        }
    }
}

async fn follow_node(
    client: Client,
    path: String,
    tx: watch::Sender<Option<NodeData>>,
    mut watch: OneshotWatch,
) {
    let mut states = client.state_changes();
    loop {
        // Fires on a change, or fails when the session is lost; either way,
        // read again.
        let _ = (&mut watch).await;
        let mut failures = 0u32;
        loop {
            match read_node(&client, &path).await {
                Ok((node, next)) => {
                    tx.send_if_modified(|current| {
                        let changed = *current != node;
                        *current = node;
                        changed
                    });
                    watch = next;
                    break;
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(%path, error = %e, "node cache could not read; retrying");
                    if sequence::is_transient(&e) && !wait_connected(&client, &mut states).await {
                        return;
                    }
                    if tx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(20u64 << failures.min(6))
}

// ----- TreeCache ---------------------------------------------------------

/// A change the [`TreeCache`] applied.
///
/// It exists so a watcher of a subtree learns *what* changed (with the node
/// as now cached) without diffing snapshots itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEvent {
    /// A node appeared.
    Added(NodeData),
    /// A node's data or stat changed.
    Updated(NodeData),
    /// A node went away; its last cached state.
    Removed(NodeData),
}

impl TreeEvent {
    /// The path of the node concerned.
    pub fn path(&self) -> &str {
        match self {
            TreeEvent::Added(n) | TreeEvent::Updated(n) | TreeEvent::Removed(n) => &n.path,
        }
    }
}

/// The events of a [`TreeCache`], from the moment
/// [`TreeCache::events`] was called. Ends when the cache is dropped.
#[must_use = "streams do nothing unless polled"]
pub struct TreeEvents {
    rx: mpsc::UnboundedReceiver<TreeEvent>,
}

impl std::fmt::Debug for TreeEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeEvents").finish_non_exhaustive()
    }
}

impl Stream for TreeEvents {
    type Item = TreeEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TreeEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// What the cache and its background task share.
struct TreeShared {
    nodes: RwLock<BTreeMap<String, NodeData>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<TreeEvent>>>,
    /// Bumped after every applied change.
    version: watch::Sender<u64>,
}

impl TreeShared {
    /// Applies one change to the map and tells the subscribers.
    fn apply(&self, event: TreeEvent) {
        {
            let mut nodes = self.nodes.write();
            match &event {
                TreeEvent::Added(n) | TreeEvent::Updated(n) => {
                    nodes.insert(n.path.clone(), n.clone());
                }
                TreeEvent::Removed(n) => {
                    nodes.remove(&n.path);
                }
            }
        }
        self.subscribers
            .lock()
            .retain(|tx| tx.send(event.clone()).is_ok());
        self.version.send_modify(|v| *v += 1);
    }

    /// Puts a freshly read node in (an `Added` or `Updated`, or nothing if
    /// it is unchanged).
    fn upsert(&self, node: NodeData) {
        let event = match self.nodes.read().get(&node.path) {
            None => TreeEvent::Added(node),
            Some(old) if *old != node => TreeEvent::Updated(node),
            Some(_) => return,
        };
        self.apply(event);
    }

    /// Removes a node and everything below it, deepest first.
    fn remove_subtree(&self, path: &str) {
        let gone: Vec<NodeData> = {
            let nodes = self.nodes.read();
            nodes
                .range(path.to_string()..)
                .take_while(|(p, _)| p.starts_with(path))
                .filter(|(p, _)| is_under(p, path))
                .map(|(_, n)| n.clone())
                .collect()
        };
        for node in gone.into_iter().rev() {
            self.apply(TreeEvent::Removed(node));
        }
    }

    /// Makes the cache equal to `fresh`, reporting each difference.
    fn replace_all(&self, fresh: BTreeMap<String, NodeData>) {
        let old: Vec<NodeData> = self.nodes.read().values().cloned().collect();
        for node in old.into_iter().rev() {
            if !fresh.contains_key(&node.path) {
                self.apply(TreeEvent::Removed(node));
            }
        }
        for node in fresh.into_values() {
            self.upsert(node);
        }
    }
}

/// A local copy of a whole subtree, kept up to date in the background.
///
/// It exists for code that needs to see many nodes at once — a directory of
/// workers, a tree of configuration — without a read per node, and to be
/// told of each change. Dropping it stops the upkeep (the persistent watch
/// stays on the server until the session ends).
pub struct TreeCache {
    root: String,
    shared: Arc<TreeShared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TreeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeCache")
            .field("root", &self.root)
            .field("nodes", &self.shared.nodes.read().len())
            .finish()
    }
}

impl TreeCache {
    /// Watches and loads the subtree at `root` (which need not exist yet).
    /// Returns once the first load is done; changes from then on are
    /// reported by [`events`](Self::events).
    pub async fn start(client: &Client, root: &str) -> Result<TreeCache, Error> {
        validate_path(root)?;
        let states = client.state_changes();
        let session = client.session_id();
        let stream = client
            .add_watch(root, AddWatchMode::PersistentRecursive)
            .await?;
        let loaded = load_tree(client, root).await?;
        let (version, _) = watch::channel(0);
        let shared = Arc::new(TreeShared {
            nodes: RwLock::new(loaded),
            subscribers: Mutex::new(Vec::new()),
            version,
        });
        let follower = TreeFollower {
            client: client.clone(),
            root: root.to_string(),
            shared: shared.clone(),
            states,
            session,
        };
        let task = tokio::spawn(follower.run(stream));
        Ok(TreeCache {
            root: root.to_string(),
            shared,
            task,
        })
    }

    /// The root of the cached subtree.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The cached node at `path`, if any.
    pub fn get(&self, path: &str) -> Option<NodeData> {
        self.shared.nodes.read().get(path).cloned()
    }

    /// The names of the cached children of `path`, sorted; `None` if `path`
    /// itself is not cached.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        let nodes = self.shared.nodes.read();
        if !nodes.contains_key(path) {
            return None;
        }
        Some(children_in(&nodes, path))
    }

    /// Every cached node, by path.
    pub fn snapshot(&self) -> BTreeMap<String, NodeData> {
        self.shared.nodes.read().clone()
    }

    /// How many nodes are cached (the root included, if it exists).
    pub fn len(&self) -> usize {
        self.shared.nodes.read().len()
    }

    /// True when nothing is cached (the root does not exist).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The changes applied from now on, in order.
    pub fn events(&self) -> TreeEvents {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.subscribers.lock().push(tx);
        TreeEvents { rx }
    }

    /// A receiver whose value is bumped after every change: a cheap way to
    /// wait for "something changed", then look with [`get`](Self::get) or
    /// [`snapshot`](Self::snapshot).
    pub fn versions(&self) -> watch::Receiver<u64> {
        self.shared.version.subscribe()
    }

    /// Stops the upkeep (the same as dropping the cache).
    pub fn close(self) {}
}

impl Drop for TreeCache {
    fn drop(&mut self) {
        self.task.abort();
        // End every event stream.
        self.shared.subscribers.lock().clear();
    }
}

/// The names of `path`'s children among `nodes`.
fn children_in(nodes: &BTreeMap<String, NodeData>, path: &str) -> Vec<String> {
    let prefix = join(path, "");
    nodes
        .range(prefix.clone()..)
        .take_while(|(p, _)| p.starts_with(&prefix))
        .map(|(p, _)| &p[prefix.len()..])
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        .map(str::to_string)
        .collect()
}

/// Reads the whole subtree at `root`, level by level (each level's reads
/// pipelined). A node deleted while loading is simply left out.
async fn load_tree(client: &Client, root: &str) -> Result<BTreeMap<String, NodeData>, Error> {
    let mut nodes = BTreeMap::new();
    let mut level = vec![root.to_string()];
    while !level.is_empty() {
        let reads = level.iter().map(|path| async move {
            let (data, stat) = match client.get_data(path).await {
                Ok(found) => found,
                Err(e) if e.code() == ErrorCode::NoNode => return Ok(None),
                Err(e) => return Err(e),
            };
            let children = if stat.num_children > 0 {
                match client.get_children(path).await {
                    Ok(c) => c,
                    Err(e) if e.code() == ErrorCode::NoNode => return Ok(None),
                    Err(e) => return Err(e),
                }
            } else {
                Vec::new()
            };
            let node = NodeData {
                path: path.clone(),
                data,
                stat,
            };
            Ok(Some((node, children)))
        });
        let mut next = Vec::new();
        for read in futures::future::join_all(reads).await {
            if let Some((node, children)) = read? {
                next.extend(children.iter().map(|c| join(&node.path, c)));
                nodes.insert(node.path.clone(), node);
            }
        }
        level = next;
    }
    Ok(nodes)
}

/// The tree cache's background task.
struct TreeFollower {
    client: Client,
    root: String,
    shared: Arc<TreeShared>,
    states: crate::StateStream,
    /// The session the current watch belongs to.
    session: u64,
}

impl TreeFollower {
    async fn run(mut self, mut stream: WatchStream) {
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    Some(event) => {
                        if let Err(e) = self.on_event(event.event_type, &event.path).await {
                            tracing::debug!(root = %self.root, error = %e, "tree cache missed a read; re-reading the subtree");
                            if !self.rebuild().await {
                                return;
                            }
                        }
                    }
                    // The watch ended: the session was lost (or someone
                    // removed our watches). Watch again and re-read.
                    None => match self.rewatch().await {
                        Some(s) => stream = s,
                        None => return,
                    },
                },
                state = self.states.next() => match state {
                    Some(ConnectionState::Reconnected) | Some(ConnectionState::Connected) => {
                        if self.client.session_id() == self.session {
                            // Changes made while disconnected were not replayed.
                            if !self.rebuild().await {
                                return;
                            }
                        } else {
                            match self.rewatch().await {
                                Some(s) => stream = s,
                                None => return,
                            }
                        }
                    }
                    Some(ConnectionState::Closed) | None => return,
                    Some(_) => {}
                },
            }
        }
    }

    /// Applies one watch event by reading the node now.
    async fn on_event(&mut self, kind: EventType, path: &str) -> Result<(), Error> {
        if !is_under(path, &self.root) {
            return Ok(());
        }
        match kind {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                match self.client.get_data(path).await {
                    Ok((data, stat)) => self.shared.upsert(NodeData {
                        path: path.to_string(),
                        data,
                        stat,
                    }),
                    // Gone already; its delete event may follow.
                    Err(e) if e.code() == ErrorCode::NoNode => self.shared.remove_subtree(path),
                    Err(e) => return Err(e),
                }
            }
            EventType::NodeDeleted => self.shared.remove_subtree(path),
            _ => {}
        }
        Ok(())
    }

    /// Re-reads the whole subtree and reports the differences. False if the
    /// client is closed.
    async fn rebuild(&mut self) -> bool {
        let mut failures = 0u32;
        loop {
            match load_tree(&self.client, &self.root).await {
                Ok(fresh) => {
                    self.shared.replace_all(fresh);
                    return true;
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(root = %self.root, error = %e, "tree cache could not re-read; retrying");
                    if sequence::is_transient(&e)
                        && !wait_connected(&self.client, &mut self.states).await
                    {
                        return false;
                    }
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }

    /// Sets the recursive watch again (under the current session) and
    /// re-reads. `None` if the client is closed.
    async fn rewatch(&mut self) -> Option<WatchStream> {
        let mut failures = 0u32;
        loop {
            if !wait_connected(&self.client, &mut self.states).await {
                return None;
            }
            let session = self.client.session_id();
            match self
                .client
                .add_watch(&self.root, AddWatchMode::PersistentRecursive)
                .await
            {
                Ok(stream) => {
                    self.session = session;
                    if !self.rebuild().await {
                        return None;
                    }
                    return Some(stream);
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(root = %self.root, error = %e, "tree cache could not watch; retrying");
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, data: &str, version: i32) -> NodeData {
        NodeData {
            path: path.to_string(),
            data: data.as_bytes().to_vec(),
            stat: Stat {
                version,
                ..Stat::default()
            },
        }
    }

    fn shared() -> TreeShared {
        TreeShared {
            nodes: RwLock::new(BTreeMap::new()),
            subscribers: Mutex::new(Vec::new()),
            version: watch::channel(0).0,
        }
    }

    #[test]
    fn children_are_direct_and_sorted() {
        let mut nodes = BTreeMap::new();
        for p in ["/a", "/a/x", "/a/x/deep", "/a/b", "/a-b", "/a/c"] {
            nodes.insert(p.to_string(), node(p, "", 0));
        }
        assert_eq!(children_in(&nodes, "/a"), vec!["b", "c", "x"]);
        assert_eq!(children_in(&nodes, "/a/x"), vec!["deep"]);
        assert_eq!(children_in(&nodes, "/"), vec!["a", "a-b"]);
        assert!(children_in(&nodes, "/a/c").is_empty());
    }

    #[test]
    fn upserts_and_removals_report_events() {
        let s = shared();
        let (tx, mut rx) = mpsc::unbounded_channel();
        s.subscribers.lock().push(tx);
        s.upsert(node("/r", "", 0));
        s.upsert(node("/r/a", "1", 0));
        s.upsert(node("/r/a", "1", 0)); // unchanged: nothing
        s.upsert(node("/r/a", "2", 1));
        s.upsert(node("/r/a/b", "", 0));
        s.upsert(node("/r/ab", "", 0));
        s.remove_subtree("/r/a");
        let mut seen = Vec::new();
        while let Ok(e) = rx.try_recv() {
            seen.push(match e {
                TreeEvent::Added(n) => format!("+{}", n.path),
                TreeEvent::Updated(n) => format!("~{}", n.path),
                TreeEvent::Removed(n) => format!("-{}", n.path),
            });
        }
        assert_eq!(
            seen,
            vec!["+/r", "+/r/a", "~/r/a", "+/r/a/b", "+/r/ab", "-/r/a/b", "-/r/a"]
        );
        let left: Vec<String> = s.nodes.read().keys().cloned().collect();
        assert_eq!(left, vec!["/r", "/r/ab"]);
    }

    #[test]
    fn replace_all_reports_the_differences() {
        let s = shared();
        s.upsert(node("/r", "", 0));
        s.upsert(node("/r/keep", "k", 0));
        s.upsert(node("/r/gone", "g", 0));
        s.upsert(node("/r/changed", "1", 0));
        let (tx, mut rx) = mpsc::unbounded_channel();
        s.subscribers.lock().push(tx);
        let mut fresh = BTreeMap::new();
        for n in [
            node("/r", "", 0),
            node("/r/keep", "k", 0),
            node("/r/changed", "2", 1),
            node("/r/new", "n", 0),
        ] {
            fresh.insert(n.path.clone(), n);
        }
        s.replace_all(fresh);
        let mut seen = Vec::new();
        while let Ok(e) = rx.try_recv() {
            seen.push(e);
        }
        assert_eq!(
            seen,
            vec![
                TreeEvent::Removed(node("/r/gone", "g", 0)),
                TreeEvent::Updated(node("/r/changed", "2", 1)),
                TreeEvent::Added(node("/r/new", "n", 0)),
            ]
        );
        assert_eq!(*s.version.borrow(), 7);
    }
}
