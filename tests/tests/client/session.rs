//! One session: operations and their typed errors, chroot, pipelining,
//! one-shot and persistent watches, `multi`, close, pings when idle, a
//! connection that breaks under a call, a server that stops answering.

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use warden_client::{
    Acl, AddWatchMode, Client, ConnectOptions, ConnectionState, CreateMode, CreateOptions, Error,
    ErrorCode, EventType, MultiError, Op, OpResult, WatcherType,
};
use warden_tests::proxy::Direction;
use warden_tests::{within, STEP};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_operations_and_typed_errors() {
    let server = start();
    let c = connect(server.addr(), ConnectOptions::default()).await;
    assert!(c.session_id() != 0);
    assert!(!c.session_password().is_empty());

    assert_eq!(
        c.create("/a", "one", CreateMode::Persistent).await.unwrap(),
        "/a"
    );
    let (data, stat) = c.get_data("/a").await.unwrap();
    assert_eq!(data, b"one");
    assert_eq!(stat.version, 0);
    assert!(c.last_zxid() >= stat.czxid);

    let e = c
        .create("/a", "", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "NodeExists: /a");
    let e = c.get_data("/a/b").await.unwrap_err();
    assert_eq!(e.to_string(), "NoNode: /a/b");
    assert_eq!(e.code(), ErrorCode::NoNode);

    let stat = c.set_data("/a", "two", Some(0)).await.unwrap();
    assert_eq!(stat.version, 1);
    let e = c.set_data("/a", "x", Some(0)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadVersion);

    let seq = c
        .create("/a/q-", "", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(seq, "/a/q-0000000000");
    c.create("/a/b", "", CreateMode::Persistent).await.unwrap();
    let mut kids = c.get_children("/a").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["b", "q-0000000000"]);
    let (_, stat) = c.get_children2("/a").await.unwrap();
    assert_eq!(stat.num_children, 2);

    let e = c.delete("/a", None).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotEmpty);
    c.delete("/a/b", None).await.unwrap();
    assert_eq!(c.exists("/a/b").await.unwrap(), None);
    assert!(c.exists("/a").await.unwrap().is_some());

    let (path, stat) = c
        .create_with("/e", "", CreateOptions::new(CreateMode::Ephemeral))
        .await
        .unwrap();
    assert_eq!(path, "/e");
    assert_eq!(stat.ephemeral_owner, c.session_id());
    assert_eq!(c.get_ephemerals("/").await.unwrap(), vec!["/e"]);
    c.sync("/").await.unwrap();

    // Client-side checks never reach the server.
    let before = answered_all(&server);
    let e = c.get_data("a/b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadArguments);
    let e = c
        .create_with("/t", "", CreateOptions::new(CreateMode::PersistentWithTtl))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadArguments);
    assert_eq!(answered_all(&server), before, "nothing was sent");

    // ACLs come back typed; so does the server's error on them.
    let (acl, stat) = c.get_acl("/a").await.unwrap();
    assert_eq!(acl, Acl::open_unsafe());
    assert_eq!(stat.aversion, 0);
    let e = c.get_acl("/a/none").await.unwrap_err();
    assert_eq!(e.to_string(), "NoNode: /a/none");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroot_prefixes_requests_and_strips_results() {
    let server = start();
    let root = connect(server.addr(), ConnectOptions::default()).await;
    root.create("/app", "", CreateMode::Persistent)
        .await
        .unwrap();

    let c = connect(format!("{}/app", server.addr()), ConnectOptions::default()).await;
    assert_eq!(c.chroot(), Some("/app"));
    let mut events = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    assert_eq!(
        c.create("/x", "", CreateMode::Persistent).await.unwrap(),
        "/x"
    );
    assert!(root.exists("/app/x").await.unwrap().is_some());
    assert_eq!(c.get_children("/").await.unwrap(), vec!["x"]);
    let seq = c
        .create("/s-", "", CreateMode::EphemeralSequential)
        .await
        .unwrap();
    assert_eq!(seq, "/s-0000000001");
    assert_eq!(c.get_ephemerals("/").await.unwrap(), vec![seq.clone()]);
    let e = c.get_data("/nope").await.unwrap_err();
    assert_eq!(e.to_string(), "NoNode: /nope");

    let ev = within(STEP, "an event", events.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/x")
    );
    let ev = within(STEP, "an event", events.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/s-0000000001")
    );

    let results = c
        .multi(vec![Op::create("/m", "", CreateMode::Persistent)])
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![OpResult::Create {
            path: "/m".into(),
            stat: results_stat(&results)
        }]
    );
    assert!(root.exists("/app/m").await.unwrap().is_some());
    c.close().await.unwrap();
    root.close().await.unwrap();
}

fn results_stat(results: &[OpResult]) -> Option<warden_client::Stat> {
    match results.first() {
        Some(OpResult::Create { stat, .. }) => *stat,
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_pipelined_in_call_order() {
    let server = start();
    let proxy = proxy_for(&server);
    let c = connect(proxy.addr(), ConnectOptions::default()).await;
    // Every byte now takes DELAY each way: a client that waited for each
    // answer before sending the next request would need 2 × DELAY a call.
    const DELAY: Duration = Duration::from_millis(25);
    proxy.set_delay(DELAY);
    let n = 500;
    let started = Instant::now();
    let calls = (0..n).map(|i| {
        let c = c.clone();
        async move {
            c.create_with(
                &format!("/n{i}"),
                "",
                CreateOptions::new(CreateMode::Persistent),
            )
            .await
        }
    });
    let results = within(STEP, "500 creates", futures::future::join_all(calls)).await;
    let took = started.elapsed();
    // The server applied them in call order: each one's zxid is above the
    // one before.
    let mut last = 0;
    for (i, r) in results.into_iter().enumerate() {
        let (path, stat) = r.unwrap();
        assert_eq!(path, format!("/n{i}"));
        assert!(stat.czxid > last, "/n{i} was applied out of order");
        last = stat.czxid;
    }
    let one_at_a_time = 2 * DELAY * n;
    assert!(
        took < one_at_a_time / 4,
        "{n} calls took {took:?}: not pipelined ({one_at_a_time:?} one at a time)"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_watches_fire_once_for_every_registration() {
    let server = start();
    let c = connect(server.addr(), ConnectOptions::default()).await;
    let other = observer(&server).await;
    c.create("/w", "0", CreateMode::Persistent).await.unwrap();

    let (_, _, w1) = c.get_data_w("/w").await.unwrap();
    let (_, _, w2) = c.get_data_w("/w").await.unwrap();
    let (stat, w3) = c.exists_w("/w").await.unwrap();
    assert!(stat.is_some());
    other.set_data("/w", "1", None).await.unwrap();
    for w in [w1, w2, w3] {
        let ev = within(STEP, "the watch fires", w).await.unwrap();
        assert_eq!(ev.event_type, EventType::NodeDataChanged);
        assert_eq!(ev.path, "/w");
        assert!(ev.zxid > 0);
    }

    let (none, created) = c.exists_w("/later").await.unwrap();
    assert!(none.is_none());
    let (_, children) = c.get_children_w("/").await.unwrap();
    c.create("/later", "", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        within(STEP, "created", created).await.unwrap().event_type,
        EventType::NodeCreated
    );
    let ev = within(STEP, "children", children).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, "/")
    );

    let (_, _, deleted) = c.get_data_w("/later").await.unwrap();
    c.delete("/later", None).await.unwrap();
    assert_eq!(
        within(STEP, "deleted", deleted).await.unwrap().event_type,
        EventType::NodeDeleted
    );

    // A failed read sets no watch.
    assert!(c.get_data_w("/missing").await.is_err());
    assert_eq!(watches_of(&server, c.session_id()), Vec::<String>::new());
    c.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watches_stream_until_removed() {
    let server = start();
    let c = connect(server.addr(), ConnectOptions::default()).await;
    let mut p = c.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    c.create("/p", "", CreateMode::Persistent).await.unwrap();
    c.set_data("/p", "x", None).await.unwrap();
    c.create("/p/k", "", CreateMode::Persistent).await.unwrap();
    let mut types = Vec::new();
    for _ in 0..3 {
        types.push(within(STEP, "an event", p.next()).await.unwrap().event_type);
    }
    assert_eq!(
        types,
        vec![
            EventType::NodeCreated,
            EventType::NodeDataChanged,
            EventType::NodeChildrenChanged
        ]
    );
    c.remove_watches("/p", WatcherType::Any).await.unwrap();
    let ev = within(STEP, "the removal", p.next()).await.unwrap();
    assert_eq!(ev.event_type, EventType::PersistentWatchRemoved);
    assert!(within(STEP, "the end", p.next()).await.is_none());
    assert!(p.end_reason().is_none());
    let e = c.remove_watches("/p", WatcherType::Any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoWatcher);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_all_or_nothing_and_names_the_failed_op() {
    let server = start();
    let c = connect(server.addr(), ConnectOptions::default()).await;
    let results = c
        .multi(vec![
            Op::create("/m", "", CreateMode::Persistent),
            Op::set_data("/m", "x", Some(0)),
            Op::check("/m", Some(1)),
        ])
        .await
        .unwrap();
    assert!(matches!(results[0], OpResult::Create { ref path, .. } if path == "/m"));
    assert!(matches!(results[1], OpResult::SetData { stat } if stat.version == 1));
    assert_eq!(results[2], OpResult::Check);

    let err = c
        .multi(vec![
            Op::create("/m2", "", CreateMode::Persistent),
            Op::delete("/nope", None),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.failed_index(), Some(1));
    assert_eq!(err.code(), ErrorCode::NoNode);
    assert_eq!(err.to_string(), "NoNode: /nope (multi op #1)");
    assert_eq!(c.exists("/m2").await.unwrap(), None);

    let err = c
        .multi(vec![Op::create("bad", "", CreateMode::Persistent)])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        MultiError::OpFailed {
            index: 0,
            code: ErrorCode::BadArguments,
            ..
        }
    ));
    assert_eq!(c.multi(Vec::new()).await.unwrap(), vec![]);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_session_and_its_ephemerals() {
    let server = start();
    let c = connect(server.addr(), ConnectOptions::default()).await;
    let id = c.session_id();
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    let (_, watch) = c.exists_w("/other").await.unwrap();
    let other = c.clone();
    c.close().await.unwrap();
    assert!(!live_sessions(&server).contains(&id));
    let o = observer(&server).await;
    assert_eq!(o.exists("/eph").await.unwrap(), None);
    let e = other.get_data("/").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired);
    assert_eq!(
        within(STEP, "the watch ends", watch)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::SessionExpired
    );
    other.close().await.unwrap();
    o.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_fails_calls_in_flight_but_keeps_the_session_and_its_watches() {
    let server = start();
    let proxy = proxy_for(&server);
    let c = connect(proxy.addr(), ConnectOptions::default()).await;
    let other = observer(&server).await;
    let id = c.session_id();
    c.create("/k", "", CreateMode::Persistent).await.unwrap();
    let (_, _, watch) = c.get_data_w("/k").await.unwrap();
    let mut stream = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut states = c.state_changes();
    assert_eq!(c.state(), ConnectionState::Connected);

    // A create in flight when the connection breaks: its outcome is unknown
    // to the client (here it did happen; only the answer was lost).
    let e = answer_lost(&server, &proxy, &c, "create", |c| async move {
        c.create("/inflight", "", CreateMode::Persistent).await
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    assert!(e.to_string().starts_with("ConnectionLoss: "), "{e}");
    assert_eq!(
        within(STEP, "a state", states.next()).await,
        Some(ConnectionState::Suspended)
    );
    assert_eq!(
        within(STEP, "a state", states.next()).await,
        Some(ConnectionState::Reconnected)
    );
    assert_eq!(c.state(), ConnectionState::Reconnected);
    assert_eq!(c.session_id(), id, "the same session, resumed");
    assert_eq!(proxy.accepted(), 2);
    assert!(other.exists("/inflight").await.unwrap().is_some());

    // The watches survived the reconnect.
    other.set_data("/k", "x", None).await.unwrap();
    let ev = within(STEP, "the watch fires", watch).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/k")
    );
    let ev = within(STEP, "an event", stream.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/k")
    );
    assert!(c.exists("/k").await.unwrap().is_some());

    // Resuming by hand still needs the right password.
    let e = warden_tests::try_connect(
        &server.addr(),
        ConnectOptions {
            session_id: Some(id),
            password: b"wrong".to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthFailed);
    c.close().await.unwrap();
    assert_eq!(c.state(), ConnectionState::Closed);
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_is_a_connection_loss_naming_the_servers() {
    // Find two ports nobody listens on.
    let mut dead = Vec::new();
    for _ in 0..2 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        dead.push(l.local_addr().unwrap().to_string());
    }
    let servers = dead.join(",");
    let started = Instant::now();
    let e = Client::connect(
        &servers,
        ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    match &e {
        Error::NoServer { servers: tried, .. } => {
            let mut tried = tried.clone();
            tried.sort();
            let mut want = dead.clone();
            want.sort();
            assert_eq!(tried, want);
        }
        other => panic!("unexpected {other:?}"),
    }

    let e = Client::connect("host:notaport", ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadArguments);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_ping() {
    let server = start();
    let timeout = Duration::from_millis(400);
    let c = connect(server.addr(), with_timeout(timeout)).await;
    assert_eq!(c.session_timeout(), timeout);
    let id = c.session_id();
    let mut states = c.state_changes();
    let frames = || connections_of(&server, id).iter().sum::<u64>();
    let before = frames();
    // Idle for well past the session timeout: only pings keep it alive,
    // and the server counts them as they arrive.
    let idle = Instant::now();
    until("pings while idle", || {
        frames() >= before + 3 && idle.elapsed() >= 3 * timeout
    })
    .await;
    assert!(live_sessions(&server).contains(&id), "the session is alive");
    assert_eq!(states.next().now_or_never(), None, "no state change");
    // Still alive: pongs count as answers.
    c.exists("/").await.unwrap();
    assert_eq!(c.session_id(), id);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_detected_and_left() {
    let server = start();
    let proxy = proxy_for(&server);
    let timeout = Duration::from_millis(600);
    let c = connect(proxy.addr(), with_timeout(timeout)).await;
    let id = c.session_id();
    let mut states = c.state_changes();
    // The server stops answering: requests reach it, nothing comes back.
    proxy.mute_one_way(Direction::ToClient);
    let started = Instant::now();
    let e = within(
        STEP,
        "the call fails",
        c.create("/unanswered", "", CreateMode::Persistent),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    assert!(e.to_string().contains("no answer"), "{e}");
    // Left promptly: after ⅔ of the session timeout without an answer.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        within(STEP, "a state", states.next()).await,
        Some(ConnectionState::Suspended)
    );
    // Answers flow again: the session carries on, on a new connection.
    proxy.unmute();
    assert_eq!(
        within(STEP, "a state", states.next()).await,
        Some(ConnectionState::Reconnected)
    );
    c.exists("/").await.unwrap();
    assert_eq!(c.session_id(), id);
    assert!(proxy.accepted() >= 2);
    c.close().await.unwrap();
}
