//! Power loss end to end: the server's data folder lives on a [`LossyFs`],
//! several sessions create nodes under load, and at a random moment the
//! server is killed (SIGKILL, reaped) and the filesystem loses everything
//! not made durable by fsync/fdatasync and directory syncs, as a power cut
//! would. The server must start again on what is left, with every
//! acknowledged write in place — over many cuts: most at a random moment,
//! some at exact points of writing a snapshot (the filesystem kills the
//! server right after the first write to `snapshot.tmp`, after its fsync,
//! after its rename but before the directory sync).
//!
//! A second test shows the first can fail: a server started with the
//! hidden `--unsafe-no-fsync` flag (no barriers at all) must either refuse
//! to start after a cut or come back without acknowledged writes.
//!
//! Needs /dev/fuse and root (see `warden_tests::lossyfs`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::Rng;
use warden_client::CreateMode;
use warden_tests::crash_load::{check_all, check_no_invented_nodes, connect, CreateLoad, Write};
use warden_tests::lossyfs::{CutReport, LossyFs, Op};
use warden_tests::{bin, listing, ServerOpts, ServerProc, STEP};

/// Writers per round, each its own session.
const WRITERS: usize = 8;
/// The server's snapshot, while it is written (see server/src/storage).
const SNAPSHOT_TMP: &str = "snapshot.tmp";

/// Where cut `round` happens: mostly at a random moment; some in the
/// middle of writing a snapshot (its first write, its fsync, its rename
/// before the directory sync).
fn crash_point(round: usize) -> Option<(Op, &'static str)> {
    match round % 8 {
        1 => Some((Op::Write, SNAPSHOT_TMP)),
        3 => Some((Op::Fsync, SNAPSHOT_TMP)),
        5 => Some((Op::Rename, SNAPSHOT_TMP)),
        _ => None,
    }
}

/// Whether cut `round` keeps a random prefix of each file's unsynced bytes
/// (a torn write the log must cut off) instead of none.
fn torn(round: usize) -> bool {
    round % 4 == 2
}

/// The last `n` lines of the server's log above debug level (the debug
/// lines are mostly the answers to the test's own reads).
fn log_tail(server: &ServerProc, n: usize) -> String {
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" DEBUG ")).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What one round of load and its cut did.
struct Round {
    /// When the server died.
    when: String,
    acked: usize,
    snapshots: f64,
    report: CutReport,
    /// The files left by the cut.
    after_cut: String,
}

/// A server on a lossy filesystem, and what its clients were told.
///
/// Fields drop in order: the server is killed, then the filesystem
/// unmounted, then its directory removed.
struct Rig {
    server: ServerProc,
    fs: LossyFs,
    mnt: tempfile::TempDir,
    /// Every acknowledged create, over all rounds.
    acked: Vec<Write>,
    /// The creates that were sent but not answered when a server died.
    in_flight: HashSet<String>,
}

impl Rig {
    async fn start(extra_args: Vec<String>) -> Rig {
        let mnt = tempfile::Builder::new()
            .prefix("warden-lossyfs-")
            .tempdir()
            .expect("temp dir");
        let fs = LossyFs::mount(mnt.path()).unwrap_or_else(|e| panic!("{e}"));
        // The data folder is made, and made durable, by the test (as by an
        // operator): what the server creates inside it is the server's job.
        let data_dir = mnt.path().join("data");
        std::fs::create_dir(&data_dir).expect("create the data folder");
        std::fs::File::open(mnt.path())
            .and_then(|d| d.sync_all())
            .expect("sync the mount's root");
        let server = tokio::task::block_in_place(|| {
            ServerProc::start_with(ServerOpts {
                data_dir: Some(data_dir),
                snapshot_every: Some(300),
                max_session_timeout_ms: Some(120_000),
                extra_args,
                ..Default::default()
            })
        });
        let c = connect(&server.addr()).await.expect("connect");
        c.create("/d", "", CreateMode::Persistent)
            .await
            .expect("create /d");
        c.close().await.expect("close");
        Rig {
            server,
            fs,
            mnt,
            acked: vec![("/d".into(), Vec::new())],
            in_flight: HashSet::new(),
        }
    }

    /// Writers create nodes until the server is killed — at a random
    /// moment, or with `at`, by the filesystem right after that operation
    /// on that name — and the power cut.
    async fn load_and_cut(&mut self, round: usize, at: Option<(Op, &str)>) -> Round {
        let load = CreateLoad::start(&self.server.addr(), round, WRITERS);
        load.wait_acked(2 * WRITERS).await;
        let (when, snapshots) = match at {
            None => {
                let delay_ms = rand::rng().random_range(100..=1500u64);
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                let snapshots = self.server.metric("warden_snapshots_total", "");
                (format!("after {delay_ms} ms"), snapshots)
            }
            Some((op, name)) => {
                let snapshots = self.server.metric("warden_snapshots_total", "");
                let pid = self.server.pid().expect("the server runs");
                self.fs.kill_on(op, name, pid);
                let tripped = tokio::task::block_in_place(|| self.fs.wait_tripped(STEP));
                assert!(
                    tripped,
                    "the server did no {op:?} of {name} within {STEP:?} (was the file renamed \
                     in server/src/storage?); log (tail):\n{}",
                    log_tail(&self.server, 30)
                );
                (format!("at a {op:?} of {name}"), snapshots)
            }
        };
        // kill9 reaps the process: no request of it is pending any more.
        tokio::task::block_in_place(|| self.server.kill9());
        let report = if torn(round) {
            self.fs.cut_torn(&mut |n| rand::rng().random_range(0..=n))
        } else {
            self.fs.cut()
        };
        let after_cut = listing(self.mnt.path());

        let stopped = load.stopped().await;
        let n = stopped.acked.len();
        self.acked.extend(stopped.acked);
        self.in_flight.extend(stopped.in_flight);
        Round {
            when,
            acked: n,
            snapshots,
            report,
            after_cut,
        }
    }

    /// Acknowledged writes missing or different, after giving a freshly
    /// started server up to `patience` to serve them.
    async fn missing(&self, patience: Duration) -> Vec<String> {
        let reader = match connect(&self.server.addr()).await {
            Ok(c) => c,
            Err(e) => return vec![format!("cannot connect after the restart: {e}")],
        };
        let deadline = Instant::now() + patience;
        loop {
            let problems = check_all(&reader, &self.acked).await;
            if problems.is_empty() || Instant::now() >= deadline {
                let _ = reader.close().await;
                return problems;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Nodes under `/d` that were never acknowledged must have been in
    /// flight at a cut, and hold the data that was sent.
    async fn check_no_invented_nodes(&self) {
        let reader = connect(&self.server.addr()).await.expect("connect");
        check_no_invented_nodes(&reader, &self.acked, &self.in_flight).await;
        let _ = reader.close().await;
    }
}

/// Many cuts at random moments under load from several sessions; after
/// each, the server restarts on the same folder with every acknowledged
/// create in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_power_cuts() {
    let cuts: usize = std::env::var("WARDEN_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let began = Instant::now();
    let mut rig = Rig::start(Vec::new()).await;
    for round in 0..cuts {
        let r = rig.load_and_cut(round, crash_point(round)).await;
        eprintln!(
            "cut {round}: {}; {} creates acknowledged this round, {} in all; \
             {} snapshots in this run; {} fsyncs and {} directory syncs so far; cut: {}",
            r.when,
            r.acked,
            rig.acked.len(),
            r.snapshots,
            rig.fs.fsyncs(),
            rig.fs.dir_fsyncs(),
            r.report
        );
        if let Err(e) = tokio::task::block_in_place(|| rig.server.try_restart()) {
            panic!(
                "cut {round}: the server did not start after the power cut ({e}); \
                 cut: {}\nfiles after the cut:\n{}\nlog (tail):\n{}",
                r.report,
                r.after_cut,
                log_tail(&rig.server, 200)
            );
        }
        let problems = rig.missing(Duration::from_secs(5)).await;
        assert!(
            problems.is_empty(),
            "cut {round}: {} of {} acknowledged creates missing after the power cut; \
             first: {:?}\ncut: {}\nfiles after the cut:\n{}\nlog (tail):\n{}",
            problems.len(),
            rig.acked.len(),
            &problems[..problems.len().min(10)],
            r.report,
            r.after_cut,
            log_tail(&rig.server, 200)
        );
        rig.check_no_invented_nodes().await;
    }
    let torn_tails_cut = rig
        .server
        .log()
        .matches("cut off the torn end of the log")
        .count();
    eprintln!(
        "{cuts} cuts in {:?}: {} acknowledged creates all kept; {torn_tails_cut} torn log tails \
         cut off at restarts; {} fsyncs, {} directory syncs, {} bytes written",
        began.elapsed(),
        rig.acked.len(),
        rig.fs.fsyncs(),
        rig.fs.dir_fsyncs(),
        rig.fs.bytes_written()
    );
}

/// The test can fail: with `--unsafe-no-fsync` the server acknowledges
/// writes that are not on disk, and a cut must show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_skips_fsync_is_caught() {
    // A hidden flag is not in --help; clap still parses it before --help.
    let probe = std::process::Command::new(bin("warden-server"))
        .args(["--unsafe-no-fsync", "--help"])
        .output()
        .expect("run warden-server");
    assert!(
        probe.status.success(),
        "warden-server does not accept --unsafe-no-fsync (needed by this test): {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let mut rig = Rig::start(vec!["--unsafe-no-fsync".into()]).await;
    for round in 0..2 {
        let r = rig.load_and_cut(round, None).await;
        eprintln!(
            "cut {round} (no fsync): {}; {} creates acknowledged in all; \
             {} fsyncs and {} directory syncs; cut: {}",
            r.when,
            rig.acked.len(),
            rig.fs.fsyncs(),
            rig.fs.dir_fsyncs(),
            r.report
        );
        if let Err(e) = tokio::task::block_in_place(|| rig.server.try_restart()) {
            eprintln!(
                "caught: the server refused to start after the cut ({e}); log (tail):\n{}",
                log_tail(&rig.server, 20)
            );
            return;
        }
        let problems = rig.missing(Duration::from_secs(2)).await;
        if !problems.is_empty() {
            eprintln!(
                "caught: {} of {} acknowledged creates missing after the cut; first: {:?}",
                problems.len(),
                rig.acked.len(),
                &problems[..problems.len().min(3)]
            );
            return;
        }
    }
    panic!(
        "a server that never fsyncs kept every acknowledged write over 2 power cuts: \
         the power-loss test cannot tell it from a correct one"
    );
}

/// A failed fsync (EIO, after which the kernel has dropped the unsynced
/// pages) stops the server with an error instead of acknowledging writes
/// that are not on disk or trusting a later fsync; it then starts again,
/// after a power cut too, with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_the_server_and_loses_nothing_acknowledged() {
    let mut rig = Rig::start(Vec::new()).await;
    let load = CreateLoad::start(&rig.server.addr(), 0, WRITERS);
    load.wait_acked(2 * WRITERS).await;
    rig.fs.fail_next_fsync(".wal");
    let status = tokio::task::block_in_place(|| rig.server.wait_exit(STEP));
    let log = rig.server.log();
    let status = status.unwrap_or_else(|| {
        panic!(
            "the server still runs {STEP:?} after a failed fsync; log (tail):\n{}",
            log_tail(&rig.server, 30)
        )
    });
    assert_eq!(rig.fs.fsync_failures(), 1);
    assert!(
        !status.success(),
        "exited with {status} after a failed fsync"
    );
    assert!(
        log.contains("the log barrier failed"),
        "the log does not say why the server stopped:\n{}",
        log_tail(&rig.server, 30)
    );
    let stopped = load.stopped().await;
    eprintln!(
        "stopped with {status} after {} acknowledged creates; writers: {:?}",
        stopped.acked.len(),
        stopped.errors
    );
    rig.acked.extend(stopped.acked);
    rig.in_flight.extend(stopped.in_flight);
    let report = rig.fs.cut();
    eprintln!("cut: {report}");
    if let Err(e) = tokio::task::block_in_place(|| rig.server.try_restart()) {
        panic!(
            "the server did not start after a failed fsync and a cut ({e}); log (tail):\n{}",
            log_tail(&rig.server, 100)
        );
    }
    let problems = rig.missing(Duration::from_secs(5)).await;
    assert!(
        problems.is_empty(),
        "{} of {} acknowledged creates missing after a failed fsync; first: {:?}",
        problems.len(),
        rig.acked.len(),
        &problems[..problems.len().min(10)]
    );
    rig.check_no_invented_nodes().await;
}

/// A full disk while a snapshot is written (ENOSPC on `snapshot.tmp`) stops
/// the server with an error rather than leaving it up without consensus;
/// it starts again with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_a_snapshot_stops_the_server_and_loses_nothing() {
    let mut rig = Rig::start(Vec::new()).await;
    rig.fs.fail_next_write(SNAPSHOT_TMP);
    let load = CreateLoad::start(&rig.server.addr(), 0, WRITERS);
    let status = tokio::task::block_in_place(|| rig.server.wait_exit(Duration::from_secs(30)));
    let status = status.unwrap_or_else(|| {
        panic!(
            "the server still runs 30 s after a failed snapshot write ({} write failures injected); log (tail):\n{}",
            rig.fs.write_failures(),
            log_tail(&rig.server, 30)
        )
    });
    assert_eq!(rig.fs.write_failures(), 1);
    assert!(
        !status.success(),
        "exited with {status} after a failed snapshot write"
    );
    let stopped = load.stopped().await;
    eprintln!(
        "stopped with {status} after {} acknowledged creates; log (tail):\n{}",
        stopped.acked.len(),
        log_tail(&rig.server, 5)
    );
    rig.acked.extend(stopped.acked);
    rig.in_flight.extend(stopped.in_flight);
    if let Err(e) = tokio::task::block_in_place(|| rig.server.try_restart()) {
        panic!(
            "the server did not start after a full disk ({e}); log (tail):\n{}",
            log_tail(&rig.server, 100)
        );
    }
    let problems = rig.missing(Duration::from_secs(5)).await;
    assert!(
        problems.is_empty(),
        "{} of {} acknowledged creates missing after a full disk; first: {:?}",
        problems.len(),
        rig.acked.len(),
        &problems[..problems.len().min(10)]
    );
    rig.check_no_invented_nodes().await;
}
