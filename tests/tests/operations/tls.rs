//! TLS, tried as a user would turn it on: certificates made by the test
//! (rcgen), every listener speaking TLS, warden-client, the CLI and kazoo
//! connecting with them, a client certificate as the `x509` identity,
//! plain-text clients refused cleanly, certificates re-read on SIGHUP, and
//! members that let in only peers with a certificate their CA signed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_client::{Acl, Client, ConnectOptions, CreateMode, CreateOptions, ErrorCode};
use warden_tests::cluster::Cluster;
use warden_tests::tls::{Certs, ServerTls};
use warden_tests::zookeeper::{compat_file, python_with_kazoo, Script};
use warden_tests::{bin, connect, http_get, ServerOpts, ServerProc};

fn tls_server(certs: &Arc<Certs>, client_auth: &'static str) -> ServerProc {
    ServerProc::start_with(ServerOpts {
        tls: Some(ServerTls::new(certs, "server", client_auth)),
        ..Default::default()
    })
}

fn opts(tls: warden_client::TlsOptions) -> ConnectOptions {
    ConnectOptions {
        tls: Some(tls),
        connect_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn warden_cli(server: &ServerProc, tls: &[String], args: &[&str]) -> std::process::Output {
    Command::new(bin("warden"))
        .env_remove("WARDEN_SERVERS")
        .arg("--servers")
        .arg(server.addr())
        .args(tls)
        .args(args)
        .output()
        .expect("run warden")
}

/// Waits until `f` holds, polling, or panics with `what` after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the server sends a plain-text client before closing (read until
/// it closes or 5 s pass).
fn plain_reply(port: u16, hello: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(hello);
    let mut got = Vec::new();
    let r = s.read_to_end(&mut got);
    assert!(r.is_ok(), "the server closed the connection ({r:?})");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_speaks_tls_and_a_client_certificate_is_an_identity() {
    let certs = Certs::new("main");
    let server = tls_server(&certs, "optional");
    let alice = certs.issue("alice", "alice");

    // warden-client with a certificate: its subject is its x509 identity.
    let mine = connect(&server.addr(), opts(certs.client_options(Some(&alice)))).await;
    let who = mine.who_am_i().await.unwrap();
    assert!(
        who.iter()
            .any(|i| i.scheme == "x509" && i.user == alice.subject),
        "{who:?}"
    );
    let x509_only = CreateOptions {
        acl: vec![Acl {
            perms: Acl::ALL,
            scheme: "x509".into(),
            id: alice.subject.clone(),
        }],
        ..CreateOptions::new(CreateMode::Persistent)
    };
    mine.create_with("/alice", "hers", x509_only).await.unwrap();
    assert_eq!(mine.get_data("/alice").await.unwrap().0, b"hers");

    // Without a certificate (optional): a session, but not alice's node.
    let anon = connect(&server.addr(), opts(certs.client_options(None))).await;
    assert_eq!(
        anon.get_data("/alice").await.unwrap_err().code(),
        ErrorCode::NoAuth
    );

    // A plain-text warden-client is refused, and says it could not connect.
    let plain = Client::connect(
        &server.addr(),
        ConnectOptions {
            connect_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .await;
    assert!(plain.is_err(), "a plain-text client got a session");

    // A client trusting another CA does not accept the server.
    let stranger = Certs::new("stranger");
    let wrong = Client::connect(&server.addr(), opts(stranger.client_options(None))).await;
    assert!(
        wrong.is_err(),
        "a client accepted a server its CA did not sign"
    );

    // The CLI, with the same flags.
    let flags = certs.cli_args(Some(&alice));
    let out = warden_cli(&server, &flags, &["get", "/alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hers\n");
    let out = warden_cli(&server, &flags, &["status"]);
    assert!(
        out.status.success(),
        "status over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = warden_cli(&server, &[], &["ls", "/"]);
    assert_eq!(out.status.code(), Some(2), "plain-text CLI on a TLS port");
    // warden-scheduler takes the same flags.
    let scheduler = |tls: &[String]| {
        Command::new(bin("warden-scheduler"))
            .env_remove("WARDEN_SERVERS")
            .args(["job", "--servers", &server.addr()])
            .args(tls)
            .args(["list", "--json"])
            .output()
            .expect("run warden-scheduler")
    };
    let out = scheduler(&flags);
    assert!(
        out.status.success(),
        "warden-scheduler over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !scheduler(&[]).status.success(),
        "plain-text warden-scheduler"
    );

    // Admin HTTP is HTTPS (the harness's health checks used it); a
    // plain-text request gets a readable refusal.
    let (code, body) = http_get(server.admin_port, "/health").expect("plain GET");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("TLS"), "{body}");
    // The ZooKeeper port closes on a plain-text connect request.
    let mut connect_request = vec![0, 0, 0, 44];
    connect_request.extend([0u8; 44]);
    assert!(plain_reply(server.zk_port, &connect_request).is_empty());

    // None of that disturbed the TLS sessions.
    mine.set_data("/alice", "still", None).await.unwrap();
    assert_eq!(anon.exists("/alice").await.unwrap().unwrap().version, 1);
    assert!(server.log().contains("plain-text client on a TLS port"));
}

#[test]
fn kazoo_speaks_tls_to_the_zookeeper_port() {
    let certs = Certs::new("kazoo");
    let server = tls_server(&certs, "optional");
    let client = certs.issue("kazoo-client", "kazoo");
    let mut cmd = python_with_kazoo();
    cmd.arg(compat_file("kazoo_tls.py"))
        .arg("--hosts")
        .arg(server.zk_addr())
        .arg("--ca")
        .arg(&certs.ca)
        .arg("--cert")
        .arg(&client.cert)
        .arg("--key")
        .arg(&client.key)
        .arg("--subject")
        .arg(&client.subject);
    Script::spawn(cmd, "kazoo_tls.py").expect_passed(3, Duration::from_secs(60), &server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_and_rotation_on_sighup() {
    let old_ca = Certs::new("old");
    let server = tls_server(&old_ca, "required");
    let client = old_ca.issue("client", "client");
    let open = connect(&server.addr(), opts(old_ca.client_options(Some(&client)))).await;
    open.create("/before", "", CreateMode::Persistent)
        .await
        .unwrap();
    let no_cert = Client::connect(&server.addr(), opts(old_ca.client_options(None))).await;
    assert!(no_cert.is_err(), "required: a client without a certificate");

    // Rotate: a certificate from a new CA replaces the server's files.
    let new_ca = Certs::new("new");
    let replacement = new_ca.issue("server2", "server2");
    let tls = server.opts.tls.as_ref().unwrap();
    std::fs::copy(&replacement.cert, &tls.server.cert).unwrap();
    std::fs::copy(&replacement.key, &tls.server.key).unwrap();
    // Not read until SIGHUP: new connections still get the old one.
    let fresh = connect(&server.addr(), opts(old_ca.client_options(Some(&client)))).await;
    fresh.close().await.unwrap();
    server.signal(libc::SIGHUP);
    let rotated = opts(new_ca.client_options(Some(&client)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match Client::connect(&server.addr(), rotated.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the rotated certificate was not used: {e}\n{}",
                    server.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(after.exists("/before").await.unwrap().is_some());
    let old = Client::connect(&server.addr(), opts(old_ca.client_options(Some(&client)))).await;
    assert!(
        old.is_err(),
        "a client trusting only the old CA still connects"
    );
    // The session opened before the rotation carries on.
    open.set_data("/before", "x", None).await.unwrap();
    assert!(server.log().contains("read the TLS certificates again"));

    // A broken file on SIGHUP keeps the certificates in use.
    std::fs::write(&tls.server.cert, "garbage").unwrap();
    server.signal(libc::SIGHUP);
    wait_for("the reload error", Duration::from_secs(10), || {
        server.log().contains("cannot read the TLS certificates")
    });
    let still = Client::connect(&server.addr(), rotated).await;
    assert!(
        still.is_ok(),
        "a bad reload dropped the working certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_speak_mutual_tls_and_a_peer_without_a_valid_certificate_cannot_join() {
    let certs = Certs::new("ensemble");
    let mut cluster = Cluster::start(
        3,
        ServerOpts {
            tls: Some(ServerTls::new(&certs, "member", "optional")),
            ..Default::default()
        },
    );
    let client_opts = opts(certs.client_options(None));
    // A write through every member: followers forward over mutual TLS.
    for i in cluster.ids() {
        let c = connect(&cluster.member(i).addr(), client_opts.clone()).await;
        c.create(&format!("/via-{i}"), "", CreateMode::Persistent)
            .await
            .unwrap_or_else(|e| panic!("write via member {i}: {e}"));
        c.close().await.unwrap();
    }

    // A fourth member named by `member add`, whose certificate another CA
    // signed, is refused by the others and never gets the data.
    let rogue = Certs::new("rogue");
    let id = cluster.prepare_joiner(ServerOpts {
        tls: Some(ServerTls {
            certs: certs.clone(),
            server: rogue.issue("rogue-member", "rogue-member"),
            client_auth: "optional",
            no_ca: false,
        }),
        ..Default::default()
    });
    let flags = certs.cli_args(None);
    let out = Command::new(bin("warden"))
        .arg("--servers")
        .arg(cluster.member(1).addr())
        .args(&flags)
        .args(["member", "add", &id.to_string(), &cluster.peer_addr(id)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "member add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let joiner = cluster.member_mut(id);
    joiner.spawn().unwrap();
    let outcome = joiner.wait_healthy();
    assert!(
        outcome.is_err(),
        "a member with a foreign certificate joined"
    );
    assert!(
        joiner.log().contains("no --join member answered"),
        "{}",
        joiner.log()
    );
    let refused = (1..id).any(|i| cluster.member(i).log().contains("TLS handshake failed"));
    assert!(refused, "no member logged the refused handshake");
    // The ensemble carries on.
    let c = connect(&cluster.member(2).addr(), client_opts).await;
    c.create("/after", "", CreateMode::Persistent)
        .await
        .unwrap();
}
