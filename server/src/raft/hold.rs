//! Holding writes during a leadership hand-off.
//!
//! A leader that hands off must not have entries in flight that the new
//! leader lacks, and its writers must not see an error for it: new writes
//! (its own sessions' and those followers forward) wait at the gate
//! instead. Once leadership has moved they go on, forwarded to the new
//! leader. The gate opens by itself after [`MAX_HOLD`], so a hand-off that
//! fails half-way cannot stall writes for long.

use std::time::Duration;

use tokio::sync::{watch, Mutex, MutexGuard};

/// The longest writes are held by one hand-off.
pub const MAX_HOLD: Duration = Duration::from_secs(3);

/// The gate, shared by the proposer, the peer service and the hand-off.
pub struct Hold {
    held: watch::Sender<bool>,
    /// Held by a writer from the gate until its batch is in the log, so a
    /// hand-off can wait for the last batch that passed the gate.
    proposing: Mutex<()>,
}

impl Default for Hold {
    fn default() -> Self {
        Hold {
            held: watch::channel(false).0,
            proposing: Mutex::new(()),
        }
    }
}

/// Holds writes until dropped.
pub struct Held<'a> {
    hold: &'a Hold,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.hold.held.send_replace(false);
    }
}

impl Hold {
    /// Closes the gate and waits until no writer is between the gate and
    /// the log.
    pub async fn close(&self) -> Held<'_> {
        self.held.send_replace(true);
        drop(self.proposing.lock().await);
        Held { hold: self }
    }

    /// Waits for the gate to be open (at most [`MAX_HOLD`]); the guard is
    /// to be kept until the batch has been handed to consensus.
    pub async fn pass(&self) -> MutexGuard<'_, ()> {
        let deadline = tokio::time::Instant::now() + MAX_HOLD;
        loop {
            // Every batch passes here: only a closed gate costs a
            // subscription and a timer.
            if *self.held.borrow() {
                let mut rx = self.held.subscribe();
                let _ = tokio::time::timeout_at(deadline, rx.wait_for(|held| !held)).await;
            }
            let guard = self.proposing.lock().await;
            // Closed between the look and the lock: `close` has already
            // taken the lock and returned, so this batch must wait too.
            if !*self.held.borrow() || tokio::time::Instant::now() >= deadline {
                return guard;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn writers_wait_while_held_and_go_on_after() {
        let hold = Arc::new(Hold::default());
        let held = hold.close().await;
        let h = hold.clone();
        let writer = tokio::spawn(async move {
            let _g = h.pass().await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished(), "a writer passed a closed gate");
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), writer)
            .await
            .expect("the writer did not go on once the gate opened")
            .unwrap();
    }

    #[tokio::test]
    async fn closing_waits_for_a_writer_past_the_gate() {
        let hold = Arc::new(Hold::default());
        let guard = hold.pass().await;
        let h = hold.clone();
        let closer = tokio::spawn(async move {
            let _held = h.close().await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!closer.is_finished(), "closed with a writer past the gate");
        drop(guard);
        tokio::time::timeout(Duration::from_secs(1), closer)
            .await
            .unwrap()
            .unwrap();
    }
}
