//! ACLs enforced as ZooKeeper 3.8 enforces them, through warden-client
//! (gRPC): digest identities from `add_auth`, world, ip and auth entries,
//! the permission each operation needs (create and delete on the parent,
//! getACL with READ or ADMIN, exists with none), inside `multi` too, the
//! ACL checks at create and setACL, and the super user.

use warden_client::{Acl, Client, ConnectOptions, CreateMode, CreateOptions, ErrorCode, Op};
use warden_tests::{connect, InProcServer, ServerOpts};

fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        scheme: scheme.into(),
        id: id.into(),
    }
}

fn digest_of(user_password: &str) -> String {
    warden_server::digest(user_password)
}

async fn as_user(server: &InProcServer, user_password: Option<&str>) -> Client {
    let opts = ConnectOptions {
        auth: user_password
            .map(|up| vec![("digest".to_string(), up.as_bytes().to_vec())])
            .unwrap_or_default(),
        ..Default::default()
    };
    connect(&server.addr(), opts).await
}

fn code<T: std::fmt::Debug>(r: Result<T, warden_client::Error>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

/// A node only alice may touch: alice does everything; bob and an
/// anonymous client get `NoAuth` for every operation that needs a
/// permission, and `exists` still answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_acl_lets_only_its_user_in() {
    let server = InProcServer::start();
    let alice = as_user(&server, Some("alice:secret")).await;
    let bob = as_user(&server, Some("bob:secret")).await;
    let anon = as_user(&server, None).await;
    let mine = vec![acl(Acl::ALL, "digest", &digest_of("alice:secret"))];
    alice
        .create_with(
            "/a",
            "x",
            CreateOptions::new(CreateMode::Persistent).with_acl(mine.clone()),
        )
        .await
        .unwrap();
    alice
        .create("/a/child", "", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(alice.get_data("/a").await.unwrap().0, b"x");

    for other in [&bob, &anon] {
        assert_eq!(code(other.get_data("/a").await), ErrorCode::NoAuth);
        assert_eq!(code(other.get_children("/a").await), ErrorCode::NoAuth);
        assert_eq!(
            code(other.set_data("/a", "y", None).await),
            ErrorCode::NoAuth
        );
        assert_eq!(code(other.get_acl("/a").await), ErrorCode::NoAuth);
        assert_eq!(
            code(other.set_acl("/a", Acl::open_unsafe(), None).await),
            ErrorCode::NoAuth
        );
        assert_eq!(
            code(other.create("/a/theirs", "", CreateMode::Persistent).await),
            ErrorCode::NoAuth
        );
        assert_eq!(
            code(other.delete("/a/child", None).await),
            ErrorCode::NoAuth
        );
        assert!(
            other.exists("/a").await.unwrap().is_some(),
            "exists needs no permission"
        );
        // NoNode comes before NoAuth, as in ZooKeeper.
        assert_eq!(code(other.get_data("/a/missing").await), ErrorCode::NoNode);
    }
    // A multi fails as a whole on the op it may not do.
    let err = bob
        .multi(vec![
            Op::create("/bobs", "", CreateMode::Persistent),
            Op::set_data("/a", "y", None),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NoAuth);
    assert!(
        bob.exists("/bobs").await.unwrap().is_none(),
        "the multi was not applied"
    );

    alice.set_data("/a", "y", None).await.unwrap();
    alice.delete("/a/child", None).await.unwrap();
    assert_eq!(alice.get_acl("/a").await.unwrap().0, mine);
}

/// World-readable, alice-writable: anyone reads; getACL without ADMIN
/// hides the digest hash; only alice writes or changes the ACL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_for_all_write_for_one_and_redacted_acls() {
    let server = InProcServer::start();
    let alice = as_user(&server, Some("alice:secret")).await;
    let anon = as_user(&server, None).await;
    let id = digest_of("alice:secret");
    let list = vec![
        acl(Acl::READ, "world", "anyone"),
        acl(Acl::ALL, "digest", &id),
    ];
    alice
        .create_with(
            "/r",
            "x",
            CreateOptions::new(CreateMode::Persistent).with_acl(list.clone()),
        )
        .await
        .unwrap();
    assert_eq!(anon.get_data("/r").await.unwrap().0, b"x");
    let (shown, _) = anon.get_acl("/r").await.unwrap();
    assert_eq!(shown[1].id, "alice:x", "the hash is hidden without ADMIN");
    assert_eq!(alice.get_acl("/r").await.unwrap().0, list);
    assert_eq!(
        code(anon.set_data("/r", "y", None).await),
        ErrorCode::NoAuth
    );
    alice.set_data("/r", "y", None).await.unwrap();
}

/// ACLs are checked at create and setACL: `auth` becomes the creator's
/// identities (and is refused without any), duplicates go, and bad
/// entries are `InvalidACL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_fixed_up_and_validated() {
    let server = InProcServer::start();
    let alice = as_user(&server, Some("alice:secret")).await;
    let anon = as_user(&server, None).await;
    let creator_all = vec![acl(Acl::ALL, "auth", "")];
    alice
        .create_with(
            "/c",
            "",
            CreateOptions::new(CreateMode::Persistent).with_acl(creator_all.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.get_acl("/c").await.unwrap().0,
        vec![acl(Acl::ALL, "digest", &digest_of("alice:secret"))]
    );
    assert_eq!(
        code(
            anon.create_with(
                "/d",
                "",
                CreateOptions::new(CreateMode::Persistent).with_acl(creator_all)
            )
            .await
        ),
        ErrorCode::InvalidAcl
    );
    let twice = vec![
        acl(Acl::READ, "world", "anyone"),
        acl(Acl::READ, "world", "anyone"),
    ];
    anon.create_with(
        "/e",
        "",
        CreateOptions::new(CreateMode::Persistent).with_acl(twice),
    )
    .await
    .unwrap();
    assert_eq!(
        anon.get_acl("/e").await.unwrap().0,
        vec![acl(Acl::READ, "world", "anyone")]
    );
    for bad in [
        acl(Acl::ALL, "world", "nobody"),
        acl(Acl::ALL, "digest", "no-hash"),
        acl(Acl::ALL, "ip", "not-an-ip"),
        acl(Acl::ALL, "nosuchscheme", "x"),
    ] {
        let r = anon
            .create_with(
                "/f",
                "",
                CreateOptions::new(CreateMode::Persistent).with_acl(vec![bad.clone()]),
            )
            .await;
        assert_eq!(code(r), ErrorCode::InvalidAcl, "{bad:?}");
    }
    assert_eq!(
        code(alice.set_acl("/c", vec![], None).await),
        ErrorCode::InvalidAcl
    );
}

/// `ip` entries match the client's address (or network); create and
/// delete need CREATE and DELETE on the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_entries_and_parent_permissions() {
    let server = InProcServer::start();
    let c = as_user(&server, None).await;
    let local = vec![acl(Acl::READ | Acl::CREATE, "ip", "127.0.0.0/8")];
    c.create_with(
        "/ip",
        "x",
        CreateOptions::new(CreateMode::Persistent).with_acl(local),
    )
    .await
    .unwrap();
    assert_eq!(c.get_data("/ip").await.unwrap().0, b"x");
    c.create("/ip/kid", "", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        code(c.delete("/ip/kid", None).await),
        ErrorCode::NoAuth,
        "no DELETE on /ip"
    );
    let elsewhere = vec![acl(Acl::ALL, "ip", "10.0.0.0/8")];
    c.create_with(
        "/ten",
        "",
        CreateOptions::new(CreateMode::Persistent).with_acl(elsewhere),
    )
    .await
    .unwrap();
    assert_eq!(code(c.get_data("/ten").await), ErrorCode::NoAuth);
}

/// The super user (`--super-digest`) passes every check; an unknown
/// scheme fails with `AuthFailed`; `who_am_i` names the identities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_super_user_auth_failures_and_who_am_i() {
    let server = InProcServer::start_with(ServerOpts {
        super_digest: Some(digest_of("super:test")),
        ..ServerOpts::default()
    });
    let alice = as_user(&server, Some("alice:secret")).await;
    let only_alice = vec![acl(Acl::ALL, "digest", &digest_of("alice:secret"))];
    alice
        .create_with(
            "/s",
            "x",
            CreateOptions::new(CreateMode::Persistent).with_acl(only_alice),
        )
        .await
        .unwrap();
    let root = as_user(&server, Some("super:test")).await;
    assert_eq!(root.get_data("/s").await.unwrap().0, b"x");
    root.set_acl("/s", Acl::open_unsafe(), None).await.unwrap();
    let who: Vec<(String, String)> = root
        .who_am_i()
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.scheme, i.user))
        .collect();
    assert!(who.contains(&("super".into(), "".into())), "{who:?}");
    assert!(who.contains(&("digest".into(), "super".into())), "{who:?}");
    assert!(who.contains(&("ip".into(), "127.0.0.1".into())), "{who:?}");

    let anon = as_user(&server, None).await;
    assert_eq!(
        code(anon.add_auth("kerberos", "x").await),
        ErrorCode::AuthFailed
    );
    let refused = Client::connect(
        &server.addr(),
        ConnectOptions {
            auth: vec![("kerberos".into(), b"x".to_vec())],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code(refused), ErrorCode::AuthFailed);
}
