//! Bounds on how long a test waits, and a bounded client connect.

use std::time::Duration;

use warden_client::{Client, ConnectOptions, Error, RetryPolicy};

/// How long any single step may take before a test fails.
pub const STEP: Duration = Duration::from_secs(10);

/// How long a step may take when it waits on other processes on a loaded
/// two-core machine: worker processes starting, electing or timing out,
/// zkCli starting a JVM, an external reference ZooKeeper.
pub const SLOW_STEP: Duration = Duration::from_secs(20);

/// How long a step may take when it waits on many clients at once on a
/// loaded two-core machine: contending recipe clients, sessions expiring, a
/// set partitioner's rebalance.
pub const PHASE: Duration = Duration::from_secs(30);

/// Awaits `f`, failing the test if it takes longer than `d`.
pub async fn within<T>(d: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(d, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {d:?}: {what}"),
    }
}

/// A client of `addr` with `opts`; fails the test if it does not connect
/// within [`STEP`].
pub async fn connect(addr: &str, opts: ConnectOptions) -> Client {
    connect_within(STEP, addr, opts).await
}

/// A client of `addr` with `opts`; fails the test if it does not connect
/// within `d`.
pub async fn connect_within(d: Duration, addr: &str, opts: ConnectOptions) -> Client {
    within(d, "Client::connect", Client::connect(addr, opts))
        .await
        .expect("connect")
}

/// Connects to `addr` with `opts`, returning the client's error (for tests
/// of refusals); fails the test if there is no answer within [`STEP`].
pub async fn try_connect(addr: &str, opts: ConnectOptions) -> Result<Client, Error> {
    within(STEP, "Client::connect", Client::connect(addr, opts)).await
}

/// Options for a new session with this timeout or, with
/// `resume = Some((id, password))`, for resuming that session.
pub fn session_opts(session_timeout: Duration, resume: Option<(u64, Vec<u8>)>) -> ConnectOptions {
    let (session_id, password) = match resume {
        Some((id, pw)) => (Some(id), pw),
        None => (None, Vec::new()),
    };
    ConnectOptions {
        session_timeout,
        session_id,
        password,
        ..Default::default()
    }
}

/// Options with this session timeout and a quick back-off, so reconnects
/// follow a restart or a cut closely.
pub fn quick_retry(session_timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        session_timeout,
        retry: RetryPolicy {
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(300),
            max_retries: 10,
        },
        ..Default::default()
    }
}
