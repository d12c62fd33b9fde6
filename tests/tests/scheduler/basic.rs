//! The scheduler end to end, basics: members as `warden-scheduler run`
//! processes and as in-process [`Member`]s on a real server. Each test
//! records what the jobs did, then checks the record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warden_scheduler::schedule::{TriggerKind, TriggerSpec};
use warden_scheduler::{
    async_trait, Handler, Job, JobContext, JobError, JobOutput, JobSpec, Listeners, Member,
    MemberConfig, Outcome, Registry, ShardSpec, ShardStrategy, Store,
};
use warden_tests::scheduler::{acting_leader, MemberProc};
use warden_tests::{connect, wait_until, ServerProc};

/// A `warden-scheduler run` member of `cluster`, logging to `dir/<id>.log`.
fn member(server: &ServerProc, cluster: &str, id: &str, dir: &Path) -> MemberProc {
    let log = dir.join(format!("{id}.log"));
    MemberProc::spawn(&server.addr(), cluster, id, &log, &[])
}

fn every_second(name: &str, job: &str) -> TriggerSpec {
    TriggerSpec::new(
        name,
        job,
        TriggerKind::Simple {
            interval_ms: 1000,
            repeat_count: None,
        },
    )
}

fn read_times(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Three member processes, a command job on a 1-second trigger: every fire
/// time is recorded exactly once, none is missing between the first and
/// the last, and the history agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_fire_each_time_exactly_once() {
    let server = ServerProc::start();
    let dir = tempfile::tempdir().expect("tmp");
    let record = dir.path().join("record");
    let client = connect(&server.addr(), Default::default()).await;
    let store = Store::new(&client, "basic").expect("store");
    store.init().await.expect("init");

    let mut job = JobSpec::new(
        "rec",
        Handler::command(
            "/bin/sh",
            &[
                "-c",
                &format!("echo $WARDEN_FIRE_TIME_MS >> {}", record.display()),
            ],
        ),
    );
    job.description = "appends its fire time".into();
    store.put_job(&job).await.expect("put job");
    store
        .put_trigger(&every_second("every-second", "default.rec"))
        .await
        .expect("put trigger");

    let mut members: Vec<MemberProc> = (1..=3)
        .map(|i| member(&server, "basic", &format!("m{i}"), dir.path()))
        .collect();

    wait_until("12 fires recorded", Duration::from_secs(60), || {
        let r = record.clone();
        async move { read_times(&r).len() >= 12 }
    })
    .await;
    for m in &mut members {
        let st = m.stop();
        assert!(
            st.success(),
            "member exited with {st}: {}",
            std::fs::read_to_string(&m.log).unwrap_or_default()
        );
    }

    let times = read_times(&record);
    let unique: BTreeSet<i64> = times.iter().copied().collect();
    assert_eq!(
        unique.len(),
        times.len(),
        "a fire time appears twice: {times:?}"
    );
    let sorted: Vec<i64> = unique.into_iter().collect();
    for w in sorted.windows(2) {
        assert_eq!(
            w[1] - w[0],
            1000,
            "a fire is missing or off-grid: {sorted:?}"
        );
    }

    let key = "default.rec".parse().unwrap();
    let history = store.history(&key, 100).await.expect("history");
    let ran: Vec<_> = history
        .iter()
        .filter(|e| e.outcome == Outcome::Succeeded)
        .collect();
    let ran_times: BTreeSet<i64> = ran.iter().map(|e| e.scheduled_ms).collect();
    assert_eq!(ran_times.len(), ran.len(), "history lists a fire twice");
    for t in &sorted {
        assert!(
            ran_times.contains(t),
            "fire {t} ran but is not in the history"
        );
    }
    let workers: BTreeSet<&str> = ran.iter().map(|e| e.worker.as_str()).collect();
    assert!(
        workers.len() >= 2,
        "fires should spread over the members: {workers:?}"
    );
    assert!(
        store.members().await.expect("members").is_empty(),
        "members deregister on SIGTERM"
    );
}

/// What the in-process sharded job saw: (fire id, member, items).
type Runs = Arc<Mutex<Vec<(String, String, Vec<String>)>>>;

struct RecordShards(Runs);

#[async_trait]
impl Job for RecordShards {
    async fn execute(&self, ctx: JobContext) -> Result<JobOutput, JobError> {
        self.0.lock().unwrap().push((
            ctx.fire_id.clone(),
            ctx.member.clone(),
            ctx.shard_items.clone(),
        ));
        Ok(JobOutput::default())
    }
}

/// Fires of `runs` with every part recorded (all 10 items), as sorted share sizes.
fn complete_fires(runs: &Runs) -> BTreeMap<String, Vec<usize>> {
    let mut by_fire: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for (fire, _, items) in runs.lock().unwrap().iter() {
        by_fire.entry(fire.clone()).or_default().push(items.clone());
    }
    by_fire
        .into_iter()
        .filter_map(|(fire, parts)| {
            let mut all: Vec<String> = parts.iter().flatten().cloned().collect();
            all.sort();
            let n = all.len();
            all.dedup();
            assert_eq!(all.len(), n, "an item ran twice in fire {fire}: {parts:?}");
            (n == 10).then(|| {
                let mut sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
                sizes.sort();
                (fire, sizes)
            })
        })
        .collect()
}

/// In-process members: a sharded job of 10 items on 3 members splits
/// 4/3/3, each item once per fire; after one member leaves, 5/5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_job_splits_over_in_process_members() {
    let server = ServerProc::start();
    let runs: Runs = Arc::default();
    let admin = connect(&server.addr(), Default::default()).await;
    let store = Store::new(&admin, "shards").expect("store");
    store.init().await.expect("init");
    let mut job = JobSpec::new(
        "split",
        Handler::InProcess {
            name: "record".into(),
        },
    );
    job.shards = Some(ShardSpec {
        count: 10,
        names: None,
        strategy: ShardStrategy::Average,
    });
    store.put_job(&job).await.expect("put job");

    let mut members = Vec::new();
    for i in 1..=3 {
        let client = connect(&server.addr(), Default::default()).await;
        let mut registry = Registry::new();
        registry.register("record", RecordShards(runs.clone()));
        let mut config = MemberConfig::new("shards");
        config.id = format!("p{i}");
        members.push(
            Member::start(&client, config, registry, Listeners::logging())
                .await
                .expect("member"),
        );
    }
    wait_until("3 members registered", Duration::from_secs(10), || {
        let s = store.clone();
        async move { s.members().await.map(|m| m.len() == 3).unwrap_or(false) }
    })
    .await;
    store
        .put_trigger(&every_second("split-every-second", "default.split"))
        .await
        .expect("put trigger");

    wait_until(
        "2 complete fires on 3 members",
        Duration::from_secs(30),
        || {
            let r = runs.clone();
            async move {
                complete_fires(&r)
                    .values()
                    .filter(|s| **s == vec![3, 3, 4])
                    .count()
                    >= 2
            }
        },
    )
    .await;
    for sizes in complete_fires(&runs).values() {
        assert_eq!(*sizes, vec![3, 3, 4], "3 members share 10 items 4/3/3");
    }

    let leaving = members.pop().expect("a member");
    leaving.shutdown().await;
    runs.lock().unwrap().clear();
    wait_until(
        "2 complete fires on 2 members",
        Duration::from_secs(30),
        || {
            let r = runs.clone();
            async move {
                complete_fires(&r)
                    .values()
                    .filter(|s| **s == vec![5, 5])
                    .count()
                    >= 2
            }
        },
    )
    .await;
    for m in members {
        m.shutdown().await;
    }
}

fn record_job(name: &str, record: &Path, script: &str) -> JobSpec {
    JobSpec::new(
        name,
        Handler::command(
            "/bin/sh",
            &["-c", &format!("{script} >> {}", record.display())],
        ),
    )
}

async fn wait_for_lines(record: &Path, n: usize, what: &str) {
    let r = record.to_path_buf();
    wait_until(what, Duration::from_secs(60), || {
        let r = r.clone();
        async move { read_times(&r).len() >= n }
    })
    .await;
}

/// The leader is SIGKILLed, later a worker (the new leader, if it is one)
/// is SIGSTOPped past its session timeout and continued: no fire time is
/// recorded twice, none is lost (the gaps are within the misfire threshold,
/// so the new leader fires them late), and the stopped member rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_and_worker_stopped_no_fire_twice() {
    let server = ServerProc::start();
    let dir = tempfile::tempdir().expect("tmp");
    let record = dir.path().join("record");
    let client = connect(&server.addr(), Default::default()).await;
    let store = Store::new(&client, "fo").expect("store");
    store.init().await.expect("init");
    let job = record_job("rec", &record, "echo $WARDEN_FIRE_TIME_MS");
    store.put_job(&job).await.expect("put job");
    store
        .put_trigger(&every_second("every-second", "default.rec"))
        .await
        .expect("put trigger");
    let mut members: BTreeMap<String, MemberProc> = (1..=3)
        .map(|i| {
            let id = format!("m{i}");
            (id.clone(), member(&server, "fo", &id, dir.path()))
        })
        .collect();
    wait_for_lines(&record, 4, "4 fires").await;

    let leader = acting_leader(&client, "/warden/scheduler/fo")
        .await
        .expect("a leader");
    let mut dead = members.remove(&leader).expect("leader is a member");
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let n = read_times(&record).len();
    wait_for_lines(&record, n + 6, "6 fires after the leader died").await;

    let victim = acting_leader(&client, "/warden/scheduler/fo")
        .await
        .expect("a new leader");
    assert_ne!(victim, leader, "a new leader took over");
    members[&victim].signal(libc::SIGSTOP);
    let n = read_times(&record).len();
    wait_for_lines(&record, n + 6, "6 fires while a member is stopped").await;
    members[&victim].signal(libc::SIGCONT);
    let n = read_times(&record).len();
    wait_for_lines(&record, n + 4, "4 fires after it continued").await;
    wait_until(
        "the stopped member re-registered",
        Duration::from_secs(20),
        || {
            let s = store.clone();
            let v = victim.clone();
            async move {
                s.members()
                    .await
                    .map(|m| m.iter().any(|m| m.id == v))
                    .unwrap_or(false)
            }
        },
    )
    .await;
    for m in members.values_mut() {
        m.stop();
    }

    let times = read_times(&record);
    let unique: BTreeSet<i64> = times.iter().copied().collect();
    assert_eq!(
        unique.len(),
        times.len(),
        "a fire time appears twice: {times:?}"
    );
    let sorted: Vec<i64> = unique.into_iter().collect();
    for w in sorted.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "a fire was lost: {sorted:?}");
    }
    let history = store
        .history(&"default.rec".parse().unwrap(), 100)
        .await
        .expect("history");
    let late = history
        .iter()
        .filter(|e| e.outcome == Outcome::Succeeded)
        .count();
    assert!(late >= sorted.len() - 2, "the history records the runs");
}

/// (job, fire id, member, start ms, end ms, recovering)
type Spans = Arc<Mutex<Vec<(String, String, String, i64, i64, bool)>>>;

/// An in-process job that takes `.1` ms (or until cancelled) and records its span.
struct Slow(Spans, u64);

#[async_trait]
impl Job for Slow {
    async fn execute(&self, ctx: JobContext) -> Result<JobOutput, JobError> {
        let t0 = warden_scheduler::model::now_ms();
        let r = tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(self.1)) => Ok(JobOutput::default()),
            reason = ctx.cancelled() => Err(JobError::Cancelled { reason, exit_code: None, output_tail: String::new() }),
        };
        let t1 = warden_scheduler::model::now_ms();
        self.0.lock().unwrap().push((
            ctx.job.to_string(),
            ctx.fire_id.clone(),
            ctx.member.clone(),
            t0,
            t1,
            ctx.recovering,
        ));
        r
    }
}

/// Forbid never overlaps runs (and records skips), replace cancels the
/// running fire, a manual fire runs once, and pausing everything stops fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_policies_manual_fire_and_pause() {
    let server = ServerProc::start();
    let spans: Spans = Arc::default();
    let admin = connect(&server.addr(), Default::default()).await;
    let store = Store::new(&admin, "pol").expect("store");
    store.init().await.expect("init");
    let slow = || Handler::InProcess {
        name: "slow".into(),
    };
    let mut forbid = JobSpec::new("forbid", slow());
    forbid.concurrency = warden_scheduler::Concurrency::Forbid;
    store.put_job(&forbid).await.unwrap();
    let mut replace = JobSpec::new("replace", slow());
    replace.concurrency = warden_scheduler::Concurrency::Replace;
    store.put_job(&replace).await.unwrap();
    let manual = JobSpec::new(
        "manual",
        Handler::InProcess {
            name: "quick".into(),
        },
    );
    store.put_job(&manual).await.unwrap();
    let mut members = Vec::new();
    for i in 1..=2 {
        let client = connect(&server.addr(), Default::default()).await;
        let mut registry = Registry::new();
        registry.register("slow", Slow(spans.clone(), 2500));
        registry.register("quick", Slow(spans.clone(), 10));
        let mut config = MemberConfig::new("pol");
        config.id = format!("p{i}");
        members.push(
            Member::start(&client, config, registry, Listeners::logging())
                .await
                .unwrap(),
        );
    }
    store
        .put_trigger(&every_second("f", "default.forbid"))
        .await
        .unwrap();
    store
        .put_trigger(&every_second("r", "default.replace"))
        .await
        .unwrap();
    store
        .trigger_now(&"default.manual".parse().unwrap(), BTreeMap::new())
        .await
        .unwrap();
    // No member has this handler: its fire must wait, not fail somewhere.
    let nowhere = JobSpec::new(
        "nowhere",
        Handler::InProcess {
            name: "unregistered".into(),
        },
    );
    store.put_job(&nowhere).await.unwrap();
    store
        .trigger_now(&"default.nowhere".parse().unwrap(), BTreeMap::new())
        .await
        .unwrap();
    let count = |job: &'static str| {
        let spans = spans.clone();
        move || spans.lock().unwrap().iter().filter(|s| s.0 == job).count()
    };
    let forbid_runs = count("default.forbid");
    wait_until("3 forbid runs", Duration::from_secs(30), || {
        let n = forbid_runs();
        async move { n >= 3 }
    })
    .await;

    store
        .pause(&warden_scheduler::PauseTarget::All)
        .await
        .unwrap();
    // A fire decided just before the pause may still start; then nothing.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let paused_at = spans.lock().unwrap().len();
    let started_after = |t: i64| spans.lock().unwrap().iter().filter(|s| s.3 > t).count();
    let t = warden_scheduler::model::now_ms();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        assert_eq!(
            started_after(t),
            0,
            "a run started while everything was paused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store
        .resume(&warden_scheduler::PauseTarget::All)
        .await
        .unwrap();
    wait_until("runs again after resume", Duration::from_secs(20), || {
        let n = spans.lock().unwrap().len();
        async move { n > paused_at + 1 }
    })
    .await;
    for m in members {
        m.shutdown().await;
    }

    let spans = spans.lock().unwrap().clone();
    let mut forbid: Vec<(i64, i64)> = spans
        .iter()
        .filter(|s| s.0 == "default.forbid")
        .map(|s| (s.3, s.4))
        .collect();
    forbid.sort();
    for w in forbid.windows(2) {
        assert!(w[1].0 >= w[0].1, "two forbid runs overlapped: {forbid:?}");
    }
    let key = "default.forbid".parse().unwrap();
    let history = store.history(&key, 100).await.unwrap();
    assert!(
        history.iter().any(|e| e.outcome == Outcome::Skipped),
        "forbid records skipped fires"
    );
    let replace_history = store
        .history(&"default.replace".parse().unwrap(), 100)
        .await
        .unwrap();
    assert!(
        replace_history
            .iter()
            .any(|e| e.outcome == Outcome::Cancelled),
        "replace cancels the running fire"
    );
    let manual_runs = spans.iter().filter(|s| s.0 == "default.manual").count();
    assert_eq!(manual_runs, 1, "a manual fire runs once");
    let nowhere = store
        .history(&"default.nowhere".parse().unwrap(), 10)
        .await
        .unwrap();
    assert!(
        nowhere.is_empty(),
        "a job no member can run was run: {nowhere:?}"
    );
    let pending = admin
        .get_children("/warden/scheduler/pol/requests")
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "its fire request still waits");
}

/// A member running a job that requests recovery is SIGKILLed: the job
/// runs again on another member with WARDEN_RECOVERING=1, and the killed
/// run's command dies with its member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reruns_on_a_live_member() {
    let server = ServerProc::start();
    let dir = tempfile::tempdir().expect("tmp");
    let record = dir.path().join("record");
    // The run waits for this file, which appears only once its member is
    // killed: the first run can never finish and write, however slow the
    // machine (a fixed sleep could end before the kill lands).
    let release = dir.path().join("release");
    let client = connect(&server.addr(), Default::default()).await;
    let store = Store::new(&client, "rc").expect("store");
    store.init().await.expect("init");
    let mut job = record_job(
        "slowrec",
        &record,
        &format!(
            "while [ ! -e {} ]; do sleep 0.05; done; echo $WARDEN_FIRE_TIME_MS $WARDEN_RECOVERING $WARDEN_MEMBER",
            release.display()
        ),
    );
    job.requests_recovery = true;
    store.put_job(&job).await.expect("put job");
    let mut members: BTreeMap<String, MemberProc> = (1..=3)
        .map(|i| {
            let id = format!("m{i}");
            (id.clone(), member(&server, "rc", &id, dir.path()))
        })
        .collect();
    wait_until("3 members", Duration::from_secs(20), || {
        let s = store.clone();
        async move { s.members().await.map(|m| m.len() == 3).unwrap_or(false) }
    })
    .await;
    let key = "default.slowrec".parse().unwrap();
    store.trigger_now(&key, BTreeMap::new()).await.unwrap();
    let mut runner = None;
    wait_until("the job runs", Duration::from_secs(20), || {
        let s = store.clone();
        async move {
            s.tasks()
                .await
                .map(|t| {
                    t.iter()
                        .any(|(_, t, running)| t.job.name == "slowrec" && *running)
                })
                .unwrap_or(false)
        }
    })
    .await;
    for (m, t, running) in store.tasks().await.unwrap() {
        if t.job.name == "slowrec" && running {
            runner = Some(m);
        }
    }
    let runner = runner.expect("a runner");
    let mut dead = members.remove(&runner).expect("runner is a member");
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    std::fs::write(&release, b"").expect("release the runs");
    wait_until(
        "the recovered run is recorded",
        Duration::from_secs(30),
        || {
            let s = store.clone();
            let k = key.clone();
            async move {
                s.history(&k, 10)
                    .await
                    .map(|h| h.iter().any(|e| e.outcome == Outcome::Succeeded))
                    .unwrap_or(false)
            }
        },
    )
    .await;
    for m in members.values_mut() {
        m.stop();
    }
    let lines: Vec<String> = std::fs::read_to_string(&record)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 1, "only the recovered run wrote: {lines:?}");
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(fields[1], "1", "the re-run is marked recovering");
    assert_ne!(fields[2], runner, "the re-run is on another member");
    let h = store.history(&key, 10).await.unwrap();
    assert_eq!(h.len(), 1);
    assert!(h[0].recovering);
}

/// The store API S3's admin layer builds on: upserts report what they did,
/// bad input gets typed errors, a trigger keeps its state unless its
/// schedule changed, and removing a job removes everything of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_upserts_errors_and_removal() {
    use warden_scheduler::{PauseTarget, PutOutcome, StoreError};
    let server = ServerProc::start();
    let client = connect(&server.addr(), Default::default()).await;
    let store = Store::new(&client, "st").expect("store");
    store.init().await.expect("init");
    let key: warden_scheduler::JobKey = "ops.clean".parse().unwrap();
    let mut job = JobSpec::new("clean", Handler::command("/bin/true", &[]));
    job.group = "ops".into();
    assert_eq!(store.put_job(&job).await.unwrap(), PutOutcome::Created);
    assert_eq!(store.put_job(&job).await.unwrap(), PutOutcome::Unchanged);
    job.description = "now described".into();
    assert_eq!(store.put_job(&job).await.unwrap(), PutOutcome::Updated);
    assert_eq!(store.get_job(&key).await.unwrap(), Some(job.clone()));

    let mut bad = job.clone();
    bad.name = "bad name".into();
    assert!(matches!(
        store.put_job(&bad).await,
        Err(StoreError::Model(_))
    ));
    let orphan = every_second("t", "ops.missing");
    assert!(matches!(
        store.put_trigger(&orphan).await,
        Err(StoreError::NotFound { what: "job", .. })
    ));
    assert!(matches!(
        store
            .pause(&PauseTarget::Job("ops.missing".parse().unwrap()))
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let mut trigger = every_second("t", "ops.clean");
    trigger.group = "ops".into();
    let tkey: warden_scheduler::JobKey = "ops.t".parse().unwrap();
    assert_eq!(
        store.put_trigger(&trigger).await.unwrap(),
        PutOutcome::Created
    );
    // Stand in for the leader's first decision.
    let state_path = store.paths().state(&tkey);
    client
        .create(
            &state_path,
            b"{\"next_fire_ms\":1}".to_vec(),
            warden_client::CreateMode::Persistent,
        )
        .await
        .unwrap();
    trigger.priority = 9;
    assert_eq!(
        store.put_trigger(&trigger).await.unwrap(),
        PutOutcome::Updated
    );
    assert!(
        store.get_state(&tkey).await.unwrap().is_some(),
        "a priority change keeps the state"
    );
    trigger.kind = TriggerKind::Simple {
        interval_ms: 5000,
        repeat_count: None,
    };
    assert_eq!(
        store.put_trigger(&trigger).await.unwrap(),
        PutOutcome::Updated
    );
    assert!(
        store.get_state(&tkey).await.unwrap().is_none(),
        "a new schedule starts afresh"
    );

    store
        .pause(&PauseTarget::Trigger(tkey.clone()))
        .await
        .unwrap();
    store
        .pause(&PauseTarget::Group("ops".into()))
        .await
        .unwrap();
    let paused = store.paused().await.unwrap();
    assert!(paused.covers(&job, Some(&tkey)));
    store
        .resume(&PauseTarget::Group("ops".into()))
        .await
        .unwrap();
    let paused = store.paused().await.unwrap();
    assert!(paused.covers(&job, Some(&tkey)), "the trigger marker stays");
    assert!(!paused.covers(&job, None));

    let req = store.trigger_now(&key, BTreeMap::new()).await.unwrap();
    assert!(req.starts_with("/warden/scheduler/st/requests/req-"));

    assert!(store.delete_job(&key).await.unwrap());
    assert!(store.get_job(&key).await.unwrap().is_none());
    assert!(store.get_trigger(&tkey).await.unwrap().is_none());
    assert!(client
        .exists(&store.paths().history_dir(&key))
        .await
        .unwrap()
        .is_none());
    assert!(!store
        .paused()
        .await
        .unwrap()
        .0
        .contains(&PauseTarget::Trigger(tkey)));
    assert!(
        !store.delete_job(&key).await.unwrap(),
        "a second removal finds nothing"
    );
}
