//! Issue 4's acceptance tests 1–4 and 6: real `warden-server` and real
//! `warden-scheduler run` member processes; jobs are defined through the
//! `warden-scheduler job` CLI (or a jobs file), and history is read back
//! with `job history --json`.
//!
//! Each job runs `record.sh`, which appends one line per run to a record
//! file with a single `O_APPEND` write:
//! `<scheduled ms> <member> <start ms> <end ms> <shard items|-> <recovering>`.
//! The tests check the record (and the history), never a sleep: they wait
//! for states with deadlines. Each test has its own server and cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use warden_client::Client;
use warden_tests::scheduler::*;
use warden_tests::wait_until;

/// Test 2's session timeout: long enough that the leader gap holds fires
/// that are late and fires that are past its 1.5 s misfire threshold.
const A2_SESSION_MS: u64 = 4000;
/// A fire decided at most this late is `normal` (the schedule module's
/// `ON_TIME_TOLERANCE_MS`).
const ON_TIME_MS: i64 = 1000;

/// 1. Three members, a command job on a 1-second cron trigger for 60 s:
/// every fire time appears exactly once in the record, with no gap: each
/// second between the first and the last fire ran (nothing misfired in a
/// healthy cluster, so the misfire rules allow no gap), and the history has
/// a `succeeded` entry for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_every_fire_time_exactly_once_over_60s() {
    let mut c = SchedulerCluster::start("a1").await;
    let mut add = vec!["add", "--name", "rec", "--cron", EVERY_SECOND, "--"];
    let argv = c.recorder("record", "0");
    add.extend(argv.iter().map(String::as_str));
    c.cli_ok(&add);
    for i in 1..=3 {
        c.start_member(&format!("m{i}"), None);
    }
    let record = c.path("record");
    wait_until(
        "60 s of fires in the record",
        Duration::from_secs(100),
        || {
            let runs = read_record(&record);
            async move {
                let first = runs.iter().map(|r| r.fire).min();
                let last = runs.iter().map(|r| r.fire).max();
                matches!((first, last), (Some(f), Some(l)) if l - f >= 60_000)
            }
        },
    )
    .await;
    c.stop_all();

    let runs = read_record(&record);
    let dbl = doubled(&runs);
    assert!(
        dbl.is_empty(),
        "fire times run twice: {dbl:?}\n{}",
        fmt_runs(&runs)
    );
    let times: BTreeSet<i64> = runs.iter().map(|r| r.fire).collect();
    let (first, last) = (*times.first().unwrap(), *times.last().unwrap());
    let missing: Vec<i64> = (0..=(last - first) / 1000)
        .map(|k| first + k * 1000)
        .filter(|t| !times.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "seconds with no run between {first} and {last}: {missing:?}\n{}",
        c.dump_logs()
    );
    assert!(
        times.iter().all(|t| t % 1000 == 0),
        "cron fire times are whole seconds"
    );
    let history = c.history("default.rec");
    let ok: BTreeSet<i64> = history
        .iter()
        .filter(|e| str_of(e, "outcome") == "succeeded")
        .filter_map(|e| e["scheduled_ms"].as_i64())
        .collect();
    let no_entry: Vec<&i64> = times.iter().filter(|t| !ok.contains(t)).collect();
    assert!(
        no_entry.is_empty(),
        "runs without a succeeded history entry: {no_entry:?}"
    );
    let misfired: Vec<&Value> = history
        .iter()
        .filter(|e| str_of(e, "outcome") == "misfired")
        .collect();
    assert!(
        misfired.is_empty(),
        "misfires in a healthy cluster: {misfired:?}"
    );
}

/// 2. As 1, with the leader SIGKILLed at 20 s and a worker SIGSTOPped past
/// its session timeout at 40 s (then continued). No fire time runs twice;
/// every second is either in the record or in the history as not run
/// (misfired / worker-lost); the fire times in the leader gap (between the
/// kill and the new leader, ≥ the session timeout) are handled per the
/// policy — `fire-once-now` with a 1.5 s threshold: older ones misfired,
/// the latest fired now — and their history entries say which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2_failover_never_doubles_and_history_explains_the_gap() {
    let mut c = SchedulerCluster::start("a2").await;
    c.session_ms = A2_SESSION_MS;
    let mut add = vec![
        "add",
        "--name",
        "rec",
        "--cron",
        EVERY_SECOND,
        "--misfire",
        "fire-once-now",
        "--misfire-threshold",
        "1500ms",
        "--",
    ];
    let argv = c.recorder("record", "0");
    add.extend(argv.iter().map(String::as_str));
    c.cli_ok(&add);
    for i in 1..=3 {
        c.start_member(&format!("m{i}"), None);
    }
    let record = c.path("record");
    wait_until("a first fire", Duration::from_secs(30), || {
        let r = record.clone();
        async move { !read_record(&r).is_empty() }
    })
    .await;
    let t0 = read_record(&record)[0].fire;
    let at = |secs: i64| {
        let rec = record.clone();
        move || {
            let rec = rec.clone();
            async move { read_record(&rec).iter().any(|r| r.fire >= t0 + secs * 1000) }
        }
    };

    wait_until("20 s of fires", Duration::from_secs(60), at(20)).await;
    let leader = c.leader().await.expect("a leader");
    let kill_ms = now_ms();
    c.members
        .get_mut(&leader)
        .expect("leader is a member")
        .kill9();
    eprintln!("a2: killed leader {leader} at {kill_ms}");

    wait_until("40 s of fires", Duration::from_secs(60), at(40)).await;
    let new_leader = c.leader().await.expect("a new leader");
    assert_ne!(new_leader, leader, "the killed member still leads");
    let worker = c
        .members
        .keys()
        .find(|id| **id != leader && **id != new_leader)
        .expect("a worker")
        .clone();
    c.members[&worker].signal(libc::SIGSTOP);
    let stop_ms = now_ms();
    eprintln!("a2: stopped worker {worker} at {stop_ms}");
    wait_until(
        "the stopped worker's session to expire",
        Duration::from_secs(30),
        || {
            let live = c.live_members();
            let w = worker.clone();
            async move { !live.await.contains(&w) }
        },
    )
    .await;
    wait_until(
        "one more fire after the expiry",
        Duration::from_secs(30),
        at((now_ms() - t0) / 1000 + 1),
    )
    .await;
    c.members[&worker].signal(libc::SIGCONT);
    let cont_ms = now_ms();
    eprintln!("a2: continued worker {worker} at {cont_ms}");
    wait_until("60 s of fires", Duration::from_secs(60), at(60)).await;
    wait_until(
        "the continued worker to register again",
        Duration::from_secs(30),
        || {
            let live = c.live_members();
            let w = worker.clone();
            async move { live.await.contains(&w) }
        },
    )
    .await;
    let end = now_ms();
    wait_until(
        "a fire after the worker came back",
        Duration::from_secs(30),
        || {
            let r = record.clone();
            async move { read_record(&r).iter().any(|x| x.fire > end) }
        },
    )
    .await;
    c.stop_all();

    let runs = read_record(&record);
    let dbl = doubled(&runs);
    assert!(
        dbl.is_empty(),
        "fire times run twice: {dbl:?}\n{}",
        fmt_runs(&runs)
    );

    let history = c.history("default.rec");
    let mut by_time: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for e in &history {
        if let Some(t) = e["scheduled_ms"].as_i64() {
            by_time.entry(t).or_default().push(e);
        }
    }
    let ran: BTreeSet<i64> = runs.iter().map(|r| r.fire).collect();
    let last = *ran.last().unwrap();
    // Every second is accounted for: run, or recorded as not run.
    let mut unaccounted = Vec::new();
    for t in (t0..=last).step_by(1000) {
        let not_run = by_time.get(&t).is_some_and(|es| {
            es.iter()
                .any(|e| matches!(str_of(e, "outcome"), "misfired" | "worker-lost" | "skipped"))
        });
        if !ran.contains(&t) && !not_run {
            unaccounted.push(t);
        }
    }
    assert!(
        unaccounted.is_empty(),
        "seconds neither run nor recorded as misfired/lost: {unaccounted:?}\nrecord:\n{}\nhistory: {history:#?}",
        fmt_runs(&runs)
    );

    // Runs are missing only where a fault was: misfires only in the leader
    // gap, lost runs only at the kill or while the worker was stopped.
    let kill_window = kill_ms - 2000..kill_ms + A2_SESSION_MS as i64 + 5000;
    let stop_window = stop_ms - 2000..cont_ms + 2000;
    for (t, es) in &by_time {
        for e in es {
            let o = str_of(e, "outcome");
            let ok = match o {
                "succeeded" => true,
                "misfired" => kill_window.contains(t),
                _ => kill_window.contains(t) || stop_window.contains(t),
            };
            assert!(
                ok,
                "{o} at {t}, away from the faults (kill {kill_ms}, stop {stop_ms}..{cont_ms}): {e:#}"
            );
        }
    }

    // The leader gap: no leader can exist before the dead one's session
    // expires, so every second in (kill, kill + session - 1 s) was decided
    // more than the on-time tolerance late.
    let gap: Vec<i64> = (t0..=last)
        .step_by(1000)
        .filter(|t| *t > kill_ms && *t < kill_ms + A2_SESSION_MS as i64 - ON_TIME_MS)
        .collect();
    assert!(!gap.is_empty(), "no fire time in the leader gap");
    let has_kind = history.iter().any(|e| e.get("kind").is_some());
    assert!(
        has_kind,
        "history entries do not say how a fire was fired (no `kind` field: normal / late / \
         misfire-fire-now), so the history cannot say which gap fires ran late; see \
         /work/notes/s3-findings.md #1. Gap: {gap:?}; entries there: {:#?}",
        gap.iter()
            .filter_map(|t| by_time.get(t))
            .collect::<Vec<_>>()
    );
    for t in &gap {
        let entries = by_time.get(t).cloned().unwrap_or_default();
        let explained = entries.iter().any(|e| {
            matches!(str_of(e, "outcome"), "misfired")
                || matches!(str_of(e, "kind"), "late" | "misfire-fire-now")
        });
        assert!(
            explained,
            "gap fire {t} (leader killed at {kill_ms}) is not marked late or misfired: {entries:#?}"
        );
    }
    // The policy: fire-once-now runs at most one of a misfired backlog.
    let misfired: Vec<i64> = by_time
        .iter()
        .filter(|(_, es)| es.iter().any(|e| str_of(e, "outcome") == "misfired"))
        .map(|(t, _)| *t)
        .collect();
    let both: Vec<&i64> = misfired.iter().filter(|t| ran.contains(t)).collect();
    assert!(
        both.is_empty(),
        "fire times both misfired and run: {both:?}"
    );
    assert!(
        gap.iter().any(|t| misfired.contains(t)),
        "a {A2_SESSION_MS} ms leader gap with a 1.5 s threshold misfired nothing: {gap:?}"
    );
    // fire-once-now: the misfired backlog of the gap is contiguous, each
    // entry names the policy, and the time right after it ran (the latest
    // missed time, fired now; its kind is its own lateness).
    let gap_misfired: Vec<i64> = misfired
        .iter()
        .copied()
        .filter(|t| *t > kill_ms && *t < kill_ms + A2_SESSION_MS as i64 + 5000)
        .collect();
    let (a, b) = (gap_misfired[0], *gap_misfired.last().unwrap());
    assert_eq!(
        gap_misfired,
        (a..=b).step_by(1000).collect::<Vec<_>>(),
        "the leader gap's misfires are not one backlog"
    );
    for t in &gap_misfired {
        let tail = by_time[t]
            .iter()
            .find(|e| str_of(e, "outcome") == "misfired")
            .map(|e| str_of(e, "output_tail"))
            .unwrap_or("");
        assert!(
            tail.contains("fire-once-now"),
            "misfire entry for {t} does not name the policy: {tail:?}"
        );
    }
    let fired_now = by_time.get(&(b + 1000)).cloned().unwrap_or_default();
    assert!(
        ran.contains(&(b + 1000))
            && fired_now.iter().any(|e| {
                matches!(str_of(e, "kind"), "normal" | "late" | "misfire-fire-now")
            }),
        "fire-once-now did not fire the latest missed time {} after the backlog {a}..={b}: {fired_now:#?}",
        b + 1000
    );
}

/// 3. `forbid` concurrency, a job that runs 2.5 s on a 1-second trigger:
/// no two runs overlap (intervals from the record), and the fires that
/// were skipped are in the history as `skipped`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a3_forbid_never_overlaps_and_records_skips() {
    let mut c = SchedulerCluster::start("a3").await;
    let mut add = vec![
        "add",
        "--name",
        "slow",
        "--cron",
        EVERY_SECOND,
        "--concurrency",
        "forbid",
        "--",
    ];
    let argv = c.recorder("record", "2.5");
    add.extend(argv.iter().map(String::as_str));
    c.cli_ok(&add);
    for i in 1..=3 {
        c.start_member(&format!("m{i}"), None);
    }
    let record = c.path("record");
    wait_until("6 runs", Duration::from_secs(60), || {
        let r = record.clone();
        async move { read_record(&r).len() >= 6 }
    })
    .await;
    c.stop_all();

    let mut runs = read_record(&record);
    runs.sort_by_key(|r| r.start);
    for w in runs.windows(2) {
        assert!(
            w[1].start >= w[0].end,
            "runs overlap: {:?} and {:?}\n{}",
            w[0],
            w[1],
            fmt_runs(&runs)
        );
    }
    assert!(
        runs.iter().all(|r| r.end - r.start >= 2500),
        "each run takes 2.5 s"
    );
    let history = c.history("default.slow");
    let skipped: BTreeSet<i64> = history
        .iter()
        .filter(|e| str_of(e, "outcome") == "skipped")
        .filter_map(|e| e["scheduled_ms"].as_i64())
        .collect();
    let ran: BTreeSet<i64> = runs.iter().map(|r| r.fire).collect();
    assert!(
        !skipped.is_empty(),
        "no skipped fires in the history: {history:#?}"
    );
    assert!(skipped.is_disjoint(&ran), "a fire both skipped and run");
    // Between the first and the last run every second ran or was skipped.
    let (first, last) = (*ran.first().unwrap(), *ran.last().unwrap());
    let lost: Vec<i64> = (first..=last)
        .step_by(1000)
        .filter(|t| !ran.contains(t) && !skipped.contains(t))
        .collect();
    assert!(lost.is_empty(), "fires neither run nor skipped: {lost:?}");
}

/// Groups a sharded record by fire: fire → member → items.
fn by_fire(runs: &[Run]) -> BTreeMap<i64, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<i64, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for r in runs {
        out.entry(r.fire)
            .or_default()
            .entry(r.member.clone())
            .or_default()
            .extend(r.items.iter().cloned());
    }
    out
}

fn all_items() -> BTreeSet<String> {
    (0..10).map(|i| i.to_string()).collect()
}

/// Fires after `after` that ran all 10 items (complete), oldest first.
fn complete_fires(runs: &[Run], after: i64) -> Vec<(i64, BTreeMap<String, Vec<String>>)> {
    by_fire(runs)
        .into_iter()
        .filter(|(t, parts)| {
            *t > after && parts.values().flatten().cloned().collect::<BTreeSet<_>>() == all_items()
        })
        .collect()
}

/// Checks the split of each fire after `after` (up to the last complete
/// one): all 10 items exactly once, over exactly `members`, with sizes
/// `sizes`. Returns member → items of the last fire checked.
fn check_split(
    runs: &[Run],
    after: i64,
    members: &BTreeSet<String>,
    sizes: &[usize],
) -> BTreeMap<String, BTreeSet<String>> {
    let complete = complete_fires(runs, after);
    let last_complete = complete.last().expect("a complete fire").0;
    let mut last = BTreeMap::new();
    for (t, parts) in by_fire(runs)
        .into_iter()
        .filter(|(t, _)| *t > after && *t <= last_complete)
    {
        let items: Vec<&String> = parts.values().flatten().collect();
        let unique: BTreeSet<String> = items.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            items.len(),
            unique.len(),
            "fire {t}: an item ran twice: {parts:?}"
        );
        assert_eq!(
            unique,
            all_items(),
            "fire {t}: items missing: {parts:?}\n{}",
            fmt_runs(runs)
        );
        let got: BTreeSet<String> = parts.keys().cloned().collect();
        assert_eq!(
            &got, members,
            "fire {t}: split over the wrong members: {parts:?}"
        );
        let mut counts: Vec<usize> = parts.values().map(Vec::len).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(counts, sizes, "fire {t}: split {parts:?}");
        last = parts
            .into_iter()
            .map(|(m, i)| (m, i.into_iter().collect()))
            .collect();
    }
    last
}

/// 4. A sharded job, 10 items, 3 members: 4/3/3 per fire, each item
/// exactly once per fire; one member SIGKILLed → 5/5 from the first fire
/// after its member node is gone; members added (m3 restarted, m4 and m5
/// new: five in all) → 2/2/2/2/2 from the first fire after all registered.
/// Items that need not move do not (the survivors keep theirs on the kill
/// and only give items up on the join).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a4_shards_split_4_3_3_then_5_5_then_2x5() {
    let mut c = SchedulerCluster::start("a4").await;
    let mut add = vec![
        "add",
        "--name",
        "sharded",
        "--cron",
        EVERY_SECOND,
        "--shards",
        "10",
        "--strategy",
        "average",
        "--",
    ];
    let argv = c.recorder("record", "0");
    add.extend(argv.iter().map(String::as_str));
    c.cli_ok(&add);
    for i in 1..=3 {
        c.start_member(&format!("m{i}"), None);
    }
    let record = c.path("record");
    let three: BTreeSet<String> = ["m1", "m2", "m3"].iter().map(|s| s.to_string()).collect();
    wait_until("three members", Duration::from_secs(30), || {
        let live = c.live_members();
        let want = three.clone();
        async move { live.await == want }
    })
    .await;
    let joined = now_ms();
    let wait_fires = |after: i64, n: usize| {
        let rec = record.clone();
        move || {
            let rec = rec.clone();
            async move { complete_fires(&read_record(&rec), after + 1000).len() >= n }
        }
    };
    wait_until(
        "3 fires on three members",
        Duration::from_secs(60),
        wait_fires(joined, 3),
    )
    .await;
    let before = check_split(&read_record(&record), joined + 1000, &three, &[4, 3, 3]);

    c.members.get_mut("m3").expect("m3").kill9();
    let two: BTreeSet<String> = ["m1", "m2"].iter().map(|s| s.to_string()).collect();
    wait_until("m3's member node to go", Duration::from_secs(30), || {
        let live = c.live_members();
        let want = two.clone();
        async move { live.await == want }
    })
    .await;
    let gone = now_ms();
    wait_until(
        "3 fires on two members",
        Duration::from_secs(60),
        wait_fires(gone, 3),
    )
    .await;
    let runs = read_record(&record);
    let after_kill = check_split(&runs, gone + 1000, &two, &[5, 5]);
    for m in ["m1", "m2"] {
        assert!(
            after_kill[m].is_superset(&before[m]),
            "{m} lost items it did not need to give up: {:?} → {:?}",
            before[m],
            after_kill[m]
        );
    }
    // Between the kill and the new split no item ran twice in a fire.
    assert_no_item_twice(&runs);

    // 2/2/2/2/2 needs five members: the killed m3 comes back (a restart
    // after a crash) and two new members join.
    c.members.remove("m3");
    for id in ["m3", "m4", "m5"] {
        c.start_member(id, None);
    }
    let want_live: BTreeSet<String> = ["m1", "m2", "m3", "m4", "m5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    wait_until("m3, m4 and m5 registered", Duration::from_secs(30), || {
        let live = c.live_members();
        let want = want_live.clone();
        async move { live.await == want }
    })
    .await;
    let added = now_ms();
    wait_until(
        "3 fires on five members",
        Duration::from_secs(60),
        wait_fires(added, 3),
    )
    .await;
    c.stop_all();
    let runs = read_record(&record);
    let after_add = check_split(&runs, added + 1000, &want_live, &[2, 2, 2, 2, 2]);
    for m in ["m1", "m2"] {
        assert!(
            after_add[m].is_subset(&after_kill[m]),
            "{m} took items it did not need: {:?} → {:?}",
            after_kill[m],
            after_add[m]
        );
    }
    assert_no_item_twice(&runs);
}

/// No shard item ran twice within one fire.
fn assert_no_item_twice(runs: &[Run]) {
    for (t, parts) in by_fire(runs) {
        let items: Vec<&String> = parts.values().flatten().collect();
        let unique: BTreeSet<&String> = items.iter().copied().collect();
        assert_eq!(
            items.len(),
            unique.len(),
            "fire {t}: an item ran twice: {parts:?}"
        );
    }
}

/// Version, mzxid and czxid of every node under `dir`, by name.
async fn stats(client: &Client, dir: &str) -> BTreeMap<String, (i32, i64, i64)> {
    let mut out = BTreeMap::new();
    for name in client.get_children(dir).await.expect("list") {
        let (_, st) = client
            .get_data(&format!("{dir}/{name}"))
            .await
            .expect("read");
        out.insert(name, (st.version, st.mzxid, st.czxid));
    }
    out
}

/// `times_fired` of every trigger state.
async fn times_fired(client: &Client, dir: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for name in client.get_children(dir).await.unwrap_or_default() {
        if let Ok((data, _)) = client.get_data(&format!("{dir}/{name}")).await {
            let v: Value = serde_json::from_slice(&data).unwrap_or_default();
            out.insert(name, v["times_fired"].as_u64().unwrap_or(0));
        }
    }
    out
}

const JOBS_FILE: &str = r#"
[[job]]
name = "report"
group = "reports"
description = "a command job with two triggers"
command = "/bin/sh"
args = ["-c", "true"]
data = { region = "eu" }
concurrency = "forbid"
cron = "* * * * * ?"
misfire = "do-nothing"

[[job.trigger]]
name = "every-2s"
every = "2s"

[[job]]
name = "sharded"
shards = 4
shard_names = ["a", "b", "c", "d"]
strategy = "hash"
command = "/bin/true"
recovery = true
timeout = "10s"

[[job.trigger]]
cron = "*/2 * * * * ?"
tz = "Europe/Berlin"
"#;

/// 6. A member restarted with the same jobs file changes nothing that is
/// already there: every job and trigger node keeps its version and mzxid,
/// no trigger state is recreated (same czxid) or reset (times fired goes
/// on). `job apply` of the same file reports everything unchanged and
/// changes nothing either; a bad file is refused naming job and field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a6_restart_with_same_jobs_file_changes_nothing() {
    let mut c = SchedulerCluster::start("a6").await;
    let file = c.path("jobs.toml");
    std::fs::write(&file, JOBS_FILE).expect("write jobs file");
    c.start_member("m1", Some(&file));
    let (jobs, triggers, states) = (
        format!("{}/jobs", c.root()),
        format!("{}/triggers", c.root()),
        format!("{}/state", c.root()),
    );
    let fired_twice = |min: u64| {
        let client = c.client.clone();
        let states = states.clone();
        move || {
            let client = client.clone();
            let states = states.clone();
            async move {
                let t = times_fired(&client, &states).await;
                t.len() == 3 && t.values().all(|n| *n >= min)
            }
        }
    };
    wait_until(
        "every trigger fired twice",
        Duration::from_secs(60),
        fired_twice(2),
    )
    .await;
    c.stop_all();
    let before = (
        stats(&c.client, &jobs).await,
        stats(&c.client, &triggers).await,
        stats(&c.client, &states).await,
    );
    let fired_before = times_fired(&c.client, &states).await;
    assert_eq!(before.0.len(), 2, "two jobs: {:?}", before.0);
    assert_eq!(before.1.len(), 3, "three triggers: {:?}", before.1);

    c.members.clear();
    c.start_member("m1", Some(&file));
    let min = fired_before.values().max().copied().unwrap_or(0) + 1;
    wait_until("fires after the restart", Duration::from_secs(60), || {
        let client = c.client.clone();
        let states = states.clone();
        let fired_before = fired_before.clone();
        async move {
            let t = times_fired(&client, &states).await;
            t.iter().any(|(k, n)| *n > fired_before[k]) && t.values().any(|n| *n >= min)
        }
    })
    .await;
    let after_jobs = stats(&c.client, &jobs).await;
    let after_triggers = stats(&c.client, &triggers).await;
    assert_eq!(after_jobs, before.0, "job nodes changed on restart");
    assert_eq!(after_triggers, before.1, "trigger nodes changed on restart");
    let after_states = stats(&c.client, &states).await;
    for (name, (_, _, czxid)) in &before.2 {
        assert_eq!(
            after_states.get(name).map(|s| s.2),
            Some(*czxid),
            "trigger state {name} was recreated (reset) on restart"
        );
    }
    let fired_after = times_fired(&c.client, &states).await;
    for (k, n) in &fired_before {
        assert!(
            fired_after[k] >= *n,
            "trigger {k}'s fire count went back: {n} → {}",
            fired_after[k]
        );
    }

    let out: Value = serde_json::from_str(&c.cli_ok(&["apply", file.to_str().unwrap(), "--json"]))
        .expect("apply JSON");
    for a in out.as_array().expect("array") {
        assert_eq!(a["outcome"], "unchanged", "{a}");
        for (_, o) in a["triggers"].as_object().expect("triggers") {
            assert_eq!(o, "unchanged", "{a}");
        }
    }
    assert_eq!(
        stats(&c.client, &jobs).await,
        before.0,
        "job apply rewrote jobs"
    );
    assert_eq!(
        stats(&c.client, &triggers).await,
        before.1,
        "job apply rewrote triggers"
    );
    c.stop_all();

    let bad = c.path("bad.toml");
    std::fs::write(
        &bad,
        JOBS_FILE.replace("strategy = \"hash\"", "strategy = \"hashed\""),
    )
    .expect("write bad file");
    let out = c.cli(&["apply", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad jobs file was accepted");
    assert!(
        err.contains("default.sharded") && err.contains("strategy"),
        "error does not name the job and field: {err}"
    );
}
