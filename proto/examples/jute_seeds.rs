//! Writes one valid framed request per ZooKeeper opcode (and a connect
//! request with and without the readOnly byte) into a folder: the seed
//! corpus of the `jute_frame` fuzz target.
//!
//! `cargo run -p warden-proto --example jute_seeds -- fuzz/corpus/jute_frame`

use warden_proto::jute::*;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/jute_frame".into());
    std::fs::create_dir_all(&dir)?;
    let acl = vec![Acl {
        perms: 31,
        scheme: "world".into(),
        id: "anyone".into(),
    }];
    let create = CreateRequest {
        path: "/a".into(),
        data: Some(b"v".to_vec()),
        acl: acl.clone(),
        flags: 0,
        ttl: 0,
    };
    let pw = PathWatch {
        path: "/a".into(),
        watch: true,
    };
    let pv = PathVersion {
        path: "/a".into(),
        version: -1,
    };
    let reqs = vec![
        Request::Create(create.clone()),
        Request::Create2(CreateRequest {
            flags: 3,
            ..create.clone()
        }),
        Request::CreateContainer(CreateRequest {
            flags: 4,
            ..create.clone()
        }),
        Request::CreateTtl(CreateRequest {
            flags: 5,
            ttl: 1000,
            ..create.clone()
        }),
        Request::Delete(pv.clone()),
        Request::Exists(pw.clone()),
        Request::GetData(pw.clone()),
        Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: Some(b"w".to_vec()),
            version: 0,
        }),
        Request::GetAcl("/a".into()),
        Request::SetAcl(SetAclRequest {
            path: "/a".into(),
            acl,
            version: -1,
        }),
        Request::GetChildren(pw.clone()),
        Request::Sync("/".into()),
        Request::Ping,
        Request::GetChildren2(pw.clone()),
        Request::Check(pv.clone()),
        Request::Multi(vec![
            Request::Create2(create.clone()),
            Request::Check(pv.clone()),
            Request::SetData(SetDataRequest {
                path: "/a".into(),
                data: None,
                version: -1,
            }),
            Request::Delete(pv),
        ]),
        Request::Reconfig(ReconfigRequest {
            joining_servers: "server.2=127.0.0.1:2888:3888".into(),
            leaving_servers: String::new(),
            new_members: String::new(),
            cur_config_id: -1,
        }),
        Request::CheckWatches(WatchesRequest {
            path: "/a".into(),
            watcher_type: 3,
        }),
        Request::RemoveWatches(WatchesRequest {
            path: "/a".into(),
            watcher_type: 2,
        }),
        Request::MultiRead(vec![Request::GetData(pw.clone()), Request::GetChildren(pw)]),
        Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: b"user:pass".to_vec(),
        }),
        Request::SetWatches(SetWatches {
            relative_zxid: 5,
            data: vec!["/a".into()],
            exist: vec!["/b".into()],
            child: vec!["/".into()],
        }),
        Request::Sasl(vec![1, 2, 3]),
        Request::GetEphemerals("/".into()),
        Request::GetAllChildrenNumber("/".into()),
        Request::SetWatches2(SetWatches2 {
            relative_zxid: 5,
            data: vec!["/a".into()],
            exist: vec![],
            child: vec![],
            persistent: vec!["/p".into()],
            persistent_recursive: vec!["/r".into()],
        }),
        Request::AddWatch(AddWatchRequest {
            path: "/a".into(),
            mode: 1,
        }),
        Request::WhoAmI,
        Request::CloseSession,
    ];
    for (i, r) in reqs.iter().enumerate() {
        let name = format!("{dir}/op-{:03}-{}", r.opcode(), op::name(r.opcode()));
        std::fs::write(name, frame(&encode_request(i as i32 + 1, r)))?;
    }
    for ro in [None, Some(false)] {
        let c = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 10_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: ro,
        };
        let name = format!("{dir}/connect-{}", if ro.is_some() { 45 } else { 44 });
        std::fs::write(name, frame(&c.encode()))?;
    }
    println!("wrote {} seeds to {dir}", reqs.len() + 2);
    Ok(())
}
