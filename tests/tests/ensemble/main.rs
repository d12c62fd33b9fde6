//! A replicated ensemble of real `warden-server` processes: members are
//! SIGKILLed and restarted while clients on every member work, and what the
//! clients were told is checked against what every member holds.

/// A follower behind the purged log catches up from a snapshot.
mod catch_up;
/// Reads, writes and CAS checked for linearizability under faults; a
/// minority leader acknowledges nothing.
mod linearizable;
/// Members added, promoted and removed under load; learners; a rolling
/// restart.
mod membership;
/// The flash sale and a scheduler cluster across leader kills.
mod recipes;
/// Every member stopped with SIGTERM and restarted in turn under load.
mod rolling;
/// kazoo across a leader kill, and zkCli on every member.
mod zookeeper;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use warden_client::{ConnectionState, CreateMode};
use warden_tests::cluster::Cluster;
use warden_tests::{
    connect, free_port, quick_retry, wait_until, within, ServerOpts, ServerProc, PHASE, STEP,
};

/// One ensemble test at a time: three members (and their proxies) under
/// load take a two-core machine, and a second ensemble beside them would
/// starve their heartbeats. Every test that starts a cluster holds it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Client session timeout (the most the members allow at 200 ms ticks): a
/// failover, about a second, fits well inside.
const SESSION: Duration = Duration::from_secs(4);

/// Leader (and follower) kills per run of the write test. Each is a
/// failover and a restart, a few seconds on two cores; set
/// `WARDEN_ENSEMBLE_ROUNDS` for a longer run.
fn rounds() -> usize {
    std::env::var("WARDEN_ENSEMBLE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6)
}

fn opts() -> ServerOpts {
    ServerOpts {
        tick_ms: 200,
        ..Default::default()
    }
}

/// Member `i`'s `/status`, if it answers.
fn status(c: &Cluster, i: usize) -> Option<serde_json::Value> {
    let (code, body) = c.member(i).http_get("/status").ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

/// The member that says it leads, among those listed in `among`, once
/// every one of them agrees on it.
fn agreed_leader(c: &Cluster, among: &[usize]) -> Option<usize> {
    let leaders: BTreeSet<Option<u64>> = among
        .iter()
        .map(|&i| status(c, i).and_then(|s| s["leader_id"].as_u64()))
        .collect();
    match leaders.into_iter().collect::<Vec<_>>()[..] {
        [Some(l)] if among.contains(&(l as usize)) => Some(l as usize),
        _ => None,
    }
}

/// Waits until the members in `among` agree on a leader among them.
async fn leader_among(c: &Cluster, among: &[usize]) -> usize {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if let Some(l) = agreed_leader(c, among) {
            return l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "members {among:?} did not agree on a leader within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every member has applied the same entries and holds the
/// same tree.
async fn converged(c: &Cluster) {
    converged_within(c, STEP).await
}

/// [`converged`] with a deadline of `within`.
async fn converged_within(c: &Cluster, within: Duration) {
    let all: Vec<usize> = c.ids().collect();
    converged_among(c, &all, within).await
}

/// [`converged`] for the members in `among` (the others may be gone).
async fn converged_among(c: &Cluster, among: &[usize], within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let views: BTreeSet<(u64, String)> = among
            .iter()
            .map(|&i| {
                status(c, i)
                    .map(|s| {
                        (
                            s["last_applied"].as_u64().unwrap_or(0),
                            s["state_hash"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .unwrap_or_default()
            })
            .collect();
        if views.len() == 1 && !views.iter().next().unwrap().1.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let logs = c.save_logs("ensemble-not-converged");
            panic!(
                "members {among:?} did not converge: {views:?} (member logs: {})",
                logs.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The connect string with member `first`'s address first, so clients
/// start spread over the members.
fn from(c: &Cluster, first: usize) -> String {
    let n = c.ids().count();
    (0..n)
        .map(|k| c.member((first - 1 + k) % n + 1).addr())
        .collect::<Vec<_>>()
        .join(",")
}

/// What the writers were told.
#[derive(Default)]
struct Record {
    acked: Vec<String>,
    /// Failed or timed out: may or may not have been applied.
    uncertain: Vec<String>,
}

/// Writers creating unique nodes `ROOT/W-N`, each through its own connect
/// string, recording what each create was told, until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    /// Creates `root` and starts `n` writers; writer `w` connects to
    /// `servers(w)`.
    async fn start(
        c: &Cluster,
        root: &str,
        n: usize,
        servers: impl Fn(usize) -> String,
    ) -> Writers {
        let setup = connect(&c.connect_string(), quick_retry(SESSION)).await;
        setup
            .create(root, "", CreateMode::Persistent)
            .await
            .unwrap();
        setup.close().await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let tasks = (0..n)
            .map(|w| {
                let (servers, stop, record) = (servers(w), stop.clone(), record.clone());
                let root = root.to_string();
                tokio::spawn(async move {
                    let client = connect(&servers, quick_retry(SESSION)).await;
                    let mut k = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        let path = format!("{root}/{w}-{k}");
                        k += 1;
                        let r = tokio::time::timeout(
                            STEP,
                            client.create(&path, "v", CreateMode::Persistent),
                        )
                        .await;
                        let mut rec = record.lock();
                        match r {
                            Ok(Ok(_)) => rec.acked.push(path),
                            _ => rec.uncertain.push(path),
                        }
                    }
                })
            })
            .collect();
        Writers {
            stop,
            record,
            tasks,
        }
    }

    /// Waits until `n` more creates have been acknowledged.
    async fn progress(&self, what: &str, n: usize) {
        let start = self.record.lock().acked.len();
        let record = self.record.clone();
        wait_until(what, PHASE, || {
            let done = record.lock().acked.len();
            async move { done >= start + n }
        })
        .await;
    }

    /// Stops the writers; what they were told.
    async fn finish(self) -> Record {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            within(STEP * 2, "a writer stops", t).await.unwrap();
        }
        std::mem::take(&mut *self.record.lock())
    }
}

/// Every acknowledged create under `root` is on member `i`, and nothing
/// that was never written.
async fn holds_exactly(c: &Cluster, i: usize, root: &str, rec: &Record) {
    let client = connect(&c.member(i).addr(), quick_retry(SESSION)).await;
    let held: BTreeSet<String> = client
        .get_children(root)
        .await
        .unwrap()
        .into_iter()
        .map(|k| format!("{root}/{k}"))
        .collect();
    let lost: Vec<&String> = rec.acked.iter().filter(|p| !held.contains(*p)).collect();
    assert!(
        lost.is_empty(),
        "member {i} lost {} acknowledged creates, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let allowed: BTreeSet<&String> = rec.acked.iter().chain(&rec.uncertain).collect();
    let invented: Vec<&String> = held.iter().filter(|p| !allowed.contains(p)).collect();
    assert!(
        invented.is_empty(),
        "member {i} holds {invented:?}, never written"
    );
    client.close().await.unwrap();
}

/// Clients on every member create unique nodes while the leader (and, each
/// third round, a follower) is SIGKILLed and restarted: every create that
/// was acknowledged is on every member at the end, nothing else is, and the
/// members' trees are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_and_follower_kills() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let writers = Writers::start(&c, "/w", 3, |w| from(&c, w + 1)).await;
    for round in 0..rounds() {
        writers.progress("writes before the kill", 30).await;
        let leader = leader_among(&c, &[1, 2, 3]).await;
        let victim = if round % 3 == 2 {
            leader % 3 + 1
        } else {
            leader
        };
        tokio::task::block_in_place(|| c.kill(victim));
        let rest: Vec<usize> = c.ids().filter(|&i| i != victim).collect();
        leader_among(&c, &rest).await;
        writers
            .progress("writes without the killed member", 30)
            .await;
        tokio::task::block_in_place(|| c.restart(victim));
    }
    writers.progress("writes after the last restart", 30).await;
    let rec = writers.finish().await;
    converged(&c).await;
    for i in c.ids() {
        holds_exactly(&c, i, "/w", &rec).await;
    }
    eprintln!(
        "{} rounds: {} creates acknowledged, {} uncertain",
        rounds(),
        rec.acked.len(),
        rec.uncertain.len()
    );
}

/// A hundred sessions spread over the members, each with an ephemeral
/// node and a data watch, live through three leader kills: none expires,
/// no ephemeral goes, each watch fires once for a change made after the
/// failovers, and no client on a surviving member is ever disconnected. A
/// client that goes away without closing (as a killed process would) just
/// before the last kill has its ephemeral removed within its timeout plus
/// the failover, decided by the new leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_ephemerals_and_watches_survive_leader_kills() {
    let _one = ONE_AT_A_TIME.lock().await;
    const N: usize = 100;
    const KILLS: usize = 3;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let admin = connect(&c.connect_string(), quick_retry(SESSION)).await;
    for p in ["/s", "/t"] {
        admin.create(p, "", CreateMode::Persistent).await.unwrap();
    }
    let mut clients = Vec::new();
    let mut watches = Vec::new();
    // Per client: how often its connection broke (Suspended).
    let breaks: Vec<Arc<AtomicUsize>> = (0..N).map(|_| Arc::default()).collect();
    for (i, count) in breaks.iter().enumerate() {
        let client = connect(&from(&c, i % 3 + 1), quick_retry(SESSION)).await;
        let mut changes = client.state_changes();
        let count = count.clone();
        tokio::spawn(async move {
            while let Some(state) = changes.next().await {
                if state == ConnectionState::Suspended {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        client
            .create(&format!("/s/{i}"), "", CreateMode::Ephemeral)
            .await
            .unwrap();
        admin
            .create(&format!("/t/{i}"), "0", CreateMode::Persistent)
            .await
            .unwrap();
        // Reads are local: a member may not have applied the admin's
        // create yet, so the client syncs first, as a ZooKeeper client would.
        client.sync(&format!("/t/{i}")).await.unwrap();
        let (_, _, w) = client.get_data_w(&format!("/t/{i}")).await.unwrap();
        watches.push(w);
        clients.push(client);
    }
    let ids: Vec<u64> = clients.iter().map(|c| c.session_id()).collect();
    // As negotiated: the members cap what a client asks for (20 ticks).
    let timeout = clients[0].session_timeout();
    let mut gone = None;
    for kill in 0..KILLS {
        let leader = leader_among(&c, &[1, 2, 3]).await;
        if kill == KILLS - 1 {
            // Dropped without close: its connection ends, its session lives
            // on until it times out.
            let client = clients.pop().unwrap();
            gone = Some(std::time::Instant::now());
            drop(client);
        }
        let before: Vec<(u64, usize)> = clients
            .iter()
            .zip(&breaks)
            .map(|(client, b)| (client.server_id(), b.load(Ordering::SeqCst)))
            .collect();
        tokio::task::block_in_place(|| c.kill(leader));
        let rest: Vec<usize> = c.ids().filter(|&i| i != leader).collect();
        leader_among(&c, &rest).await;
        tokio::task::block_in_place(|| c.restart(leader));
        for (i, (on, broke)) in before.into_iter().enumerate() {
            if on != leader as u64 {
                assert_eq!(
                    breaks[i].load(Ordering::SeqCst),
                    broke,
                    "client {i} on surviving member {on} was disconnected by the kill of member {leader}"
                );
            }
        }
    }
    let gone_at = gone.unwrap();
    let gone_path = format!("/s/{}", N - 1);
    wait_until(
        "the dropped client's ephemeral is removed",
        timeout * 3,
        || {
            let admin = &admin;
            let gone_path = &gone_path;
            async move { matches!(admin.exists(gone_path).await, Ok(None)) }
        },
    )
    .await;
    let took = gone_at.elapsed();
    eprintln!("the dropped client's ephemeral went {took:?} after it was dropped");
    assert!(
        took < timeout + Duration::from_secs(3),
        "its session outlived its timeout ({timeout:?}) plus a failover: {took:?}"
    );
    leader_among(&c, &[1, 2, 3]).await;
    // Longer than a session timeout since the last failover: a session the
    // new leader dropped from its books would have expired by now.
    tokio::time::sleep(timeout.saturating_sub(took) + Duration::from_secs(1)).await;
    let held = admin.get_children("/s").await.unwrap();
    assert_eq!(held.len(), N - 1, "ephemerals lost: {held:?}");
    for (i, client) in clients.iter().enumerate() {
        assert_eq!(client.session_id(), ids[i], "client {i} has a new session");
        assert_ne!(client.state(), ConnectionState::Lost, "client {i}");
    }
    for i in 0..N {
        admin.set_data(&format!("/t/{i}"), "1", None).await.unwrap();
    }
    for (i, w) in watches.into_iter().enumerate().take(N - 1) {
        let event = within(STEP, "a watch set before the failovers fires", w).await;
        assert!(event.is_ok(), "watch {i}: {event:?}");
    }
    // ZooKeeper tools read the members from /zookeeper/config.
    let (config, _) = admin.get_data("/zookeeper/config").await.unwrap();
    let config = String::from_utf8(config).unwrap();
    for i in c.ids() {
        assert!(
            config.contains(&format!("server.{i}=127.0.0.1:")),
            "/zookeeper/config lacks member {i}:\n{config}"
        );
    }
    for client in clients {
        client.close().await.unwrap();
    }
}

/// A data folder remembers its members: started with a `--peers` that
/// contradicts them, or without `--peers` on an ensemble's folder, a member
/// refuses to start and says why.
#[test]
fn a_member_refuses_peers_that_contradict_its_data() {
    let mut single = ServerProc::start_with(opts());
    single.terminate();
    let peers = (1..=3)
        .map(|i| format!("{i}=127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",");
    single.opts.extra_args = vec!["--peers".into(), peers];
    let err = single
        .try_restart()
        .expect_err("a single server's folder started as a member of three");
    assert!(
        single.log().contains("contradicts the members stored"),
        "{err}; log:\n{}",
        single.log()
    );
}
