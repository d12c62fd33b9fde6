//! A distributed FIFO work queue with reliable consumption (Curator's
//! `DistributedQueue` used with a lock path — its "lock-safe" mode).
//!
//! Producers add items as persistent-sequential nodes `<path>/qn-<seq>`
//! (protected creates, so a producer that loses a connection mid-`put`
//! neither loses nor duplicates its item). Consumers take items in
//! sequence order, and an item is removed only **after** it was processed:
//!
//! 1. *claim*: create the ephemeral node `<path>/claims/<item name>`;
//!    `NodeExists` means another consumer has it — skip to the next item;
//! 2. *process* the item's data;
//! 3. *acknowledge*: delete the item and the claim in one `multi`.
//!
//! A consumer that dies mid-processing leaves only its claim behind, and the
//! claim is ephemeral: once the consumer's session expires it vanishes and
//! the item is taken again by someone else. Delivery is therefore
//! *at least once*, and removal exactly once. A consumer with nothing to
//! claim waits on child watches of the queue and of the claims (no polling).
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::DistributedQueue;
//! let queue = DistributedQueue::new(&client, "/jobs/emails");
//! queue.put("to:ada@example.com").await?;
//!
//! // Handle one item; it is deleted only once the closure has finished.
//! let sent = queue
//!     .take_with(|data| async move { data.len() })
//!     .await?;
//!
//! // Or hold the item and decide: `ack` deletes it, `release` (or a drop)
//! // hands it back for someone else.
//! let item = queue.take().await?;
//! println!("{} bytes from {}", item.data().len(), item.name());
//! item.ack().await?;
//! # let _ = sent;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use super::sequence::{self, ensure_containers, name_of, sequence_of};
use crate::{Client, CreateMode, Error, ErrorCode, MultiError, Op};

/// What every item's name contains (after the protection prefix).
const ITEM_MARKER: &str = "qn-";
/// The child of the queue that holds the claims.
const CLAIMS: &str = "claims";

/// A FIFO queue of byte items under one path, shared by any number of
/// producers and consumers.
///
/// It exists so work handed from one process to another survives the
/// consumer crashing halfway: an item stays in the queue, claimed, until the
/// consumer acknowledges it, and a dead consumer's claim dies with its
/// session. Cheap to clone; every clone works on the same queue.
#[derive(Clone)]
pub struct DistributedQueue {
    client: Client,
    path: String,
    claims: String,
}

impl std::fmt::Debug for DistributedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedQueue")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The outcome of trying to claim one item.
enum Claim {
    Ours(QueueItem),
    /// Another consumer holds it.
    Taken,
    /// It was consumed between the listing and the claim.
    Gone,
}

impl DistributedQueue {
    /// A queue at `path` (created, as a container, by the first `put`).
    pub fn new(client: &Client, path: &str) -> DistributedQueue {
        let path = path.trim_end_matches('/').to_string();
        let claims = format!("{path}/{CLAIMS}");
        DistributedQueue {
            client: client.clone(),
            path,
            claims,
        }
    }

    /// The queue's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Adds an item at the back of the queue and returns its path.
    ///
    /// The create is protected (its name carries a random id), so it can be
    /// retried after a `ConnectionLoss` without adding the item twice.
    pub async fn put(&self, data: impl Into<Vec<u8>>) -> Result<String, Error> {
        let data = data.into();
        let prefix = format!("{}/{ITEM_MARKER}", self.path);
        for _ in 0..10 {
            match self
                .client
                .create_protected(&prefix, data.clone(), CreateMode::PersistentSequential)
                .await
            {
                Ok(path) => return Ok(path),
                // The queue is missing (never made, or reaped when empty).
                Err(e) if e.code() == ErrorCode::NoNode => {
                    ensure_parents(&self.client, &self.path).await?
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorCode::SystemError,
            format!(
                "{}: could not add an item (the queue kept disappearing)",
                self.path
            ),
        ))
    }

    /// The names of the items in the queue (waiting or being processed), in
    /// queue order.
    pub async fn items(&self) -> Result<Vec<String>, Error> {
        match self.client.get_children(&self.path).await {
            Ok(children) => Ok(ordered_items(children)),
            Err(e) if e.code() == ErrorCode::NoNode => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// How many items are in the queue (waiting or being processed).
    pub async fn len(&self) -> Result<usize, Error> {
        Ok(self.items().await?.len())
    }

    /// True when the queue holds no item at all.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Claims the oldest unclaimed item, waiting for one if there is none.
    ///
    /// Cancel-safe: dropping the future before it returns leaves no claim
    /// behind.
    pub async fn take(&self) -> Result<QueueItem, Error> {
        match self.next(true).await? {
            Some(item) => Ok(item),
            None => Err(Error::new(
                ErrorCode::SystemError,
                "take returned without an item",
            )),
        }
    }

    /// Claims the oldest unclaimed item if there is one right now.
    pub async fn try_take(&self) -> Result<Option<QueueItem>, Error> {
        self.next(false).await
    }

    /// Like [`take`](Self::take), waiting at most `timeout`.
    pub async fn take_timeout(&self, timeout: Duration) -> Result<Option<QueueItem>, Error> {
        match tokio::time::timeout(timeout, self.next(true)).await {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }

    /// Takes an item, runs `process` on its data and, once that finished,
    /// acknowledges (deletes) the item; returns what `process` returned.
    ///
    /// If this future is dropped while `process` runs, the item is handed
    /// back (its claim deleted) for another consumer. If the session is lost
    /// while it runs, the acknowledgement fails (the claim is gone, and
    /// someone else may be processing the item by now).
    pub async fn take_with<F, Fut, T>(&self, process: F) -> Result<T, Error>
    where
        F: FnOnce(Vec<u8>) -> Fut,
        Fut: Future<Output = T>,
    {
        let item = self.take().await?;
        let out = process(item.data.clone()).await;
        item.ack().await?;
        Ok(out)
    }

    /// One pass over the queue, then (with `wait`) a wait for a change,
    /// until an item is claimed.
    async fn next(&self, wait: bool) -> Result<Option<QueueItem>, Error> {
        loop {
            let listed = if wait {
                self.client
                    .get_children_w(&self.path)
                    .await
                    .map(|(c, w)| (c, Some(w)))
            } else {
                self.client
                    .get_children(&self.path)
                    .await
                    .map(|c| (c, None))
            };
            let (children, queue_watch) = match listed {
                Ok(listed) => listed,
                Err(e) if e.code() == ErrorCode::NoNode => {
                    if !wait {
                        return Ok(None);
                    }
                    // No queue yet: wait for it to be made.
                    let (stat, created) = self.client.exists_w(&self.path).await?;
                    if stat.is_none() {
                        let _ = created.await;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let items = ordered_items(children);
            for name in &items {
                match self.claim(name).await? {
                    Claim::Ours(item) => return Ok(Some(item)),
                    Claim::Taken | Claim::Gone => {}
                }
            }
            let Some(queue_watch) = queue_watch else {
                return Ok(None);
            };
            if items.is_empty() {
                let _ = queue_watch.await;
                continue;
            }
            // Every item is claimed: wait for a new item, or for a claim to
            // go (released, or its consumer's session expired).
            let claims_watch = match self.client.get_children_w(&self.claims).await {
                Ok((claims, w)) => {
                    if items.iter().any(|i| !claims.contains(i)) {
                        continue;
                    }
                    w
                }
                Err(e) if e.code() == ErrorCode::NoNode => continue,
                Err(e) => return Err(e),
            };
            tokio::select! {
                _ = queue_watch => {}
                _ = claims_watch => {}
            }
        }
    }

    /// Tries to claim one item by creating its claim node.
    async fn claim(&self, name: &str) -> Result<Claim, Error> {
        let claim_path = format!("{}/{name}", self.claims);
        let item_path = format!("{}/{name}", self.path);
        let session = self.client.session_id();
        // A random token in the claim tells our claim from anyone else's,
        // even another consumer on this same session.
        let token = format!("{:032x}", rand::random::<u128>()).into_bytes();
        let mut maybe_created = false;
        let mut created = false;
        // Should this future be dropped while a create is in flight, the
        // guard removes the claim if it was made.
        let mut in_flight = InFlightClaim {
            client: self.client.clone(),
            path: claim_path.clone(),
            token: token.clone(),
            session,
            armed: true,
        };
        for _ in 0..10 {
            match self
                .client
                .create(&claim_path, token.clone(), CreateMode::Ephemeral)
                .await
            {
                Ok(_) => {
                    created = true;
                    break;
                }
                Err(e) if e.code() == ErrorCode::NodeExists => {
                    if !maybe_created {
                        in_flight.armed = false;
                        return Ok(Claim::Taken);
                    }
                    match self.client.get_data(&claim_path).await {
                        Ok((data, _)) if data == token => {
                            created = true;
                            break;
                        }
                        Ok(_) => {
                            in_flight.armed = false;
                            return Ok(Claim::Taken);
                        }
                        Err(e) if e.code() == ErrorCode::NoNode => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.code() == ErrorCode::NoNode => {
                    ensure_parents(&self.client, &self.claims).await?
                }
                // The answer was lost; the claim may exist. The next attempt
                // finds out (waiting for the connection in the client's queue).
                Err(e) if e.is_connection_loss() => maybe_created = true,
                Err(e) => {
                    in_flight.armed = maybe_created;
                    return Err(e);
                }
            }
        }
        // Made: the item handle below takes over. Not made: after a lost
        // answer it may exist, so the guard checks.
        in_flight.armed = !created && maybe_created;
        if !created {
            return Err(Error::new(
                ErrorCode::SystemError,
                format!("{claim_path}: could not claim the item"),
            ));
        }
        // From here on, a drop (cancellation, error) hands the claim back.
        let mut item = QueueItem {
            client: self.client.clone(),
            name: name.to_string(),
            item_path,
            claim_path,
            session,
            data: Vec::new(),
            done: false,
        };
        if self.client.session_id() != session {
            // The claim died with the session that made it.
            item.done = true;
            return Ok(Claim::Taken);
        }
        match self.client.get_data(&item.item_path).await {
            Ok((data, _)) => {
                item.data = data;
                Ok(Claim::Ours(item))
            }
            Err(e) if e.code() == ErrorCode::NoNode => {
                item.hand_back().await;
                Ok(Claim::Gone)
            }
            Err(e) => Err(e),
        }
    }
}

/// Makes `dir` and its missing ancestors (as containers). An emptied
/// container may be reaped while we work; the caller's next attempt finds
/// that out and calls this again.
async fn ensure_parents(client: &Client, dir: &str) -> Result<(), Error> {
    match ensure_containers(client, dir).await {
        Err(e) if e.code() != ErrorCode::NoNode => Err(e),
        _ => Ok(()),
    }
}

/// The queue's items among `children`, oldest first.
fn ordered_items(children: Vec<String>) -> Vec<String> {
    let mut items: Vec<(i64, String)> = children
        .into_iter()
        .filter(|n| n.contains(ITEM_MARKER))
        .filter_map(|n| sequence_of(&n).map(|s| (s, n)))
        .collect();
    items.sort();
    items.into_iter().map(|(_, n)| n).collect()
}

/// A claimed item: its data, and the duty to [`ack`](QueueItem::ack) it
/// once processed.
///
/// It exists to make "remove only after processing" explicit: the item stays
/// in the queue while this handle lives. Dropping it without `ack` hands
/// the item back (deletes the claim in the background) so another consumer
/// retries it.
pub struct QueueItem {
    client: Client,
    name: String,
    item_path: String,
    claim_path: String,
    /// The session that made the claim: the claim dies with it.
    session: u64,
    data: Vec<u8>,
    /// Acknowledged or handed back: nothing to do on drop.
    done: bool,
}

impl std::fmt::Debug for QueueItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueItem")
            .field("path", &self.item_path)
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

impl QueueItem {
    /// The item's data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The item's node name (`_c_<id>-qn-<seq>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The item's full path.
    pub fn path(&self) -> &str {
        &self.item_path
    }

    /// The item's sequence number: its place in the queue.
    pub fn sequence(&self) -> i64 {
        sequence_of(&self.name).unwrap_or(-1)
    }

    /// True while the claim can still be ours: the session that made it is
    /// the client's current one. Once false, another consumer may be
    /// processing the item.
    pub fn claim_held(&self) -> bool {
        !self.done && self.client.session_id() == self.session
    }

    /// Marks the item processed: deletes it and its claim atomically.
    ///
    /// Fails with `SessionExpired` when the session that claimed the item
    /// is gone (the claim went with it and the item will be delivered
    /// again). After a `ConnectionLoss` it finds out whether the delete
    /// happened and retries if not.
    pub async fn ack(mut self) -> Result<(), Error> {
        for _ in 0..10 {
            self.check_claim()?;
            let ops = [
                Op::delete(self.item_path.clone(), None),
                Op::delete(self.claim_path.clone(), None),
            ];
            match self.client.multi(ops).await {
                Ok(_) => {
                    self.done = true;
                    return Ok(());
                }
                Err(MultiError::Request(e)) if e.is_connection_loss() => {
                    // Did it land? Only the claim's holder deletes an item.
                    match self.client.exists(&self.item_path).await {
                        Ok(None) => {
                            self.check_claim()?;
                            self.done = true;
                            return Ok(());
                        }
                        Ok(Some(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(multi_to_error(e)),
            }
        }
        Err(Error::connection_loss(format!(
            "{}: could not acknowledge the item",
            self.item_path
        )))
    }

    /// Gives the item back unprocessed: deletes the claim, so the item is
    /// taken again (by this or another consumer).
    pub async fn release(mut self) -> Result<(), Error> {
        if self.client.session_id() != self.session {
            self.done = true;
            return Ok(());
        }
        match self.client.delete(&self.claim_path, None).await {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::NoNode || e.is_session_expired() => {}
            Err(e) => return Err(e),
        }
        self.done = true;
        Ok(())
    }

    fn check_claim(&mut self) -> Result<(), Error> {
        if self.client.session_id() != self.session {
            self.done = true;
            return Err(Error::new(
                ErrorCode::SessionExpired,
                format!(
                    "{}: the claim was lost with its session; the item will be delivered again",
                    self.item_path
                ),
            ));
        }
        Ok(())
    }

    /// Deletes the claim now (best effort); used when the item vanished.
    async fn hand_back(&mut self) {
        self.done = true;
        if self.client.session_id() == self.session {
            if let Err(e) = self.client.delete(&self.claim_path, None).await {
                if e.code() != ErrorCode::NoNode {
                    sequence::delete_in_background(&self.client, self.claim_path.clone());
                }
            }
        }
    }
}

impl Drop for QueueItem {
    fn drop(&mut self) {
        // Only while the claim can be ours: after the session changed, the
        // claim is gone and the name may be someone else's claim by now.
        if !self.done && self.client.session_id() == self.session {
            tracing::debug!(item = %name_of(&self.item_path), "handing back an unacknowledged item");
            sequence::delete_in_background(&self.client, self.claim_path.clone());
        }
    }
}

/// A claim whose create may be in flight: if the future making it is
/// dropped, a background task deletes the claim if (and only if) it is ours.
struct InFlightClaim {
    client: Client,
    path: String,
    token: Vec<u8>,
    session: u64,
    armed: bool,
}

impl Drop for InFlightClaim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client.clone();
        let path = std::mem::take(&mut self.path);
        let token = std::mem::take(&mut self.token);
        let session = self.session;
        handle.spawn(async move {
            if let Ok((data, _)) = client.get_data(&path).await {
                if data == token && client.session_id() == session {
                    let _ = client.delete(&path, None).await;
                }
            }
        });
    }
}

fn multi_to_error(e: MultiError) -> Error {
    match e {
        MultiError::Request(e) => e,
        MultiError::OpFailed { code, message, .. } => Error::new(code, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_ordered_by_sequence_and_claims_are_skipped() {
        let children = vec![
            "claims".to_string(),
            "_c_ffffffffffffffffffffffffffffffff-qn-0000000010".to_string(),
            "qn-0000000002".to_string(),
            "_c_00000000000000000000000000000000-qn-0000000007".to_string(),
            "stray".to_string(),
        ];
        assert_eq!(
            ordered_items(children),
            vec![
                "qn-0000000002".to_string(),
                "_c_00000000000000000000000000000000-qn-0000000007".to_string(),
                "_c_ffffffffffffffffffffffffffffffff-qn-0000000010".to_string(),
            ]
        );
    }

    #[test]
    fn a_failed_op_keeps_its_code() {
        let e = multi_to_error(MultiError::OpFailed {
            index: 0,
            code: ErrorCode::NoNode,
            message: "/q/x".into(),
            codes: vec![ErrorCode::NoNode, ErrorCode::RuntimeInconsistency],
        });
        assert_eq!(e.code(), ErrorCode::NoNode);
    }
}
