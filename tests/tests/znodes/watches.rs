//! Watches against a real server: one-shot, persistent and recursive
//! watches, their removal, events caused by session close, and the
//! ordering promise of invariant 2 (an event reaches the client before any
//! response that reflects its change), checked frame by frame on the wire.

use futures::StreamExt;
use std::collections::HashMap;
use warden_client::{
    AddWatchMode, Client, CreateMode, CreateOptions, ErrorCode, EventType, WatchStream,
    WatchedEvent, WatcherType,
};
use warden_proto::v1 as pb;
use warden_proto::v1::request::Op as ReqOp;
use warden_proto::v1::server_frame::Frame;
use warden_tests::raw::Raw;
use warden_tests::{connect, InProcServer, STEP};

async fn fired(w: warden_client::OneshotWatch) -> WatchedEvent {
    tokio::time::timeout(STEP, w)
        .await
        .expect("the watch fires in time")
        .expect("the watch fires (not lost)")
}

async fn next_event(s: &mut WatchStream) -> WatchedEvent {
    tokio::time::timeout(STEP, s.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

async fn next_events(s: &mut WatchStream, n: usize) -> Vec<(EventType, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let e = next_event(s).await;
        out.push((e.event_type, e.path));
    }
    out
}

fn ev(t: EventType, p: &str) -> (EventType, String) {
    (t, p.to_string())
}

fn get_data(path: &str, watch: bool) -> ReqOp {
    ReqOp::GetData(pb::GetData {
        path: path.into(),
        watch,
    })
}

fn set_data(path: &str, data: &[u8]) -> ReqOp {
    ReqOp::SetData(pb::SetData {
        path: path.into(),
        data: data.to_vec(),
        version: None,
        null_data: false,
    })
}

fn create(path: &str) -> ReqOp {
    ReqOp::Create(pb::Create {
        path: path.into(),
        data: vec![],
        mode: pb::CreateMode::Persistent as i32,
        ttl_ms: 0,
        acl: vec![],
        null_data: false,
    })
}

fn exists(path: &str, watch: bool) -> ReqOp {
    ReqOp::Exists(pb::Exists {
        path: path.into(),
        watch,
    })
}

fn is_event(f: &Frame, ty: pb::EventType, path: &str) -> bool {
    matches!(f, Frame::WatchEvent(e) if e.r#type == ty as i32 && e.path == path)
}

fn data_stat(r: &pb::Response) -> pb::Stat {
    match &r.result {
        Some(pb::response::Result::Data(d)) => d.stat.expect("a stat"),
        other => panic!("not a data result: {other:?} (error {})", r.error),
    }
}

fn ok(r: &pb::Response) {
    assert_eq!(ErrorCode::from_i32(r.error), ErrorCode::Ok, "{r:?}");
}

// ----- one-shot watches ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_watch_fires_on_change_and_on_delete() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let writer = connect(&server.addr(), Default::default()).await;
    c.create("/x", "0", CreateMode::Persistent).await.unwrap();

    let (data, _, w) = c.get_data_w("/x").await.unwrap();
    assert_eq!(data, b"0");
    let stat = writer.set_data("/x", "1", None).await.unwrap();
    let e = fired(w).await;
    assert_eq!(e.event_type, EventType::NodeDataChanged);
    assert_eq!(e.path, "/x");
    assert_eq!(e.zxid, stat.mzxid);

    // exists_w on an existing node is a data watch too.
    let (st, w) = c.exists_w("/x").await.unwrap();
    assert!(st.is_some());
    writer.set_data("/x", "2", None).await.unwrap();
    assert_eq!(fired(w).await.event_type, EventType::NodeDataChanged);

    let (_, _, w) = c.get_data_w("/x").await.unwrap();
    writer.delete("/x", None).await.unwrap();
    let e = fired(w).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDeleted, "/x")
    );

    // No watch is set when the read fails.
    assert_eq!(
        c.get_data_w("/x").await.unwrap_err().code(),
        ErrorCode::NoNode
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_watch_on_a_missing_node_fires_on_create() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let writer = connect(&server.addr(), Default::default()).await;

    let (stat, w) = c.exists_w("/later").await.unwrap();
    assert_eq!(stat, None);
    let (_, created) = writer
        .create_with("/later", "", CreateOptions::new(CreateMode::Persistent))
        .await
        .unwrap();
    let e = fired(w).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/later")
    );
    assert_eq!(e.zxid, created.czxid);

    // And then it fires on delete once re-set.
    let (stat, w) = c.exists_w("/later").await.unwrap();
    assert!(stat.is_some());
    writer.delete("/later", None).await.unwrap();
    assert_eq!(fired(w).await.event_type, EventType::NodeDeleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_watch_fires_on_child_create_delete_and_own_delete() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let writer = connect(&server.addr(), Default::default()).await;
    c.create("/p", "", CreateMode::Persistent).await.unwrap();

    let (children, w) = c.get_children_w("/p").await.unwrap();
    assert!(children.is_empty());
    writer
        .create("/p/a", "", CreateMode::Persistent)
        .await
        .unwrap();
    let e = fired(w).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/p")
    );

    // A data change of the parent is not a child event: the next event is
    // the child's deletion.
    let (children, w) = c.get_children_w("/p").await.unwrap();
    assert_eq!(children, vec!["a"]);
    writer.set_data("/p", "data", None).await.unwrap();
    writer.set_data("/p/a", "data", None).await.unwrap();
    writer.delete("/p/a", None).await.unwrap();
    let e = fired(w).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/p")
    );

    let (_, w) = c.get_children_w("/p").await.unwrap();
    writer.delete("/p", None).await.unwrap();
    let e = fired(w).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDeleted, "/p")
    );
}

/// The server must send a one-shot watch's event once: a second change
/// sends nothing. Proved on the wire: after the second change, a later
/// event (a NodeCreated on a marker) arrives with no second event before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_watches_fire_once() {
    let server = InProcServer::start();
    let writer = connect(&server.addr(), Default::default()).await;
    writer
        .create("/x", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/p", "", CreateMode::Persistent)
        .await
        .unwrap();

    let mut a = Raw::session(&server.addr(), 10_000).await.0;
    ok(&a.call(get_data("/x", true)).await);
    ok(&a.call(exists("/x", true)).await); // same session, same path: one event
    ok(&a
        .call(ReqOp::GetChildren(pb::GetChildren {
            path: "/p".into(),
            watch: true,
        }))
        .await);

    writer.set_data("/x", "1", None).await.unwrap();
    writer.set_data("/x", "2", None).await.unwrap();
    writer
        .create("/p/1", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/p/2", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer.delete("/x", None).await.unwrap();

    ok(&a.call(exists("/marker", true)).await);
    writer
        .create("/marker", "", CreateMode::Persistent)
        .await
        .unwrap();
    a.recv_until(|f| is_event(f, pb::EventType::NodeCreated, "/marker"))
        .await;

    let seen: Vec<(i32, String)> = a
        .events()
        .into_iter()
        .map(|(_, e)| (e.r#type, e.path))
        .collect();
    assert_eq!(
        seen,
        vec![
            (pb::EventType::NodeDataChanged as i32, "/x".to_string()),
            (pb::EventType::NodeChildrenChanged as i32, "/p".to_string()),
            (pb::EventType::NodeCreated as i32, "/marker".to_string()),
        ]
    );
}

// ----- persistent watches --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watch_keeps_firing_for_the_node_and_its_children() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let writer = connect(&server.addr(), Default::default()).await;
    c.create("/pw", "", CreateMode::Persistent).await.unwrap();
    let mut s = c.add_watch("/pw", AddWatchMode::Persistent).await.unwrap();

    writer.set_data("/pw", "1", None).await.unwrap();
    writer.set_data("/pw", "2", None).await.unwrap();
    writer
        .create("/pw/c", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer.set_data("/pw/c", "x", None).await.unwrap(); // not this node: no event
    writer
        .create("/pw/c/g", "", CreateMode::Persistent)
        .await
        .unwrap(); // nor this
    writer.delete("/pw/c/g", None).await.unwrap();
    writer.delete("/pw/c", None).await.unwrap();
    writer.delete("/pw", None).await.unwrap();
    writer
        .create("/pw", "", CreateMode::Persistent)
        .await
        .unwrap(); // still watched
    writer.set_data("/pw", "3", None).await.unwrap();

    assert_eq!(
        next_events(&mut s, 7).await,
        vec![
            ev(EventType::NodeDataChanged, "/pw"),
            ev(EventType::NodeDataChanged, "/pw"),
            ev(EventType::NodeChildrenChanged, "/pw"),
            ev(EventType::NodeChildrenChanged, "/pw"),
            ev(EventType::NodeDeleted, "/pw"),
            ev(EventType::NodeCreated, "/pw"),
            ev(EventType::NodeDataChanged, "/pw"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursive_watch_covers_descendants_without_child_events() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let writer = connect(&server.addr(), Default::default()).await;
    c.create("/r", "", CreateMode::Persistent).await.unwrap();
    writer
        .create("/rr", "", CreateMode::Persistent)
        .await
        .unwrap();
    let mut s = c
        .add_watch("/r", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    writer
        .create("/r/a", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/r/a/b", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer.set_data("/r/a/b", "x", None).await.unwrap();
    writer.set_data("/r", "x", None).await.unwrap();
    writer.set_data("/rr", "x", None).await.unwrap(); // a sibling, not under /r
    writer
        .create("/rr/x", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer.delete("/r/a/b", None).await.unwrap();
    writer.delete("/r/a", None).await.unwrap();
    writer
        .create("/r/z", "", CreateMode::Persistent)
        .await
        .unwrap();

    assert_eq!(
        next_events(&mut s, 7).await,
        vec![
            ev(EventType::NodeCreated, "/r/a"),
            ev(EventType::NodeCreated, "/r/a/b"),
            ev(EventType::NodeDataChanged, "/r/a/b"),
            ev(EventType::NodeDataChanged, "/r"),
            ev(EventType::NodeDeleted, "/r/a/b"),
            ev(EventType::NodeDeleted, "/r/a"),
            ev(EventType::NodeCreated, "/r/z"),
        ]
    );
}

// ----- removing watches ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_watches_tell_their_holders_and_report_no_watcher_after() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.create("/x", "", CreateMode::Persistent).await.unwrap();

    let (_, _, dw) = c.get_data_w("/x").await.unwrap();
    let (_, cw) = c.get_children_w("/x").await.unwrap();
    c.remove_watches("/x", WatcherType::Data).await.unwrap();
    assert_eq!(fired(dw).await.event_type, EventType::DataWatchRemoved);
    let err = c.remove_watches("/x", WatcherType::Data).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoWatcher);
    c.remove_watches("/x", WatcherType::Children).await.unwrap();
    assert_eq!(fired(cw).await.event_type, EventType::ChildWatchRemoved);
    let err = c.remove_watches("/x", WatcherType::Any).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoWatcher);

    // Never watched at all, existing node or not.
    for p in ["/x", "/nothing"] {
        for which in [WatcherType::Data, WatcherType::Children, WatcherType::Any] {
            let err = c.remove_watches(p, which).await.unwrap_err();
            assert_eq!(err.code(), ErrorCode::NoWatcher, "{p} {which:?}");
        }
    }

    // A persistent watch ends its stream when removed.
    let mut s = c.add_watch("/x", AddWatchMode::Persistent).await.unwrap();
    c.remove_watches("/x", WatcherType::Any).await.unwrap();
    assert_eq!(
        next_event(&mut s).await.event_type,
        EventType::PersistentWatchRemoved
    );
    assert!(tokio::time::timeout(STEP, s.next())
        .await
        .unwrap()
        .is_none());
    assert!(s.end_reason().is_none());
}

/// After remove_watches the server sends nothing for the removed kind (the
/// other kind stays); checked on the wire with a later marker event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_watches_get_no_more_events() {
    let server = InProcServer::start();
    let writer = connect(&server.addr(), Default::default()).await;
    writer
        .create("/x", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/y", "", CreateMode::Persistent)
        .await
        .unwrap();
    let get_children = |p: &str| {
        ReqOp::GetChildren(pb::GetChildren {
            path: p.into(),
            watch: true,
        })
    };
    let remove = |p: &str, t: pb::WatcherType| {
        ReqOp::RemoveWatches(pb::RemoveWatches {
            path: p.into(),
            watcher_type: t as i32,
        })
    };

    let mut a = Raw::session(&server.addr(), 10_000).await.0;
    // /x: both kinds, both removed. /y: both kinds, only the data one removed.
    ok(&a.call(get_data("/x", true)).await);
    ok(&a.call(get_children("/x")).await);
    ok(&a.call(get_data("/y", true)).await);
    ok(&a.call(get_children("/y")).await);
    ok(&a.call(remove("/x", pb::WatcherType::Any)).await);
    ok(&a.call(remove("/y", pb::WatcherType::Data)).await);
    let r = a.call(remove("/x", pb::WatcherType::Any)).await;
    assert_eq!(ErrorCode::from_i32(r.error), ErrorCode::NoWatcher);
    // A persistent watch, removed too.
    ok(&a
        .call(ReqOp::AddWatch(pb::AddWatch {
            path: "/x".into(),
            mode: pb::AddWatchMode::PersistentWatch as i32,
        }))
        .await);
    ok(&a.call(remove("/x", pb::WatcherType::Any)).await);

    writer.set_data("/x", "1", None).await.unwrap();
    writer
        .create("/x/c", "", CreateMode::Persistent)
        .await
        .unwrap();
    writer.set_data("/y", "1", None).await.unwrap();
    writer
        .create("/y/c", "", CreateMode::Persistent)
        .await
        .unwrap();
    ok(&a.call(exists("/marker", true)).await);
    writer
        .create("/marker", "", CreateMode::Persistent)
        .await
        .unwrap();
    a.recv_until(|f| is_event(f, pb::EventType::NodeCreated, "/marker"))
        .await;

    let seen: Vec<(i32, String)> = a
        .events()
        .into_iter()
        .map(|(_, e)| (e.r#type, e.path))
        .collect();
    assert_eq!(
        seen,
        vec![
            (pb::EventType::NodeChildrenChanged as i32, "/y".to_string()),
            (pb::EventType::NodeCreated as i32, "/marker".to_string()),
        ]
    );
}

// ----- session close -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_session_fires_other_sessions_watches_on_its_ephemerals() {
    let server = InProcServer::start();
    let owner = connect(&server.addr(), Default::default()).await;
    let watcher = connect(&server.addr(), Default::default()).await;
    owner
        .create("/svc", "", CreateMode::Persistent)
        .await
        .unwrap();
    owner
        .create("/svc/e", "", CreateMode::Ephemeral)
        .await
        .unwrap();
    let seq = owner
        .create("/svc/n-", "", CreateMode::EphemeralSequential)
        .await
        .unwrap();

    let (_, _, data_w) = watcher.get_data_w("/svc/e").await.unwrap();
    let (_, exists_w) = watcher.exists_w(&seq).await.unwrap();
    let (children, child_w) = watcher.get_children_w("/svc").await.unwrap();
    assert_eq!(children.len(), 2);
    let mut rec = watcher
        .add_watch("/svc", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    owner.close().await.unwrap();

    let e = fired(data_w).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDeleted, "/svc/e")
    );
    let e2 = fired(exists_w).await;
    assert_eq!(
        (e2.event_type, e2.path.as_str()),
        (EventType::NodeDeleted, seq.as_str())
    );
    let c = fired(child_w).await;
    assert_eq!(
        (c.event_type, c.path.as_str()),
        (EventType::NodeChildrenChanged, "/svc")
    );
    // All in the one close_session txn.
    assert_eq!(e.zxid, c.zxid);
    assert_eq!(e.zxid, e2.zxid);
    let deleted = next_events(&mut rec, 2).await;
    assert!(
        deleted.iter().all(|(t, _)| *t == EventType::NodeDeleted),
        "{deleted:?}"
    );
    let mut paths: Vec<&str> = deleted.iter().map(|(_, p)| p.as_str()).collect();
    paths.sort();
    let mut want = vec!["/svc/e", seq.as_str()];
    want.sort();
    assert_eq!(paths, want);
    assert_eq!(
        watcher.get_children("/svc").await.unwrap(),
        Vec::<String>::new()
    );
}

// ----- ordering (invariant 2) ----------------------------------------------

/// On one stream: a watch on /x, then set_data /x and get_data /x sent
/// back to back. The event must come before both responses, and nothing
/// after it may reflect an older state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_precedes_responses_on_the_same_stream() {
    let server = InProcServer::start();
    let mut a = Raw::session(&server.addr(), 10_000).await.0;
    ok(&a.call(create("/x")).await);

    for round in 0..20u8 {
        a.log.clear();
        let r = a.call(get_data("/x", true)).await;
        let before = data_stat(&r).mzxid;

        let set_xid = a.send(set_data("/x", &[round]));
        let get_xid = a.send(get_data("/x", false));
        let get_i = a.wait_response(get_xid).await;

        let events = a.events();
        assert_eq!(events.len(), 1, "round {round}: {:?}", a.log);
        let (ev_i, event) = &events[0];
        assert_eq!(event.r#type, pb::EventType::NodeDataChanged as i32);
        assert_eq!(event.path, "/x");
        let z = event.zxid;
        assert!(z > before);

        let set_i = a
            .log
            .iter()
            .position(|f| matches!(f, Frame::Response(r) if r.xid == set_xid))
            .expect("set answered");
        assert!(
            *ev_i < set_i,
            "round {round}: event after the set's response: {:?}",
            a.log
        );
        assert!(set_i < get_i, "responses in request order");
        let set_r = a.logged_response(set_i);
        ok(set_r);
        assert_eq!(set_r.zxid, z, "the set's zxid is the event's");
        let get_r = a.logged_response(get_i);
        ok(get_r);
        assert_eq!(data_stat(get_r).mzxid, z);
        for f in &a.log[ev_i + 1..] {
            if let Frame::Response(r) = f {
                assert!(
                    r.zxid >= z,
                    "round {round}: a response after the event is older: {r:?}"
                );
            }
        }
    }
}

/// Across sessions: B changes /x; the first response A gets that reflects
/// the change must come after A's event for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_precedes_a_read_reflecting_another_sessions_write() {
    let server = InProcServer::start();
    let b = connect(&server.addr(), Default::default()).await;
    b.create("/x", "", CreateMode::Persistent).await.unwrap();
    let mut a = Raw::session(&server.addr(), 10_000).await.0;

    // Round 1: B's write is acknowledged before A reads.
    let before = data_stat(&a.call(get_data("/x", true)).await).mzxid;
    let z = b.set_data("/x", "1", None).await.unwrap().mzxid;
    assert!(z > before);
    a.log.clear();
    let r = a.call(get_data("/x", false)).await;
    assert_eq!(data_stat(&r).mzxid, z);
    assert!(r.zxid >= z);
    let events = a.events();
    assert_eq!(events.len(), 1, "{:?}", a.log);
    assert_eq!(events[0].1.zxid, z);
    assert_eq!(events[0].1.r#type, pb::EventType::NodeDataChanged as i32);
    assert!(events[0].0 < a.log.len() - 1);

    // Round 2..: B writes while A keeps reading; the first read that sees
    // the new state must follow the event.
    for round in 0..10 {
        a.log.clear();
        let before = data_stat(&a.call(get_data("/x", true)).await).mzxid;
        let writer = b.clone();
        let write = tokio::spawn(async move {
            writer
                .set_data("/x", format!("w{round}"), None)
                .await
                .unwrap()
                .mzxid
        });
        let seen_at = loop {
            let xid = a.send(get_data("/x", false));
            let i = a.wait_response(xid).await;
            if data_stat(a.logged_response(i)).mzxid > before {
                break i;
            }
        };
        let z = write.await.unwrap();
        let events = a.events();
        assert_eq!(events.len(), 1, "round {round}: {:?}", a.log);
        let (ev_i, event) = &events[0];
        assert_eq!(event.zxid, z);
        assert!(
            *ev_i < seen_at,
            "round {round}: the read reflecting zxid {z} came before its event: {:?}",
            a.log
        );
        assert_eq!(data_stat(a.logged_response(seen_at)).mzxid, z);
        // Nothing before the event reflects the change. (A read served
        // just before the write was applied may still be answered after
        // the event: ZooKeeper allows that too — the promise is only that
        // the new state is not seen before the event.)
        for (i, f) in a.log.iter().enumerate() {
            if let Frame::Response(r) = f {
                let mzxid = data_stat(r).mzxid;
                assert!(
                    r.zxid >= mzxid,
                    "round {round}: {r:?} is older than its own data"
                );
                if i < *ev_i {
                    assert!(mzxid < z, "round {round}: {r:?} came before the event");
                }
            }
        }
    }
}

/// Event zxids strictly increase on a session, with several writers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_zxids_strictly_increase() {
    const WRITERS: usize = 3;
    const ROUNDS: usize = 20;
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let mut s = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client: Client = connect(&server.addr(), Default::default()).await;
        tasks.push(tokio::spawn(async move {
            let mut zxids = Vec::new();
            for i in 0..ROUNDS {
                let p = format!("/w{w}-{i}");
                let (_, st) = client
                    .create_with(&p, "", CreateOptions::new(CreateMode::Persistent))
                    .await
                    .unwrap();
                zxids.push(st.czxid);
                zxids.push(client.set_data(&p, "x", None).await.unwrap().mzxid);
                client.delete(&p, None).await.unwrap();
            }
            zxids
        }));
    }
    let mut write_zxids = Vec::new();
    for t in tasks {
        write_zxids.extend(t.await.unwrap());
    }

    let total = WRITERS * ROUNDS * 3;
    let mut events = Vec::with_capacity(total);
    for _ in 0..total {
        events.push(next_event(&mut s).await);
    }
    for pair in events.windows(2) {
        assert!(
            pair[0].zxid < pair[1].zxid,
            "event zxids not strictly increasing: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    // Each node's own events come as created, changed, deleted, and the
    // zxids of the creates and sets are the ones the writers were told.
    let mut per_path: HashMap<String, Vec<EventType>> = HashMap::new();
    for e in &events {
        per_path
            .entry(e.path.clone())
            .or_default()
            .push(e.event_type);
    }
    assert_eq!(per_path.len(), WRITERS * ROUNDS);
    for (p, types) in &per_path {
        assert_eq!(
            types,
            &vec![
                EventType::NodeCreated,
                EventType::NodeDataChanged,
                EventType::NodeDeleted
            ],
            "{p}"
        );
    }
    let event_zxids: std::collections::HashSet<i64> = events.iter().map(|e| e.zxid).collect();
    for z in write_zxids {
        assert!(event_zxids.contains(&z), "no event for zxid {z}");
    }
    // Nothing else was sent: the next event is a later marker's.
    let (_, marker) = c
        .create_with("/marker", "", CreateOptions::new(CreateMode::Persistent))
        .await
        .unwrap();
    let e = next_event(&mut s).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/marker")
    );
    assert_eq!(e.zxid, marker.czxid);
}

/// A watch set by a read is never lost to a change racing the read's reply:
/// the server sends a read's reply before the event of any later change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_set_while_the_node_changes_is_never_lost() {
    let server = InProcServer::start();
    let reader = connect(&server.addr(), Default::default()).await;
    let writer = connect(&server.addr(), Default::default()).await;
    reader
        .create("/w", "0", warden_client::CreateMode::Persistent)
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                writer.set_data("/w", n.to_string(), None).await.unwrap();
            }
        })
    };
    for _ in 0..150 {
        let (_, _, w) = reader.get_data_w("/w").await.unwrap();
        assert_eq!(fired(w).await.event_type, EventType::NodeDataChanged);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writing.await.unwrap();
}
