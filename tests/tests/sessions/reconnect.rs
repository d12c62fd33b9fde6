//! Reconnection end to end: a real server killed and restarted, connections
//! cut by a proxy (`warden_tests::proxy::Proxy`) while other clients write, a dead
//! address in the connect string, a session lost while the server is down,
//! protected creates and retried reads across a cut.
//!
//! Every test starts its own server (tick 200 ms: session timeouts in
//! [400 ms, 4 s]) and waits on conditions with deadlines, never on sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use warden_client::{
    AddWatchMode, Client, ConnectionState, CreateMode, ErrorCode, EventType, WatchedEvent,
};
use warden_tests::proxy::{Direction, Proxy};
use warden_tests::{connect, free_port, quick_retry, wait_until, within, ServerProc, STEP};

/// A client with a quick back-off, so reconnects follow a restart closely.
async fn client(servers: &str, timeout: Duration) -> Client {
    connect(servers, quick_retry(timeout)).await
}

/// Every state change of a client from now on, in order.
fn record_states(c: &Client) -> Arc<Mutex<Vec<ConnectionState>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut changes = c.state_changes();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(s) = changes.next().await {
            sink.lock().push(s);
        }
    });
    seen
}

async fn wait_for_state(c: &Client, want: ConnectionState) {
    wait_until(&format!("state {want:?}"), STEP, || async {
        c.state() == want
    })
    .await;
}

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_rides_out_a_server_kill_and_restart() {
    let mut server = ServerProc::start();
    let c = client(&server.addr(), Duration::from_secs(4)).await;
    let id = c.session_id();
    c.create("/eph", "mine", CreateMode::Ephemeral)
        .await
        .unwrap();
    let states = record_states(&c);

    block(|| server.kill9());
    wait_for_state(&c, ConnectionState::Suspended).await;
    block(|| server.restart());
    wait_for_state(&c, ConnectionState::Reconnected).await;

    assert_eq!(
        *states.lock(),
        vec![ConnectionState::Suspended, ConnectionState::Reconnected]
    );
    assert_eq!(c.session_id(), id, "the same session");
    let stat = c
        .exists("/eph")
        .await
        .unwrap()
        .expect("the ephemeral survived");
    assert_eq!(stat.ephemeral_owner, id);
    c.close().await.unwrap();
    assert_eq!(c.state(), ConnectionState::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_is_left_and_the_session_resumed_when_it_wakes() {
    let server = ServerProc::start();
    let timeout = Duration::from_secs(3);
    let c = client(&server.addr(), timeout).await;
    let id = c.session_id();
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    let states = record_states(&c);

    // A stopped server keeps its sockets open but answers nothing: the
    // client notices the silence (⅔ of the timeout) and suspends.
    server.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    wait_for_state(&c, ConnectionState::Suspended).await;
    assert!(
        stopped.elapsed() < timeout,
        "suspended only after {:?}",
        stopped.elapsed()
    );
    server.signal(libc::SIGCONT);
    wait_for_state(&c, ConnectionState::Reconnected).await;
    assert_eq!(
        *states.lock(),
        vec![ConnectionState::Suspended, ConnectionState::Reconnected]
    );
    assert_eq!(c.session_id(), id);
    let stat = c
        .exists("/eph")
        .await
        .unwrap()
        .expect("the ephemeral survived");
    assert_eq!(stat.ephemeral_owner, id);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_fire_exactly_once_across_a_cut_connection() {
    let server = ServerProc::start();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let writer = client(&server.addr(), Duration::from_secs(4)).await;
    let a = client(&proxy.addr().to_string(), Duration::from_secs(4)).await;
    writer
        .create("/w", "0", CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/p", "0", CreateMode::Persistent)
        .await
        .unwrap();

    // Record every event a's watches deliver.
    let events: Arc<Mutex<Vec<(&'static str, WatchedEvent)>>> = Arc::default();
    let (_, _, oneshot) = a.get_data_w("/w").await.unwrap();
    let mut persistent = a.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    let sink = events.clone();
    tokio::spawn(async move {
        if let Ok(ev) = oneshot.await {
            sink.lock().push(("oneshot", ev));
        }
    });
    let sink = events.clone();
    tokio::spawn(async move {
        while let Some(ev) = persistent.next().await {
            sink.lock().push(("persistent", ev));
        }
    });
    let states = record_states(&a);
    let id = a.session_id();

    // Cut a off and keep it off while the writer changes the watched node.
    proxy.mute();
    proxy.cut();
    wait_for_state(&a, ConnectionState::Suspended).await;
    writer.set_data("/w", "1", None).await.unwrap();
    assert!(events.lock().is_empty());
    proxy.unmute();
    wait_for_state(&a, ConnectionState::Reconnected).await;
    assert_eq!(a.session_id(), id);

    // The missed change fires the one-shot watch (from the re-registration).
    wait_until("the one-shot watch to fire", STEP, || async {
        !events.lock().is_empty()
    })
    .await;
    // The persistent watch delivers changes made after the reconnect; the
    // one-shot watch, spent, stays quiet.
    writer.set_data("/w", "2", None).await.unwrap();
    writer.set_data("/p", "1", None).await.unwrap();
    writer.set_data("/p", "2", None).await.unwrap();
    wait_until("two persistent events", STEP, || async {
        events
            .lock()
            .iter()
            .filter(|(k, _)| *k == "persistent")
            .count()
            >= 2
    })
    .await;
    // One more round trip on a's stream, so anything extra would have arrived.
    a.sync("/").await.unwrap();
    a.get_data("/p").await.unwrap();

    let got: Vec<(&str, EventType, String)> = events
        .lock()
        .iter()
        .map(|(k, e)| (*k, e.event_type, e.path.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("oneshot", EventType::NodeDataChanged, "/w".to_string()),
            ("persistent", EventType::NodeDataChanged, "/p".to_string()),
            ("persistent", EventType::NodeDataChanged, "/p".to_string()),
        ]
    );
    let zxids: Vec<i64> = events.lock().iter().map(|(_, e)| e.zxid).collect();
    assert!(zxids.windows(2).all(|w| w[0] < w[1]), "{zxids:?}");
    assert_eq!(
        *states.lock(),
        vec![ConnectionState::Suspended, ConnectionState::Reconnected]
    );
    a.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_address_in_the_connect_string_is_skipped() {
    let server = ServerProc::start();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let dead = format!("127.0.0.1:{}", free_port());

    // Servers are tried in random order; whichever comes first, the live
    // one is reached.
    for _ in 0..4 {
        let c = client(&format!("{dead},{}", server.addr()), Duration::from_secs(4)).await;
        assert_eq!(c.servers().len(), 2);
        assert_eq!(c.server().to_string(), server.addr());
        c.close().await.unwrap();
    }

    // Reconnecting skips it too.
    let c = client(&format!("{dead},{}", proxy.addr()), Duration::from_secs(4)).await;
    let id = c.session_id();
    for _ in 0..3 {
        let accepted = proxy.accepted();
        proxy.cut();
        wait_until("a new connection through the proxy", STEP, || async {
            proxy.accepted() > accepted && c.state() == ConnectionState::Reconnected
        })
        .await;
        assert_eq!(c.session_id(), id);
        c.exists("/").await.unwrap();
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_past_the_session_timeout_loses_the_session_and_a_new_one_is_opened() {
    let mut server = ServerProc::start();
    let timeout = Duration::from_secs(1);
    let c = client(&server.addr(), timeout).await;
    let old = c.session_id();
    c.create("/old-eph", "", CreateMode::Ephemeral)
        .await
        .unwrap();
    let (_, _, watch) = c.get_data_w("/old-eph").await.unwrap();
    let mut stream = c
        .add_watch("/", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let states = record_states(&c);

    let killed = Instant::now();
    block(|| server.kill9());
    wait_for_state(&c, ConnectionState::Lost).await;
    let after = killed.elapsed();
    assert!(after >= timeout, "lost only {after:?} after the kill");
    // Everything tied to the old session learns it is gone.
    let e = within(STEP, "the watch to fail", watch).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    assert!(within(STEP, "the stream to end", stream.next())
        .await
        .is_none());
    assert_eq!(
        stream.end_reason().map(|e| e.code()),
        Some(ErrorCode::SessionExpired)
    );

    block(|| server.restart());
    wait_for_state(&c, ConnectionState::Reconnected).await;
    assert_eq!(
        *states.lock(),
        vec![
            ConnectionState::Suspended,
            ConnectionState::Lost,
            ConnectionState::Reconnected
        ]
    );
    let new = c.session_id();
    assert_ne!(new, old, "a new session");
    // The old session was not resumed: the server expires it (a timeout
    // after the restart), and its ephemeral with it.
    wait_until("the old ephemeral to go", STEP, || async {
        c.exists("/old-eph").await.unwrap().is_none()
    })
    .await;
    let path = c
        .create("/new-eph", "", CreateMode::Ephemeral)
        .await
        .unwrap();
    let stat = c.exists(&path).await.unwrap().unwrap();
    assert_eq!(stat.ephemeral_owner, new);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_create_across_a_cut_makes_exactly_one_node() {
    let server = ServerProc::start();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let observer = client(&server.addr(), Duration::from_secs(4)).await;
    let a = client(&proxy.addr().to_string(), Duration::from_secs(4)).await;
    observer
        .create("/locks", "", CreateMode::Persistent)
        .await
        .unwrap();
    let children = || async { observer.get_children("/locks").await.unwrap() };

    // The create reaches the server, its answer does not.
    proxy.mute_one_way(Direction::ToClient);
    let call = tokio::spawn({
        let a = a.clone();
        async move {
            a.create_protected("/locks/lock-", "a", CreateMode::EphemeralSequential)
                .await
        }
    });
    wait_until("the create to land", STEP, || async {
        children().await.len() == 1
    })
    .await;
    proxy.cut();
    proxy.unmute();
    let path = within(STEP, "create_protected", call)
        .await
        .unwrap()
        .unwrap();
    let kids = children().await;
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(path, format!("/locks/{}", kids[0]));
    assert!(kids[0].starts_with("_c_"), "{kids:?}");

    // The create never reaches the server: it is made again.
    proxy.mute();
    let call = tokio::spawn({
        let a = a.clone();
        async move {
            a.create_protected("/locks/lock-", "a", CreateMode::EphemeralSequential)
                .await
        }
    });
    proxy.cut();
    proxy.unmute();
    within(STEP, "create_protected", call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(children().await.len(), 2);

    // Cut right after sending, at whatever point the create has reached.
    for round in 0..5 {
        let call = tokio::spawn({
            let a = a.clone();
            async move {
                a.create_protected("/locks/lock-", "a", CreateMode::EphemeralSequential)
                    .await
            }
        });
        tokio::task::yield_now().await;
        proxy.cut();
        let path = within(STEP, "create_protected", call)
            .await
            .unwrap()
            .unwrap();
        let kids = children().await;
        assert_eq!(kids.len(), 3 + round, "round {round}: {kids:?}");
        let name = path.rsplit('/').next().unwrap();
        assert!(kids.iter().any(|k| k == name), "{path} not in {kids:?}");
    }
    // Every node is a's, ephemeral: no orphan of another session.
    let mine = a.get_ephemerals("/locks").await.unwrap();
    assert_eq!(mine.len(), 7, "{mine:?}");
    a.close().await.unwrap();
    wait_until("a's nodes to go with its session", STEP, || async {
        children().await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_read_is_retried_across_a_cut_and_a_create_is_not() {
    let server = ServerProc::start();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let observer = client(&server.addr(), Duration::from_secs(4)).await;
    let a = client(&proxy.addr().to_string(), Duration::from_secs(4)).await;
    observer
        .create("/g", "data", CreateMode::Persistent)
        .await
        .unwrap();
    let gets = || block(|| server.metric("warden_requests_total", "op=\"get_data\""));

    // The read is answered by the server, but the answer is cut off.
    let before = gets();
    proxy.mute_one_way(Direction::ToClient);
    let call = tokio::spawn({
        let a = a.clone();
        async move { a.get_data("/g").await }
    });
    wait_until("the read to reach the server", STEP, || async {
        gets() > before
    })
    .await;
    proxy.cut();
    proxy.unmute();
    let (data, _) = within(STEP, "get_data", call).await.unwrap().unwrap();
    assert_eq!(data, b"data");
    let after = gets();
    assert!(
        after >= before + 2.0,
        "the read was sent again: {before} -> {after}"
    );

    // The same for a create: it happened, but the caller cannot know.
    proxy.mute_one_way(Direction::ToClient);
    let call = tokio::spawn({
        let a = a.clone();
        async move { a.create("/c", "", CreateMode::Persistent).await }
    });
    wait_until("the create to land", STEP, || async {
        observer.exists("/c").await.unwrap().is_some()
    })
    .await;
    proxy.cut();
    proxy.unmute();
    let e = within(STEP, "create", call).await.unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionLoss, "{e}");
    wait_for_state(&a, ConnectionState::Reconnected).await;
    a.close().await.unwrap();
}
