//! The set partitioner end to end (issue acceptance test 8): ten items
//! shared by members on separate sessions — one of them a separate
//! *process* — against a real server with 100 ms ticks and 1 s sessions.
//!
//! The test records, then checks. A sampler runs throughout, taking a
//! snapshot every few milliseconds: every in-process member's assignment,
//! then the holder of every item's lock as the store has it, then the
//! assignments again. It checks that no two members ever claim one item,
//! and that a member that claims an item across a whole sample (the same
//! fencing token before and after) was the lock's holder in the store in
//! between. Phases wait for the states they need, never on sleeps.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use warden_client::recipes::{Assignment, PartitionState, SetPartitioner};
use warden_client::{Client, ErrorCode};
use warden_tests::proxy::Proxy;
use warden_tests::{InProcServer, ServerOpts, PHASE};

use crate::client;

/// The members' session timeout.
const SESSION: Duration = Duration::from_secs(1);
/// Slack on top of the session timeout for a dead member's items to move.
const MARGIN: Duration = Duration::from_secs(4);
const ROOT: &str = "/partition/shards";
/// The environment variable that makes `member_process` a member.
const MEMBER_ENV: &str = "WARDEN_PARTITIONER_MEMBER";

fn items() -> Vec<String> {
    (0..10).map(|i| format!("item-{i:02}")).collect()
}

/// A member in a separate process: this test binary run again with only
/// the ignored [`member_process`] test, which joins and then idles. It is
/// SIGKILLed when dropped (and exits by itself when its stdin closes).
struct MemberProcess {
    child: Child,
}

impl MemberProcess {
    fn spawn(addr: &str, id: &str) -> MemberProcess {
        let exe = std::env::current_exe().expect("test executable");
        // The test's name in this binary: its module path without the crate.
        let module = module_path!().split_once("::").map_or("", |(_, m)| m);
        let child = Command::new(exe)
            .arg(format!("{module}::member_process"))
            .args(["--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(MEMBER_ENV, format!("{addr}|{ROOT}|{id}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the member process");
        MemberProcess { child }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Not a test of its own: the body of a member process (see
/// [`MemberProcess`]). Without its environment variable it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the member process of the partitioner test; started by it"]
async fn member_process() {
    let Ok(spec) = std::env::var(MEMBER_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [addr, root, id] = parts[..] else {
        panic!("bad {MEMBER_ENV}: {spec}");
    };
    // Die with the parent: its end of our stdin closes when it goes.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
    let c = client(addr, SESSION).await;
    let member = SetPartitioner::new(&c, root, items(), id).expect("start the member");
    let _ = member.wait_for_acquired().await;
    futures::future::pending::<()>().await;
}

/// One in-process member: its id, client and partitioner.
struct Member {
    id: String,
    client: Client,
    partitioner: SetPartitioner,
}

async fn member(addr: &str, id: &str) -> Member {
    let client = client(addr, SESSION).await;
    let partitioner = SetPartitioner::new(&client, ROOT, items(), id).expect("start a member");
    Member {
        id: id.to_string(),
        client,
        partitioner,
    }
}

/// Who holds each item's lock in the store: (member id, lock node czxid),
/// or `None` for a free item. `None` overall if a read failed.
async fn lock_holders(observer: &Client) -> Option<BTreeMap<String, Option<(String, i64)>>> {
    let reads = items().into_iter().map(|item| async move {
        let dir = format!("{ROOT}/locks/{item}");
        let mut nodes = match observer.get_children(&dir).await {
            Ok(nodes) => nodes,
            Err(e) if e.code() == ErrorCode::NoNode => Vec::new(),
            Err(_) => return None,
        };
        nodes.sort_by_key(|n| n[n.len().saturating_sub(10)..].to_string());
        for first in nodes {
            match observer.get_data(&format!("{dir}/{first}")).await {
                Ok((data, stat)) => {
                    let id = String::from_utf8_lossy(&data).into_owned();
                    return Some((item, Some((id, stat.czxid))));
                }
                // Released meanwhile: the next in line is the holder now.
                Err(e) if e.code() == ErrorCode::NoNode => continue,
                Err(_) => return None,
            }
        }
        Some((item, None))
    });
    let mut holders = BTreeMap::new();
    for read in futures::future::join_all(reads).await {
        let (item, holder) = read?;
        holders.insert(item, holder);
    }
    Some(holders)
}

/// The assignments of the in-process members being sampled.
type Watched = Arc<Mutex<Vec<(String, watch::Receiver<Assignment>)>>>;

fn snapshot(watched: &Watched) -> Vec<(String, Assignment)> {
    watched
        .lock()
        .iter()
        .map(|(id, rx)| (id.clone(), rx.borrow().clone()))
        .collect()
}

/// Items claimed by two members at once in one snapshot.
fn overlaps(snap: &[(String, Assignment)]) -> Vec<String> {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    let mut found = Vec::new();
    for (id, a) in snap {
        for owned in &a.items {
            if let Some(other) = owner.insert(&owned.item, id) {
                found.push(format!("{} owned by {other} and {id}", owned.item));
            }
        }
    }
    found
}

/// What the sampler recorded.
#[derive(Default)]
struct Record {
    samples: usize,
    violations: Vec<String>,
}

/// Samples until `stop` turns true.
async fn sample(observer: Client, watched: Watched, stop: watch::Receiver<bool>) -> Record {
    let mut record = Record::default();
    while !*stop.borrow() {
        let before = snapshot(&watched);
        let holders = lock_holders(&observer).await;
        let after = snapshot(&watched);
        let Some(holders) = holders else {
            continue;
        };
        record.samples += 1;
        record.violations.extend(overlaps(&before));
        record.violations.extend(overlaps(&after));
        for (id, a) in &before {
            let Some((_, later)) = after.iter().find(|(other, _)| other == id) else {
                continue;
            };
            for owned in &a.items {
                if !later.items.contains(owned) {
                    continue;
                }
                // Owned throughout: the store must agree.
                let holder = holders.get(&owned.item).cloned().flatten();
                if holder != Some((id.clone(), owned.fencing_token)) {
                    record.violations.push(format!(
                        "{id} owned {} (token {}) while the store's holder was {holder:?}",
                        owned.item, owned.fencing_token
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    record
}

/// Lock holders per member id, when every item has one.
fn counts(holders: &BTreeMap<String, Option<(String, i64)>>) -> Option<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for holder in holders.values() {
        let (id, _) = holder.as_ref()?;
        *counts.entry(id.clone()).or_insert(0) += 1;
    }
    Some(counts)
}

/// True when the store's lock holders split the items as `want` (counts
/// per member, sorted) among exactly `ids`, and every in-process member is
/// `Acquired` with exactly the items it holds.
async fn settled(observer: &Client, members: &[&Member], ids: &[&str], want: &[usize]) -> bool {
    let Some(holders) = lock_holders(observer).await else {
        return false;
    };
    let Some(counts) = counts(&holders) else {
        return false;
    };
    let mut got: Vec<usize> = counts.values().copied().collect();
    got.sort_unstable();
    let mut wanted = want.to_vec();
    wanted.sort_unstable();
    if got != wanted || !counts.keys().map(String::as_str).eq(ids.iter().copied()) {
        return false;
    }
    members.iter().all(|m| {
        let a = m.partitioner.assignment();
        let held: Vec<String> = holders
            .iter()
            .filter(|(_, h)| h.as_ref().map(|(id, _)| id == &m.id).unwrap_or(false))
            .map(|(item, _)| item.clone())
            .collect();
        a.state == PartitionState::Acquired && a.item_names() == held
    })
}

/// Waits until [`settled`]; on timeout, fails with what the store and the
/// members said last.
async fn wait_settled(
    what: &str,
    observer: &Client,
    members: &[&Member],
    ids: &[&str],
    want: &[usize],
) {
    let deadline = Instant::now() + PHASE;
    while !settled(observer, members, ids, want).await {
        if Instant::now() >= deadline {
            let party = observer
                .get_children(&format!("{ROOT}/party"))
                .await
                .unwrap_or_default();
            let assignments: Vec<(String, Assignment)> = members
                .iter()
                .map(|m| (m.id.clone(), m.partitioner.assignment()))
                .collect();
            panic!(
                "timed out after {PHASE:?} waiting for {what}\nparty: {party:?}\nlock holders: {:?}\nassignments: {assignments:?}",
                lock_holders(observer).await
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_items_are_split_and_re_split_without_ever_two_owners() {
    let server = InProcServer::start_with(ServerOpts {
        tick_ms: 100,
        ..Default::default()
    });
    let addr = server.addr();
    let observer = client(&addr, Duration::from_secs(4)).await;

    // Three members: m1, m2 here, m3 in its own process.
    let m1 = member(&addr, "m1").await;
    let m2 = member(&addr, "m2").await;
    let mut m3 = MemberProcess::spawn(&addr, "m3");
    let watched: Watched = Arc::new(Mutex::new(vec![
        ("m1".to_string(), m1.partitioner.assignments()),
        ("m2".to_string(), m2.partitioner.assignments()),
    ]));
    let (stop, stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(sample(observer.clone(), watched.clone(), stop_rx));

    wait_settled(
        "3 members to split the items 4/3/3",
        &observer,
        &[&m1, &m2],
        &["m1", "m2", "m3"],
        &[4, 3, 3],
    )
    .await;
    let holders = lock_holders(&observer).await.expect("read the locks");
    let counts3 = counts(&holders).expect("every item held");
    assert_eq!(
        counts3.values().copied().collect::<Vec<_>>(),
        vec![4, 3, 3],
        "sorted members m1, m2, m3 take items 0,3,6,9 / 1,4,7 / 2,5,8"
    );
    assert_eq!(
        m1.partitioner.owned(),
        vec!["item-00", "item-03", "item-06", "item-09"]
    );
    assert_eq!(
        m2.partitioner.owned(),
        vec!["item-01", "item-04", "item-07"]
    );

    // A fourth member joins: 3/3/2/2.
    let m4 = member(&addr, "m4").await;
    watched
        .lock()
        .push(("m4".to_string(), m4.partitioner.assignments()));
    wait_settled(
        "4 members to split the items 3/3/2/2",
        &observer,
        &[&m1, &m2, &m4],
        &["m1", "m2", "m3", "m4"],
        &[3, 3, 2, 2],
    )
    .await;

    // The member process dies (SIGKILL): its session must expire, then its
    // items go to the others.
    let killed = Instant::now();
    m3.kill9();
    wait_settled(
        "the dead member's items to be re-owned",
        &observer,
        &[&m1, &m2, &m4],
        &["m1", "m2", "m4"],
        &[4, 3, 3],
    )
    .await;
    let moved_after = killed.elapsed();
    eprintln!("the dead member's items moved {moved_after:?} after the kill");
    assert!(
        moved_after <= SESSION + MARGIN,
        "the dead member's items moved {moved_after:?} after the kill \
         (session timeout {SESSION:?} + {MARGIN:?})"
    );

    // A member leaves cleanly: the rest re-divide at once, 5/5.
    let left = Instant::now();
    m4.partitioner.close().await;
    watched.lock().retain(|(id, _)| id != "m4");
    wait_settled(
        "2 members to split the items 5/5",
        &observer,
        &[&m1, &m2],
        &["m1", "m2"],
        &[5, 5],
    )
    .await;
    assert!(
        left.elapsed() < SESSION + MARGIN,
        "a clean leave took {:?} to re-divide",
        left.elapsed()
    );

    stop.send_replace(true);
    let record = sampler.await.expect("the sampler");
    eprintln!(
        "{} samples, {} violations",
        record.samples,
        record.violations.len()
    );
    assert!(
        record.samples >= 20,
        "only {} samples were taken",
        record.samples
    );
    assert!(
        record.violations.is_empty(),
        "{} violations in {} samples, e.g. {:?}",
        record.violations.len(),
        record.samples,
        &record.violations[..record.violations.len().min(10)]
    );

    m1.partitioner.close().await;
    m2.partitioner.close().await;
    // Closed members hold nothing in the store.
    let holders = lock_holders(&observer).await.expect("read the locks");
    assert!(holders.values().all(Option::is_none), "{holders:?}");
    for c in [&m1.client, &m2.client, &m4.client, &observer] {
        c.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cut_off_owns_nothing_and_comes_back_after_its_session_is_lost() {
    let server = InProcServer::start_with(ServerOpts {
        tick_ms: 100,
        ..Default::default()
    });
    let addr = server.addr();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port()).into());
    let observer = client(&addr, Duration::from_secs(4)).await;
    let m1 = member(&addr, "m1").await;
    let m2 = member(&proxy.addr().to_string(), "m2").await;
    wait_settled(
        "2 members to split the items 5/5",
        &observer,
        &[&m1, &m2],
        &["m1", "m2"],
        &[5, 5],
    )
    .await;
    let old_session = m2.client.session_id();

    // Cut m2 off and hold the line down past its session timeout: it must
    // stop owning at once, m1 takes everything once the session expires,
    // and m2 reports Failure.
    let mut states = m2.partitioner.states();
    proxy.mute();
    proxy.cut();
    tokio::time::timeout(PHASE, states.wait_for(|s| *s != PartitionState::Acquired))
        .await
        .expect("m2 to stop owning")
        .expect("m2 running");
    assert!(m2.partitioner.owned().is_empty());
    wait_settled("m1 to own all ten items", &observer, &[&m1], &["m1"], &[10]).await;
    tokio::time::timeout(PHASE, states.wait_for(|s| *s == PartitionState::Failure))
        .await
        .expect("m2 to report Failure")
        .expect("m2 running");

    // The line comes back: m2 gets a new session, joins again, and the
    // items are split again.
    proxy.unmute();
    wait_settled(
        "2 members to split the items 5/5 again",
        &observer,
        &[&m1, &m2],
        &["m1", "m2"],
        &[5, 5],
    )
    .await;
    assert_ne!(m2.client.session_id(), old_session, "a new session");

    m1.partitioner.close().await;
    m2.partitioner.close().await;
    for c in [&m1.client, &m2.client, &observer] {
        c.close().await.expect("close");
    }
}
