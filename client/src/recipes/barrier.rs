//! Barriers: a gate one process holds shut for others
//! (Curator's `DistributedBarrier`), and a double barrier that starts and
//! ends a computation together (Curator's `DistributedDoubleBarrier`).
//!
//! **[`Barrier`]** is one node: while it exists, waiters wait; deleting it
//! releases them all. Each waiter sets an exists watch on the node and
//! waits for it to fire.
//!
//! **[`DoubleBarrier`]** has N members. `enter` creates the member's
//! ephemeral node under the barrier's path and counts the members: the one
//! that finds N creates a `ready` node, which everyone else is watching for.
//! `leave` deletes the member's node and waits until every member's is gone
//! (the lowest member watches the highest, the others delete theirs and
//! watch the lowest, so no one watches everyone); the last one out deletes
//! `ready`, so the barrier can be used again.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use std::time::Duration;
//! use warden_client::recipes::{Barrier, DoubleBarrier};
//!
//! // One process holds the gate ...
//! let gate = Barrier::new(&client, "/barriers/deploy");
//! gate.set_barrier().await?;
//! // ... others wait at it (here: at most a minute) ...
//! let opened = gate.wait_on_barrier_timeout(Duration::from_secs(60)).await?;
//! // ... until it is removed.
//! gate.remove_barrier().await?;
//!
//! // Three workers start and finish a round together.
//! let mut round = DoubleBarrier::new(&client, "/barriers/round", 3);
//! round.enter().await?; // returns once all three have entered
//! // ... compute ...
//! round.leave().await?; // returns once all three have left
//! # let _ = opened;
//! # Ok(()) }
//! ```

use std::time::Duration;

use tokio::time::Instant;

use super::sequence::{self, Pending};
use crate::{Client, CreateMode, Error, ErrorCode};

/// The marker in a double-barrier member's node name.
const MARKER: &str = "member-";
/// The node whose creation lets the members of a double barrier in.
const READY: &str = "ready";

/// A gate: while its node exists, [`wait_on_barrier`](Barrier::wait_on_barrier)
/// blocks.
///
/// It exists for "nobody starts until I say so": a deploy that holds
/// workers back until the new configuration is in place, a maintenance
/// window. Setting and removing are idempotent.
#[derive(Clone)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    /// A barrier at `path` (its parents are created as containers).
    pub fn new(client: &Client, path: &str) -> Barrier {
        Barrier {
            client: client.clone(),
            path: path.trim_end_matches('/').to_string(),
        }
    }

    /// The barrier's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Shuts the gate: creates the barrier node (a persistent node, so it
    /// outlives this session). Already set is fine.
    pub async fn set_barrier(&self) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            match self
                .client
                .create(&self.path, Vec::new(), CreateMode::Persistent)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == ErrorCode::NodeExists => return Ok(()),
                Err(e) if e.code() == ErrorCode::NoNode && attempt < 5 => {
                    if let Some(parent) = parent_of(&self.path) {
                        sequence::ensure_containers(&self.client, parent).await?;
                    }
                }
                // The outcome is unknown; creating again is safe (see NodeExists).
                Err(e) if e.is_connection_loss() && attempt < 5 => {}
                Err(e) => return Err(e),
            }
            attempt += 1;
        }
    }

    /// Opens the gate: deletes the barrier node, releasing every waiter.
    /// Not set is fine.
    pub async fn remove_barrier(&self) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            match self.client.delete(&self.path, None).await {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == ErrorCode::NoNode => return Ok(()),
                // The outcome is unknown; deleting again is safe (see NoNode).
                Err(e) if e.is_connection_loss() && attempt < 5 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the gate is shut now.
    pub async fn is_set(&self) -> Result<bool, Error> {
        Ok(self.client.exists(&self.path).await?.is_some())
    }

    /// Waits until the barrier node does not exist.
    pub async fn wait_on_barrier(&self) -> Result<(), Error> {
        loop {
            let (stat, watch) = self.client.exists_w(&self.path).await?;
            if stat.is_none() {
                return Ok(());
            }
            match watch.await {
                Err(e) if e.is_session_expired() => return Err(e),
                _ => {}
            }
        }
    }

    /// Waits at most `timeout`: `true` if the gate opened, `false` if it
    /// was still shut when the time ran out.
    pub async fn wait_on_barrier_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        match tokio::time::timeout(timeout, self.wait_on_barrier()).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        }
    }
}

/// The parent of an absolute path, if it has one other than `/`.
fn parent_of(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => Some(parent),
        _ => None,
    }
}

/// A double barrier: N members enter together and leave together.
///
/// It exists for rounds of distributed work that must start only when every
/// participant is present and end only when every participant is done
/// (a batch over N shards, a coordinated restart). One value per member;
/// every member must use the same count. Dropping it while entered leaves
/// in the background without waiting.
pub struct DoubleBarrier {
    client: Client,
    path: String,
    ready: String,
    member_count: usize,
    data: Vec<u8>,
    /// Our member node while entered.
    node: Option<String>,
}

/// What a wait came to.
enum Waited {
    Fired,
    TimedOut,
}

/// Awaits a watch until an optional deadline; a session expiry is an error,
/// anything else (an event, a stopped client) means "look again".
async fn wait_for(watch: crate::OneshotWatch, deadline: Option<Instant>) -> Result<Waited, Error> {
    let fired = match deadline {
        None => watch.await,
        Some(d) => match tokio::time::timeout_at(d, watch).await {
            Ok(r) => r,
            Err(_) => return Ok(Waited::TimedOut),
        },
    };
    match fired {
        Err(e) if e.is_session_expired() => Err(e),
        _ => Ok(Waited::Fired),
    }
}

impl DoubleBarrier {
    /// A double barrier at `path` for `member_count` members.
    pub fn new(client: &Client, path: &str, member_count: usize) -> DoubleBarrier {
        let path = path.trim_end_matches('/').to_string();
        DoubleBarrier {
            client: client.clone(),
            ready: format!("{path}/{READY}"),
            path,
            member_count,
            data: Vec::new(),
            node: None,
        }
    }

    /// Data stored in this member's node (e.g. who it is), for operators.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> DoubleBarrier {
        self.data = data.into();
        self
    }

    /// The barrier's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this member has entered (and not left).
    pub fn is_entered(&self) -> bool {
        self.node.is_some()
    }

    /// Enters and waits until all members have entered. Dropping the future
    /// withdraws this member.
    pub async fn enter(&mut self) -> Result<(), Error> {
        self.enter_until(None).await.map(|_| ())
    }

    /// Waits at most `timeout` for all members to enter: `false` (this
    /// member withdrawn) if they did not in time.
    pub async fn enter_timeout(&mut self, timeout: Duration) -> Result<bool, Error> {
        self.enter_until(Some(Instant::now() + timeout)).await
    }

    /// Leaves and waits until all members have left. Dropping the future
    /// still leaves (this member's node is deleted in the background).
    pub async fn leave(&mut self) -> Result<(), Error> {
        self.leave_until(None).await.map(|_| ())
    }

    /// Leaves and waits at most `timeout` for the others: `false` if some
    /// were still in when the time ran out (this member has left anyway).
    pub async fn leave_timeout(&mut self, timeout: Duration) -> Result<bool, Error> {
        self.leave_until(Some(Instant::now() + timeout)).await
    }

    async fn enter_until(&mut self, deadline: Option<Instant>) -> Result<bool, Error> {
        if self.node.is_some() {
            return Err(Error::bad_arguments(format!(
                "{}: this member has already entered",
                self.path
            )));
        }
        if self.member_count == 0 {
            return Err(Error::bad_arguments(format!(
                "{}: a double barrier needs at least one member",
                self.path
            )));
        }
        let (path, _) =
            sequence::join_detached(&self.client, &self.path, MARKER, &self.data).await?;
        let mut pending = Pending::new(&self.client, path.clone());
        let ours = name_of(&path);
        loop {
            let members = sequence::members(&self.client, &self.path, MARKER).await?;
            if !members.iter().any(|m| m == ours) {
                pending.keep();
                return Err(Error::new(
                    ErrorCode::SessionExpired,
                    format!("{path}: the member node vanished while entering (session expired?)"),
                ));
            }
            if members.len() >= self.member_count {
                match self
                    .client
                    .create(&self.ready, Vec::new(), CreateMode::Persistent)
                    .await
                {
                    Ok(_) => break,
                    Err(e) if e.code() == ErrorCode::NodeExists => break,
                    // Unknown outcome: look again (an existing ready node is fine).
                    Err(e) if e.is_connection_loss() => continue,
                    Err(e) => return Err(e),
                }
            }
            let (stat, watch) = self.client.exists_w(&self.ready).await?;
            if stat.is_some() {
                break;
            }
            if let Waited::TimedOut = wait_for(watch, deadline).await? {
                pending.abandon().await;
                return Ok(false);
            }
        }
        self.node = pending.keep();
        Ok(true)
    }

    async fn leave_until(&mut self, deadline: Option<Instant>) -> Result<bool, Error> {
        let Some(path) = self.node.take() else {
            return Err(Error::bad_arguments(format!(
                "{}: this member has not entered",
                self.path
            )));
        };
        let mut pending = Pending::new(&self.client, path.clone());
        let ours = name_of(&path).to_string();
        loop {
            let members = sequence::members(&self.client, &self.path, MARKER).await?;
            let ours_exists = pending.is_armed();
            let step = match leave_step(&members, &ours, ours_exists) {
                Ok(step) => step,
                Err(why) => {
                    pending.keep();
                    return Err(Error::new(
                        ErrorCode::SessionExpired,
                        format!("{path}: {why}"),
                    ));
                }
            };
            if step.delete_ours {
                pending.abandon().await;
            }
            let Some(watched) = step.watch else { break };
            let (stat, watch) = self
                .client
                .exists_w(&format!("{}/{watched}", self.path))
                .await?;
            if stat.is_none() {
                continue;
            }
            if let Waited::TimedOut = wait_for(watch, deadline).await? {
                pending.abandon().await;
                return Ok(false);
            }
        }
        match self.client.delete(&self.ready, None).await {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::NoNode => {}
            Err(e) => return Err(e),
        }
        Ok(true)
    }
}

impl Drop for DoubleBarrier {
    fn drop(&mut self) {
        if let Some(p) = self.node.take() {
            sequence::delete_in_background(&self.client, p);
        }
    }
}

/// The last segment of a path.
fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// One round of leaving, decided from the members in queue order.
#[derive(Debug, PartialEq, Eq)]
struct LeaveStep {
    /// Delete our node now.
    delete_ours: bool,
    /// Wait for this member (a name) to go; `None`: everyone has left.
    watch: Option<String>,
}

/// Curator's leave rule: the lowest member keeps its node and watches the
/// highest; every other member deletes its node and watches the lowest;
/// alone, a member deletes its node and is done.
fn leave_step(members: &[String], ours: &str, ours_exists: bool) -> Result<LeaveStep, String> {
    let index = members.iter().position(|m| m == ours);
    if ours_exists && index.is_none() {
        return Err("the member node vanished while leaving (session expired?)".into());
    }
    let done = LeaveStep {
        delete_ours: ours_exists,
        watch: None,
    };
    match members {
        [] => Ok(done),
        // Alone, or the one left is a newcomer of the next round.
        [_] => Ok(done),
        _ if index == Some(0) => Ok(LeaveStep {
            delete_ours: false,
            watch: members.last().cloned(),
        }),
        [first, ..] => Ok(LeaveStep {
            delete_ours: ours_exists,
            watch: Some(first.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_lowest_waits_for_the_highest_and_the_rest_for_the_lowest() {
        let m = names(&["a-01", "b-02", "c-03"]);
        assert_eq!(
            leave_step(&m, "a-01", true),
            Ok(LeaveStep {
                delete_ours: false,
                watch: Some("c-03".into())
            })
        );
        assert_eq!(
            leave_step(&m, "b-02", true),
            Ok(LeaveStep {
                delete_ours: true,
                watch: Some("a-01".into())
            })
        );
        // Already deleted: keep watching the lowest.
        let m = names(&["a-01", "c-03"]);
        assert_eq!(
            leave_step(&m, "b-02", false),
            Ok(LeaveStep {
                delete_ours: false,
                watch: Some("a-01".into())
            })
        );
    }

    #[test]
    fn alone_or_empty_means_done() {
        assert_eq!(
            leave_step(&names(&["a-01"]), "a-01", true),
            Ok(LeaveStep {
                delete_ours: true,
                watch: None
            })
        );
        assert_eq!(
            leave_step(&names(&["a-01"]), "b-02", false),
            Ok(LeaveStep {
                delete_ours: false,
                watch: None
            })
        );
        assert_eq!(
            leave_step(&[], "b-02", false),
            Ok(LeaveStep {
                delete_ours: false,
                watch: None
            })
        );
        assert!(leave_step(&names(&["a-01"]), "b-02", true).is_err());
    }

    #[test]
    fn parents() {
        assert_eq!(parent_of("/a/b/c"), Some("/a/b"));
        assert_eq!(parent_of("/a"), None);
    }
}
