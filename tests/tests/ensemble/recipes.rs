//! Applications on the ensemble while its leader is SIGKILLed: the flash
//! sale of the recipe tests (`recipe_worker flash-sale`, the fair lock) and
//! a `warden-scheduler` cluster with a 1-second cron job (the scheduler
//! tests' harness, `warden_tests::scheduler`), each connected to all three
//! members.

use std::collections::BTreeSet;
use std::time::Duration;

use warden_client::CreateMode;
use warden_tests::cluster::Cluster;
use warden_tests::scheduler::{
    doubled, fmt_runs, now_ms, read_record, SchedulerCluster, EVERY_SECOND,
};
use warden_tests::workers::{
    check_flash_sale, events, flash_sale_workers, mono_ns, poll, wait_children, Event,
};
use warden_tests::{connect, quick_retry, wait_until, ServerOpts, PHASE, SLOW_STEP};

use super::{from, leader_among, opts, SESSION};

/// The last `n` lines of every member's log, for failure messages.
pub(super) fn member_logs(c: &Cluster, n: usize) -> String {
    c.ids()
        .map(|i| {
            let log = c.member(i).log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(n)..];
            format!("==== member {i} (last {n} lines)\n{}", tail.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The flash sale of `tests/tests/recipes/lock.rs` on the ensemble: 3
/// `recipe_worker` processes × 30 buyers, each through the fair lock, on a
/// connect string with all three members, against a stock of 10; the
/// leader is SIGKILLed once the first sales are in (and restarted). Proves
/// the lock and the stock survive a failover: every worker finishes,
/// exactly 10 units are sold (each stock value 10..1 seen by exactly one
/// buyer, counting down in time order), the other 80 buyers see 0 (the
/// stock never goes negative), every grant's fencing token is unique and
/// increasing, and every member holds a stock of 0 at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_sells_exactly_the_stock_across_a_leader_kill() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sales.log");
    let admin = connect(&c.connect_string(), quick_retry(SESSION)).await;
    for (path, data) in [("/sale", ""), ("/sale/stock", "10"), ("/sale/ready", "")] {
        admin
            .create(path, data, CreateMode::Persistent)
            .await
            .unwrap();
    }
    let mut workers = flash_sale_workers(dir.path(), &out, |w| from(&c, w + 1));
    // Start all 90 buyers at one moment, so the three processes contend.
    wait_children(&admin, "/sale/ready", 3, "the workers to connect").await;
    admin
        .create("/sale/go", "", CreateMode::Persistent)
        .await
        .unwrap();

    let sales = |rec: &[Event]| rec.iter().filter(|e| e.kind == "SALE").count();
    poll("the first sales", SLOW_STEP, || {
        (sales(&events(&out)) >= 2).then_some(())
    })
    .await;
    let leader = leader_among(&c, &[1, 2, 3]).await;
    let connections = c.member(leader).metric("warden_connections", "");
    let kill_ns = mono_ns();
    tokio::task::block_in_place(|| c.kill(leader));
    let sold_before = sales(&events(&out));
    eprintln!(
        "flash sale: killed leader {leader} ({connections} client connections) after {sold_before} sales"
    );
    let rest: Vec<usize> = c.ids().filter(|&i| i != leader).collect();
    leader_among(&c, &rest).await;
    tokio::task::block_in_place(|| c.restart(leader));

    for w in &mut workers {
        let code = tokio::task::block_in_place(|| w.wait(PHASE));
        assert_eq!(
            code,
            Some(0),
            "a worker failed; its log:\n{}\n{}",
            w.log(),
            member_logs(&c, 60)
        );
    }

    let record = events(&out);
    let sold: Vec<&Event> = record.iter().filter(|e| e.kind == "SALE").collect();
    let soldout: Vec<&Event> = record.iter().filter(|e| e.kind == "SOLDOUT").collect();
    let other: Vec<&Event> = record
        .iter()
        .filter(|e| !matches!(e.kind.as_str(), "SALE" | "SOLDOUT"))
        .collect();
    eprintln!(
        "flash sale: {} sales, {} sold out, {} grants after the kill, other lines: {other:?}",
        sold.len(),
        soldout.len(),
        sold.iter()
            .chain(&soldout)
            .filter(|e| e.ns > kill_ns)
            .count()
    );
    // A holder whose member died sees its lock `Suspended` until it
    // reconnects (`NOT_HELD ... Suspended`; a `Lost` lock would mean a
    // session lost across the failover), and a release in flight through
    // the dying leader may end in `ConnectionLoss` (`RELEASE_UNSURE`; the
    // recipe deletes the node in the background).
    assert!(
        other.iter().all(|e| (e.kind == "NOT_HELD"
            && e.extra == "Suspended")
            || e.kind == "RELEASE_UNSURE"),
        "unexpected lines in the record: {other:?}"
    );
    check_flash_sale(&record);
    for i in c.ids() {
        let client = connect(&c.member(i).addr(), quick_retry(SESSION)).await;
        client.sync("/sale/stock").await.unwrap();
        let (stock, _) = client.get_data("/sale/stock").await.unwrap();
        assert_eq!(stock, b"0", "member {i}'s stock");
        client.close().await.unwrap();
    }
    // Every buyer's lock node goes (a release cut by the kill is finished
    // in the background).
    wait_until("the lock queue to empty", SLOW_STEP, || {
        let admin = &admin;
        async move {
            admin.sync("/sale/lock").await.is_ok()
                && admin
                    .get_children("/sale/lock")
                    .await
                    .map(|k| k.is_empty())
                    .unwrap_or(true)
        }
    })
    .await;
}

/// How soon after a kill of the Warden leader the scheduler must run a
/// fire time later than the kill: a failover, the scheduler's session
/// timeout if its own leader's session goes, and slack for a busy machine.
const RESUME: Duration = Duration::from_secs(15);

/// The scheduler members' session timeout: a Warden failover (about a
/// second) fits inside.
const SCHEDULER_SESSION_MS: u64 = 4000;

/// Three Warden members for a scheduler cluster: sessions may last up to
/// 10 s (the scheduler asks for [`SCHEDULER_SESSION_MS`]).
pub(super) fn scheduler_ensemble() -> Cluster {
    Cluster::start(
        3,
        ServerOpts {
            max_session_timeout_ms: Some(10_000),
            ..opts()
        },
    )
}

/// A `warden-scheduler` cluster `name` of three members (m1–m3, sessions
/// of [`SCHEDULER_SESSION_MS`]) on every member of `c`, with a job `tick`
/// on a 1-second cron trigger that records its runs; the record's path.
pub(super) async fn ticking_scheduler(
    c: &Cluster,
    name: &str,
) -> (SchedulerCluster, std::path::PathBuf) {
    let mut s = SchedulerCluster::on(&c.connect_string(), name).await;
    s.session_ms = SCHEDULER_SESSION_MS;
    let mut add = vec!["add", "--name", "tick", "--cron", EVERY_SECOND, "--"];
    let argv = s.recorder("record", "0");
    add.extend(argv.iter().map(String::as_str));
    s.cli_ok(&add);
    for i in 1..=3 {
        s.start_member(&format!("m{i}"), None);
    }
    let record = s.path("record");
    (s, record)
}

/// A condition for `wait_until`: at least `n` runs in `record` with a fire
/// time after `ms`.
pub(super) fn runs_after(
    record: &std::path::Path,
    ms: i64,
    n: usize,
) -> impl FnMut() -> std::future::Ready<bool> {
    let record = record.to_path_buf();
    move || {
        let runs = read_record(&record);
        std::future::ready(runs.iter().filter(|r| r.fire > ms).count() >= n)
    }
}

/// A `warden-scheduler` cluster of three `run` members connected to all
/// three Warden members, with a command job on a 1-second cron trigger;
/// the Warden leader is SIGKILLed twice (and restarted after each). Proves
/// the scheduler keeps firing across failovers without doubling: no fire
/// time is in the record twice, after each kill a fire time later than the
/// kill runs within [`RESUME`], and every second with no run lies in a
/// kill's window (from the kill to the first run after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_cron_fires_once_each_across_two_leader_kills() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(scheduler_ensemble);
    let (mut s, record) = ticking_scheduler(&c, "ensemble").await;
    let runs_after = |ms: i64, n: usize| runs_after(&record, ms, n);
    wait_until("the first fires", SLOW_STEP, runs_after(0, 3)).await;

    let mut windows = Vec::new();
    for round in 0..2 {
        let leader = leader_among(&c, &[1, 2, 3]).await;
        let kill_ms = now_ms();
        tokio::task::block_in_place(|| c.kill(leader));
        let rest: Vec<usize> = c.ids().filter(|&i| i != leader).collect();
        leader_among(&c, &rest).await;
        let deadline = kill_ms + RESUME.as_millis() as i64;
        wait_until(
            "a fire time later than the kill to run",
            RESUME,
            runs_after(kill_ms, 1),
        )
        .await;
        let resumed = read_record(&record)
            .into_iter()
            .filter(|r| r.fire > kill_ms)
            .map(|r| r.start)
            .min()
            .unwrap();
        eprintln!(
            "scheduler: round {round}: killed Warden leader {leader} at {kill_ms}; \
             the first later fire time ran {} ms after",
            resumed - kill_ms
        );
        assert!(
            resumed <= deadline,
            "no fire after the kill at {kill_ms} until {resumed}\n{}",
            s.dump_logs()
        );
        windows.push(kill_ms..resumed);
        tokio::task::block_in_place(|| c.restart(leader));
        // Fires go on with every member back.
        wait_until(
            "fires after the restart",
            SLOW_STEP,
            runs_after(now_ms(), 3),
        )
        .await;
    }
    s.stop_all();

    let runs = read_record(&record);
    let dbl = doubled(&runs);
    assert!(
        dbl.is_empty(),
        "fire times run twice: {dbl:?}\n{}\n{}\n{}",
        fmt_runs(&runs),
        s.dump_logs(),
        member_logs(&c, 40)
    );
    let times: BTreeSet<i64> = runs.iter().map(|r| r.fire).collect();
    let (first, last) = (*times.first().unwrap(), *times.last().unwrap());
    let unexplained: Vec<i64> = (first..=last)
        .step_by(1000)
        .filter(|t| !times.contains(t))
        .filter(|t| !windows.iter().any(|w| (w.start - 1000..=w.end).contains(t)))
        .collect();
    assert!(
        unexplained.is_empty(),
        "seconds with no run away from the kills ({windows:?}): {unexplained:?}\n{}\n{}",
        fmt_runs(&runs),
        s.dump_logs()
    );
    eprintln!(
        "scheduler: {} fire times from {first} to {last}, {} not run",
        times.len(),
        (last - first) / 1000 + 1 - times.len() as i64
    );
}
