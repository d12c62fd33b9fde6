//! One lock, two client libraries: a kazoo `Lock` (Python, through Warden's
//! ZooKeeper listener) and a `warden_client::recipes::Lock` (the
//! `recipe_worker`, through the gRPC API) take turns on the same path, and
//! each records when it enters and leaves. The record must show both
//! holding many times, handing over to each other, and never overlapping.
//!
//! This works because each side recognises the other's contender nodes:
//! Warden's Lock queues with kazoo's `<uuid>__lock__<seq>`, and the kazoo
//! worker passes `extra_lock_patterns=("-lock-",)` for Warden's (and
//! Curator's) `_c_<uuid>-lock-<seq>` (see docs/recipes.md).
//!
//! With `WARDEN_ZK_REFERENCE` (Apache ZooKeeper, which has no gRPC API) the
//! Warden worker is replaced by a second kazoo worker, which checks the
//! worker and the record check themselves.

use std::path::Path;

use warden_tests::workers::{events, Event, Proc};
use warden_tests::zookeeper::{self, unique_root, Target};
use warden_tests::SLOW_STEP;

const ROUNDS: usize = 25;
const HOLD_MS: u64 = 15;

fn kazoo_worker(dir: &Path, hosts: &str, lock: &str, out: &Path) -> Proc {
    let mut cmd = zookeeper::python_with_kazoo();
    cmd.arg(zookeeper::compat_file("kazoo_lock_worker.py"))
        .args(["--hosts", hosts, "--path", lock, "--out"])
        .arg(out)
        .args([
            "--rounds",
            &ROUNDS.to_string(),
            "--hold-ms",
            &HOLD_MS.to_string(),
        ]);
    Proc::spawn(dir, cmd)
}

/// Each process's critical sections `(enter, exit, pid)`, from its `ACQ`
/// and the `REL` (or `LOST`) after it, in order of entry.
fn sections(record: &[Event]) -> Vec<(u64, u64, u32)> {
    let mut open: std::collections::HashMap<u32, u64> = Default::default();
    let mut out = Vec::new();
    for e in record {
        match e.kind.as_str() {
            "ACQ" => {
                let before = open.insert(e.pid, e.ns);
                assert!(before.is_none(), "{} entered twice without leaving", e.pid);
            }
            "REL" | "LOST" => {
                let start = open
                    .remove(&e.pid)
                    .unwrap_or_else(|| panic!("{} left without entering", e.pid));
                assert_eq!(e.kind, "REL", "pid {} lost the lock: {e:?}", e.pid);
                out.push((start, e.ns, e.pid));
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "sections never closed: {open:?}");
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_and_warden_locks_exclude_each_other() {
    let target = Target::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("record");
    let lock = format!("{}/lock", unique_root("mixed-lock"));

    // A gate holds the lock first (an ephemeral-sequential `gate-lock-`
    // node, which both libraries count as a contender); it goes once both
    // workers queue behind it, so they contend from the start.
    let zk = zookeeper_client::Client::connect(&target.zk_addr())
        .await
        .expect("connect");
    let (dir_path, _) = lock.split_at(lock.rfind('/').expect("a parent"));
    let persistent =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    zk.create(dir_path, b"", &persistent).await.expect("root");
    zk.create(&lock, b"", &persistent).await.expect("lock dir");
    let (_, seq) = zk
        .create(
            &format!("{lock}/gate-lock-"),
            b"",
            &zookeeper_client::CreateMode::EphemeralSequential
                .with_acls(zookeeper_client::Acls::anyone_all()),
        )
        .await
        .expect("gate");
    let gate = format!("{lock}/gate-lock-{seq}");

    let mut first = kazoo_worker(dir.path(), &target.zk_addr(), &lock, &out);
    let mut second = match target.warden() {
        Some(server) => Proc::worker(
            dir.path(),
            &[
                "hold",
                "--servers",
                &server.addr(),
                "--lock",
                &lock,
                "--out",
                out.to_str().expect("utf-8 path"),
                "--hold-ms",
                &HOLD_MS.to_string(),
                "--max-acq",
                &ROUNDS.to_string(),
                "--timeout-ms",
                "10000",
            ],
        ),
        None => kazoo_worker(dir.path(), &target.zk_addr(), &lock, &out),
    };
    let mut queued = 0;
    for _ in 0..(SLOW_STEP.as_millis() / 20) {
        queued = zk.list_children(&lock).await.expect("children").len();
        if queued >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(queued, 3, "both workers queue behind the gate");
    assert!(
        events(&out).is_empty(),
        "a worker took the lock while the gate held it: {:?}",
        events(&out)
    );
    zk.delete(&gate, None).await.expect("open the gate");

    let limit = SLOW_STEP * 3;
    for (name, p) in [("first", &mut first), ("second", &mut second)] {
        let code = p.wait(limit);
        assert_eq!(
            code,
            Some(0),
            "the {name} worker failed; its log:\n{}\nserver log:\n{}",
            p.log(),
            target.log()
        );
    }

    let record = events(&out);
    assert!(
        record.iter().all(|e| e.kind != "ERR"),
        "a worker hit an error: {:?}",
        record
            .iter()
            .filter(|e| e.kind == "ERR")
            .collect::<Vec<_>>()
    );
    let sections = sections(&record);
    let pids: std::collections::BTreeSet<u32> = sections.iter().map(|s| s.2).collect();
    assert_eq!(pids.len(), 2, "both workers held the lock: {pids:?}");
    for pid in &pids {
        let n = sections.iter().filter(|s| s.2 == *pid).count();
        assert_eq!(n, ROUNDS, "pid {pid} held the lock {n} times");
    }
    for w in sections.windows(2) {
        let ((s1, e1, p1), (s2, _, p2)) = (w[0], w[1]);
        assert!(
            e1 <= s2,
            "overlap: {p1} held [{s1}, {e1}] and {p2} entered at {s2} ({} µs early)",
            (e1 - s2) / 1000
        );
    }
    let handovers = sections.windows(2).filter(|w| w[0].2 != w[1].2).count();
    println!(
        "{} critical sections by {pids:?}, {handovers} handovers, no overlap",
        sections.len()
    );
    assert!(
        handovers >= ROUNDS,
        "the workers hardly took turns ({handovers} handovers in {} sections): \
         one side is not queueing behind the other",
        sections.len()
    );
}
