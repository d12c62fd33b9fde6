//! The lock recipe end to end (issue 3's acceptance tests 1–6, and
//! `warden lock`): real server processes, contenders in separate processes
//! (`recipe_worker`) or on separate sessions, faults injected with signals
//! and a proxy. Each test records what happened, then checks the record.
//!
//! Times in records are `CLOCK_MONOTONIC` nanoseconds, the one clock every
//! process on the machine shares. No test sleeps to let something happen:
//! each waits for the state it needs (a node list, a metric, a line in a
//! record) with a generous deadline.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use warden_client::recipes::{Lock, LockState};
use warden_client::CreateMode;
use warden_tests::proxy::Proxy;
use warden_tests::workers::*;
use warden_tests::{within, InProcServer, ServerOpts, SLOW_STEP};

use crate::{about_to_be_reaped, reaping_server};

/// 1. Flash sale: 3 processes × 30 concurrent tasks against a stock of 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_sells_each_unit_exactly_once() {
    let server = InProcServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sales.log");
    let client = connect(&server.addr(), Duration::from_secs(10)).await;
    client
        .create("/sale", Vec::new(), CreateMode::Persistent)
        .await
        .unwrap();
    client
        .create("/sale/stock", "10", CreateMode::Persistent)
        .await
        .unwrap();
    client
        .create("/sale/ready", Vec::new(), CreateMode::Persistent)
        .await
        .unwrap();

    let mut workers = flash_sale_workers(dir.path(), &out, |_| server.addr());
    // Start all 90 tasks at one moment, so the three processes contend.
    let mut ready = 0;
    let deadline = Instant::now() + SLOW_STEP;
    while ready < 3 {
        assert!(Instant::now() < deadline, "workers did not all connect");
        ready = client.get_children("/sale/ready").await.unwrap().len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client
        .create("/sale/go", Vec::new(), CreateMode::Persistent)
        .await
        .unwrap();
    for w in &mut workers {
        let code = w.wait(Duration::from_secs(60));
        assert_eq!(code, Some(0), "a worker failed; its log:\n{}", w.log());
    }

    let record = events(&out);
    assert!(
        record
            .iter()
            .all(|e| e.kind == "SALE" || e.kind == "SOLDOUT"),
        "a task saw its lock not held: {record:?}"
    );
    check_flash_sale(&record);
    let (stock, _) = client.get_data("/sale/stock").await.unwrap();
    assert_eq!(stock, b"0");
    // Every contender's node is gone.
    assert!(queue(&client, "/sale/lock").await.is_empty());
}

/// The protected resource of test 2: accepts an action only with a token
/// at least as high as any it has seen.
struct Fence {
    highest: i64,
}

impl Fence {
    fn offer(&mut self, token: i64) -> bool {
        if token >= self.highest {
            self.highest = token;
            true
        } else {
            false
        }
    }
}

/// The worker holding the lock right now according to the record, if any:
/// the latest `ACQ` not followed by its `REL`/`LOST`.
fn holder_of(record: &[Event], skip: &HashSet<u32>) -> Option<Event> {
    let last = record.iter().rev().find(|e| e.kind == "ACQ")?;
    let ended = record
        .iter()
        .any(|e| e.token == last.token && (e.kind == "REL" || e.kind == "LOST"));
    (!ended && !skip.contains(&last.pid)).then(|| last.clone())
}

/// Stops the current holder: waits for a grant newer than `after_ns`,
/// SIGSTOPs its process and confirms from the record that it had not
/// released yet (else continues it and tries the next grant).
async fn stop_a_holder(
    out: &std::path::Path,
    workers: &[Proc],
    after_ns: u64,
    skip: &HashSet<u32>,
) -> Event {
    let mut after = after_ns;
    loop {
        let acq = poll("a new grant", SLOW_STEP, || {
            holder_of(&events(out), skip).filter(|e| e.ns > after)
        })
        .await;
        let w = workers
            .iter()
            .find(|w| w.pid() == acq.pid)
            .expect("a known pid");
        w.signal(libc::SIGSTOP);
        let record = events(out);
        if holder_of(&record, skip).as_ref() == Some(&acq) {
            return acq;
        }
        w.signal(libc::SIGCONT);
        after = acq.ns;
    }
}

/// 2. Mutual exclusion under faults: five holders in separate processes; a
/// holder SIGKILLed, a waiter SIGKILLed, a holder SIGSTOPped past its
/// session timeout and continued. Fencing tokens strictly increase, and a
/// fenced resource accepts every action of every holder except the paused
/// one's actions after its successor was granted the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_never_overlap_under_kills_and_pauses() {
    let server = InProcServer::start_with(ServerOpts {
        tick_ms: 100,
        ..ServerOpts::default()
    });
    let session = Duration::from_millis(1000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("holds.log");
    let addr = server.addr();
    let mut workers: Vec<Proc> = (0..5)
        .map(|_| {
            Proc::worker(
                dir.path(),
                &[
                    "hold",
                    "--servers",
                    &addr,
                    "--lock",
                    "/mutex",
                    "--out",
                    out.to_str().unwrap(),
                    "--hold-ms",
                    "150",
                    "--timeout-ms",
                    "1000",
                ],
            )
        })
        .collect();
    let grants = |n: usize| {
        let out = out.clone();
        move || {
            let r = events(&out);
            (r.iter().filter(|e| e.kind == "ACQ").count() >= n).then_some(())
        }
    };
    poll("the first grants", SLOW_STEP, grants(4)).await;

    // A holder dies while holding.
    let mut dead: HashSet<u32> = HashSet::new();
    let killed = stop_a_holder(&out, &workers, 0, &dead).await;
    let kill_at = mono_ns();
    workers
        .iter_mut()
        .find(|w| w.pid() == killed.pid)
        .unwrap()
        .kill9();
    dead.insert(killed.pid);
    let next = poll("a grant after the holder was killed", SLOW_STEP, || {
        events(&out)
            .into_iter()
            .find(|e| e.kind == "ACQ" && e.ns > kill_at)
    })
    .await;
    let waited = Duration::from_nanos(next.ns - kill_at);
    eprintln!("a killed holder was replaced after {waited:?}");
    assert!(
        waited <= session + Duration::from_millis(100) + MARGIN,
        "the next grant came {waited:?} after the holder was killed"
    );

    // A waiter dies.
    let holder = holder_of(&events(&out), &dead).map(|e| e.pid);
    let waiter = workers
        .iter_mut()
        .find(|w| !dead.contains(&w.pid()) && Some(w.pid()) != holder)
        .unwrap();
    dead.insert(waiter.pid());
    waiter.kill9();
    let n = events(&out).iter().filter(|e| e.kind == "ACQ").count();
    poll("grants after a waiter died", SLOW_STEP, grants(n + 3)).await;

    // A holder pauses past its session timeout; its successor is granted
    // the lock (and touches the resource); then the paused one wakes.
    let paused = stop_a_holder(&out, &workers, next.ns, &dead).await;
    let successor = poll("a successor of the paused holder", SLOW_STEP, || {
        events(&out)
            .into_iter()
            .find(|e| e.kind == "ACQ" && e.ns > paused.ns)
    })
    .await;
    assert_ne!(successor.pid, paused.pid);
    // Not before the paused holder's session could have expired (it was
    // last heard from just before its grant was recorded).
    let stopped_for = Duration::from_nanos(successor.ns - paused.ns);
    assert!(
        stopped_for >= session - Duration::from_millis(100),
        "the successor was granted after only {stopped_for:?}"
    );
    let cont_at = mono_ns();
    workers
        .iter()
        .find(|w| w.pid() == paused.pid)
        .unwrap()
        .signal(libc::SIGCONT);
    poll(
        "the paused holder to act again and queue anew",
        SLOW_STEP,
        || {
            events(&out)
                .into_iter()
                .find(|e| e.pid == paused.pid && e.kind == "ACQ" && e.ns > cont_at)
        },
    )
    .await;
    let n = events(&out).iter().filter(|e| e.kind == "ACQ").count();
    poll("grants after the pause", SLOW_STEP, grants(n + 2)).await;
    for w in &mut workers {
        w.kill9();
    }

    // Check the record.
    let record = events(&out);
    let acqs: Vec<&Event> = record.iter().filter(|e| e.kind == "ACQ").collect();
    let tokens: Vec<i64> = acqs.iter().map(|e| e.token).collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens do not strictly increase in grant order: {tokens:?}"
    );
    assert!(
        !record
            .iter()
            .any(|e| e.token == killed.token && e.kind == "REL"),
        "the killed worker did hold when killed"
    );
    let mut fence = Fence { highest: 0 };
    let mut rejected: Vec<&Event> = Vec::new();
    // token -> (granted at, last accepted action at)
    let mut intervals: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for e in record
        .iter()
        .filter(|e| matches!(e.kind.as_str(), "ACQ" | "ACT" | "REL"))
    {
        if fence.offer(e.token) {
            let iv = intervals.entry(e.token).or_insert((e.ns, e.ns));
            iv.1 = e.ns;
        } else {
            rejected.push(e);
        }
    }
    // Accepted actions all fall in non-overlapping intervals.
    let ivs: Vec<(u64, u64)> = intervals.values().copied().collect();
    for w in ivs.windows(2) {
        assert!(w[0].1 < w[1].0, "intervals overlap: {w:?}");
    }
    // Only the paused holder was fenced off, and only after it woke.
    for e in &rejected {
        assert_eq!(e.pid, paused.pid, "a live holder was fenced off: {e:?}");
        assert_eq!(e.token, paused.token, "{e:?}");
        assert!(e.ns > cont_at, "{e:?}");
    }
    // Woken, it acted with its stale token (or saw the loss first, and
    // did not): every such action was rejected.
    let stale: Vec<&Event> = record
        .iter()
        .filter(|e| e.token == paused.token && e.ns > cont_at)
        .collect();
    assert!(
        !stale.is_empty(),
        "the paused holder recorded nothing after it woke"
    );
    for e in stale.iter().filter(|e| e.kind != "LOST") {
        assert!(rejected.contains(e), "a stale action was accepted: {e:?}");
    }
    assert!(paused.token < successor.token);
    eprintln!(
        "{} grants; the paused holder's {} stale actions were rejected ({:?})",
        acqs.len(),
        rejected.len(),
        stale.iter().map(|e| &e.kind).collect::<Vec<_>>()
    );
}

/// 3. No herd: with 50 waiters queued, one release sends exactly one watch
/// notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_notifies_exactly_one_of_fifty_waiters() {
    let server = InProcServer::start();
    let addr = server.addr();
    let holder_client = connect(&addr, Duration::from_secs(10)).await;
    let holder = Lock::new(&holder_client, "/herd/lock");
    let mut guard = holder.acquire().await.unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for i in 0..50 {
        let c = connect(&addr, Duration::from_secs(10)).await;
        clients.push(c.clone());
        let tx = tx.clone();
        tokio::spawn(async move {
            let g = Lock::new(&c, "/herd/lock").acquire().await;
            let _ = tx.send((i, g));
        });
    }
    poll("50 queued waiters", SLOW_STEP, || {
        let n = server.metric("warden_watches", "");
        // The holder's own watch on its node, and one per waiter.
        (n == 51.0).then_some(())
    })
    .await;
    let queued = queue(&holder_client, "/herd/lock").await;
    assert_eq!(queued.len(), 51);

    let before = server.metric("warden_watch_events_total", "");
    guard.release().await.unwrap();
    let (_, next) = within(SLOW_STEP, "the next waiter", rx.recv())
        .await
        .unwrap();
    let next = next.unwrap();
    let after = server.metric("warden_watch_events_total", "");
    assert_eq!(
        next.path().rsplit('/').next().unwrap(),
        queued[1],
        "the lock went to the second in line"
    );
    assert!(rx.try_recv().is_err(), "a second waiter got the lock");
    assert_eq!(
        after - before,
        1.0,
        "watch notifications sent for one release"
    );
    drop(next);
    for c in clients {
        let _ = c.close().await;
    }
}

/// 4. A middle waiter dies: the one behind it re-watches the one before it
/// and does not acquire early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_middle_waiter_is_skipped_in_order() {
    let server = InProcServer::start();
    let addr = server.addr();
    let h = connect(&addr, Duration::from_secs(10)).await;
    let mut hg = Lock::new(&h, "/mid").acquire().await.unwrap();
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..3 {
        let c = connect(&addr, Duration::from_secs(10)).await;
        clients.push(c.clone());
        tasks.push(tokio::spawn(async move {
            Lock::new(&c, "/mid").acquire().await
        }));
        // Queue in order: W1, W2, W3.
        poll("the waiter to queue", SLOW_STEP, || {
            (server.metric("warden_watches", "") == (i + 2) as f64).then_some(())
        })
        .await;
    }
    let q = queue(&h, "/mid").await;
    assert_eq!(q.len(), 4);
    let w2 = &clients[1];
    assert_eq!(
        h.exists(&format!("/mid/{}", q[2]))
            .await
            .unwrap()
            .unwrap()
            .ephemeral_owner,
        w2.session_id()
    );

    w2.close().await.unwrap();
    // W2's node is gone, and W3 now watches W1's node: the holder's watch,
    // W1's and W3's.
    let deadline = Instant::now() + SLOW_STEP;
    loop {
        let now = queue(&h, "/mid").await;
        if now.len() == 3 && server.metric("warden_watches", "") == 3.0 {
            assert_eq!(now, vec![q[0].clone(), q[1].clone(), q[3].clone()]);
            break;
        }
        assert!(Instant::now() < deadline, "W3 did not re-watch: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!tasks[2].is_finished(), "W3 acquired while H holds");
    assert!(!tasks[0].is_finished(), "W1 acquired while H holds");
    assert_eq!(hg.state(), LockState::Held);

    hg.release().await.unwrap();
    let w1 = tasks.remove(0);
    let mut w1g = within(SLOW_STEP, "W1 acquires", w1).await.unwrap().unwrap();
    assert!(w1g.fencing_token() > hg.fencing_token());
    assert!(w1g.path().ends_with(&q[1]));
    // W3 still waits, on W1: W1's own watch and W3's.
    poll("W3 watching W1", SLOW_STEP, || {
        (server.metric("warden_watches", "") == 2.0).then_some(())
    })
    .await;
    assert!(!tasks[1].is_finished(), "W3 acquired while W1 holds");

    w1g.release().await.unwrap();
    let w3g = within(SLOW_STEP, "W3 acquires", tasks.remove(1))
        .await
        .unwrap()
        .unwrap();
    assert!(w3g.path().ends_with(&q[3]));
    assert!(w3g.fencing_token() > w1g.fencing_token());
    let w2_acquire = within(SLOW_STEP, "W2's acquire to end", tasks.remove(0)).await;
    assert!(
        w2_acquire.unwrap().is_err(),
        "W2's acquire failed with its session"
    );
}

/// 5. Stale release: A's session expires while it holds (its connection
/// cut and stalled past the timeout); B acquires; A's release succeeds and
/// leaves B's node alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_release_leaves_the_new_holder_alone() {
    let server = InProcServer::start_with(ServerOpts {
        tick_ms: 100,
        ..ServerOpts::default()
    });
    let proxy = Proxy::start(([127, 0, 0, 1], server.port()).into());
    let a = connect(&proxy.addr().to_string(), Duration::from_millis(1000)).await;
    let b = connect(&server.addr(), Duration::from_secs(10)).await;
    let mut ag = Lock::new(&a, "/stale").acquire().await.unwrap();
    let a_session = a.session_id();
    let b_lock = Lock::new(&b, "/stale");
    let bt = tokio::spawn(async move { b_lock.acquire().await });
    poll("B to queue", SLOW_STEP, || {
        (server.metric("warden_watches", "") == 2.0).then_some(())
    })
    .await;

    proxy.mute();
    proxy.cut();
    let mut bg = within(SLOW_STEP, "B acquires after A's session expired", bt)
        .await
        .unwrap()
        .unwrap();
    let b_node = bg.path().to_string();
    let mut states = ag.states();
    within(
        SLOW_STEP,
        "A's guard to report Lost",
        states.wait_for(|s| *s == LockState::Lost),
    )
    .await
    .unwrap();
    assert_eq!(ag.state(), LockState::Lost);

    proxy.unmute();
    ag.release().await.expect("a stale release is not an error");
    ag.release().await.expect("release is idempotent");
    let stat = b
        .exists(&b_node)
        .await
        .unwrap()
        .expect("B's node is still there");
    assert_eq!(stat.ephemeral_owner, b.session_id());
    assert_eq!(queue(&b, "/stale").await.len(), 1);
    assert_eq!(bg.state(), LockState::Held);
    assert!(bg.fencing_token() > ag.fencing_token());
    assert_ne!(a.session_id(), a_session, "A renewed its session");
    bg.release().await.unwrap();
}

/// 6. Holder dies: the next waiter acquires within the session timeout
/// plus one tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_is_replaced_within_timeout_plus_a_tick() {
    let tick = Duration::from_millis(100);
    let session = Duration::from_millis(1000);
    let server = InProcServer::start_with(ServerOpts {
        tick_ms: tick.as_millis() as u64,
        ..ServerOpts::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hold.log");
    let mut holder = Proc::worker(
        dir.path(),
        &[
            "hold",
            "--servers",
            &server.addr(),
            "--lock",
            "/dies",
            "--out",
            out.to_str().unwrap(),
            "--hold-ms",
            "600000",
            "--timeout-ms",
            "1000",
            "--max-acq",
            "1",
        ],
    );
    let acq = poll("the holder's grant", SLOW_STEP, || {
        events(&out).into_iter().find(|e| e.kind == "ACQ")
    })
    .await;
    assert_eq!(acq.pid, holder.pid());
    let c = connect(&server.addr(), Duration::from_secs(10)).await;
    let lock = Lock::new(&c, "/dies");
    let waiter = tokio::spawn(async move { lock.acquire().await });
    poll("the waiter to queue", SLOW_STEP, || {
        (server.metric("warden_watches", "") == 2.0).then_some(())
    })
    .await;
    assert!(!waiter.is_finished());

    let killed = Instant::now();
    holder.kill9();
    let g = within(SLOW_STEP, "the waiter acquires", waiter)
        .await
        .unwrap()
        .unwrap();
    let waited = killed.elapsed();
    eprintln!("the waiter acquired {waited:?} after the holder was killed");
    assert!(
        waited <= session + tick + MARGIN,
        "the waiter acquired {waited:?} after the holder died (session {session:?}, tick {tick:?})"
    );
    assert!(g.fencing_token() > acq.token);
    assert_eq!(g.state(), LockState::Held);
}

/// 8. `warden lock`: the command runs with the fencing token, its exit
/// status is the tool's, runs never interleave, and `--timeout` gives up
/// with status 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_lock_runs_a_command_under_the_lock() {
    let server = InProcServer::start();
    let addr = server.addr();
    let warden = warden_tests::bin("warden");

    let out = std::process::Command::new(&warden)
        .args(["--servers", &addr, "lock", "/cli-lock", "--"])
        .args([
            "sh",
            "-c",
            "echo \"$WARDEN_FENCING_TOKEN $WARDEN_NODE\"; exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (token, node) = stdout.trim().split_once(' ').expect("token and node");
    assert!(token.parse::<i64>().unwrap() > 0, "{stdout}");
    assert!(node.starts_with("/cli-lock/"), "{stdout}");

    // A bare name lives under /warden/locks.
    let out = std::process::Command::new(&warden)
        .args(["--servers", &addr, "lock", "job", "--"])
        .args(["sh", "-c", "echo $WARDEN_NODE"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("/warden/locks/job/"));

    // Three runs at once never interleave.
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("runs.log");
    let script = format!(
        "echo \"start $$ $WARDEN_FENCING_TOKEN\" >> {f}; sleep 0.3; echo \"end $$\" >> {f}",
        f = shared.display()
    );
    let runs: Vec<std::process::Child> = (0..3)
        .map(|_| {
            std::process::Command::new(&warden)
                .args(["--servers", &addr, "lock", "/cli-serial", "--"])
                .args(["sh", "-c", &script])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&shared).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 6, "{text}");
    let mut last_token = 0i64;
    for pair in lines.chunks(2) {
        assert_eq!(pair[0][0], "start", "{text}");
        assert_eq!(pair[1][0], "end", "{text}");
        assert_eq!(pair[0][1], pair[1][1], "interleaved runs:\n{text}");
        let token: i64 = pair[0][2].parse().unwrap();
        assert!(token > last_token, "{text}");
        last_token = token;
    }

    // While held, --timeout gives up with status 3 and leaves no node.
    let c = connect(&addr, Duration::from_secs(10)).await;
    let mut g = Lock::new(&c, "/cli-held").acquire().await.unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(&warden)
        .args([
            "--servers",
            &addr,
            "lock",
            "/cli-held",
            "--timeout",
            "100",
            "--",
        ])
        .args(["sh", "-c", "echo ran"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "the command ran");
    assert!(started.elapsed() < SLOW_STEP);
    assert_eq!(queue(&c, "/cli-held").await.len(), 1);
    g.release().await.unwrap();
}

/// An acquire whose lock's parent container is being reaped (it just lost
/// its last child) still succeeds: joining retries the container's
/// creation instead of failing with `NoNode`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_succeeds_while_its_parent_container_is_reaped() {
    let server = reaping_server();
    let c = connect(&server.addr(), Duration::from_secs(4)).await;
    for i in 0..30 {
        let root = format!("/reaped{i}");
        about_to_be_reaped(&c, &root).await;
        let lock = Lock::new(&c, &format!("{root}/lock"));
        match within(SLOW_STEP, "acquire", lock.acquire()).await {
            Ok(mut g) => g.release().await.unwrap(),
            Err(e) => panic!("round {i}: acquire failed: {e}"),
        }
    }
}

/// Re-entrancy per owner: a re-entrant `Lock` (and its clones) acquiring
/// while it holds gets another guard on the same grant; the lock is free
/// only once every guard is released. A plain `Lock` does not re-enter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reentrant_owner_acquires_again_and_releases_last() {
    let server = InProcServer::start();
    let owner = connect(&server.addr(), Duration::from_secs(10)).await;
    let other = connect(&server.addr(), Duration::from_secs(10)).await;
    let lock = Lock::new(&owner, "/reentrant").reentrant();
    let rival = Lock::new(&other, "/reentrant");

    let mut first = lock.acquire().await.unwrap();
    let mut second = lock.clone().acquire().await.unwrap();
    assert_eq!(first.fencing_token(), second.fencing_token());
    assert_eq!(first.path(), second.path());
    assert_eq!(owner.get_children("/reentrant").await.unwrap().len(), 1);

    first.release().await.unwrap();
    first.release().await.unwrap();
    assert_eq!(second.state(), LockState::Held);
    assert!(
        rival.try_acquire().await.unwrap().is_none(),
        "still held by the second guard"
    );

    second.release().await.unwrap();
    let mut theirs = rival.acquire().await.unwrap();
    assert!(theirs.fencing_token() > second.fencing_token());

    let plain = Lock::new(&other, "/reentrant");
    assert!(
        plain
            .acquire_timeout(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none(),
        "a plain lock does not re-enter"
    );
    theirs.release().await.unwrap();
}
