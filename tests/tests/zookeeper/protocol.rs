//! The ZooKeeper wire protocol (jute) against a real server, spoken by a
//! raw client built on `warden_proto::jute`: the handshake, every opcode,
//! watches and their order, sessions resumed on new connections and across
//! protocols, bad input (each case followed by a check that a healthy
//! session still works), and the four-letter words.

use std::time::{Duration, Instant};

use warden_client::{Client, ConnectOptions, CreateMode};
use warden_proto::jute::{self, op, MultiResult, Request, Response};
use warden_tests::zookeeper::{unique_root, Target};
use warden_tests::{wait_until, ServerOpts, ServerProc, STEP};

mod zk {
    //! A minimal ZooKeeper client: one TCP connection, requests with
    //! increasing xids, replies decoded by the opcode that asked, and
    //! notifications queued apart.

    use std::collections::{HashMap, VecDeque};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use warden_proto::jute::{self, op, xid, Reply, ReplyHeader, Request, Response, WatcherEvent};
    use warden_tests::STEP as WAIT;

    pub struct Zk {
        pub stream: TcpStream,
        next_xid: i32,
        opcodes: HashMap<i32, i32>,
        pub events: VecDeque<WatcherEvent>,
        pub session_id: i64,
        pub passwd: Vec<u8>,
        pub timeout_ms: i32,
        pub connect: jute::ConnectResponse,
    }

    /// Reads one length-prefixed frame; `None` at end of stream.
    pub async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        tokio::time::timeout(WAIT, s.read_exact(&mut len))
            .await
            .expect("a frame within the deadline")
            .ok()?;
        let len = i32::from_be_bytes(len);
        assert!(
            (0..=2 * 1024 * 1024).contains(&len),
            "bad frame length {len}"
        );
        let mut body = vec![0u8; len as usize];
        tokio::time::timeout(WAIT, s.read_exact(&mut body))
            .await
            .expect("a frame body within the deadline")
            .ok()?;
        Some(body)
    }

    /// True when the server closes the connection (within the deadline),
    /// whatever it sent before.
    pub async fn closed(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Sends a connect request and reads the answer.
    pub async fn handshake(
        addr: &str,
        req: &jute::ConnectRequest,
    ) -> (TcpStream, Option<jute::ConnectResponse>) {
        let s = TcpStream::connect(addr).await.expect("tcp connect");
        handshake_on(s, req).await
    }

    /// [`handshake`] on a connected socket.
    pub async fn handshake_on(
        mut s: TcpStream,
        req: &jute::ConnectRequest,
    ) -> (TcpStream, Option<jute::ConnectResponse>) {
        s.write_all(&jute::frame(&req.encode()))
            .await
            .expect("send connect");
        let resp = read_frame(&mut s)
            .await
            .map(|b| jute::ConnectResponse::decode(&b).expect("a connect response"));
        (s, resp)
    }

    pub fn new_session() -> jute::ConnectRequest {
        jute::ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 10_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
    }

    impl Zk {
        pub async fn open(addr: &str) -> Zk {
            Self::open_with(addr, &new_session()).await
        }

        pub async fn resume(addr: &str, session_id: i64, passwd: &[u8]) -> Zk {
            let req = jute::ConnectRequest {
                session_id,
                passwd: passwd.to_vec(),
                ..new_session()
            };
            Self::open_with(addr, &req).await
        }

        pub async fn open_with(addr: &str, req: &jute::ConnectRequest) -> Zk {
            let s = TcpStream::connect(addr).await.expect("tcp connect");
            Self::open_on(s, req).await
        }

        /// A session on a socket already connected (from another local
        /// address, say).
        pub async fn open_on(s: TcpStream, req: &jute::ConnectRequest) -> Zk {
            let (stream, resp) = handshake_on(s, req).await;
            let resp = resp.expect("the server answered the connect request");
            assert!(resp.timeout_ms > 0, "session refused: {resp:?}");
            Zk {
                stream,
                next_xid: 1,
                opcodes: HashMap::new(),
                events: VecDeque::new(),
                session_id: resp.session_id,
                passwd: resp.passwd.clone(),
                timeout_ms: resp.timeout_ms,
                connect: resp,
            }
        }

        /// Sends a request; returns its xid (the special one for ping,
        /// auth and setWatches).
        pub async fn send(&mut self, req: &Request) -> i32 {
            let x = match req.opcode() {
                op::PING => xid::PING,
                op::AUTH => xid::AUTH,
                op::SET_WATCHES | op::SET_WATCHES2 => xid::SET_WATCHES,
                _ => {
                    self.next_xid += 1;
                    self.next_xid
                }
            };
            self.opcodes.insert(x, req.opcode());
            self.send_raw(&jute::frame(&jute::encode_request(x, req)))
                .await;
            x
        }

        pub async fn send_raw(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).await.expect("send");
        }

        /// The next reply or notification.
        pub async fn recv(&mut self) -> Option<Reply> {
            let body = read_frame(&mut self.stream).await?;
            let opcodes = &self.opcodes;
            Some(
                jute::decode_reply(&body, |x| opcodes.get(&x).copied().unwrap_or(-999))
                    .expect("a well-formed reply"),
            )
        }

        /// Sends a request and waits for its reply, queueing notifications.
        pub async fn call(&mut self, req: &Request) -> (ReplyHeader, Option<Response>) {
            let x = self.send(req).await;
            loop {
                match self
                    .recv()
                    .await
                    .expect("a reply before the connection closed")
                {
                    Reply::Event(e) => self.events.push_back(e),
                    Reply::Reply { header, body } => {
                        assert_eq!(header.xid, x, "replies come in request order");
                        return (header, body);
                    }
                }
            }
        }

        /// The reply body of a request that must succeed.
        pub async fn ok(&mut self, req: &Request) -> Response {
            let (h, body) = self.call(req).await;
            assert_eq!(h.err, 0, "{req:?} failed");
            body.expect("a body")
        }

        /// The error code of a request that must fail.
        pub async fn err(&mut self, req: &Request) -> i32 {
            let (h, body) = self.call(req).await;
            assert!(body.is_none(), "an error reply has no body");
            h.err
        }

        /// The next notification.
        pub async fn event(&mut self) -> WatcherEvent {
            if let Some(e) = self.events.pop_front() {
                return e;
            }
            match self
                .recv()
                .await
                .expect("an event before the connection closed")
            {
                Reply::Event(e) => e,
                other => panic!("expected a notification, got {other:?}"),
            }
        }
    }
}

use zk::Zk;

fn create(path: &str, data: &[u8], flags: i32) -> jute::CreateRequest {
    jute::CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: vec![jute::Acl {
            perms: 31,
            scheme: "world".into(),
            id: "anyone".into(),
        }],
        flags,
        ttl: 0,
    }
}

fn pw(path: &str, watch: bool) -> jute::PathWatch {
    jute::PathWatch {
        path: path.into(),
        watch,
    }
}

fn pv(path: &str, version: i32) -> jute::PathVersion {
    jute::PathVersion {
        path: path.into(),
        version,
    }
}

fn set(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(jute::SetDataRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    })
}

fn stat_of(r: Response) -> jute::Stat {
    match r {
        Response::Stat(s) | Response::Create2(_, s) | Response::Data(_, s) => s,
        other => panic!("no stat in {other:?}"),
    }
}

const NO_NODE: i32 = -101;
const NO_AUTH: i32 = -102;
const NODE_EXISTS: i32 = -110;
const BAD_VERSION: i32 = -103;
const BAD_ARGUMENTS: i32 = -8;
const NOT_EMPTY: i32 = -111;
const NO_WATCHER: i32 = -121;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_crud() {
    let server = ServerProc::start();
    let mut z = Zk::open(&server.zk_addr()).await;
    assert_ne!(z.session_id, 0);
    assert_eq!(z.passwd.len(), 16);
    assert!(z.timeout_ms >= 400, "timeout negotiated: {}", z.timeout_ms);
    assert_eq!(
        z.connect.read_only,
        Some(false),
        "the readOnly byte is answered"
    );
    // An old client without the readOnly byte gets a reply without it.
    let old = jute::ConnectRequest {
        read_only: None,
        ..zk::new_session()
    };
    let (_, resp) = zk::handshake(&server.zk_addr(), &old).await;
    assert_eq!(resp.expect("answered").read_only, None);

    assert_eq!(
        z.ok(&Request::Create(create("/a", b"one", 0))).await,
        Response::Create("/a".into())
    );
    let (h, body) = z.call(&Request::Create2(create("/a/b", b"two", 0))).await;
    assert!(h.zxid > 0, "reply zxid is the last zxid");
    let Some(Response::Create2(p, s)) = body else {
        panic!("create2 answers path and stat")
    };
    assert_eq!((p.as_str(), s.data_length, s.version), ("/a/b", 3, 0));
    assert_eq!(
        z.err(&Request::Create(create("/a", b"", 0))).await,
        NODE_EXISTS
    );
    assert_eq!(
        z.err(&Request::Create(create("/missing/x", b"", 0))).await,
        NO_NODE
    );

    let s = stat_of(z.ok(&Request::Exists(pw("/a", false))).await);
    assert_eq!(s.num_children, 1);
    assert_eq!(
        z.err(&Request::Exists(pw("/nope", false))).await,
        NO_NODE,
        "exists on a missing node answers NoNode in the header"
    );
    assert_eq!(
        z.ok(&Request::GetData(pw("/a", false))).await,
        Response::Data(Some(b"one".to_vec()), s)
    );
    let s2 = stat_of(z.ok(&set("/a", b"uno", 0)).await);
    assert_eq!(s2.version, 1);
    assert!(s2.mzxid > s.mzxid);
    assert_eq!(z.err(&set("/a", b"x", 0)).await, BAD_VERSION);
    assert_eq!(
        z.ok(&Request::GetChildren(pw("/a", false))).await,
        Response::Children(vec!["b".into()])
    );
    let Response::Children2(c, cs) = z.ok(&Request::GetChildren2(pw("/a", false))).await else {
        panic!("getChildren2 answers children and stat")
    };
    assert_eq!((c, cs.num_children), (vec!["b".to_string()], 1));
    assert_eq!(
        z.ok(&Request::Check(pv("/a", 1))).await,
        Response::Empty,
        "check with the right version"
    );
    assert_eq!(z.err(&Request::Check(pv("/a", 7))).await, BAD_VERSION);
    assert_eq!(z.err(&Request::Delete(pv("/a", -1))).await, NOT_EMPTY);
    assert_eq!(z.ok(&Request::Delete(pv("/a/b", 0))).await, Response::Empty);
    assert_eq!(z.err(&Request::Delete(pv("/a/b", -1))).await, NO_NODE);

    // ACLs are returned and enforced: READ for anyone, everything for a
    // digest user this connection is not.
    z.ok(&Request::Create(create("/z", b"", 0))).await;
    let Response::Acl(acl, _) = z.ok(&Request::GetAcl("/z".into())).await else {
        panic!("getACL answers ACLs and stat")
    };
    assert_eq!(acl[0].scheme, "world");
    let locked = vec![
        jute::Acl {
            perms: 1,
            scheme: "world".into(),
            id: "anyone".into(),
        },
        jute::Acl {
            perms: 31,
            scheme: "digest".into(),
            id: "u:hash".into(),
        },
    ];
    let s = stat_of(
        z.ok(&Request::SetAcl(jute::SetAclRequest {
            path: "/z".into(),
            acl: locked.clone(),
            version: -1,
        }))
        .await,
    );
    assert_eq!(s.aversion, 1);
    let Response::Acl(acl, _) = z.ok(&Request::GetAcl("/z".into())).await else {
        panic!()
    };
    assert_eq!(acl[1].id, "u:x", "without ADMIN the digest is hidden");
    assert_eq!(z.err(&set("/z", b"not writable", -1)).await, NO_AUTH);

    assert_eq!(
        z.ok(&Request::Sync("/a".into())).await,
        Response::Sync("/a".into())
    );
    z.ok(&Request::Create(create("/a/c", b"", 0))).await;
    z.ok(&Request::Create(create("/a/c/d", b"", 0))).await;
    assert_eq!(
        z.ok(&Request::GetAllChildrenNumber("/a".into())).await,
        Response::Count(2)
    );
    // The genesis nodes ZooKeeper tools expect (zkCli's `config`, Curator's
    // ensemble tracker read /zookeeper/config).
    stat_of(z.ok(&Request::Exists(pw("/zookeeper", false))).await);
    let Response::Data(config, _) = z.ok(&Request::GetData(pw("/zookeeper/config", true))).await
    else {
        panic!("/zookeeper/config exists")
    };
    assert!(
        config.is_some_and(|c| c.is_empty()),
        "no dynamic configuration"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_kinds_and_ephemerals() {
    let server = ServerProc::start();
    let mut z = Zk::open(&server.zk_addr()).await;
    z.ok(&Request::Create(create("/q", b"", 0))).await;
    let Response::Create(p) = z.ok(&Request::Create(create("/q/n-", b"", 2))).await else {
        panic!()
    };
    assert_eq!(p, "/q/n-0000000000");
    let Response::Create2(p, s) = z.ok(&Request::Create2(create("/q/e-", b"", 3))).await else {
        panic!()
    };
    assert_eq!(p, "/q/e-0000000001");
    assert_eq!(s.ephemeral_owner, z.session_id);
    assert_eq!(
        z.ok(&Request::GetEphemerals("/q".into())).await,
        Response::Ephemerals(vec!["/q/e-0000000001".into()])
    );
    let Response::Create2(_, s) = z
        .ok(&Request::CreateContainer(create("/box", b"", 4)))
        .await
    else {
        panic!()
    };
    assert_eq!(s.ephemeral_owner, 0, "a container is not ephemeral");
    // cversion counts creates and deletes of children, as ZooKeeper reports it.
    z.ok(&Request::Create(create("/box/a", b"", 0))).await;
    z.ok(&Request::Create(create("/box/b", b"", 0))).await;
    z.ok(&Request::Delete(pv("/box/a", -1))).await;
    let s = stat_of(z.ok(&Request::Exists(pw("/box", false))).await);
    assert_eq!((s.cversion, s.num_children), (3, 1));
    let mut ttl = create("/ttl", b"", 5);
    ttl.ttl = 60_000;
    z.ok(&Request::CreateTtl(ttl.clone())).await;
    ttl.path = "/ttl2".into();
    assert_eq!(
        z.err(&Request::Create(ttl)).await,
        BAD_ARGUMENTS,
        "TTL flags need createTTL"
    );
    assert_eq!(
        z.err(&Request::CreateTtl(create("/ttl3", b"", 0))).await,
        BAD_ARGUMENTS,
        "createTTL needs TTL flags"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_and_multi_read() {
    let server = ServerProc::start();
    let mut z = Zk::open(&server.zk_addr()).await;
    let r = z
        .ok(&Request::Multi(vec![
            Request::Create(create("/m", b"", 0)),
            Request::Create2(create("/m/x", b"1", 0)),
            Request::Check(pv("/m/x", 0)),
            set("/m/x", b"2", 0),
            Request::Create(create("/m/y", b"", 0)),
            Request::Delete(pv("/m/y", 0)),
        ]))
        .await;
    let Response::Multi(results) = r else {
        panic!()
    };
    assert_eq!(results.len(), 6);
    assert_eq!(results[0], MultiResult::Create("/m".into()));
    assert!(matches!(&results[1], MultiResult::Create2(p, _) if p == "/m/x"));
    assert_eq!(results[2], MultiResult::Check);
    assert!(matches!(results[3], MultiResult::SetData(s) if s.version == 1));
    assert_eq!(results[5], MultiResult::Delete);

    // A failed multi: header ok, each op's error, nothing applied; the same
    // when an op fails validation (an invalid path), as ZooKeeper's
    // PrepRequestProcessor answers.
    for (bad, code) in [
        (Request::Create(create("/m/x", b"", 0)), NODE_EXISTS),
        (Request::Delete(pv("/m/", -1)), BAD_ARGUMENTS),
    ] {
        let (h, body) = z
            .call(&Request::Multi(vec![
                Request::Create(create("/m/z", b"", 0)),
                bad,
                set("/m/x", b"3", -1),
            ]))
            .await;
        assert_eq!(h.err, 0);
        assert_eq!(
            body,
            Some(Response::Multi(vec![
                MultiResult::Error(0),
                MultiResult::Error(code),
                MultiResult::Error(-2),
            ]))
        );
        assert_eq!(z.err(&Request::Exists(pw("/m/z", false))).await, NO_NODE);
    }

    let Response::Multi(reads) = z
        .ok(&Request::MultiRead(vec![
            Request::GetData(pw("/m/x", false)),
            Request::GetChildren(pw("/m", false)),
            Request::GetData(pw("/m/none", false)),
        ]))
        .await
    else {
        panic!()
    };
    assert!(matches!(&reads[0], MultiResult::GetData(d, _) if d.as_deref() == Some(b"2")));
    assert_eq!(reads[1], MultiResult::GetChildren(vec!["x".into()]));
    assert_eq!(reads[2], MultiResult::Error(NO_NODE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_arrive_as_notifications() {
    let server = ServerProc::start();
    let mut w = Zk::open(&server.zk_addr()).await;
    let mut c = Zk::open(&server.zk_addr()).await;
    c.ok(&Request::Create(create("/w", b"", 0))).await;

    w.ok(&Request::GetData(pw("/w", true))).await;
    w.ok(&Request::GetChildren(pw("/w", true))).await;
    assert_eq!(
        w.err(&Request::Exists(pw("/w/new", true))).await,
        NO_NODE,
        "exists on a missing node still sets its watch"
    );
    c.ok(&set("/w", b"x", -1)).await;
    let e = w.event().await;
    assert_eq!((e.event_type, e.state, e.path.as_str()), (3, 3, "/w"));
    c.ok(&Request::Create(create("/w/new", b"", 0))).await;
    let mut got = [w.event().await, w.event().await];
    got.sort_by_key(|e| e.event_type);
    assert_eq!(
        got.iter()
            .map(|e| (e.event_type, e.path.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "/w/new"), (4, "/w")]
    );

    // Persistent recursive watch: every change below, and it stays.
    w.ok(&Request::AddWatch(jute::AddWatchRequest {
        path: "/w".into(),
        mode: 1,
    }))
    .await;
    c.ok(&set("/w/new", b"1", -1)).await;
    c.ok(&set("/w/new", b"2", -1)).await;
    for _ in 0..2 {
        let e = w.event().await;
        assert_eq!((e.event_type, e.path.as_str()), (3, "/w/new"));
    }
    let watches = |t| {
        Request::CheckWatches(jute::WatchesRequest {
            path: "/w".into(),
            watcher_type: t,
        })
    };
    assert_eq!(w.ok(&watches(3)).await, Response::Empty);
    assert_eq!(w.err(&watches(2)).await, NO_WATCHER);
    assert_eq!(
        w.ok(&Request::RemoveWatches(jute::WatchesRequest {
            path: "/w".into(),
            watcher_type: 3,
        }))
        .await,
        Response::Empty
    );
    assert_eq!(w.err(&watches(3)).await, NO_WATCHER);

    // checkWatches does not remove: the watch still fires afterwards.
    w.ok(&Request::GetData(pw("/w/new", true))).await;
    assert_eq!(
        w.ok(&Request::CheckWatches(jute::WatchesRequest {
            path: "/w/new".into(),
            watcher_type: 2,
        }))
        .await,
        Response::Empty
    );
    c.ok(&Request::Delete(pv("/w/new", -1))).await;
    let e = w.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (2, "/w/new"));
    assert!(w.events.is_empty(), "no extra events: {:?}", w.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_precedes_the_reply_that_reflects_it() {
    let server = ServerProc::start();
    let mut z = Zk::open(&server.zk_addr()).await;
    z.ok(&Request::Create(create("/o", b"", 0))).await;
    for i in 0..20 {
        z.ok(&Request::GetData(pw("/o", true))).await;
        // Pipelined: the write and a read right behind it.
        let wx = z.send(&set("/o", format!("{i}").as_bytes(), -1)).await;
        let rx = z.send(&Request::GetData(pw("/o", false))).await;
        let mut order = Vec::new();
        while order.len() < 3 {
            match z.recv().await.expect("frames") {
                jute::Reply::Event(e) => order.push(format!("event {}", e.event_type)),
                jute::Reply::Reply { header, .. } => order.push(format!("reply {}", header.xid)),
            }
        }
        assert_eq!(
            order,
            vec![
                "event 3".to_string(),
                format!("reply {wx}"),
                format!("reply {rx}")
            ],
            "round {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_auth_who_am_i_set_watches_and_unsupported_ops() {
    let server = ServerProc::start();
    let mut z = Zk::open(&server.zk_addr()).await;
    let (h, _) = z.call(&Request::Ping).await;
    assert_eq!((h.xid, h.err), (-2, 0));

    let Response::WhoAmI(who) = z.ok(&Request::WhoAmI).await else {
        panic!()
    };
    assert_eq!(who.len(), 1);
    assert_eq!(
        (who[0].auth_scheme.as_str(), who[0].user.as_str()),
        ("ip", "127.0.0.1")
    );
    let (h, _) = z
        .call(&Request::Auth(jute::AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: b"alice:secret".to_vec(),
        }))
        .await;
    assert_eq!((h.xid, h.err), (-4, 0));
    let Response::WhoAmI(who) = z.ok(&Request::WhoAmI).await else {
        panic!()
    };
    assert_eq!(who[1].auth_scheme, "digest");
    assert_eq!(who[1].user, "alice");
    // Auth sent with an ordinary xid (as the zookeeper-client crate does)
    // is answered with that xid, as ZooKeeper echoes the request's xid.
    let auth = Request::Auth(jute::AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: b"bob:pw".to_vec(),
    });
    z.send_raw(&jute::frame(&jute::encode_request(77, &auth)))
        .await;
    let Some(jute::Reply::Reply { header, .. }) = z.recv().await else {
        panic!("an auth reply")
    };
    assert_eq!((header.xid, header.err), (77, 0));

    assert_eq!(
        z.err(&Request::Reconfig(jute::ReconfigRequest {
            joining_servers: "server.2=127.0.0.1:2888:3888".into(),
            leaving_servers: String::new(),
            new_members: String::new(),
            cur_config_id: -1,
        }))
        .await,
        -123,
        "reconfig is disabled, as on a ZooKeeper without reconfigEnabled"
    );
    assert_eq!(
        z.err(&Request::AddWatch(jute::AddWatchRequest {
            path: "/".into(),
            mode: 7
        }))
        .await,
        BAD_ARGUMENTS
    );

    // setWatches after a (pretend) reconnect: a node changed since the
    // given zxid fires at once; one unchanged is watched.
    z.ok(&Request::Create(create("/still", b"", 0))).await;
    let Response::Create2(_, s) = z.ok(&Request::Create2(create("/sw", b"", 0))).await else {
        panic!()
    };
    z.ok(&set("/sw", b"changed", -1)).await;
    let (h, _) = z
        .call(&Request::SetWatches(jute::SetWatches {
            relative_zxid: s.mzxid,
            data: vec!["/sw".into(), "/still".into()],
            exist: vec!["/later".into()],
            child: vec![],
        }))
        .await;
    assert_eq!((h.xid, h.err), (-8, 0));
    let e = z.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (3, "/sw"));
    z.ok(&Request::Create(create("/later", b"", 0))).await;
    let e = z.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (1, "/later"));
    let (h, _) = z
        .call(&Request::SetWatches2(jute::SetWatches2 {
            relative_zxid: i64::MAX >> 1,
            persistent_recursive: vec!["/still".into()],
            ..Default::default()
        }))
        .await;
    assert_eq!(h.err, 0);
    z.ok(&Request::Create(create("/still/k", b"", 0))).await;
    let e = z.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (1, "/still/k"));

    // SASL without SASL configured: the connection is closed, as ZooKeeper does.
    let mut s = Zk::open(&server.zk_addr()).await;
    s.send(&Request::Sasl(vec![1, 2])).await;
    assert!(zk::closed(&mut s.stream).await);
    z.ok(&Request::Ping).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_close_resume_and_expire() {
    let server = ServerProc::start();
    let addr = server.zk_addr();
    let mut a = Zk::open(&addr).await;
    a.ok(&Request::Create(create("/eph", b"", 1))).await;
    let (id, pass) = (a.session_id, a.passwd.clone());
    drop(a); // the TCP connection only: the session lives on
    let mut b = Zk::resume(&addr, id, &pass).await;
    assert_eq!(b.session_id, id);
    let s = stat_of(b.ok(&Request::Exists(pw("/eph", false))).await);
    assert_eq!(s.ephemeral_owner, id);

    // A wrong password: timeout 0 and session 0, then the connection closes.
    let mut bad = pass.clone();
    bad[0] ^= 1;
    let req = jute::ConnectRequest {
        session_id: id,
        passwd: bad,
        ..zk::new_session()
    };
    let (mut s, resp) = zk::handshake(&addr, &req).await;
    let resp = resp.expect("an answer");
    assert_eq!((resp.timeout_ms, resp.session_id), (0, 0));
    assert!(zk::closed(&mut s).await);
    // An unknown session: the same.
    let req = jute::ConnectRequest {
        session_id: 0x1234567,
        passwd: vec![0; 16],
        ..zk::new_session()
    };
    let (mut s, resp) = zk::handshake(&addr, &req).await;
    assert_eq!(resp.expect("an answer").timeout_ms, 0);
    assert!(zk::closed(&mut s).await);

    // Resuming a session on a new connection closes the old one (session moved).
    let mut moved = Zk::resume(&addr, id, &pass).await;
    assert!(
        zk::closed(&mut b.stream).await,
        "the old connection is closed"
    );
    moved.ok(&Request::Ping).await;
    let mut b = Zk::resume(&addr, id, &pass).await;
    assert!(zk::closed(&mut moved.stream).await);

    // closeSession: a reply, then the connection closes and the ephemeral is gone.
    b.ok(&Request::Ping).await;
    let (h, _) = b.call(&Request::CloseSession).await;
    assert_eq!(h.err, 0);
    assert!(zk::closed(&mut b.stream).await);
    let mut c = Zk::open(&addr).await;
    assert_eq!(c.err(&Request::Exists(pw("/eph", false))).await, NO_NODE);
    let req = jute::ConnectRequest {
        session_id: id,
        passwd: pass,
        ..zk::new_session()
    };
    let (_, resp) = zk::handshake(&addr, &req).await;
    assert_eq!(
        resp.expect("an answer").timeout_ms,
        0,
        "a closed session cannot be resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_protocols_share_nodes_watches_and_sessions() {
    let server = ServerProc::start();
    let g = Client::connect(&server.addr(), ConnectOptions::default())
        .await
        .expect("grpc connect");
    let mut z = Zk::open(&server.zk_addr()).await;

    // gRPC writes, ZooKeeper reads and watches.
    g.create("/x", "from grpc", CreateMode::Persistent)
        .await
        .unwrap();
    let Response::Data(d, _) = z.ok(&Request::GetData(pw("/x", true))).await else {
        panic!()
    };
    assert_eq!(d.as_deref(), Some(&b"from grpc"[..]));
    g.set_data("/x", "again", None).await.unwrap();
    let e = z.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (3, "/x"));

    // ZooKeeper writes, gRPC reads and watches.
    z.ok(&Request::Create(create("/y", b"from zk", 0))).await;
    let (d, _, w) = g.get_data_w("/y").await.unwrap();
    assert_eq!(d, b"from zk");
    z.ok(&set("/y", b"changed", -1)).await;
    let ev = tokio::time::timeout(STEP, w)
        .await
        .expect("watch fired")
        .unwrap();
    assert_eq!(ev.path, "/y");

    // An ephemeral made over ZooKeeper goes when that session closes.
    z.ok(&Request::Create(create("/y/eph", b"", 1))).await;
    assert!(g.exists("/y/eph").await.unwrap().is_some());
    z.call(&Request::CloseSession).await;
    wait_until("the ephemeral to go", STEP, || async {
        g.exists("/y/eph").await.unwrap().is_none()
    })
    .await;

    // A session opened over ZooKeeper is resumed over gRPC, same id and password.
    let mut z2 = Zk::open(&server.zk_addr()).await;
    z2.ok(&Request::Create(create("/y/e2", b"", 1))).await;
    let (id, pass) = (z2.session_id, z2.passwd.clone());
    drop(z2);
    let resumed = Client::connect(
        &server.addr(),
        ConnectOptions {
            session_id: Some(id as u64),
            password: pass,
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("resume over gRPC");
    assert_eq!(resumed.session_id(), id as u64);
    let st = g.exists("/y/e2").await.unwrap().expect("still there");
    assert_eq!(st.ephemeral_owner, id as u64);
    resumed.close().await.unwrap();
    wait_until("the resumed session's ephemeral to go", STEP, || async {
        g.exists("/y/e2").await.unwrap().is_none()
    })
    .await;
}

/// A session opened before the bad input still works after it.
async fn healthy(z: &mut Zk, what: &str) {
    let path = format!("/healthy-{}", what.replace(' ', "-"));
    let r = z
        .ok(&Request::Create(create(&path, what.as_bytes(), 0)))
        .await;
    assert_eq!(r, Response::Create(path.clone()), "after {what}");
    let Response::Data(d, _) = z.ok(&Request::GetData(pw(&path, false))).await else {
        panic!("after {what}")
    };
    assert_eq!(d.as_deref(), Some(what.as_bytes()));
}

async fn raw(addr: &str, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_the_offending_connection() {
    let server = ServerProc::start();
    let addr = server.zk_addr();
    let mut good = Zk::open(&addr).await;
    healthy(&mut good, "start").await;

    // Bad first frames.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        (
            "oversized length",
            (64 * 1024 * 1024i32).to_be_bytes().to_vec(),
        ),
        (
            "http request",
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("garbage connect", jute::frame(&[7u8; 10])),
        (
            "truncated connect",
            jute::frame(&zk::new_session().encode()[..30]),
        ),
        ("unknown word", b"xyzw".to_vec()),
    ];
    for (what, bytes) in cases {
        let mut s = raw(&addr, &bytes).await;
        assert!(zk::closed(&mut s).await, "{what}: connection closed");
        healthy(&mut good, what).await;
    }
    wait_until("the HTTP log line", STEP, || async {
        server
            .log()
            .contains("an HTTP request on the ZooKeeper port")
    })
    .await;
    assert!(server
        .log()
        .contains("frame of 67108864 bytes is over the limit"));

    // Bad frames inside a session.
    let mut body = jute::encode_request(5, &Request::GetData(pw("/", false)));
    body.truncate(10);
    let mut trailing = jute::encode_request(5, &Request::Ping);
    trailing.extend_from_slice(&[1, 2, 3]);
    let frames: Vec<(&str, Vec<u8>)> = vec![
        ("truncated request", jute::frame(&body)),
        ("trailing garbage", jute::frame(&trailing)),
        ("negative frame", (-1i32).to_be_bytes().to_vec()),
        ("huge frame", (i32::MAX).to_be_bytes().to_vec()),
        (
            "bad utf-8 path",
            jute::frame(&{
                let mut b = Vec::new();
                b.extend_from_slice(&9i32.to_be_bytes());
                b.extend_from_slice(&4i32.to_be_bytes());
                b.extend_from_slice(&2i32.to_be_bytes());
                b.extend_from_slice(&[0xff, 0xfe, 0]);
                b
            }),
        ),
        (
            "bad vector length",
            jute::frame(&{
                let mut b = Vec::new();
                b.extend_from_slice(&9i32.to_be_bytes());
                b.extend_from_slice(&101i32.to_be_bytes());
                b.extend_from_slice(&0i64.to_be_bytes());
                b.extend_from_slice(&i32::MAX.to_be_bytes());
                b
            }),
        ),
    ];
    for (what, bytes) in frames {
        let mut z = Zk::open(&addr).await;
        z.send_raw(&bytes).await;
        assert!(zk::closed(&mut z.stream).await, "{what}: connection closed");
        healthy(&mut good, what).await;
    }

    // Unknown opcode: Unimplemented (-6), then the connection closes.
    let mut z = Zk::open(&addr).await;
    let mut b = Vec::new();
    b.extend_from_slice(&77i32.to_be_bytes());
    b.extend_from_slice(&999i32.to_be_bytes());
    z.send_raw(&jute::frame(&b)).await;
    let body = zk::read_frame(&mut z.stream).await.expect("a reply");
    let reply = jute::decode_reply(&body, |_| op::GET_DATA).unwrap();
    assert!(
        matches!(reply, jute::Reply::Reply { header, body: None } if header.xid == 77 && header.err == -6),
        "{reply:?}"
    );
    assert!(zk::closed(&mut z.stream).await);
    healthy(&mut good, "unknown opcode").await;
    assert!(server.log().contains("unknown opcode"));

    // Invalid paths and too much data: an error reply, the session carries on.
    let mut z = Zk::open(&addr).await;
    for p in ["no-slash", "/a/", "/a//b", "", "/a/./b"] {
        assert_eq!(
            z.err(&Request::Create(create(p, b"", 0))).await,
            BAD_ARGUMENTS,
            "create {p:?}"
        );
        assert_eq!(
            z.err(&Request::GetData(pw(p, false))).await,
            BAD_ARGUMENTS,
            "getData {p:?}"
        );
    }
    let big = vec![0u8; 1024 * 1024 + 1];
    assert_eq!(
        z.err(&Request::Create(create("/big", &big, 0))).await,
        BAD_ARGUMENTS
    );
    z.ok(&Request::Ping).await;
    healthy(&mut z, "invalid paths").await;

    // Many bad connections at once; the server carries on.
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = raw(&addr, &[i, 0xff, 0x13, i, 1, 2, 3]).await;
            zk::closed(&mut s).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    healthy(&mut good, "many bad connections").await;
    assert_eq!(server.status()["leader"], true);
    // Nothing is left behind: only the healthy session's connection remains.
    drop(z);
    wait_until("connections to return to the healthy one", STEP, || async {
        server.metric("warden_connections", "") == 1.0
    })
    .await;
    let mntr = word(&addr, "mntr").await;
    assert!(mntr.contains("zk_num_alive_connections\t1\n"), "{mntr}");
}

async fn word(addr: &str, w: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = raw(addr, w.as_bytes()).await;
    let mut out = String::new();
    tokio::time::timeout(STEP, s.read_to_string(&mut out))
        .await
        .expect("an answer")
        .expect("text");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words() {
    let server = ServerProc::start();
    let addr = server.zk_addr();
    let g = Client::connect(&server.addr(), ConnectOptions::default())
        .await
        .expect("grpc connect");
    let mut z = Zk::open(&addr).await;
    z.ok(&Request::Create(create("/fl", b"12345", 0))).await;
    z.ok(&Request::Create(create("/fl/e", b"", 1))).await;
    z.ok(&Request::GetData(pw("/fl", true))).await;
    z.ok(&Request::GetChildren(pw("/fl", true))).await;

    assert_eq!(word(&addr, "ruok").await, "imok");
    assert_eq!(word(&addr, "isro").await, "rw");
    let srvr = word(&addr, "srvr").await;
    assert!(
        srvr.starts_with("Zookeeper version: 3.8.4-warden-"),
        "{srvr}"
    );
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    let znodes = server.status()["znodes"].as_u64().unwrap();
    assert!(srvr.contains(&format!("Node count: {znodes}")), "{srvr}");
    let stat = word(&addr, "stat").await;
    assert!(stat.contains("Clients:"), "{stat}");
    assert!(
        stat.contains(&format!("sid=0x{:x}", z.session_id)),
        "{stat}"
    );
    let envi = word(&addr, "envi").await;
    assert!(
        envi.lines()
            .any(|l| l.starts_with("zookeeper.version=3.8.4-warden-")),
        "{envi}"
    );
    let conf = word(&addr, "conf").await;
    assert!(
        conf.contains(&format!("clientPort={}", server.zk_port)),
        "{conf}"
    );
    let cons = word(&addr, "cons").await;
    assert!(cons.contains("proto=zk"), "{cons}");
    assert!(cons.contains("proto=grpc"), "{cons}");
    assert!(
        cons.contains(&format!("sid=0x{:x}", g.session_id())),
        "{cons}"
    );

    let mntr = word(&addr, "mntr").await;
    let kv: std::collections::HashMap<&str, &str> =
        mntr.lines().filter_map(|l| l.split_once('\t')).collect();
    assert_eq!(kv["zk_server_state"], "standalone");
    assert!(kv["zk_version"].starts_with("3.8.4-warden-"));
    assert_eq!(kv["zk_znode_count"], znodes.to_string());
    assert_eq!(kv["zk_watch_count"], "2");
    assert_eq!(kv["zk_ephemerals_count"], "1");
    assert!(kv["zk_num_alive_connections"].parse::<u64>().unwrap() >= 2);
    assert!(kv["zk_approximate_data_size"].parse::<u64>().unwrap() >= 5);
    assert!(kv["zk_open_file_descriptor_count"].parse::<u64>().unwrap() > 0);
    for k in [
        "zk_avg_latency",
        "zk_max_latency",
        "zk_min_latency",
        "zk_packets_received",
    ] {
        assert!(kv.contains_key(k), "{k} in {mntr}");
    }

    let wchs = word(&addr, "wchs").await;
    assert!(
        wchs.contains("1 connections watching 1 paths") && wchs.contains("Total watches:2"),
        "{wchs}"
    );
    let wchc = word(&addr, "wchc").await;
    assert!(
        wchc.contains(&format!("0x{:x}\n\t/fl", z.session_id)),
        "{wchc}"
    );
    let wchp = word(&addr, "wchp").await;
    assert!(
        wchp.contains(&format!("/fl\n\t0x{:x}", z.session_id)),
        "{wchp}"
    );
    let dump = word(&addr, "dump").await;
    assert!(
        dump.contains(&format!("0x{:x}:\n\t/fl/e", z.session_id)),
        "{dump}"
    );
    assert!(word(&addr, "crst")
        .await
        .contains("is not executed because it is not in the whitelist"));
    // Not a word: read as a frame length, refused, closed without an answer.
    assert_eq!(word(&addr, "hell").await, "");
    z.ok(&Request::Ping).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_session_expires_and_cannot_be_resumed() {
    let server = ServerProc::start();
    let addr = server.zk_addr();
    let req = jute::ConnectRequest {
        timeout_ms: 1,
        ..zk::new_session()
    };
    let mut z = Zk::open_with(&addr, &req).await;
    assert_eq!(
        z.timeout_ms, 400,
        "clamped to the server's minimum (2 ticks)"
    );
    z.ok(&Request::Create(create("/gone", b"", 1))).await;
    let (id, pass) = (z.session_id, z.passwd.clone());
    // No pings: the server expires the session and closes the connection.
    assert!(zk::closed(&mut z.stream).await);
    let resume = jute::ConnectRequest {
        session_id: id,
        passwd: pass,
        ..zk::new_session()
    };
    let (_, resp) = zk::handshake(&addr, &resume).await;
    let resp = resp.expect("an answer");
    assert_eq!((resp.timeout_ms, resp.session_id), (0, 0), "expired");
    let mut c = Zk::open(&addr).await;
    assert_eq!(c.err(&Request::Exists(pw("/gone", false))).await, NO_NODE);

    // A client that has seen a newer zxid than this server is refused:
    // the connection closes without an answer, as ZooKeeper does.
    let ahead = jute::ConnectRequest {
        last_zxid_seen: i64::MAX,
        ..zk::new_session()
    };
    let (mut s, resp) = zk::handshake(&addr, &ahead).await;
    assert!(resp.is_none(), "no session for a client from the future");
    assert!(zk::closed(&mut s).await);
    c.ok(&Request::Ping).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_pipelined_requests_are_answered_in_order() {
    let server = ServerProc::start();
    let mut z = Zk::open(&server.zk_addr()).await;
    z.ok(&Request::Create(create("/p", b"data", 0))).await;
    // More than the 1000 a connection may have in flight, sent in one go
    // before reading anything: the server slows the reader, loses nothing.
    let n = 3000;
    let mut bytes = Vec::new();
    for i in 0..n {
        let req = if i % 3 == 0 {
            set("/p", format!("{i}").as_bytes(), -1)
        } else {
            Request::GetData(pw("/p", false))
        };
        bytes.extend_from_slice(&jute::frame(&jute::encode_request(1000 + i, &req)));
    }
    let (mut rd, mut wr) = z.stream.into_split();
    let sender = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        wr.write_all(&bytes).await.expect("send all");
        wr
    });
    let mut last_zxid = 0;
    for i in 0..n {
        use tokio::io::AsyncReadExt;
        let mut len = [0u8; 4];
        tokio::time::timeout(STEP, rd.read_exact(&mut len))
            .await
            .expect("a reply in time")
            .expect("a reply");
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        rd.read_exact(&mut body).await.expect("a reply body");
        let opcode = if i % 3 == 0 {
            op::SET_DATA
        } else {
            op::GET_DATA
        };
        let jute::Reply::Reply { header, body } = jute::decode_reply(&body, |_| opcode).unwrap()
        else {
            panic!("no watches were set")
        };
        assert_eq!(
            (header.xid, header.err),
            (1000 + i, 0),
            "reply {i} in order"
        );
        assert!(header.zxid >= last_zxid, "reply zxids never go back");
        last_zxid = header.zxid;
        if let Some(Response::Data(d, _)) = body {
            assert_eq!(
                d.as_deref(),
                Some(format!("{}", i - i % 3).as_bytes()),
                "reads see earlier writes"
            );
        }
    }
    sender.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_others_carry_on() {
    use tokio::io::AsyncWriteExt;
    let server = ServerProc::start();
    let addr = server.zk_addr();
    let mut good = Zk::open(&addr).await;
    let big = vec![7u8; 512 * 1024];
    good.ok(&Request::Create(create("/big", &big, 0))).await;
    let stalled = Zk::open(&addr).await;
    let (_unread, mut wr) = stalled.stream.into_split();
    // 100 reads of 512 KiB (far more than the socket buffers hold), never
    // read back; pings keep the session alive, so only the stall can end
    // the connection.
    let mut bytes = Vec::new();
    for i in 0..100 {
        bytes.extend_from_slice(&jute::frame(&jute::encode_request(
            10 + i,
            &Request::GetData(pw("/big", false)),
        )));
    }
    wr.write_all(&bytes).await.expect("send the reads");
    let pinger = tokio::spawn(async move {
        let ping = jute::frame(&jute::encode_request(jute::xid::PING, &Request::Ping));
        while wr.write_all(&ping).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // The healthy session pings too while it waits (its timeout is 4 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.metric("warden_connections", "") != 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never closed the stalled connection"
        );
        good.ok(&Request::Ping).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    healthy(&mut good, "a stalled client").await;
    pinger.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_close_pipelined_behind_reads_are_answered_in_order() {
    let server = ServerProc::start();
    let addr = server.zk_addr();
    let mut z = Zk::open(&addr).await;
    z.ok(&Request::Create(create("/q", b"old", 0))).await;
    z.ok(&Request::Create(create("/q/eph", b"", 1))).await;
    // Sent in one go: each write waits for the read before it, and the
    // closeSession for the last read; nothing stalls.
    let reqs = [
        Request::GetData(pw("/q", false)),
        set("/q", b"new", -1),
        Request::GetData(pw("/q", false)),
        Request::GetChildren(pw("/q", false)),
        Request::CloseSession,
    ];
    let mut bytes = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        bytes.extend_from_slice(&jute::frame(&jute::encode_request(100 + i as i32, r)));
    }
    z.send_raw(&bytes).await;
    let mut replies = Vec::new();
    while let Some(body) = zk::read_frame(&mut z.stream).await {
        let h = jute::ReplyHeader::read(&mut jute::wire::Reader::new(&body)).unwrap();
        let opcode = reqs[(h.xid - 100) as usize].opcode();
        let jute::Reply::Reply { header, body } = jute::decode_reply(&body, |_| opcode).unwrap()
        else {
            panic!("no watches were set")
        };
        assert_eq!(header.err, 0, "request {} failed", header.xid);
        replies.push((header.xid, body));
    }
    let xids: Vec<i32> = replies.iter().map(|r| r.0).collect();
    assert_eq!(
        xids,
        vec![100, 101, 102, 103, 104],
        "every request answered, in order"
    );
    assert!(matches!(&replies[0].1, Some(Response::Data(d, _)) if d.as_deref() == Some(b"old")));
    assert!(matches!(&replies[2].1, Some(Response::Data(d, _)) if d.as_deref() == Some(b"new")));
    assert_eq!(
        replies[3].1,
        Some(Response::Children(vec!["eph".into()])),
        "the ephemeral is there until the close"
    );
    let mut c = Zk::open(&addr).await;
    let Response::Data(d, _) = c.ok(&Request::GetData(pw("/q", false))).await else {
        panic!()
    };
    assert_eq!(d.as_deref(), Some(&b"new"[..]));
    assert_eq!(c.err(&Request::Exists(pw("/q/eph", false))).await, NO_NODE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_adapter_answers_itself_keep_the_session_alive() {
    let server = ServerProc::start();
    let addr = server.zk_addr();
    let mut z = Zk::open(&addr).await;
    assert_eq!(
        z.timeout_ms, 4000,
        "clamped to the server's maximum (20 ticks)"
    );
    z.ok(&Request::Create(create("/alive", b"", 1))).await;
    // Only whoAmI (answered by the adapter, never by the session) for
    // longer than the session timeout: any request counts as a ping.
    let until = tokio::time::Instant::now() + Duration::from_millis(6000);
    while tokio::time::Instant::now() < until {
        let Response::WhoAmI(_) = z.ok(&Request::WhoAmI).await else {
            panic!("a whoAmI answer")
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = stat_of(z.ok(&Request::Exists(pw("/alive", false))).await);
    assert_eq!(s.ephemeral_owner, z.session_id, "the session is still open");
}

/// The permission each operation needs, as Apache ZooKeeper 3.8 answers:
/// for every operation × what a node's ACL grants to `world:anyone` (one
/// permission bit, or nothing: the node then belongs to a digest user),
/// the code an unauthenticated client gets. The expected table was
/// recorded once from Debian's ZooKeeper 3.8 (`testdata/acl_table.txt`;
/// `WARDEN_ACL_TABLE_RECORD=FILE` writes what the target answers), and the
/// same test run with `WARDEN_ZK_REFERENCE` checks ZooKeeper against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_table_matches_zookeepers() {
    let target = Target::start();
    let addr = target.zk_addr();
    let root = unique_root("acl-table");
    let mut admin = Zk::open(&addr).await;
    admin.ok(&Request::Create(create(&root, b"", 0))).await;
    let grants: [(&str, i32); 6] = [
        ("none", 0),
        ("read", 1),
        ("write", 2),
        ("create", 4),
        ("delete", 8),
        ("admin", 16),
    ];
    let mut table = String::new();
    for (grant, bit) in grants {
        let n = format!("{root}/{grant}");
        admin.ok(&Request::Create(create(&n, b"x", 0))).await;
        admin
            .ok(&Request::Create(create(&format!("{n}/kid"), b"", 0)))
            .await;
        let acl = match bit {
            0 => vec![jute::Acl {
                perms: 31,
                scheme: "digest".into(),
                id: warden_server::digest("nobody:pw"),
            }],
            bit => vec![jute::Acl {
                perms: bit,
                scheme: "world".into(),
                id: "anyone".into(),
            }],
        };
        admin
            .ok(&Request::SetAcl(jute::SetAclRequest {
                path: n.clone(),
                acl: acl.clone(),
                version: -1,
            }))
            .await;
        let mut z = Zk::open(&addr).await;
        let ops: Vec<(&str, Request)> = vec![
            ("exists", Request::Exists(pw(&n, false))),
            ("getData", Request::GetData(pw(&n, false))),
            ("getChildren", Request::GetChildren(pw(&n, false))),
            ("getChildren2", Request::GetChildren2(pw(&n, false))),
            (
                "getAllChildrenNumber",
                Request::GetAllChildrenNumber(n.clone()),
            ),
            ("getACL", Request::GetAcl(n.clone())),
            ("sync", Request::Sync(n.clone())),
            (
                "addWatch",
                Request::AddWatch(jute::AddWatchRequest {
                    path: n.clone(),
                    mode: 0,
                }),
            ),
            ("setData", set(&n, b"y", -1)),
            (
                "create child",
                Request::Create(create(&format!("{n}/new"), b"", 0)),
            ),
            (
                "multi check",
                Request::Multi(vec![Request::Check(pv(&n, -1))]),
            ),
            ("multi setData", Request::Multi(vec![set(&n, b"z", -1)])),
            (
                "setACL",
                Request::SetAcl(jute::SetAclRequest {
                    path: n.clone(),
                    acl: acl.clone(),
                    version: -1,
                }),
            ),
            ("delete child", Request::Delete(pv(&format!("{n}/kid"), -1))),
        ];
        for (name, req) in ops {
            let (h, body) = z.call(&req).await;
            let code = match body {
                Some(Response::Multi(results)) => match results.first() {
                    Some(MultiResult::Error(c)) => *c,
                    _ => h.err,
                },
                _ => h.err,
            };
            table.push_str(&format!("{name:<22} {grant:<7} {code}\n"));
        }
    }
    if let Ok(path) = std::env::var("WARDEN_ACL_TABLE_RECORD") {
        std::fs::write(&path, &table).expect("write the recorded table");
    }
    let expected = include_str!("testdata/acl_table.txt");
    assert_eq!(
        table, expected,
        "the ACL table differs from ZooKeeper 3.8's (left: this target)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_limit_are_refused_and_others_carry_on() {
    let server = ServerProc::start_with(ServerOpts {
        extra_args: vec!["--max-connections-per-ip".into(), "3".into()],
        ..Default::default()
    });
    let addr = server.zk_addr();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(Zk::open(&addr).await);
    }
    // The limit counts both client protocols together.
    let grpc = warden_tests::connect(&server.addr(), Default::default()).await;
    let short = ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    // A fourth connection from the same address is closed at once, on
    // either protocol.
    let mut fourth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(
        zk::closed(&mut fourth).await,
        "the fourth connection stayed open"
    );
    let refused = Client::connect(&server.addr(), short.clone()).await;
    assert!(refused.is_err(), "a fourth (gRPC) session");
    // Another client address is not held back.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let from_other = sock.connect(addr.parse().unwrap()).await.unwrap();
    let mut other = Zk::open_on(from_other, &zk::new_session()).await;
    other.ok(&Request::Ping).await;
    // The held sessions carry on, and a closed one makes room.
    for z in &mut held {
        z.ok(&Request::Exists(pw("/", false))).await;
    }
    grpc.create("/still", "", CreateMode::Persistent)
        .await
        .unwrap();
    drop(held.pop());
    let deadline = Instant::now() + STEP;
    let again = loop {
        match Client::connect(&server.addr(), short.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "no room after a close: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(again.exists("/still").await.unwrap().is_some());
    assert!(server
        .log()
        .contains("too many connections from one address"));
}

/// Null data on the wire: a create and a setData with a null buffer
/// (length -1), in a multi too, read back as null (not an empty buffer),
/// through getData and multiRead; empty data stays empty. Same against
/// ZooKeeper 3.8 (`WARDEN_ZK_REFERENCE`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_data_stays_null_on_the_wire() {
    let target = Target::start();
    let root = unique_root("null");
    let mut z = Zk::open(&target.zk_addr()).await;
    let null = |path: &str| jute::CreateRequest {
        data: None,
        ..create(path, b"", 0)
    };
    z.ok(&Request::Create(create(&root, b"", 0))).await;
    z.ok(&Request::Create(null(&format!("{root}/a")))).await;
    z.ok(&Request::Create(create(&format!("{root}/b"), b"", 0)))
        .await;
    z.ok(&Request::Multi(vec![
        Request::Create(null(&format!("{root}/c"))),
        Request::SetData(jute::SetDataRequest {
            path: format!("{root}/b"),
            data: None,
            version: -1,
        }),
        set(&format!("{root}/a"), b"", -1),
    ]))
    .await;
    let get = |p: &str| Request::GetData(pw(&format!("{root}/{p}"), false));
    for (node, want) in [("a", Some(vec![])), ("b", None), ("c", None)] {
        let Response::Data(d, stat) = z.ok(&get(node)).await else {
            panic!("getData answers data")
        };
        assert_eq!(d, want, "{node}");
        assert_eq!(stat.data_length, 0, "{node}");
    }
    let Response::Multi(reads) = z.ok(&Request::MultiRead(vec![get("a"), get("b")])).await else {
        panic!("multiRead answers a multi")
    };
    assert!(matches!(&reads[0], MultiResult::GetData(Some(d), _) if d.is_empty()));
    assert!(matches!(&reads[1], MultiResult::GetData(None, _)));
}

/// Null data crosses protocols: written null over either, it reads as
/// `None` through warden-client's `get_data_nullable` (and as empty
/// through `get_data`) and as a null buffer over the ZooKeeper protocol;
/// the `warden` tool prints it as zkCli does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_data_reads_the_same_through_every_client() {
    // Snapshots every few entries: the restart below reads one back.
    let mut server = ServerProc::start_with(ServerOpts {
        snapshot_every: Some(4),
        ..Default::default()
    });
    let mut z = Zk::open(&server.zk_addr()).await;
    let c = warden_tests::connect(&server.addr(), Default::default()).await;
    z.ok(&Request::Create(jute::CreateRequest {
        data: None,
        ..create("/from-zk", b"", 0)
    }))
    .await;
    c.create_null("/from-grpc", Default::default())
        .await
        .unwrap();
    c.create("/empty", "", CreateMode::Persistent)
        .await
        .unwrap();
    for p in ["/from-zk", "/from-grpc"] {
        assert_eq!(c.get_data_nullable(p).await.unwrap().0, None, "{p}");
        assert_eq!(c.get_data(p).await.unwrap().0, b"", "{p}");
        let Response::Data(d, _) = z.ok(&Request::GetData(pw(p, false))).await else {
            panic!()
        };
        assert_eq!(d, None, "{p} over the ZooKeeper protocol");
    }
    assert_eq!(c.get_data_nullable("/empty").await.unwrap().0, Some(vec![]));
    c.set_data_null("/empty", Some(0)).await.unwrap();
    assert_eq!(c.get_data_nullable("/empty").await.unwrap().0, None);
    c.set_data("/empty", "", None).await.unwrap();
    assert_eq!(c.get_data_nullable("/empty").await.unwrap().0, Some(vec![]));
    let cli = |args: &[&str]| {
        let out = warden_tests::warden(&server, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&["get", "/from-zk"]), "null\n");
    assert_eq!(cli(&["get", "/empty"]), "\n");
    cli(&["create", "--null", "/cli-null"]);
    cli(&["set", "--null", "/empty"]);
    assert_eq!(c.get_data_nullable("/cli-null").await.unwrap().0, None);
    assert_eq!(c.get_data_nullable("/empty").await.unwrap().0, None);
    // Kept by the log and the snapshot across a restart.
    drop((c, z));
    server.kill9();
    server.restart();
    let c = warden_tests::connect(&server.addr(), Default::default()).await;
    for p in ["/from-zk", "/from-grpc", "/cli-null", "/empty"] {
        assert_eq!(c.get_data_nullable(p).await.unwrap().0, None, "{p}");
    }
    assert!(server.log().contains("snapshot"), "no snapshot was taken");
}

/// What a watcher may not read it does not hear about (ZooKeeper 3.8.4+,
/// CVE-2024-23944, in Debian's 3.8.0-11+deb12u2 too): events for a node
/// whose ACL denies the watching connection READ are not delivered — on a
/// persistent recursive watch above it, and on an exists watch on it —
/// while events for readable nodes still are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_skip_nodes_the_watcher_cannot_read() {
    let target = Target::start();
    let addr = target.zk_addr();
    let root = unique_root("watch-acl");
    let mut alice = Zk::open(&addr).await;
    let (h, _) = alice
        .call(&Request::Auth(jute::AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: b"alice:pw".to_vec(),
        }))
        .await;
    assert_eq!(h.err, 0);
    alice.ok(&Request::Create(create(&root, b"", 0))).await;
    let mut anon = Zk::open(&addr).await;
    anon.ok(&Request::AddWatch(jute::AddWatchRequest {
        path: root.clone(),
        mode: 1,
    }))
    .await;
    let secret = format!("{root}/secret");
    let hidden = format!("{root}/hidden");
    let open = format!("{root}/open");
    assert_eq!(anon.err(&Request::Exists(pw(&hidden, true))).await, -101);
    let alice_only = vec![jute::Acl {
        perms: 31,
        scheme: "digest".into(),
        id: warden_server::digest("alice:pw"),
    }];
    for p in [&secret, &hidden] {
        alice
            .ok(&Request::Create(jute::CreateRequest {
                acl: alice_only.clone(),
                ..create(p, b"x", 0)
            }))
            .await;
    }
    alice.ok(&set(&secret, b"y", -1)).await;
    alice.ok(&Request::Delete(pv(&secret, -1))).await;
    // Gone again within the same multi: still not the watcher's to see.
    let brief = format!("{root}/brief");
    alice
        .ok(&Request::Multi(vec![
            Request::Create(jute::CreateRequest {
                acl: alice_only.clone(),
                ..create(&brief, b"x", 0)
            }),
            Request::Delete(pv(&brief, -1)),
        ]))
        .await;
    alice.ok(&Request::Create(create(&open, b"x", 0))).await;
    // Events reach a connection before replies to its later reads.
    anon.ok(&Request::GetData(pw(&open, false))).await;
    let seen: Vec<(i32, String)> = anon
        .events
        .drain(..)
        .map(|e| (e.event_type, e.path))
        .collect();
    assert_eq!(seen, vec![(1, open.clone())], "NodeCreated {open} only");
}
