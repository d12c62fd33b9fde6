//! The `warden` binary against the mock server.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::MockServer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn warden(servers: &str, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env("WARDEN_SERVERS", servers)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run warden");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(servers: &str, args: &[&str]) -> String {
    let out = warden(servers, args).await;
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    assert_eq!(out.stderr, "", "{args:?}");
    out.stdout
}

#[tokio::test]
async fn create_get_set_stat_ls_delete() {
    let server = MockServer::start().await;
    let s = &server.connect_string();

    assert_eq!(ok(s, &["create", "/a", "hello"]).await, "/a\n");
    assert_eq!(ok(s, &["get", "/a"]).await, "hello\n");
    assert_eq!(ok(s, &["set", "/a", "-x-"]).await, "");
    assert_eq!(ok(s, &["get", "/a"]).await, "-x-\n");
    let stat = ok(s, &["stat", "/a"]).await;
    assert!(stat.contains("dataVersion = 1\n"), "{stat}");
    assert!(stat.contains("ephemeralOwner = 0x0\n"), "{stat}");
    assert!(stat.starts_with("cZxid = "), "{stat}");

    assert_eq!(ok(s, &["create", "-s", "/a/q-"]).await, "/a/q-0000000000\n");
    ok(s, &["create", "/a/b"]).await;
    ok(s, &["create", "/a/b/c"]).await;
    ok(s, &["create", "/z"]).await;
    assert_eq!(ok(s, &["ls", "/a"]).await, "b\nq-0000000000\n");
    assert_eq!(ok(s, &["ls", "/"]).await, "a\nz\n");
    assert_eq!(
        ok(s, &["ls", "-R", "/a"]).await,
        "/a\n/a/b\n/a/q-0000000000\n/a/b/c\n"
    );
    // An ephemeral made by a one-shot command is gone when it exits.
    assert_eq!(ok(s, &["create", "-e", "/eph"]).await, "/eph\n");
    assert!(!server.mock.exists("/eph"));

    let out = warden(s, &["delete", "/a"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, "error: NotEmpty: /a\n");
    let out = warden(s, &["set", "/a", "v", "--version", "7"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("error: BadVersion: /a"),
        "{}",
        out.stderr
    );

    ok(s, &["delete", "-r", "/a"]).await;
    assert!(!server.mock.exists("/a"));
    assert!(!server.mock.exists("/a/b/c"));
    ok(s, &["delete", "/z", "--version", "0"]).await;
    assert_eq!(ok(s, &["ls", "/"]).await, "");

    let out = warden(s, &["get", "/a/b"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "error: NoNode: /a/b\n");
    let out = warden(s, &["delete", "-r", "/nope"]).await;
    assert_eq!(out.stderr, "error: NoNode: /nope\n");
    let out = warden(s, &["get", "relative"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("error: BadArguments: "),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1);
}

#[tokio::test]
async fn servers_flag_and_chroot() {
    let server = MockServer::start().await;
    let s = &server.connect_string();
    ok(s, &["create", "/app"]).await;
    let chrooted = format!("{s}/app");
    // --servers wins over WARDEN_SERVERS.
    assert_eq!(
        ok("127.0.0.1:1", &["--servers", &chrooted, "create", "/x"]).await,
        "/x\n"
    );
    assert!(server.mock.exists("/app/x"));
    assert_eq!(ok(&chrooted, &["ls", "-R", "/"]).await, "/\n/x\n");
}

#[tokio::test]
async fn connection_failure_exits_2_and_says_what_to_check() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let servers = format!("127.0.0.1:{port}");
    let out = warden(&servers, &["ls", "/"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: "));
    assert!(out.stderr.contains(&servers), "{}", out.stderr);
    assert!(out.stderr.contains("--servers"), "{}", out.stderr);
    assert!(out.stderr.contains("WARDEN_SERVERS"), "{}", out.stderr);
}

#[tokio::test]
async fn watch_prints_events_until_interrupted() {
    let server = MockServer::start().await;
    let s = server.connect_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["--servers", &s, "watch", "-r", "/w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    // Wait until the watch is registered: the mock then sends events.
    let client = warden_client::Client::connect(&s, Default::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        // Re-create until the watcher has caught one (it may start late).
        if n == 0 {
            let _ = client
                .create("/w", "", warden_client::CreateMode::Persistent)
                .await;
        }
        let _ = client.set_data("/w", format!("{n}"), None).await;
        n += 1;
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await
        {
            seen.push(line);
        }
    }
    assert!(!seen.is_empty());
    for line in &seen {
        assert!(
            line == "NodeDataChanged /w" || line == "NodeCreated /w",
            "{line}"
        );
    }
    client
        .create("/w/k", "", warden_client::CreateMode::Persistent)
        .await
        .unwrap();
    let line = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match lines.next_line().await {
                Ok(Some(l)) if l.starts_with("NodeCreated /w/k") => return l,
                Ok(Some(_)) => continue,
                _ => return String::new(),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(line, "NodeCreated /w/k");

    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    client.close().await.unwrap();
}

#[test]
fn help_is_available_everywhere() {
    for args in [
        vec!["--help"],
        vec!["ls", "--help"],
        vec!["get", "--help"],
        vec!["stat", "--help"],
        vec!["create", "--help"],
        vec!["set", "--help"],
        vec!["delete", "--help"],
        vec!["watch", "--help"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}
