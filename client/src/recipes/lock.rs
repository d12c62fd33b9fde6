//! A fair, FIFO distributed mutex (Curator's `InterProcessMutex`).
//!
//! Each contender creates a protected ephemeral-sequential node under the
//! lock's path; the lowest sequence number holds the lock; every other
//! contender watches only the node just before its own, so a release wakes
//! exactly one waiter (no herd), and a waiter whose predecessor dies simply
//! re-checks and watches the next one up.
//!
//! Every grant carries a **fencing token** — the lock node's czxid, which
//! strictly increases from one holder to the next. Pass it to the resource
//! you protect and have it reject smaller tokens: that is what makes a
//! paused or partitioned ex-holder harmless.
//!
//! The holder learns at once when it can no longer be sure it holds the
//! lock: [`LockState::Suspended`] when the connection drops, and
//! [`LockState::Lost`] when the session expired or the node is gone.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::Lock;
//! let lock = Lock::new(&client, "/locks/stock");
//! let mut guard = lock.acquire().await?;
//! println!("holding with fencing token {}", guard.fencing_token());
//! guard.release().await?;
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use super::sequence::{self, Pending, Position};
use crate::{Client, ConnectionState, Error, ErrorCode, EventType, WatcherType};

/// What this lock names its own nodes (`_c_<uuid>-lock-<seq>`, as Curator).
const MARKER: &str = "lock-";

/// The contenders this lock queues with: its own and Curator's (`lock-`)
/// and kazoo's (`<uuid>__lock__<seq>`), so locks taken through any of these
/// libraries on one path exclude each other. Ordered by sequence number.
const CONTENDERS: &[&str] = &[MARKER, "__lock__"];

/// A named lock: a path under which contenders queue.
#[derive(Clone)]
pub struct Lock {
    client: Client,
    path: String,
    data: Vec<u8>,
    /// With re-entrancy: the hold this owner (this `Lock` and its clones)
    /// already has, if any.
    owner: Option<Arc<parking_lot::Mutex<Weak<Hold>>>>,
}

/// What the holder can currently say about its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// The lock node exists and belongs to this session.
    Held,
    /// The connection dropped: the lock may still be held, but act as if not
    /// until it is `Held` again.
    Suspended,
    /// The session expired or the node was deleted: the lock is gone.
    Lost,
}

impl Lock {
    /// A lock at `path` (created as a container if missing).
    pub fn new(client: &Client, path: &str) -> Lock {
        Lock {
            client: client.clone(),
            path: path.trim_end_matches('/').to_string(),
            data: Vec::new(),
            owner: None,
        }
    }

    /// Makes the lock re-entrant for its owner — this `Lock` and its clones:
    /// acquiring while already holding returns at once with another guard
    /// on the same grant (same node and fencing token); the lock is
    /// released when the last of those guards is.
    pub fn reentrant(mut self) -> Lock {
        self.owner = Some(Arc::default());
        self
    }

    /// The owner's live hold, counted once more, if re-entrant and held.
    fn reenter(&self) -> Option<LockGuard> {
        let hold = self.owner.as_ref()?.lock().upgrade()?;
        if *hold.state.borrow() == LockState::Lost {
            return None;
        }
        let mut c = hold.count.load(Ordering::SeqCst);
        loop {
            if c == 0 {
                return None;
            }
            match hold
                .count
                .compare_exchange(c, c + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    return Some(LockGuard {
                        hold,
                        released: false,
                    })
                }
                Err(now) => c = now,
            }
        }
    }

    /// Data stored in this contender's node (e.g. who it is), for operators.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Lock {
        self.data = data.into();
        self
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits for the lock. Dropping the future gives up the place in line.
    pub async fn acquire(&self) -> Result<LockGuard, Error> {
        match self.attempt(true).await? {
            Some(g) => Ok(g),
            None => Err(Error::new(
                ErrorCode::SystemError,
                "acquire returned without the lock",
            )),
        }
    }

    /// Waits at most `timeout`; `None` if the lock was not granted in time.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        match tokio::time::timeout(timeout, self.attempt(true)).await {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }

    /// Takes the lock only if it is free right now.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        self.attempt(false).await
    }

    async fn attempt(&self, wait: bool) -> Result<Option<LockGuard>, Error> {
        if let Some(g) = self.reenter() {
            return Ok(Some(g));
        }
        let granted = self.queue(wait).await?;
        if let (Some(owner), Some(g)) = (&self.owner, &granted) {
            *owner.lock() = Arc::downgrade(&g.hold);
        }
        Ok(granted)
    }

    async fn queue(&self, wait: bool) -> Result<Option<LockGuard>, Error> {
        let (path, stat) =
            sequence::join_detached(&self.client, &self.path, MARKER, &self.data).await?;
        let mut pending = Pending::new(&self.client, path.clone());
        loop {
            match sequence::position_among(&self.client, &self.path, CONTENDERS, &path).await? {
                Position::First => {
                    pending.keep();
                    return Ok(Some(
                        LockGuard::new(self.client.clone(), path, stat.czxid).await,
                    ));
                }
                Position::Gone => {
                    pending.keep();
                    return Err(Error::new(
                        ErrorCode::SessionExpired,
                        format!("{path}: the lock node vanished while waiting (session expired?)"),
                    ));
                }
                Position::Behind(_) if !wait => return Ok(None),
                Position::Behind(pred) => {
                    let (stat, watch) = self.client.exists_w(&pred).await?;
                    if stat.is_none() {
                        continue;
                    }
                    match watch.await {
                        Ok(_) => {}
                        Err(e) if e.is_session_expired() => return Err(e),
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

/// One grant: its node, token and monitor, shared by the guards of a
/// re-entrant owner and counted.
struct Hold {
    client: Client,
    path: String,
    token: i64,
    state: watch::Receiver<LockState>,
    monitor: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    count: AtomicUsize,
}

/// Proof of holding a lock. Release it with [`LockGuard::release`];
/// dropping it releases in the background.
pub struct LockGuard {
    hold: Arc<Hold>,
    released: bool,
}

impl LockGuard {
    async fn new(client: Client, path: String, token: i64) -> LockGuard {
        let (tx, rx) = watch::channel(LockState::Held);
        let monitor = tokio::spawn(monitor(client.clone(), path.clone(), tx));
        LockGuard {
            hold: Arc::new(Hold {
                client,
                path,
                token,
                state: rx,
                monitor: parking_lot::Mutex::new(Some(monitor)),
                count: AtomicUsize::new(1),
            }),
            released: false,
        }
    }

    /// The fencing token of this grant: the lock node's czxid. Strictly
    /// greater than every earlier holder's.
    pub fn fencing_token(&self) -> i64 {
        self.hold.token
    }

    /// The lock node's path.
    pub fn path(&self) -> &str {
        &self.hold.path
    }

    /// The current state of the hold.
    pub fn state(&self) -> LockState {
        *self.hold.state.borrow()
    }

    /// A receiver of state changes (Held / Suspended / Lost).
    pub fn states(&self) -> watch::Receiver<LockState> {
        self.hold.state.clone()
    }

    /// Resolves once the lock is lost (or the guard is released).
    pub async fn lost(&self) {
        let mut rx = self.hold.state.clone();
        let _ = rx.wait_for(|s| *s == LockState::Lost).await;
    }

    /// Releases this guard. The lock itself is released — this grant's own
    /// node deleted, never anyone else's — when the owner's last guard is.
    /// Idempotent; a node already gone (expired session) is fine.
    pub async fn release(&mut self) -> Result<(), Error> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        if self.hold.count.fetch_sub(1, Ordering::SeqCst) > 1 {
            return Ok(());
        }
        let h = &self.hold;
        // Stop the monitor and drop its watch on our node first, so the
        // delete notifies only the next waiter (no self-notification).
        let monitor = h.monitor.lock().take();
        if let Some(m) = monitor {
            m.abort();
            let _ = m.await;
        }
        let _ = h.client.remove_watches(&h.path, WatcherType::Data).await;
        match h.client.delete(&h.path, None).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ErrorCode::NoNode || e.is_session_expired() => Ok(()),
            Err(e) => {
                sequence::delete_in_background(&h.client, h.path.clone());
                Err(e)
            }
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released || self.hold.count.fetch_sub(1, Ordering::SeqCst) > 1 {
            return;
        }
        if let Some(m) = self.hold.monitor.lock().take() {
            m.abort();
        }
        sequence::delete_in_background(&self.hold.client, self.hold.path.clone());
    }
}

/// Watches the connection and the lock node, and reports the hold's state.
async fn monitor(client: Client, path: String, tx: watch::Sender<LockState>) {
    let mut states = client.state_changes();
    let session = client.session_id();
    loop {
        let node = match client.exists_w(&path).await {
            Ok((Some(stat), w)) if stat.ephemeral_owner == session => Some(w),
            Ok(_) => None,
            Err(e) if e.is_connection_loss() => {
                let _ = tx.send(LockState::Suspended);
                match wait_reconnected(&mut states).await {
                    true => continue,
                    false => None,
                }
            }
            Err(_) => None,
        };
        let Some(watch) = node else {
            let _ = tx.send(LockState::Lost);
            return;
        };
        let _ = tx.send(LockState::Held);
        tokio::select! {
            ev = watch => match ev {
                Ok(e) if e.event_type == EventType::NodeDeleted => {
                    let _ = tx.send(LockState::Lost);
                    return;
                }
                Ok(_) => continue,
                Err(e) if e.is_session_expired() => {
                    let _ = tx.send(LockState::Lost);
                    return;
                }
                Err(_) => {
                    let _ = tx.send(LockState::Suspended);
                    if !wait_reconnected(&mut states).await {
                        let _ = tx.send(LockState::Lost);
                        return;
                    }
                }
            },
            s = states.next() => match s {
                Some(ConnectionState::Suspended) => {
                    let _ = tx.send(LockState::Suspended);
                    if !wait_reconnected(&mut states).await {
                        let _ = tx.send(LockState::Lost);
                        return;
                    }
                }
                Some(ConnectionState::Lost) | Some(ConnectionState::Closed) | None => {
                    let _ = tx.send(LockState::Lost);
                    return;
                }
                Some(_) => {}
            },
        }
        if client.session_id() != session {
            let _ = tx.send(LockState::Lost);
            return;
        }
    }
}

/// After a suspension: true when the same session is back, false when it
/// was lost (or the client closed).
async fn wait_reconnected(states: &mut crate::StateStream) -> bool {
    while let Some(s) = states.next().await {
        match s {
            ConnectionState::Reconnected | ConnectionState::Connected => return true,
            ConnectionState::Lost | ConnectionState::Closed => return false,
            ConnectionState::Suspended => {}
        }
    }
    false
}

impl LockGuard {
    /// A guard for a grant another recipe decided (the read-write lock's
    /// halves): the same monitoring, release and fencing token as a plain
    /// lock's.
    pub(crate) async fn granted(client: Client, path: String, token: i64) -> LockGuard {
        LockGuard::new(client, path, token).await
    }
}
