//! A counting semaphore: at most N holders at once (Curator's
//! `InterProcessSemaphoreV2`).
//!
//! Two children under the semaphore's path:
//!
//! - `locks` — a [`Lock`] that lets one contender at a time take a lease, so
//!   only the contender at the head of that line watches the leases (no
//!   herd when a lease is returned);
//! - `leases` — one protected ephemeral-sequential node per lease.
//!
//! Holding the lock, a contender creates its lease node and reads the
//! leases: if there are at most N it keeps its lease; otherwise it waits on a
//! children watch of `leases` until one is returned. Then it releases the
//! lock. A lease dies with its holder's session, so a crashed holder gives
//! its lease back by itself.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::Semaphore;
//! let downloads = Semaphore::new(&client, "/semaphores/downloads", 3);
//! let mut lease = downloads.acquire().await?;
//! // ... at most three of these run at once, across every process ...
//! lease.release().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use super::lock::Lock;
use super::sequence::{self, Pending};
use crate::{Client, Error, ErrorCode};

const MARKER: &str = "lease-";

/// A semaphore with `max_leases` leases, shared by every client that names
/// the same path.
///
/// It exists to bound concurrency across processes — connections to a
/// fragile service, parallel downloads, workers on a shared resource — where
/// a lock (one holder) is too strict. Every client must use the same
/// `max_leases`; it is not stored in the tree.
#[derive(Clone)]
pub struct Semaphore {
    client: Client,
    leases: String,
    lock: Lock,
    max_leases: u32,
    data: Vec<u8>,
}

impl Semaphore {
    /// A semaphore at `path` with `max_leases` leases (the path and its
    /// children are created as containers when missing).
    pub fn new(client: &Client, path: &str, max_leases: u32) -> Semaphore {
        let path = path.trim_end_matches('/');
        Semaphore {
            client: client.clone(),
            leases: format!("{path}/leases"),
            lock: Lock::new(client, &format!("{path}/locks")),
            max_leases,
            data: Vec::new(),
        }
    }

    /// Data stored in each lease node (e.g. who holds it), for operators.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Semaphore {
        self.data = data.into();
        self
    }

    /// How many leases the semaphore has.
    pub fn max_leases(&self) -> u32 {
        self.max_leases
    }

    /// The names of the lease nodes now (holders, plus at most one
    /// contender checking whether it may hold).
    pub async fn participants(&self) -> Result<Vec<String>, Error> {
        sequence::members(&self.client, &self.leases, MARKER).await
    }

    /// Waits for a lease. Dropping the future gives up the place in line.
    pub async fn acquire(&self) -> Result<Lease, Error> {
        match self.attempt(true).await? {
            Some(lease) => Ok(lease),
            None => Err(Error::new(
                ErrorCode::SystemError,
                "acquire returned without a lease",
            )),
        }
    }

    /// Waits at most `timeout`; `None` if no lease was granted in time.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>, Error> {
        match tokio::time::timeout(timeout, self.attempt(true)).await {
            Ok(r) => r,
            // The attempt was dropped: its nodes are deleted in the background.
            Err(_) => Ok(None),
        }
    }

    /// Takes a lease only if one is free right now and no other contender is
    /// taking one at this moment (Curator's `acquire` with a zero wait).
    pub async fn try_acquire(&self) -> Result<Option<Lease>, Error> {
        self.attempt(false).await
    }

    async fn attempt(&self, wait: bool) -> Result<Option<Lease>, Error> {
        if self.max_leases == 0 {
            return Err(Error::bad_arguments(format!(
                "{}: a semaphore needs at least one lease",
                self.leases
            )));
        }
        let mut turn = if wait {
            self.lock.acquire().await?
        } else {
            match self.lock.try_acquire().await? {
                Some(guard) => guard,
                None => return Ok(None),
            }
        };
        let lease = self.take_lease(wait).await;
        if let Err(e) = turn.release().await {
            // Dropping the guard deletes the lock node in the background.
            tracing::debug!(path = %turn.path(), error = %e, "retrying a semaphore lock release");
        }
        lease
    }

    /// With the lock held: create a lease node, keep it once at most
    /// `max_leases` exist.
    async fn take_lease(&self, wait: bool) -> Result<Option<Lease>, Error> {
        let (path, stat) =
            sequence::join_detached(&self.client, &self.leases, MARKER, &self.data).await?;
        let mut pending = Pending::new(&self.client, path.clone());
        let ours = path.rsplit('/').next().unwrap_or(&path).to_string();
        loop {
            let (children, watch) = match self.client.get_children_w(&self.leases).await {
                Ok((children, watch)) => (children, Some(watch)),
                Err(e) if e.code() == ErrorCode::NoNode => (Vec::new(), None),
                Err(e) => return Err(e),
            };
            if !children.contains(&ours) {
                pending.keep();
                return Err(Error::new(
                    ErrorCode::SessionExpired,
                    format!("{path}: the lease node vanished while waiting (session expired?)"),
                ));
            }
            if within_limit(children.len(), self.max_leases) {
                pending.keep();
                return Ok(Some(Lease {
                    client: self.client.clone(),
                    path,
                    token: stat.czxid,
                    released: false,
                }));
            }
            if !wait {
                pending.abandon().await;
                return Ok(None);
            }
            if let Some(watch) = watch {
                match watch.await {
                    Err(e) if e.is_session_expired() => return Err(e),
                    // A lease came or went, or the client stopped: count again
                    // (a stopped client fails there).
                    _ => {}
                }
            }
        }
    }
}

/// Whether `count` lease nodes (ours included) fit in `max` leases.
fn within_limit(count: usize, max: u32) -> bool {
    u64::try_from(count).is_ok_and(|c| c <= u64::from(max))
}

/// One of a [`Semaphore`]'s leases, held until released.
///
/// Release it with [`Lease::release`]; dropping it releases in the
/// background. The lease node is ephemeral, so a holder whose session ends
/// loses its lease too.
pub struct Lease {
    client: Client,
    path: String,
    token: i64,
    released: bool,
}

impl Lease {
    /// The lease node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The lease node's czxid: unique to this lease and greater than every
    /// lease granted before it was created.
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Gives the lease back by deleting its node. Idempotent; a node already
    /// gone (expired session) is fine.
    pub async fn release(&mut self) -> Result<(), Error> {
        if self.released {
            return Ok(());
        }
        match self.client.delete(&self.path, None).await {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::NoNode || e.is_session_expired() => {}
            Err(e) => return Err(e),
        }
        self.released = true;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            sequence::delete_in_background(&self.client, self.path.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::within_limit;

    #[test]
    fn a_lease_is_kept_while_the_count_fits() {
        assert!(within_limit(1, 1));
        assert!(within_limit(3, 3));
        assert!(!within_limit(4, 3));
        assert!(!within_limit(1, 0));
    }
}
