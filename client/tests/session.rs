//! The client against an in-memory mock server (see `support/`).

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::MockServer;
use warden_client::{
    AddWatchMode, Client, ConnectOptions, ConnectionState, CreateMode, CreateOptions, Error,
    ErrorCode, EventType, MultiError, Op, OpResult, WatcherType,
};

const WAIT: Duration = Duration::from_secs(5);

async fn connect(server: &MockServer) -> Client {
    Client::connect(&server.connect_string(), ConnectOptions::default())
        .await
        .expect("connect")
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

#[tokio::test]
async fn basic_operations_and_typed_errors() {
    let server = MockServer::start().await;
    let c = connect(&server).await;
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
    let e = c.get_data("a/b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadArguments);
    let e = c
        .create_with("/t", "", CreateOptions::new(CreateMode::PersistentWithTtl))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadArguments);
    // An operation the mock lacks comes back as a typed error, not a hang.
    let e = c.get_acl("/a").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unimplemented);
    c.close().await.unwrap();
}

#[tokio::test]
async fn chroot_prefixes_requests_and_strips_results() {
    let server = MockServer::start().await;
    let root = connect(&server).await;
    root.create("/app", "", CreateMode::Persistent)
        .await
        .unwrap();

    let c = Client::connect(
        &format!("{}/app", server.connect_string()),
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(c.chroot(), Some("/app"));
    let mut events = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    assert_eq!(
        c.create("/x", "", CreateMode::Persistent).await.unwrap(),
        "/x"
    );
    assert!(server.mock.exists("/app/x"));
    assert_eq!(c.get_children("/").await.unwrap(), vec!["x"]);
    let seq = c
        .create("/s-", "", CreateMode::EphemeralSequential)
        .await
        .unwrap();
    assert_eq!(seq, "/s-0000000001");
    assert_eq!(c.get_ephemerals("/").await.unwrap(), vec![seq.clone()]);
    let e = c.get_data("/nope").await.unwrap_err();
    assert_eq!(e.to_string(), "NoNode: /nope");

    let ev = within(events.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/x")
    );
    let ev = within(events.next()).await.unwrap();
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
    c.close().await.unwrap();
    root.close().await.unwrap();
}

fn results_stat(results: &[OpResult]) -> Option<warden_client::Stat> {
    match results.first() {
        Some(OpResult::Create { stat, .. }) => *stat,
        _ => None,
    }
}

#[tokio::test]
async fn requests_are_pipelined_in_call_order() {
    let server = MockServer::start().await;
    let c = connect(&server).await;
    let n = 500;
    let calls = (0..n).map(|i| {
        let c = c.clone();
        async move {
            c.create(&format!("/n{i}"), "", CreateMode::Persistent)
                .await
        }
    });
    let results = within(futures::future::join_all(calls)).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), format!("/n{i}"));
    }
    let xids = server.mock.xids(c.session_id());
    assert_eq!(xids, (1..=n as i64).collect::<Vec<_>>());
    c.close().await.unwrap();
}

#[tokio::test]
async fn oneshot_watches_fire_once_for_every_registration() {
    let server = MockServer::start().await;
    let c = connect(&server).await;
    c.create("/w", "0", CreateMode::Persistent).await.unwrap();

    let (_, _, w1) = c.get_data_w("/w").await.unwrap();
    let (_, _, w2) = c.get_data_w("/w").await.unwrap();
    let (stat, w3) = c.exists_w("/w").await.unwrap();
    assert!(stat.is_some());
    server.mock.external_set("/w", b"1");
    for w in [w1, w2, w3] {
        let ev = within(w).await.unwrap();
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
        within(created).await.unwrap().event_type,
        EventType::NodeCreated
    );
    let ev = within(children).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, "/")
    );

    let (_, _, deleted) = c.get_data_w("/later").await.unwrap();
    c.delete("/later", None).await.unwrap();
    assert_eq!(
        within(deleted).await.unwrap().event_type,
        EventType::NodeDeleted
    );

    // A failed read sets no watch.
    assert!(c.get_data_w("/missing").await.is_err());
    c.close().await.unwrap();
}

#[tokio::test]
async fn persistent_watches_stream_until_removed() {
    let server = MockServer::start().await;
    let c = connect(&server).await;
    let mut p = c.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    c.create("/p", "", CreateMode::Persistent).await.unwrap();
    c.set_data("/p", "x", None).await.unwrap();
    c.create("/p/k", "", CreateMode::Persistent).await.unwrap();
    let types: Vec<EventType> = vec![
        within(p.next()).await.unwrap().event_type,
        within(p.next()).await.unwrap().event_type,
        within(p.next()).await.unwrap().event_type,
    ];
    assert_eq!(
        types,
        vec![
            EventType::NodeCreated,
            EventType::NodeDataChanged,
            EventType::NodeChildrenChanged
        ]
    );
    c.remove_watches("/p", WatcherType::Any).await.unwrap();
    let ev = within(p.next()).await.unwrap();
    assert_eq!(ev.event_type, EventType::PersistentWatchRemoved);
    assert!(within(p.next()).await.is_none());
    assert!(p.end_reason().is_none());
    let e = c.remove_watches("/p", WatcherType::Any).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoWatcher);
    c.close().await.unwrap();
}

#[tokio::test]
async fn multi_is_all_or_nothing_and_names_the_failed_op() {
    let server = MockServer::start().await;
    let c = connect(&server).await;
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
    assert!(!server.mock.exists("/m2"));

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

#[tokio::test]
async fn close_ends_the_session_and_its_ephemerals() {
    let server = MockServer::start().await;
    let c = connect(&server).await;
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    let (_, watch) = c.exists_w("/other").await.unwrap();
    let other = c.clone();
    c.close().await.unwrap();
    assert!(!server.mock.exists("/eph"));
    let e = other.get_data("/").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired);
    assert_eq!(
        within(watch).await.unwrap_err().code(),
        ErrorCode::SessionExpired
    );
    other.close().await.unwrap();
}

#[tokio::test]
async fn a_broken_stream_fails_calls_in_flight_but_keeps_the_session_and_its_watches() {
    let server = MockServer::start().await;
    let c = connect(&server).await;
    let id = c.session_id();
    c.create("/k", "", CreateMode::Persistent).await.unwrap();
    let (_, _, watch) = c.get_data_w("/k").await.unwrap();
    let mut stream = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut states = c.state_changes();
    assert_eq!(c.state(), ConnectionState::Connected);

    // A create in flight when the stream dies: its outcome is unknown.
    let e = within(c.create("/__kill", "", CreateMode::Persistent))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    assert!(e.to_string().starts_with("ConnectionLoss: "), "{e}");
    assert_eq!(
        within(states.next()).await,
        Some(ConnectionState::Suspended)
    );
    assert_eq!(
        within(states.next()).await,
        Some(ConnectionState::Reconnected)
    );
    assert_eq!(c.state(), ConnectionState::Reconnected);
    assert_eq!(c.session_id(), id, "the same session, resumed");

    // The watches survived the reconnect.
    server.mock.external_set("/k", b"x");
    let ev = within(watch).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/k")
    );
    let ev = within(stream.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/k")
    );
    assert!(c.exists("/k").await.unwrap().is_some());

    // Resuming by hand still needs the right password.
    let e = Client::connect(
        &server.connect_string(),
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
}

#[tokio::test]
async fn no_server_is_a_connection_loss_naming_the_servers() {
    // Find two ports nobody listens on.
    let mut dead = Vec::new();
    for _ in 0..2 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        dead.push(l.local_addr().unwrap().to_string());
    }
    let servers = dead.join(",");
    let started = std::time::Instant::now();
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

#[tokio::test]
async fn idle_sessions_ping() {
    let server = MockServer::start().await;
    let c = Client::connect(
        &server.connect_string(),
        ConnectOptions {
            session_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(c.session_timeout(), Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert!(server.mock.pings() >= 2, "pings: {}", server.mock.pings());
    // Still alive: pongs count as answers.
    c.exists("/").await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_silent_server_is_detected_and_left() {
    let server = MockServer::start().await;
    let c = Client::connect(
        &server.connect_string(),
        ConnectOptions {
            session_timeout: Duration::from_millis(600),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut states = c.state_changes();
    let started = std::time::Instant::now();
    let e = within(c.create("/__mute", "", CreateMode::Persistent))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    assert!(e.to_string().contains("no answer"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // A new stream is not muted: the session carries on.
    assert_eq!(
        within(states.next()).await,
        Some(ConnectionState::Suspended)
    );
    assert_eq!(
        within(states.next()).await,
        Some(ConnectionState::Reconnected)
    );
    c.exists("/").await.unwrap();
    c.close().await.unwrap();
}
