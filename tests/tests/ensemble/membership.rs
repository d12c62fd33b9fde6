//! Changing a running ensemble with `warden member …` and `warden leader
//! transfer`: growing from three voters to five and shrinking back to
//! three under write load, a permanent learner (ZooKeeper's observer), and
//! the changes the leader must refuse.

use std::collections::BTreeSet;
use std::process::Output;

use warden_client::CreateMode;
use warden_tests::cluster::Cluster;
use warden_tests::{bin, connect, quick_retry, wait_until, within, PHASE, STEP};

use super::recipes::member_logs;
use super::{converged_among, holds_exactly, leader_among, opts, Writers, SESSION};

/// `warden --servers <member via> ARGS`.
fn warden(c: &Cluster, via: usize, args: &[&str]) -> Output {
    std::process::Command::new(bin("warden"))
        .arg("--servers")
        .arg(c.member(via).addr())
        .args(args)
        .output()
        .expect("run warden")
}

/// `warden ARGS` through member `via`, which must succeed; its stdout.
fn warden_ok(c: &Cluster, via: usize, args: &[&str]) -> String {
    let out = warden(c, via, args);
    assert!(
        out.status.success(),
        "warden {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        member_logs(c, 40)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `warden ARGS` through member `via`, which must fail; its error message.
fn warden_refused(c: &Cluster, via: usize, args: &[&str]) -> String {
    let out = warden(c, via, args);
    assert!(
        !out.status.success(),
        "warden {args:?} should have been refused; it printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `warden member list --json` through member `via`: one object per member.
fn members(c: &Cluster, via: usize) -> Vec<serde_json::Value> {
    warden_ok(c, via, &["member", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Member `id` as `member list` (through `via`) shows it.
fn listed(c: &Cluster, via: usize, id: usize) -> Option<serde_json::Value> {
    members(c, via)
        .into_iter()
        .find(|m| m["id"].as_u64() == Some(id as u64))
}

/// Waits until `member list` through `via` shows member `id` matching `f`.
async fn until_listed(
    c: &Cluster,
    via: usize,
    id: usize,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) {
    wait_until(what, PHASE, || {
        let ok = tokio::task::block_in_place(|| listed(c, via, id)).is_some_and(|m| f(&m));
        async move { ok }
    })
    .await;
}

/// Three voters grow to five under write load — member 4 added as a
/// learner and promoted by hand once caught up, member 5 added to be
/// promoted on its own — then two of the original three are removed, the
/// leader among them (it hands leadership off first), and both removed
/// processes stop by themselves. Writes go on at every step, every
/// acknowledged create is on each of the three members left, and they
/// reach the same state hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grows_to_five_and_shrinks_to_three_under_write_load() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let four = c.prepare_joiner(opts());
    let five = c.prepare_joiner(opts());
    // Starting on the original members; each connect string also names
    // the members that join later, to move to.
    let writers = Writers::start(&c, "/g", 3, |w| {
        let first = w % 3 + 1;
        std::iter::once(first)
            .chain(c.ids().filter(|&i| i != first))
            .map(|i| c.member(i).addr())
            .collect::<Vec<_>>()
            .join(",")
    })
    .await;
    writers.progress("writes on three members", 30).await;

    let peer4 = c.peer_addr(four);
    tokio::task::block_in_place(|| {
        warden_ok(&c, 1, &["member", "add", "4", &peer4, "--learner"]);
        c.restart(four);
    });
    until_listed(
        &c,
        1,
        four,
        "member 4 catches up and announces itself",
        |m| m["lag"].as_u64().is_some_and(|l| l < 100) && m["client_address"] != "",
    )
    .await;
    let m4 = tokio::task::block_in_place(|| listed(&c, 2, four)).unwrap();
    assert_eq!(
        m4["voter"], false,
        "a --learner member is not promoted: {m4}"
    );
    assert_eq!(m4["client_address"], c.member(four).addr(), "{m4}");
    tokio::task::block_in_place(|| warden_ok(&c, 2, &["member", "promote", "4"]));
    until_listed(&c, 1, four, "member 4 votes", |m| m["voter"] == true).await;
    writers.progress("writes with four voters", 30).await;

    let peer5 = c.peer_addr(five);
    tokio::task::block_in_place(|| {
        warden_ok(&c, 3, &["member", "add", "5", &peer5]);
        c.restart(five);
    });
    until_listed(&c, 1, five, "member 5 is promoted once caught up", |m| {
        m["voter"] == true
    })
    .await;
    writers.progress("writes with five voters", 30).await;

    // The leader must be one of the original three, to be removed.
    let mut leader = leader_among(&c, &[1, 2, 3, 4, 5]).await;
    if leader > 3 {
        let out =
            tokio::task::block_in_place(|| warden_ok(&c, 1, &["leader", "transfer", "--to", "1"]));
        assert!(out.contains("member 1 leads"), "{out}");
        leader = leader_among(&c, &[1, 2, 3, 4, 5]).await;
        assert_eq!(leader, 1);
    }
    let other = (1..=3).find(|&i| i != leader).unwrap();
    let kept = (1..=3).find(|&i| i != leader && i != other).unwrap();
    for victim in [other, leader] {
        let via = kept;
        tokio::task::block_in_place(|| {
            warden_ok(&c, via, &["member", "remove", &victim.to_string()]);
            let exited = c.member_mut(victim).wait_exit(STEP);
            assert!(
                exited.is_some_and(|s| s.success()),
                "removed member {victim} did not stop cleanly ({exited:?}); logs in {}",
                c.save_logs("grow-and-shrink").display()
            );
        });
        writers.progress("writes after a removal", 30).await;
    }
    let left = [kept, four, five];
    let listed_ids: BTreeSet<u64> = tokio::task::block_in_place(|| members(&c, kept))
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(
        listed_ids,
        left.iter().map(|&i| i as u64).collect(),
        "the members after two removals"
    );
    let rec = writers.finish().await;
    converged_among(&c, &left, STEP).await;
    for i in left {
        holds_exactly(&c, i, "/g", &rec).await;
    }
    eprintln!(
        "{} creates acknowledged, {} uncertain",
        rec.acked.len(),
        rec.uncertain.len()
    );
}

/// A member added with `--learner` serves reads and forwards writes, is
/// never promoted on its own, and its loss does not touch the quorum; the
/// leader refuses a removal that would leave no quorum and an id in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_serves_and_never_counts_and_bad_changes_are_refused() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let four = c.prepare_joiner(opts());
    let peer4 = c.peer_addr(four);
    tokio::task::block_in_place(|| {
        warden_ok(&c, 1, &["member", "add", "4", &peer4, "--learner"]);
        c.restart(four);
    });
    // Reads and writes through the learner alone.
    let on_learner = connect(&c.member(four).addr(), quick_retry(SESSION)).await;
    on_learner
        .create("/l", "via-learner", CreateMode::Persistent)
        .await
        .unwrap();
    let on_voter = connect(&c.member(1).addr(), quick_retry(SESSION)).await;
    on_voter.sync("/l").await.unwrap();
    assert_eq!(on_voter.get_data("/l").await.unwrap().0, b"via-learner");
    on_voter.set_data("/l", "via-voter", None).await.unwrap();
    on_learner.sync("/l").await.unwrap();
    assert_eq!(on_learner.get_data("/l").await.unwrap().0, b"via-voter");
    on_learner.close().await.unwrap();
    let m4 = tokio::task::block_in_place(|| listed(&c, 1, four)).unwrap();
    assert_eq!(
        (m4["voter"].clone(), m4["role"].clone()),
        (false.into(), "observer".into())
    );

    // Refused: an id in use, a peer address in use.
    let e = tokio::task::block_in_place(|| {
        warden_refused(&c, 2, &["member", "add", "2", "127.0.0.1:1"])
    });
    assert!(e.contains("already a member"), "{e}");
    let peer1 = c.peer_addr(1);
    let e = tokio::task::block_in_place(|| warden_refused(&c, 2, &["member", "add", "9", &peer1]));
    assert!(e.contains("is member 1's"), "{e}");

    // The learner's loss does not matter; a voter's loss leaves a quorum.
    tokio::task::block_in_place(|| c.kill(four));
    on_voter
        .create("/after-learner", "", CreateMode::Persistent)
        .await
        .unwrap();
    let leader = leader_among(&c, &[1, 2, 3]).await;
    let down = (1..=3).find(|&i| i != leader).unwrap();
    let up = (1..=3).find(|&i| i != leader && i != down).unwrap();
    tokio::task::block_in_place(|| c.kill(down));
    leader_among(&c, &[leader, up]).await;
    let on_up = connect(&c.member(up).addr(), quick_retry(SESSION)).await;
    on_up
        .create("/two-of-three", "", CreateMode::Persistent)
        .await
        .unwrap();
    // Removing the other live voter would leave {leader, down}, of which
    // one answers: refused, and nothing changes.
    let e = tokio::task::block_in_place(|| {
        warden_refused(&c, leader, &["member", "remove", &up.to_string()])
    });
    assert!(e.contains("would leave no quorum"), "{e}");
    let voters = tokio::task::block_in_place(|| members(&c, up))
        .iter()
        .filter(|m| m["voter"] == true)
        .count();
    assert_eq!(voters, 3);
    // Removing the dead learner is fine.
    tokio::task::block_in_place(|| warden_ok(&c, up, &["member", "remove", "4"]));
    assert!(tokio::task::block_in_place(|| listed(&c, up, four)).is_none());
    on_up
        .create("/after-removal", "", CreateMode::Persistent)
        .await
        .unwrap();
    tokio::task::block_in_place(|| c.restart(down));
    converged_among(&c, &[1, 2, 3], STEP).await;
    on_up.close().await.unwrap();
    on_voter.close().await.unwrap();
}

/// `warden leader transfer` moves leadership to the member named, quickly,
/// and a write through a follower during it does not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_transfer_moves_leadership_without_failing_writes() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let client = connect(&c.connect_string(), quick_retry(SESSION)).await;
    client
        .create("/t", "", CreateMode::Persistent)
        .await
        .unwrap();
    for round in 0..4 {
        let leader = leader_among(&c, &[1, 2, 3]).await;
        let to = leader % 3 + 1;
        let writes = {
            let client = client.clone();
            tokio::spawn(async move {
                for k in 0..50 {
                    client
                        .create(&format!("/t/{round}-{k}"), "", CreateMode::Persistent)
                        .await
                        .map_err(|e| format!("create {round}-{k}: {e}"))?;
                }
                Ok::<_, String>(())
            })
        };
        let out = tokio::task::block_in_place(|| {
            warden_ok(&c, to, &["leader", "transfer", "--to", &to.to_string()])
        });
        assert!(out.contains(&format!("member {to} leads")), "{out}");
        assert_eq!(leader_among(&c, &[1, 2, 3]).await, to);
        within(STEP, "the writes during the transfer", writes)
            .await
            .unwrap()
            .unwrap_or_else(|e| {
                panic!(
                    "a write failed during the hand-off: {e}; logs in {}",
                    c.save_logs("leader-transfer").display()
                )
            });
    }
    client.close().await.unwrap();
}

/// A member restarted with another ensemble's `--peers`, or on another
/// ensemble's data folder, refuses to start with a one-line reason, and
/// the two members left go on serving writes meanwhile; started again as
/// it was, it rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_ensembles_peers_or_data_is_refused() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let mut other = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let other_peers = (1..=3)
        .map(|i| format!("{i}={}", other.peer_addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    for i in 1..=3 {
        tokio::task::block_in_place(|| other.terminate(i));
    }
    let mut c = tokio::task::block_in_place(|| Cluster::start(3, opts()));
    let client = connect(&c.connect_string(), quick_retry(SESSION)).await;
    client
        .create("/x", "", CreateMode::Persistent)
        .await
        .unwrap();
    tokio::task::block_in_place(|| c.terminate(3));
    let own = c.member(3).opts.extra_args.clone();

    // Another ensemble's --peers.
    let mut foreign = own.clone();
    let at = foreign.iter().position(|a| a == "--peers").unwrap() + 1;
    foreign[at] = other_peers;
    c.member_mut(3).opts.extra_args = foreign;
    let e = tokio::task::block_in_place(|| c.member_mut(3).try_restart())
        .expect_err("started with another ensemble's --peers");
    assert!(
        c.member(3).log().contains("contradicts the members stored"),
        "{e}: {}",
        c.member(3).log()
    );
    client
        .create("/x/a", "", CreateMode::Persistent)
        .await
        .unwrap();

    // Another ensemble's data folder, with its own flags.
    c.member_mut(3).opts.extra_args = own;
    let mine = c.member(3).data_dir();
    let saved = mine.with_extension("saved");
    std::fs::rename(&mine, &saved).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(other.member(3).data_dir())
        .arg(&mine)
        .status()
        .unwrap();
    assert!(copied.success());
    let before = c
        .member(3)
        .log()
        .matches("contradicts the members stored")
        .count();
    let e = tokio::task::block_in_place(|| c.member_mut(3).try_restart())
        .expect_err("started on another ensemble's data folder");
    assert_eq!(
        c.member(3)
            .log()
            .matches("contradicts the members stored")
            .count(),
        before + 1,
        "{e}"
    );
    client
        .create("/x/b", "", CreateMode::Persistent)
        .await
        .unwrap();

    std::fs::remove_dir_all(&mine).unwrap();
    std::fs::rename(&saved, &mine).unwrap();
    tokio::task::block_in_place(|| c.restart(3));
    converged_among(&c, &[1, 2, 3], STEP).await;
    client.close().await.unwrap();
}
