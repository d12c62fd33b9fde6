//! A connection's outgoing frames: one bounded queue for both protocols.
//!
//! Answers and watch events are pushed from the session core (events from
//! apply, under the tree lock, so pushing never waits) and taken by the
//! protocol's writer (the gRPC response stream, or the ZooKeeper socket
//! writer). A client that stops reading must not grow the server's memory:
//! once more than the capacity frames wait, or frames have waited
//! with none taken for the stall limit, the connection is *cut* — its
//! queued frames are dropped, the writer gets one error and then the end,
//! and the session lives on (the client resumes it on a new connection,
//! with its watches and last seen zxid, as after any disconnection).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::message::Outbound;

/// Why a connection was cut: the last thing its writer gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut(pub String);

/// One outgoing item: a frame, or the cut that ends the stream.
pub type Item = Result<Outbound, Cut>;

/// The most frames a connection may have unread.
pub const CAPACITY: usize = 10_000;

struct State {
    frames: VecDeque<Outbound>,
    senders: usize,
    /// Why the connection was cut; the writer gets it once, then the end.
    cut: Option<String>,
    cut_reported: bool,
    /// When the writer last took a frame (or the queue last became non-empty).
    last_progress: Instant,
}

/// The queue shared by a connection's senders ([`Out`]) and its writer
/// ([`OutRx`]).
pub struct OutQueue {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
}

/// The sending side; cloned for each producer. When the last one is
/// dropped the writer sees the end after the queued frames.
pub struct Out(Arc<OutQueue>);

/// The writer's side.
pub struct OutRx(Arc<OutQueue>);

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// A new queue holding at most `capacity` unread frames.
pub fn channel(capacity: usize) -> (Out, OutRx) {
    let q = Arc::new(OutQueue {
        state: Mutex::new(State {
            frames: VecDeque::new(),
            senders: 1,
            cut: None,
            cut_reported: false,
            last_progress: Instant::now(),
        }),
        ready: Notify::new(),
        capacity,
    });
    (Out(q.clone()), OutRx(q))
}

impl OutQueue {
    fn cut_locked(&self, st: &mut State, why: String) {
        if st.cut.is_none() {
            st.frames.clear();
            st.frames.shrink_to_fit();
            st.cut = Some(why);
        }
    }
}

impl Out {
    /// Queues a frame without waiting. Fails once the connection is cut;
    /// cuts it when the client is more than the capacity behind.
    pub fn send(&self, item: Outbound) -> Result<(), Closed> {
        let mut st = self.0.state.lock();
        if st.cut.is_some() {
            return Err(Closed);
        }
        if st.frames.len() >= self.0.capacity {
            let why = format!(
                "the client left more than {} frames unread; reconnect",
                self.0.capacity
            );
            self.0.cut_locked(&mut st, why);
            drop(st);
            self.0.ready.notify_one();
            return Err(Closed);
        }
        if st.frames.is_empty() {
            st.last_progress = Instant::now();
        }
        st.frames.push_back(item);
        drop(st);
        self.0.ready.notify_one();
        Ok(())
    }

    /// Cuts the connection: queued frames are dropped and the writer ends.
    pub fn cut(&self, why: impl Into<String>) {
        self.0.cut_locked(&mut self.0.state.lock(), why.into());
        self.0.ready.notify_one();
    }

    /// How long frames have waited with none taken (`None` when nothing
    /// waits).
    pub fn stalled_for(&self) -> Option<Duration> {
        let st = self.0.state.lock();
        (!st.frames.is_empty()).then(|| st.last_progress.elapsed())
    }

    /// Whether the connection was cut.
    pub fn is_cut(&self) -> bool {
        self.0.state.lock().cut.is_some()
    }
}

impl Clone for Out {
    fn clone(&self) -> Out {
        self.0.state.lock().senders += 1;
        Out(self.0.clone())
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let last = {
            let mut st = self.0.state.lock();
            st.senders -= 1;
            st.senders == 0
        };
        if last {
            self.0.ready.notify_one();
        }
    }
}

impl OutRx {
    /// The next item without waiting: `Ok(Some)` an item, `Ok(None)` nothing
    /// yet, `Err(())` the end.
    fn poll_item(&self) -> Result<Option<Item>, ()> {
        let mut st = self.0.state.lock();
        if let Some(why) = &st.cut {
            if st.cut_reported {
                return Err(());
            }
            let cut = Cut(why.clone());
            st.cut_reported = true;
            return Ok(Some(Err(cut)));
        }
        match st.frames.pop_front() {
            Some(item) => {
                st.last_progress = Instant::now();
                Ok(Some(Ok(item)))
            }
            None if st.senders == 0 => Err(()),
            None => Ok(None),
        }
    }

    /// The next item, waiting for one; `None` at the end (every sender
    /// gone and the queue drained, or after the cut was reported).
    pub async fn recv(&mut self) -> Option<Item> {
        loop {
            let ready = self.0.ready.notified();
            match self.poll_item() {
                Ok(Some(item)) => return Some(item),
                Err(()) => return None,
                Ok(None) => ready.await,
            }
        }
    }

    /// The next item if one is queued now.
    pub fn try_recv(&mut self) -> Option<Item> {
        self.poll_item().ok().flatten()
    }

    /// The items as a stream, for a gRPC response.
    pub fn into_stream(self) -> impl futures::Stream<Item = Item> + Send {
        futures::stream::unfold(
            self,
            |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong(zxid: i64) -> Outbound {
        Outbound::Pong { zxid }
    }

    fn zxid(item: Item) -> i64 {
        match item.expect("a frame") {
            Outbound::Pong { zxid } => zxid,
            other => panic!("not a pong: {other:?}"),
        }
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_the_end_follows_the_last_sender() {
        let (out, mut rx) = channel(10);
        let out2 = out.clone();
        out.send(pong(1)).unwrap();
        out2.send(pong(2)).unwrap();
        drop(out);
        assert_eq!(zxid(rx.recv().await.unwrap()), 1);
        out2.send(pong(3)).unwrap();
        drop(out2);
        assert_eq!(zxid(rx.recv().await.unwrap()), 2);
        assert_eq!(zxid(rx.recv().await.unwrap()), 3);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_client_too_far_behind_is_cut_and_the_queue_freed() {
        let (out, mut rx) = channel(3);
        for z in 0..3 {
            out.send(pong(z)).unwrap();
        }
        assert_eq!(out.send(pong(3)), Err(Closed));
        assert!(out.is_cut());
        assert_eq!(out.stalled_for(), None, "the queued frames are dropped");
        assert_eq!(out.send(pong(4)), Err(Closed));
        let err = rx.recv().await.unwrap().unwrap_err();
        assert!(err.0.contains("more than 3 frames"), "{err:?}");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_writer_wakes_for_a_frame_and_for_a_cut() {
        let (out, mut rx) = channel(10);
        let t = tokio::spawn(async move { rx.recv().await.map(zxid) });
        tokio::task::yield_now().await;
        out.send(pong(7)).unwrap();
        assert_eq!(t.await.unwrap(), Some(7));

        let (out, mut rx) = channel(10);
        let t = tokio::spawn(async move {
            let first = rx.recv().await;
            (first.map(|i| i.is_err()), rx.recv().await.is_none())
        });
        tokio::task::yield_now().await;
        out.cut("stalled");
        assert_eq!(t.await.unwrap(), (Some(true), true));
    }

    #[test]
    fn stalled_for_counts_from_the_last_frame_taken() {
        let (out, mut rx) = channel(10);
        assert_eq!(out.stalled_for(), None);
        out.send(pong(1)).unwrap();
        assert!(out.stalled_for().is_some());
        assert!(rx.try_recv().is_some());
        assert_eq!(out.stalled_for(), None);
    }
}
