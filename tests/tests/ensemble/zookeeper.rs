//! ZooKeeper's own clients on the ensemble: kazoo (Python) and Apache's
//! Java client and Curator across the loss of their member, driving
//! `tests/compat/kazoo_failover.py`, `JavaFailover.java` and
//! `CuratorFailover.java`, and Apache's
//! `zkCli.sh` on every member (`warden_tests::zookeeper`).

use std::process::Command;

use warden_tests::cluster::Cluster;
use warden_tests::zookeeper::{
    compat_file, curator_client, java_client, python_with_kazoo, unique_root, Script, Shell,
};
use warden_tests::PHASE;

use super::recipes::member_logs;
use super::{leader_among, opts};

/// Every member's ZooKeeper address, member `first`'s first.
fn zk_from(c: &Cluster, first: usize) -> String {
    let n = c.ids().count();
    (0..n)
        .map(|k| c.member((first - 1 + k) % n + 1).zk_addr())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs a failover script (`kazoo_failover.py`, `JavaFailover.java`): it
/// prints `READY SESSION HOST:PORT` once its client holds its session,
/// ephemeral and watches on the member at `HOST:PORT`; that member is
/// SIGKILLed, the others agree on a leader, the script is told `KILLED`,
/// and every one of its `checks` checks must pass. `on`: the member the
/// client must be on (checked). Returns the member killed.
async fn fail_over(
    c: &mut Cluster,
    command: Command,
    name: &str,
    checks: usize,
    on: Option<usize>,
) -> usize {
    let mut script = Script::spawn(command, name);
    let ready = tokio::task::block_in_place(|| script.line(PHASE))
        .unwrap_or_else(|e| panic!("{name} did not get ready: {e}"));
    let words: Vec<&str> = ready.split(' ').collect();
    assert!(
        matches!(words[..], ["READY", _, _]),
        "unexpected line from {name}: {ready:?}"
    );
    let victim = c
        .ids()
        .find(|&i| c.member(i).zk_addr() == words[2])
        .unwrap_or_else(|| panic!("{name} is on {}, not a member", words[2]));
    if let Some(expected) = on {
        assert_eq!(victim, expected, "{name} is not on member {expected}");
        let leader_now = leader_among(c, &[1, 2, 3]).await;
        assert_eq!(leader_now, expected, "the leader changed before the kill");
    }
    tokio::task::block_in_place(|| c.kill(victim));
    let rest: Vec<usize> = c.ids().filter(|&i| i != victim).collect();
    leader_among(c, &rest).await;
    script.say("KILLED");
    let logs = member_logs(c, 60);
    let report = tokio::task::block_in_place(|| script.expect_passed(checks, PHASE, &logs));
    println!("{ready}\n{report}");
    victim
}

/// kazoo with `hosts` naming the three members' ZooKeeper ports (the
/// leader's first, so its session starts there) holds an ephemeral node, a
/// `Lock` and a `DataWatch` when the leader is SIGKILLed. Proves that a
/// ZooKeeper client's session moves to another member intact: the same
/// session id and never `LOST`, the ephemeral and the lock still its own
/// (another kazoo session cannot take the lock until it is released, then
/// can), and a change made after the failover reaches the `DataWatch`
/// exactly once (`kazoo_failover.py` makes those checks; this test kills
/// the member it is on and requires every check to pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_keeps_session_lock_and_watch_across_a_leader_kill() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let leader = leader_among(&c, &[1, 2, 3]).await;
    let mut py = python_with_kazoo();
    py.arg(compat_file("kazoo_failover.py"))
        .arg("--hosts")
        .arg(zk_from(&c, leader));
    fail_over(&mut c, py, "kazoo_failover.py", 3, Some(leader)).await;
}

/// Apache ZooKeeper's own Java client (the one Curator is built on), given
/// all three members, keeps its session, its ephemeral node and a data
/// watch when the member it is on is SIGKILLed (`JavaFailover.java`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_java_client_keeps_its_session_across_the_loss_of_its_member() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let mut java = java_client("JavaFailover.java");
    java.arg(c.zk_connect_string());
    fail_over(&mut c, java, "JavaFailover.java", 3, None).await;
}

/// Apache Curator 5.4 (Debian's jars), given all three members, keeps its
/// session, an `InterProcessMutex`, a `LeaderLatch` and a `CuratorCache`
/// when the member its client is on is SIGKILLed: the same session, never
/// `LOST`; the lock still its own (another session cannot take it until it
/// is released); leadership never given up; the cache sees a change made
/// after the loss (`CuratorFailover.java` makes those checks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_keeps_its_lock_leadership_and_cache_across_the_loss_of_its_member() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let mut java = curator_client("CuratorFailover.java");
    java.arg(c.zk_connect_string());
    fail_over(&mut c, java, "CuratorFailover.java", 4, None).await;
}

/// zkCli.sh connected to each member in turn creates a node there; then on
/// every member it `sync`s and reads each node written through the other
/// two. Proves that each member serves ZooKeeper's own shell and that a
/// write through any member is read back, after a sync, on every other.
#[test]
fn zkcli_on_each_member_reads_what_the_others_wrote() {
    let _one = super::ONE_AT_A_TIME.blocking_lock();
    let c = Cluster::start(3, opts());
    let root = unique_root("zkcli-ensemble");
    let node = |i: usize| format!("{root}/via-{i}");
    let mut shells: Vec<Shell> = c
        .ids()
        .map(|i| Shell::start(&c.member(i).zk_addr()))
        .collect();
    for sh in &mut shells {
        sh.expect("WatchedEvent state:SyncConnected type:None path:null");
    }
    shells[0].run(&format!("create {root}"), &format!("Created {root}\n"));
    for i in c.ids() {
        let sh = &mut shells[i - 1];
        sh.run(&format!("sync {root}"), "Sync is OK\n");
        sh.run(
            &format!("create {} written-through-{i}", node(i)),
            &format!("Created {}\n", node(i)),
        );
    }
    for j in c.ids() {
        let sh = &mut shells[j - 1];
        for i in c.ids().filter(|&i| i != j) {
            sh.run(&format!("sync {}", node(i)), "Sync is OK\n");
            sh.run(
                &format!("get {}", node(i)),
                &format!("written-through-{i}\n"),
            );
        }
        sh.run(&format!("ls {root}"), "[via-1, via-2, via-3]\n");
    }
    let last = &mut shells[2];
    last.send(&format!("deleteall {root}"));
    last.run(
        &format!("ls {root}"),
        &format!("Node does not exist: {root}\n"),
    );
    for (sh, i) in shells.iter_mut().zip(c.ids()) {
        sh.send("quit");
        sh.expect("WatchedEvent state:Closed type:None path:null");
        let out = sh.output();
        for bad in ["Exception", "KeeperErrorCode", "Unable to"] {
            assert!(
                !out.contains(bad),
                "zkCli on member {i} reported {bad:?}:\n{out}\n{}",
                member_logs(&c, 30)
            );
        }
    }
}
