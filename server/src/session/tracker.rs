//! The session tracker: when each session was last heard from, and which
//! have gone quiet past their timeout.
//!
//! It runs on the leader. Expiry is decided here but carried out by a
//! committed `close_session` txn, so ephemerals disappear only through the
//! log (invariant 3). Deadlines are checked once a tick; a restarted server
//! gives every session a fresh full timeout (so will a new leader, once
//! there are peers).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

struct Entry {
    timeout: Duration,
    deadline: Instant,
    closing: bool,
}

/// Liveness of every open session, fed by apply (open/close) and by the
/// connections (touch on every frame).
#[derive(Default)]
pub struct SessionTracker {
    inner: Mutex<HashMap<u64, Entry>>,
    /// Sessions heard from since the last report to the leader.
    heard: Mutex<HashSet<u64>>,
}

impl SessionTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A session was opened by a committed txn (or found in a snapshot).
    pub fn opened(&self, id: u64, timeout_ms: u32, now: Instant) {
        let timeout = Duration::from_millis(timeout_ms as u64);
        self.inner.lock().insert(
            id,
            Entry {
                timeout,
                deadline: now + timeout,
                closing: false,
            },
        );
    }

    /// Every session tracked.
    pub fn ids(&self) -> Vec<u64> {
        self.inner.lock().keys().copied().collect()
    }

    pub fn closed(&self, id: u64) {
        self.inner.lock().remove(&id);
    }

    /// Traffic from the session: push its deadline out. False if the session
    /// is unknown or already being closed.
    pub fn touch(&self, id: u64, now: Instant) -> bool {
        let live = match self.inner.lock().get_mut(&id) {
            Some(e) if !e.closing => {
                e.deadline = now + e.timeout;
                true
            }
            _ => false,
        };
        if live {
            self.heard.lock().insert(id);
        }
        live
    }

    /// The sessions heard from since the last call, for a follower's
    /// report to the leader (which alone expires sessions).
    pub fn take_heard(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.heard.lock().drain().collect();
        ids.sort_unstable();
        ids
    }

    /// True if the session is open and not being closed.
    pub fn is_live(&self, id: u64) -> bool {
        matches!(self.inner.lock().get(&id), Some(e) if !e.closing)
    }

    /// Sessions past their deadline; they are marked closing so each is
    /// proposed once. `reopen` undoes the mark if the proposal fails.
    pub fn take_expired(&self, now: Instant) -> Vec<u64> {
        let mut g = self.inner.lock();
        let mut out = Vec::new();
        for (id, e) in g.iter_mut() {
            if !e.closing && e.deadline <= now {
                e.closing = true;
                out.push(*id);
            }
        }
        out.sort_unstable();
        out
    }

    /// Marks a session as being closed by its client.
    pub fn mark_closing(&self, id: u64) {
        if let Some(e) = self.inner.lock().get_mut(&id) {
            e.closing = true;
        }
    }

    pub fn reopen(&self, id: u64, now: Instant) {
        if let Some(e) = self.inner.lock().get_mut(&id) {
            e.closing = false;
            e.deadline = now + e.timeout;
        }
    }

    /// A fresh full timeout for everyone (leadership gained, or restart).
    pub fn reset_all(&self, now: Instant) {
        for e in self.inner.lock().values_mut() {
            e.deadline = now + e.timeout;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_touch() {
        let t = SessionTracker::new();
        let t0 = Instant::now();
        t.opened(1, 1000, t0);
        t.opened(2, 1000, t0);
        assert!(t.take_expired(t0 + Duration::from_millis(999)).is_empty());
        assert!(t.touch(2, t0 + Duration::from_millis(900)));
        assert_eq!(t.take_expired(t0 + Duration::from_millis(1000)), vec![1]);
        assert!(
            t.take_expired(t0 + Duration::from_millis(1500)).is_empty(),
            "proposed once"
        );
        assert!(
            !t.touch(1, t0),
            "a closing session is not revived by traffic"
        );
        assert_eq!(t.take_expired(t0 + Duration::from_millis(1900)), vec![2]);
        t.reopen(2, t0);
        assert!(t.is_live(2));
        t.closed(1);
        assert!(!t.is_live(1) && t.is_live(2));
        assert_eq!(t.take_heard(), vec![2], "only live sessions are reported");
        assert!(t.take_heard().is_empty());
    }
}
