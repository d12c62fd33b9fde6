//! Znodes against a real server: node types, errors, versions, stats, path
//! and size validation, multi, and the smaller reads — all checked against
//! ZooKeeper 3.9's semantics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use warden_client::{Acl, CreateMode, CreateOptions, ErrorCode, MultiError, Op, OpResult, Stat};
use warden_proto::v1 as pb;
use warden_proto::v1::request::Op as ReqOp;
use warden_tests::raw::Raw;
use warden_tests::{connect, wait_until, InProcServer};

const REAP_DEADLINE: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn code_of(r: &pb::Response) -> ErrorCode {
    ErrorCode::from_i32(r.error)
}

fn raw_create(path: &str, data: Vec<u8>) -> ReqOp {
    ReqOp::Create(pb::Create {
        path: path.into(),
        data,
        mode: pb::CreateMode::Persistent as i32,
        ttl_ms: 0,
        acl: vec![],
        null_data: false,
    })
}

// ----- node types ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_ephemeral_nodes_have_the_right_owner() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let sid = c.session_id();
    assert_ne!(sid, 0);

    let (path, stat) = c
        .create_with("/p", "d", CreateOptions::new(CreateMode::Persistent))
        .await
        .unwrap();
    assert_eq!(path, "/p");
    assert_eq!(stat.ephemeral_owner, 0);

    let (path, stat) = c
        .create_with("/e", "d", CreateOptions::new(CreateMode::Ephemeral))
        .await
        .unwrap();
    assert_eq!(path, "/e");
    assert_eq!(stat.ephemeral_owner, sid);
    assert_eq!(c.exists("/e").await.unwrap().unwrap().ephemeral_owner, sid);
    assert_eq!(c.exists("/p").await.unwrap().unwrap().ephemeral_owner, 0);

    // Another session sees the same owner; closing the owner deletes it.
    let other = connect(&server.addr(), Default::default()).await;
    assert_eq!(
        other.exists("/e").await.unwrap().unwrap().ephemeral_owner,
        sid
    );
    c.close().await.unwrap();
    assert_eq!(other.exists("/e").await.unwrap(), None);
    assert!(other.exists("/p").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_nodes_take_the_parents_cversion_as_suffix() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.create("/q", "", CreateMode::Persistent).await.unwrap();

    for i in 0..3 {
        let (_, parent) = c.get_children2("/q").await.unwrap();
        assert_eq!(parent.cversion, i);
        let created = c
            .create("/q/n-", "", CreateMode::PersistentSequential)
            .await
            .unwrap();
        assert_eq!(created, format!("/q/n-{i:010}"));
        assert_eq!(created, format!("/q/n-{:010}", parent.cversion));
        let stat = c.exists(&created).await.unwrap().unwrap();
        assert_eq!(stat.ephemeral_owner, 0);
    }

    // A non-sequential child also counts as a change of the children.
    c.create("/q/plain", "", CreateMode::Persistent)
        .await
        .unwrap();
    let next = c
        .create("/q/n-", "", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(next, "/q/n-0000000004");

    // Deleting the newest child never makes its number available again.
    c.delete("/q/n-0000000004", None).await.unwrap();
    let (_, parent) = c.get_children2("/q").await.unwrap();
    let again = c
        .create("/q/n-", "", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(again, "/q/n-0000000005", "numbered by creations");
    assert_eq!(parent.cversion, 6, "5 creations and a deletion");
    assert!(
        again.as_str() > "/q/n-0000000004",
        "{again} reuses a number"
    );

    // Ephemeral sequential: same numbering, owned by the session.
    c.create("/eq", "", CreateMode::Persistent).await.unwrap();
    let (path, stat) = c
        .create_with(
            "/eq/m-",
            "",
            CreateOptions::new(CreateMode::EphemeralSequential),
        )
        .await
        .unwrap();
    assert_eq!(path, "/eq/m-0000000000");
    assert_eq!(stat.ephemeral_owner, c.session_id());
    let (path, _) = c
        .create_with(
            "/eq/m-",
            "",
            CreateOptions::new(CreateMode::EphemeralSequential),
        )
        .await
        .unwrap();
    assert_eq!(path, "/eq/m-0000000001");
    // Sequential names sort in creation order.
    assert_eq!(
        c.get_children("/eq").await.unwrap(),
        vec!["m-0000000000", "m-0000000001"]
    );
}

/// As Apache ZooKeeper 3.8 (checked against it): a delete moves the
/// parent's cversion and pzxid, but sequential children are numbered by
/// creations, so after creating three and deleting the last, the next one is
/// `...0003`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_numbering_after_delete_matches_zookeeper() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.create("/q", "", CreateMode::Persistent).await.unwrap();
    for i in 0..3 {
        let p = c
            .create("/q/n-", "", CreateMode::PersistentSequential)
            .await
            .unwrap();
        assert_eq!(p, format!("/q/n-{i:010}"));
    }
    let (_, before) = c.get_children2("/q").await.unwrap();
    c.delete("/q/n-0000000002", None).await.unwrap();
    let (_, after) = c.get_children2("/q").await.unwrap();
    assert_eq!(
        after.cversion,
        before.cversion + 1,
        "a delete is a change to the children"
    );
    assert!(after.pzxid > before.pzxid, "delete must bump pzxid");
    let next = c
        .create("/q/n-", "", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(next, "/q/n-0000000003");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_go_once_their_last_child_goes() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    // Created first, so it is the oldest: it must survive every reap.
    c.create("/never", "", CreateMode::Container).await.unwrap();
    // ZooKeeper hides its container marker from clients: the owner is 0.
    let never = c.exists("/never").await.unwrap().unwrap();
    assert_eq!(never.ephemeral_owner, 0);
    c.create("/box", "", CreateMode::Container).await.unwrap();
    c.create("/box/item", "", CreateMode::Persistent)
        .await
        .unwrap();
    // A container with a child is not touched.
    c.create("/full", "", CreateMode::Container).await.unwrap();
    c.create("/full/item", "", CreateMode::Persistent)
        .await
        .unwrap();

    c.delete("/box/item", None).await.unwrap();
    wait_until("the emptied container is reaped", REAP_DEADLINE, || async {
        c.exists("/box").await.unwrap().is_none()
    })
    .await;

    assert!(
        c.exists("/never").await.unwrap().is_some(),
        "a container that never had children must stay"
    );
    assert!(c.exists("/full").await.unwrap().is_some());
    assert!(c.exists("/full/item").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_nodes_go_when_unmodified_and_childless() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let ttl =
        |ms| CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_millis(ms));

    // The node with a child is created first: it is past its TTL whenever
    // the other one is.
    let (_, kept) = c.create_with("/kept", "", ttl(300)).await.unwrap();
    // ZooKeeper hides its TTL marker from clients: the owner is 0.
    assert_eq!(kept.ephemeral_owner, 0);
    c.create("/kept/child", "", CreateMode::Persistent)
        .await
        .unwrap();
    let (path, _) = c.create_with("/t", "x", ttl(300)).await.unwrap();
    assert_eq!(path, "/t");
    assert_eq!(c.get_data("/t").await.unwrap().0, b"x");

    wait_until("the TTL node is reaped", REAP_DEADLINE, || async {
        c.exists("/t").await.unwrap().is_none()
    })
    .await;
    assert!(
        c.exists("/kept").await.unwrap().is_some(),
        "a TTL node with a child must stay"
    );

    // A TTL without a TTL mode, or a TTL mode without a TTL, is refused.
    let err = c
        .create_with(
            "/bad",
            "",
            CreateOptions::new(CreateMode::Persistent).with_ttl(Duration::from_millis(5)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadArguments);
    let mut raw = Raw::session(&server.addr(), 10_000).await.0;
    let r = raw
        .call(ReqOp::Create(pb::Create {
            path: "/bad".into(),
            data: vec![],
            mode: pb::CreateMode::PersistentWithTtl as i32,
            ttl_ms: 0,
            acl: vec![],
            null_data: false,
        }))
        .await;
    assert_eq!(code_of(&r), ErrorCode::BadArguments);
}

// ----- errors and versions -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_follow_zookeeper() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;

    // NoChildrenForEphemerals
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    for mode in [CreateMode::Persistent, CreateMode::EphemeralSequential] {
        let err = c.create("/eph/child", "", mode).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoChildrenForEphemerals, "{mode:?}");
    }

    // NodeExists
    c.create("/a", "1", CreateMode::Persistent).await.unwrap();
    let err = c
        .create("/a", "2", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NodeExists);
    assert_eq!(err.to_string(), "NodeExists: /a");
    assert_eq!(c.get_data("/a").await.unwrap().0, b"1");

    // NoNode
    let err = c.get_data("/missing").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoNode);
    assert_eq!(err.to_string(), "NoNode: /missing");
    assert_eq!(
        c.set_data("/missing", "x", None).await.unwrap_err().code(),
        ErrorCode::NoNode
    );
    assert_eq!(
        c.delete("/missing", None).await.unwrap_err().code(),
        ErrorCode::NoNode
    );
    assert_eq!(
        c.get_children("/missing").await.unwrap_err().code(),
        ErrorCode::NoNode
    );
    assert_eq!(
        c.get_acl("/missing").await.unwrap_err().code(),
        ErrorCode::NoNode
    );
    assert_eq!(c.exists("/missing").await.unwrap(), None);
    for mode in [
        CreateMode::Persistent,
        CreateMode::Ephemeral,
        CreateMode::PersistentSequential,
    ] {
        let err = c.create("/missing/child", "", mode).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoNode, "{mode:?}");
    }

    // NotEmpty
    c.create("/a/b", "", CreateMode::Persistent).await.unwrap();
    let err = c.delete("/a", None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotEmpty);
    assert!(c.exists("/a").await.unwrap().is_some());
    c.delete("/a/b", None).await.unwrap();
    c.delete("/a", None).await.unwrap();
    assert_eq!(c.exists("/a").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_set_and_delete() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.create("/v", "0", CreateMode::Persistent).await.unwrap();

    let err = c.set_data("/v", "x", Some(1)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadVersion);
    assert_eq!(c.get_data("/v").await.unwrap().0, b"0");

    let s = c.set_data("/v", "1", Some(0)).await.unwrap();
    assert_eq!(s.version, 1);
    let s = c.set_data("/v", "2", Some(-1)).await.unwrap();
    assert_eq!(s.version, 2);
    let s = c.set_data("/v", "3", None).await.unwrap();
    assert_eq!(s.version, 3);
    let err = c.set_data("/v", "x", Some(2)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadVersion);
    let (data, stat) = c.get_data("/v").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"3"[..], 3));

    let err = c.delete("/v", Some(2)).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadVersion);
    assert!(c.exists("/v").await.unwrap().is_some());
    c.delete("/v", Some(3)).await.unwrap();
    assert_eq!(c.exists("/v").await.unwrap(), None);

    // -1 deletes whatever the version.
    c.create("/w", "", CreateMode::Persistent).await.unwrap();
    c.set_data("/w", "a", None).await.unwrap();
    c.delete("/w", Some(-1)).await.unwrap();
    c.create("/w", "", CreateMode::Persistent).await.unwrap();
    c.delete("/w", None).await.unwrap();
    assert_eq!(c.exists("/w").await.unwrap(), None);
}

// ----- stat ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_fields_track_every_kind_of_change() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let t0 = now_ms();

    // create
    let (_, s1) = c
        .create_with("/s", "abc", CreateOptions::new(CreateMode::Persistent))
        .await
        .unwrap();
    let z1 = s1.czxid;
    assert!(z1 > 0);
    assert_eq!((s1.mzxid, s1.pzxid), (z1, z1));
    assert_eq!(s1.ctime, s1.mtime);
    assert!(
        (s1.ctime - t0).abs() < 60_000,
        "ctime {} is not now",
        s1.ctime
    );
    assert_eq!((s1.version, s1.cversion, s1.aversion), (0, 0, 0));
    assert_eq!(s1.ephemeral_owner, 0);
    assert_eq!((s1.data_length, s1.num_children), (3, 0));
    assert_eq!(c.exists("/s").await.unwrap(), Some(s1));
    assert_eq!(c.get_data("/s").await.unwrap(), (b"abc".to_vec(), s1));

    // set: mzxid, mtime, version and length change; nothing else does
    let s2 = c.set_data("/s", "hello", None).await.unwrap();
    let z2 = s2.mzxid;
    assert!(z2 > z1);
    assert_eq!(
        s2,
        Stat {
            mzxid: z2,
            mtime: s2.mtime,
            version: 1,
            data_length: 5,
            ..s1
        }
    );
    assert!(s2.mtime >= s1.mtime);

    // child create: the parent's cversion, pzxid and numChildren change;
    // its mzxid and version do not
    let (_, child) = c
        .create_with("/s/c", "", CreateOptions::new(CreateMode::Persistent))
        .await
        .unwrap();
    let z3 = child.czxid;
    assert!(z3 > z2);
    let s3 = c.exists("/s").await.unwrap().unwrap();
    assert_eq!(
        s3,
        Stat {
            cversion: 1,
            pzxid: z3,
            num_children: 1,
            ..s2
        }
    );

    // child delete: pzxid and numChildren change; mzxid and version do not
    c.delete("/s/c", None).await.unwrap();
    let z4 = c.last_zxid();
    assert!(z4 > z3);
    let s4 = c.exists("/s").await.unwrap().unwrap();
    assert_eq!(s4.pzxid, z4);
    assert_eq!(s4.num_children, 0);
    assert_eq!((s4.czxid, s4.mzxid, s4.version), (z1, z2, 1));
    assert_eq!(
        (s4.ctime, s4.mtime, s4.data_length),
        (s1.ctime, s2.mtime, 5)
    );
    // (the cversion after a delete: see sequential_numbering_after_delete_matches_zookeeper)

    // acl: only aversion changes
    let s5 = c.set_acl("/s", Acl::open_unsafe(), Some(0)).await.unwrap();
    assert_eq!(s5, Stat { aversion: 1, ..s4 });

    // a second set: zxids keep rising
    let s6 = c.set_data("/s", "", Some(1)).await.unwrap();
    assert!(s6.mzxid > z4);
    assert_eq!((s6.version, s6.data_length), (2, 0));

    // get_children2 reports the same stat
    let (children, s7) = c.get_children2("/s").await.unwrap();
    assert!(children.is_empty());
    assert_eq!(s7, s6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zxids_strictly_increase_across_writes() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let mut zxids = Vec::new();
    for i in 0..10 {
        let path = format!("/z{i}");
        let (_, s) = c
            .create_with(&path, "", CreateOptions::new(CreateMode::Persistent))
            .await
            .unwrap();
        zxids.push(s.czxid);
        zxids.push(c.set_data(&path, "x", None).await.unwrap().mzxid);
        c.delete(&path, None).await.unwrap();
        zxids.push(c.last_zxid());
    }
    for w in zxids.windows(2) {
        assert!(w[0] < w[1], "zxids not strictly increasing: {zxids:?}");
    }
}

// ----- validation ----------------------------------------------------------

const BAD_PATHS: &[&str] = &[
    "", "a", "a/b", "/a/", "//", "/a//b", "/.", "/a/./b", "/a/..", "/a/../b", "/a\u{0}",
    "/a\u{1}b", "/a\u{7f}",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_are_refused_by_the_client() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.create("/a", "", CreateMode::Persistent).await.unwrap();
    for &p in BAD_PATHS {
        let codes = [
            c.create(p, "", CreateMode::Persistent).await.map(drop),
            c.get_data(p).await.map(drop),
            c.set_data(p, "", None).await.map(drop),
            c.delete(p, None).await.map(drop),
            c.exists(p).await.map(drop),
            c.get_children(p).await.map(drop),
            c.get_acl(p).await.map(drop),
        ];
        for (i, r) in codes.into_iter().enumerate() {
            assert_eq!(
                r.unwrap_err().code(),
                ErrorCode::BadArguments,
                "op #{i} on {p:?}"
            );
        }
        let err = c
            .multi([Op::create(p, "", CreateMode::Persistent)])
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadArguments, "multi on {p:?}");
    }
    // Nothing was created along the way.
    assert_eq!(c.get_children("/").await.unwrap(), vec!["a", "zookeeper"]);
    assert_eq!(c.get_children("/a").await.unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_are_refused_by_the_server() {
    let server = InProcServer::start();
    let mut raw = Raw::session(&server.addr(), 10_000).await.0;
    let r = raw.call(raw_create("/a", vec![])).await;
    assert_eq!(code_of(&r), ErrorCode::Ok);
    for &p in BAD_PATHS {
        let ops = [
            raw_create(p, vec![]),
            ReqOp::Create(pb::Create {
                path: p.into(),
                data: vec![],
                mode: pb::CreateMode::Ephemeral as i32,
                ttl_ms: 0,
                acl: vec![],
                null_data: false,
            }),
            ReqOp::GetData(pb::GetData {
                path: p.into(),
                watch: false,
            }),
            ReqOp::SetData(pb::SetData {
                path: p.into(),
                data: vec![],
                version: None,
                null_data: false,
            }),
            ReqOp::Delete(pb::Delete {
                path: p.into(),
                version: None,
            }),
            ReqOp::Exists(pb::Exists {
                path: p.into(),
                watch: true,
            }),
            ReqOp::GetChildren(pb::GetChildren {
                path: p.into(),
                watch: false,
            }),
            ReqOp::GetAcl(pb::GetAcl { path: p.into() }),
            ReqOp::SetAcl(pb::SetAcl {
                path: p.into(),
                acl: vec![pb::Acl {
                    perms: 31,
                    scheme: "world".into(),
                    id: "anyone".into(),
                }],
                version: None,
            }),
            ReqOp::Multi(pb::Multi {
                ops: vec![pb::Op {
                    op: Some(pb::op::Op::Create(pb::Create {
                        path: p.into(),
                        data: vec![],
                        mode: pb::CreateMode::Persistent as i32,
                        ttl_ms: 0,
                        acl: vec![],
                        null_data: false,
                    })),
                }],
            }),
        ];
        for op in ops {
            let what = format!("{op:?}");
            let r = raw.call(op).await;
            assert_eq!(code_of(&r), ErrorCode::BadArguments, "{what}");
        }
    }
    // The session is still usable and nothing was created.
    let r = raw
        .call(ReqOp::GetChildren(pb::GetChildren {
            path: "/".into(),
            watch: false,
        }))
        .await;
    match r.result {
        Some(pb::response::Result::Children(ch)) => {
            assert_eq!(ch.children, vec!["a", "zookeeper"])
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_is_limited_to_one_mebibyte() {
    const MIB: usize = 1024 * 1024;
    let server = InProcServer::start();
    let mut raw = Raw::session(&server.addr(), 10_000).await.0;

    let r = raw.call(raw_create("/big", vec![7; MIB + 1])).await;
    assert_eq!(code_of(&r), ErrorCode::BadArguments, "{}", r.message);
    let r = raw.call(raw_create("/big", vec![7; MIB])).await;
    assert_eq!(code_of(&r), ErrorCode::Ok, "{}", r.message);

    let r = raw
        .call(ReqOp::SetData(pb::SetData {
            path: "/big".into(),
            data: vec![8; MIB + 1],
            version: None,
            null_data: false,
        }))
        .await;
    assert_eq!(code_of(&r), ErrorCode::BadArguments, "{}", r.message);
    let r = raw
        .call(ReqOp::Multi(pb::Multi {
            ops: vec![pb::Op {
                op: Some(pb::op::Op::SetData(pb::SetData {
                    path: "/big".into(),
                    data: vec![8; MIB + 1],
                    version: None,
                    null_data: false,
                })),
            }],
        }))
        .await;
    assert_ne!(
        code_of(&r),
        ErrorCode::Ok,
        "an oversized set inside a multi"
    );

    // The accepted node is intact, and exactly 1 MiB can be set too.
    let c = connect(&server.addr(), Default::default()).await;
    let (data, stat) = c.get_data("/big").await.unwrap();
    assert_eq!(data.len(), MIB);
    assert!(data.iter().all(|&b| b == 7));
    assert_eq!((stat.version, stat.data_length), (0, MIB as i32));
    let stat = c.set_data("/big", vec![9; MIB], None).await.unwrap();
    assert_eq!((stat.version, stat.data_length), (1, MIB as i32));
}

// ----- multi ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_multi_applies_nothing() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.create("/m", "v0", CreateMode::Persistent).await.unwrap();
    let before = c.exists("/m").await.unwrap().unwrap();

    let err = c
        .multi([
            Op::create("/m/a", "", CreateMode::Persistent),
            Op::set_data("/m", "changed", None),
            Op::check("/m", Some(5)),
            Op::create("/m/b", "", CreateMode::Persistent),
        ])
        .await
        .unwrap_err();
    match &err {
        MultiError::OpFailed {
            index, code, codes, ..
        } => {
            assert_eq!(*index, 2);
            assert_eq!(*code, ErrorCode::BadVersion);
            assert_eq!(
                codes,
                &vec![
                    ErrorCode::Ok,
                    ErrorCode::Ok,
                    ErrorCode::BadVersion,
                    ErrorCode::RuntimeInconsistency
                ]
            );
        }
        other => panic!("expected OpFailed, got {other:?}"),
    }
    assert_eq!(err.code(), ErrorCode::BadVersion);
    assert_eq!(err.failed_index(), Some(2));
    assert_eq!(c.exists("/m/a").await.unwrap(), None);
    assert_eq!(c.exists("/m/b").await.unwrap(), None);
    assert_eq!(c.get_data("/m").await.unwrap(), (b"v0".to_vec(), before));

    // A failure in the middle from a missing node, and the same on the wire.
    let err = c
        .multi([
            Op::create("/m/x", "", CreateMode::Persistent),
            Op::delete("/nope", None),
            Op::check("/m", None),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.failed_index(), Some(1));
    assert_eq!(err.code(), ErrorCode::NoNode);
    assert_eq!(c.exists("/m/x").await.unwrap(), None);

    let mut raw = Raw::session(&server.addr(), 10_000).await.0;
    let r = raw
        .call(ReqOp::Multi(pb::Multi {
            ops: vec![
                pb::Op {
                    op: Some(pb::op::Op::Create(pb::Create {
                        path: "/m/y".into(),
                        data: vec![],
                        mode: pb::CreateMode::Persistent as i32,
                        ttl_ms: 0,
                        acl: vec![],
                        null_data: false,
                    })),
                },
                pb::Op {
                    op: Some(pb::op::Op::Check(pb::Check {
                        path: "/m".into(),
                        version: Some(9),
                    })),
                },
                pb::Op {
                    op: Some(pb::op::Op::Delete(pb::Delete {
                        path: "/m".into(),
                        version: None,
                    })),
                },
            ],
        }))
        .await;
    let results = match r.result {
        Some(pb::response::Result::Multi(m)) => m.results,
        other => panic!(
            "a failed multi still reports every op: {other:?} ({})",
            r.error
        ),
    };
    let codes: Vec<ErrorCode> = results
        .iter()
        .map(|r| ErrorCode::from_i32(r.error))
        .collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::Ok,
            ErrorCode::BadVersion,
            ErrorCode::RuntimeInconsistency
        ]
    );
    assert_eq!(c.exists("/m/y").await.unwrap(), None);
    assert!(c.exists("/m").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_multi_reports_each_op() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.create("/m", "", CreateMode::Persistent).await.unwrap();
    c.create("/m/old", "", CreateMode::Persistent)
        .await
        .unwrap();
    c.create("/m/data", "a", CreateMode::Persistent)
        .await
        .unwrap();

    let results = c
        .multi([
            Op::check("/m/data", Some(0)),
            Op::create("/m/q-", "1", CreateMode::PersistentSequential),
            Op::create("/m/q-", "2", CreateMode::PersistentSequential),
            Op::set_data("/m/data", "b", Some(0)),
            Op::delete("/m/old", Some(0)),
            Op::create("/m/plain", "", CreateMode::Persistent),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(results[0], OpResult::Check);
    // /m's cversion was 2 (old, data), then 3 after the first create.
    match (&results[1], &results[2]) {
        (OpResult::Create { path: p1, .. }, OpResult::Create { path: p2, .. }) => {
            assert_eq!(p1, "/m/q-0000000002");
            assert_eq!(p2, "/m/q-0000000003");
        }
        other => panic!("unexpected {other:?}"),
    }
    let set_stat = match &results[3] {
        OpResult::SetData { stat } => *stat,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(set_stat.version, 1);
    assert_eq!(results[4], OpResult::Delete);
    assert!(matches!(&results[5], OpResult::Create { path, .. } if path == "/m/plain"));

    // All applied, in one txn (one zxid for every change).
    let (data, stat) = c.get_data("/m/data").await.unwrap();
    assert_eq!(data, b"b");
    assert_eq!(stat, set_stat);
    let q2 = c.exists("/m/q-0000000002").await.unwrap().unwrap();
    let q3 = c.exists("/m/q-0000000003").await.unwrap().unwrap();
    let plain = c.exists("/m/plain").await.unwrap().unwrap();
    assert_eq!(q2.czxid, stat.mzxid);
    assert_eq!(q3.czxid, stat.mzxid);
    assert_eq!(plain.czxid, stat.mzxid);
    assert_eq!(c.get_data("/m/q-0000000003").await.unwrap().0, b"2");
    assert_eq!(c.exists("/m/old").await.unwrap(), None);
    let mut children = c.get_children("/m").await.unwrap();
    children.sort();
    assert_eq!(
        children,
        vec!["data", "plain", "q-0000000002", "q-0000000003"]
    );

    // An empty multi succeeds with no results.
    assert_eq!(c.multi(Vec::new()).await.unwrap(), vec![]);
}

// ----- smaller reads -------------------------------------------------------

/// The number of descendants of `path`, found with get_children.
async fn count_by_walking(c: &warden_client::Client, path: &str) -> u64 {
    let mut count = 0;
    let mut todo = vec![path.to_string()];
    while let Some(p) = todo.pop() {
        for child in c.get_children(&p).await.unwrap() {
            count += 1;
            todo.push(warden_client::path::join(&p, &child));
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_children_count_and_ephemerals() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    let other = connect(&server.addr(), Default::default()).await;

    let base = c.get_all_children_number("/").await.unwrap();
    assert_eq!(base, count_by_walking(&c, "/").await, "the genesis tree");

    // sync: a write by another session is visible after it.
    other
        .create("/s", "x", CreateMode::Persistent)
        .await
        .unwrap();
    c.sync("/s").await.unwrap();
    c.sync("/").await.unwrap();
    assert_eq!(c.get_data("/s").await.unwrap().0, b"x");

    // get_all_children_number counts every descendant, not the node.
    c.create("/t", "", CreateMode::Persistent).await.unwrap();
    assert_eq!(c.get_all_children_number("/t").await.unwrap(), 0);
    for p in ["/t/a", "/t/a/1", "/t/a/2", "/t/b", "/t/b/1"] {
        c.create(p, "", CreateMode::Persistent).await.unwrap();
    }
    assert_eq!(c.get_all_children_number("/t").await.unwrap(), 5);
    assert_eq!(c.get_all_children_number("/t/a").await.unwrap(), 2);
    assert_eq!(c.get_all_children_number("/t/a/1").await.unwrap(), 0);
    // "/" counts everything but itself: now also /s, /t and its 5.
    assert_eq!(c.get_all_children_number("/").await.unwrap(), base + 7);
    assert_eq!(base + 7, count_by_walking(&c, "/").await);
    assert_eq!(
        c.get_all_children_number("/missing")
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NoNode
    );

    // get_ephemerals: this session's only, filtered by prefix.
    c.create("/t/a/e1", "", CreateMode::Ephemeral)
        .await
        .unwrap();
    c.create("/t/b/e2", "", CreateMode::Ephemeral)
        .await
        .unwrap();
    let seq = c
        .create("/t/es-", "", CreateMode::EphemeralSequential)
        .await
        .unwrap();
    other
        .create("/t/a/theirs", "", CreateMode::Ephemeral)
        .await
        .unwrap();
    let mut mine = c.get_ephemerals("/").await.unwrap();
    mine.sort();
    let mut want = vec!["/t/a/e1".to_string(), "/t/b/e2".to_string(), seq.clone()];
    want.sort();
    assert_eq!(mine, want);
    assert_eq!(c.get_ephemerals("/t/a").await.unwrap(), vec!["/t/a/e1"]);
    assert_eq!(
        other.get_ephemerals("/").await.unwrap(),
        vec!["/t/a/theirs"]
    );
    assert!(c.get_ephemerals("/s").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_stored_and_versioned() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.add_auth("digest", "bob:secret").await.unwrap();
    c.create("/acl", "", CreateMode::Persistent).await.unwrap();
    let (acl, stat) = c.get_acl("/acl").await.unwrap();
    assert_eq!(acl, Acl::open_unsafe());
    assert_eq!(stat.aversion, 0);

    let custom = vec![
        Acl {
            perms: Acl::READ,
            scheme: "world".into(),
            id: "anyone".into(),
        },
        Acl {
            perms: Acl::ALL,
            scheme: "digest".into(),
            id: warden_server::digest("bob:secret"),
        },
    ];
    let s = c.set_acl("/acl", custom.clone(), Some(0)).await.unwrap();
    assert_eq!(s.aversion, 1);
    assert_eq!(s.version, 0, "set_acl does not touch the data version");
    assert_eq!(s.mzxid, stat.mzxid, "set_acl does not touch mzxid");
    let (acl, s2) = c.get_acl("/acl").await.unwrap();
    assert_eq!(acl, custom);
    assert_eq!(s2, s);

    let err = c
        .set_acl("/acl", Acl::open_unsafe(), Some(0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadVersion);
    let s3 = c.set_acl("/acl", Acl::open_unsafe(), None).await.unwrap();
    assert_eq!(s3.aversion, 2);
    let s4 = c
        .set_acl("/acl", Acl::open_unsafe(), Some(-1))
        .await
        .unwrap();
    assert_eq!(s4.aversion, 3);
    assert_eq!(
        c.set_acl("/missing", Acl::open_unsafe(), None)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NoNode
    );

    // An ACL given at create time is stored as given.
    let (_, st) = c
        .create_with(
            "/acl2",
            "",
            CreateOptions::new(CreateMode::Persistent).with_acl(custom.clone()),
        )
        .await
        .unwrap();
    assert_eq!(st.aversion, 0);
    assert_eq!(c.get_acl("/acl2").await.unwrap().0, custom);
}

// ----- pipelining ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_pipelined_creates_all_succeed() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    c.create("/pipe", "", CreateMode::Persistent).await.unwrap();
    let futures = (0..200).map(|i| {
        let c = c.clone();
        async move {
            c.create(
                &format!("/pipe/n{i:03}"),
                format!("{i}"),
                CreateMode::Persistent,
            )
            .await
        }
    });
    let results = join_all(futures).await;
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(p) => assert_eq!(p, &format!("/pipe/n{i:03}")),
            Err(e) => panic!("create #{i} failed: {e}"),
        }
    }
    // And sequential creates pipelined the same way get distinct, ordered numbers.
    let seqs =
        join_all((0..50).map(|_| c.create("/pipe/s-", "", CreateMode::PersistentSequential)))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
    for (i, p) in seqs.iter().enumerate() {
        assert_eq!(p, &format!("/pipe/s-{:010}", 200 + i));
    }
    let (children, stat) = c.get_children2("/pipe").await.unwrap();
    assert_eq!(children.len(), 250);
    assert_eq!(stat.num_children, 250);
    assert_eq!(c.get_data("/pipe/n199").await.unwrap().0, b"199");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sees_its_own_unanswered_writes() {
    let server = InProcServer::start();
    let c = connect(&server.addr(), Default::default()).await;
    // Issued back to back: the child's create is sent before the parent's
    // is answered, and must still find the parent.
    let parent = c.create("/p", "", CreateMode::Persistent);
    let child = c.create("/p/c", "", CreateMode::Persistent);
    let read = c.get_data("/p/c");
    let (parent, child, read) = tokio::join!(parent, child, read);
    assert_eq!(parent.unwrap(), "/p");
    assert_eq!(child.unwrap(), "/p/c");
    assert!(read.is_ok(), "{read:?}");

    // The same on the wire, with no waiting at all between the frames.
    let mut raw = Raw::session(&server.addr(), 10_000).await.0;
    let x1 = raw.send(raw_create("/r", vec![]));
    let x2 = raw.send(raw_create("/r/c", vec![]));
    let x3 = raw.send(ReqOp::Delete(pb::Delete {
        path: "/r/c".into(),
        version: None,
    }));
    let x4 = raw.send(ReqOp::Exists(pb::Exists {
        path: "/r/c".into(),
        watch: false,
    }));
    let x5 = raw.send(ReqOp::Create(pb::Create {
        path: "/r/e".into(),
        data: vec![],
        mode: pb::CreateMode::Ephemeral as i32,
        ttl_ms: 0,
        acl: vec![],
        null_data: false,
    }));
    let mut got = Vec::new();
    while got.len() < 5 {
        if let pb::server_frame::Frame::Response(r) = raw.recv().await {
            got.push(r);
        }
    }
    let xids: Vec<i64> = got.iter().map(|r| r.xid).collect();
    assert_eq!(xids, vec![x1, x2, x3, x4, x5], "answered in request order");
    for r in &got {
        assert_eq!(code_of(r), ErrorCode::Ok, "{r:?}");
    }
    match &got[3].result {
        Some(pb::response::Result::Exists(e)) => assert!(e.stat.is_none()),
        other => panic!("unexpected {other:?}"),
    }
    assert!(got[0].zxid < got[1].zxid && got[1].zxid < got[2].zxid);
    assert!(got[3].zxid >= got[2].zxid);
    match &got[4].result {
        Some(pb::response::Result::Create(c)) => {
            assert_eq!(c.path, "/r/e");
            assert_eq!(c.stat.unwrap().ephemeral_owner, raw.session_id);
        }
        other => panic!("unexpected {other:?}"),
    }
}
