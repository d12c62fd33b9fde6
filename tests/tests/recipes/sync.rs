//! The synchronization recipes end to end — read-write lock, semaphore,
//! multi-lock, barriers, shared counter — against a real server, each
//! contender on its own session.
//!
//! Each test records what happened (intervals on one monotonic clock,
//! counts seen at the moment of a grant), then checks the record. No test
//! sleeps to let something happen: each waits for the state it needs with a
//! generous deadline. The only sleeps are the "work" done while holding,
//! which makes overlaps likely; correctness never depends on them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use warden_client::recipes::{
    Barrier, DoubleBarrier, Lock, MultiLock, ReadWriteLock, Semaphore, SharedCounter,
};
use warden_client::{Client, RetryPolicy};
use warden_tests::{connect_within, session_opts, wait_until, within, InProcServer, PHASE};

async fn client(server: &InProcServer) -> Client {
    connect_within(
        PHASE,
        &server.addr(),
        session_opts(Duration::from_secs(4), None),
    )
    .await
}

async fn clients(server: &InProcServer, n: usize) -> Vec<Client> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(client(server).await);
    }
    all
}

/// The number of children of `path` (0 when it does not exist).
async fn children(c: &Client, path: &str) -> usize {
    c.get_children(path).await.map(|v| v.len()).unwrap_or(0)
}

/// A hold, on the test's one monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Interval {
    writer: bool,
    start: Instant,
    end: Instant,
}

impl Interval {
    fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// A little "work" while holding, so that holds can overlap if the recipe
/// lets them.
async fn work(i: usize) {
    tokio::time::sleep(Duration::from_millis(3 + (i as u64 * 7) % 11)).await;
}

// ----- read-write lock --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_hold_together_and_a_writer_waits_for_them() {
    let server = InProcServer::start();
    let readers = clients(&server, 4).await;
    let writer_client = client(&server).await;
    let path = "/rw/shared";

    // Every reader holds at once: each keeps its hold until all four do.
    let holding = Arc::new(AtomicUsize::new(0));
    let mut guards = Vec::new();
    for c in &readers {
        let g = within(
            PHASE,
            "a read hold",
            ReadWriteLock::new(c, path).read_lock().acquire(),
        )
        .await
        .expect("read hold");
        holding.fetch_add(1, Ordering::SeqCst);
        guards.push(g);
    }
    assert_eq!(holding.load(Ordering::SeqCst), 4);
    let tokens: BTreeSet<i64> = guards.iter().map(|g| g.fencing_token()).collect();
    assert_eq!(tokens.len(), 4, "every grant has its own fencing token");

    // A writer cannot get in while they hold.
    let write = ReadWriteLock::new(&writer_client, path).write_lock();
    assert!(write.try_acquire().await.expect("try").is_none());
    assert!(write
        .acquire_timeout(Duration::from_millis(300))
        .await
        .expect("acquire_timeout")
        .is_none());
    // The writers that gave up left no node behind.
    wait_until("the abandoned writer nodes are gone", PHASE, || async {
        children(&writer_client, path).await == 4
    })
    .await;

    // A waiting writer gets in once the last reader leaves, and a reader
    // arriving after it waits behind it (no writer starvation).
    let waiting = tokio::spawn({
        let write = write.clone();
        async move {
            let guard = write.acquire().await;
            (guard, Instant::now())
        }
    });
    wait_until("the writer queued", PHASE, || async {
        children(&writer_client, path).await == 5
    })
    .await;
    let late_reader = client(&server).await;
    let late = ReadWriteLock::new(&late_reader, path).read_lock();
    assert!(
        late.try_acquire().await.expect("try").is_none(),
        "a reader behind a waiting writer must wait"
    );
    let mut last = guards.pop().expect("a guard");
    for mut g in guards {
        g.release().await.expect("release");
    }
    assert!(!waiting.is_finished(), "a reader still holds");
    let released_at = Instant::now();
    last.release().await.expect("release");
    let (wguard, granted_at) = within(PHASE, "the writer's grant", waiting)
        .await
        .expect("join");
    let mut wguard = wguard.expect("write hold");
    assert!(
        granted_at > released_at,
        "the writer got in before the last reader left"
    );
    assert!(wguard.fencing_token() > last.fencing_token());
    assert!(late.try_acquire().await.expect("try").is_none());
    wguard.release().await.expect("release");
    let mut r = within(PHASE, "a read hold after the writer", late.acquire())
        .await
        .expect("read");
    r.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_writer_hold_overlaps_any_other_hold() {
    let server = InProcServer::start();
    let path = "/rw/intervals";
    let record: Arc<Mutex<Vec<Interval>>> = Arc::default();
    let mut tasks = Vec::new();
    // Four readers and two writers, each on its own session, 8 holds each.
    for i in 0..6usize {
        let c = client(&server).await;
        let record = record.clone();
        let writer = i >= 4;
        tasks.push(tokio::spawn(async move {
            let lock = ReadWriteLock::new(&c, path);
            for round in 0..8 {
                let mut g = if writer {
                    lock.write_lock().acquire().await
                } else {
                    lock.read_lock().acquire().await
                }
                .expect("hold");
                let start = Instant::now();
                work(i + round).await;
                let end = Instant::now();
                record.lock().push(Interval { writer, start, end });
                g.release().await.expect("release");
            }
        }));
    }
    for t in tasks {
        within(PHASE, "a contender's holds", t).await.expect("join");
    }
    let record = record.lock().clone();
    assert_eq!(record.len(), 48);
    for (i, a) in record.iter().enumerate() {
        for b in record.iter().skip(i + 1) {
            if a.writer || b.writer {
                assert!(
                    !a.overlaps(b),
                    "a writer's hold overlaps another: {a:?} {b:?}"
                );
            }
        }
    }
}

// ----- semaphore --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_semaphore_of_three_never_has_more_than_three_holders() {
    const LEASES: usize = 3;
    const CONTENDERS: usize = 10;
    let server = InProcServer::start();
    let path = "/sem/three";
    let holders = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let acquired = Arc::new(AtomicUsize::new(0));
    let record: Arc<Mutex<Vec<Interval>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..CONTENDERS {
        let c = client(&server).await;
        let (holders, max_seen, acquired, record) = (
            holders.clone(),
            max_seen.clone(),
            acquired.clone(),
            record.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sem = Semaphore::new(&c, path, LEASES as u32).with_data(format!("c{i}"));
            let mut lease = sem.acquire().await.expect("lease");
            let start = Instant::now();
            let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
            max_seen.fetch_max(now, Ordering::SeqCst);
            acquired.fetch_add(1, Ordering::SeqCst);
            // Hold until the semaphore is full with a contender at the door
            // (its lease node made), or nobody is left to come: free leases
            // must be handed out while others wait, and a fourth must not be.
            wait_until("the semaphore to fill up", PHASE, || async {
                (holders.load(Ordering::SeqCst) == LEASES
                    && children(&c, "/sem/three/leases").await > LEASES)
                    || acquired.load(Ordering::SeqCst) == CONTENDERS
            })
            .await;
            // Keep holding a while, so a contender let in wrongly would show
            // (sensitivity only: the check does not depend on this).
            tokio::time::sleep(Duration::from_millis(100)).await;
            let end = Instant::now();
            holders.fetch_sub(1, Ordering::SeqCst);
            record.lock().push(Interval {
                writer: false,
                start,
                end,
            });
            lease.release().await.expect("release");
            lease.release().await.expect("release is idempotent");
        }));
    }
    for t in tasks {
        within(PHASE, "a contender's lease", t).await.expect("join");
    }
    assert_eq!(acquired.load(Ordering::SeqCst), CONTENDERS);
    assert_eq!(max_seen.load(Ordering::SeqCst), LEASES);
    // From the intervals too: at no hold's start were more than three held.
    let record = record.lock().clone();
    for a in &record {
        let at_once = record
            .iter()
            .filter(|b| b.start <= a.start && a.start < b.end)
            .count();
        assert!(at_once <= LEASES, "{at_once} holders at once");
    }
    let c = client(&server).await;
    wait_until("every lease node is gone", PHASE, || async {
        children(&c, "/sem/three/leases").await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_semaphore_turns_away_and_cleans_up_after_itself() {
    let server = InProcServer::start();
    let (a, b) = (client(&server).await, client(&server).await);
    let sem_a = Semaphore::new(&a, "/sem/one", 1);
    let sem_b = Semaphore::new(&b, "/sem/one", 1);
    let mut lease = sem_a.try_acquire().await.expect("try").expect("free");
    assert!(sem_b.try_acquire().await.expect("try").is_none());
    assert!(sem_b
        .acquire_timeout(Duration::from_millis(300))
        .await
        .expect("acquire_timeout")
        .is_none());
    wait_until("only the holder's lease is left", PHASE, || async {
        sem_b.participants().await.map(|p| p.len()).unwrap_or(0) == 1
            && children(&b, "/sem/one/locks").await == 0
    })
    .await;
    // A dropped acquire (cancelled mid-wait) leaves nothing behind either.
    let waiting = tokio::spawn({
        let sem_b = sem_b.clone();
        async move { sem_b.acquire().await.map(|_| ()) }
    });
    wait_until("the waiter is in", PHASE, || async {
        children(&b, "/sem/one/leases").await == 2
    })
    .await;
    waiting.abort();
    wait_until("the cancelled waiter's nodes are gone", PHASE, || async {
        children(&b, "/sem/one/leases").await == 1 && children(&b, "/sem/one/locks").await == 0
    })
    .await;
    lease.release().await.expect("release");
    let mut next = within(PHASE, "a lease once free", sem_b.acquire())
        .await
        .expect("lease");
    next.release().await.expect("release");
    assert!(Semaphore::new(&a, "/sem/zero", 0)
        .try_acquire()
        .await
        .is_err());
}

// ----- multi-lock -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multi_lock_excludes_single_locks_on_its_members() {
    let server = InProcServer::start();
    let (a, b) = (client(&server).await, client(&server).await);
    let multi = MultiLock::new(&a, ["/ml/b", "/ml/a", "/ml/b"]);
    assert_eq!(multi.paths(), ["/ml/a", "/ml/b"]);

    let mut held = within(PHASE, "the multi-lock", multi.acquire())
        .await
        .expect("multi");
    assert_eq!(held.fencing_tokens().len(), 2);
    for p in ["/ml/a", "/ml/b"] {
        assert!(Lock::new(&b, p).try_acquire().await.expect("try").is_none());
    }
    // A single lock waiting on a member is granted once the multi-lock goes.
    let single = tokio::spawn({
        let b = b.clone();
        async move { Lock::new(&b, "/ml/b").acquire().await }
    });
    wait_until("the single lock queued", PHASE, || async {
        children(&b, "/ml/b").await == 2
    })
    .await;
    assert!(!single.is_finished());
    held.release().await.expect("release");
    held.release().await.expect("release is idempotent");
    let mut g = within(PHASE, "the single lock", single)
        .await
        .expect("join")
        .expect("lock");

    // And the other way round: a member held alone keeps the multi-lock
    // out, and a failed attempt keeps none of the members.
    assert!(multi.try_acquire().await.expect("try").is_none());
    assert!(multi
        .acquire_timeout(Duration::from_millis(300))
        .await
        .expect("acquire_timeout")
        .is_none());
    wait_until("the multi-lock let go of /ml/a", PHASE, || async {
        children(&b, "/ml/a").await == 0 && children(&b, "/ml/b").await == 1
    })
    .await;
    let mut a_alone = Lock::new(&b, "/ml/a")
        .try_acquire()
        .await
        .expect("try")
        .expect("/ml/a is free");
    a_alone.release().await.expect("release");
    g.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_locks_over_the_same_members_in_any_order_do_not_deadlock() {
    let server = InProcServer::start();
    let record: Arc<Mutex<Vec<Interval>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..3usize {
        let c = client(&server).await;
        let record = record.clone();
        tasks.push(tokio::spawn(async move {
            let order = match i {
                0 => ["/mlx/x", "/mlx/y", "/mlx/z"],
                1 => ["/mlx/z", "/mlx/y", "/mlx/x"],
                _ => ["/mlx/y", "/mlx/x", "/mlx/z"],
            };
            let multi = MultiLock::new(&c, order);
            for round in 0..6 {
                let mut g = multi.acquire().await.expect("multi");
                let start = Instant::now();
                work(i + round).await;
                let end = Instant::now();
                record.lock().push(Interval {
                    writer: true,
                    start,
                    end,
                });
                g.release().await.expect("release");
            }
        }));
    }
    for t in tasks {
        within(PHASE, "a multi-lock holder (deadlock?)", t)
            .await
            .expect("join");
    }
    let record = record.lock().clone();
    assert_eq!(record.len(), 18);
    for (i, a) in record.iter().enumerate() {
        for b in record.iter().skip(i + 1) {
            assert!(!a.overlaps(b), "two multi-lock holds overlap");
        }
    }
}

// ----- barriers ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_barrier_holds_waiters_until_removed() {
    let server = InProcServer::start();
    let (a, b) = (client(&server).await, client(&server).await);
    let gate = Barrier::new(&a, "/gates/deploy");
    gate.set_barrier().await.expect("set");
    gate.set_barrier().await.expect("set again is fine");
    assert!(gate.is_set().await.expect("is_set"));

    let waiter = Barrier::new(&b, "/gates/deploy");
    assert!(!waiter
        .wait_on_barrier_timeout(Duration::from_millis(200))
        .await
        .expect("wait"));
    let removed = Arc::new(AtomicBool::new(false));
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let (waiter, removed) = (waiter.clone(), removed.clone());
        waiting.push(tokio::spawn(async move {
            waiter.wait_on_barrier().await.expect("wait");
            removed.load(Ordering::SeqCst)
        }));
    }
    removed.store(true, Ordering::SeqCst);
    gate.remove_barrier().await.expect("remove");
    gate.remove_barrier().await.expect("remove again is fine");
    for w in waiting {
        let saw_removal = within(PHASE, "a waiter released", w).await.expect("join");
        assert!(saw_removal, "a waiter passed while the barrier was set");
    }
    assert!(waiter
        .wait_on_barrier_timeout(Duration::from_millis(200))
        .await
        .expect("wait"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nobody_passes_a_double_barrier_before_all_have_entered() {
    let server = InProcServer::start();
    let path = "/dbar/round";
    let observer = client(&server).await;
    let entered_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let left_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let leaving = Arc::new(AtomicUsize::new(0));
    let go_leave = Arc::new(tokio::sync::Notify::new());

    let member = |c: Client, hold: bool| {
        let (entered_at, left_at, leaving, go_leave) = (
            entered_at.clone(),
            left_at.clone(),
            leaving.clone(),
            go_leave.clone(),
        );
        tokio::spawn(async move {
            let mut barrier = DoubleBarrier::new(&c, path, 3);
            barrier.enter().await.expect("enter");
            assert!(barrier.is_entered());
            entered_at.lock().push(Instant::now());
            if hold {
                go_leave.notified().await;
            }
            let started_leaving = Instant::now();
            leaving.fetch_add(1, Ordering::SeqCst);
            barrier.leave().await.expect("leave");
            left_at.lock().push(Instant::now());
            started_leaving
        })
    };

    // Two members enter and must wait for the third.
    let first = member(client(&server).await, false);
    let second = member(client(&server).await, false);
    wait_until("two members are in", PHASE, || async {
        children(&observer, path).await == 2
    })
    .await;
    let third_arrives = Instant::now();
    let third = member(client(&server).await, true);
    wait_until("all three entered", PHASE, || async {
        entered_at.lock().len() == 3
    })
    .await;
    for t in entered_at.lock().iter() {
        assert!(
            *t > third_arrives,
            "a member passed enter before all entered"
        );
    }
    // Two leave; they must wait for the third to leave too.
    wait_until("two members are leaving", PHASE, || async {
        leaving.load(Ordering::SeqCst) == 2
    })
    .await;
    let third_leaves = Instant::now();
    go_leave.notify_one();
    for t in [first, second, third] {
        within(PHASE, "a member left", t).await.expect("join");
    }
    let left = left_at.lock().clone();
    assert_eq!(left.len(), 3);
    for t in left {
        assert!(t > third_leaves, "a member passed leave before all left");
    }
    wait_until("the barrier is empty again", PHASE, || async {
        children(&observer, path).await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_double_barrier_entry_that_times_out_withdraws() {
    let server = InProcServer::start();
    let c = client(&server).await;
    let mut lonely = DoubleBarrier::new(&c, "/dbar/lonely", 2);
    assert!(!lonely
        .enter_timeout(Duration::from_millis(300))
        .await
        .expect("enter_timeout"));
    assert!(!lonely.is_entered());
    assert_eq!(children(&c, "/dbar/lonely").await, 0);
    assert!(lonely.leave().await.is_err(), "leaving without entering");

    // Used again, with a partner this time.
    let partner = client(&server).await;
    let other = tokio::spawn(async move {
        let mut b = DoubleBarrier::new(&partner, "/dbar/lonely", 2);
        b.enter().await.expect("enter");
        b.leave().await.expect("leave");
    });
    assert!(lonely.enter_timeout(PHASE).await.expect("enter"));
    assert!(lonely.leave_timeout(PHASE).await.expect("leave"));
    within(PHASE, "the partner", other).await.expect("join");
}

// ----- shared counter ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_clients_incrementing_twenty_times_each_count_to_exactly_100() {
    let server = InProcServer::start();
    let path = "/counters/hits";
    let retry = RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(100),
        max_retries: 100,
    };
    let observer = client(&server).await;
    let watched = SharedCounter::new(&observer, path, 0);
    let mut changes = watched.watch().await.expect("watch");
    assert_eq!(changes.borrow().value, 0);

    let done: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(vec![0; 5]));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let c = client(&server).await;
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let counter = SharedCounter::new(&c, path, 0).with_retry(retry);
            let mut seen = Vec::new();
            for _ in 0..20 {
                seen.push(counter.increment().await.expect("increment"));
                done.lock()[i] += 1;
            }
            seen
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        match tokio::time::timeout(PHASE, t).await {
            Ok(r) => results.extend(r.expect("join")),
            Err(_) => {
                let progress = done.lock().clone();
                let value = watched.get().await;
                panic!("an incrementer is stuck: increments per task {progress:?}, value {value:?}")
            }
        }
    }
    assert_eq!(watched.get().await.expect("get"), 100);
    // Every increment returned its own new value: 1..=100, each once.
    results.sort_unstable();
    assert_eq!(results, (1..=100).collect::<Vec<i64>>());
    // The watcher catches up with the final value.
    within(
        PHASE,
        "the watch sees 100",
        changes.wait_for(|v| v.value == 100),
    )
    .await
    .expect("watching");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counter_compare_and_set_and_versions() {
    let server = InProcServer::start();
    let (a, b) = (client(&server).await, client(&server).await);
    let ca = SharedCounter::new(&a, "/counters/cas/x", 10);
    let cb = SharedCounter::new(&b, "/counters/cas/x", 999);
    // The first user creates the node with its initial value.
    assert_eq!(ca.get().await.expect("get"), 10);
    assert_eq!(cb.get().await.expect("get"), 10);
    assert!(ca.compare_and_set(10, 11).await.expect("cas"));
    assert!(!cb.compare_and_set(10, 12).await.expect("cas"));
    assert_eq!(cb.get().await.expect("get"), 11);

    let seen = cb.get_versioned().await.expect("get");
    ca.set(20).await.expect("set");
    assert!(
        !cb.try_set(seen, 30).await.expect("try_set"),
        "a stale version"
    );
    let fresh = cb.get_versioned().await.expect("get");
    assert_eq!(fresh.value, 20);
    assert!(fresh.version > seen.version);
    assert!(cb.try_set(fresh, 30).await.expect("try_set"));
    assert_eq!(ca.add(-5).await.expect("add"), 25);
    assert_eq!(ca.decrement().await.expect("decrement"), 24);
    ca.set(i64::MAX).await.expect("set");
    assert!(ca.increment().await.is_err(), "overflow is an error");
    assert_eq!(ca.get().await.expect("get"), i64::MAX);
}
