//! End-to-end test support: start real `warden-server` processes on free
//! loopback ports with their own temporary data folders, signal them
//! (SIGKILL, SIGSTOP, SIGTERM), read their admin endpoints, and run the
//! `warden` command-line tool against them.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the test
//! executables (`target/<profile>/`); `WARDEN_BIN_DIR` overrides that.
//!
//! - [`cluster`]: several servers started as one ensemble, each member
//!   killed, stopped, continued, terminated or restarted by its number.
//! - [`in_process`]: a server inside the test process on port-0 listeners,
//!   for tests whose point is semantics rather than process death.
//! - [`crash_load`]: the write load and checks of the crash tests.
//! - [`linearizability`]: records histories of client operations and checks
//!   them for linearizability (Wing–Gong–Lowe, key by key).
//! - [`lossyfs`]: a FUSE filesystem that simulates a power cut, for the
//!   power-loss tests.
//! - [`proxy`]: a fault-injecting TCP proxy (tokio, own thread) to put
//!   between a client and a server, or between peers: cut, mute (one or
//!   both ways), delay or refuse connections while they are live, with
//!   counters of connections and bytes. The thread-based [`Proxy`] below
//!   predates it and serves the suites that still use it.
//! - [`raw`]: a session stream driven frame by frame.
//! - [`scheduler`]: a server with `warden-scheduler run` member processes,
//!   the `warden-scheduler job` CLI and the record the scheduler's jobs
//!   append to.
//! - [`timing`]: `STEP` (and the longer `SLOW_STEP`, `PHASE`), `within`
//!   and a bounded client connect.
//! - [`workers`]: `recipe_worker` and other child processes of the recipe
//!   tests, and the records they write.
//! - [`zookeeper`]: the server a ZooKeeper-compatibility test talks to (a
//!   fresh Warden, or a reference ZooKeeper), kazoo and zkCli.

pub mod cluster;
pub mod crash_load;
pub mod in_process;
pub mod linearizability;
pub mod lossyfs;
pub mod proxy;
pub mod raw;
pub mod scheduler;
pub mod timing;
pub mod tls;
pub mod workers;
pub mod zookeeper;

pub use cluster::Cluster;
pub use in_process::InProcServer;
pub use timing::{
    connect, connect_within, quick_retry, session_opts, try_connect, within, PHASE, SLOW_STEP, STEP,
};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the workspace's binaries are.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("WARDEN_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .expect("deps dir")
        .parent()
        .expect("profile dir");
    dir.to_path_buf()
}

/// The build's scratch folder, `target/tmp` (what Cargo gives integration
/// tests as `CARGO_TARGET_TMPDIR`, which a library does not see): the test
/// executable is `target/<profile>/deps/NAME`.
pub fn target_tmp() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("the target folder above target/<profile>/deps")
        .join("tmp")
}

/// The path of one of the workspace's binaries, with a clear failure if it
/// has not been built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds it) or `cargo build --bins` first",
        p.display()
    );
    p
}

/// A free loopback port (bound and released; the server retries on a
/// clash). Picked below Linux's ephemeral range (32768 and up), where the
/// many outgoing connections of tests running at once take their local
/// ports, and never twice in one test process: a port handed to a member
/// before it starts (a peer port in every member's `--peers`) cannot be
/// picked again when it clashes.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..1000 {
        let port = rand::random_range(20_000..32_000u16);
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Options for a test server.
#[derive(Clone, Debug)]
pub struct ServerOpts {
    pub tick_ms: u64,
    pub snapshot_every: Option<u64>,
    pub min_session_timeout_ms: Option<u64>,
    pub max_session_timeout_ms: Option<u64>,
    /// The data folder; `None`: `data` in the server's temporary folder.
    pub data_dir: Option<PathBuf>,
    /// Appended to the command line.
    pub extra_args: Vec<String>,
    /// `--super-digest`: the super user's `user:hash`.
    pub super_digest: Option<String>,
    /// TLS on every listener (the harness then speaks HTTPS to admin).
    pub tls: Option<tls::ServerTls>,
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            tick_ms: 200,
            snapshot_every: None,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            data_dir: None,
            extra_args: Vec::new(),
            super_digest: None,
            tls: None,
        }
    }
}

/// A running (or stopped) `warden-server` process with its own folder.
pub struct ServerProc {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    /// The ZooKeeper-protocol port (`--zk-listen`), kept across restarts.
    pub zk_port: u16,
    pub opts: ServerOpts,
    tmp: tempfile::TempDir,
}

impl ServerProc {
    pub fn start() -> ServerProc {
        Self::start_with(ServerOpts::default())
    }

    pub fn start_with(opts: ServerOpts) -> ServerProc {
        let mut s = ServerProc::prepare(opts);
        s.start_on_fresh_ports(5);
        s
    }

    /// A server with its own folder and free ports, not started yet
    /// ([`spawn`](Self::spawn) starts it).
    pub fn prepare(opts: ServerOpts) -> ServerProc {
        let tmp = tempfile::Builder::new()
            .prefix("warden-e2e-")
            .tempdir()
            .expect("temp dir");
        let mut s = ServerProc {
            child: None,
            port: 0,
            admin_port: 0,
            zk_port: 0,
            opts,
            tmp,
        };
        s.pick_ports();
        s
    }

    fn pick_ports(&mut self) {
        self.port = free_port();
        self.admin_port = free_port();
        self.zk_port = free_port();
    }

    /// Starts the server until it is healthy, trying other ports when it
    /// does not come up (a port taken between [`free_port`] and the bind);
    /// panics with its log after `attempts` tries.
    pub fn start_on_fresh_ports(&mut self, attempts: usize) {
        for attempt in 0..attempts {
            if attempt > 0 {
                self.pick_ports();
            }
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) => {
                    self.kill9();
                    eprintln!(
                        "server start attempt {attempt} failed ({e}); retrying with other ports"
                    );
                }
            }
        }
        panic!("warden-server did not start; log:\n{}", self.log());
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.opts
            .data_dir
            .clone()
            .unwrap_or_else(|| self.tmp.path().join("data"))
    }

    pub fn log_path(&self) -> PathBuf {
        self.tmp.path().join("server.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `127.0.0.1:PORT` of the client API.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT` of the ZooKeeper wire protocol.
    pub fn zk_addr(&self) -> String {
        format!("127.0.0.1:{}", self.zk_port)
    }

    /// The command line that starts this server (without spawning it).
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin("warden-server"));
        c.arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.addr())
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", self.admin_port))
            .arg("--zk-listen")
            .arg(self.zk_addr())
            .arg("--tick-ms")
            .arg(self.opts.tick_ms.to_string());
        if let Some(n) = self.opts.snapshot_every {
            c.arg("--snapshot-every").arg(n.to_string());
        }
        if let Some(n) = self.opts.min_session_timeout_ms {
            c.arg("--min-session-timeout-ms").arg(n.to_string());
        }
        if let Some(n) = self.opts.max_session_timeout_ms {
            c.arg("--max-session-timeout-ms").arg(n.to_string());
        }
        if let Some(d) = &self.opts.super_digest {
            c.arg("--super-digest").arg(d);
        }
        if let Some(t) = &self.opts.tls {
            c.args(t.args());
        }
        c.args(&self.opts.extra_args);
        c.env("RUST_LOG", "info,warden_server=debug,openraft=warn");
        c
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.spawn()?;
        self.wait_healthy()
    }

    /// Starts the process (logging to [`log_path`](Self::log_path)) without
    /// waiting for it to be healthy.
    pub fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| e.to_string())?;
        let child = self
            .command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits up to 30 s for `/health` to answer 200; an error if the
    /// process exits or is not healthy by then (it is left running).
    pub fn wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {st}"));
                }
            }
            if self
                .http_get("/health")
                .map(|(code, _)| code == 200)
                .unwrap_or(false)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("not healthy within 30 s".into())
    }

    /// Starts the process again on the same folder and ports.
    pub fn restart(&mut self) {
        self.try_restart()
            .unwrap_or_else(|e| panic!("restart failed: {e}; log:\n{}", self.log()));
    }

    /// [`restart`](Self::restart), returning why the server did not come up
    /// (it exited, or was not healthy within 30 s) instead of panicking.
    pub fn try_restart(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "restart a stopped server only");
        let r = self.spawn_and_wait();
        if r.is_err() {
            self.kill9();
        }
        r
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            signal(c.id(), sig);
        }
    }

    /// SIGSTOP, and waits until the process is stopped: from then on it
    /// answers nothing (its sockets stay open).
    pub fn sigstop(&self) {
        self.signal(libc::SIGSTOP);
        self.wait_state("stopped", |s| s == 'T');
    }

    /// SIGCONT, and waits until the process runs again.
    pub fn sigcont(&self) {
        self.signal(libc::SIGCONT);
        self.wait_state("running", |s| s != 'T');
    }

    /// Waits (bounded) until the process's state letter in `/proc/PID/stat`
    /// satisfies `ok`.
    fn wait_state(&self, what: &str, ok: impl Fn(char) -> bool) {
        let pid = self.pid().expect("the server is running");
        let state = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `PID (COMM) STATE ...`, where COMM may hold spaces and parentheses.
            stat.rsplit_once(')')?.1.trim_start().chars().next()
        };
        wait_until_sync(&format!("server {pid} to be {what}"), STEP, || {
            state().is_some_and(&ok)
        });
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        signal(c.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits up to `timeout` for the process to exit on its own; its exit
    /// status, or `None` if it is still running (or was not started).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.child.as_mut()?.try_wait().ok().flatten();
            if let Some(st) = status {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A plain HTTP GET on the admin port: (status code, body).
    pub fn http_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        match &self.opts.tls {
            Some(t) => t.certs.https_get(self.admin_port, path),
            None => http_get(self.admin_port, path),
        }
    }

    /// `POST /snapshot` on the (plain) admin port: takes a snapshot and
    /// returns its reply once it is stored.
    pub fn take_snapshot(&self) -> serde_json::Value {
        let (code, body) = http_request(
            self.admin_port,
            "POST",
            "/snapshot",
            Duration::from_secs(120),
        )
        .expect("POST /snapshot");
        assert_eq!(code, 200, "POST /snapshot: {body}");
        serde_json::from_str(&body).expect("POST /snapshot answers JSON")
    }

    /// `/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (_, body) = self.http_get("/status").expect("GET /status");
        serde_json::from_str(&body).expect("status is JSON")
    }

    /// One metric's value (sum over label sets matching `labels`, e.g. `op="create"`).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let (_, text) = self.http_get("/metrics").expect("GET /metrics");
        metric_in(&text, name, labels)
    }

    /// Runs `warden-server replay` on this (stopped) server's folder.
    pub fn replay(&self, upto: Option<u64>) -> Output {
        let mut c = Command::new(bin("warden-server"));
        c.arg("replay").arg("--data-dir").arg(self.data_dir());
        if let Some(u) = upto {
            c.arg("--upto").arg(u.to_string());
        }
        c.output().expect("run warden-server replay")
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if self.is_running() {
            self.signal(libc::SIGCONT);
        }
        self.kill9();
    }
}

/// Sends signal `sig` to the process `pid` (a child the test started).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety concerns.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// One metric's value from the `/metrics` of the admin port `port`: the sum
/// over the label sets matching `labels` (e.g. `op="create"`; empty: all).
pub fn metric(port: u16, name: &str, labels: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics").expect("GET /metrics");
    metric_in(&body, name, labels)
}

/// One metric's value in a `/metrics` text (summed as [`metric`] does).
pub fn metric_in(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{'))
        })
        .filter(|l| labels.is_empty() || l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A plain HTTP/1.0 GET on a loopback port: (status code, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, Duration::from_secs(5))
}

/// A plain HTTP/1.0 request without a body on a loopback port, waiting
/// up to `timeout` for the reply: (status code, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    // One write, as an HTTP client sends a small request.
    s.write_all(
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(parse_http_reply(&buf))
}

/// An HTTP/1 reply's status code and body.
pub fn parse_http_reply(buf: &str) -> (u16, String) {
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Runs the `warden` CLI against a server.
pub fn warden(server: &ServerProc, args: &[&str]) -> Output {
    Command::new(bin("warden"))
        .arg("--servers")
        .arg(server.addr())
        .args(args)
        .output()
        .expect("run warden")
}

/// Polls `f` until it returns true or the deadline passes.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Blocking variant of [`wait_until`].
pub fn wait_until_sync(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file below `dir` with its size, one a line, for failure messages.
pub fn listing(dir: &Path) -> String {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path(), out),
                Ok(m) => out.push_str(&format!("  {} ({} bytes)\n", e.path().display(), m.len())),
                Err(_) => {}
            }
        }
    }
    let mut out = String::new();
    walk(dir, &mut out);
    out
}

/// Where a file's written bytes end: log segments are extended ahead with
/// zeros, which damage tests must not mistake for data.
pub fn written_len(p: &Path) -> u64 {
    let bytes = std::fs::read(p).expect("file exists");
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1) as u64
}

/// Truncates a file to half of its written bytes (for damage tests);
/// returns (written bytes before, length after).
pub fn truncate_half(p: &Path) -> (u64, u64) {
    let len = written_len(p);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
    (len, len / 2)
}
