//! The `warden` command-line tool against a real server: output formats,
//! create modes, errors and exit codes, `watch`, `WARDEN_SERVERS` and help.

mod support {
    //! Running the CLI and reading a long-running child's output with a
    //! deadline.

    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use warden_tests::{bin, warden, ServerProc};

    pub fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// Runs a command that must succeed with nothing on stderr; its stdout.
    pub fn ok(server: &ServerProc, args: &[&str]) -> String {
        let out = warden(server, args);
        assert!(
            out.status.success(),
            "warden {args:?} failed ({}): {}",
            out.status,
            text(&out.stderr)
        );
        assert_eq!(text(&out.stderr), "", "warden {args:?} wrote to stderr");
        text(&out.stdout)
    }

    /// Runs a command that must fail; (exit code, stderr). Stdout must be empty.
    pub fn fails(server: &ServerProc, args: &[&str]) -> (i32, String) {
        let out = warden(server, args);
        assert!(!out.status.success(), "warden {args:?} succeeded");
        assert_eq!(text(&out.stdout), "", "warden {args:?} printed on failure");
        (out.status.code().unwrap_or(-1), text(&out.stderr))
    }

    /// The CLI without `--servers` (and without a logging setting).
    pub fn bare() -> Command {
        let mut c = Command::new(bin("warden"));
        c.env_remove("WARDEN_SERVERS").env_remove("RUST_LOG");
        c
    }

    pub fn run(c: &mut Command) -> Output {
        c.output().expect("run warden")
    }

    /// `warden watch ...` running in the background, its stdout read line by
    /// line on a thread. Killed when dropped.
    pub struct Watcher {
        child: Child,
        lines: mpsc::Receiver<String>,
        pub seen: Vec<String>,
    }

    impl Watcher {
        pub fn spawn(server: &ServerProc, args: &[&str]) -> Watcher {
            let mut child = bare()
                .arg("--servers")
                .arg(server.addr())
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn warden watch");
            let stdout = child.stdout.take().unwrap();
            let (tx, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Watcher {
                child,
                lines,
                seen: Vec::new(),
            }
        }

        /// Waits (with a deadline) for a line containing `needle`.
        pub fn expect_line(&mut self, needle: &str, timeout: Duration) -> String {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) => {
                        self.seen.push(line.clone());
                        if line.contains(needle) {
                            return line;
                        }
                    }
                    Err(_) => {
                        let stderr = self.stop();
                        panic!(
                            "no line containing {needle:?} within {timeout:?}; saw {:?}; stderr: {stderr}",
                            self.seen
                        );
                    }
                }
            }
        }

        /// Kills the child; returns what it wrote to stderr.
        pub fn stop(&mut self) -> String {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            err
        }
    }

    impl Drop for Watcher {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

use std::collections::HashMap;
use std::time::Duration;

use support::{bare, fails, ok, run, text, Watcher};
use warden_tests::{free_port, wait_until_sync, ServerProc};

const DEADLINE: Duration = Duration::from_secs(10);

/// `stat` output as name -> value.
fn parse_stat(out: &str) -> HashMap<String, String> {
    out.lines()
        .map(|l| {
            let (k, v) = l
                .split_once(" = ")
                .unwrap_or_else(|| panic!("bad stat line {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Waits until the server holds at least `n` watch registrations.
fn wait_for_watches(server: &ServerProc, n: u64) {
    wait_until_sync("the watch to be registered", DEADLINE, || {
        server.status()["watches"].as_u64().unwrap_or(0) >= n
    });
}

#[test]
fn create_get_set_and_stat() {
    let server = ServerProc::start();
    assert_eq!(ok(&server, &["create", "/a", "hello"]), "/a\n");
    assert_eq!(ok(&server, &["get", "/a"]), "hello\n");

    let stat = parse_stat(&ok(&server, &["stat", "/a"]));
    for field in [
        "cZxid",
        "ctime",
        "mZxid",
        "mtime",
        "pZxid",
        "cversion",
        "dataVersion",
        "aclVersion",
        "ephemeralOwner",
        "dataLength",
        "numChildren",
    ] {
        assert!(stat.contains_key(field), "stat lacks {field}: {stat:?}");
    }
    assert_eq!(stat["dataVersion"], "0");
    assert_eq!(stat["dataLength"], "5");
    assert_eq!(stat["numChildren"], "0");
    assert_eq!(stat["ephemeralOwner"], "0x0");
    assert_eq!(stat["cZxid"], stat["mZxid"]);

    assert_eq!(ok(&server, &["set", "/a", "bye"]), "");
    assert_eq!(ok(&server, &["get", "/a"]), "bye\n");
    let (code, err) = fails(&server, &["set", "/a", "x", "--version", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("BadVersion"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(ok(&server, &["get", "/a"]), "bye\n");
    assert_eq!(ok(&server, &["set", "/a", "x", "--version", "1"]), "");

    let after = parse_stat(&ok(&server, &["stat", "/a"]));
    assert_eq!(after["dataVersion"], "2");
    assert_eq!(after["dataLength"], "1");
    assert_eq!(after["cZxid"], stat["cZxid"]);
    let (c, m): (i64, i64) = (
        after["cZxid"].parse().unwrap(),
        after["mZxid"].parse().unwrap(),
    );
    assert!(m > c, "mZxid {m} after two sets must exceed cZxid {c}");

    // Empty data, and data that looks like a flag.
    assert_eq!(ok(&server, &["create", "/empty"]), "/empty\n");
    assert_eq!(ok(&server, &["get", "/empty"]), "\n");
    assert_eq!(ok(&server, &["set", "/empty", "-1"]), "");
    assert_eq!(ok(&server, &["get", "/empty"]), "-1\n");
}

#[test]
fn create_modes() {
    let server = ServerProc::start();
    ok(&server, &["create", "/a"]);
    assert_eq!(
        ok(&server, &["create", "-s", "/a/n-", "x"]),
        "/a/n-0000000000\n"
    );
    assert_eq!(
        ok(&server, &["create", "-s", "/a/n-", "y"]),
        "/a/n-0000000001\n"
    );
    assert_eq!(ok(&server, &["get", "/a/n-0000000001"]), "y\n");

    // An ephemeral lives as long as the command's session: it is gone once
    // the command has exited.
    assert_eq!(ok(&server, &["create", "-e", "/a/eph"]), "/a/eph\n");
    let (code, err) = fails(&server, &["stat", "/a/eph"]);
    assert_eq!(code, 1);
    assert!(err.contains("NoNode: /a/eph"), "{err}");
    ok(&server, &["create", "/es"]);
    assert_eq!(
        ok(&server, &["create", "-e", "-s", "/es/n-"]),
        "/es/n-0000000000\n"
    );
    assert_eq!(ok(&server, &["ls", "/es"]), "");

    assert_eq!(ok(&server, &["create", "--container", "/box"]), "/box\n");
    let st = parse_stat(&ok(&server, &["stat", "/box"]));
    assert_eq!(st["ephemeralOwner"], "0x0");

    assert_eq!(
        ok(&server, &["create", "--ttl", "60000", "/ttl", "t"]),
        "/ttl\n"
    );
    let st = parse_stat(&ok(&server, &["stat", "/ttl"]));
    assert_eq!(st["ephemeralOwner"], "0x0", "TTL nodes are not ephemeral");
    assert_eq!(ok(&server, &["get", "/ttl"]), "t\n");

    let (code, err) = fails(&server, &["create", "/a", "again"]);
    assert_eq!(code, 1);
    assert!(err.contains("NodeExists: /a"), "{err}");
}

/// `--auth`, `setacl` and `getacl`: alice locks a node to herself (and
/// lets anyone read it); `getacl` prints zkCli's `scheme:id:perms`, with
/// the hash hidden from others; another user's write is refused with
/// NoAuth; an unknown scheme is AuthFailed, exit 1, pointing at --auth.
#[test]
fn auth_setacl_and_getacl() {
    let server = ServerProc::start();
    let alice = ["--auth", "digest:alice:pw"];
    let with = |args: &[&str]| -> Vec<String> {
        alice.iter().chain(args).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| {
        ok(
            &server,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    run(with(&["create", "/locked", "v"]));
    assert_eq!(
        run(with(&["setacl", "/locked", "auth::cdrwa,world:anyone:r"])),
        "aclVersion = 1\n"
    );
    let hash = warden_server::digest("alice:pw");
    assert_eq!(
        run(with(&["getacl", "/locked"])),
        format!("digest:{hash}:cdrwa\nworld:anyone:r\n")
    );
    assert_eq!(
        ok(&server, &["getacl", "/locked"]),
        "digest:alice:x:cdrwa\nworld:anyone:r\n"
    );
    assert_eq!(ok(&server, &["get", "/locked"]), "v\n");
    let (code, err) = fails(&server, &["--auth", "digest:bob:pw", "set", "/locked", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("NoAuth"), "{err}");
    let (code, err) = fails(&server, &["--auth", "kerberos:x", "ls", "/"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("AuthFailed") && err.contains("--auth"),
        "{err}"
    );
    let (_, err) = fails(&server, &["setacl", "/locked", "world:anyone:q"]);
    assert!(err.contains("not one of c, d, r, w, a"), "{err}");
}

#[test]
fn ls_and_delete() {
    let server = ServerProc::start();
    for p in ["/a", "/a/b", "/a/b/c", "/a/d", "/z"] {
        ok(&server, &["create", p]);
    }
    assert_eq!(ok(&server, &["ls", "/"]), "a\nz\nzookeeper\n");
    assert_eq!(ok(&server, &["ls", "/a"]), "b\nd\n");
    assert_eq!(ok(&server, &["ls", "/a/b/c"]), "");
    assert_eq!(ok(&server, &["ls", "-R", "/a"]), "/a\n/a/b\n/a/d\n/a/b/c\n");

    let (code, err) = fails(&server, &["delete", "/a"]);
    assert_eq!(code, 1);
    assert!(err.contains("NotEmpty"), "{err}");
    assert!(err.contains("/a"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(ok(&server, &["ls", "/a"]), "b\nd\n");

    let (code, err) = fails(&server, &["delete", "/z", "--version", "3"]);
    assert_eq!(code, 1);
    assert!(err.contains("BadVersion"), "{err}");
    assert_eq!(ok(&server, &["delete", "/z", "--version", "0"]), "");

    assert_eq!(ok(&server, &["delete", "-r", "/a"]), "");
    assert_eq!(ok(&server, &["ls", "/"]), "zookeeper\n");
    let (_, err) = fails(&server, &["ls", "/a"]);
    assert!(err.contains("NoNode: /a"), "{err}");
}

#[test]
fn errors_are_one_line_with_a_nonzero_exit() {
    let server = ServerProc::start();
    let (code, err) = fails(&server, &["get", "/missing"]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("NoNode: /missing"), "{err:?}");

    let (code, err) = fails(&server, &["get", "not-a-path"]);
    assert_ne!(code, 0);
    assert!(err.contains("BadArguments"), "{err:?}");

    // Nothing listening: a non-zero exit naming the servers tried.
    let port = free_port();
    let servers = format!("127.0.0.1:{port}");
    let out = run(bare().args(["--servers", &servers, "get", "/a"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&servers), "{err:?}");
    assert!(
        err.contains("servers") || err.contains("SERVERS"),
        "{err:?}"
    );
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn servers_come_from_the_environment() {
    let server = ServerProc::start();
    let out = run(bare()
        .env("WARDEN_SERVERS", server.addr())
        .args(["create", "/env", "from-env"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "/env\n");
    let out = run(bare()
        .env("WARDEN_SERVERS", server.addr())
        .args(["get", "/env"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-env\n");
    assert_eq!(ok(&server, &["get", "/env"]), "from-env\n");

    // --servers wins over the environment.
    let dead = format!("127.0.0.1:{}", free_port());
    let out =
        run(bare()
            .env("WARDEN_SERVERS", &dead)
            .args(["--servers", &server.addr(), "get", "/env"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-env\n");
}

#[test]
fn watch_prints_events() {
    let server = ServerProc::start();
    ok(&server, &["create", "/w", "0"]);
    let mut w = Watcher::spawn(&server, &["watch", "/w"]);
    wait_for_watches(&server, 1);

    ok(&server, &["set", "/w", "1"]);
    w.expect_line("NodeDataChanged /w", DEADLINE);
    ok(&server, &["create", "/w/c"]);
    w.expect_line("NodeChildrenChanged /w", DEADLINE);
    ok(&server, &["set", "/w", "2"]);
    let line = w.expect_line("NodeDataChanged /w", DEADLINE);
    assert_eq!(line, "NodeDataChanged /w");
    w.stop();
}

#[test]
fn recursive_watch_sees_descendants() {
    let server = ServerProc::start();
    ok(&server, &["create", "/tree"]);
    let mut w = Watcher::spawn(&server, &["watch", "-r", "/tree"]);
    wait_for_watches(&server, 1);

    ok(&server, &["create", "/tree/x"]);
    w.expect_line("NodeCreated /tree/x", DEADLINE);
    ok(&server, &["create", "/tree/x/y", "v"]);
    w.expect_line("NodeCreated /tree/x/y", DEADLINE);
    ok(&server, &["set", "/tree/x/y", "w"]);
    w.expect_line("NodeDataChanged /tree/x/y", DEADLINE);
    ok(&server, &["delete", "/tree/x/y"]);
    w.expect_line("NodeDeleted /tree/x/y", DEADLINE);
    assert!(
        !w.seen.iter().any(|l| l.contains("NodeChildrenChanged")),
        "a recursive watch gets no child events: {:?}",
        w.seen
    );
    w.stop();
}

#[test]
fn help_for_the_tool_and_every_subcommand() {
    let out = run(bare().arg("--help"));
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("Usage"), "{help}");
    let subcommands = ["ls", "get", "stat", "create", "set", "delete", "watch"];
    for sub in subcommands {
        assert!(help.contains(sub), "--help does not list {sub}: {help}");
    }
    assert!(help.contains("--servers"), "{help}");

    for sub in subcommands {
        let out = run(bare().args([sub, "--help"]));
        assert!(out.status.success(), "{sub} --help: {}", text(&out.stderr));
        let help = text(&out.stdout);
        assert!(
            help.contains(&format!("Usage: warden {sub}")),
            "{sub}: {help}"
        );
    }
    let out = run(bare().args(["help", "create"]));
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in ["--ttl", "--container", "-e", "-s"] {
        assert!(help.contains(flag), "create --help lacks {flag}: {help}");
    }

    // Usage errors exit non-zero without contacting any server.
    let out = run(bare().arg("frobnicate"));
    assert!(!out.status.success());
}
