//! Dividing a fixed set of items among the live members of a group
//! (kazoo's `SetPartitioner`).
//!
//! Every member joins a *party* — a protected ephemeral-sequential node
//! `<path>/party/_c_<id>-<member id>-<seq>` — and all members use the same
//! item list. Each member sorts the party (by member id, then sequence) and
//! takes the items whose index in the sorted item list is `i mod n`, where
//! `i` is its own place and `n` the party's size: for 10 items and 3
//! members that is 4/3/3. Ownership of an item is **a lock**
//! ([`Lock`] at `<path>/locks/<item>`), so two members never own one item
//! at the same time, even while their views of the party differ.
//!
//! A member's [`PartitionState`]:
//!
//! ```text
//!            join party, compute share, take the locks
//! Allocating ───────────────────────────────────────────► Acquired
//!     ▲                                                      │ the party changed,
//!     │   release the locks no longer ours, compute again    │ a lock was lost, or
//!     └──────────────────────── Release ◄────────────────────┘ the connection dropped
//!  any state ── session lost ──► Failure ── new session ──► Allocating
//! ```
//!
//! [`owned`](SetPartitioner::owned) is non-empty only while `Acquired`, and
//! it is emptied *before* any lock is released; a member reports
//! `Acquired` only once it holds every lock of its share. Locks of items
//! that stay in a member's share are kept across re-allocations. While the
//! connection is down a member owns nothing (it cannot be sure of its
//! locks); when the session is lost it reports `Failure`, and joins again
//! by itself once the client has a new session.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::{PartitionState, SetPartitioner};
//! let queues: Vec<String> = (0..10).map(|i| format!("queue-{i}")).collect();
//! let partitioner = SetPartitioner::new(&client, "/partitions/queues", queues, "worker-1")?;
//! let mine = partitioner.wait_for_acquired().await?;
//! println!("working on {mine:?}");
//! let mut states = partitioner.states();
//! states.wait_for(|s| *s != PartitionState::Acquired).await.ok();
//! // Stop working on `mine` now: the set is being re-divided.
//! partitioner.close().await;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::lock::{Lock, LockGuard, LockState};
use super::sequence::{self, name_of};
use crate::path::validate_path;
use crate::{Client, ConnectionState, Error, ErrorCode};

const PARTY: &str = "party";
const LOCKS: &str = "locks";

/// Where a member of a [`SetPartitioner`] stands (kazoo's states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionState {
    /// Working out its share and taking the locks; owns nothing yet.
    Allocating,
    /// Holds the lock of every item of its share: work on them.
    Acquired,
    /// The party changed, a lock was lost or the connection dropped: stop
    /// working on the items; the member re-allocates by itself.
    Release,
    /// The session was lost (with its locks). The member joins again once
    /// the client has a new session; if the client was closed, this is
    /// final.
    Failure,
}

/// One item a member owns, with the fencing token of its lock.
///
/// It exists so work on an item can be fenced: the token (the lock node's
/// czxid) strictly increases from one owner of the item to the next, so a
/// resource can refuse a write carrying an older token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnedItem {
    pub item: String,
    pub fencing_token: i64,
}

/// A member's state and what it owns, published together.
///
/// It exists so observers read the state and the items from one snapshot:
/// `items` is non-empty only while `state` is `Acquired`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub state: PartitionState,
    pub items: Vec<OwnedItem>,
}

impl Assignment {
    fn new(state: PartitionState) -> Assignment {
        Assignment {
            state,
            items: Vec::new(),
        }
    }

    /// The owned items' names.
    pub fn item_names(&self) -> Vec<String> {
        self.items.iter().map(|o| o.item.clone()).collect()
    }
}

/// A member of a group that divides a fixed set of items among its live
/// members, each item owned by exactly one member at a time.
///
/// It exists for sharded work — queues, tenants, job shards — where every
/// item needs exactly one worker, and the split must follow workers coming
/// and going without two of them ever working on the same item. Dropping
/// it leaves the group in the background; [`close`](Self::close) leaves
/// and waits.
pub struct SetPartitioner {
    id: String,
    items: Vec<String>,
    assignment: watch::Receiver<Assignment>,
    states: watch::Receiver<PartitionState>,
    close: mpsc::UnboundedSender<()>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for SetPartitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPartitioner")
            .field("id", &self.id)
            .field("assignment", &*self.assignment.borrow())
            .finish_non_exhaustive()
    }
}

impl SetPartitioner {
    /// Joins the group at `path` as `id` to share `items` (every member
    /// must pass the same items; they are sorted and de-duplicated). Returns
    /// at once, in `Allocating`; the work happens in the background.
    ///
    /// Fails with `BadArguments` for an invalid path, an `id` or item that
    /// is not a single path segment, or when called outside a Tokio runtime.
    pub fn new(
        client: &Client,
        path: &str,
        items: Vec<String>,
        id: &str,
    ) -> Result<SetPartitioner, Error> {
        let path = path.trim_end_matches('/');
        validate_path(path)?;
        if path.is_empty() || path == "/" {
            return Err(Error::bad_arguments("the partitioner needs a path below /"));
        }
        check_segment("member id", id)?;
        let mut items = items;
        items.sort();
        items.dedup();
        for item in &items {
            check_segment("item", item)?;
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::bad_arguments("SetPartitioner::new needs a Tokio runtime"))?;
        let (assignment_tx, assignment) =
            watch::channel(Assignment::new(PartitionState::Allocating));
        let (states_tx, states) = watch::channel(PartitionState::Allocating);
        let (close, close_rx) = mpsc::unbounded_channel();
        let member = Member {
            client: client.clone(),
            party: format!("{path}/{PARTY}"),
            locks: format!("{path}/{LOCKS}"),
            items: items.clone(),
            id: id.to_string(),
            assignment: assignment_tx,
            states_tx,
            conn: client.state_changes(),
            close: close_rx,
            node: None,
            session: client.session_id(),
            held: BTreeMap::new(),
            leftovers: BTreeSet::new(),
            failures: 0,
        };
        let task = runtime.spawn(member.run());
        Ok(SetPartitioner {
            id: id.to_string(),
            items,
            assignment,
            states,
            close,
            task: Some(task),
        })
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The whole item set (sorted).
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// The current state.
    pub fn state(&self) -> PartitionState {
        *self.states.borrow()
    }

    /// A receiver of state changes.
    pub fn states(&self) -> watch::Receiver<PartitionState> {
        self.states.clone()
    }

    /// The current state and owned items, as one snapshot.
    pub fn assignment(&self) -> Assignment {
        self.assignment.borrow().clone()
    }

    /// A receiver of [`Assignment`] changes.
    pub fn assignments(&self) -> watch::Receiver<Assignment> {
        self.assignment.clone()
    }

    /// The items this member owns: empty unless `Acquired`.
    pub fn owned(&self) -> Vec<String> {
        self.assignment.borrow().item_names()
    }

    /// Waits until the member is `Acquired`; returns its items. Fails when
    /// the partitioner has stopped (closed, or its client closed).
    pub async fn wait_for_acquired(&self) -> Result<Vec<String>, Error> {
        let mut rx = self.assignment.clone();
        let acquired = rx
            .wait_for(|a| a.state == PartitionState::Acquired)
            .await
            .map(|a| a.item_names());
        acquired.map_err(|_| Error::new(ErrorCode::SessionExpired, "the partitioner has stopped"))
    }

    /// Leaves the group: releases every lock, removes the member node, and
    /// waits for that to be done. The other members then re-divide.
    pub async fn close(mut self) {
        let _ = self.close.send(());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SetPartitioner {
    fn drop(&mut self) {
        let _ = self.close.send(());
    }
}

/// Checks that `name` can be one node name.
fn check_segment(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('/') {
        return Err(Error::bad_arguments(format!(
            "the {what} {name:?} must be a non-empty node name without /"
        )));
    }
    validate_path(&format!("/{name}"))
        .map_err(|e| Error::bad_arguments(format!("the {what} {name:?}: {}", e.message())))
}

/// The member id and sequence number of a party node named
/// `[_c_<32 hex>-]<id>-<10 digits>`.
fn parse_member(name: &str) -> Option<(String, i64)> {
    if name.len() < 12 {
        return None;
    }
    let (body, digits) = name.split_at(name.len() - 10);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = digits.parse().ok()?;
    let body = body.strip_suffix('-')?;
    let id = match body.strip_prefix("_c_") {
        Some(rest) if rest.len() > 33 && rest.as_bytes()[32] == b'-' => &rest[33..],
        _ => body,
    };
    if id.is_empty() {
        return None;
    }
    Some((id.to_string(), seq))
}

/// The party's node names in member order: by member id, then sequence.
fn sorted_members(children: Vec<String>) -> Vec<String> {
    let mut members: Vec<((String, i64), String)> = children
        .into_iter()
        .filter_map(|n| parse_member(&n).map(|key| (key, n)))
        .collect();
    members.sort();
    members.into_iter().map(|(_, n)| n).collect()
}

/// The items of member `index` of `members`: those whose index in `items`
/// is `index` modulo `members`.
fn share_of(items: &[String], index: usize, members: usize) -> Vec<String> {
    if members == 0 {
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .filter(|(i, _)| i % members == index)
        .map(|(_, item)| item.clone())
        .collect()
}

/// What a step of the member's task ended with.
enum Flow {
    Again,
    Stop,
}

/// The background task of one member.
struct Member {
    client: Client,
    party: String,
    locks: String,
    items: Vec<String>,
    id: String,
    assignment: watch::Sender<Assignment>,
    states_tx: watch::Sender<PartitionState>,
    conn: crate::StateStream,
    close: mpsc::UnboundedReceiver<()>,
    /// Our party node's full path, once joined.
    node: Option<String>,
    /// The session `node` and `held` belong to.
    session: u64,
    /// The locks we hold, by item.
    held: BTreeMap<String, LockGuard>,
    /// Items whose lock acquisition was given up midway: their queues may
    /// hold a node of ours that no guard owns.
    leftovers: BTreeSet<String>,
    failures: u32,
}

impl Member {
    async fn run(mut self) {
        while let Flow::Again = self.step().await {}
        self.leave().await;
    }

    /// Publishes a state; items are kept only for `Acquired`. The
    /// assignment goes first, so `owned()` empties before anything else.
    fn publish(&self, state: PartitionState, items: Vec<OwnedItem>) {
        let items = if state == PartitionState::Acquired {
            items
        } else {
            Vec::new()
        };
        let next = Assignment { state, items };
        self.assignment.send_if_modified(|a| {
            let changed = *a != next;
            *a = next;
            changed
        });
        self.states_tx.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    fn state(&self) -> PartitionState {
        *self.states_tx.borrow()
    }

    /// One pass: be connected, be in the party, take our share, wait for a
    /// change.
    async fn step(&mut self) -> Flow {
        // Be connected; own nothing meanwhile (Failure once the session is lost).
        loop {
            match self.client.state() {
                ConnectionState::Connected | ConnectionState::Reconnected => break,
                ConnectionState::Closed => {
                    self.publish(PartitionState::Failure, Vec::new());
                    return Flow::Stop;
                }
                ConnectionState::Lost => {
                    self.publish(PartitionState::Failure, Vec::new());
                    self.forget_session();
                }
                ConnectionState::Suspended => {
                    if self.state() != PartitionState::Failure {
                        self.publish(PartitionState::Release, Vec::new());
                    }
                }
            }
            tokio::select! {
                change = self.conn.next() => {
                    if change.is_none() {
                        self.publish(PartitionState::Failure, Vec::new());
                        return Flow::Stop;
                    }
                }
                _ = self.close.recv() => return Flow::Stop,
            }
        }
        if self.client.session_id() != self.session {
            // A new session: our member node and locks died with the old one.
            self.publish(PartitionState::Failure, Vec::new());
            self.forget_session();
            self.session = self.client.session_id();
        }
        if self.state() != PartitionState::Acquired {
            self.publish(PartitionState::Allocating, Vec::new());
        }

        // Be in the party.
        let node = match &self.node {
            Some(node) => node.clone(),
            None => match sequence::join(
                &self.client,
                &self.party,
                &format!("{}-", self.id),
                self.id.as_bytes(),
            )
            .await
            {
                Ok((path, stat)) if stat.ephemeral_owner == self.session => {
                    tracing::debug!(member = %self.id, %path, "joined the party");
                    self.node = Some(path.clone());
                    path
                }
                Ok((path, _)) => {
                    // Made under a session that is already gone.
                    sequence::delete_in_background(&self.client, path);
                    return Flow::Again;
                }
                Err(e) => return self.trouble(e).await,
            },
        };

        // Who is in it, and so which items are ours.
        let (children, party_watch) = match self.client.get_children_w(&self.party).await {
            Ok(listed) => listed,
            Err(e) => return self.trouble(e).await,
        };
        let members = sorted_members(children);
        let Some(index) = members.iter().position(|m| m == name_of(&node)) else {
            // Our member node is gone (deleted, or the session is ending).
            tracing::debug!(member = %self.id, "our party node is gone; joining again");
            self.publish(PartitionState::Release, Vec::new());
            self.node = None;
            self.release_all().await;
            return Flow::Again;
        };
        let share = share_of(&self.items, index, members.len());
        let keep_acquired = self.state() == PartitionState::Acquired
            && self.held.keys().eq(share.iter())
            && self.held.values().all(|g| g.state() == LockState::Held);
        if !keep_acquired {
            self.publish(PartitionState::Allocating, Vec::new());
        }

        // Give back what is no longer ours; drop locks that were lost.
        let stale: Vec<String> = self
            .held
            .iter()
            .filter(|(item, guard)| !share.contains(item) || guard.state() == LockState::Lost)
            .map(|(item, _)| item.clone())
            .collect();
        for item in stale {
            if let Some(mut guard) = self.held.remove(&item) {
                if let Err(e) = guard.release().await {
                    tracing::debug!(%item, error = %e, "could not release a lock now; it goes in the background");
                }
            }
        }

        // A lock acquisition given up while its create was in flight may
        // have left a node of ours in that lock's queue, which would block
        // everyone (us included): remove such leftovers first.
        if let Err(e) = self.clear_leftovers().await {
            return self.trouble(e).await;
        }

        // Take what is ours and not yet held, all at once.
        let mut in_flight: BTreeSet<String> = share
            .iter()
            .filter(|item| !self.held.contains_key(*item))
            .cloned()
            .collect();
        let mut acquiring: FuturesUnordered<_> = in_flight
            .iter()
            .map(|item| {
                let lock = Lock::new(&self.client, &format!("{}/{item}", self.locks))
                    .with_data(self.id.clone());
                let item = item.clone();
                async move { (item, lock.acquire().await) }
            })
            .collect();
        let mut party_watch = party_watch;
        let mut interrupted = None;
        while !acquiring.is_empty() {
            tokio::select! {
                Some((item, acquired)) = acquiring.next() => {
                    in_flight.remove(&item);
                    match acquired {
                        Ok(guard) => {
                            self.held.insert(item, guard);
                        }
                        Err(e) => {
                            interrupted = Some(Err(e));
                            break;
                        }
                    }
                },
                // The party changed while we waited: start over (locks still
                // being waited for are given up).
                _ = &mut party_watch => {
                    interrupted = Some(Ok(Flow::Again));
                    break;
                }
                state = self.conn.next() => {
                    interrupted = Some(Ok(match state {
                        Some(ConnectionState::Closed) | None => Flow::Stop,
                        _ => Flow::Again,
                    }));
                    break;
                }
                _ = self.close.recv() => {
                    interrupted = Some(Ok(Flow::Stop));
                    break;
                }
            }
        }
        if let Some(outcome) = interrupted {
            drop(acquiring);
            self.leftovers.extend(in_flight);
            return match outcome {
                Ok(flow) => flow,
                Err(e) => self.trouble(e).await,
            };
        }
        drop(acquiring);

        // Locks kept across a reconnect may still be confirming themselves.
        tokio::select! {
            _ = settled(&self.held) => {}
            _ = &mut party_watch => return Flow::Again,
            _ = self.close.recv() => return Flow::Stop,
        }
        if self.held.values().any(|g| g.state() != LockState::Held) {
            return Flow::Again;
        }

        let owned: Vec<OwnedItem> = share
            .iter()
            .filter_map(|item| {
                self.held.get(item).map(|g| OwnedItem {
                    item: item.clone(),
                    fencing_token: g.fencing_token(),
                })
            })
            .collect();
        if owned.len() != share.len() {
            return Flow::Again;
        }
        if self.state() != PartitionState::Acquired {
            tracing::info!(member = %self.id, items = ?share, "acquired its share");
        }
        self.publish(PartitionState::Acquired, owned);
        self.failures = 0;

        // Hold until something changes.
        tokio::select! {
            _ = party_watch => {
                self.publish(PartitionState::Release, Vec::new());
                Flow::Again
            }
            _ = any_lost(&self.held) => {
                tracing::info!(member = %self.id, "a lock was lost; re-allocating");
                self.publish(PartitionState::Release, Vec::new());
                Flow::Again
            }
            state = self.conn.next() => match state {
                Some(ConnectionState::Suspended) | Some(ConnectionState::Lost) => {
                    self.publish(PartitionState::Release, Vec::new());
                    Flow::Again
                }
                Some(ConnectionState::Closed) | None => Flow::Stop,
                // Connected again (a late notice): check everything again.
                Some(_) => Flow::Again,
            },
            _ = self.close.recv() => Flow::Stop,
        }
    }

    /// After an error: wait for the connection if that is what is missing,
    /// else back off a little.
    async fn trouble(&mut self, e: Error) -> Flow {
        self.failures += 1;
        tracing::debug!(member = %self.id, error = %e, "partitioner step failed; trying again");
        if self.state() == PartitionState::Acquired {
            self.publish(PartitionState::Release, Vec::new());
        }
        let pause = Duration::from_millis(50u64 << self.failures.min(5));
        tokio::select! {
            _ = tokio::time::sleep(pause) => Flow::Again,
            _ = self.close.recv() => Flow::Stop,
        }
    }

    /// The session is gone: so are our member node and locks.
    fn forget_session(&mut self) {
        self.node = None;
        self.leftovers.clear();
        // Their nodes died with the session; dropping the guards only tidies up.
        self.held.clear();
    }

    /// Deletes this session's nodes that no guard owns from the queues of
    /// the locks in `leftovers`. Requests of one session are applied in
    /// order, so a create sent before this listing is seen by it.
    async fn clear_leftovers(&mut self) -> Result<(), Error> {
        while let Some(item) = self.leftovers.first().cloned() {
            let dir = format!("{}/{item}", self.locks);
            let nodes = match self.client.get_children(&dir).await {
                Ok(nodes) => nodes,
                Err(e) if e.code() == ErrorCode::NoNode => Vec::new(),
                Err(e) => return Err(e),
            };
            let ours: Vec<&str> = self.held.values().map(|g| name_of(g.path())).collect();
            for node in nodes.iter().filter(|n| !ours.contains(&n.as_str())) {
                let path = format!("{dir}/{node}");
                match self.client.exists(&path).await {
                    Ok(Some(stat)) if stat.ephemeral_owner == self.session => {
                        tracing::debug!(%path, "removing a leftover lock node");
                        match self.client.delete(&path, None).await {
                            Ok(()) => {}
                            Err(e) if e.code() == ErrorCode::NoNode => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            self.leftovers.remove(&item);
        }
        Ok(())
    }

    async fn release_all(&mut self) {
        let held = std::mem::take(&mut self.held);
        for (item, mut guard) in held {
            if let Err(e) = guard.release().await {
                tracing::debug!(%item, error = %e, "could not release a lock now; it goes in the background");
            }
        }
    }

    /// Leaves the group: own nothing, release the locks, leave the party.
    async fn leave(&mut self) {
        if self.state() == PartitionState::Acquired || self.state() == PartitionState::Allocating {
            self.publish(PartitionState::Release, Vec::new());
        }
        if self.client.session_id() == self.session && self.client.state().is_connected() {
            self.release_all().await;
            let _ = self.clear_leftovers().await;
            if let Some(node) = self.node.take() {
                match self.client.delete(&node, None).await {
                    Ok(()) => {}
                    Err(e) if e.code() == ErrorCode::NoNode || e.is_session_expired() => {}
                    Err(_) => sequence::delete_in_background(&self.client, node),
                }
            }
        } else {
            // Guards delete their nodes in the background when dropped.
            self.held.clear();
            if let Some(node) = self.node.take() {
                sequence::delete_in_background(&self.client, node);
            }
        }
    }
}

/// Resolves once no lock is `Suspended` any more (each is `Held` or `Lost`).
async fn settled(held: &BTreeMap<String, LockGuard>) {
    let waits = held.values().map(|guard| {
        let mut states = guard.states();
        async move {
            let _ = states.wait_for(|s| *s != LockState::Suspended).await;
        }
    });
    futures::future::join_all(waits).await;
}

/// Resolves once any of the locks is lost (never, for none).
async fn any_lost(held: &BTreeMap<String, LockGuard>) {
    if held.is_empty() {
        return futures::future::pending().await;
    }
    let lost = held.values().map(|guard| Box::pin(guard.lost()));
    let _ = futures::future::select_all(lost).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("item-{i:02}")).collect()
    }

    #[test]
    fn ten_items_split_4_3_3_then_3_3_2_2() {
        let all = items(10);
        let counts: Vec<usize> = (0..3).map(|i| share_of(&all, i, 3).len()).collect();
        assert_eq!(counts, vec![4, 3, 3]);
        let counts: Vec<usize> = (0..4).map(|i| share_of(&all, i, 4).len()).collect();
        assert_eq!(counts, vec![3, 3, 2, 2]);
        assert_eq!(share_of(&all, 1, 3), vec!["item-01", "item-04", "item-07"]);
        // Every item exactly once.
        let mut union: Vec<String> = (0..3).flat_map(|i| share_of(&all, i, 3)).collect();
        union.sort();
        assert_eq!(union, all);
        assert!(share_of(&all, 0, 0).is_empty());
        assert!(share_of(&items(2), 2, 3).is_empty());
    }

    #[test]
    fn member_names_parse_with_and_without_protection() {
        assert_eq!(
            parse_member("_c_0123456789abcdef0123456789abcdef-worker-1-0000000007"),
            Some(("worker-1".to_string(), 7))
        );
        assert_eq!(parse_member("w2-0000000003"), Some(("w2".to_string(), 3)));
        assert_eq!(parse_member("-0000000003"), None);
        assert_eq!(parse_member("w2-000003"), None);
        assert_eq!(parse_member("w2"), None);
    }

    #[test]
    fn members_sort_by_id_then_sequence() {
        let names = vec![
            "_c_ffffffffffffffffffffffffffffffff-b-0000000001".to_string(),
            "_c_00000000000000000000000000000000-a-0000000009".to_string(),
            "_c_11111111111111111111111111111111-a-0000000002".to_string(),
            "junk".to_string(),
        ];
        assert_eq!(
            sorted_members(names),
            vec![
                "_c_11111111111111111111111111111111-a-0000000002".to_string(),
                "_c_00000000000000000000000000000000-a-0000000009".to_string(),
                "_c_ffffffffffffffffffffffffffffffff-b-0000000001".to_string(),
            ]
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(check_segment("item", "queue-1").is_ok());
        for bad in ["", "a/b", ".", ".."] {
            assert_eq!(
                check_segment("item", bad).unwrap_err().code(),
                ErrorCode::BadArguments
            );
        }
    }
}
