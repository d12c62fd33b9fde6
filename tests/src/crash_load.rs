//! A write load for crash tests: several sessions create nodes under `/d`
//! until the server dies, recording every acknowledged create and the one
//! create each session had in flight; then checks of what a restarted
//! server holds against that record.
//!
//! Used by the SIGKILL test (`tests/tests/durability/restart.rs`) and the
//! power-loss test (`tests/tests/durability/power_loss.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use parking_lot::Mutex;
use warden_client::{Client, CreateMode, Error};

use crate::{wait_until, STEP};

/// A node's path and the data written to it.
pub type Write = (String, Vec<u8>);

/// Long enough that no session of the test expires on its own.
pub const LONG: Duration = Duration::from_secs(60);
/// How long a writer waits for one answer before it counts its create as
/// in flight at the crash (well inside [`STEP`]): a create made after the
/// client saw the break is queued for reconnection, up to the session
/// timeout.
pub const ANSWER: Duration = Duration::from_secs(4);

/// The path and data of writer `i`'s `n`-th create in `round`.
pub fn write_of(round: usize, i: usize, n: usize) -> Write {
    (
        format!("/d/w{i}-{round}-{n}"),
        format!("round {round} writer {i} write {n}").into_bytes(),
    )
}

/// Inverse of [`write_of`] for a child name of `/d`: `(i, round, n)`.
pub fn parse_child(name: &str) -> Option<(usize, usize, usize)> {
    let mut parts = name.strip_prefix('w')?.split('-').map(|x| x.parse().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// Connects with a [`LONG`] session timeout, within [`STEP`].
pub async fn connect(addr: &str) -> Result<Client, Error> {
    crate::timing::try_connect(addr, crate::timing::session_opts(LONG, None)).await
}

/// Writers at work; see [`CreateLoad::start`].
pub struct CreateLoad {
    round: usize,
    acked: Arc<Mutex<Vec<Write>>>,
    writers: Vec<tokio::task::JoinHandle<(usize, usize, String)>>,
}

/// What the writers of one round did, once the server died.
pub struct Stopped {
    /// Every create acknowledged, in no particular order.
    pub acked: Vec<Write>,
    /// The creates sent but not answered: each may or may not have happened.
    pub in_flight: Vec<String>,
    /// How many creates each writer had acknowledged.
    pub stopped_after: Vec<usize>,
    /// Why each writer stopped.
    pub errors: Vec<String>,
}

impl CreateLoad {
    /// Starts `writers` sessions on `addr`, each creating
    /// `write_of(round, i, 0..)` one after another until one fails.
    pub fn start(addr: &str, round: usize, writers: usize) -> CreateLoad {
        let acked: Arc<Mutex<Vec<Write>>> = Arc::default();
        let writers = (0..writers)
            .map(|i| {
                let addr = addr.to_string();
                let acked = acked.clone();
                tokio::spawn(async move {
                    let client = match connect(&addr).await {
                        Ok(c) => c,
                        Err(e) => return (i, 0, format!("connect failed: {e}")),
                    };
                    for n in 0.. {
                        let (path, data) = write_of(round, i, n);
                        let create = client.create(&path, data.clone(), CreateMode::Persistent);
                        match tokio::time::timeout(ANSWER, create).await {
                            Ok(Ok(created)) => {
                                assert_eq!(created, path);
                                acked.lock().push((path, data));
                            }
                            Ok(Err(e)) => return (i, n, e.to_string()),
                            Err(_) => return (i, n, format!("no answer within {ANSWER:?}")),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        CreateLoad {
            round,
            acked,
            writers,
        }
    }

    /// Waits until at least `n` creates are acknowledged.
    pub async fn wait_acked(&self, n: usize) {
        wait_until("writes to be acknowledged", STEP, || {
            let have = self.acked.lock().len();
            async move { have >= n }
        })
        .await;
    }

    /// After the server died: waits for every writer to notice and returns
    /// what they did. Panics if one does not notice within [`STEP`].
    pub async fn stopped(self) -> Stopped {
        let mut out = Stopped {
            acked: Vec::new(),
            in_flight: Vec::new(),
            stopped_after: Vec::new(),
            errors: Vec::new(),
        };
        for w in self.writers {
            let abort = w.abort_handle();
            match tokio::time::timeout(STEP, w).await {
                Ok(Ok((i, n, why))) => {
                    out.stopped_after.push(n);
                    out.errors.push(why);
                    out.in_flight.push(write_of(self.round, i, n).0);
                }
                Ok(Err(e)) => panic!("a writer panicked: {e}"),
                Err(_) => {
                    abort.abort();
                    panic!("a writer did not notice the crash within {STEP:?}");
                }
            }
        }
        out.acked = std::mem::take(&mut *self.acked.lock());
        out
    }
}

/// Reads every `(path, data)` back; returns a line per path that is
/// missing or holds other data.
pub async fn check_all(client: &Client, expected: &[Write]) -> Vec<String> {
    let mut problems = Vec::new();
    for chunk in expected.chunks(256) {
        let reads = join_all(chunk.iter().map(|(p, _)| client.get_data(p))).await;
        for ((path, want), got) in chunk.iter().zip(reads) {
            match got {
                Ok((data, _)) if &data == want => {}
                Ok((data, _)) => problems.push(format!(
                    "{path}: data {:?}, expected {:?}",
                    String::from_utf8_lossy(&data),
                    String::from_utf8_lossy(want)
                )),
                Err(e) => problems.push(format!("{path}: {e}")),
            }
        }
    }
    problems
}

/// Nothing appears that was never sent: every node under `/d` beyond the
/// acknowledged ones must be a create that was in flight at a crash, and
/// hold the data that was sent. Panics otherwise.
pub async fn check_no_invented_nodes(
    client: &Client,
    acked: &[Write],
    in_flight: &HashSet<String>,
) {
    let acked: HashSet<&str> = acked.iter().map(|(p, _)| p.as_str()).collect();
    let mut extra = Vec::new();
    for name in client.get_children("/d").await.expect("list /d") {
        let path = format!("/d/{name}");
        if acked.contains(path.as_str()) {
            continue;
        }
        assert!(
            in_flight.contains(&path),
            "{path} exists but was never in flight at a crash"
        );
        let (i, round, n) = parse_child(&name).expect("a writer's node name");
        extra.push(write_of(round, i, n));
    }
    assert_eq!(
        check_all(client, &extra).await,
        Vec::<String>::new(),
        "nodes created in flight hold other data"
    );
}
