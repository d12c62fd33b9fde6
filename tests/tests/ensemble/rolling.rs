//! A rolling restart, the way to upgrade an ensemble: each member in turn,
//! the leader last, is stopped with SIGTERM (it hands leadership off and
//! moves its clients) and started again, while Warden and kazoo sessions
//! hold ephemerals and watches and write, and while a scheduler cluster
//! and an election run on it.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use warden_client::{AddWatchMode, ConnectOptions, ConnectionState, CreateMode, EventType};
use warden_tests::cluster::Cluster;
use warden_tests::scheduler::{doubled, fmt_runs, now_ms, read_record};
use warden_tests::zookeeper::{compat_file, python_with_kazoo, Script};
use warden_tests::{bin, connect, quick_retry, wait_until, within, PHASE, SLOW_STEP, STEP};

use super::recipes::{member_logs, runs_after, scheduler_ensemble, ticking_scheduler};
use super::{converged, from, leader_among, opts, SESSION};

/// Warden sessions held through the restarts.
const SESSIONS: usize = 50;
/// kazoo sessions held through the restarts.
const KAZOO_SESSIONS: usize = 10;
/// The pause between one session's writes (50 sessions: 500 writes/s).
const PACE: Duration = Duration::from_millis(100);

/// No retries by the client library: an operation that failed at all is
/// seen failing.
fn no_retry() -> ConnectOptions {
    let mut o = quick_retry(SESSION);
    o.retry.max_retries = 0;
    o
}

/// One Warden session at work: its writes to its own node, the persistent
/// watch's events on it, and anything that went wrong.
struct Worker {
    written: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    lost: Arc<AtomicBool>,
    /// Times its connection broke (`Suspended`): a member that moves its
    /// clients with GoAway breaks none.
    breaks: Arc<AtomicU64>,
    session: u64,
    client: warden_client::Client,
    task: tokio::task::JoinHandle<()>,
}

async fn worker(c: &Cluster, i: usize, stop: Arc<AtomicBool>) -> Worker {
    let client = connect(&from(c, i % 3 + 1), no_retry()).await;
    let node = format!("/r/w/{i}");
    client
        .create(&format!("/r/e/{i}"), "", CreateMode::Ephemeral)
        .await
        .unwrap();
    client
        .create(&node, "0", CreateMode::Persistent)
        .await
        .unwrap();
    let mut watch = client
        .add_watch(&node, AddWatchMode::Persistent)
        .await
        .unwrap();
    let events = Arc::new(AtomicU64::new(0));
    let e = events.clone();
    tokio::spawn(async move {
        while let Some(ev) = watch.next().await {
            if ev.event_type == EventType::NodeDataChanged {
                e.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let lost = Arc::new(AtomicBool::new(false));
    let breaks = Arc::new(AtomicU64::new(0));
    let (l, b, mut states) = (lost.clone(), breaks.clone(), client.state_changes());
    tokio::spawn(async move {
        while let Some(s) = states.next().await {
            match s {
                ConnectionState::Lost => l.store(true, Ordering::SeqCst),
                ConnectionState::Suspended => {
                    b.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    });
    let written = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let (w, f, cl) = (written.clone(), failures.clone(), client.clone());
    let task = tokio::spawn(async move {
        let mut k = 0u64;
        while !stop.load(Ordering::SeqCst) {
            match cl.set_data(&node, (k + 1).to_string(), None).await {
                Ok(_) => {
                    k += 1;
                    w.store(k, Ordering::SeqCst);
                }
                Err(e) => f.lock().push(format!("set {node} to {}: {e}", k + 1)),
            }
            tokio::time::sleep(PACE).await;
        }
    });
    Worker {
        written,
        events,
        failures,
        lost,
        breaks,
        session: client.session_id(),
        client,
        task,
    }
}

/// kazoo_rolling.py at work: its sessions are up once it says `READY`.
fn start_kazoo(c: &Cluster) -> Script {
    let mut py = python_with_kazoo();
    py.arg(compat_file("kazoo_rolling.py"))
        .arg("--hosts")
        .arg(c.zk_connect_string())
        .arg("--sessions")
        .arg(KAZOO_SESSIONS.to_string());
    let mut script = Script::spawn(py, "kazoo_rolling.py");
    let ready = script.line(PHASE).unwrap_or_else(|e| panic!("{e}"));
    assert!(ready.starts_with("READY"), "kazoo_rolling.py: {ready}");
    script
}

/// Every member in turn, the leader last, is stopped with SIGTERM and
/// started again, while 50 Warden sessions (spread over the members, each
/// with an ephemeral node and a persistent watch on a node it writes every
/// 100 ms) and 10 kazoo sessions (each with an ephemeral node and a
/// `DataWatch` on a node it writes) go on. Afterwards: no Warden operation
/// failed (the client library retries nothing here), no connection broke
/// (each moved on GoAway), no session was lost or changed, every ephemeral is there, every node holds its session's
/// last acknowledged write, and every persistent watch saw exactly one
/// event per write; kazoo's own checks pass (it may retry a
/// ConnectionLoss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_nothing_and_fails_no_request() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let admin = connect(&c.connect_string(), quick_retry(SESSION)).await;
    for p in ["/r", "/r/e", "/r/w"] {
        admin.create(p, "", CreateMode::Persistent).await.unwrap();
    }
    let kazoo = tokio::task::block_in_place(|| start_kazoo(&c));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for i in 0..SESSIONS {
        workers.push(worker(&c, i, stop.clone()).await);
    }
    let total =
        |ws: &[Worker]| -> u64 { ws.iter().map(|w| w.written.load(Ordering::SeqCst)).sum() };
    let progress = |ws: &[Worker], what: &str| {
        let start = total(ws);
        let written: Vec<Arc<AtomicU64>> = ws.iter().map(|w| w.written.clone()).collect();
        let what = what.to_string();
        async move {
            wait_until(&what, PHASE, || {
                let now: u64 = written.iter().map(|w| w.load(Ordering::SeqCst)).sum();
                async move { now >= start + 2 * SESSIONS as u64 }
            })
            .await;
        }
    };
    progress(&workers, "writes before the restarts").await;

    let leader = leader_among(&c, &[1, 2, 3]).await;
    let order: Vec<usize> = (1..=3).filter(|&i| i != leader).chain([leader]).collect();
    for m in order {
        let began = std::time::Instant::now();
        let status = tokio::task::block_in_place(|| c.terminate(m));
        assert!(
            status.is_some_and(|s| s.success()),
            "member {m} did not stop cleanly on SIGTERM ({status:?}):\n{}",
            member_logs(&c, 40)
        );
        eprintln!("member {m} stopped in {:?}", began.elapsed());
        let rest: Vec<usize> = (1..=3).filter(|&i| i != m).collect();
        leader_among(&c, &rest).await;
        progress(&workers, "writes while a member is down").await;
        tokio::task::block_in_place(|| c.restart(m));
        converged(&c).await;
        progress(&workers, "writes after a restart").await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for w in &mut workers {
        tasks.push(std::mem::replace(&mut w.task, tokio::spawn(async {})));
    }
    for t in tasks {
        within(STEP, "a writer stops", t).await.unwrap();
    }

    let failures: Vec<String> = workers
        .iter()
        .flat_map(|w| w.failures.lock().clone())
        .collect();
    assert!(
        failures.is_empty(),
        "{} Warden operations failed during the rolling restart, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let ephemerals = admin.get_children("/r/e").await.unwrap();
    assert_eq!(ephemerals.len(), SESSIONS, "ephemerals lost");
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(w.client.session_id(), w.session, "session {i} changed");
        assert!(!w.lost.load(Ordering::SeqCst), "session {i} was lost");
        assert_eq!(
            w.breaks.load(Ordering::SeqCst),
            0,
            "session {i}'s connection broke: a stopping member must move it (GoAway)"
        );
        let written = w.written.load(Ordering::SeqCst);
        let (data, _) = w.client.get_data(&format!("/r/w/{i}")).await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&data),
            written.to_string(),
            "session {i}'s last acknowledged write"
        );
        let events = w.events.clone();
        wait_until(
            &format!("session {i}'s watch sees {written} changes"),
            STEP,
            || {
                let seen = events.load(Ordering::SeqCst);
                async move { seen >= written }
            },
        )
        .await;
        assert_eq!(
            w.events.load(Ordering::SeqCst),
            written,
            "session {i}: one watch event per write"
        );
    }
    let report = tokio::task::block_in_place(|| {
        let mut kazoo = kazoo;
        kazoo.say("DONE");
        kazoo.expect_passed(4, PHASE, "kazoo through the rolling restart")
    });
    eprintln!(
        "{} Warden writes by {SESSIONS} sessions; kazoo: {report}",
        total(&workers)
    );
    for w in workers {
        w.client.close().await.unwrap();
    }
}

/// A `warden-scheduler` cluster of three members with a 1-second cron job,
/// and three `warden elect` processes, all connected to every Warden
/// member, through a rolling restart (SIGTERM and restart of each member,
/// the leader last). Recorded, then checked: the scheduler ran every fire
/// time from its first to its last exactly once (none doubled, none
/// missed), and the election had exactly one leader the whole time — the
/// first leader's command was never stopped and no other ever started,
/// since no session was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_and_an_election_keep_one_leader_through_a_rolling_restart() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(scheduler_ensemble);
    let (mut s, record) = ticking_scheduler(&c, "rolling").await;
    let leaders = s.path("leaders");
    let script = format!(
        "echo start $WARDEN_FENCING_TOKEN >> {0}; \
         trap 'echo stop $WARDEN_FENCING_TOKEN >> {0}; exit 0' TERM; \
         while :; do sleep 0.1; done",
        leaders.display()
    );
    let mut electors: Vec<std::process::Child> = (0..3)
        .map(|_| {
            std::process::Command::new(bin("warden"))
                .args(["--servers", &c.connect_string(), "--timeout-ms", "4000"])
                .args(["elect", "/rolling-election", "--", "sh", "-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run warden elect")
        })
        .collect();
    let runs_after = |ms: i64, n: usize| runs_after(&record, ms, n);
    wait_until("the first fires", SLOW_STEP, runs_after(0, 3)).await;
    wait_until("an election leader", SLOW_STEP, || {
        let started = std::fs::read_to_string(&leaders).unwrap_or_default();
        async move { started.contains("start") }
    })
    .await;

    let leader = leader_among(&c, &[1, 2, 3]).await;
    let order: Vec<usize> = (1..=3).filter(|&i| i != leader).chain([leader]).collect();
    for m in order {
        let status = tokio::task::block_in_place(|| c.terminate(m));
        assert!(
            status.is_some_and(|s| s.success()),
            "member {m}: {status:?}"
        );
        wait_until(
            "fires with a member down",
            SLOW_STEP,
            runs_after(now_ms(), 2),
        )
        .await;
        tokio::task::block_in_place(|| c.restart(m));
        wait_until("fires after a restart", SLOW_STEP, runs_after(now_ms(), 2)).await;
    }
    s.stop_all();
    let still: Vec<bool> = electors
        .iter_mut()
        .map(|e| matches!(e.try_wait(), Ok(None)))
        .collect();
    for e in &mut electors {
        let _ = e.kill();
        let _ = e.wait();
    }
    let runs = read_record(&record);
    let dbl = doubled(&runs);
    assert!(
        dbl.is_empty(),
        "fire times run twice: {dbl:?}\n{}",
        fmt_runs(&runs)
    );
    let times: BTreeSet<i64> = runs.iter().map(|r| r.fire).collect();
    let (first, last) = (*times.first().unwrap(), *times.last().unwrap());
    let missed: Vec<i64> = (first..=last)
        .step_by(1000)
        .filter(|t| !times.contains(t))
        .collect();
    assert!(
        missed.is_empty(),
        "fire times not run through the rolling restart: {missed:?}\n{}\n{}",
        fmt_runs(&runs),
        s.dump_logs()
    );
    let lines = std::fs::read_to_string(&leaders).unwrap();
    assert_eq!(
        lines.lines().filter(|l| l.starts_with("start")).count(),
        1,
        "the election changed leaders during a graceful rolling restart:\n{lines}"
    );
    assert!(
        !lines.contains("stop"),
        "the leader's command was stopped:\n{lines}"
    );
    assert_eq!(still, [true, true, true], "a `warden elect` process exited");
    eprintln!(
        "scheduler: {} fire times from {first} to {last}, each run once",
        times.len()
    );
}
