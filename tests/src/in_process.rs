//! A warden-server inside the test process, for tests whose point is
//! semantics rather than process death: its ports are bound to port 0
//! before it starts (no race for a free port), it keeps its log and
//! snapshots in memory (the in-memory storage engine: no disk, no fsync),
//! and it runs on its own runtime thread, so sync and async tests use it
//! alike.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use warden_server::config::{Config, RunArgs};
use warden_server::server::{run_with, Listeners};

use crate::{http_get, ServerOpts};

/// A server running in this process; stopped when dropped.
pub struct InProcServer {
    client: SocketAddr,
    zk: SocketAddr,
    admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// The configured data folder's parent: private, though the in-memory
    /// engine writes nothing there.
    _tmp: tempfile::TempDir,
}

/// How long a stop may take before the server's thread is left to finish
/// on its own (clients still connected hold a graceful stop).
const STOP_WAIT: Duration = Duration::from_secs(3);

impl InProcServer {
    pub fn start() -> InProcServer {
        Self::start_with(ServerOpts::default())
    }

    /// Starts a server with `opts` (its `data_dir` and `extra_args` are not
    /// used: the folder is a fresh temporary one) and waits until it is
    /// healthy.
    pub fn start_with(opts: ServerOpts) -> InProcServer {
        let tmp = tempfile::Builder::new()
            .prefix("warden-inproc-")
            .tempdir()
            .expect("temp dir");
        let any = "127.0.0.1:0".parse::<SocketAddr>().expect("address");
        let args = RunArgs {
            data_dir: Some(tmp.path().join("data")),
            listen: Some(any),
            admin_listen: Some(any),
            zk_listen: Some(any.to_string()),
            tick_ms: Some(opts.tick_ms),
            min_session_timeout_ms: opts.min_session_timeout_ms,
            max_session_timeout_ms: opts.max_session_timeout_ms,
            snapshot_every: opts.snapshot_every,
            super_digest: opts.super_digest.clone(),
            unsafe_in_memory: true,
            ..Default::default()
        };
        let config = Config::resolve(&args).expect("a valid test configuration");
        let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("warden-inproc".into())
            .spawn(move || -> Result<(), String> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async move {
                    let listeners = Listeners::bind(&config).await.map_err(|e| e.to_string())?;
                    let local = |l: &tokio::net::TcpListener| l.local_addr().expect("bound");
                    let addrs = (
                        local(&listeners.client),
                        local(listeners.zk.as_ref().expect("zk enabled")),
                        local(&listeners.admin),
                    );
                    let _ = addrs_tx.send(addrs);
                    run_with(config, listeners, async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .map_err(|e| e.to_string())
                })
            })
            .expect("spawn the server thread");
        let (client, zk, admin) = match addrs_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => panic!(
                "the in-process server did not bind: {:?}",
                thread.join().map(|r| r.err())
            ),
        };
        let mut s = InProcServer {
            client,
            zk,
            admin,
            stop: Some(stop),
            thread: Some(thread),
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.http_get("/health").is_ok_and(|(code, _)| code == 200) {
            if s.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let why = s.thread.take().map(|t| t.join());
                panic!("the in-process server stopped while starting: {why:?}");
            }
            assert!(
                Instant::now() < deadline,
                "the in-process server was not healthy within 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        s
    }

    /// `127.0.0.1:PORT` of the client API.
    pub fn addr(&self) -> String {
        self.client.to_string()
    }

    /// The client API's port.
    pub fn port(&self) -> u16 {
        self.client.port()
    }

    /// `127.0.0.1:PORT` of the ZooKeeper wire protocol.
    pub fn zk_addr(&self) -> String {
        self.zk.to_string()
    }

    /// The admin HTTP port.
    pub fn admin_port(&self) -> u16 {
        self.admin.port()
    }

    /// A plain HTTP GET on the admin port: (status code, body).
    pub fn http_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(self.admin.port(), path)
    }

    /// `/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (_, body) = self.http_get("/status").expect("GET /status");
        serde_json::from_str(&body).expect("status is JSON")
    }

    /// One metric's value (see [`crate::metric`]).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        crate::metric(self.admin.port(), name, labels)
    }

    /// Stops the server (as SIGTERM would) and returns how the run ended.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop_and_wait()
            .unwrap_or_else(|| Err(format!("still stopping after {STOP_WAIT:?}")))
    }

    fn stop_and_wait(&mut self) -> Option<Result<(), String>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take()?;
        let deadline = Instant::now() + STOP_WAIT;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(
            thread
                .join()
                .unwrap_or_else(|_| Err("the server thread panicked".into())),
        )
    }
}

impl Drop for InProcServer {
    fn drop(&mut self) {
        let _ = self.stop_and_wait();
    }
}
