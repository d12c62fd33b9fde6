//! End-to-end test support: start real `warden-server` processes on free
//! loopback ports with their own temporary data folders, signal them
//! (SIGKILL, SIGSTOP, SIGTERM), read their admin endpoints, and run the
//! `warden` command-line tool against them.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the test
//! executables (`target/<profile>/`); `WARDEN_BIN_DIR` overrides that.

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
    let dir = exe.parent().expect("deps dir").parent().expect("profile dir");
    dir.to_path_buf()
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

/// A free loopback port (bound and released; the server retries on a clash).
pub fn free_port() -> u16 {
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
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            tick_ms: 200,
            snapshot_every: None,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
        }
    }
}

/// A running (or stopped) `warden-server` process with its own folder.
pub struct ServerProc {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub opts: ServerOpts,
    tmp: tempfile::TempDir,
}

impl ServerProc {
    pub fn start() -> ServerProc {
        Self::start_with(ServerOpts::default())
    }

    pub fn start_with(opts: ServerOpts) -> ServerProc {
        let tmp = tempfile::Builder::new()
            .prefix("warden-e2e-")
            .tempdir()
            .expect("temp dir");
        let mut s = ServerProc {
            child: None,
            port: 0,
            admin_port: 0,
            opts,
            tmp,
        };
        for attempt in 0..5 {
            s.port = free_port();
            s.admin_port = free_port();
            if s.spawn_and_wait().is_ok() {
                return s;
            }
            eprintln!("server start attempt {attempt} failed; retrying with other ports");
        }
        panic!("warden-server did not start; log:\n{}", s.log());
    }

    /// The data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
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

    /// The command line that starts this server (without spawning it).
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin("warden-server"));
        c.arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.addr())
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{}", self.admin_port))
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
        c.env("RUST_LOG", "info,warden_server=debug,openraft=warn");
        c
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {st}"));
                }
            }
            if self.http_get("/health").map(|(code, _)| code == 200).unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("not healthy within 30 s".into())
    }

    /// Starts the process again on the same folder and ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a stopped server only");
        self.spawn_and_wait()
            .unwrap_or_else(|e| panic!("restart failed: {e}; log:\n{}", self.log()));
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid has no memory-safety concerns.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
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
        // SAFETY: as in `signal`.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
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

    /// A plain HTTP GET on the admin port: (status code, body).
    pub fn http_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(self.admin_port, path)
    }

    /// `/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (_, body) = self.http_get("/status").expect("GET /status");
        serde_json::from_str(&body).expect("status is JSON")
    }

    /// One metric's value (sum over label sets matching `labels`, e.g. `op="create"`).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let (_, body) = self.http_get("/metrics").expect("GET /metrics");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name) && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{')))
            .filter(|l| labels.is_empty() || l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
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

/// A minimal HTTP/1.0 GET against 127.0.0.1:port.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
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
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Blocking variant of [`wait_until`].
pub fn wait_until_sync(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Truncates a file to half its size (for damage tests).
pub fn truncate_half(p: &Path) {
    let len = std::fs::metadata(p).expect("file exists").len();
    let f = std::fs::OpenOptions::new().write(true).open(p).expect("open");
    f.set_len(len / 2).expect("truncate");
}
