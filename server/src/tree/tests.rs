use proptest::prelude::*;

use super::*;

fn txn(session_id: u64, time_ms: i64, op: Op) -> Txn {
    Txn {
        session_id,
        time_ms,
        op,
    }
}

/// A persistent node with `data` and the default ACL.
fn persistent(path: &str, data: &[u8]) -> Op {
    Op::Create {
        path: path.into(),
        data: data.to_vec(),
        acl: vec![],
        mode: CreateMode::Persistent,
        ttl_ms: 0,
    }
}

fn create(path: &str, mode: CreateMode) -> Op {
    Op::Create {
        path: path.into(),
        data: b"d".to_vec(),
        acl: vec![],
        mode,
        ttl_ms: if mode.is_ttl() { 1000 } else { 0 },
    }
}

struct T {
    tree: DataTree,
    zxid: i64,
}

impl T {
    fn new() -> Self {
        T {
            tree: DataTree::new(),
            zxid: 0,
        }
    }
    fn run(&mut self, session: u64, time: i64, op: Op) -> (Result<Outcome, TxnError>, Effects) {
        self.zxid += 1;
        let mut fx = Effects::default();
        let r = self.tree.apply(self.zxid, &txn(session, time, op), &mut fx);
        (r.result, fx)
    }
    fn ok(&mut self, op: Op) -> Outcome {
        self.run(0, 100, op).0.expect("op should succeed")
    }
    fn err(&mut self, session: u64, op: Op) -> Code {
        self.run(session, 100, op)
            .0
            .expect_err("op should fail")
            .error
            .code
    }
    fn open_session(&mut self, id: u64) {
        self.ok(Op::CreateSession {
            session_id: id,
            password: vec![1; 16],
            timeout_ms: 5000,
        });
    }
}

#[test]
fn create_sets_stat_and_parent() {
    let mut t = T::new();
    t.ok(create("/a", CreateMode::Persistent));
    let a = t.tree.node("/a").unwrap();
    assert_eq!(a.stat.czxid, 1);
    assert_eq!(a.stat.mzxid, 1);
    assert_eq!(a.stat.pzxid, 1);
    assert_eq!(a.stat.ctime, 100);
    assert_eq!(a.zk_stat().data_length, 1);
    t.ok(create("/a/b", CreateMode::Persistent));
    let a = t.tree.node("/a").unwrap();
    assert_eq!(a.stat.num_children, 1);
    assert_eq!(a.stat.cversion, 1);
    assert_eq!(a.stat.pzxid, 2);
    assert_eq!(
        a.stat.mzxid, 1,
        "a child does not change the parent's mzxid"
    );
    assert_eq!(
        t.err(0, create("/a", CreateMode::Persistent)),
        Code::NodeExists
    );
    assert_eq!(
        t.err(0, create("/x/y", CreateMode::Persistent)),
        Code::NoNode
    );
    assert_eq!(
        t.err(0, create("/", CreateMode::Persistent)),
        Code::NodeExists
    );
}

#[test]
fn sequential_suffix_is_parent_cversion_and_never_reused() {
    let mut t = T::new();
    t.ok(create("/q", CreateMode::Persistent));
    let p = |o: Outcome| match o {
        Outcome::Created { path, .. } => path,
        o => panic!("{o:?}"),
    };
    let a = p(t.ok(create("/q/n-", CreateMode::PersistentSequential)));
    assert_eq!(a, "/q/n-0000000000");
    let b = p(t.ok(create("/q/n-", CreateMode::PersistentSequential)));
    assert_eq!(b, "/q/n-0000000001");
    t.ok(Op::Delete {
        path: b,
        version: None,
    });
    assert_eq!(
        t.tree.node("/q").unwrap().stat.cversion,
        3,
        "a delete moves cversion"
    );
    let c = p(t.ok(create("/q/", CreateMode::PersistentSequential)));
    assert_eq!(c, "/q/0000000002");
}

#[test]
fn versions_and_not_empty() {
    let mut t = T::new();
    t.ok(create("/a", CreateMode::Persistent));
    t.ok(create("/a/b", CreateMode::Persistent));
    let set = |v| Op::SetData {
        path: "/a".into(),
        data: b"x".to_vec(),
        version: v,
    };
    assert_eq!(t.err(0, set(Some(3))), Code::BadVersion);
    match t.ok(set(Some(0))) {
        Outcome::Stat(s) => assert_eq!(s.version, 1),
        o => panic!("{o:?}"),
    }
    t.ok(set(None));
    t.ok(set(Some(-1)));
    assert_eq!(t.tree.node("/a").unwrap().stat.version, 3);
    let del = |v| Op::Delete {
        path: "/a".into(),
        version: v,
    };
    assert_eq!(t.err(0, del(None)), Code::NotEmpty);
    assert_eq!(
        t.err(
            0,
            Op::Delete {
                path: "/a/b".into(),
                version: Some(7)
            }
        ),
        Code::BadVersion
    );
    t.ok(Op::Delete {
        path: "/a/b".into(),
        version: Some(0),
    });
    assert_eq!(t.err(0, del(Some(0))), Code::BadVersion);
    t.ok(del(Some(3)));
    assert!(t.tree.node("/a").is_none());
    assert_eq!(t.err(0, del(None)), Code::NoNode);
}

#[test]
fn ephemerals_belong_to_sessions() {
    let mut t = T::new();
    assert_eq!(
        t.err(7, create("/e", CreateMode::Ephemeral)),
        Code::SessionExpired
    );
    t.open_session(7);
    t.ok(create("/p", CreateMode::Persistent));
    t.run(7, 100, create("/e", CreateMode::Ephemeral))
        .0
        .unwrap();
    t.run(7, 100, create("/p/e", CreateMode::EphemeralSequential))
        .0
        .unwrap();
    assert_eq!(t.tree.node("/e").unwrap().zk_stat().ephemeral_owner, 7);
    assert_eq!(
        t.err(7, create("/e/c", CreateMode::Persistent)),
        Code::NoChildrenForEphemerals
    );
    assert_eq!(t.tree.ephemerals_of(7).len(), 2);
    let (r, fx) = t.run(0, 100, Op::CloseSession { session_id: 7 });
    r.unwrap();
    assert!(t.tree.node("/e").is_none());
    assert!(t.tree.node("/p/e0000000000").is_none());
    assert_eq!(fx.sessions_closed, vec![7]);
    assert!(fx.events.contains(&(EventKind::Deleted, "/e".into())));
    assert!(fx
        .events
        .contains(&(EventKind::ChildrenChanged, "/p".into())));
    assert_eq!(
        t.err(0, Op::CloseSession { session_id: 7 }),
        Code::SessionExpired
    );
}

#[test]
fn containers_and_ttl_are_reaped_only_when_eligible() {
    let mut t = T::new();
    t.ok(create("/c", CreateMode::Container));
    t.ok(create("/t", CreateMode::PersistentWithTtl));
    assert_eq!(t.tree.node("/c").unwrap().zk_stat().ephemeral_owner, 0);
    assert_eq!(t.tree.node("/t").unwrap().zk_stat().ephemeral_owner, 0);
    // A fresh container (never had children) and a young TTL node stay.
    assert!(t.tree.reap_candidates(500).is_empty());
    t.ok(create("/c/x", CreateMode::Persistent));
    t.ok(Op::Delete {
        path: "/c/x".into(),
        version: None,
    });
    assert_eq!(t.tree.reap_candidates(500), vec!["/c".to_string()]);
    assert_eq!(
        t.tree.reap_candidates(2000),
        vec!["/c".to_string(), "/t".to_string()]
    );
    // Apply re-checks at the txn's time: /t was modified at 1500, so it stays.
    let _ = t.run(
        0,
        1500,
        Op::SetData {
            path: "/t".into(),
            data: vec![],
            version: None,
        },
    );
    let (r, _) = t.run(
        0,
        2000,
        Op::Reap {
            paths: vec!["/c".into(), "/t".into()],
        },
    );
    assert_eq!(r.unwrap(), Outcome::Reaped(vec!["/c".into()]));
    assert!(t.tree.node("/t").is_some());
}

#[test]
fn multi_is_all_or_nothing() {
    let mut t = T::new();
    t.ok(create("/a", CreateMode::Persistent));
    let before = t.tree.state_hash();
    let (r, fx) = t.run(
        0,
        100,
        Op::Multi(vec![
            create("/a/1", CreateMode::Persistent),
            Op::SetData {
                path: "/a".into(),
                data: b"zz".to_vec(),
                version: None,
            },
            Op::Check {
                path: "/a".into(),
                version: Some(0),
            },
            create("/b", CreateMode::Persistent),
        ]),
    );
    let e = r.unwrap_err();
    assert_eq!(e.error.code, Code::BadVersion);
    assert_eq!(
        e.multi,
        vec![
            Code::Ok,
            Code::Ok,
            Code::BadVersion,
            Code::RuntimeInconsistency
        ]
    );
    assert!(fx.events.is_empty());
    assert_eq!(t.tree.state_hash(), before);
    assert!(t.tree.node("/a/1").is_none());

    let (r, fx) = t.run(
        0,
        100,
        Op::Multi(vec![
            create("/a/1", CreateMode::Persistent),
            Op::Check {
                path: "/a/1".into(),
                version: Some(0),
            },
            Op::Delete {
                path: "/a/1".into(),
                version: None,
            },
        ]),
    );
    match r.unwrap() {
        Outcome::Multi(v) => assert_eq!(v.len(), 3),
        o => panic!("{o:?}"),
    }
    assert_eq!(fx.events.len(), 4);
}

#[test]
fn snapshot_round_trip_keeps_hash_and_indexes() {
    let mut t = T::new();
    t.open_session(9);
    t.run(9, 100, create("/e", CreateMode::Ephemeral))
        .0
        .unwrap();
    t.ok(create("/c", CreateMode::Container));
    let bytes = bincode::serialize(&t.tree).unwrap();
    let mut back: DataTree = bincode::deserialize(&bytes).unwrap();
    back.rebuild_indexes();
    assert_eq!(back.state_hash(), t.tree.state_hash());
    assert_eq!(back.ephemerals_of(9), vec!["/e".to_string()]);
}

#[test]
fn a_snapshot_from_before_null_data_reads_back_the_same() {
    let mut t = T::new();
    t.open_session(9);
    t.run(9, 100, create("/e", CreateMode::Ephemeral))
        .0
        .unwrap();
    t.ok(create("/a", CreateMode::Persistent));
    let old = bincode::serialize(&v1::from_current(&t.tree)).unwrap();
    let back: DataTree = bincode::deserialize::<v1::DataTree>(&old).unwrap().into();
    assert_eq!(back.state_hash(), t.tree.state_hash());
    assert_eq!(back.ephemerals_of(9), vec!["/e".to_string()]);
}

#[test]
fn null_data_is_kept_apart_from_empty_data() {
    let mut t = T::new();
    let null = |op: Op| Op::NullData(Box::new(op));
    let empty = |path: &str| persistent(path, b"");
    let set = |path: &str, data: &[u8]| Op::SetData {
        path: path.into(),
        data: data.to_vec(),
        version: None,
    };
    t.ok(empty("/e"));
    let before = t.tree.state_hash();
    t.ok(null(empty("/n")));
    assert!(t.tree.node("/n").unwrap().null);
    assert!(!t.tree.node("/e").unwrap().null);
    let mut twin = T::new();
    twin.ok(empty("/e"));
    assert_eq!(twin.tree.state_hash(), before);
    twin.ok(empty("/n"));
    assert_ne!(
        twin.tree.state_hash(),
        t.tree.state_hash(),
        "null hashes apart"
    );
    // setData with data clears it; with null data sets it.
    t.ok(set("/n", b"x"));
    assert!(!t.tree.node("/n").unwrap().null);
    t.ok(null(set("/e", b"")));
    assert!(t.tree.node("/e").unwrap().null);
    // A failed multi puts the flag back.
    let multi = Op::Multi(vec![
        null(set("/n", b"")),
        Op::Check {
            path: "/missing".into(),
            version: None,
        },
    ]);
    assert_eq!(t.err(0, multi), Code::NoNode);
    assert!(!t.tree.node("/n").unwrap().null);
    // Null data must come with no data, around a create or setData only.
    assert_eq!(t.err(0, null(set("/n", b"x"))), Code::BadArguments);
    assert_eq!(
        t.err(
            0,
            null(Op::Delete {
                path: "/n".into(),
                version: None
            })
        ),
        Code::BadArguments
    );
    // Snapshots keep it.
    let bytes = bincode::serialize(&t.tree).unwrap();
    let back: DataTree = bincode::deserialize(&bytes).unwrap();
    assert!(back.node("/e").unwrap().null);
    assert_eq!(back.state_hash(), t.tree.state_hash());
}

fn arb_path() -> impl Strategy<Value = String> {
    // Names that sort just before and after '/' too: children are listed
    // by walking the path map past each other's subtrees.
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "a-b", "a.c", "a0"]),
        1..4,
    )
    .prop_map(|segs| format!("/{}", segs.join("/")))
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (arb_path(), 0..3usize).prop_map(|(p, m)| create(
            &p,
            [
                CreateMode::Persistent,
                CreateMode::Ephemeral,
                CreateMode::PersistentSequential
            ][m]
        )),
        (arb_path(), prop::option::of(0..3i32))
            .prop_map(|(path, version)| Op::Delete { path, version }),
        (arb_path(), prop::option::of(0..3i32)).prop_map(|(path, version)| Op::SetData {
            path,
            data: vec![1],
            version
        }),
        (arb_path(), prop::option::of(0..3i32))
            .prop_map(|(path, version)| Op::Check { path, version }),
    ]
}

proptest! {
    /// Any sequence of ops and multis: a failed multi leaves the hash as it
    /// was, stats stay consistent, and replaying the same log gives the same hash.
    #[test]
    fn apply_is_deterministic_and_multi_atomic(
        steps in prop::collection::vec(prop_oneof![
            arb_op().prop_map(|o| vec![o]),
            prop::collection::vec(arb_op(), 1..5),
        ], 1..40)
    ) {
        let mut t = T::new();
        t.open_session(1);
        let mut log = Vec::new();
        for ops in steps {
            let op = if ops.len() == 1 { ops.into_iter().next().unwrap() } else { Op::Multi(ops) };
            let before = t.tree.state_hash();
            let (r, _) = t.run(1, 5, op.clone());
            log.push(op);
            if r.is_err() {
                prop_assert_eq!(t.tree.state_hash(), before);
            }
            for (path, n) in &t.tree.nodes {
                let children = t.tree.children(path).unwrap();
                prop_assert_eq!(n.stat.num_children as usize, children.len());
                // Counted independently: nodes whose parent is `path`.
                let direct: Vec<String> = t.tree.nodes.keys()
                    .filter(|k| path::parent(k) == Some(path.as_str()) && k.as_str() != "/")
                    .map(|k| k.rsplit('/').next().unwrap_or_default().to_string())
                    .collect();
                prop_assert_eq!(&children, &direct);
                prop_assert_eq!(n.zk_stat().data_length as usize, n.data.len());
                for c in &children {
                    prop_assert!(t.tree.nodes.contains_key(warden_proto::path::join(path, c).as_str()));
                }
            }
        }
        let mut replay = T::new();
        replay.open_session(1);
        for op in log {
            let _ = replay.run(1, 5, op);
        }
        prop_assert_eq!(replay.tree.state_hash(), t.tree.state_hash());
    }
}

#[test]
fn quotas_count_what_a_subtree_holds_and_hard_limits_refuse_when_enforced() {
    let mut t = T::new();
    let mk = persistent;
    let enforced = |op: Op| {
        Op::EnforceQuota(Box::new(Op::Authorized {
            auth: vec![],
            op: Box::new(op),
        }))
    };
    let stats = |t: &T| {
        let n = t.tree.node("/zookeeper/quota/a/zookeeper_stats").unwrap();
        String::from_utf8(n.data.to_vec()).unwrap()
    };
    t.ok(mk("/a", b"12345"));
    t.ok(mk("/a/x", b"1"));
    t.ok(mk("/zookeeper/quota/a", b""));
    t.ok(mk(
        "/zookeeper/quota/a/zookeeper_limits",
        b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=4",
    ));
    // The client writes zeros; the tree counts what is there (/a, /a/x).
    t.ok(mk("/zookeeper/quota/a/zookeeper_stats", b"count=0,bytes=0"));
    assert_eq!(stats(&t), "count=2,bytes=6");
    let version = t
        .tree
        .node("/zookeeper/quota/a/zookeeper_stats")
        .unwrap()
        .stat
        .version;
    t.ok(enforced(mk("/a/y", b"12")));
    assert_eq!(stats(&t), "count=3,bytes=8");
    assert_eq!(
        t.tree
            .node("/zookeeper/quota/a/zookeeper_stats")
            .unwrap()
            .stat
            .version,
        version,
        "stats change without a new version"
    );
    // Bytes: 8 + 3 > 10.
    let set = |path: &str, data: &[u8]| Op::SetData {
        path: path.into(),
        data: data.to_vec(),
        version: None,
    };
    assert_eq!(
        t.err(0, enforced(set("/a/y", b"12345"))),
        Code::QuotaExceeded
    );
    t.ok(enforced(set("/a/y", b"1234")));
    assert_eq!(stats(&t), "count=3,bytes=10");
    // Count: a fourth fits, a fifth does not; not enforced, it does.
    t.ok(enforced(mk("/a/z", b"")));
    assert_eq!(t.err(0, enforced(mk("/a/w", b""))), Code::QuotaExceeded);
    assert!(t.tree.node("/a/w").is_none());
    t.ok(mk("/a/w", b""));
    assert_eq!(stats(&t), "count=5,bytes=10");
    // Outside the subtree nothing is charged.
    t.ok(enforced(mk("/ab", b"123456789012")));
    assert_eq!(stats(&t), "count=5,bytes=10");
    // A failed multi leaves the stats as they were.
    let multi = Op::Multi(vec![
        Op::Delete {
            path: "/a/w".into(),
            version: None,
        },
        Op::Check {
            path: "/missing".into(),
            version: None,
        },
    ]);
    assert_eq!(t.err(0, multi), Code::NoNode);
    assert_eq!(stats(&t), "count=5,bytes=10");
    t.ok(Op::Delete {
        path: "/a/w".into(),
        version: None,
    });
    assert_eq!(stats(&t), "count=4,bytes=10");
    // A snapshot keeps the quota.
    let bytes = bincode::serialize(&t.tree).unwrap();
    let mut back: DataTree = bincode::deserialize(&bytes).unwrap();
    back.rebuild_indexes();
    assert_eq!(back.quota_of("/a/y").as_deref(), Some("/a"));
    // Without the limits node there is no quota.
    t.ok(Op::Delete {
        path: "/zookeeper/quota/a/zookeeper_limits".into(),
        version: None,
    });
    t.ok(enforced(mk("/a/v", b"123456789")));
    assert_eq!(stats(&t), "count=4,bytes=10");
}

#[test]
fn a_snapshot_from_before_quota_stats_is_recounted() {
    let mut t = T::new();
    let mk = persistent;
    t.ok(mk("/q", b"abc"));
    t.ok(mk("/q/x", b"de"));
    t.ok(mk("/zookeeper/quota/q", b""));
    t.ok(mk(
        "/zookeeper/quota/q/zookeeper_limits",
        b"count=10,bytes=-1",
    ));
    t.ok(mk("/zookeeper/quota/q/zookeeper_stats", b""));
    // As an older Warden left it: what the client wrote, never updated.
    let stats = "/zookeeper/quota/q/zookeeper_stats";
    t.tree.nodes.get_mut(stats).unwrap().data = b"count=0,bytes=0".to_vec().into();
    let old = bincode::serialize(&v1::from_current(&t.tree)).unwrap();
    let back: DataTree = bincode::deserialize::<v1::DataTree>(&old).unwrap().into();
    assert_eq!(&*back.node(stats).unwrap().data, b"count=2,bytes=5");
}

#[test]
fn a_snapshot_in_layout_2_reads_back_the_same() {
    let mut t = T::new();
    t.open_session(9);
    t.run(9, 100, create("/e", CreateMode::Ephemeral))
        .0
        .unwrap();
    t.ok(create("/a", CreateMode::Persistent));
    t.ok(create("/a/b", CreateMode::Persistent));
    t.ok(Op::NullData(Box::new(persistent("/n", b""))));
    let old = bincode::serialize(&v2::from_current(&t.tree)).unwrap();
    let back: DataTree = bincode::deserialize::<v2::DataTree>(&old).unwrap().into();
    assert_eq!(back.state_hash(), t.tree.state_hash());
    assert!(back.node("/n").unwrap().null);
    assert_eq!(back.children("/a").unwrap(), vec!["b".to_string()]);
    assert_eq!(back.ephemerals_of(9), vec!["/e".to_string()]);
}

#[test]
fn children_are_listed_in_byte_order_past_deeper_nodes() {
    let mut t = T::new();
    for p in [
        "/p", "/p/a", "/p/a/x", "/p/a/x/y", "/p/a-b", "/p/a.c", "/p/b", "/p/ab", "/q",
    ] {
        t.ok(create(p, CreateMode::Persistent));
    }
    assert_eq!(
        t.tree.children("/p").unwrap(),
        vec!["a", "a-b", "a.c", "ab", "b"]
    );
    assert_eq!(t.tree.children("/").unwrap(), vec!["p", "q", "zookeeper"]);
    assert_eq!(t.tree.children("/p/b").unwrap(), Vec::<String>::new());
    assert_eq!(t.tree.children("/missing"), None);
}

/// A snapshot read from a frozen tree while txns keep being applied
/// between its chunks is byte for byte the tree as it was at the freeze.
#[test]
fn a_frozen_tree_reads_as_it_was_at_the_freeze_while_txns_apply() {
    let mut t = T::new();
    t.open_session(7);
    for i in 0..40 {
        t.ok(persistent(&format!("/p{i:02}"), b"x"));
        t.run(
            7,
            100,
            create(&format!("/p{i:02}/e"), CreateMode::Ephemeral),
        )
        .0
        .unwrap();
    }
    for chunk in [1, 5, 64] {
        let before = t.tree.clone();
        let mut want = Vec::new();
        layout::encode(&before, &mut want).unwrap();
        let mut f = t.tree.freeze();
        let mut got = Vec::new();
        f.encode_head(&mut got);
        let mut round = 0;
        while t.tree.read_frozen(&mut f, chunk, &mut got).unwrap() > 0 {
            round += 1;
            assert!(
                round < 1000,
                "the reader reads what was written after the freeze"
            );
            let p = format!("/p{:02}", (round * 7) % 40);
            t.ok(Op::SetData {
                path: p.clone(),
                data: vec![round as u8; 3],
                version: None,
            });
            t.ok(persistent(&format!("{p}/new{round}-{chunk}"), b"n"));
            // The ephemeral may be gone already: a failed delete is fine.
            let _ = t.run(
                0,
                100,
                Op::Delete {
                    path: format!("/p{:02}/e", (round * 3) % 40),
                    version: None,
                },
            );
            t.ok(create("/p39/s-", CreateMode::PersistentSequential));
        }
        f.encode_tail(&mut got).unwrap();
        let (back, rest) = layout::decode(&got).unwrap();
        assert!(rest.is_empty());
        // Blocks are cut where the reads stopped; the nodes are the same.
        let mut again = Vec::new();
        layout::encode(&back, &mut again).unwrap();
        assert!(again == want, "chunk {chunk}: the nodes read differ");
        assert_eq!(back.state_hash(), before.state_hash());
        assert_ne!(t.tree.state_hash(), before.state_hash());
    }
}

/// A frozen view ended by a newer freeze is not read on: its reader gets
/// an error rather than a mix of two points in time.
#[test]
fn a_frozen_tree_superseded_by_a_newer_freeze_refuses_to_read() {
    let mut t = T::new();
    for i in 0..10 {
        t.ok(persistent(&format!("/n{i}"), b"x"));
    }
    let mut first = t.tree.freeze();
    let mut out = Vec::new();
    assert_eq!(t.tree.read_frozen(&mut first, 3, &mut out).unwrap(), 3);
    let mut second = t.tree.freeze();
    assert!(t.tree.read_frozen(&mut first, 3, &mut out).is_err());
    assert!(t.tree.read_frozen(&mut second, 100, &mut out).unwrap() > 0);
}
