//! The admin HTTP endpoints (`/health`, `/metrics`, `/status`), the gRPC
//! `Status` call, and a clean stop on SIGTERM.

use std::time::Duration;

use warden_client::{Client, ConnectOptions, CreateMode, ErrorCode, EventType};
use warden_proto::v1 as pb;
use warden_proto::v1::warden_client::WardenClient;
use warden_tests::{wait_until, ServerProc, STEP};

use support::*;

mod support {
    use std::time::Duration;

    use warden_client::Client;
    use warden_tests::{session_opts, ServerProc};

    /// A new session with a 4 s timeout.
    pub async fn connect(server: &ServerProc) -> Client {
        warden_tests::connect(&server.addr(), session_opts(Duration::from_secs(4), None)).await
    }

    /// Every sample line of `/metrics` whose name is `name` (any labels).
    pub fn samples(body: &str, name: &str) -> Vec<String> {
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_ok_and_unknown_paths_are_404() {
    let server = ServerProc::start();
    let (code, body) = server.http_get("/health").unwrap();
    assert_eq!(code, 200);
    assert_eq!(body.trim(), "ok");
    let (code, _) = server.http_get("/no-such-page").unwrap();
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_and_move_with_the_work() {
    let server = ServerProc::start();
    let m = |name: &str, labels: &str| server.metric(name, labels);
    let (code, body) = server.http_get("/metrics").unwrap();
    assert_eq!(code, 200);
    for (name, kind) in [
        ("warden_znodes", "gauge"),
        ("warden_sessions", "gauge"),
        ("warden_watches", "gauge"),
        ("warden_connections", "gauge"),
        ("warden_last_applied_index", "gauge"),
        ("warden_fsync_duration_seconds", "histogram"),
        ("warden_fsync_batch_txns", "histogram"),
        ("warden_watch_events_total", "counter"),
        ("warden_snapshots_total", "counter"),
    ] {
        assert!(
            body.contains(&format!("# TYPE {name} {kind}")),
            "no `# TYPE {name} {kind}` in /metrics:\n{body}"
        );
    }
    let znodes0 = m("warden_znodes", "");
    let sessions0 = m("warden_sessions", "");
    let fsyncs0 = m("warden_fsync_duration_seconds_count", "");
    let applied0 = m("warden_last_applied_index", "");
    assert_eq!(znodes0, server.status()["znodes"].as_f64().unwrap());
    assert_eq!(sessions0, 0.0);

    // Sessions.
    let a = connect(&server).await;
    let b = connect(&server).await;
    assert_eq!(m("warden_sessions", ""), 2.0);
    assert_eq!(m("warden_connections", ""), 2.0);

    // Creates: znodes, requests by op, latency, fsyncs, last applied.
    for i in 0..5 {
        a.create(&format!("/m{i}"), "x", CreateMode::Persistent)
            .await
            .unwrap();
    }
    assert_eq!(m("warden_znodes", ""), znodes0 + 5.0);
    assert_eq!(m("warden_requests_total", "op=\"create\""), 5.0);
    assert_eq!(
        m("warden_request_duration_seconds_count", "op=\"create\""),
        5.0
    );
    assert!(m("warden_request_duration_seconds_sum", "op=\"create\"") > 0.0);
    assert!(
        m("warden_fsync_duration_seconds_count", "") >= fsyncs0 + 1.0,
        "writes were made durable without a flush"
    );
    assert!(m("warden_last_applied_index", "") > applied0);
    let (code, body) = server.http_get("/metrics").unwrap();
    assert_eq!(code, 200);
    let buckets = samples(&body, "warden_request_duration_seconds_bucket");
    assert!(
        buckets
            .iter()
            .any(|l| l.contains("op=\"create\"") && l.contains("le=\"+Inf\"")),
        "{buckets:?}"
    );

    // Reads and errors are counted by op and by code.
    for _ in 0..3 {
        a.get_data("/m0").await.unwrap();
    }
    let e = a.get_data("/missing").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoNode);
    assert_eq!(m("warden_requests_total", "op=\"get_data\""), 4.0);
    assert_eq!(m("warden_request_errors_total", ""), 1.0);

    // Watches: registered, fired, counted.
    let events0 = m("warden_watch_events_total", "");
    let (_, _, w1) = b.get_data_w("/m1").await.unwrap();
    let (_, w2) = b.get_children_w("/").await.unwrap();
    assert_eq!(m("warden_watches", ""), 2.0);
    a.set_data("/m1", "changed", None).await.unwrap();
    let ev = tokio::time::timeout(STEP, w1).await.unwrap().unwrap();
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    a.create("/m5", "", CreateMode::Persistent).await.unwrap();
    let ev = tokio::time::timeout(STEP, w2).await.unwrap().unwrap();
    assert_eq!(ev.event_type, EventType::NodeChildrenChanged);
    assert_eq!(m("warden_watch_events_total", ""), events0 + 2.0);
    assert_eq!(
        m("warden_watches", ""),
        0.0,
        "one-shot watches are gone once fired"
    );
    assert_eq!(m("warden_requests_total", "op=\"set_data\""), 1.0);

    // Closing a session moves the gauges back.
    b.close().await.unwrap();
    assert_eq!(m("warden_sessions", ""), 1.0);
    wait_until("the closed connection to be counted out", STEP, || async {
        m("warden_connections", "") == 1.0
    })
    .await;
    assert_eq!(m("warden_znodes", ""), znodes0 + 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_servers_view_over_http_and_grpc() {
    let server = ServerProc::start();
    let s = server.status();
    for key in [
        "server_id",
        "version",
        "last_applied",
        "znodes",
        "sessions",
        "watches",
        "state_hash",
        "leader",
        "first_log_index",
    ] {
        assert!(s.get(key).is_some(), "/status lacks {key}: {s}");
    }
    assert_eq!(s["server_id"], 1);
    assert!(!s["version"].as_str().unwrap().is_empty());
    assert_eq!(s["leader"], true);
    assert_eq!(s["sessions"], 0);
    assert_eq!(s["watches"], 0);
    assert_eq!(s["first_log_index"], 0, "nothing purged on a fresh server");
    let hash0 = s["state_hash"].as_str().unwrap().to_string();
    assert_eq!(hash0.len(), 16);
    assert!(hash0.chars().all(|c| c.is_ascii_hexdigit()), "{hash0}");
    let applied0 = s["last_applied"].as_u64().unwrap();

    let c = connect(&server).await;
    c.create("/st", "v", CreateMode::Persistent).await.unwrap();
    let _ = c.exists_w("/nothing").await.unwrap();
    let s = server.status();
    assert!(s["last_applied"].as_u64().unwrap() > applied0);
    assert_eq!(s["sessions"], 1);
    assert_eq!(s["watches"], 1);
    assert_ne!(
        s["state_hash"].as_str().unwrap(),
        hash0,
        "a write changes the state hash"
    );
    // znodes counts every node, the root included.
    assert_eq!(
        s["znodes"].as_u64().unwrap(),
        c.get_all_children_number("/").await.unwrap() + 1
    );

    // The gRPC Status call reports the same view.
    let mut grpc = WardenClient::connect(format!("http://{}", server.addr()))
        .await
        .unwrap();
    let g = grpc
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let s = server.status();
    assert_eq!(g.server_id, s["server_id"].as_u64().unwrap());
    assert_eq!(g.version, s["version"].as_str().unwrap());
    assert_eq!(g.last_applied, s["last_applied"].as_u64().unwrap());
    assert_eq!(g.znodes, s["znodes"].as_u64().unwrap());
    assert_eq!(g.sessions, s["sessions"].as_u64().unwrap());
    assert_eq!(g.watches, s["watches"].as_u64().unwrap());
    assert_eq!(g.state_hash, s["state_hash"].as_str().unwrap());
    assert!(g.leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly_without_ending_sessions() {
    let mut server = ServerProc::start();
    let c = connect(&server).await;
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    let (id, password) = (c.session_id(), c.session_password());

    // Leave without closing: SIGTERM must not end the session either.
    drop(c);
    let status = tokio::task::block_in_place(|| server.terminate()).expect("the server exited");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    let log = server.log();
    assert!(log.contains("stopped cleanly"), "log:\n{log}");
    assert!(!log.contains("panicked"), "log:\n{log}");

    // After a restart the session can be resumed, ephemeral intact.
    tokio::task::block_in_place(|| server.restart());
    let opts = ConnectOptions {
        session_timeout: Duration::from_secs(4),
        session_id: Some(id),
        password,
        ..Default::default()
    };
    let c2 = Client::connect(&server.addr(), opts).await.expect("resume");
    assert_eq!(
        c2.exists("/eph").await.unwrap().map(|s| s.ephemeral_owner),
        Some(id)
    );
}
