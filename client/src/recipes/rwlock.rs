//! A distributed read-write lock (Curator's `InterProcessReadWriteLock`).
//!
//! Readers and writers queue in one line under the lock's path, as
//! protected ephemeral-sequential nodes named `…__READ__<seq>` and
//! `…__WRITE__<seq>` (Curator's names, so both kinds of client can share a
//! lock). The sequence number decides the order:
//!
//! - a **writer** holds the lock when it is first in line, and otherwise
//!   watches only the node just before its own;
//! - a **reader** holds the lock when no writer is ahead of it, and
//!   otherwise watches only the nearest writer ahead of it.
//!
//! So any number of readers hold together, a writer excludes everyone, and
//! a writer that queued before later readers is not starved by them. Every
//! grant is a [`LockGuard`] with the node's czxid as its fencing token and
//! the plain lock's `Suspended` / `Lost` signalling.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::ReadWriteLock;
//! let lock = ReadWriteLock::new(&client, "/locks/catalog");
//! {
//!     let mut read = lock.read_lock().acquire().await?;
//!     // ... read the catalog, alongside other readers ...
//!     read.release().await?;
//! }
//! let mut write = lock.write_lock().acquire().await?;
//! println!("rewriting with fencing token {}", write.fencing_token());
//! write.release().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use super::lock::LockGuard;
use super::sequence::{self, Pending};
use crate::{Client, Error, ErrorCode};

/// The marker in a reader's node name.
const READ: &str = "__READ__";
/// The marker in a writer's node name.
const WRITE: &str = "__WRITE__";

/// A lock with shared (read) and exclusive (write) holds on one path.
///
/// It exists for resources that are read often and changed rarely: readers
/// need not wait for each other, only for writers. Get the two halves with
/// [`read_lock`](ReadWriteLock::read_lock) and
/// [`write_lock`](ReadWriteLock::write_lock).
#[derive(Clone)]
pub struct ReadWriteLock {
    client: Client,
    path: String,
    data: Vec<u8>,
}

impl ReadWriteLock {
    /// A read-write lock at `path` (created as a container if missing).
    pub fn new(client: &Client, path: &str) -> ReadWriteLock {
        ReadWriteLock {
            client: client.clone(),
            path: path.trim_end_matches('/').to_string(),
            data: Vec::new(),
        }
    }

    /// Data stored in each contender's node (e.g. who it is), for operators.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> ReadWriteLock {
        self.data = data.into();
        self
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The shared half: held together with other readers.
    pub fn read_lock(&self) -> ReadLock {
        ReadLock(self.half(Kind::Read))
    }

    /// The exclusive half: held alone.
    pub fn write_lock(&self) -> WriteLock {
        WriteLock(self.half(Kind::Write))
    }

    fn half(&self, kind: Kind) -> Half {
        Half {
            client: self.client.clone(),
            path: self.path.clone(),
            data: self.data.clone(),
            kind,
        }
    }
}

/// The read half of a [`ReadWriteLock`]: a shared hold, granted when no
/// writer is ahead in line.
#[derive(Clone)]
pub struct ReadLock(Half);

/// The write half of a [`ReadWriteLock`]: an exclusive hold, granted when
/// first in line.
#[derive(Clone)]
pub struct WriteLock(Half);

impl ReadLock {
    /// Waits for a read hold. Dropping the future gives up the place in line.
    pub async fn acquire(&self) -> Result<LockGuard, Error> {
        self.0.acquire().await
    }

    /// Waits at most `timeout`; `None` if no hold was granted in time.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        self.0.acquire_timeout(timeout).await
    }

    /// Takes a read hold only if no writer is in line ahead right now.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        self.0.attempt(false).await
    }
}

impl WriteLock {
    /// Waits for the write hold. Dropping the future gives up the place in
    /// line.
    pub async fn acquire(&self) -> Result<LockGuard, Error> {
        self.0.acquire().await
    }

    /// Waits at most `timeout`; `None` if the hold was not granted in time.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        self.0.acquire_timeout(timeout).await
    }

    /// Takes the write hold only if nobody holds or waits right now.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        self.0.attempt(false).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

impl Kind {
    fn marker(self) -> &'static str {
        match self {
            Kind::Read => READ,
            Kind::Write => WRITE,
        }
    }
}

/// What a contender learns from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// The hold is granted.
    Holds,
    /// Wait until this member (a name) is gone, then look again.
    WaitFor(String),
    /// Our node is not in line (deleted, or its session expired).
    Gone,
}

/// The rule of the lock, on the members' names in queue order.
fn verdict(line: &[String], ours: &str, kind: Kind) -> Verdict {
    let Some(index) = line.iter().position(|m| m == ours) else {
        return Verdict::Gone;
    };
    let ahead = &line[..index];
    let blocker = match kind {
        Kind::Write => ahead.last(),
        Kind::Read => ahead.iter().rev().find(|m| m.contains(WRITE)),
    };
    match blocker {
        None => Verdict::Holds,
        Some(name) => Verdict::WaitFor(name.clone()),
    }
}

/// Orders names by their sequence suffix, keeping only this lock's nodes.
fn in_line(children: Vec<String>) -> Vec<String> {
    let mut line: Vec<(i64, String)> = children
        .into_iter()
        .filter(|n| n.contains(READ) || n.contains(WRITE))
        .filter_map(|n| sequence::sequence_of(&n).map(|s| (s, n)))
        .collect();
    line.sort();
    line.into_iter().map(|(_, n)| n).collect()
}

/// The machinery both halves share.
#[derive(Clone)]
struct Half {
    client: Client,
    path: String,
    data: Vec<u8>,
    kind: Kind,
}

impl Half {
    async fn acquire(&self) -> Result<LockGuard, Error> {
        match self.attempt(true).await? {
            Some(g) => Ok(g),
            None => Err(Error::new(
                ErrorCode::SystemError,
                "acquire returned without the lock",
            )),
        }
    }

    async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        match tokio::time::timeout(timeout, self.attempt(true)).await {
            Ok(r) => r,
            // The attempt was dropped: its node is deleted in the background.
            Err(_) => Ok(None),
        }
    }

    async fn attempt(&self, wait: bool) -> Result<Option<LockGuard>, Error> {
        let (path, stat) =
            sequence::join_detached(&self.client, &self.path, self.kind.marker(), &self.data)
                .await?;
        let mut pending = Pending::new(&self.client, path.clone());
        let ours = path.rsplit('/').next().unwrap_or(&path).to_string();
        loop {
            let children = match self.client.get_children(&self.path).await {
                Ok(c) => c,
                Err(e) if e.code() == ErrorCode::NoNode => Vec::new(),
                Err(e) => return Err(e),
            };
            match verdict(&in_line(children), &ours, self.kind) {
                Verdict::Holds => {
                    let guard = LockGuard::granted(self.client.clone(), path, stat.czxid).await;
                    pending.keep();
                    return Ok(Some(guard));
                }
                Verdict::Gone => {
                    pending.keep();
                    return Err(Error::new(
                        ErrorCode::SessionExpired,
                        format!("{path}: the lock node vanished while waiting (session expired?)"),
                    ));
                }
                Verdict::WaitFor(_) if !wait => {
                    pending.abandon().await;
                    return Ok(None);
                }
                Verdict::WaitFor(name) => {
                    let blocker = format!("{}/{name}", self.path);
                    let (stat, watch) = self.client.exists_w(&blocker).await?;
                    if stat.is_none() {
                        continue;
                    }
                    match watch.await {
                        Err(e) if e.is_session_expired() => return Err(e),
                        // An event (the blocker went, or changed) or a stopped
                        // client: look again; a stopped client fails there.
                        _ => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn readers_share_until_a_writer_is_ahead() {
        let line = in_line(names(&[
            "_c_aa-__READ__0000000003",
            "_c_bb-__READ__0000000001",
            "_c_cc-__WRITE__0000000004",
            "_c_dd-__READ__0000000005",
            "_c_ee-__WRITE__0000000006",
            "_c_ff-__READ__0000000007",
            "config",
        ]));
        assert_eq!(line.len(), 6);
        assert_eq!(line[0], "_c_bb-__READ__0000000001");
        // Both readers before the first writer hold together.
        assert_eq!(verdict(&line, &line[0], Kind::Read), Verdict::Holds);
        assert_eq!(verdict(&line, &line[1], Kind::Read), Verdict::Holds);
        // The first writer waits for the reader just before it.
        assert_eq!(
            verdict(&line, &line[2], Kind::Write),
            Verdict::WaitFor(line[1].clone())
        );
        // A reader behind a writer waits for that writer.
        assert_eq!(
            verdict(&line, &line[3], Kind::Read),
            Verdict::WaitFor(line[2].clone())
        );
        // The second writer waits for its predecessor, a reader.
        assert_eq!(
            verdict(&line, &line[4], Kind::Write),
            Verdict::WaitFor(line[3].clone())
        );
        // A reader watches the nearest writer ahead, not the first.
        assert_eq!(
            verdict(&line, &line[5], Kind::Read),
            Verdict::WaitFor(line[4].clone())
        );
    }

    #[test]
    fn a_writer_holds_only_when_first() {
        let line = names(&["_c_a-__WRITE__0000000001", "_c_b-__READ__0000000002"]);
        assert_eq!(verdict(&line, &line[0], Kind::Write), Verdict::Holds);
        assert_eq!(
            verdict(&line, &line[1], Kind::Read),
            Verdict::WaitFor(line[0].clone())
        );
        assert_eq!(
            verdict(&line, "_c_z-__READ__0000000009", Kind::Read),
            Verdict::Gone
        );
    }
}
