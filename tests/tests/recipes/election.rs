//! Leader election end to end (issue 3's acceptance test 7, and
//! `warden elect`): candidates in separate processes (`recipe_worker elect`)
//! and in-process latches and selectors, on real servers, with leaders
//! SIGKILLed and SIGSTOPped past their session timeout. Each test records
//! what happened, then checks the record.
//!
//! Times in records are `CLOCK_MONOTONIC` nanoseconds, the one clock every
//! process on the machine shares. No test sleeps to let something happen:
//! each waits for the state it needs with a generous deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warden_client::recipes::{LeaderLatch, LeaderSelector};
use warden_client::CreateMode;
use warden_tests::workers::*;
use warden_tests::{within, InProcServer, ServerOpts, SLOW_STEP};

use crate::{about_to_be_reaped, reaping_server};

/// The first event of `kind` after `after_ns` (optionally from `pid`).
fn first_after(
    out: &std::path::Path,
    kind: &str,
    after_ns: u64,
    pid: Option<u32>,
) -> Option<Event> {
    events(out)
        .into_iter()
        .find(|e| e.kind == kind && e.ns > after_ns && pid.is_none_or(|p| e.pid == p))
}

/// 7. Three candidate processes. The leader is SIGKILLed: exactly one new
/// leader within the session timeout plus one tick. That leader is
/// SIGSTOPped past its session timeout: another takes over; continued, the
/// ex-leader's write with its stale token is rejected by the fenced
/// resource, and it steps down. Terms' tokens strictly increase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_are_replaced_once_and_a_paused_one_is_fenced_off() {
    let tick = Duration::from_millis(100);
    let session = Duration::from_millis(1000);
    let bound = session + tick + MARGIN;
    let server = InProcServer::start_with(ServerOpts {
        tick_ms: tick.as_millis() as u64,
        ..ServerOpts::default()
    });
    let client = connect(&server.addr(), Duration::from_secs(10)).await;
    client
        .create("/fence", "0", CreateMode::Persistent)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("terms.log");
    let addr = server.addr();
    let mut workers: Vec<Proc> = (0..3)
        .map(|_| {
            Proc::worker(
                dir.path(),
                &[
                    "elect",
                    "--servers",
                    &addr,
                    "--path",
                    "/elect",
                    "--out",
                    out.to_str().unwrap(),
                    "--timeout-ms",
                    "1000",
                    "--fence",
                    "/fence",
                ],
            )
        })
        .collect();
    let first = poll("a first leader", SLOW_STEP, || {
        first_after(&out, "LEAD", 0, None)
    })
    .await;
    poll("the first leader's write", SLOW_STEP, || {
        first_after(&out, "WRITE_OK", first.ns, Some(first.pid))
    })
    .await;
    wait_children(&client, "/elect", 3, "all three candidates queued").await;

    // Kill the leader.
    let kill_at = mono_ns();
    workers
        .iter_mut()
        .find(|w| w.pid() == first.pid)
        .unwrap()
        .kill9();
    let second = poll("a leader after the kill", SLOW_STEP, || {
        first_after(&out, "LEAD", kill_at, None)
    })
    .await;
    let took = Duration::from_nanos(second.ns - kill_at);
    eprintln!("a killed leader was replaced after {took:?}");
    assert!(
        took <= bound,
        "the new leader came {took:?} after the kill (session {session:?}, tick {tick:?})"
    );
    assert!(second.token > first.token);
    poll("the second leader's write", SLOW_STEP, || {
        first_after(&out, "WRITE_OK", second.ns, Some(second.pid))
    })
    .await;

    // Pause the new leader past its session timeout.
    let stop_at = mono_ns();
    workers
        .iter()
        .find(|w| w.pid() == second.pid)
        .unwrap()
        .signal(libc::SIGSTOP);
    let third = poll("a leader after the pause", SLOW_STEP, || {
        first_after(&out, "LEAD", stop_at, None)
    })
    .await;
    let took = Duration::from_nanos(third.ns - stop_at);
    eprintln!("a paused leader was replaced after {took:?}");
    assert!(
        took <= bound,
        "the new leader came {took:?} after the pause"
    );
    assert!(third.token > second.token);
    poll("the third leader's write", SLOW_STEP, || {
        first_after(&out, "WRITE_OK", third.ns, Some(third.pid))
    })
    .await;

    // Wake the ex-leader: it writes once more with its stale token.
    let cont_at = mono_ns();
    workers
        .iter()
        .find(|w| w.pid() == second.pid)
        .unwrap()
        .signal(libc::SIGCONT);
    let stale = poll("the ex-leader's write after waking", SLOW_STEP, || {
        events(&out)
            .into_iter()
            .find(|e| e.pid == second.pid && e.ns > cont_at && e.kind.starts_with("WRITE_"))
    })
    .await;
    assert_eq!(stale.kind, "WRITE_REJECTED", "{stale:?}");
    assert_eq!(stale.token, second.token);
    assert!(
        stale.extra.parse::<i64>().unwrap() >= third.token,
        "{stale:?}"
    );
    poll("the ex-leader to step down", SLOW_STEP, || {
        first_after(&out, "LOST", cont_at, Some(second.pid))
    })
    .await;
    // The current leader keeps writing after the ex-leader woke.
    let later = mono_ns();
    poll("a later write of the current leader", SLOW_STEP, || {
        first_after(&out, "WRITE_OK", later, Some(third.pid))
    })
    .await;
    let end = mono_ns();
    for w in &mut workers {
        w.kill9();
    }

    // Check the record. A leader whose connection dropped (a busy machine)
    // gives leadership up and, its session alive, may lead again in the
    // same term: one term, several LEAD lines with one token and one pid.
    let record = events(&out);
    let mut terms: Vec<&Event> = Vec::new();
    for e in record.iter().filter(|e| e.kind == "LEAD") {
        match terms.iter().find(|t| t.token == e.token) {
            Some(t) => assert_eq!(t.pid, e.pid, "two leaders with one token: {t:?} {e:?}"),
            None => terms.push(e),
        }
    }
    let tokens: Vec<i64> = terms.iter().map(|e| e.token).collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "terms' tokens do not strictly increase: {tokens:?}"
    );
    let terms_in = |from: u64, to: u64| terms.iter().filter(|e| e.ns > from && e.ns < to).count();
    assert_eq!(terms_in(0, kill_at), 1, "terms before the kill: {terms:?}");
    assert_eq!(
        terms_in(kill_at, stop_at),
        1,
        "new terms after the kill: {terms:?}"
    );
    assert_eq!(
        terms_in(stop_at, end),
        1,
        "new terms after the pause: {terms:?}"
    );
    // No write with a stale token was ever accepted: accepted writes'
    // tokens never go down, and the ex-leader wrote nothing after waking.
    let oks: Vec<&Event> = record.iter().filter(|e| e.kind == "WRITE_OK").collect();
    assert!(oks.windows(2).all(|w| w[0].token <= w[1].token), "{oks:?}");
    assert!(
        !oks.iter().any(|e| e.pid == second.pid && e.ns > cont_at),
        "the ex-leader acted after waking: {oks:?}"
    );
    let (fence, _) = client.get_data("/fence").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&fence), third.token.to_string());
}

/// 7. `resign()`: the next candidate leads at once (well before any
/// session could expire), and the resigned one queues again at the back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resigning_hands_leadership_over_at_once() {
    let server = InProcServer::start();
    let addr = server.addr();
    let (c1, c2) = (
        connect(&addr, Duration::from_secs(4)).await,
        connect(&addr, Duration::from_secs(4)).await,
    );
    let l1 = LeaderLatch::start(&c1, "/resign", "one");
    let t1 = within(SLOW_STEP, "the first leader", l1.await_leadership())
        .await
        .unwrap();
    let l2 = LeaderLatch::start(&c2, "/resign", "two");
    wait_children(&c1, "/resign", 2, "the second candidate queued").await;
    assert!(!l2.has_leadership());

    let started = Instant::now();
    within(SLOW_STEP, "resign", l1.resign()).await;
    let t2 = within(SLOW_STEP, "the second leader", l2.await_leadership())
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!("leadership moved {took:?} after resign()");
    assert!(
        took < Duration::from_millis(1000),
        "resign took {took:?} to hand over"
    );
    assert!(t2.token > t1.token);
    assert!(!l1.has_leadership());
    // The resigned candidate is back in line, behind the new leader.
    wait_children(&c1, "/resign", 2, "the resigned candidate queued again").await;
    within(SLOW_STEP, "resign again", l2.resign()).await;
    let t3 = within(
        SLOW_STEP,
        "the first candidate leads again",
        l1.await_leadership(),
    )
    .await
    .unwrap();
    assert!(t3.token > t2.token);
    l2.close().await;
    l1.close().await;
}

/// 7. Two latches: never both leading at a sampled instant, exactly one in
/// steady state, across many hand-overs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_latches_never_lead_at_once() {
    let server = InProcServer::start();
    let addr = server.addr();
    let (c1, c2) = (
        connect(&addr, Duration::from_secs(4)).await,
        connect(&addr, Duration::from_secs(4)).await,
    );
    let latches = [
        LeaderLatch::start(&c1, "/pair", "a"),
        LeaderLatch::start(&c2, "/pair", "b"),
    ];
    // A sampler thread reads both latches' state over and over: A, B, A,
    // B, ... Any three consecutive samples all true mean both led at once.
    let rx = [latches[0].leadership(), latches[1].leadership()];
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut samples, mut both) = (0u64, 0u64);
            let mut last = [false, false];
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let now = rx[i % 2].borrow().is_some();
                if now && last[0] && last[1] {
                    both += 1;
                }
                last = [last[1], now];
                samples += 1;
                i += 1;
                if i.is_multiple_of(64) {
                    std::thread::yield_now();
                }
            }
            (samples, both)
        })
    };
    let leader_of = |latches: &[LeaderLatch; 2]| -> Vec<usize> {
        (0..2).filter(|&i| latches[i].has_leadership()).collect()
    };
    let first = tokio::select! {
        t = latches[0].await_leadership() => (0, t.unwrap()),
        t = latches[1].await_leadership() => (1, t.unwrap()),
    };
    let (mut leader, mut token) = (first.0, first.1.token);
    for _ in 0..20 {
        // The last resigner is back in line (else resigning would hand
        // leadership to nobody, and the resigner would lead again).
        wait_children(&c1, "/pair", 2, "both candidates queued").await;
        for _ in 0..50 {
            assert_eq!(leader_of(&latches), vec![leader], "steady state");
        }
        within(SLOW_STEP, "resign", latches[leader].resign()).await;
        let next = 1 - leader;
        let t = within(
            SLOW_STEP,
            "the other leads",
            latches[next].await_leadership(),
        )
        .await
        .unwrap();
        assert!(t.token > token);
        (leader, token) = (next, t.token);
    }
    stop.store(true, Ordering::Relaxed);
    let (samples, both) = sampler.join().unwrap();
    eprintln!("{samples} samples over 20 hand-overs");
    assert_eq!(
        both, 0,
        "both latches led at once in {both} of {samples} samples"
    );
    assert!(samples > 1000, "too few samples: {samples}");
    let [a, b] = latches;
    a.close().await;
    b.close().await;
}

/// `LeaderSelector` with re-queue: one task at a time, terms alternate
/// between the candidates, each term's token larger than the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_run_one_task_at_a_time() {
    let server = InProcServer::start();
    let addr = server.addr();
    let running = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let terms: Arc<Mutex<Vec<(&'static str, i64)>>> = Arc::default();
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for id in ["a", "b"] {
        let c = connect(&addr, Duration::from_secs(4)).await;
        clients.push(c.clone());
        let selector = LeaderSelector::new(&c, "/select", id, true);
        let (running, overlaps, terms) = (running.clone(), overlaps.clone(), terms.clone());
        tasks.push(tokio::spawn(selector.run(move |term| {
            let (running, overlaps, terms) = (running.clone(), overlaps.clone(), terms.clone());
            async move {
                if running.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                terms.lock().unwrap().push((id, term.token));
                tokio::time::sleep(Duration::from_millis(50)).await;
                running.fetch_sub(1, Ordering::SeqCst);
            }
        })));
    }
    poll("ten terms", SLOW_STEP, || {
        (terms.lock().unwrap().len() >= 10).then_some(())
    })
    .await;
    for t in &tasks {
        t.abort();
    }
    let terms = terms.lock().unwrap().clone();
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two tasks ran at once");
    assert!(
        terms.windows(2).all(|w| w[0].1 < w[1].1),
        "tokens do not increase: {terms:?}"
    );
    // With re-queue both candidates get terms. (Strict turns are not
    // guaranteed: if the one that just finished has not queued again by
    // the time the other finishes, the other leads again.)
    for id in ["a", "b"] {
        assert!(
            terms.iter().filter(|t| t.0 == id).count() >= 2,
            "{id} led too rarely: {terms:?}"
        );
    }
    drop(clients);
}

/// 8. `warden elect`: of two candidates only the leader runs the command;
/// SIGKILLing the leader's `warden` lets the other run it, after the
/// session timeout; the command's exit status is the tool's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_elect_runs_the_command_only_while_leading() {
    let tick = Duration::from_millis(100);
    let session = Duration::from_millis(1000);
    let server = InProcServer::start_with(ServerOpts {
        tick_ms: tick.as_millis() as u64,
        ..ServerOpts::default()
    });
    let addr = server.addr();
    let warden = warden_tests::bin("warden");
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("runs.log");

    let out = std::process::Command::new(&warden)
        .args(["--servers", &addr, "elect", "/cli-once", "--"])
        .args(["sh", "-c", "echo $WARDEN_FENCING_TOKEN; exit 5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i64>()
            .unwrap()
            > 0
    );

    // The command records its start (with its own pid) and runs until
    // stopped; a SIGKILLed warden takes it down too (PR_SET_PDEATHSIG).
    let script = format!(
        "echo \"START $PPID $WARDEN_FENCING_TOKEN $$\" >> {f}; \
         while true; do sleep 0.05; done",
        f = shared.display()
    );
    let elect = |id: &str| {
        let mut cmd = std::process::Command::new(&warden);
        cmd.args(["--servers", &addr, "--timeout-ms", "1000"])
            .args(["elect", "/cli-elect", "--id", id, "--"])
            .args(["sh", "-c", &script]);
        Proc::spawn(dir.path(), cmd)
    };
    let mut candidates = [elect("one"), elect("two")];
    let lines = || -> Vec<Vec<String>> {
        std::fs::read_to_string(&shared)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').map(str::to_string).collect())
            .collect()
    };
    let first = poll("the leader's command to start", SLOW_STEP, || {
        lines().into_iter().find(|l| l[0] == "START")
    })
    .await;
    let leader_pid: u32 = first[1].parse().unwrap();
    let leader = candidates
        .iter()
        .position(|c| c.pid() == leader_pid)
        .expect("the command's parent is one of the two");
    let c = connect(&addr, Duration::from_secs(10)).await;
    let deadline = Instant::now() + SLOW_STEP;
    while c.get_children("/cli-elect").await.unwrap_or_default().len() != 2 {
        assert!(
            Instant::now() < deadline,
            "the candidates did not both queue; their logs:\n{}\n{}",
            candidates[0].log(),
            candidates[1].log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines().len(), 1, "only the leader runs the command");

    let killed = Instant::now();
    candidates[leader].kill9();
    let other = candidates[1 - leader].pid().to_string();
    poll("the other candidate's command to start", SLOW_STEP, || {
        lines()
            .into_iter()
            .find(|l| l[0] == "START" && l[1] == other)
    })
    .await;
    let took = killed.elapsed();
    eprintln!("the other candidate took over {took:?} after the kill");
    assert!(
        took <= session + tick + MARGIN,
        "took over {took:?} after the kill"
    );
    let record = lines();
    assert_eq!(record.len(), 2, "{record:?}");
    assert!(record[1][2].parse::<i64>().unwrap() > first[2].parse::<i64>().unwrap());
    // The killed leader's command did not outlive it.
    let orphan: i32 = first[3].parse().unwrap();
    poll("the killed leader's command to be gone", SLOW_STEP, || {
        // SAFETY: kill(pid, 0) only checks that the process exists.
        (unsafe { libc::kill(orphan, 0) } != 0).then_some(())
    })
    .await;

    // Interrupted, the leader stops its command and leaves (status 130).
    candidates[1 - leader].signal(libc::SIGINT);
    let code = candidates[1 - leader].wait(SLOW_STEP);
    assert_eq!(code, Some(130), "{}", candidates[1 - leader].log());
    wait_children(&c, "/cli-elect", 0, "the candidates' nodes to go").await;
}

/// A candidate whose election's parent container is being reaped (it just
/// lost its last child) still joins and leads: joining retries the
/// container's creation (as Curator's `creatingParentContainersIfNeeded`)
/// rather than waiting forever for a connection change that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_joins_while_its_parent_container_is_reaped() {
    let server = reaping_server();
    let c = connect(&server.addr(), Duration::from_secs(4)).await;
    for i in 0..20 {
        let root = format!("/reaped{i}");
        about_to_be_reaped(&c, &root).await;
        let latch = LeaderLatch::start(&c, &format!("{root}/election"), "x");
        let led = tokio::time::timeout(Duration::from_secs(5), latch.await_leadership()).await;
        assert!(
            matches!(led, Ok(Ok(_))),
            "round {i}: the only candidate never led ({led:?}); {root} exists: {}, client {:?}",
            c.exists(&root).await.unwrap().is_some(),
            c.state()
        );
        within(SLOW_STEP, "close", latch.close()).await;
    }
}

/// After its client is closed, a latch closes at once (its task ends
/// rather than spinning on errors). In a worker process, so a task that
/// never yields cannot hang this test's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latch_closes_after_its_client_closed() {
    let server = InProcServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Proc::worker(
        dir.path(),
        &[
            "latch-close",
            "--servers",
            &server.addr(),
            "--path",
            "/closing",
            "--rounds",
            "5",
        ],
    );
    let code = worker.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", worker.log());
}
