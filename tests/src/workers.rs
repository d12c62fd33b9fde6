//! Worker processes for the recipe tests (the lock, election and mixed
//! ZooKeeper/Warden lock suites): `recipe_worker` and other children
//! ([`Proc`]), the records they append to ([`Event`], [`events`]), and the
//! clock those records share ([`mono_ns`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, connect_within, session_opts, SLOW_STEP};
use warden_client::Client;

/// Slack on timing bounds for a busy machine.
pub const MARGIN: Duration = Duration::from_secs(1);

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of the workers' records.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass it.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A child process (a `recipe_worker` or `warden`), killed (and
/// continued first, if stopped) when dropped.
pub struct Proc {
    pub child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(dir: &Path, mut cmd: Command) -> Proc {
        let log = dir.join(format!("proc-{}.log", rand::random::<u32>()));
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("process log"))
            .spawn()
            .expect("start a child process");
        Proc { child, log }
    }

    /// A `recipe_worker` with these arguments.
    pub fn worker(dir: &Path, args: &[&str]) -> Proc {
        let mut cmd = Command::new(bin("recipe_worker"));
        cmd.args(args);
        Proc::spawn(dir, cmd)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        crate::signal(self.pid(), sig);
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "process {} did not exit within {timeout:?}; its log:\n{}",
            self.pid(),
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill9();
    }
}

/// One line of a worker's record: `KIND NS TOKEN PID [EXTRA]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub ns: u64,
    pub token: i64,
    pub pid: u32,
    pub extra: String,
}

/// Every complete line of a record, sorted by time.
pub fn events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<Event> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(5, ' ');
            Some(Event {
                kind: f.next()?.to_string(),
                ns: f.next()?.parse().ok()?,
                token: f.next()?.parse().ok()?,
                pid: f.next()?.parse().ok()?,
                extra: f.next().unwrap_or("").to_string(),
            })
        })
        .collect();
    out.sort_by_key(|e| e.ns);
    out
}

/// Buyers per flash-sale worker process; three processes contend.
pub const FLASH_SALE_BUYERS: usize = 30;

/// The flash sale's three `recipe_worker flash-sale` processes, each with
/// [`FLASH_SALE_BUYERS`] buyers taking the fair lock `/sale/lock` to buy
/// from the stock in `/sale/stock`; worker `w` connects to `servers(w)`.
/// Each registers under `/sale/ready` and waits for `/sale/go`; all record
/// to `out`.
pub fn flash_sale_workers(dir: &Path, out: &Path, servers: impl Fn(usize) -> String) -> Vec<Proc> {
    let out = out.to_str().expect("a UTF-8 path");
    let buyers = FLASH_SALE_BUYERS.to_string();
    (0..3)
        .map(|w| {
            let servers = servers(w);
            Proc::worker(
                dir,
                &[
                    "flash-sale",
                    "--servers",
                    &servers,
                    "--tasks",
                    &buyers,
                    "--lock",
                    "/sale/lock",
                    "--stock",
                    "/sale/stock",
                    "--out",
                    out,
                    "--ready",
                    "/sale/ready",
                    "--go",
                    "/sale/go",
                ],
            )
        })
        .collect()
}

/// Checks a flash sale of a stock of 10 from its record (other kinds of
/// line are the caller's to judge): exactly 10 sold, the stock seen
/// counting down one unit at a time, every other buyer told it was sold
/// out at 0, and one fencing token per grant, increasing in time order.
pub fn check_flash_sale(record: &[Event]) {
    let sold: Vec<&Event> = record.iter().filter(|e| e.kind == "SALE").collect();
    let soldout: Vec<&Event> = record.iter().filter(|e| e.kind == "SOLDOUT").collect();
    let seen: Vec<i64> = sold.iter().map(|e| e.extra.parse().unwrap()).collect();
    assert_eq!(
        seen,
        (1..=10).rev().collect::<Vec<i64>>(),
        "the stock each sale saw, in time order (exactly 10 sold, each unit once): {sold:?}"
    );
    assert_eq!(
        soldout.len(),
        3 * FLASH_SALE_BUYERS - 10,
        "buyers told it was sold out"
    );
    assert!(
        soldout.iter().all(|e| e.extra == "0"),
        "a buyer saw a stock other than 0 after the sale: {soldout:?}"
    );
    let mut by_time: Vec<&Event> = sold.iter().chain(&soldout).copied().collect();
    by_time.sort_by_key(|e| e.ns);
    let tokens: Vec<i64> = by_time.iter().map(|e| e.token).collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens not increasing in time order: {tokens:?}"
    );
    let distinct: std::collections::HashSet<&i64> = tokens.iter().collect();
    assert_eq!(distinct.len(), 3 * FLASH_SALE_BUYERS, "one grant per buyer");
}

/// Polls `f` every 20 ms until it yields a value; fails after `timeout`.
pub async fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `dir` has `n` children.
pub async fn wait_children(client: &Client, dir: &str, n: usize, what: &str) {
    let deadline = Instant::now() + SLOW_STEP;
    loop {
        let now = client.get_children(dir).await.unwrap_or_default();
        if now.len() == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A new session on `servers` asking for `timeout`.
pub async fn connect(servers: &str, timeout: Duration) -> Client {
    connect_within(SLOW_STEP, servers, session_opts(timeout, None)).await
}

/// The children of `dir` in queue order (by their sequence suffix).
pub async fn queue(client: &Client, dir: &str) -> Vec<String> {
    let mut names = client.get_children(dir).await.unwrap_or_default();
    names.sort_by_key(|n| n[n.len().saturating_sub(10)..].to_string());
    names
}
