//! Several locks taken as one (Curator's `InterProcessMultiLock`).
//!
//! The member [`Lock`]s are acquired one by one in a fixed order — sorted
//! by path — so two multi-locks that share members can never each hold one
//! and wait for the other (no deadlock). If any member cannot be acquired
//! (an error, a timeout, or a `try_acquire` that finds it taken), the
//! members already held are released before returning. A holder of the
//! multi-lock excludes holders of any single member lock, and vice versa.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::MultiLock;
//! let transfer = MultiLock::new(&client, ["/locks/account-17", "/locks/account-4"]);
//! let mut guard = transfer.acquire().await?;
//! println!("fencing tokens {:?}", guard.fencing_tokens());
//! // ... move money between the two accounts ...
//! guard.release().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use tokio::time::Instant;

use super::lock::{Lock, LockGuard, LockState};
use crate::{Client, Error, ErrorCode};

/// A set of locks acquired and released together.
///
/// It exists for work that touches several independently locked resources
/// at once (a transfer between two accounts, a job on two shards): taking
/// the member locks by hand, in whatever order, invites deadlock and leaks
/// on the error paths.
#[derive(Clone)]
pub struct MultiLock {
    locks: Vec<Lock>,
}

impl MultiLock {
    /// A multi-lock over plain [`Lock`]s at `paths` (duplicates count once).
    pub fn new<I, S>(client: &Client, paths: I) -> MultiLock
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        MultiLock::from_locks(paths.into_iter().map(|p| Lock::new(client, p.as_ref())))
    }

    /// A multi-lock over existing [`Lock`]s (e.g. made
    /// [`with_data`](Lock::with_data)); duplicates by path count once.
    pub fn from_locks(locks: impl IntoIterator<Item = Lock>) -> MultiLock {
        let mut locks: Vec<Lock> = locks.into_iter().collect();
        locks.sort_by(|a, b| a.path().cmp(b.path()));
        locks.dedup_by(|a, b| a.path() == b.path());
        MultiLock { locks }
    }

    /// The member locks' paths, in acquisition order.
    pub fn paths(&self) -> Vec<&str> {
        self.locks.iter().map(Lock::path).collect()
    }

    /// Waits for every member lock. Dropping the future releases (in the
    /// background) what was held and gives up the place in line.
    pub async fn acquire(&self) -> Result<MultiLockGuard, Error> {
        match self.attempt(Mode::Wait(None)).await? {
            Some(g) => Ok(g),
            None => Err(Error::new(
                ErrorCode::SystemError,
                "acquire returned without the locks",
            )),
        }
    }

    /// Waits at most `timeout` for all of them; `None` (with every member
    /// released) if they were not all granted in time.
    pub async fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<MultiLockGuard>, Error> {
        self.attempt(Mode::Wait(Some(Instant::now() + timeout)))
            .await
    }

    /// Takes every member lock only if each is free right now.
    pub async fn try_acquire(&self) -> Result<Option<MultiLockGuard>, Error> {
        self.attempt(Mode::Try).await
    }

    async fn attempt(&self, mode: Mode) -> Result<Option<MultiLockGuard>, Error> {
        if self.locks.is_empty() {
            return Err(Error::bad_arguments("a multi-lock needs at least one lock"));
        }
        let mut held = MultiLockGuard {
            guards: Vec::with_capacity(self.locks.len()),
        };
        for lock in &self.locks {
            let got = match mode {
                Mode::Try => lock.try_acquire().await,
                Mode::Wait(None) => lock.acquire().await.map(Some),
                Mode::Wait(Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    lock.acquire_timeout(left).await
                }
            };
            match got {
                Ok(Some(guard)) => held.guards.push(guard),
                Ok(None) => {
                    let _ = held.release().await;
                    return Ok(None);
                }
                Err(e) => {
                    let _ = held.release().await;
                    return Err(e);
                }
            }
        }
        Ok(Some(held))
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Give up at once if a member is taken.
    Try,
    /// Wait, until the deadline if there is one.
    Wait(Option<Instant>),
}

/// Proof of holding every lock of a [`MultiLock`]. Release it with
/// [`MultiLockGuard::release`]; dropping it releases in the background.
pub struct MultiLockGuard {
    guards: Vec<LockGuard>,
}

impl MultiLockGuard {
    /// The member grants, in acquisition (path) order.
    pub fn guards(&self) -> &[LockGuard] {
        &self.guards
    }

    /// Each member grant's fencing token, in acquisition (path) order.
    pub fn fencing_tokens(&self) -> Vec<i64> {
        self.guards.iter().map(LockGuard::fencing_token).collect()
    }

    /// The weakest member state: `Lost` if any member is lost, else
    /// `Suspended` if any is suspended, else `Held`.
    pub fn state(&self) -> LockState {
        weakest(self.guards.iter().map(LockGuard::state))
    }

    /// Resolves once any member lock is lost (or the guard is released).
    pub async fn lost(&self) {
        if self.guards.is_empty() {
            return;
        }
        let each = self.guards.iter().map(|g| Box::pin(g.lost()));
        futures::future::select_all(each).await;
    }

    /// Releases every member, last acquired first. Idempotent. Tries them
    /// all even if one fails, and reports the first failure (a member that
    /// failed is still released in the background when the guard drops).
    pub async fn release(&mut self) -> Result<(), Error> {
        let mut first_error = None;
        for guard in self.guards.iter_mut().rev() {
            if let Err(e) = guard.release().await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// The state a group of holds is in as a whole.
fn weakest(states: impl Iterator<Item = LockState>) -> LockState {
    states.fold(LockState::Held, |acc, s| match (acc, s) {
        (LockState::Lost, _) | (_, LockState::Lost) => LockState::Lost,
        (LockState::Suspended, _) | (_, LockState::Suspended) => LockState::Suspended,
        _ => LockState::Held,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weakest_member_state_wins() {
        use LockState::*;
        assert_eq!(weakest([Held, Held].into_iter()), Held);
        assert_eq!(weakest([Held, Suspended, Held].into_iter()), Suspended);
        assert_eq!(weakest([Suspended, Lost, Held].into_iter()), Lost);
        assert_eq!(weakest(std::iter::empty()), Held);
    }
}
