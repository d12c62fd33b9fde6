//! Warden's ZooKeeper listener driven by a third-party Rust client, the
//! `zookeeper-client` crate (the one `zk_bench` uses): CRUD and its errors,
//! sequential and ephemeral nodes, one-shot and persistent watches, multi,
//! and a session's end by close and by expiry.
//!
//! Run against Apache ZooKeeper with `WARDEN_ZK_REFERENCE=HOST:PORT` (see
//! `warden_tests::zookeeper`), which is how these expectations were checked.

use std::time::{Duration, Instant};

use warden_tests::proxy::Proxy;
use warden_tests::zookeeper::{unique_root, Target};
use warden_tests::ServerOpts;
use warden_tests::SLOW_STEP;
use zookeeper_client::{
    Acls, AddWatchMode, Client, CreateMode, CreateOptions, Error, EventType, MultiReadResult,
    MultiWriteError, MultiWriteResult, SessionState, WatchedEvent,
};

fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn mode(m: CreateMode) -> CreateOptions<'static> {
    m.with_acls(Acls::anyone_all())
}

async fn connect(target: &Target) -> Client {
    let addr = target.zk_addr();
    match tokio::time::timeout(SLOW_STEP, Client::connect(&addr)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("connect to {addr}: {e}; server log:\n{}", target.log()),
        Err(_) => panic!("connect to {addr} timed out; server log:\n{}", target.log()),
    }
}

/// The next event of a watcher, or a failure after [`SLOW_STEP`].
async fn next_event(
    what: &str,
    fut: impl std::future::Future<Output = WatchedEvent>,
) -> WatchedEvent {
    tokio::time::timeout(SLOW_STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {SLOW_STEP:?}"))
}

/// Polls until `path` is gone (as seen by `client`), failing after `within`.
async fn wait_gone(client: &Client, path: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if client.check_stat(path).await.expect("check_stat").is_none() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{path} still exists after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn crud_and_errors() {
    let target = Target::start();
    let c = connect(&target).await;
    let root = unique_root("rust-crud");
    let (stat, seq) = c.create(&root, b"v1", &persistent()).await.expect("create");
    assert_eq!(seq.into_i64(), -1, "no sequence for a plain node");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.data_length, 2);
    assert_eq!(stat.czxid, stat.mzxid);

    let (data, stat) = c.get_data(&root).await.expect("get_data");
    assert_eq!(data, b"v1");
    assert_eq!(stat.ephemeral_owner, 0);

    let stat = c.set_data(&root, b"v2", Some(0)).await.expect("set_data");
    assert_eq!(stat.version, 1);
    assert!(stat.mzxid > stat.czxid);
    assert_eq!(
        c.set_data(&root, b"v3", Some(0)).await.unwrap_err(),
        Error::BadVersion
    );
    let stat = c
        .set_data(&root, b"v3", None)
        .await
        .expect("unconditional set");
    assert_eq!(stat.version, 2);

    assert_eq!(
        c.create(&root, b"", &persistent()).await.unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        c.create(&format!("{root}/missing/child"), b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        c.get_data(&format!("{root}/nope")).await.unwrap_err(),
        Error::NoNode
    );
    assert!(c
        .check_stat(&format!("{root}/nope"))
        .await
        .expect("check_stat")
        .is_none());

    for kid in ["b", "a", "c"] {
        c.create(&format!("{root}/{kid}"), kid.as_bytes(), &persistent())
            .await
            .expect("create child");
    }
    let mut kids = c.list_children(&root).await.expect("list_children");
    kids.sort();
    assert_eq!(kids, ["a", "b", "c"]);
    let (kids, stat) = c.get_children(&root).await.expect("get_children");
    assert_eq!(kids.len(), 3);
    assert_eq!(stat.num_children, 3);
    assert_eq!(stat.cversion, 3);

    assert_eq!(c.delete(&root, None).await.unwrap_err(), Error::NotEmpty);
    assert_eq!(
        c.delete(&format!("{root}/a"), Some(7)).await.unwrap_err(),
        Error::BadVersion
    );
    for kid in ["a", "b", "c"] {
        c.delete(&format!("{root}/{kid}"), Some(0))
            .await
            .expect("delete child");
    }
    c.delete(&root, Some(2)).await.expect("delete");
    assert!(c.check_stat(&root).await.expect("check_stat").is_none());

    // A full 1 MiB less a little goes through and comes back intact.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    c.create(&root, &big, &persistent())
        .await
        .expect("big create");
    assert_eq!(c.get_data(&root).await.expect("big get").0, big);
    c.delete(&root, None).await.expect("delete");
}

#[tokio::test]
async fn sequential_and_ephemeral_nodes() {
    let target = Target::start();
    let c = connect(&target).await;
    let other = connect(&target).await;
    let root = unique_root("rust-seq");
    c.create(&root, b"", &persistent()).await.expect("root");

    let prefix = format!("{root}/job-");
    let (_, a) = c
        .create(&prefix, b"", &mode(CreateMode::PersistentSequential))
        .await
        .expect("sequential");
    let (_, b) = c
        .create(&prefix, b"", &mode(CreateMode::PersistentSequential))
        .await
        .expect("sequential");
    assert!(b > a, "sequence numbers {a} then {b} do not increase");
    let kids = c.list_children(&root).await.expect("children");
    assert!(
        kids.contains(&format!("job-{a}")),
        "{kids:?} lacks job-{a} (10 digits)"
    );
    assert_eq!(format!("{a}").len(), 10);

    let eph = format!("{root}/eph");
    let (stat, _) = other
        .create(&eph, b"mine", &mode(CreateMode::Ephemeral))
        .await
        .expect("ephemeral");
    assert_eq!(stat.ephemeral_owner, other.session_id().0);
    let (_, eseq) = other
        .create(
            &format!("{root}/eph-seq-"),
            b"",
            &mode(CreateMode::EphemeralSequential),
        )
        .await
        .expect("ephemeral sequential");
    assert!(
        eseq > b,
        "one sequence counter per parent: {eseq} after {b}"
    );
    assert_eq!(
        other
            .create(&format!("{eph}/child"), b"", &persistent())
            .await
            .unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    let (_, stat) = c.get_data(&eph).await.expect("seen by another session");
    assert_eq!(stat.ephemeral_owner, other.session_id().0);
    let mut ephemerals = other.list_ephemerals(&root).await.expect("list_ephemerals");
    ephemerals.sort();
    assert_eq!(
        ephemerals,
        [format!("{root}/eph"), format!("{root}/eph-seq-{eseq}")]
    );

    drop(other);
    wait_gone(&c, &eph, SLOW_STEP).await;
    wait_gone(&c, &format!("{root}/eph-seq-{eseq}"), SLOW_STEP).await;
}

#[tokio::test]
async fn one_shot_watches() {
    let target = Target::start();
    let c = connect(&target).await;
    let other = connect(&target).await;
    let root = unique_root("rust-watch");
    let node = format!("{root}/n");

    let (stat, created) = c.check_and_watch_stat(&root).await.expect("exists watch");
    assert!(stat.is_none());
    other
        .create(&root, b"", &persistent())
        .await
        .expect("create");
    let ev = next_event("NodeCreated", created.changed()).await;
    assert_eq!(ev.event_type, EventType::NodeCreated);
    assert_eq!(ev.path, root);

    let (kids, _, child_watch) = c.get_and_watch_children(&root).await.expect("child watch");
    assert!(kids.is_empty());
    other
        .create(&node, b"1", &persistent())
        .await
        .expect("create child");
    let ev = next_event("NodeChildrenChanged", child_watch.changed()).await;
    assert_eq!(ev.event_type, EventType::NodeChildrenChanged);
    assert_eq!(ev.path, root);

    let (data, _, data_watch) = c.get_and_watch_data(&node).await.expect("data watch");
    assert_eq!(data, b"1");
    other.set_data(&node, b"2", None).await.expect("set");
    let ev = next_event("NodeDataChanged", data_watch.changed()).await;
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    assert_eq!(ev.path, node);

    // A one-shot watch is spent: a fresh one sees the next change only.
    other.set_data(&node, b"3", None).await.expect("set");
    let (data, _, data_watch) = c.get_and_watch_data(&node).await.expect("data watch");
    assert_eq!(data, b"3");
    let (_, exists_watch) = c.check_and_watch_stat(&node).await.expect("exists watch");
    other.delete(&node, None).await.expect("delete");
    let ev = next_event("NodeDeleted (data watch)", data_watch.changed()).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    let ev = next_event("NodeDeleted (exists watch)", exists_watch.changed()).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    assert_eq!(ev.path, node);
}

#[tokio::test]
async fn persistent_and_recursive_watches() {
    let target = Target::start();
    let c = connect(&target).await;
    let other = connect(&target).await;
    let root = unique_root("rust-pwatch");
    c.create(&root, b"", &persistent()).await.expect("root");

    let mut on_root = c
        .watch(&root, AddWatchMode::Persistent)
        .await
        .expect("persistent watch");
    // ZooKeeper keeps one watch mode per path and session (a second
    // addWatch replaces the first), so the recursive watch is another
    // session's.
    let c2 = connect(&target).await;
    let mut below = c2
        .watch(&root, AddWatchMode::PersistentRecursive)
        .await
        .expect("recursive watch");

    for v in [b"1", b"2"] {
        other.set_data(&root, v, None).await.expect("set");
        let ev = next_event("NodeDataChanged (persistent)", on_root.changed()).await;
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeDataChanged, root.as_str())
        );
        let ev = next_event("NodeDataChanged (recursive)", below.changed()).await;
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeDataChanged, root.as_str())
        );
    }

    let child = format!("{root}/a");
    let grandchild = format!("{child}/b");
    other
        .create(&child, b"", &persistent())
        .await
        .expect("child");
    let ev = next_event("NodeChildrenChanged (persistent)", on_root.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, root.as_str())
    );
    let ev = next_event("NodeCreated (recursive)", below.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, child.as_str())
    );
    other
        .create(&grandchild, b"", &persistent())
        .await
        .expect("grandchild");
    let ev = next_event("NodeCreated of a grandchild", below.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, grandchild.as_str())
    );
    other
        .set_data(&grandchild, b"x", None)
        .await
        .expect("set grandchild");
    let ev = next_event("NodeDataChanged of a grandchild", below.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, grandchild.as_str())
    );
    other.delete(&grandchild, None).await.expect("delete");
    let ev = next_event("NodeDeleted of a grandchild", below.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDeleted, grandchild.as_str())
    );

    // Removed watches say nothing more; a new one-shot watch still works.
    drop(on_root);
    drop(below);
    let (_, _, w) = c.get_and_watch_data(&root).await.expect("data watch");
    other.set_data(&root, b"3", None).await.expect("set");
    let ev = next_event("NodeDataChanged after removal", w.changed()).await;
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
}

#[tokio::test]
async fn multi_writes_and_reads() {
    let target = Target::start();
    let c = connect(&target).await;
    let root = unique_root("rust-multi");
    c.create(&root, b"0", &persistent()).await.expect("root");
    c.create(&format!("{root}/old"), b"", &persistent())
        .await
        .expect("old");

    let mut w = c.new_multi_writer();
    w.add_check_version(&root, 0).expect("check");
    w.add_create(&format!("{root}/new"), b"n", &persistent())
        .expect("create");
    w.add_create(
        &format!("{root}/seq-"),
        b"",
        &mode(CreateMode::PersistentSequential),
    )
    .expect("create sequential");
    w.add_set_data(&root, b"1", Some(0)).expect("set");
    w.add_delete(&format!("{root}/old"), None).expect("delete");
    let results = w.commit().await.expect("multi");
    assert_eq!(results.len(), 5);
    assert_eq!(results[0], MultiWriteResult::Check);
    match &results[1] {
        // ZooKeeper 3.8 leaves a multi create's stat empty (ZOOKEEPER-4026).
        MultiWriteResult::Create { path, .. } => assert_eq!(path, &format!("{root}/new")),
        other => panic!("expected a create result, got {other:?}"),
    }
    match &results[2] {
        MultiWriteResult::Create { path, .. } => {
            assert!(
                path.starts_with(&format!("{root}/seq-")) && path.len() == root.len() + 15,
                "sequential path {path}"
            )
        }
        other => panic!("expected a create result, got {other:?}"),
    }
    match &results[3] {
        MultiWriteResult::SetData { stat } => assert_eq!(stat.version, 1),
        other => panic!("expected a set result, got {other:?}"),
    }
    assert_eq!(results[4], MultiWriteResult::Delete);

    // One failing op: nothing happens, and the error names that op.
    let mut w = c.new_multi_writer();
    w.add_create(&format!("{root}/never"), b"", &persistent())
        .expect("create");
    w.add_set_data(&root, b"2", Some(0)).expect("set");
    w.add_delete(&format!("{root}/new"), None).expect("delete");
    match w.commit().await {
        Err(MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (1, Error::BadVersion))
        }
        other => panic!("expected OperationFailed at 1, got {other:?}"),
    }
    assert!(c
        .check_stat(&format!("{root}/never"))
        .await
        .expect("stat")
        .is_none());
    assert!(c
        .check_stat(&format!("{root}/new"))
        .await
        .expect("stat")
        .is_some());

    let mut r = c.new_multi_reader();
    r.add_get_data(&root).expect("get");
    r.add_get_children(&root).expect("children");
    r.add_get_data(&format!("{root}/absent")).expect("get");
    let results = r.commit().await.expect("multi read");
    assert_eq!(results.len(), 3);
    match &results[0] {
        MultiReadResult::Data { data, stat } => {
            assert_eq!(data, b"1");
            assert_eq!(stat.version, 1);
        }
        other => panic!("expected data, got {other:?}"),
    }
    match &results[1] {
        MultiReadResult::Children { children } => {
            let mut kids = children.clone();
            kids.sort();
            assert_eq!(kids.len(), 2, "{kids:?}");
            assert_eq!(kids[0], "new");
        }
        other => panic!("expected children, got {other:?}"),
    }
    match &results[2] {
        MultiReadResult::Error { err } => assert_eq!(err, &Error::NoNode),
        other => panic!("expected NoNode, got {other:?}"),
    }
}

/// Closing a session removes its ephemerals at once, long before its
/// timeout would.
#[tokio::test]
async fn close_ends_the_session_at_once() {
    let target = Target::start_with(ServerOpts {
        max_session_timeout_ms: Some(60_000),
        ..ServerOpts::default()
    });
    let observer = connect(&target).await;
    let root = unique_root("rust-close");
    observer
        .create(&root, b"", &persistent())
        .await
        .expect("root");
    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&target.zk_addr())
        .await
        .expect("connect");
    assert_eq!(
        c.session_timeout(),
        Duration::from_secs(30),
        "negotiated timeout"
    );
    let eph = format!("{root}/eph");
    c.create(&eph, b"", &mode(CreateMode::Ephemeral))
        .await
        .expect("ephemeral");
    let mut states = c.state_watcher();
    drop(c);
    let took = wait_gone(&observer, &eph, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(10));
    let state = tokio::time::timeout(SLOW_STEP, async {
        loop {
            let s = states.changed().await;
            if s.is_terminated() {
                return s;
            }
        }
    })
    .await
    .expect("a terminal state");
    assert_eq!(state, SessionState::Closed);
}

/// A session whose client goes silent expires after its timeout: its
/// ephemerals go, and the session cannot be resumed.
#[tokio::test]
async fn silent_session_expires() {
    let target = Target::start();
    let observer = connect(&target).await;
    let root = unique_root("rust-expire");
    observer
        .create(&root, b"", &persistent())
        .await
        .expect("root");
    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .with_detached()
        .connect(&target.zk_addr())
        .await
        .expect("connect");
    let timeout = c.session_timeout();
    assert!(timeout <= Duration::from_secs(4), "negotiated {timeout:?}");
    let eph = format!("{root}/eph");
    c.create(&eph, b"", &mode(CreateMode::Ephemeral))
        .await
        .expect("ephemeral");
    let session = c.clone().into_session();
    // Detached: dropping the last handle closes the socket, not the session.
    drop(c);
    let took = wait_gone(&observer, &eph, timeout * 3 + SLOW_STEP).await;
    // Gone by expiry, not by a close: not before the timeout ran out (the
    // last ping may have been up to a third of it before the drop).
    assert!(
        took + timeout / 3 >= timeout - Duration::from_millis(50),
        "the ephemeral went after {took:?}, before the {timeout:?} timeout"
    );
    let err = Client::connector()
        .with_session(session)
        .with_fail_eagerly()
        .connect(&target.zk_addr())
        .await
        .expect_err("resuming an expired session");
    assert_eq!(err, Error::SessionExpired);
}

/// A dropped connection is not a lost session: the client reconnects,
/// resumes the same session (its ephemeral stays) and re-registers its
/// watches (SetWatches), so a change made while it was away still fires.
#[tokio::test]
async fn session_and_watches_survive_a_dropped_connection() {
    let target = Target::start();
    let port: u16 = target
        .zk_addr()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let proxy = Proxy::start(([127, 0, 0, 1], port).into());
    let observer = connect(&target).await;
    let root = unique_root("rust-reconnect");
    observer
        .create(&root, b"0", &persistent())
        .await
        .expect("root");

    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&proxy.addr().to_string())
        .await
        .expect("connect through the proxy");
    let session = c.session_id();
    let eph = format!("{root}/eph");
    c.create(&eph, b"", &mode(CreateMode::Ephemeral))
        .await
        .expect("ephemeral");
    let (_, _, changed) = c.get_and_watch_data(&root).await.expect("data watch");
    let mut states = c.state_watcher();

    proxy.mute();
    proxy.cut();
    let state = tokio::time::timeout(SLOW_STEP, states.changed())
        .await
        .expect("a state change");
    assert_eq!(state, SessionState::Disconnected);
    // The change happens while the client is away.
    observer
        .set_data(&root, b"1", None)
        .await
        .expect("set while away");
    proxy.unmute();

    let ev = next_event("the watch after reconnecting", changed.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, root.as_str())
    );
    assert_eq!(c.session_id(), session, "the same session");
    let (data, _) = c.get_data(&root).await.expect("read after reconnecting");
    assert_eq!(data, b"1");
    let (_, stat) = observer.get_data(&eph).await.expect("the ephemeral stays");
    assert_eq!(stat.ephemeral_owner, session.0);
    assert!(proxy.accepted() >= 2, "the client reconnected");
}

// Differences from ZooKeeper 3.8 these tests found (now fixed): each one
// also passes against Apache ZooKeeper (`WARDEN_ZK_REFERENCE`).

/// ZooKeeper answers an auth packet with the request's own xid (the Java
/// client happens to use -4); a client that sends another xid waits for it.
#[tokio::test]
async fn auth_is_answered_with_the_requests_xid() {
    let target = Target::start();
    let c = connect(&target).await;
    tokio::time::timeout(SLOW_STEP, c.auth("digest", b"user:secret"))
        .await
        .expect("auth answered")
        .expect("auth accepted");
    let users = c.list_auth_users().await.expect("whoami");
    assert!(
        users
            .iter()
            .any(|u| u.scheme() == "digest" && u.user() == "user"),
        "{users:?}"
    );
}

/// Deleting a child counts as a change to the parent's children: cversion
/// goes up (and pzxid moves), as for a create.
#[tokio::test]
async fn delete_bumps_the_parents_cversion() {
    let target = Target::start();
    let c = connect(&target).await;
    let root = unique_root("rust-cversion");
    c.create(&root, b"", &persistent()).await.expect("root");
    c.create(&format!("{root}/kid"), b"", &persistent())
        .await
        .expect("kid");
    let before = c.check_stat(&root).await.expect("stat").expect("exists");
    c.delete(&format!("{root}/kid"), None)
        .await
        .expect("delete");
    let after = c.check_stat(&root).await.expect("stat").expect("exists");
    assert_eq!(before.cversion, 1);
    assert_eq!(after.cversion, 2, "cversion after the delete");
    assert!(after.pzxid > before.pzxid);
}

/// A container's Stat says ephemeralOwner 0, like any non-ephemeral node
/// (clients test `ephemeralOwner != 0` to spot ephemerals).
#[tokio::test]
async fn container_is_not_reported_as_ephemeral() {
    let target = Target::start();
    let c = connect(&target).await;
    let root = unique_root("rust-container");
    let (stat, _) = c
        .create(&root, b"", &mode(CreateMode::Container))
        .await
        .expect("container");
    assert_eq!(stat.ephemeral_owner, 0, "create's stat");
    let stat = c.check_stat(&root).await.expect("stat").expect("exists");
    assert_eq!(stat.ephemeral_owner, 0, "exists' stat");
}

/// `/zookeeper` and `/zookeeper/quota` are the server's own: deleting them
/// is refused with BadArguments.
#[tokio::test]
async fn system_nodes_cannot_be_deleted() {
    let target = Target::start();
    let c = connect(&target).await;
    for path in ["/zookeeper/quota", "/zookeeper"] {
        match c.delete(path, None).await {
            Err(Error::BadArguments(_)) => {}
            other => panic!("delete {path}: expected BadArguments, got {other:?}"),
        }
    }
    assert!(c
        .check_stat("/zookeeper/quota")
        .await
        .expect("stat")
        .is_some());
}
