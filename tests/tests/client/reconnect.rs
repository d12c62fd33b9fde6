//! Connection loss: suspending and resuming the session, re-registering
//! watches, retries, expiry and renewal, protected creates, fail-over to
//! another address of the connect string.

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use warden_client::{
    AddWatchMode, ConnectOptions, ConnectionState, CreateMode, ErrorCode, EventType, OneshotWatch,
    Op, RetryPolicy, StateStream, WatchedEvent,
};
use warden_tests::proxy::Direction;
use warden_tests::{session_opts, within, STEP};

use super::*;

/// The next state change, which must be `want`.
async fn expect_state(states: &mut StateStream, want: ConnectionState) {
    assert_eq!(
        within(STEP, "a state change", states.next()).await,
        Some(want)
    );
}

/// Resolves a one-shot watch that must fire.
async fn fired(w: OneshotWatch) -> WatchedEvent {
    within(STEP, "the watch fires", w)
        .await
        .expect("the watch fired")
}

/// True if the watch has not fired (checked without waiting).
fn pending(w: &mut OneshotWatch) -> bool {
    futures::FutureExt::now_or_never(w).is_none()
}

/// Makes the server expire `c`'s session while `c` is cut off from it: the
/// proxy goes silent both ways (the client gives up on the connection, its
/// attempts to reconnect are held), until the server has expired the
/// session; then the network heals. The client learns that its session is
/// gone from the server (or, if the server was slower, from its own clock:
/// either way it is `Lost`).
async fn expire(server: &InProcServer, proxy: &Proxy, c: &Client) {
    let id = c.session_id();
    proxy.mute();
    until("the server expires the session", || {
        !live_sessions(server).contains(&id)
    })
    .await;
    proxy.unmute();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_re_registered_and_changes_missed_meanwhile_fire_once() {
    let server = start();
    let proxy = proxy_for(&server);
    let other = observer(&server).await;
    let c = connect(proxy.addr(), ConnectOptions::default()).await;
    let id = c.session_id();
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
    let mut states = c.state_changes();

    // The connection drops and the server stays away while others write.
    proxy.refuse(true);
    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended).await;
    other.set_data("/a", "1", None).await.unwrap();
    other
        .create("/new", "", CreateMode::Persistent)
        .await
        .unwrap();
    other
        .create("/p/kid", "", CreateMode::Persistent)
        .await
        .unwrap();
    proxy.refuse(false);
    expect_state(&mut states, ConnectionState::Reconnected).await;

    // The client resumed the same session, on one new connection...
    assert_eq!(c.session_id(), id);
    assert_eq!(proxy.accepted(), 2);

    // ...and re-registered every watch relative to the last zxid it had
    // seen: what changed while away fired, once; what did not (changed
    // before that zxid), did not.
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
    // The server holds the watches that have yet to fire, each path once.
    assert_eq!(
        watches_of(&server, id),
        [
            "/q (persistent)",
            "/r (persistentRecursive)",
            "/same (data)"
        ]
    );
    other.set_data("/same", "2", None).await.unwrap();
    assert_eq!(fired(same).await.event_type, EventType::NodeDataChanged);

    // Persistent watches work on the new connection.
    other.set_data("/q", "3", None).await.unwrap();
    other
        .create("/r/deep", "", CreateMode::Persistent)
        .await
        .unwrap();
    let ev = within(STEP, "an event", persistent.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/q")
    );
    let ev = within(STEP, "an event", recursive.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/r/deep")
    );
    c.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_calls_go_out_after_the_watches_are_re_registered() {
    let server = start();
    let proxy = proxy_for(&server);
    let c = connect(proxy.addr(), ConnectOptions::default()).await;
    c.create("/base", "", CreateMode::Persistent).await.unwrap();
    let mut stream = c
        .add_watch("/base", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut states = c.state_changes();
    proxy.refuse(true);
    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended).await;
    assert_eq!(c.state(), ConnectionState::Suspended);

    // Calls made while suspended wait instead of failing (made in this
    // order: the create, then the read).
    let calls = tokio::spawn(on(&c, |c| async move {
        futures::join!(
            c.create("/base/w", "", CreateMode::Persistent),
            c.get_children("/base")
        )
    }));
    let refused = proxy.refused();
    until("the client tries to reconnect", || {
        proxy.refused() > refused
    })
    .await;
    assert!(!calls.is_finished());
    proxy.refuse(false);
    let (created, read) = within(STEP, "the calls", calls).await.unwrap();
    assert_eq!(created.unwrap(), "/base/w");
    assert_eq!(read.unwrap(), vec!["w"]);
    expect_state(&mut states, ConnectionState::Reconnected).await;

    // The watch was back on the server before the queued create reached
    // it: the create's event was not missed.
    let ev = within(STEP, "an event", stream.next()).await.unwrap();
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/base/w")
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_fail_unless_idempotent_and_idempotent_ones_are_retried() {
    let server = start();
    let proxy = proxy_for(&server);
    let other = observer(&server).await;
    let c = connect(proxy.addr(), ConnectOptions::default()).await;
    let id = c.session_id();

    // A create whose answer is lost: ConnectionLoss, though it happened.
    let e = answer_lost(&server, &proxy, &c, "create", |c| async move {
        c.create("/x", "0", CreateMode::Persistent).await
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss, "{e}");
    assert!(other.exists("/x").await.unwrap().is_some());

    // Reads and unconditional writes are retried on the resumed session.
    let (data, _) = request_lost(
        &proxy,
        &c,
        "get_data",
        |c| async move { c.get_data("/x").await },
    )
    .await
    .unwrap();
    assert_eq!(data, b"0");
    answer_lost(&server, &proxy, &c, "set_data", |c| async move {
        c.set_data("/x", "1", None).await
    })
    .await
    .unwrap();
    assert_eq!(other.get_data("/x").await.unwrap().0, b"1");
    request_lost(&proxy, &c, "get_children", |c| async move {
        c.get_children("/").await
    })
    .await
    .unwrap();
    let stat = answer_lost(&server, &proxy, &c, "exists", |c| async move {
        c.exists("/x").await
    })
    .await
    .unwrap();
    assert!(stat.is_some());
    request_lost(&proxy, &c, "sync", |c| async move { c.sync("/").await })
        .await
        .unwrap();
    request_lost(&proxy, &c, "get_ephemerals", |c| async move {
        c.get_ephemerals("/").await
    })
    .await
    .unwrap();
    assert_eq!(c.session_id(), id);

    // A watching read that is retried sets its watch on the new
    // connection: it fires once, for the change.
    let (_, _, watch) = answer_lost(&server, &proxy, &c, "get_data", |c| async move {
        c.get_data_w("/x").await
    })
    .await
    .unwrap();
    let mut stream = answer_lost(&server, &proxy, &c, "add_watch", |c| async move {
        c.add_watch("/x", AddWatchMode::Persistent).await
    })
    .await
    .unwrap();
    assert_eq!(
        watches_of(&server, id),
        ["/x (data)", "/x (persistent)"],
        "each watch is held once"
    );
    other.set_data("/x", "2", None).await.unwrap();
    assert_eq!(fired(watch).await.event_type, EventType::NodeDataChanged);
    let ev = within(STEP, "an event", stream.next()).await.unwrap();
    assert_eq!(ev.event_type, EventType::NodeDataChanged);

    // delete and multi are not retried.
    let e = request_lost(&proxy, &c, "delete", |c| async move {
        c.delete("/x", None).await
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    assert!(other.exists("/x").await.unwrap().is_some());
    let e = answer_lost(&server, &proxy, &c, "multi", |c| async move {
        c.multi(vec![Op::delete("/x", None)]).await
    })
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss);
    assert_eq!(
        other.exists("/x").await.unwrap(),
        None,
        "the multi did happen"
    );
    c.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_policy_limit() {
    let server = start();
    let proxy = proxy_for(&server);
    let c = connect(
        proxy.addr(),
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
    // Answers now take a second to come back: time enough to cut the
    // connection once the server has answered a try, before the answer
    // arrives. (The session's 4 s timeout leaves time to reconnect.)
    proxy.set_delay_one_way(Direction::ToClient, Duration::from_secs(1));
    let before = answered(&server, "get_data");
    let call = tokio::spawn(on(&c, |c| async move { c.get_data("/").await }));
    for tries in 1..=3 {
        until(&format!("try {tries} reaches the server"), || {
            answered(&server, "get_data") == before + tries
        })
        .await;
        proxy.cut();
    }
    let e = within(STEP, "the call", call).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss, "{e}");
    proxy.set_delay(Duration::ZERO);
    c.get_data("/").await.unwrap();
    assert_eq!(
        answered(&server, "get_data") - before,
        4,
        "the first try, two retries, and the call after them"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_lost_then_renewed_with_a_new_id() {
    let server = start();
    let proxy = proxy_for(&server);
    let other = observer(&server).await;
    let c = connect(proxy.addr(), with_timeout(Duration::from_secs(1))).await;
    let old = c.session_id();
    c.create("/e", "", CreateMode::Ephemeral).await.unwrap();
    c.create("/n", "", CreateMode::Persistent).await.unwrap();
    let (_, _, watch) = c.get_data_w("/n").await.unwrap();
    let mut stream = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut states = c.state_changes();

    expire(&server, &proxy, &c).await;
    assert_eq!(
        other.exists("/e").await.unwrap(),
        None,
        "the old session's ephemeral went with it"
    );
    expect_state(&mut states, ConnectionState::Suspended).await;
    expect_state(&mut states, ConnectionState::Lost).await;
    // Every watch learns the session is gone.
    let e = within(STEP, "the watch ends", watch).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    assert!(within(STEP, "the stream ends", stream.next())
        .await
        .is_none());
    assert_eq!(
        stream.end_reason().map(|e| e.code()),
        Some(ErrorCode::SessionExpired)
    );
    expect_state(&mut states, ConnectionState::Reconnected).await;
    // A new session, not the old one resumed.
    assert_ne!(c.session_id(), old, "a new session");
    let live = live_sessions(&server);
    assert!(live.contains(&c.session_id()) && !live.contains(&old));
    // The client works on the new session.
    let path = c.create("/e", "", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(path, "/e");
    assert_eq!(c.get_ephemerals("/").await.unwrap(), vec!["/e"]);
    c.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_renewal_a_lost_client_stays_lost() {
    let server = start();
    let proxy = proxy_for(&server);
    let c = connect(
        proxy.addr(),
        ConnectOptions {
            session_timeout: Duration::from_secs(1),
            renew_expired_session: false,
            ..Default::default()
        },
    )
    .await;
    let mut states = c.state_changes();
    expire(&server, &proxy, &c).await;
    expect_state(&mut states, ConnectionState::Suspended).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_past_the_timeout_is_lost_and_the_old_session_is_never_resumed() {
    let server = start();
    let proxy = proxy_for(&server);
    let timeout = Duration::from_secs(1);
    let c = connect(proxy.addr(), with_timeout(timeout)).await;
    let old = c.session_id();
    let (_, watch) = c.exists_w("/x").await.unwrap();
    let mut states = c.state_changes();
    proxy.refuse(true);
    let cut = Instant::now();
    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended).await;
    // Someone else resumes the old session at once and keeps it alive, so
    // that it could still be resumed when the client is back.
    let keeper = connect(
        server.addr(),
        session_opts(timeout, Some((old, c.session_password()))),
    )
    .await;
    assert_eq!(keeper.session_id(), old);
    let mut keeper_states = keeper.state_changes();

    // A call made now waits; the session is lost before it is answered.
    let call = tokio::spawn(on(&c, |c| async move { c.get_data("/").await }));
    expect_state(&mut states, ConnectionState::Lost).await;
    let waited = cut.elapsed();
    assert!(waited >= timeout, "lost after {waited:?}");
    let e = within(STEP, "the call", call).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    assert_eq!(
        within(STEP, "the watch ends", watch)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::SessionExpired
    );
    // Calls made while lost wait for the new session, up to the timeout.
    let started = Instant::now();
    let e = within(
        STEP,
        "the create",
        c.create("/late", "", CreateMode::Persistent),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss, "{e}");
    assert!(started.elapsed() >= timeout * 9 / 10);

    // The old session is still there to resume, yet the client opens a
    // new one: the keeper's hold on it is never disturbed.
    proxy.refuse(false);
    expect_state(&mut states, ConnectionState::Reconnected).await;
    assert_ne!(c.session_id(), old);
    assert!(live_sessions(&server).contains(&old));
    c.create("/now", "", CreateMode::Persistent).await.unwrap();
    keeper.exists("/now").await.unwrap();
    assert_eq!(keeper_states.next().now_or_never(), None);
    assert_eq!(keeper.session_id(), old);
    assert_eq!(keeper.state(), ConnectionState::Connected);
    c.close().await.unwrap();
    keeper.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_while_suspended_waits_for_a_server_or_closes_locally() {
    let server = start();
    let proxy = proxy_for(&server);
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(400),
        ..Default::default()
    };

    // The server comes back in time: the session is closed there.
    let c = connect(proxy.addr(), opts.clone()).await;
    let id = c.session_id();
    let mut states = c.state_changes();
    proxy.refuse(true);
    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended).await;
    let closing = tokio::spawn(on(&c, |c| async move { c.close().await }));
    tokio::task::yield_now().await;
    proxy.refuse(false);
    within(STEP, "the close", closing).await.unwrap().unwrap();
    assert!(!live_sessions(&server).contains(&id));
    assert_eq!(c.state(), ConnectionState::Closed);

    // It does not: the client closes locally and says so.
    let c = connect(proxy.addr(), opts).await;
    let id = c.session_id();
    let mut states = c.state_changes();
    proxy.refuse(true);
    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended).await;
    let e = within(STEP, "the close", c.close()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss, "{e}");
    assert_eq!(c.state(), ConnectionState::Closed);
    expect_state(&mut states, ConnectionState::Closed).await;
    assert!(
        live_sessions(&server).contains(&id),
        "left to expire on the server"
    );
    let e = c.get_data("/").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired);
    c.close().await.unwrap();
    proxy.refuse(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_stops_the_task_but_not_the_session() {
    let server = start();
    let c = connect(server.addr(), ConnectOptions::default()).await;
    let id = c.session_id();
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    let other = c.clone();
    drop(c);
    other.exists("/eph").await.unwrap();
    assert_eq!(connections_of(&server, id).len(), 1);
    drop(other);
    until("the connection is dropped", || {
        connections_of(&server, id).is_empty()
    })
    .await;
    assert!(live_sessions(&server).contains(&id));
    let o = observer(&server).await;
    assert_eq!(
        o.exists("/eph").await.unwrap().map(|s| s.ephemeral_owner),
        Some(id)
    );
    o.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_create_finds_a_node_whose_answer_was_lost() {
    let server = start();
    let proxy = proxy_for(&server);
    let other = observer(&server).await;
    let c = connect(proxy.addr(), ConnectOptions::default()).await;
    c.create("/locks", "", CreateMode::Persistent)
        .await
        .unwrap();
    let observer = &other;
    let children = move || async move {
        let mut kids = observer.get_children("/locks").await.unwrap();
        kids.sort();
        kids
    };

    // The create happened; only its answer was lost.
    let counts = |server: &InProcServer| {
        (
            answered(server, "create"),
            answered(server, "multi"),
            answered(server, "get_children"),
        )
    };
    let before = counts(&server);
    let path = answer_lost(&server, &proxy, &c, "create", |c| async move {
        c.create_protected("/locks/lock-", "me", CreateMode::EphemeralSequential)
            .await
    })
    .await
    .unwrap();
    let after = counts(&server);
    let kids = children().await;
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(path, format!("/locks/{}", kids[0]));
    let name = &kids[0];
    assert!(name.starts_with("_c_"), "{name}");
    assert_eq!(name.len(), "_c_".len() + 32 + "-lock-".len() + 10, "{name}");
    assert!(name[3..35].bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    assert!(name.ends_with("-lock-0000000000"), "{name}");
    // It was found, not made again: one create, then a barrier (a multi
    // with a check) and a listing of the parent.
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (1, 1, 1),
        "(creates, multis, listings)"
    );

    // The create itself was lost: it is made again, with the same id.
    let again = request_lost(&proxy, &c, "the protected create", |c| async move {
        c.create_protected("/locks/lock-", "me", CreateMode::EphemeralSequential)
            .await
    })
    .await
    .unwrap();
    let kids = children().await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(again.ends_with("-lock-0000000001"), "{again}");
    assert_eq!(c.get_data(&again).await.unwrap().0, b"me");

    // Any mode works; the path comes back whole.
    let plain = answer_lost(&server, &proxy, &c, "create", |c| async move {
        c.create_protected("/locks/cfg", "", CreateMode::Persistent)
            .await
    })
    .await
    .unwrap();
    assert!(
        plain.starts_with("/locks/_c_") && plain.ends_with("-cfg"),
        "{plain}"
    );
    assert!(other.exists(&plain).await.unwrap().is_some());

    // A plain create in the same spot reports ConnectionLoss.
    let e = answer_lost(&server, &proxy, &c, "create", |c| async move {
        c.create("/locks/plain-", "", CreateMode::EphemeralSequential)
            .await
    })
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
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_resumes_the_session_on_another_server() {
    // Two addresses for one server: a proxy each. The client cannot tell
    // them from two members of an ensemble.
    let server = start();
    let a = proxy_for(&server);
    let b = proxy_for(&server);
    let other = observer(&server).await;
    let c = connect(
        format!("{},{}", a.addr(), b.addr()),
        ConnectOptions::default(),
    )
    .await;
    assert_eq!(c.servers().len(), 2);
    let id = c.session_id();
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    let (_, _, watch) = c.get_data_w("/eph").await.unwrap();
    let (first, second) = if c.server().to_string() == a.addr().to_string() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!((first.accepted(), second.accepted()), (1, 0));
    let mut states = c.state_changes();
    first.refuse(true);
    first.cut();
    expect_state(&mut states, ConnectionState::Suspended).await;
    expect_state(&mut states, ConnectionState::Reconnected).await;
    assert_eq!(c.server().to_string(), second.addr().to_string());
    assert_eq!(second.accepted(), 1);
    assert_eq!(c.session_id(), id);
    assert!(c.exists("/eph").await.unwrap().is_some());
    other.set_data("/eph", "x", None).await.unwrap();
    assert_eq!(fired(watch).await.event_type, EventType::NodeDataChanged);
    c.close().await.unwrap();
    other.close().await.unwrap();
}

/// Credentials given to `add_auth` are sent again on the new connection
/// before anything queued: a read of a node only that user may read,
/// made while the connection was down, succeeds after the reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_is_replayed_after_a_reconnect() {
    let server = start();
    let proxy = proxy_for(&server);
    let c = connect(proxy.addr(), ConnectOptions::default()).await;
    c.add_auth("digest", "alice:secret").await.unwrap();
    let only_alice = vec![warden_client::Acl {
        perms: warden_client::Acl::ALL,
        scheme: "digest".into(),
        id: warden_server::digest("alice:secret"),
    }];
    c.create_with(
        "/alices",
        "x",
        warden_client::CreateOptions::new(CreateMode::Persistent).with_acl(only_alice),
    )
    .await
    .unwrap();
    let mut states = c.state_changes();
    proxy.refuse(true);
    proxy.cut();
    expect_state(&mut states, ConnectionState::Suspended).await;
    let read = tokio::spawn(on(&c, |c| async move { c.get_data("/alices").await }));
    proxy.refuse(false);
    let (data, _) = within(STEP, "the read after the reconnect", read)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the read after the reconnect failed: {e}"));
    assert_eq!(data, b"x");
    let who: Vec<String> = c
        .who_am_i()
        .await
        .unwrap()
        .into_iter()
        .map(|i| format!("{}:{}", i.scheme, i.user))
        .collect();
    assert!(who.contains(&"digest:alice".to_string()), "{who:?}");
    c.close().await.unwrap();
}
