//! Catch-up past the purged log: a follower that was stopped while the
//! leader wrote 200 000 znodes (and snapshotted and purged its log many
//! times over) rejoins from a snapshot streamed to it, then the log, and
//! ends with the same state as every other member.

use warden_client::{CreateMode, ErrorCode, MultiError, Op};
use warden_tests::cluster::Cluster;
use warden_tests::{connect, quick_retry, within, ServerOpts, PHASE};

use super::{converged_within, leader_among, opts, SESSION};

/// znodes written while the follower is stopped.
const ZNODES: usize = 200_000;
/// Creates per multi: enough log entries (well over the 1 000 the leader
/// keeps behind a snapshot) that the follower's place is purged.
const PER_MULTI: usize = 50;
/// Concurrent writers.
const WRITERS: usize = 4;
/// The watcher's session timeout: longer than the follower is stopped.
const WATCHER_SESSION: std::time::Duration = std::time::Duration::from_secs(120);

/// A follower stopped through 200 000 creates (the leader snapshots every
/// 2 000 entries and keeps 1 000 behind it, so the follower's place in the
/// log is long purged) catches up through a snapshot: it installs at least
/// one, holds every znode and the same state hash as the others, and a
/// watch its client set before it fell behind fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_purged_log_catches_up_from_a_snapshot() {
    let _one = super::ONE_AT_A_TIME.lock().await;
    let c = tokio::task::block_in_place(|| {
        Cluster::start(
            3,
            ServerOpts {
                snapshot_every: Some(2000),
                // Lets the watcher's session outlive the follower's stop.
                max_session_timeout_ms: Some(WATCHER_SESSION.as_millis() as u64),
                ..opts()
            },
        )
    });
    let all: Vec<usize> = c.ids().collect();
    let leader = leader_among(&c, &all).await;
    let behind = *all.iter().find(|&&i| i != leader).unwrap();
    let installed = |c: &Cluster| {
        c.member(behind)
            .metric("warden_snapshots_installed_total", "")
    };
    let installed_before = installed(&c);
    let admin = connect(&c.member(leader).addr(), quick_retry(SESSION)).await;
    admin
        .create("/big", "", CreateMode::Persistent)
        .await
        .unwrap();
    // A client of the follower watches /big's children: the snapshot that
    // brings the follower up to date fires no event of its own, so the
    // member drops its connections and the re-registered watch fires.
    let watcher = connect(&c.member(behind).addr(), quick_retry(WATCHER_SESSION)).await;
    watcher.sync("/big").await.unwrap();
    let (_, children_changed) = watcher.get_children_w("/big").await.unwrap();

    c.stop(behind);
    // The writers use the members still running: under load a leader
    // may change meanwhile, and a write refused by a member that lost its
    // majority is tried again (a multi is all or nothing: if its first
    // node exists, the whole multi was applied).
    let running: Vec<String> = all
        .iter()
        .filter(|&&i| i != behind)
        .map(|&i| c.member(i).addr())
        .collect();
    let running = running.join(",");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let servers = running.clone();
            tokio::spawn(async move {
                let mut options = quick_retry(SESSION);
                options.connect_timeout = PHASE;
                let client = connect(&servers, options).await;
                let batches = ZNODES / PER_MULTI / WRITERS;
                for b in 0..batches {
                    let ops: Vec<Op> = (0..PER_MULTI)
                        .map(|k| {
                            Op::create(
                                format!("/big/{w}-{b}-{k}"),
                                "0123456789",
                                CreateMode::Persistent,
                            )
                        })
                        .collect();
                    let mut tries = 0;
                    loop {
                        match client.multi(ops.clone()).await {
                            Ok(_) => break,
                            Err(MultiError::OpFailed {
                                index: 0,
                                code: ErrorCode::NodeExists,
                                ..
                            }) if tries > 0 => break,
                            Err(e) if e.code() == ErrorCode::ConnectionLoss && tries < 50 => {
                                tries += 1;
                                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            }
                            Err(e) => return Err(format!("writer {w}, batch {b}: {e}")),
                        }
                    }
                }
                client.close().await.map_err(|e| e.to_string())
            })
        })
        .collect();
    for w in writers {
        if let Err(e) = within(PHASE * 4, "a writer's creates", w).await.unwrap() {
            panic!(
                "{e} (member logs: {})",
                c.save_logs("ensemble-catch-up").display()
            );
        }
    }
    c.cont(behind);

    converged_within(&c, PHASE).await;
    assert!(
        installed(&c) > installed_before,
        "member {behind} caught up without installing a snapshot"
    );
    let event = within(
        PHASE,
        "the watch set before the follower fell behind",
        children_changed,
    )
    .await;
    assert!(event.is_ok(), "the watch: {event:?}");
    watcher.close().await.unwrap();
    let follower = connect(&c.member(behind).addr(), quick_retry(SESSION)).await;
    let stat = follower.exists("/big").await.unwrap().expect("/big");
    assert_eq!(stat.num_children as usize, ZNODES);
    follower.close().await.unwrap();
    admin.close().await.unwrap();
}
