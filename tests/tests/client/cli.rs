//! The `warden` tool: one-shot commands, `--servers` and chroot, the exit
//! code and message when no server answers, `watch` until interrupted, and
//! help everywhere.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use warden_client::CreateMode;
use warden_tests::{bin, within, STEP};

use super::*;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn warden(servers: &str, args: &[&str]) -> Out {
    let out = within(
        STEP,
        "warden exits",
        Command::new(bin("warden"))
            .args(args)
            .env("WARDEN_SERVERS", servers)
            .env_remove("RUST_LOG")
            .output(),
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_stat_ls_delete() {
    let server = start();
    let other = observer(&server).await;
    let s = &server.addr();

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
    // The server's own /zookeeper is there too, as in ZooKeeper.
    assert_eq!(ok(s, &["ls", "/"]).await, "a\nz\nzookeeper\n");
    assert_eq!(
        ok(s, &["ls", "-R", "/a"]).await,
        "/a\n/a/b\n/a/q-0000000000\n/a/b/c\n"
    );
    // An ephemeral made by a one-shot command is gone when it exits.
    assert_eq!(ok(s, &["create", "-e", "/eph"]).await, "/eph\n");
    assert_eq!(other.exists("/eph").await.unwrap(), None);

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
    assert_eq!(other.exists("/a").await.unwrap(), None);
    assert_eq!(other.exists("/a/b/c").await.unwrap(), None);
    ok(s, &["delete", "/z", "--version", "0"]).await;
    assert_eq!(ok(s, &["ls", "/"]).await, "zookeeper\n");

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
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_flag_and_chroot() {
    let server = start();
    let other = observer(&server).await;
    let s = &server.addr();
    ok(s, &["create", "/app"]).await;
    let chrooted = format!("{s}/app");
    // --servers wins over WARDEN_SERVERS.
    assert_eq!(
        ok("127.0.0.1:1", &["--servers", &chrooted, "create", "/x"]).await,
        "/x\n"
    );
    assert!(other.exists("/app/x").await.unwrap().is_some());
    assert_eq!(ok(&chrooted, &["ls", "-R", "/"]).await, "/\n/x\n");
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

/// The next line a child printed.
async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    within(STEP, "a line from the child", lines.next_line())
        .await
        .expect("read")
        .expect("a line, not the end")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_events_until_interrupted() {
    let server = start();
    let s = server.addr();
    let mut child = Command::new(bin("warden"))
        .args(["--servers", &s, "watch", "-r", "/w"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    // Once the watch is on the server, every change under /w is printed.
    until("warden watch registers its watch", || {
        server.metric("warden_watches", "") >= 1.0
    })
    .await;
    let client = observer(&server).await;
    client
        .create("/w", "", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(next_line(&mut lines).await, "NodeCreated /w");
    client.set_data("/w", "1", None).await.unwrap();
    assert_eq!(next_line(&mut lines).await, "NodeDataChanged /w");
    client
        .create("/w/k", "", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(next_line(&mut lines).await, "NodeCreated /w/k");

    let pid = child.id().expect("pid") as i32;
    // SAFETY: kill(2) on our own child's pid has no memory-safety concerns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = within(Duration::from_secs(5), "warden watch exits", child.wait())
        .await
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
        let out = std::process::Command::new(bin("warden"))
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
