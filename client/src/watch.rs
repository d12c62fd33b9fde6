//! Watches: the handles callers hold, and the table that routes server
//! events to them.
//!
//! The server sends one event per (session, path, type) no matter how many
//! local watchers asked, so fan-out happens here, following ZooKeeper's
//! rules:
//!
//! | event                  | one-shot data/exists on P | one-shot child on P | persistent on P | recursive on P or an ancestor |
//! |------------------------|:-------------------------:|:-------------------:|:---------------:|:-----------------------------:|
//! | `NodeCreated`          | yes                       |                     | yes             | yes                           |
//! | `NodeDataChanged`      | yes                       |                     | yes             | yes                           |
//! | `NodeDeleted`          | yes                       | yes                 | yes             | yes                           |
//! | `NodeChildrenChanged`  |                           | yes                 | yes             | no                            |
//!
//! One-shot watches are removed once delivered; persistent ones stay.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::path::parent;
use crate::types::{AddWatchMode, EventType, WatchedEvent, WatcherType};

/// The sending half of a [`OneshotWatch`].
pub(crate) type OneshotSender = oneshot::Sender<Result<WatchedEvent, Error>>;

/// What travels to a [`WatchStream`].
#[derive(Debug)]
pub(crate) enum StreamSignal {
    Event(WatchedEvent),
    /// The session went away; the stream ends after this.
    Lost(Error),
}

/// The sending half of a [`WatchStream`].
pub(crate) type StreamSender = mpsc::UnboundedSender<StreamSignal>;

/// A one-shot watch set by `get_data_w`, `exists_w` or `get_children_w`.
///
/// It is a future so waiting for "the next change" composes with `select!`
/// and timeouts. It resolves once: with the event, or with `SessionExpired`
/// if the session is lost first (or `ConnectionLoss` if the client stopped
/// because every handle was dropped); the watch cannot be trusted then, so
/// re-read and re-watch. A broken connection alone does not resolve it: the
/// client re-registers the watch when it reconnects, and it fires then if
/// the node changed in between.
#[derive(Debug)]
#[must_use = "a watch does nothing unless awaited"]
pub struct OneshotWatch {
    rx: oneshot::Receiver<Result<WatchedEvent, Error>>,
}

impl OneshotWatch {
    pub(crate) fn channel() -> (OneshotSender, OneshotWatch) {
        let (tx, rx) = oneshot::channel();
        (tx, OneshotWatch { rx })
    }
}

impl Future for OneshotWatch {
    type Output = Result<WatchedEvent, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::connection_loss(
                "the client stopped before the watch fired",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The events of a persistent (or persistent-recursive) watch set by
/// `add_watch`.
///
/// A stream because a persistent watch fires many times. It ends when the
/// watch is removed (after yielding `PersistentWatchRemoved`) or when the
/// session is lost; [`WatchStream::end_reason`] then tells which. It does
/// not end when the connection breaks: the client re-registers it on
/// reconnecting (as in ZooKeeper, changes made while disconnected are not
/// replayed to it).
/// Dropping it stops local delivery; the server-side watch stays until
/// `remove_watches` or the end of the session.
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct WatchStream {
    rx: mpsc::UnboundedReceiver<StreamSignal>,
    end_reason: Option<Error>,
    done: bool,
}

impl WatchStream {
    pub(crate) fn channel() -> (StreamSender, WatchStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            tx,
            WatchStream {
                rx,
                end_reason: None,
                done: false,
            },
        )
    }

    /// Why the stream ended: `Some(error)` (`SessionExpired`) if the
    /// session was lost, `None` while it runs or if the watch was removed.
    pub fn end_reason(&self) -> Option<&Error> {
        self.end_reason.as_ref()
    }
}

impl Stream for WatchStream {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(StreamSignal::Event(event))) => Poll::Ready(Some(event)),
            Poll::Ready(Some(StreamSignal::Lost(error))) => {
                self.end_reason = Some(error);
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The kinds of one-shot watch. Data and exists watches route alike; they
/// are kept apart because re-registration after a reconnect names them
/// separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OneshotKind {
    Data,
    Exist,
    Child,
}

/// Every watch this client holds, by client path.
///
/// Pure bookkeeping (no I/O): the session task owns one and feeds it the
/// server's events in order.
#[derive(Debug, Default)]
pub(crate) struct WatchRegistry {
    data: HashMap<String, Vec<OneshotSender>>,
    exist: HashMap<String, Vec<OneshotSender>>,
    child: HashMap<String, Vec<OneshotSender>>,
    persistent: HashMap<String, Vec<StreamSender>>,
    recursive: HashMap<String, Vec<StreamSender>>,
}

impl WatchRegistry {
    /// Registers a one-shot watch (after the server accepted it).
    pub fn add_oneshot(&mut self, kind: OneshotKind, path: String, tx: OneshotSender) {
        let list = self.oneshots_mut(kind).entry(path).or_default();
        list.retain(|tx| !tx.is_closed());
        list.push(tx);
    }

    /// Registers a persistent or recursive watch (after the server accepted it).
    pub fn add_stream(&mut self, mode: AddWatchMode, path: String, tx: StreamSender) {
        let list = self.streams_mut(mode).entry(path).or_default();
        list.retain(|tx| !tx.is_closed());
        list.push(tx);
    }

    /// Routes one server event; returns how many watchers it reached.
    pub fn deliver(&mut self, event: &WatchedEvent) -> usize {
        let path = event.path.as_str();
        let mut reached = 0;
        match event.event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                reached += fire(&mut self.data, path, event);
                reached += fire(&mut self.exist, path, event);
            }
            EventType::NodeDeleted => {
                reached += fire(&mut self.data, path, event);
                reached += fire(&mut self.exist, path, event);
                reached += fire(&mut self.child, path, event);
            }
            EventType::NodeChildrenChanged => {
                reached += fire(&mut self.child, path, event);
            }
            // The server announcing a removal: treat it as the removal.
            EventType::DataWatchRemoved => {
                reached += fire(&mut self.data, path, event);
                reached += fire(&mut self.exist, path, event);
                return reached;
            }
            EventType::ChildWatchRemoved => {
                return fire(&mut self.child, path, event);
            }
            EventType::PersistentWatchRemoved => {
                reached += end_streams(&mut self.persistent, path, event);
                reached += end_streams(&mut self.recursive, path, event);
                return reached;
            }
        }
        reached += send_streams(&mut self.persistent, path, event);
        if event.event_type != EventType::NodeChildrenChanged {
            let mut at = Some(path);
            while let Some(p) = at {
                reached += send_streams(&mut self.recursive, p, event);
                at = parent(p);
            }
        }
        reached
    }

    /// Drops the watches a successful `remove_watches(path, which)` removed,
    /// telling each watcher with the matching `*WatchRemoved` event.
    /// Returns how many watchers were removed.
    pub fn remove(&mut self, path: &str, which: WatcherType) -> usize {
        let event = |event_type| WatchedEvent {
            event_type,
            path: path.to_string(),
            zxid: 0,
        };
        let data_removed = event(EventType::DataWatchRemoved);
        let child_removed = event(EventType::ChildWatchRemoved);
        let persistent_removed = event(EventType::PersistentWatchRemoved);
        let mut removed = 0;
        if matches!(which, WatcherType::Data | WatcherType::Any) {
            removed += fire(&mut self.data, path, &data_removed);
            removed += fire(&mut self.exist, path, &data_removed);
            removed += end_streams(&mut self.recursive, path, &persistent_removed);
        }
        if matches!(which, WatcherType::Children | WatcherType::Any) {
            removed += fire(&mut self.child, path, &child_removed);
        }
        removed += end_streams(&mut self.persistent, path, &persistent_removed);
        removed
    }

    /// The session is gone: every watcher learns why, and the table empties.
    pub fn fail_all(&mut self, error: &Error) {
        for map in [&mut self.data, &mut self.exist, &mut self.child] {
            for (_, list) in map.drain() {
                for tx in list {
                    let _ = tx.send(Err(error.clone()));
                }
            }
        }
        for map in [&mut self.persistent, &mut self.recursive] {
            for (_, list) in map.drain() {
                for tx in list {
                    let _ = tx.send(StreamSignal::Lost(error.clone()));
                }
            }
        }
    }

    /// The paths to re-register after a reconnect, each once, sorted.
    /// Watchers whose handle was dropped are forgotten first, so nothing is
    /// re-registered for nobody.
    pub fn paths(&mut self) -> WatchedPaths {
        fn live<T>(map: &mut HashMap<String, Vec<T>>, closed: impl Fn(&T) -> bool) -> Vec<String> {
            map.retain(|_, list| {
                list.retain(|tx| !closed(tx));
                !list.is_empty()
            });
            let mut paths: Vec<String> = map.keys().cloned().collect();
            paths.sort();
            paths
        }
        WatchedPaths {
            data: live(&mut self.data, OneshotSender::is_closed),
            exist: live(&mut self.exist, OneshotSender::is_closed),
            child: live(&mut self.child, OneshotSender::is_closed),
            persistent: live(&mut self.persistent, StreamSender::is_closed),
            recursive: live(&mut self.recursive, StreamSender::is_closed),
        }
    }

    /// Number of registered watchers (live or not yet pruned).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let one: usize = [&self.data, &self.exist, &self.child]
            .iter()
            .map(|m| m.values().map(Vec::len).sum::<usize>())
            .sum();
        let many: usize = [&self.persistent, &self.recursive]
            .iter()
            .map(|m| m.values().map(Vec::len).sum::<usize>())
            .sum();
        one + many
    }

    fn oneshots_mut(&mut self, kind: OneshotKind) -> &mut HashMap<String, Vec<OneshotSender>> {
        match kind {
            OneshotKind::Data => &mut self.data,
            OneshotKind::Exist => &mut self.exist,
            OneshotKind::Child => &mut self.child,
        }
    }

    fn streams_mut(&mut self, mode: AddWatchMode) -> &mut HashMap<String, Vec<StreamSender>> {
        match mode {
            AddWatchMode::Persistent => &mut self.persistent,
            AddWatchMode::PersistentRecursive => &mut self.recursive,
        }
    }
}

/// The paths a client has watches on, by kind (client paths).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WatchedPaths {
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub recursive: Vec<String>,
}

impl WatchedPaths {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }
}

/// Resolves and removes every one-shot watch on `path`.
fn fire(map: &mut HashMap<String, Vec<OneshotSender>>, path: &str, event: &WatchedEvent) -> usize {
    let Some(list) = map.remove(path) else {
        return 0;
    };
    let mut reached = 0;
    for tx in list {
        if tx.send(Ok(event.clone())).is_ok() {
            reached += 1;
        }
    }
    reached
}

/// Sends to every stream on `path`, forgetting streams whose receiver is gone.
fn send_streams(
    map: &mut HashMap<String, Vec<StreamSender>>,
    path: &str,
    event: &WatchedEvent,
) -> usize {
    let Some(list) = map.get_mut(path) else {
        return 0;
    };
    list.retain(|tx| tx.send(StreamSignal::Event(event.clone())).is_ok());
    let reached = list.len();
    if list.is_empty() {
        map.remove(path);
    }
    reached
}

/// Sends a final event to every stream on `path` and drops them (ending them).
fn end_streams(
    map: &mut HashMap<String, Vec<StreamSender>>,
    path: &str,
    event: &WatchedEvent,
) -> usize {
    let Some(list) = map.remove(path) else {
        return 0;
    };
    list.into_iter()
        .filter(|tx| tx.send(StreamSignal::Event(event.clone())).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use futures::FutureExt;
    use futures::StreamExt;

    fn ev(event_type: EventType, path: &str) -> WatchedEvent {
        WatchedEvent {
            event_type,
            path: path.into(),
            zxid: 7,
        }
    }

    fn oneshot(reg: &mut WatchRegistry, kind: OneshotKind, path: &str) -> OneshotWatch {
        let (tx, w) = OneshotWatch::channel();
        reg.add_oneshot(kind, path.into(), tx);
        w
    }

    fn stream(reg: &mut WatchRegistry, mode: AddWatchMode, path: &str) -> WatchStream {
        let (tx, s) = WatchStream::channel();
        reg.add_stream(mode, path.into(), tx);
        s
    }

    /// The next ready item of a stream, without waiting.
    fn ready<S: Stream + Unpin>(s: &mut S) -> Option<Option<S::Item>> {
        s.next().now_or_never()
    }

    #[test]
    fn data_change_reaches_data_and_exists_watches_once() {
        let mut reg = WatchRegistry::default();
        let d1 = oneshot(&mut reg, OneshotKind::Data, "/a");
        let d2 = oneshot(&mut reg, OneshotKind::Data, "/a");
        let e = oneshot(&mut reg, OneshotKind::Exist, "/a");
        let c = oneshot(&mut reg, OneshotKind::Child, "/a");
        let other = oneshot(&mut reg, OneshotKind::Data, "/b");

        assert_eq!(reg.deliver(&ev(EventType::NodeDataChanged, "/a")), 3);
        for w in [d1, d2, e] {
            let got = w.now_or_never().expect("resolved").expect("event");
            assert_eq!(got, ev(EventType::NodeDataChanged, "/a"));
        }
        // One-shot: a second event reaches nobody on /a's data watches.
        assert_eq!(reg.deliver(&ev(EventType::NodeDataChanged, "/a")), 0);
        let mut c = c;
        assert!((&mut c).now_or_never().is_none());
        let mut other = other;
        assert!((&mut other).now_or_never().is_none());
        assert_eq!(reg.len(), 2);
    }

    #[test]
    fn child_events_reach_child_watches_and_delete_reaches_all() {
        let mut reg = WatchRegistry::default();
        let c = oneshot(&mut reg, OneshotKind::Child, "/a");
        let d = oneshot(&mut reg, OneshotKind::Data, "/a");
        assert_eq!(reg.deliver(&ev(EventType::NodeChildrenChanged, "/a")), 1);
        assert_eq!(
            c.now_or_never().unwrap().unwrap().event_type,
            EventType::NodeChildrenChanged
        );

        let c = oneshot(&mut reg, OneshotKind::Child, "/a");
        assert_eq!(reg.deliver(&ev(EventType::NodeDeleted, "/a")), 2);
        assert_eq!(
            c.now_or_never().unwrap().unwrap().event_type,
            EventType::NodeDeleted
        );
        assert_eq!(
            d.now_or_never().unwrap().unwrap().event_type,
            EventType::NodeDeleted
        );
        assert_eq!(reg.len(), 0);
    }

    #[test]
    fn created_reaches_exists_watch() {
        let mut reg = WatchRegistry::default();
        let e = oneshot(&mut reg, OneshotKind::Exist, "/new");
        assert_eq!(reg.deliver(&ev(EventType::NodeCreated, "/new")), 1);
        assert_eq!(
            e.now_or_never().unwrap().unwrap().event_type,
            EventType::NodeCreated
        );
    }

    #[test]
    fn persistent_watch_gets_every_type_on_its_path_only_and_stays() {
        let mut reg = WatchRegistry::default();
        let mut p = stream(&mut reg, AddWatchMode::Persistent, "/a");
        for t in [
            EventType::NodeCreated,
            EventType::NodeDataChanged,
            EventType::NodeChildrenChanged,
            EventType::NodeDeleted,
        ] {
            assert_eq!(reg.deliver(&ev(t, "/a")), 1);
            assert_eq!(ready(&mut p), Some(Some(ev(t, "/a"))));
        }
        assert_eq!(reg.deliver(&ev(EventType::NodeDataChanged, "/a/b")), 0);
        assert_eq!(ready(&mut p), None);
        assert_eq!(reg.len(), 1);
    }

    #[test]
    fn recursive_watch_covers_descendants_but_not_child_events() {
        let mut reg = WatchRegistry::default();
        let mut r = stream(&mut reg, AddWatchMode::PersistentRecursive, "/a");
        let mut root = stream(&mut reg, AddWatchMode::PersistentRecursive, "/");
        assert_eq!(reg.deliver(&ev(EventType::NodeCreated, "/a/b/c")), 2);
        assert_eq!(
            ready(&mut r),
            Some(Some(ev(EventType::NodeCreated, "/a/b/c")))
        );
        assert_eq!(
            ready(&mut root),
            Some(Some(ev(EventType::NodeCreated, "/a/b/c")))
        );

        assert_eq!(reg.deliver(&ev(EventType::NodeDataChanged, "/a")), 2);
        assert_eq!(reg.deliver(&ev(EventType::NodeDataChanged, "/ab")), 1);
        assert_eq!(reg.deliver(&ev(EventType::NodeChildrenChanged, "/a")), 0);
        assert_eq!(
            ready(&mut r),
            Some(Some(ev(EventType::NodeDataChanged, "/a")))
        );
        assert_eq!(ready(&mut r), None);
    }

    #[test]
    fn dropped_watchers_are_forgotten() {
        let mut reg = WatchRegistry::default();
        let s = stream(&mut reg, AddWatchMode::Persistent, "/a");
        drop(s);
        assert_eq!(reg.deliver(&ev(EventType::NodeDataChanged, "/a")), 0);
        assert_eq!(reg.len(), 0);
        let w = oneshot(&mut reg, OneshotKind::Data, "/a");
        drop(w);
        let _w2 = oneshot(&mut reg, OneshotKind::Data, "/a");
        assert_eq!(reg.len(), 1, "closed senders are pruned on add");
    }

    #[test]
    fn remove_tells_each_watcher_and_ends_streams() {
        let mut reg = WatchRegistry::default();
        let d = oneshot(&mut reg, OneshotKind::Data, "/a");
        let c = oneshot(&mut reg, OneshotKind::Child, "/a");
        let mut p = stream(&mut reg, AddWatchMode::Persistent, "/a");
        let mut r = stream(&mut reg, AddWatchMode::PersistentRecursive, "/a");

        assert_eq!(reg.remove("/a", WatcherType::Children), 2);
        assert_eq!(
            c.now_or_never().unwrap().unwrap().event_type,
            EventType::ChildWatchRemoved
        );
        assert_eq!(
            ready(&mut p).unwrap().unwrap().event_type,
            EventType::PersistentWatchRemoved
        );
        assert_eq!(ready(&mut p), Some(None));
        assert!(p.end_reason().is_none());

        assert_eq!(reg.remove("/a", WatcherType::Data), 2);
        assert_eq!(
            d.now_or_never().unwrap().unwrap().event_type,
            EventType::DataWatchRemoved
        );
        assert_eq!(
            ready(&mut r).unwrap().unwrap().event_type,
            EventType::PersistentWatchRemoved
        );
        assert_eq!(ready(&mut r), Some(None));
        assert_eq!(reg.len(), 0);
    }

    #[test]
    fn fail_all_resolves_oneshots_and_ends_streams_with_the_reason() {
        let mut reg = WatchRegistry::default();
        let d = oneshot(&mut reg, OneshotKind::Data, "/a");
        let mut p = stream(&mut reg, AddWatchMode::PersistentRecursive, "/");
        reg.fail_all(&Error::new(ErrorCode::SessionExpired, "expired"));
        let err = d.now_or_never().unwrap().unwrap_err();
        assert_eq!(err.code(), ErrorCode::SessionExpired);
        assert_eq!(ready(&mut p), Some(None));
        assert_eq!(
            p.end_reason().map(Error::code),
            Some(ErrorCode::SessionExpired)
        );
        assert_eq!(reg.len(), 0);
    }

    #[test]
    fn paths_lists_live_watches_once_by_kind() {
        let mut reg = WatchRegistry::default();
        let _d1 = oneshot(&mut reg, OneshotKind::Data, "/b");
        let _d2 = oneshot(&mut reg, OneshotKind::Data, "/b");
        let _d3 = oneshot(&mut reg, OneshotKind::Data, "/a");
        let gone = oneshot(&mut reg, OneshotKind::Data, "/gone");
        drop(gone);
        let _e = oneshot(&mut reg, OneshotKind::Exist, "/new");
        let _c = oneshot(&mut reg, OneshotKind::Child, "/a");
        let _p = stream(&mut reg, AddWatchMode::Persistent, "/p");
        let _r = stream(&mut reg, AddWatchMode::PersistentRecursive, "/");
        let dropped = stream(&mut reg, AddWatchMode::Persistent, "/dropped");
        drop(dropped);
        let paths = reg.paths();
        assert_eq!(
            paths,
            WatchedPaths {
                data: vec!["/a".into(), "/b".into()],
                exist: vec!["/new".into()],
                child: vec!["/a".into()],
                persistent: vec!["/p".into()],
                recursive: vec!["/".into()],
            }
        );
        assert!(!paths.is_empty());
        assert_eq!(reg.len(), 7, "dropped watchers are forgotten");
        assert!(WatchRegistry::default().paths().is_empty());
    }

    #[test]
    fn dropped_sender_means_connection_loss() {
        let (tx, w) = OneshotWatch::channel();
        drop(tx);
        let err = w.now_or_never().unwrap().unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConnectionLoss);
    }
}
