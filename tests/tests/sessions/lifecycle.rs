//! Sessions end to end: timeout negotiation, resuming with id + password,
//! keepalive pings, expiry of silent sessions (ephemerals deleted, watches
//! fired, the stream told), and explicit close.
//!
//! Every test starts its own server with the default tick of 200 ms, so the
//! server grants session timeouts in [400 ms, 4000 ms].

use std::time::{Duration, Instant};

use warden_client::{CreateMode, ErrorCode, EventType};
use warden_proto::v1 as pb;
use warden_tests::raw::{connect_frame, create_op, Raw};
use warden_tests::{wait_until, within, ServerProc, STEP};

use support::*;

mod support {
    use std::time::Duration;

    use warden_client::{Client, Error};
    use warden_tests::{session_opts, ServerProc};

    /// Opens a new session with the given timeout.
    pub async fn connect(server: &ServerProc, timeout: Duration) -> Client {
        try_connect(server, timeout, None).await.expect("connect")
    }

    /// Opens (or, with `resume = Some((id, password))`, resumes) a session.
    pub async fn try_connect(
        server: &ServerProc,
        timeout: Duration,
        resume: Option<(u64, Vec<u8>)>,
    ) -> Result<Client, Error> {
        warden_tests::try_connect(&server.addr(), session_opts(timeout, resume)).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timeouts_are_clamped_to_the_servers_limits() {
    let server = ServerProc::start();
    for (asked, granted) in [
        (Duration::from_millis(100), Duration::from_millis(400)),
        (Duration::from_secs(60), Duration::from_millis(4000)),
        (Duration::from_millis(1000), Duration::from_millis(1000)),
    ] {
        let c = connect(&server, asked).await;
        assert_eq!(c.session_timeout(), granted, "asked for {asked:?}");
        c.close().await.expect("close");
    }
    // The raw protocol reports the same negotiated value.
    let (_raw, connected) = Raw::session(&server.addr(), 50).await;
    assert_eq!(connected.timeout_ms, 400);
    assert_ne!(connected.session_id, 0);
    assert_eq!(
        connected.password.len(),
        16,
        "passwords are 16 random bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_keeps_the_session_and_resuming_owns_its_ephemeral() {
    let server = ServerProc::start();
    let observer = connect(&server, Duration::from_secs(4)).await;

    let a = connect(&server, Duration::from_secs(4)).await;
    let (id, password, timeout) = (a.session_id(), a.session_password(), a.session_timeout());
    a.create("/eph", "mine", CreateMode::Ephemeral)
        .await
        .expect("create ephemeral");
    // Drop every handle without close(): the stream goes away, the session stays.
    drop(a);
    wait_until("the dropped connection to be gone", STEP, || async {
        server.metric("warden_connections", "") == 1.0
    })
    .await;
    let stat = observer
        .exists("/eph")
        .await
        .expect("exists")
        .expect("the ephemeral survives a dropped connection");
    assert_eq!(stat.ephemeral_owner, id);

    // A second connection resumes the session with id + password.
    let a2 = try_connect(
        &server,
        Duration::from_secs(4),
        Some((id, password.clone())),
    )
    .await
    .expect("resume with id + password");
    assert_eq!(a2.session_id(), id, "same session");
    assert_eq!(a2.session_timeout(), timeout, "same timeout");
    assert_eq!(a2.session_password(), password);
    assert_eq!(
        a2.get_ephemerals("/").await.expect("get_ephemerals"),
        vec!["/eph".to_string()],
        "the resumed session still owns its ephemeral"
    );
    let (data, stat) = a2.get_data("/eph").await.expect("get_data");
    assert_eq!(data, b"mine");
    assert_eq!(stat.ephemeral_owner, id);
    // It can act as the owner: delete it and make another.
    a2.delete("/eph", None).await.expect("delete own ephemeral");
    a2.create("/eph2", "", CreateMode::Ephemeral)
        .await
        .expect("create after resume");
    assert_eq!(
        observer
            .exists("/eph2")
            .await
            .unwrap()
            .map(|s| s.ephemeral_owner),
        Some(id)
    );
    a2.close().await.expect("close");
    assert!(observer.exists("/eph2").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_with_a_wrong_password_or_an_unknown_id_is_refused_with_a_typed_error() {
    let server = ServerProc::start();
    let a = connect(&server, Duration::from_secs(4)).await;
    a.create("/owned", "", CreateMode::Ephemeral).await.unwrap();
    let mut wrong = a.session_password();
    wrong[0] ^= 0xff;

    let err = try_connect(
        &server,
        Duration::from_secs(4),
        Some((a.session_id(), wrong)),
    )
    .await
    .expect_err("a wrong password must not resume the session");
    assert_eq!(err.code(), ErrorCode::AuthFailed, "{err}");

    let err = try_connect(
        &server,
        Duration::from_secs(4),
        Some((a.session_id(), vec![])),
    )
    .await
    .expect_err("an empty password must not resume the session");
    assert_eq!(err.code(), ErrorCode::AuthFailed, "{err}");

    let unknown = a.session_id() ^ 0x5555_0000_0000_0000;
    let err = try_connect(
        &server,
        Duration::from_secs(4),
        Some((unknown, a.session_password())),
    )
    .await
    .expect_err("an unknown session must not be resumed");
    assert_eq!(err.code(), ErrorCode::SessionExpired, "{err}");

    // The failed attempts did not disturb the real session.
    assert!(a.exists("/owned").await.unwrap().is_some());
    a.create("/after", "", CreateMode::Persistent)
        .await
        .expect("the real session still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_on_a_new_connection_moves_the_session_off_the_old_one() {
    let server = ServerProc::start();
    // The old connection is a raw stream, so what the server tells it is
    // seen as is (the client library would react by itself).
    let (mut old, connected) = Raw::session(&server.addr(), 4000).await;
    let r = old
        .call_xid(
            1,
            create_op("/moved", b"".to_vec(), pb::CreateMode::Ephemeral as i32, 0),
        )
        .await;
    assert_eq!(r.error, 0, "{r:?}");

    let a2 = try_connect(
        &server,
        Duration::from_secs(4),
        Some((connected.session_id, connected.password.clone())),
    )
    .await
    .expect("resume while the old connection is still open");
    assert_eq!(a2.session_id(), connected.session_id);

    // The old stream is told SESSION_MOVED, then ends.
    let frames = old.until_end().await;
    assert!(
        frames.iter().any(|f| matches!(
            f,
            pb::server_frame::Frame::ConnectError(e) if e.code == pb::ErrorCode::SessionMoved as i32
        )),
        "old stream got {frames:?}"
    );
    // The session itself lives on through the new connection.
    assert_eq!(
        a2.exists("/moved")
            .await
            .unwrap()
            .map(|s| s.ephemeral_owner),
        Some(connected.session_id)
    );
    a2.create("/moved2", "", CreateMode::Ephemeral)
        .await
        .expect("the new connection acts for the session");
    assert_eq!(server.status()["sessions"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_kept_alive_by_its_pings() {
    let server = ServerProc::start();
    let observer = connect(&server, Duration::from_secs(4)).await;
    let idle = connect(&server, Duration::from_millis(1000)).await;
    let timeout = idle.session_timeout();
    assert_eq!(timeout, Duration::from_millis(1000));
    idle.create("/idle", "", CreateMode::Ephemeral)
        .await
        .unwrap();

    // The idle client sends no request for 3× its timeout; meanwhile another
    // client records whether the ephemeral ever disappears.
    let start = Instant::now();
    let mut checks = 0u32;
    let mut missing = Vec::new();
    while start.elapsed() < timeout * 3 {
        if observer.exists("/idle").await.expect("exists").is_none() {
            missing.push(start.elapsed());
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(checks >= 10);
    assert!(
        missing.is_empty(),
        "the idle session's ephemeral vanished at {missing:?}; log:\n{}",
        server.log()
    );
    // And the idle session itself still works.
    idle.create("/idle2", "", CreateMode::Ephemeral)
        .await
        .expect("the idle session is still alive");
    assert_eq!(server.status()["sessions"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_session_expires_deleting_its_ephemerals_and_firing_watches() {
    let server = ServerProc::start();
    let observer = connect(&server, Duration::from_secs(4)).await;
    observer
        .create("/x", "", CreateMode::Persistent)
        .await
        .unwrap();

    // A raw session that never pings.
    let (mut raw, connected) = Raw::session(&server.addr(), 1000).await;
    let timeout = Duration::from_millis(u64::from(connected.timeout_ms));
    assert_eq!(timeout, Duration::from_millis(1000));
    let r = raw
        .call_xid(
            1,
            create_op("/x/eph", b"e".to_vec(), pb::CreateMode::Ephemeral as i32, 0),
        )
        .await;
    assert_eq!(r.error, 0, "{r:?}");
    let last_sent = Instant::now();
    let r = raw
        .call_xid(
            2,
            create_op(
                "/x/seq-",
                b"s".to_vec(),
                pb::CreateMode::EphemeralSequential as i32,
                0,
            ),
        )
        .await;
    assert_eq!(r.error, 0, "{r:?}");
    let last_answered = Instant::now();
    let seq_path = match r.result {
        Some(pb::response::Result::Create(c)) => c.path,
        other => panic!("create result expected, got {other:?}"),
    };

    // Another client watches the ephemerals and their parent.
    let (stat, exists_watch) = observer.exists_w("/x/eph").await.unwrap();
    assert_eq!(stat.unwrap().ephemeral_owner, connected.session_id);
    let (_, _, data_watch) = observer.get_data_w(&seq_path).await.unwrap();
    let (children, child_watch) = observer.get_children_w("/x").await.unwrap();
    assert_eq!(children.len(), 2);
    let sessions_before = server.status()["sessions"].as_u64().unwrap();

    // Deadline: the timeout, plus a few 200 ms ticks of slack.
    let limit = timeout + Duration::from_millis(1500);
    let ev = within(limit + Duration::from_secs(2), "exists watch", exists_watch)
        .await
        .expect("exists watch fired");
    let fired_after = last_answered.elapsed();
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    assert_eq!(ev.path, "/x/eph");
    let ev = within(STEP, "data watch", data_watch)
        .await
        .expect("data watch");
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    assert_eq!(ev.path, seq_path);
    let ev = within(STEP, "child watch", child_watch)
        .await
        .expect("child watch");
    assert_eq!(ev.event_type, EventType::NodeChildrenChanged);
    assert_eq!(ev.path, "/x");

    assert!(
        last_sent.elapsed() >= timeout,
        "expired before its timeout: {:?} after its last frame",
        last_sent.elapsed()
    );
    assert!(
        fired_after <= limit,
        "expired {fired_after:?} after its last frame; expected within {limit:?}"
    );
    assert!(observer.exists("/x/eph").await.unwrap().is_none());
    assert!(observer.get_children("/x").await.unwrap().is_empty());
    assert_eq!(
        server.status()["sessions"].as_u64().unwrap(),
        sessions_before - 1
    );

    // The expired session's stream is told, then ends.
    let frames = raw.until_end().await;
    let told = frames.iter().find_map(|f| match f {
        pb::server_frame::Frame::ConnectError(e) => Some(e.code),
        _ => None,
    });
    // A still-connected session is told why before its stream ends.
    assert_eq!(
        told,
        Some(pb::ErrorCode::SessionExpired as i32),
        "frames after expiry: {frames:?}"
    );
    assert!(
        frames
            .iter()
            .all(|f| !matches!(f, pb::server_frame::Frame::Response(_))),
        "{frames:?}"
    );

    // Resuming it is refused.
    let err = try_connect(
        &server,
        Duration::from_secs(1),
        Some((connected.session_id, connected.password.clone())),
    )
    .await
    .expect_err("an expired session cannot be resumed");
    assert_eq!(err.code(), ErrorCode::SessionExpired, "{err}");
    let (_, answer) = Raw::connect(
        &server.addr(),
        connect_frame(1000, connected.session_id, connected.password),
    )
    .await;
    match answer {
        pb::server_frame::Frame::ConnectError(e) => {
            assert_eq!(e.code, pb::ErrorCode::SessionExpired as i32, "{e:?}")
        }
        other => panic!("expected ConnectError, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lives_while_it_pings_and_expires_once_it_stops() {
    let server = ServerProc::start();
    let observer = connect(&server, Duration::from_secs(4)).await;
    let (mut raw, connected) = Raw::session(&server.addr(), 600).await;
    let timeout = Duration::from_millis(u64::from(connected.timeout_ms));
    assert_eq!(timeout, Duration::from_millis(600));
    let r = raw
        .call_xid(
            1,
            create_op("/pinger", b"".to_vec(), pb::CreateMode::Ephemeral as i32, 0),
        )
        .await;
    assert_eq!(r.error, 0, "{r:?}");

    // Ping every 150 ms for 3× the timeout; record every check.
    let start = Instant::now();
    let mut missing = Vec::new();
    let mut pongs = 0;
    while start.elapsed() < timeout * 3 {
        raw.ping();
        match raw.next().await {
            Ok(Some(pb::server_frame::Frame::Pong(_))) => pongs += 1,
            other => panic!("expected a pong, got {other:?}"),
        }
        if observer.exists("/pinger").await.unwrap().is_none() {
            missing.push(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(pongs >= 5, "{pongs} pongs");
    assert!(
        missing.is_empty(),
        "ephemeral missing at {missing:?} while pinging"
    );

    // Stop pinging: it expires after about its timeout.
    raw.ping();
    let stopped = Instant::now();
    let (stat, watch) = observer.exists_w("/pinger").await.unwrap();
    assert!(stat.is_some());
    let ev = within(STEP, "the ephemeral to be deleted", watch)
        .await
        .expect("watch fired");
    let after = stopped.elapsed();
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    assert!(
        after >= timeout,
        "expired only {after:?} after the last ping"
    );
    assert!(
        after <= timeout + Duration::from_millis(1500),
        "expired {after:?} after the last ping (timeout {timeout:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_deletes_ephemerals_at_once_and_later_calls_fail() {
    let server = ServerProc::start();
    let observer = connect(&server, Duration::from_secs(4)).await;
    let a = connect(&server, Duration::from_secs(4)).await;
    let (id, password) = (a.session_id(), a.session_password());
    a.create("/p", "", CreateMode::Persistent).await.unwrap();
    let mut ephemerals = vec![
        a.create("/p/e1", "", CreateMode::Ephemeral).await.unwrap(),
        a.create("/e2", "", CreateMode::Ephemeral).await.unwrap(),
    ];
    ephemerals.push(
        a.create("/p/seq-", "", CreateMode::EphemeralSequential)
            .await
            .unwrap(),
    );
    for p in &ephemerals {
        assert!(observer.exists(p).await.unwrap().is_some(), "{p}");
    }

    a.close().await.expect("close");
    // No waiting: close() returned, so the ephemerals are gone.
    for p in &ephemerals {
        assert!(
            observer.exists(p).await.unwrap().is_none(),
            "{p} still exists right after close() returned"
        );
    }
    assert!(
        observer.exists("/p").await.unwrap().is_some(),
        "persistent nodes stay"
    );

    let e = a
        .create("/late", "", CreateMode::Persistent)
        .await
        .expect_err("a closed client cannot create");
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    let e = a
        .get_data("/p")
        .await
        .expect_err("a closed client cannot read");
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    a.close().await.expect("closing twice is a no-op");
    assert!(observer.exists("/late").await.unwrap().is_none());

    let e = try_connect(&server, Duration::from_secs(4), Some((id, password)))
        .await
        .expect_err("a closed session cannot be resumed");
    assert_eq!(e.code(), ErrorCode::SessionExpired, "{e}");
    assert_eq!(server.status()["sessions"], 1);
}
