//! The connection state a client reports: Curator's five states, the
//! current one and a stream of changes.
//!
//! Recipes need to know the moment the client can no longer be sure of its
//! session (a lock holder must stop acting as the holder), and when it can
//! again. The session task is the only writer; every `Client` handle reads.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tokio::sync::broadcast;

/// Where a client stands with its session (Curator's `ConnectionState`).
///
/// ```text
///   Connected ──break──► Suspended ──resumed──► Reconnected ──break──► Suspended ...
///                           │  (session timeout passed, or the server says expired)
///                           ▼
///                          Lost ──new session (renew_expired_session)──► Reconnected
/// any state ──close()──► Closed (final)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The first session is open (the state right after `connect`).
    Connected,
    /// The connection broke; the session may still be alive and the client
    /// is trying to resume it. Treat anything the session owns (locks,
    /// leadership) as uncertain until `Reconnected` or `Lost`.
    Suspended,
    /// Connected again: after `Suspended`, the same session (its watches
    /// re-registered); after `Lost`, a new session.
    Reconnected,
    /// The session is gone (expired, or unreachable for longer than its
    /// timeout): its ephemerals and watches are gone too.
    Lost,
    /// `close()` was called. Final.
    Closed,
}

impl ConnectionState {
    /// True for `Connected` and `Reconnected`: requests go out now.
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            ConnectionState::Connected | ConnectionState::Reconnected
        )
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ConnectionState::Connected => "Connected",
            ConnectionState::Suspended => "Suspended",
            ConnectionState::Reconnected => "Reconnected",
            ConnectionState::Lost => "Lost",
            ConnectionState::Closed => "Closed",
        };
        f.write_str(name)
    }
}

/// How many state changes a slow [`StateStream`] may fall behind before it
/// skips ahead to the latest.
const STATE_BUFFER: usize = 64;

/// The current state and the channel that announces changes.
pub(crate) struct StateCell {
    current: Mutex<ConnectionState>,
    changes: broadcast::Sender<ConnectionState>,
}

impl StateCell {
    pub fn new(initial: ConnectionState) -> StateCell {
        StateCell {
            current: Mutex::new(initial),
            changes: broadcast::channel(STATE_BUFFER).0,
        }
    }

    pub fn get(&self) -> ConnectionState {
        *self.current.lock()
    }

    /// Moves to `next` and announces it. Returns false (and announces
    /// nothing) when the state is already `next`, or `Closed` (final).
    pub fn set(&self, next: ConnectionState, session_id: u64) -> bool {
        let mut current = self.current.lock();
        if *current == next || *current == ConnectionState::Closed {
            return false;
        }
        tracing::info!(
            session = format_args!("{session_id:#x}"),
            from = %*current,
            to = %next,
            "connection state changed"
        );
        *current = next;
        // No receivers is fine.
        let _ = self.changes.send(next);
        true
    }

    /// A stream of the changes after this call. Subscribing under the lock
    /// means a concurrent `set` is either in `get()` already or in the stream.
    pub fn subscribe(&self) -> StateStream {
        let _current = self.current.lock();
        StateStream::new(self.changes.subscribe())
    }
}

/// The connection state changes of a client, from the moment
/// [`Client::state_changes`](crate::Client::state_changes) was called.
///
/// A stream (rather than a callback) so a recipe can `select!` on it next to
/// its watches. A receiver that falls far behind skips to the latest state
/// rather than replaying stale ones. It ends when the client's session task
/// and every handle are gone.
#[must_use = "streams do nothing unless polled"]
pub struct StateStream {
    inner: BoxStream<'static, ConnectionState>,
}

impl StateStream {
    fn new(rx: broadcast::Receiver<ConnectionState>) -> StateStream {
        let inner = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(state) => return Some((state, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(latest) = drain_latest(&mut rx) {
                            return Some((latest, rx));
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        StateStream {
            inner: inner.boxed(),
        }
    }
}

/// Everything still buffered, keeping only the newest.
fn drain_latest(rx: &mut broadcast::Receiver<ConnectionState>) -> Option<ConnectionState> {
    use broadcast::error::TryRecvError;
    let mut latest = None;
    loop {
        match rx.try_recv() {
            Ok(state) => latest = Some(state),
            Err(TryRecvError::Lagged(_)) => continue,
            Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => return latest,
        }
    }
}

impl Stream for StateStream {
    type Item = ConnectionState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ConnectionState>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl fmt::Debug for StateStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStream").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use ConnectionState::*;

    #[test]
    fn set_announces_changes_only() {
        let cell = StateCell::new(Connected);
        let mut s = cell.subscribe();
        assert!(!cell.set(Connected, 1));
        assert!(cell.set(Suspended, 1));
        assert!(cell.set(Reconnected, 1));
        assert_eq!(cell.get(), Reconnected);
        assert_eq!(s.next().now_or_never(), Some(Some(Suspended)));
        assert_eq!(s.next().now_or_never(), Some(Some(Reconnected)));
        assert_eq!(s.next().now_or_never(), None, "nothing more yet");
    }

    #[test]
    fn closed_is_final() {
        let cell = StateCell::new(Connected);
        assert!(cell.set(Closed, 1));
        assert!(!cell.set(Reconnected, 1));
        assert!(!cell.set(Lost, 1));
        assert_eq!(cell.get(), Closed);
    }

    #[test]
    fn a_stream_sees_only_later_changes() {
        let cell = StateCell::new(Connected);
        cell.set(Suspended, 1);
        let mut s = cell.subscribe();
        cell.set(Lost, 1);
        assert_eq!(s.next().now_or_never(), Some(Some(Lost)));
    }

    #[test]
    fn a_lagging_stream_skips_to_the_latest() {
        let cell = StateCell::new(Connected);
        let mut s = cell.subscribe();
        for _ in 0..STATE_BUFFER {
            cell.set(Suspended, 1);
            cell.set(Reconnected, 1);
        }
        cell.set(Suspended, 1);
        cell.set(Lost, 1);
        assert_eq!(s.next().now_or_never(), Some(Some(Lost)));
        assert_eq!(s.next().now_or_never(), None);
    }

    #[test]
    fn the_stream_ends_with_the_cell() {
        let cell = StateCell::new(Connected);
        let mut s = cell.subscribe();
        cell.set(Suspended, 1);
        drop(cell);
        assert_eq!(s.next().now_or_never(), Some(Some(Suspended)));
        assert_eq!(s.next().now_or_never(), Some(None));
    }
}
