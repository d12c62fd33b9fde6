//! Linearizability under faults: clients on every member read (sync, then
//! getData), write and compare-and-set a few keys while members are
//! SIGKILLed, SIGSTOPped past their election timeout, isolated from their
//! peers (the leader in a minority, then a follower), slowed and cut off
//! on their peer links. Every call is recorded — invocation, completion,
//! result — and the history is checked by `warden_tests::linearizability`
//! (whose own tests prove it rejects stale reads, lost writes and
//! impossible CAS results).
//!
//! A minority leader is tested on its own: isolated, it acknowledges
//! nothing, and within its election timeout it refuses writes outright.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use warden_client::{Client, CreateMode, Error, ErrorCode, Stat};
use warden_tests::cluster::Cluster;
use warden_tests::linearizability::{check, Failure, History, Op, Outcome};
use warden_tests::{connect, quick_retry, wait_until, within, STEP};

use super::{converged, from, leader_among, opts, SESSION};

/// The keys every client works on: few, so that operations collide.
const KEYS: usize = 3;
/// Clients, spread over the members.
const CLIENTS: usize = 6;
/// How long one call may take before it is recorded as indeterminate.
const CALL: Duration = Duration::from_secs(2);
/// The members' longest election timeout (`raft::ELECTION_TIMEOUT_MAX_MS`).
const ELECTION_TIMEOUT: Duration = Duration::from_millis(600);

fn key(k: usize) -> String {
    format!("/lin/k{k}")
}

/// The seed of the clients' and the faults' choices: random, printed, and
/// taken from `WARDEN_LIN_SEED` to replay a run.
fn seed() -> u64 {
    let seed = std::env::var("WARDEN_LIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("WARDEN_LIN_SEED={seed}");
    seed
}

/// What a setData's reply says about the state.
fn write_outcome(r: Result<Result<Stat, Error>, tokio::time::error::Elapsed>) -> Outcome {
    match r {
        Ok(Ok(stat)) => Outcome::version(stat.version),
        Ok(Err(Error::Api {
            code: ErrorCode::BadVersion,
            ..
        })) => Outcome::Failed(Failure::BadVersion),
        Ok(Err(Error::Api {
            code: ErrorCode::NoNode,
            ..
        })) => Outcome::Failed(Failure::NoNode),
        // A timeout, a lost connection, a member that refused: the write
        // may or may not take effect.
        _ => Outcome::Indeterminate,
    }
}

/// One client's loop: a random mix of reads, blind writes and CAS on the
/// keys, each recorded in `h`, until `stop`.
async fn run_client(
    id: usize,
    client: Client,
    h: Arc<History>,
    mut rng: StdRng,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
) {
    let mut seen = [0i32; KEYS];
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let k = rng.random_range(0..KEYS);
        let path = key(k);
        let outcome = match rng.random_range(0..10) {
            0..=3 => {
                let op = h.invoke(id, &path, Op::Read);
                // Reads are local; sync first makes one linearizable.
                let r = tokio::time::timeout(CALL, async {
                    client.sync(&path).await?;
                    client.get_data(&path).await
                })
                .await;
                let outcome = match r {
                    Ok(Ok((data, stat))) => {
                        seen[k] = stat.version;
                        Outcome::read(data, stat.version)
                    }
                    Ok(Err(Error::Api {
                        code: ErrorCode::NoNode,
                        ..
                    })) => Outcome::Failed(Failure::NoNode),
                    // A read that returned nothing changed nothing.
                    _ => Outcome::NotApplied,
                };
                h.complete(op, outcome.clone());
                outcome
            }
            kind => {
                n += 1;
                let value = format!("c{id}-{n}");
                let expected = (kind >= 7).then_some(seen[k]);
                let op = h.invoke(
                    id,
                    &path,
                    match expected {
                        Some(v) => Op::cas(v, value.clone()),
                        None => Op::write(value.clone()),
                    },
                );
                let r = tokio::time::timeout(CALL, client.set_data(&path, value, expected)).await;
                let outcome = write_outcome(r);
                if let Outcome::Ok(warden_tests::linearizability::Output::Version(v)) = outcome {
                    seen[k] = v;
                }
                h.complete(op, outcome.clone());
                outcome
            }
        };
        if matches!(outcome, Outcome::Ok(_)) {
            ok.fetch_add(1, Ordering::SeqCst);
        }
    }
    let _ = tokio::time::timeout(CALL, client.close()).await;
}

/// One fault, applied and undone.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillLeader,
    KillFollower,
    StopLeader,
    IsolateLeader,
    IsolateFollower,
    SlowLinks,
    CutLeaderLinks,
}

const FAULTS: [Fault; 7] = [
    Fault::KillLeader,
    Fault::StopLeader,
    Fault::IsolateLeader,
    Fault::SlowLinks,
    Fault::KillFollower,
    Fault::IsolateFollower,
    Fault::CutLeaderLinks,
];

/// Faults per run: each kind at least once; `WARDEN_LIN_ROUNDS` for more.
fn rounds() -> usize {
    std::env::var("WARDEN_LIN_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(FAULTS.len())
}

async fn inject(c: &mut Cluster, fault: Fault, rng: &mut StdRng) {
    let all: Vec<usize> = c.ids().collect();
    let leader = leader_among(c, &all).await;
    let followers: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
    let follower = followers[rng.random_range(0..followers.len())];
    let others = |i: usize| -> Vec<usize> { all.iter().copied().filter(|&j| j != i).collect() };
    // Long enough for clients to run into the fault, and for a new leader.
    let hold = Duration::from_millis(rng.random_range(800..2000));
    match fault {
        Fault::KillLeader | Fault::KillFollower => {
            let victim = if matches!(fault, Fault::KillLeader) {
                leader
            } else {
                follower
            };
            tokio::task::block_in_place(|| c.kill(victim));
            leader_among(c, &others(victim)).await;
            tokio::time::sleep(hold).await;
            tokio::task::block_in_place(|| c.restart(victim));
        }
        Fault::StopLeader => {
            c.stop(leader);
            leader_among(c, &others(leader)).await;
            tokio::time::sleep(hold).await;
            c.cont(leader);
        }
        Fault::IsolateLeader | Fault::IsolateFollower => {
            let victim = if matches!(fault, Fault::IsolateLeader) {
                leader
            } else {
                follower
            };
            c.isolate(victim);
            leader_among(c, &others(victim)).await;
            tokio::time::sleep(hold).await;
            c.heal();
        }
        Fault::SlowLinks => {
            let delay = Duration::from_millis(rng.random_range(20..150));
            for &i in &all {
                for j in others(i) {
                    c.link(i, j).set_delay(delay);
                }
            }
            tokio::time::sleep(hold * 2).await;
            c.heal();
        }
        Fault::CutLeaderLinks => {
            for j in others(leader) {
                c.link(leader, j).cut();
                c.link(j, leader).cut();
            }
            tokio::time::sleep(hold).await;
        }
    }
    leader_among(c, &all).await;
}

/// Reads, writes and CAS from clients on every member stay linearizable
/// through kills, stops, partitions, slow and cut peer links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_are_linearizable_under_faults() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = tokio::task::block_in_place(|| Cluster::start_with_links(3, opts()));
    let setup = connect(&c.connect_string(), quick_retry(SESSION)).await;
    setup
        .create("/lin", "", CreateMode::Persistent)
        .await
        .unwrap();
    let h = Arc::new(History::new());
    for k in 0..KEYS {
        setup
            .create(&key(k), "init", CreateMode::Persistent)
            .await
            .unwrap();
        h.set_initial(key(k), Some((b"init".to_vec(), 0)));
    }
    setup.close().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for id in 0..CLIENTS {
        // No transparent retries: a setData retried after a ConnectionLoss
        // is a second write (as with Curator), which the history would
        // record as one.
        let mut options = quick_retry(SESSION);
        options.retry.max_retries = 0;
        let client = connect(&from(&c, id % 3 + 1), options).await;
        eprintln!("client {id}: session {:#x}", client.session_id());
        clients.push(tokio::spawn(run_client(
            id,
            client,
            h.clone(),
            StdRng::seed_from_u64(seed ^ (id as u64 + 1)),
            stop.clone(),
            ok.clone(),
        )));
    }
    let progress = |what: &'static str| {
        let ok = ok.clone();
        let start = ok.load(Ordering::SeqCst);
        async move {
            wait_until(what, STEP, || {
                let n = ok.load(Ordering::SeqCst);
                async move { n >= start + 40 }
            })
            .await;
        }
    };
    progress("operations before the first fault").await;
    for round in 0..rounds() {
        let fault = FAULTS[round % FAULTS.len()];
        eprintln!("fault {round}: {fault:?}");
        inject(&mut c, fault, &mut rng).await;
        progress("operations after the fault").await;
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        within(STEP, "a client stops", client).await.unwrap();
    }
    converged(&c).await;
    let records = h.records();
    let count = |f: fn(&Outcome) -> bool| {
        records
            .iter()
            .filter(|r| r.outcome.as_ref().is_some_and(f))
            .count()
    };
    eprintln!(
        "{} operations: {} ok, {} failed, {} indeterminate, {} not applied",
        records.len(),
        count(|o| matches!(o, Outcome::Ok(_))),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Indeterminate)),
        count(|o| matches!(o, Outcome::NotApplied)),
    );
    let started = Instant::now();
    let verdict = tokio::task::block_in_place(|| check(&h));
    eprintln!("checked in {:?}", started.elapsed());
    if let Err(e) = verdict {
        let dir = c.save_logs(&format!("ensemble-lin-{seed}"));
        let history: String = records.iter().map(|r| format!("{r:?}\n")).collect();
        std::fs::write(dir.join("history.txt"), history).unwrap();
        panic!("{e}\n(member logs: {})", dir.display());
    }
}

/// A leader cut off from the other members acknowledges nothing from the
/// moment it is isolated, refuses writes outright once an election
/// timeout has passed without a majority, and what it was sent is gone
/// once the partition heals; the majority elects a leader and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_leader_acknowledges_nothing() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let c = tokio::task::block_in_place(|| Cluster::start_with_links(3, opts()));
    let all: Vec<usize> = c.ids().collect();
    let old = leader_among(&c, &all).await;
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    let on_old = connect(&c.member(old).addr(), quick_retry(SESSION)).await;
    let on_rest = connect(&c.member(rest[0]).addr(), quick_retry(SESSION)).await;
    on_old
        .create("/m", "", CreateMode::Persistent)
        .await
        .unwrap();
    on_rest.sync("/m").await.unwrap();

    c.isolate(old);
    let isolated = Instant::now();
    // (path, sent, answered, result), times since the isolation.
    let mut answers = Vec::new();
    let mut n = 0;
    // Writes keep going to the old leader for three election timeouts.
    while isolated.elapsed() < ELECTION_TIMEOUT * 3 {
        n += 1;
        let path = format!("/m/old-{n}");
        let sent = isolated.elapsed();
        let r = tokio::time::timeout(CALL, on_old.create(&path, "", CreateMode::Persistent)).await;
        let r = match r {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(Error::new(ErrorCode::OperationTimeout, "no answer")),
        };
        answers.push((path, sent, isolated.elapsed(), r));
    }
    // Its /health says so, whatever its own view of who leads.
    let (code, body) = c.member(old).http_get("/health").unwrap();
    assert_eq!(code, 503, "the isolated leader's /health: {body}");
    // Meanwhile the majority elected a leader and takes writes.
    leader_among(&c, &rest).await;
    on_rest
        .create("/m/majority", "", CreateMode::Persistent)
        .await
        .unwrap();
    let acked: Vec<&String> = answers
        .iter()
        .filter(|(_, _, _, r)| r.is_ok())
        .map(|(p, ..)| p)
        .collect();
    assert!(
        acked.is_empty(),
        "the isolated leader acknowledged {acked:?}"
    );
    let prompt = answers.iter().find(|(_, sent, done, r)| {
        *sent > ELECTION_TIMEOUT + Duration::from_millis(200)
            && r.is_err()
            && *done - *sent < Duration::from_millis(500)
    });
    assert!(
        prompt.is_some(),
        "after an election timeout the isolated leader still did not refuse a write at once: {:?}",
        answers
            .iter()
            .map(|(p, s, d, r)| format!("{p} sent {s:?} answered {d:?}: {r:?}"))
            .collect::<Vec<_>>()
    );

    c.heal();
    leader_among(&c, &all).await;
    converged(&c).await;
    for i in all {
        let client = connect(&c.member(i).addr(), quick_retry(SESSION)).await;
        let held = client.get_children("/m").await.unwrap();
        assert_eq!(
            held,
            vec!["majority".to_string()],
            "member {i} holds a write sent to the isolated leader"
        );
        client.close().await.unwrap();
    }
}
