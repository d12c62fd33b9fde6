//! Bad input never panics or wedges the server (invariant 6): malformed
//! frames, invalid requests and abrupt disconnects get a typed error or close
//! only the offending stream; everyone else carries on. Also the startup
//! refusals: a port or a data folder already in use.

use std::time::Duration;

use futures::future::join_all;
use warden_client::{CreateMode, ErrorCode};
use warden_proto::v1 as pb;
use warden_proto::v1::request::Op as ReqOp;
use warden_proto::v1::server_frame::Frame;
use warden_tests::raw::{connect_frame, create_op, Raw};
use warden_tests::{free_port, wait_until, ServerProc, STEP};

use support::*;

mod support {
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use warden_client::{Client, Error};
    use warden_tests::{bin, session_opts, try_connect, ServerProc};

    /// Opens (or, with `resume = Some((id, password))`, resumes) a session
    /// with a 4 s timeout.
    pub async fn connect(
        server: &ServerProc,
        resume: Option<(u64, Vec<u8>)>,
    ) -> Result<Client, Error> {
        try_connect(&server.addr(), session_opts(Duration::from_secs(4), resume)).await
    }

    /// Checks that an unrelated client can still do a write and a read.
    pub async fn others_carry_on(server: &ServerProc, what: &str) {
        let c = connect(server, None).await.expect("a new client connects");
        let path = c
            .create(
                "/canary-",
                what,
                warden_client::CreateMode::EphemeralSequential,
            )
            .await
            .unwrap_or_else(|e| panic!("after {what}: create failed: {e}"));
        let (data, _) = c.get_data(&path).await.expect("read back");
        assert_eq!(data, what.as_bytes());
        c.close().await.expect("close");
        let (code, body) = server.http_get("/health").expect("GET /health");
        assert_eq!((code, body.trim()), (200, "ok"), "after {what}");
    }

    /// Runs a command that is expected to exit on its own within `limit`.
    pub fn run_expecting_exit(mut cmd: Command, limit: Duration) -> Output {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + limit;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "still running after {limit:?}; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    }

    pub fn second_server(data_dir: &std::path::Path, listen: &str, admin: &str) -> Command {
        let mut c = Command::new(bin("warden-server"));
        c.arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen)
            .arg("--admin-listen")
            .arg(admin)
            .arg("--tick-ms")
            .arg("200")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        c
    }

    /// Just enough HTTP/2 (RFC 9113) by hand to put arbitrary bytes in a
    /// gRPC request body: what no well-behaved client library will send.
    pub mod h2 {
        use std::io::{Read, Write};
        use std::net::TcpStream;
        use std::time::Duration;

        pub struct H2 {
            s: TcpStream,
        }

        fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
            let len = payload.len();
            let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
            f.extend_from_slice(&stream.to_be_bytes());
            f.extend_from_slice(payload);
            f
        }

        fn int7(n: usize, out: &mut Vec<u8>) {
            if n < 127 {
                out.push(n as u8);
                return;
            }
            out.push(127);
            let mut n = n - 127;
            while n >= 128 {
                out.push((n % 128 + 128) as u8);
                n /= 128;
            }
            out.push(n as u8);
        }

        /// HPACK "literal header field without indexing — new name".
        fn header(name: &str, value: &str, out: &mut Vec<u8>) {
            out.push(0x00);
            int7(name.len(), out);
            out.extend_from_slice(name.as_bytes());
            int7(value.len(), out);
            out.extend_from_slice(value.as_bytes());
        }

        /// A gRPC message: compressed flag, 4-byte length, body.
        pub fn message(compressed: bool, declared_len: u32, body: &[u8]) -> Vec<u8> {
            let mut m = vec![u8::from(compressed)];
            m.extend_from_slice(&declared_len.to_be_bytes());
            m.extend_from_slice(body);
            m
        }

        /// `ClientFrame { connect: Connect { timeout_ms: 1000 } }`, encoded by hand.
        pub const CONNECT: [u8; 5] = [0x0a, 0x03, 0x18, 0xe8, 0x07];

        impl H2 {
            /// Opens a connection and stream 1 as a call of Warden/Session.
            pub fn open_session(addr: &str) -> H2 {
                let mut s = TcpStream::connect(addr).expect("TCP connect");
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.set_nodelay(true).unwrap();
                s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
                s.write_all(&frame(0x4, 0, 0, &[])).unwrap();
                let mut hb = Vec::new();
                for (n, v) in [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":path", "/warden.v1.Warden/Session"),
                    (":authority", addr),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                ] {
                    header(n, v, &mut hb);
                }
                s.write_all(&frame(0x1, 0x4, 1, &hb)).unwrap();
                H2 { s }
            }

            /// Sends body bytes on stream 1 (`end` closes our side).
            pub fn data(&mut self, bytes: &[u8], end: bool) {
                let _ = self.s.write_all(&frame(0x0, u8::from(end), 1, bytes));
            }

            /// Reads until stream 1 ends, the connection is refused (GOAWAY)
            /// or closed. Returns how it ended and the DATA bytes received.
            pub fn until_end(&mut self) -> (String, Vec<u8>) {
                let mut data = Vec::new();
                loop {
                    let mut head = [0u8; 9];
                    if let Err(e) = self.s.read_exact(&mut head) {
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut
                        {
                            panic!("the server neither answered nor ended the stream within 10 s");
                        }
                        return (format!("connection closed ({e})"), data);
                    }
                    let len = (usize::from(head[0]) << 16)
                        | (usize::from(head[1]) << 8)
                        | usize::from(head[2]);
                    let (ty, flags) = (head[3], head[4]);
                    let stream =
                        u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                    let mut payload = vec![0u8; len];
                    if let Err(e) = self.s.read_exact(&mut payload) {
                        return (format!("connection closed mid-frame ({e})"), data);
                    }
                    match ty {
                        0x0 if stream == 1 => {
                            data.extend_from_slice(&payload);
                            if flags & 0x1 != 0 {
                                return ("stream ended".into(), data);
                            }
                        }
                        0x1 if stream == 1 && flags & 0x1 != 0 => {
                            return ("stream ended with trailers".into(), data);
                        }
                        0x3 if stream == 1 => return ("stream reset".into(), data),
                        0x4 if flags & 0x1 == 0 => {
                            let _ = self.s.write_all(&frame(0x4, 0x1, 0, &[]));
                        }
                        0x6 if flags & 0x1 == 0 => {
                            let _ = self.s.write_all(&frame(0x6, 0x1, 0, &payload));
                        }
                        0x7 => return ("connection refused with GOAWAY".into(), data),
                        _ => {}
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_frame_other_than_connect_is_refused_with_bad_arguments() {
    let server = ServerProc::start();
    let firsts: Vec<(&str, Option<pb::client_frame::Frame>)> = vec![
        (
            "Request",
            Some(pb::client_frame::Frame::Request(pb::Request {
                xid: 1,
                op: Some(ReqOp::Exists(pb::Exists {
                    path: "/".into(),
                    watch: false,
                })),
            })),
        ),
        ("Ping", Some(pb::client_frame::Frame::Ping(pb::Ping {}))),
        (
            "Close",
            Some(pb::client_frame::Frame::Close(pb::Close { xid: 1 })),
        ),
        ("an empty frame", None),
    ];
    for (what, first) in firsts {
        let mut raw = Raw::open(&server.addr(), vec![pb::ClientFrame { frame: first }]).await;
        let frames = raw.until_end().await;
        match frames.as_slice() {
            [Frame::ConnectError(e)] => {
                assert_eq!(e.code, pb::ErrorCode::BadArguments as i32, "{what}: {e:?}");
                assert!(!e.message.is_empty());
            }
            other => {
                panic!("first frame {what}: expected one ConnectError then the end, got {other:?}")
            }
        }
        others_carry_on(&server, what).await;
    }
    assert_eq!(server.status()["sessions"], 0, "no session was opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_frame_or_a_second_connect_closes_only_that_stream() {
    let server = ServerProc::start();
    let (mut bystander, _) = Raw::session(&server.addr(), 4000).await;

    for (what, frame) in [
        ("an empty frame", None),
        (
            "a second Connect",
            Some(connect_frame(4000, 0, vec![]).frame.unwrap()),
        ),
    ] {
        let (mut raw, connected) = Raw::session(&server.addr(), 4000).await;
        let r = raw
            .call_xid(
                1,
                create_op(
                    "/kept-",
                    vec![],
                    pb::CreateMode::EphemeralSequential as i32,
                    0,
                ),
            )
            .await;
        assert_eq!(r.error, 0, "{r:?}");
        let kept = match r.result {
            Some(pb::response::Result::Create(c)) => c.path,
            other => panic!("{other:?}"),
        };
        raw.send_frame(frame);
        let frames = raw.until_end().await;
        assert!(
            frames.iter().all(|f| matches!(f, Frame::Pong(_))),
            "after {what}: {frames:?}"
        );

        // Other sessions carry on...
        let r = bystander
            .call_xid(
                1,
                ReqOp::Exists(pb::Exists {
                    path: kept.clone(),
                    watch: false,
                }),
            )
            .await;
        assert_eq!(r.error, 0, "{r:?}");
        others_carry_on(&server, what).await;
        // ...and the offender's session was not closed: a dropped stream is
        // not a close (invariant 3). It can be resumed, ephemeral and all.
        let resumed = connect(&server, Some((connected.session_id, connected.password)))
            .await
            .unwrap_or_else(|e| panic!("resume after {what}: {e}"));
        assert_eq!(
            resumed
                .exists(&kept)
                .await
                .unwrap()
                .map(|s| s.ephemeral_owner),
            Some(connected.session_id)
        );
        resumed.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_an_operation_is_unimplemented_and_the_session_carries_on() {
    let server = ServerProc::start();
    let (mut raw, _) = Raw::session(&server.addr(), 4000).await;
    let r = {
        raw.request(5, None);
        raw.response().await
    };
    assert_eq!(
        (r.xid, r.error),
        (5, pb::ErrorCode::Unimplemented as i32),
        "{r:?}"
    );

    // Pipelined with valid requests: each answered, in order.
    raw.request(6, None);
    raw.request(7, Some(create_op("/after", b"x".to_vec(), 0, 0)));
    raw.request(8, None);
    raw.request(
        9,
        Some(ReqOp::GetData(pb::GetData {
            path: "/after".into(),
            watch: false,
        })),
    );
    let mut got = Vec::new();
    for _ in 0..4 {
        let r = raw.response().await;
        got.push((r.xid, r.error));
    }
    let unimplemented = pb::ErrorCode::Unimplemented as i32;
    assert_eq!(
        got,
        vec![(6, unimplemented), (7, 0), (8, unimplemented), (9, 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_and_arguments_are_bad_arguments_and_the_session_carries_on() {
    let server = ServerProc::start();
    let (mut raw, _) = Raw::session(&server.addr(), 4000).await;
    let mut xid = 0;
    let r = raw.call_xid(xid, create_op("/ok", vec![], 0, 0)).await;
    assert_eq!(r.error, 0, "{r:?}");
    let nodes_before = server.status()["znodes"].as_u64().unwrap();

    let bad_paths = [
        "",
        "a",
        "ok",
        "/ok/",
        "//",
        "/ok//b",
        "/.",
        "/ok/..",
        "/ok/./b",
        "/ok\0b",
        "/ok\u{1}",
        "/ok\u{7f}",
        "/\u{fff5}",
        "/\u{e000}",
    ];
    let bad = pb::ErrorCode::BadArguments as i32;
    let mut failures = Vec::new();
    for path in bad_paths {
        let p = || path.to_string();
        let ops: Vec<(&str, ReqOp)> = vec![
            ("create", create_op(path, vec![], 0, 0)),
            ("create ephemeral", create_op(path, vec![], 1, 0)),
            (
                "delete",
                ReqOp::Delete(pb::Delete {
                    path: p(),
                    version: None,
                }),
            ),
            (
                "set_data",
                ReqOp::SetData(pb::SetData {
                    path: p(),
                    data: vec![],
                    version: None,
                    null_data: false,
                }),
            ),
            (
                "get_data",
                ReqOp::GetData(pb::GetData {
                    path: p(),
                    watch: true,
                }),
            ),
            (
                "exists",
                ReqOp::Exists(pb::Exists {
                    path: p(),
                    watch: true,
                }),
            ),
            (
                "get_children",
                ReqOp::GetChildren(pb::GetChildren {
                    path: p(),
                    watch: true,
                }),
            ),
            ("get_acl", ReqOp::GetAcl(pb::GetAcl { path: p() })),
            (
                "set_acl",
                ReqOp::SetAcl(pb::SetAcl {
                    path: p(),
                    acl: vec![],
                    version: None,
                }),
            ),
            (
                "check",
                ReqOp::Check(pb::Check {
                    path: p(),
                    version: None,
                }),
            ),
            (
                "get_all_children_number",
                ReqOp::GetAllChildrenNumber(pb::GetAllChildrenNumber { path: p() }),
            ),
            (
                "add_watch",
                ReqOp::AddWatch(pb::AddWatch { path: p(), mode: 0 }),
            ),
            (
                "remove_watches",
                ReqOp::RemoveWatches(pb::RemoveWatches {
                    path: p(),
                    watcher_type: 3,
                }),
            ),
            (
                "multi",
                ReqOp::Multi(pb::Multi {
                    ops: vec![pb::Op {
                        op: Some(pb::op::Op::Create(pb::Create {
                            path: p(),
                            ..Default::default()
                        })),
                    }],
                }),
            ),
        ];
        for (name, op) in ops {
            xid += 1;
            let r = raw.call_xid(xid, op).await;
            if r.xid != xid || r.error != bad {
                failures.push(format!(
                    "{name} {path:?}: xid {} error {} {:?}",
                    r.xid, r.error, r.message
                ));
            }
        }
    }

    // Oversized data, bad modes and TTLs, empty multi ops.
    let limit = 1024 * 1024;
    let others: Vec<(&str, ReqOp)> = vec![
        (
            "create 1 MiB + 1",
            create_op("/big", vec![7; limit + 1], 0, 0),
        ),
        (
            "set_data 1 MiB + 1",
            ReqOp::SetData(pb::SetData {
                path: "/ok".into(),
                data: vec![7; limit + 1],
                version: None,
                null_data: false,
            }),
        ),
        (
            "multi with 1 MiB + 1",
            ReqOp::Multi(pb::Multi {
                ops: vec![pb::Op {
                    op: Some(pb::op::Op::SetData(pb::SetData {
                        path: "/ok".into(),
                        data: vec![7; limit + 1],
                        version: None,
                        null_data: false,
                    })),
                }],
            }),
        ),
        ("unknown create mode", create_op("/mode", vec![], 42, 0)),
        ("TTL mode without a TTL", create_op("/ttl", vec![], 5, 0)),
        (
            "TTL on a persistent node",
            create_op("/ttl", vec![], 0, 1000),
        ),
        (
            "multi with an empty op",
            ReqOp::Multi(pb::Multi {
                ops: vec![pb::Op { op: None }],
            }),
        ),
    ];
    for (name, op) in others {
        xid += 1;
        let r = raw.call_xid(xid, op).await;
        if r.xid != xid || r.error != bad {
            failures.push(format!(
                "{name}: xid {} error {} {:?}",
                r.xid, r.error, r.message
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "not refused with BAD_ARGUMENTS:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        server.status()["znodes"].as_u64().unwrap(),
        nodes_before,
        "an invalid request created a node"
    );
    assert_eq!(
        server.status()["watches"],
        0,
        "an invalid request set a watch"
    );

    // The session carries on; the 1 MiB limit itself is allowed.
    xid += 1;
    let r = raw
        .call_xid(xid, create_op("/max", vec![9; limit], 0, 0))
        .await;
    assert_eq!(
        r.error, 0,
        "exactly 1 MiB must be accepted: {:?}",
        r.message
    );
    xid += 1;
    let r = raw
        .call_xid(
            xid,
            ReqOp::GetData(pb::GetData {
                path: "/max".into(),
                watch: false,
            }),
        )
        .await;
    match r.result {
        Some(pb::response::Result::Data(d)) => assert_eq!(d.data.len(), limit),
        other => panic!("{:?}", other.map(|_| "not data")),
    }
    others_carry_on(&server, "invalid requests").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_a_wrong_password_or_unknown_session_is_a_typed_connect_error() {
    let server = ServerProc::start();
    let (mut owner, connected) = Raw::session(&server.addr(), 4000).await;
    let mut wrong = connected.password.clone();
    wrong[15] ^= 1;
    let cases = [
        (
            "wrong password",
            connected.session_id,
            wrong,
            pb::ErrorCode::AuthFailed,
        ),
        (
            "no password",
            connected.session_id,
            vec![],
            pb::ErrorCode::AuthFailed,
        ),
        (
            "unknown session",
            connected.session_id ^ 0x10,
            connected.password.clone(),
            pb::ErrorCode::SessionExpired,
        ),
    ];
    for (what, id, password, code) in cases {
        let (mut raw, first) =
            Raw::connect(&server.addr(), connect_frame(4000, id, password)).await;
        match first {
            Frame::ConnectError(e) => assert_eq!(e.code, code as i32, "{what}: {e:?}"),
            other => panic!("{what}: expected ConnectError, got {other:?}"),
        }
        assert!(
            raw.until_end().await.is_empty(),
            "{what}: the stream ends after ConnectError"
        );
    }
    // A client that has seen a newer state than this server is turned away.
    let mut ahead = connect_frame(4000, 0, vec![]);
    if let Some(pb::client_frame::Frame::Connect(c)) = &mut ahead.frame {
        c.last_zxid = 1_000_000;
    }
    match Raw::connect(&server.addr(), ahead).await.1 {
        Frame::ConnectError(e) => assert_eq!(e.code, pb::ErrorCode::ConnectionLoss as i32, "{e:?}"),
        other => panic!("a client ahead of the server: {other:?}"),
    }
    // The real session is untouched.
    owner.ping();
    assert!(matches!(owner.next().await, Ok(Some(Frame::Pong(_)))));
    assert_eq!(server.status()["sessions"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_grpc_messages_close_only_their_own_stream() {
    let server = ServerProc::start();
    let (mut bystander, _) = Raw::session(&server.addr(), 4000).await;
    let garbage = [0xffu8; 16];
    let cases: Vec<(&str, Vec<Vec<u8>>, bool)> = vec![
        (
            "undecodable first message",
            vec![h2::message(false, 16, &garbage)],
            true,
        ),
        (
            "undecodable message after Connect",
            vec![
                h2::message(false, 5, &h2::CONNECT),
                h2::message(false, 16, &garbage),
            ],
            false,
        ),
        (
            "compressed flag without an encoding",
            vec![h2::message(true, 5, &h2::CONNECT)],
            true,
        ),
        (
            "message shorter than its length prefix",
            vec![h2::message(false, 1000, &h2::CONNECT)],
            true,
        ),
        (
            "length prefix of 4 GiB",
            vec![h2::message(false, u32::MAX, &garbage)],
            true,
        ),
    ];
    for (what, messages, end_stream) in cases {
        let addr = server.addr();
        let (how, data) = tokio::task::spawn_blocking(move || {
            let mut h = h2::H2::open_session(&addr);
            let n = messages.len();
            for (i, m) in messages.into_iter().enumerate() {
                h.data(&m, end_stream && i + 1 == n);
            }
            h.until_end()
        })
        .await
        .unwrap();
        eprintln!("{what}: {how}, {} bytes of response data", data.len());
        others_carry_on(&server, what).await;
        let r = bystander
            .call_xid(
                1,
                ReqOp::Exists(pb::Exists {
                    path: "/".into(),
                    watch: false,
                }),
            )
            .await;
        assert_eq!(r.error, 0, "bystander after {what}: {r:?}");
    }
    wait_until(
        "only the bystander's connection to remain",
        STEP,
        || async { server.metric("warden_connections", "") == 1.0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_abruptly_dropped_connections_leave_the_server_healthy() {
    let server = ServerProc::start();
    let observer = connect(&server, None).await.unwrap();
    observer
        .create("/drop", "", CreateMode::Persistent)
        .await
        .unwrap();
    let addr = server.addr();

    for batch in 0..4 {
        let drops = (0..25).map(|j| {
            let i = batch * 25 + j;
            let addr = addr.clone();
            async move {
                match i % 4 {
                    // Stream opened, nothing sent, dropped.
                    0 => drop(Raw::open(&addr, vec![]).await),
                    // Connect sent, answer never read.
                    1 => drop(Raw::open(&addr, vec![connect_frame(400, 0, vec![])]).await),
                    // A session with writes in flight.
                    2 => {
                        let (raw, _) = Raw::session(&addr, 400).await;
                        raw.request(
                            1,
                            Some(create_op(&format!("/drop/e{i}"), vec![1; 100], 1, 0)),
                        );
                        for x in 2..20 {
                            raw.request(
                                x,
                                Some(create_op(&format!("/drop/p{i}-{x}"), vec![], 0, 0)),
                            );
                        }
                        drop(raw);
                    }
                    // A session dropped halfway through reading answers.
                    _ => {
                        let (mut raw, _) = Raw::session(&addr, 400).await;
                        raw.request(1, Some(create_op(&format!("/drop/e{i}"), vec![], 1, 0)));
                        for x in 2..30 {
                            raw.request(
                                x,
                                Some(ReqOp::GetData(pb::GetData {
                                    path: "/drop".into(),
                                    watch: true,
                                })),
                            );
                        }
                        let _ = raw.response().await;
                        let _ = raw.response().await;
                        drop(raw);
                    }
                }
            }
        });
        join_all(drops).await;
    }
    // Also raw TCP garbage at both ports, and a half-sent HTTP/2 request.
    let admin = format!("127.0.0.1:{}", server.admin_port);
    let grpc = server.addr();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        for i in 0..10 {
            for a in [&grpc, &admin] {
                if let Ok(mut s) = std::net::TcpStream::connect(a) {
                    let _ = s.write_all(&vec![i as u8 ^ 0x5a; 1000]);
                }
            }
            let mut h = h2::H2::open_session(&grpc);
            h.data(&h2::message(false, 100, &h2::CONNECT), false);
        }
    })
    .await
    .unwrap();

    wait_until(
        "warden_connections to return to 1 (the observer)",
        STEP,
        || async { server.metric("warden_connections", "") == 1.0 },
    )
    .await;
    others_carry_on(&server, "100 dropped connections").await;
    // The dropped sessions (400 ms) expire; their ephemerals go with them.
    wait_until("the dropped sessions to expire", STEP, || async {
        server.status()["sessions"] == 1
    })
    .await;
    let left: Vec<String> = observer
        .get_children("/drop")
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.starts_with('e'))
        .collect();
    assert!(
        left.is_empty(),
        "ephemerals of expired sessions remain: {left:?}"
    );
    assert_eq!(server.metric("warden_connections", ""), 1.0);
    let observer_ok = observer
        .exists("/drop")
        .await
        .expect("observer still works");
    assert!(observer_ok.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_port_in_use_exits_with_one_clear_line() {
    let server = ServerProc::start();
    let tmp = tempfile::tempdir().unwrap();
    let free_admin = format!("127.0.0.1:{}", free_port());
    let free_client = format!("127.0.0.1:{}", free_port());
    let taken_admin = format!("127.0.0.1:{}", server.admin_port);
    for (what, listen, admin, taken) in [
        ("client port", server.addr(), free_admin, server.addr()),
        ("admin port", free_client, taken_admin.clone(), taken_admin),
    ] {
        let cmd = second_server(&tmp.path().join(what.replace(' ', "-")), &listen, &admin);
        let out = tokio::task::block_in_place(|| run_expecting_exit(cmd, Duration::from_secs(15)));
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{what}: exited with {}", out.status);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: expected one line on stderr, got:\n{stderr}"
        );
        let line = lines[0];
        assert!(
            line.contains(&taken),
            "{what}: {line:?} does not name {taken}"
        );
        assert!(
            line.contains("in use") || line.contains("cannot listen"),
            "{what}: {line:?}"
        );
    }
    others_carry_on(&server, "a clashing second server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_data_folder_in_use_exits_with_a_clear_error() {
    let server = ServerProc::start();
    let c = connect(&server, None).await.unwrap();
    c.create("/mine", "1", CreateMode::Persistent)
        .await
        .unwrap();
    let lock_before = std::fs::read_to_string(server.data_dir().join("LOCK")).unwrap();
    let cmd = second_server(
        &server.data_dir(),
        &format!("127.0.0.1:{}", free_port()),
        &format!("127.0.0.1:{}", free_port()),
    );
    let out = tokio::task::block_in_place(|| run_expecting_exit(cmd, Duration::from_secs(15)));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "exited with {}", out.status);
    assert!(
        stderr.contains("in use by another running warden-server"),
        "stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&server.data_dir().display().to_string()),
        "the message names the folder:\n{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(server.data_dir().join("LOCK")).unwrap(),
        lock_before,
        "the refused server rewrote the lock file"
    );
    // The first server is unaffected.
    assert_eq!(c.get_data("/mine").await.unwrap().0, b"1");
    c.create("/still", "", CreateMode::Persistent)
        .await
        .unwrap();
    others_carry_on(&server, "a second server on the same folder").await;
    assert!(matches!(
        c.create("/mine", "", CreateMode::Persistent).await,
        Err(e) if e.code() == ErrorCode::NodeExists
    ));
}

/// A gRPC client that pipelines requests and stops reading its replies
/// cannot grow the server's memory: after about a session timeout without
/// reading, its connection is cut (the queued replies dropped) while its
/// session lives on and can be resumed; everyone else carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_that_stops_reading_is_cut_and_keeps_its_session() {
    let server = ServerProc::start();
    let c = connect(&server, None).await.expect("connect");
    c.create("/big", vec![7u8; 512 * 1024], CreateMode::Persistent)
        .await
        .expect("create /big");
    c.close().await.expect("close");

    let (mut raw, connected) = Raw::session(&server.addr(), 2_000).await;
    // 200 reads of 512 KiB: far more than the transport buffers.
    for xid in 1..=200 {
        raw.request(
            xid,
            Some(ReqOp::GetData(pb::GetData {
                path: "/big".into(),
                watch: false,
            })),
        );
    }
    // Read nothing until the server has given up on this connection, but
    // keep pinging (sending needs no reading), so the session stays alive.
    let deadline = std::time::Instant::now() + STEP;
    while !server.log().contains("client stopped reading") {
        raw.ping();
        if std::time::Instant::now() > deadline {
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "the stalled connection was not cut within {STEP:?}; log (newest first):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What the transport had buffered arrives, then the stream ends.
    let mut answered = 0;
    let ended = loop {
        match raw.next().await {
            Ok(Some(Frame::Response(_))) => answered += 1,
            Ok(Some(_)) => {}
            Ok(None) => break "the end".to_string(),
            Err(status) => break format!("{:?}: {}", status.code(), status.message()),
        }
    };
    eprintln!("the stalled client got {answered} of 200 answers, then {ended}");
    assert!(
        answered < 200,
        "every answer was delivered: nothing was cut"
    );

    // The session was kept: it resumes with its id and password.
    let resumed = connect(
        &server,
        Some((connected.session_id, connected.password.clone())),
    )
    .await
    .expect("the session resumes after the cut");
    let (data, _) = resumed
        .get_data("/big")
        .await
        .expect("read on the resumed session");
    assert_eq!(data.len(), 512 * 1024);
    resumed.close().await.expect("close");
    others_carry_on(&server, "a client that stopped reading").await;
}
