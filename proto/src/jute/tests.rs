use proptest::prelude::*;

use super::wire::{Reader, Writer};
use super::*;

fn stat(n: i64) -> Stat {
    Stat {
        czxid: n,
        mzxid: n + 1,
        ctime: 3,
        mtime: 4,
        version: 5,
        cversion: 6,
        aversion: 7,
        ephemeral_owner: -8,
        data_length: 9,
        num_children: 10,
        pzxid: n + 2,
    }
}

#[test]
fn stat_is_68_bytes() {
    let mut w = Writer::new();
    stat(1).write(&mut w);
    assert_eq!(w.buf.len(), STAT_LEN);
    assert_eq!(Stat::read(&mut Reader::new(&w.buf)).unwrap(), stat(1));
}

#[test]
fn connect_request_with_and_without_read_only() {
    let mut c = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 10_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    let with = c.encode();
    assert_eq!(with.len(), 45);
    assert_eq!(&with[12..16], &10_000i32.to_be_bytes());
    assert_eq!(ConnectRequest::decode(&with).unwrap(), c);
    c.read_only = None;
    let without = c.encode();
    assert_eq!(without.len(), 44);
    assert_eq!(ConnectRequest::decode(&without).unwrap(), c);
    let mut extra = with.clone();
    extra.push(9);
    assert_eq!(
        ConnectRequest::decode(&extra),
        Err(DecodeError::TrailingBytes(1))
    );
    assert!(matches!(
        ConnectRequest::decode(&with[..20]),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn create_request_bytes_match_zookeeper_layout() {
    let req = Request::Create(CreateRequest {
        path: "/a".into(),
        data: Some(b"x".to_vec()),
        acl: vec![Acl {
            perms: 31,
            scheme: "world".into(),
            id: "anyone".into(),
        }],
        flags: 1,
        ttl: 0,
    });
    let body = encode_request(7, &req);
    let mut want = Vec::new();
    want.extend_from_slice(&7i32.to_be_bytes());
    want.extend_from_slice(&1i32.to_be_bytes());
    want.extend_from_slice(&2i32.to_be_bytes());
    want.extend_from_slice(b"/a");
    want.extend_from_slice(&1i32.to_be_bytes());
    want.extend_from_slice(b"x");
    want.extend_from_slice(&1i32.to_be_bytes());
    want.extend_from_slice(&31i32.to_be_bytes());
    want.extend_from_slice(&5i32.to_be_bytes());
    want.extend_from_slice(b"world");
    want.extend_from_slice(&6i32.to_be_bytes());
    want.extend_from_slice(b"anyone");
    want.extend_from_slice(&1i32.to_be_bytes());
    assert_eq!(body, want);
    assert_eq!(
        decode_request(&body).unwrap(),
        (RequestHeader { xid: 7, opcode: 1 }, req)
    );
}

#[test]
fn unknown_opcode_keeps_the_xid() {
    let mut w = Writer::new();
    w.int(42).int(999);
    assert_eq!(
        decode_request(&w.buf),
        Err(DecodeError::UnknownOpcode {
            xid: 42,
            opcode: 999
        })
    );
}

#[test]
fn multi_refuses_reads_and_nesting() {
    let bad = Request::Multi(vec![Request::GetData(PathWatch {
        path: "/a".into(),
        watch: false,
    })]);
    assert_eq!(
        decode_request(&encode_request(1, &bad)),
        Err(DecodeError::BadMultiOp {
            opcode: op::GET_DATA
        })
    );
    let nested = Request::Multi(vec![Request::Multi(vec![])]);
    assert!(decode_request(&encode_request(1, &nested)).is_err());
}

#[test]
fn replies_round_trip_by_opcode() {
    let cases = vec![
        (op::CREATE, Response::Create("/a".into())),
        (op::CREATE2, Response::Create2("/a".into(), stat(1))),
        (op::EXISTS, Response::Stat(stat(2))),
        (op::GET_DATA, Response::Data(Some(b"d".to_vec()), stat(3))),
        (op::GET_CHILDREN, Response::Children(vec!["a".into()])),
        (op::GET_CHILDREN2, Response::Children2(vec![], stat(4))),
        (op::SYNC, Response::Sync("/".into())),
        (
            op::MULTI,
            Response::Multi(vec![
                MultiResult::Create("/x".into()),
                MultiResult::Create2("/y".into(), stat(5)),
                MultiResult::Delete,
                MultiResult::SetData(stat(6)),
                MultiResult::Check,
                MultiResult::Error(-101),
            ]),
        ),
        (
            op::MULTI_READ,
            Response::Multi(vec![
                MultiResult::GetData(Some(vec![1]), stat(7)),
                MultiResult::GetChildren(vec!["c".into()]),
            ]),
        ),
        (op::GET_ALL_CHILDREN_NUMBER, Response::Count(3)),
        (
            op::WHO_AM_I,
            Response::WhoAmI(vec![ClientInfo {
                auth_scheme: "ip".into(),
                user: "127.0.0.1".into(),
            }]),
        ),
        (op::ADD_WATCH, Response::ErrorBody(0)),
        (op::DELETE, Response::Empty),
    ];
    for (opcode, body) in cases {
        let h = ReplyHeader {
            xid: 3,
            zxid: 9,
            err: 0,
        };
        let bytes = encode_reply(&h, &body);
        assert_eq!(
            decode_reply(&bytes, |_| opcode).unwrap(),
            Reply::Reply {
                header: h,
                body: Some(body)
            },
            "opcode {opcode}"
        );
    }
    let err = ReplyHeader {
        xid: 3,
        zxid: 9,
        err: -101,
    };
    let bytes = encode_reply(&err, &Response::Stat(stat(1)));
    assert_eq!(bytes.len(), 16, "an error reply has no body");
    let ev = WatcherEvent {
        event_type: 1,
        state: 3,
        path: "/w".into(),
    };
    assert_eq!(
        decode_reply(&encode_event(&ev), |_| unreachable!()).unwrap(),
        Reply::Event(ev)
    );
}

fn path() -> impl Strategy<Value = String> {
    "/[a-z0-9]{0,6}(/[a-z]{1,3}){0,2}"
}

fn acl() -> impl Strategy<Value = Acl> {
    (any::<i32>(), "[a-z]{0,6}", ".{0,8}").prop_map(|(perms, scheme, id)| Acl { perms, scheme, id })
}

fn create() -> impl Strategy<Value = CreateRequest> {
    (
        path(),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        prop::collection::vec(acl(), 0..3),
        any::<i32>(),
    )
        .prop_map(|(path, data, acl, flags)| CreateRequest {
            path,
            data,
            acl,
            flags,
            ttl: 0,
        })
}

fn path_watch() -> impl Strategy<Value = PathWatch> {
    (path(), any::<bool>()).prop_map(|(path, watch)| PathWatch { path, watch })
}

fn path_version() -> impl Strategy<Value = PathVersion> {
    (path(), any::<i32>()).prop_map(|(path, version)| PathVersion { path, version })
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(path(), 0..4)
}

fn write_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        create().prop_map(Request::Create),
        create().prop_map(Request::Create2),
        create().prop_map(Request::CreateContainer),
        (create(), any::<i64>()).prop_map(|(mut c, ttl)| {
            c.ttl = ttl;
            Request::CreateTtl(c)
        }),
        path_version().prop_map(Request::Delete),
        path_version().prop_map(Request::Check),
        (
            path(),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
            any::<i32>()
        )
            .prop_map(|(path, data, version)| Request::SetData(SetDataRequest {
                path,
                data,
                version
            })),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        write_op(),
        path_watch().prop_map(Request::Exists),
        path_watch().prop_map(Request::GetData),
        path_watch().prop_map(Request::GetChildren),
        path_watch().prop_map(Request::GetChildren2),
        path().prop_map(Request::GetAcl),
        path().prop_map(Request::Sync),
        path().prop_map(Request::GetEphemerals),
        path().prop_map(Request::GetAllChildrenNumber),
        (path(), prop::collection::vec(acl(), 0..3), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        Just(Request::Ping),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
        prop::collection::vec(write_op(), 0..4).prop_map(Request::Multi),
        prop::collection::vec(
            prop_oneof![
                path_watch().prop_map(Request::GetData),
                path_watch().prop_map(Request::GetChildren)
            ],
            0..4
        )
        .prop_map(Request::MultiRead),
        ("[a-z:,0-9]{0,10}", any::<i64>()).prop_map(|(s, id)| Request::Reconfig(ReconfigRequest {
            joining_servers: s.clone(),
            leaving_servers: String::new(),
            new_members: s,
            cur_config_id: id
        })),
        (path(), any::<i32>()).prop_map(|(path, watcher_type)| Request::CheckWatches(
            WatchesRequest { path, watcher_type }
        )),
        (path(), any::<i32>()).prop_map(|(path, watcher_type)| Request::RemoveWatches(
            WatchesRequest { path, watcher_type }
        )),
        (
            any::<i32>(),
            "[a-z]{0,8}",
            prop::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(auth_type, scheme, auth)| Request::Auth(AuthPacket {
                auth_type,
                scheme,
                auth
            })),
        (any::<i64>(), strings(), strings(), strings()).prop_map(|(z, d, e, c)| {
            Request::SetWatches(SetWatches {
                relative_zxid: z,
                data: d,
                exist: e,
                child: c,
            })
        }),
        (
            any::<i64>(),
            strings(),
            strings(),
            strings(),
            strings(),
            strings()
        )
            .prop_map(|(z, d, e, c, p, r)| Request::SetWatches2(SetWatches2 {
                relative_zxid: z,
                data: d,
                exist: e,
                child: c,
                persistent: p,
                persistent_recursive: r,
            })),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Request::Sasl),
        (path(), any::<i32>())
            .prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
    ]
}

proptest! {
    #[test]
    fn every_request_round_trips(xid in any::<i32>(), req in request()) {
        let body = encode_request(xid, &req);
        let (h, back) = decode_request(&body).unwrap();
        prop_assert_eq!(h, RequestHeader { xid, opcode: req.opcode() });
        prop_assert_eq!(back, req);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic(req in request(), cut in any::<prop::sample::Index>()) {
        let body = encode_request(1, &req);
        let at = cut.index(body.len());
        if at < body.len() {
            // A prefix may decode only if the cut fell where a shorter valid body ends.
            if let Ok((_, back)) = decode_request(&body[..at]) {
                prop_assert_eq!(encode_request(1, &back), body[..at].to_vec());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok((h, req)) = decode_request(&bytes) {
            let again = encode_request(h.xid, &req);
            prop_assert_eq!(decode_request(&again).unwrap(), (h, req));
        }
        let _ = ConnectRequest::decode(&bytes);
        let _ = split_frame(&bytes, DEFAULT_MAX_FRAME);
        let _ = decode_reply(&bytes, |_| op::MULTI);
    }
}
