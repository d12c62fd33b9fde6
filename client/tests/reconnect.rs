//! Reconnection against the mock server (see `support/`): suspending and
//! resuming the session, re-registering watches, retries, expiry and
//! renewal, protected creates.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use support::MockServer;
use warden_client::{
    AddWatchMode, Client, ConnectOptions, ConnectionState, CreateMode, ErrorCode, EventType,
    OneshotWatch, Op, RetryPolicy, StateStream, WatchedEvent,
};

const WAIT: Duration = Duration::from_secs(5);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

async fn connect_with(server: &MockServer, opts: ConnectOptions) -> Client {
    Client::connect(&server.connect_string(), opts)
        .await
        .expect("connect")
}

async fn connect(server: &MockServer) -> Client {
    connect_with(server, ConnectOptions::default()).await
}

/// The next state change, which must be `want`.
async fn expect_state(states: &mut StateStream, want: ConnectionState) {
    assert_eq!(within(states.next()).await, Some(want));
}

/// Resolves a one-shot watch that must already have fired.
async fn fired(w: OneshotWatch) -> WatchedEvent {
    within(w).await.expect("the watch fired")
}

/// True if the watch has not fired (checked without waiting).
fn pending(w: &mut OneshotWatch) -> bool {
    futures::FutureExt::now_or_never(w).is_none()
}

#[tokio::test]
async fn watches_are_re_registered_and_changes_missed_meanwhile_fire_once() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let c = connect(&server).await;
    for p in ["/a", "/same", "/p", "/q", "/r"] {
        c.create(p, "", CreateMode::Persistent).await.unwrap();
    }
    let (_, _, data) = c.get_data_w("/a").await.unwrap();
    let (_, _, mut same) = c.get_data_w("/same").await.unwrap();
    let (none, created) = c.exists_w("/new").await.unwrap();
    assert!(none.is_none());
    let (_, children) = c.get_children_w("/p").await.unwrap();
    let mut persistent = c.add_watch("/q", AddWatchMode::Persistent).await.unwrap();
    let mut recursive = c
        .add_watch("/r", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let seen = c.last_zxid();
    let mut states = c.state_changes();

    // The connection drops and the server stays away while others write.
    mock.set_down(true);
    mock.cut(c.session_id());
    expect_state(&mut states, ConnectionState::Suspended).await;
    mock.external_set("/a", b"1");
    mock.external_create("/new");
    mock.external_create("/p/kid");
    mock.set_down(false);
    expect_state(&mut states, ConnectionState::Reconnected).await;

    // The client resumed the same session from the last zxid it had seen...
    let connects = mock.connects();
    assert_eq!(connects.len(), 2, "{connects:?}");
    let connect = connects.last().unwrap().clone();
    assert_eq!(connect.session_id, c.session_id());
    assert_eq!(connect.last_zxid, seen);
    // ...and re-registered every watch relative to it, each path once.
    let (session, set) = mock.set_watches().pop().expect("SetWatches was sent");
    assert_eq!(session, c.session_id());
    assert_eq!(set.relative_zxid, seen);
    assert_eq!(set.data_watches, vec!["/a", "/same"]);
    assert_eq!(set.exist_watches, vec!["/new"]);
    assert_eq!(set.child_watches, vec!["/p"]);
    assert_eq!(set.persistent_watches, vec!["/q"]);
    assert_eq!(set.persistent_recursive_watches, vec!["/r"]);

    // What changed while away fired, once; what did not, did not.
    let ev = fired(data).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/a")
    );
    assert_eq!(fired(created).await.event_type, EventType::NodeCreated);
    assert_eq!(
        fired(children).await.event_type,
        EventType::NodeChildrenChanged
    );
    assert!(pending(&mut same));
    mock.external_set("/same", b"2");
    assert_eq!(fired(same).await.event_type, EventType::NodeDataChanged);

    // Persistent watches work on the new stream.
    mock.external_set("/q", b"3");
    mock.external_create("/r/deep");
    let ev = within(persistent.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/q")
    );
    let ev = within(recursive.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/r/deep")
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn queued_calls_go_out_after_the_watches_are_re_registered() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let c = connect(&server).await;
    let _stream = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut states = c.state_changes();
    mock.set_down(true);
    mock.cut(c.session_id());
    expect_state(&mut states, ConnectionState::Suspended).await;
    assert_eq!(c.state(), ConnectionState::Suspended);

    // Calls made while suspended wait instead of failing.
    let create = tokio::spawn({
        let c = c.clone();
        async move { c.create("/w", "", CreateMode::Persistent).await }
    });
    let read = tokio::spawn({
        let c = c.clone();
        async move { c.get_children("/").await }
    });
    tokio::task::yield_now().await;
    assert!(!create.is_finished());
    mock.set_down(false);
    assert_eq!(within(create).await.unwrap().unwrap(), "/w");
    assert_eq!(within(read).await.unwrap().unwrap(), vec!["w"]);
    expect_state(&mut states, ConnectionState::Reconnected).await;

    let ops = mock.ops(c.session_id());
    let after = &ops[ops.iter().rposition(|op| *op == "set_watches").unwrap()..];
    assert_eq!(after, ["set_watches", "create", "get_children"]);
    c.close().await.unwrap();
}

#[tokio::test]
async fn calls_in_flight_fail_unless_idempotent_and_idempotent_ones_are_retried() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let c = connect(&server).await;
    let id = c.session_id();

    // A create whose answer is lost: ConnectionLoss, though it happened.
    mock.fail_next("create", true);
    let e = within(c.create("/x", "0", CreateMode::Persistent))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss, "{e}");
    assert!(mock.exists("/x"));

    // Reads and unconditional writes are retried on the resumed session.
    mock.fail_next("get_data", false);
    let (data, _) = within(c.get_data("/x")).await.unwrap();
    assert_eq!(data, b"0");
    mock.fail_next("set_data", true);
    within(c.set_data("/x", "1", None)).await.unwrap();
    mock.fail_next("get_children", false);
    within(c.get_children("/")).await.unwrap();
    mock.fail_next("exists", true);
    assert!(within(c.exists("/x")).await.unwrap().is_some());
    mock.fail_next("sync", false);
    within(c.sync("/")).await.unwrap();
    mock.fail_next("get_ephemerals", false);
    within(c.get_ephemerals("/")).await.unwrap();
    assert_eq!(c.session_id(), id);

    // A watching read that is retried sets its watch on the new stream:
    // it fires once, for the change.
    mock.fail_next("get_data", true);
    let (_, _, watch) = within(c.get_data_w("/x")).await.unwrap();
    mock.fail_next("add_watch", true);
    let mut stream = within(c.add_watch("/x", AddWatchMode::Persistent))
        .await
        .unwrap();
    mock.external_set("/x", b"2");
    assert_eq!(fired(watch).await.event_type, EventType::NodeDataChanged);
    let ev = within(stream.next()).await.unwrap();
    assert_eq!(ev.event_type, EventType::NodeDataChanged);

    // delete and multi are not retried.
    mock.fail_next("delete", false);
    let e = within(c.delete("/x", None)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    assert!(mock.exists("/x"));
    mock.fail_next("multi", true);
    let e = within(c.multi(vec![Op::delete("/x", None)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    assert!(!mock.exists("/x"), "the multi did happen");
    c.close().await.unwrap();
}

#[tokio::test]
async fn retries_stop_at_the_policy_limit() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let c = connect_with(
        &server,
        ConnectOptions {
            retry: RetryPolicy {
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(20),
                max_retries: 2,
            },
            ..Default::default()
        },
    )
    .await;
    for _ in 0..3 {
        mock.fail_next("get_data", false);
    }
    let e = within(c.get_data("/")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    let tries = mock
        .ops(c.session_id())
        .iter()
        .filter(|op| **op == "get_data")
        .count();
    assert_eq!(tries, 3, "the first try and two retries");
    c.get_data("/").await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test]
async fn an_expired_session_is_lost_then_renewed_with_a_new_id() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let c = connect(&server).await;
    let old = c.session_id();
    c.create("/e", "", CreateMode::Ephemeral).await.unwrap();
    c.create("/n", "", CreateMode::Persistent).await.unwrap();
    let (_, _, watch) = c.get_data_w("/n").await.unwrap();
    let mut stream = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut states = c.state_changes();

    mock.expire(old);
    expect_state(&mut states, ConnectionState::Lost).await;
    // Every watch learns the session is gone.
    let e = within(watch).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    assert!(within(stream.next()).await.is_none());
    assert_eq!(
        stream.end_reason().map(|e| e.code()),
        Some(ErrorCode::SessionExpired)
    );
    expect_state(&mut states, ConnectionState::Reconnected).await;
    assert_ne!(c.session_id(), old, "a new session");
    assert!(mock.has_session(c.session_id()));
    assert!(
        !mock.exists("/e"),
        "the old session's ephemeral went with it"
    );
    assert_eq!(mock.connects().pop().unwrap().session_id, 0);
    // The client works on the new session.
    let path = c.create("/e", "", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(path, "/e");
    assert_eq!(c.get_ephemerals("/").await.unwrap(), vec!["/e"]);
    c.close().await.unwrap();
}

#[tokio::test]
async fn without_renewal_a_lost_client_stays_lost() {
    let server = MockServer::start().await;
    let c = connect_with(
        &server,
        ConnectOptions {
            renew_expired_session: false,
            ..Default::default()
        },
    )
    .await;
    let mut states = c.state_changes();
    server.mock.expire(c.session_id());
    expect_state(&mut states, ConnectionState::Lost).await;
    for _ in 0..3 {
        let e = c.get_data("/").await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
        let e = c
            .create("/x", "", CreateMode::Persistent)
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    }
    assert_eq!(c.state(), ConnectionState::Lost);
    c.close().await.unwrap();
    assert_eq!(c.state(), ConnectionState::Closed);
    expect_state(&mut states, ConnectionState::Closed).await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn suspended_past_the_timeout_is_lost_and_the_old_session_is_never_resumed() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let c = connect_with(
        &server,
        ConnectOptions {
            session_timeout: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await;
    let old = c.session_id();
    let (_, watch) = c.exists_w("/x").await.unwrap();
    let mut states = c.state_changes();
    mock.set_down(true);
    let cut = Instant::now();
    mock.cut(old);
    expect_state(&mut states, ConnectionState::Suspended).await;
    // A call made now waits; the session is lost before it is answered.
    let call = tokio::spawn({
        let c = c.clone();
        async move { c.get_data("/").await }
    });
    expect_state(&mut states, ConnectionState::Lost).await;
    let waited = cut.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "lost after {waited:?}"
    );
    let e = within(call).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    assert_eq!(
        within(watch).await.unwrap_err().code(),
        ErrorCode::SessionExpired
    );
    // Calls made while lost wait for the new session, up to the timeout.
    let started = Instant::now();
    let e = within(c.create("/late", "", CreateMode::Persistent))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss, "{e}");
    assert!(started.elapsed() >= Duration::from_millis(450));

    // The mock never expires sessions: the old one would still resume, yet
    // the client opens a new one.
    let connects_before = mock.connects().len();
    mock.set_down(false);
    expect_state(&mut states, ConnectionState::Reconnected).await;
    assert!(mock.has_session(old));
    assert_ne!(c.session_id(), old);
    for connect in &mock.connects()[connects_before..] {
        assert_eq!(connect.session_id, 0, "resumed a lost session: {connect:?}");
    }
    c.create("/now", "", CreateMode::Persistent).await.unwrap();
    c.close().await.unwrap();
}

#[tokio::test]
async fn close_while_suspended_waits_for_a_server_or_closes_locally() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(400),
        ..Default::default()
    };

    // The server comes back in time: the session is closed there.
    let c = connect_with(&server, opts.clone()).await;
    let id = c.session_id();
    let mut states = c.state_changes();
    mock.set_down(true);
    mock.cut(id);
    expect_state(&mut states, ConnectionState::Suspended).await;
    let closing = tokio::spawn({
        let c = c.clone();
        async move { c.close().await }
    });
    tokio::task::yield_now().await;
    mock.set_down(false);
    within(closing).await.unwrap().unwrap();
    assert!(!mock.has_session(id));
    assert_eq!(c.state(), ConnectionState::Closed);

    // It does not: the client closes locally and says so.
    let c = connect_with(&server, opts).await;
    let id = c.session_id();
    let mut states = c.state_changes();
    mock.set_down(true);
    mock.cut(id);
    expect_state(&mut states, ConnectionState::Suspended).await;
    let e = within(c.close()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss, "{e}");
    assert_eq!(c.state(), ConnectionState::Closed);
    expect_state(&mut states, ConnectionState::Closed).await;
    assert!(mock.has_session(id), "left to expire on the server");
    let e = c.get_data("/").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired);
    c.close().await.unwrap();
    mock.set_down(false);
}

#[tokio::test]
async fn dropping_every_handle_stops_the_task_but_not_the_session() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let c = connect(&server).await;
    let id = c.session_id();
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    let other = c.clone();
    drop(c);
    other.exists("/eph").await.unwrap();
    drop(other);
    let deadline = Instant::now() + WAIT;
    while mock.is_attached(id) {
        assert!(Instant::now() < deadline, "the stream was not dropped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(mock.has_session(id));
    assert!(mock.exists("/eph"));
}

#[tokio::test]
async fn protected_create_finds_a_node_whose_answer_was_lost() {
    let server = MockServer::start().await;
    let mock = &server.mock;
    let c = connect(&server).await;
    c.create("/locks", "", CreateMode::Persistent)
        .await
        .unwrap();

    // The create happened; only its answer was lost.
    mock.fail_next("create", true);
    let path = within(c.create_protected("/locks/lock-", "me", CreateMode::EphemeralSequential))
        .await
        .unwrap();
    let kids = mock.children("/locks");
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(path, format!("/locks/{}", kids[0]));
    let name = &kids[0];
    assert!(name.starts_with("_c_"), "{name}");
    assert_eq!(name.len(), "_c_".len() + 32 + "-lock-".len() + 10, "{name}");
    assert!(name[3..35].bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    assert!(name.ends_with("-lock-0000000000"), "{name}");
    let ops = mock.ops(c.session_id());
    assert_eq!(
        ops.iter().filter(|op| **op == "create").count(),
        2,
        "one create for /locks, one protected: {ops:?}"
    );
    assert_eq!(&ops[ops.len() - 2..], ["multi", "get_children"]);

    // The create itself was lost: it is made again, with the same id.
    mock.fail_next("create", false);
    let again = within(c.create_protected("/locks/lock-", "me", CreateMode::EphemeralSequential))
        .await
        .unwrap();
    let kids = mock.children("/locks");
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(again.ends_with("-lock-0000000001"), "{again}");
    assert_eq!(c.get_data(&again).await.unwrap().0, b"me");

    // Any mode works; the path comes back whole.
    mock.fail_next("create", true);
    let plain = within(c.create_protected("/locks/cfg", "", CreateMode::Persistent))
        .await
        .unwrap();
    assert!(
        plain.starts_with("/locks/_c_") && plain.ends_with("-cfg"),
        "{plain}"
    );
    assert!(mock.exists(&plain));

    // A plain create in the same spot reports ConnectionLoss.
    mock.fail_next("create", true);
    let e = c
        .create("/locks/plain-", "", CreateMode::EphemeralSequential)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);

    // Bad paths are refused before anything is sent.
    let e = c
        .create_protected("/", "", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadArguments);
    c.close().await.unwrap();
}

#[tokio::test]
async fn failover_resumes_the_session_on_another_server() {
    let a = MockServer::start().await;
    let b = MockServer::start_shared(&a.mock).await;
    let c = Client::connect(
        &format!("{},{}", a.connect_string(), b.connect_string()),
        ConnectOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(c.servers().len(), 2);
    let id = c.session_id();
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    let (_, _, watch) = c.get_data_w("/eph").await.unwrap();
    let (first, other) = if c.server().to_string() == a.connect_string() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let mut states = c.state_changes();
    first.stop_accepting();
    a.mock.cut(id);
    expect_state(&mut states, ConnectionState::Suspended).await;
    expect_state(&mut states, ConnectionState::Reconnected).await;
    assert_eq!(c.server().to_string(), other.connect_string());
    assert_eq!(c.session_id(), id);
    assert!(c.exists("/eph").await.unwrap().is_some());
    a.mock.external_set("/eph", b"x");
    assert_eq!(fired(watch).await.event_type, EventType::NodeDataChanged);
    c.close().await.unwrap();
}
