//! The scheduler end to end, basics: members as `warden-scheduler run`
//! processes and as in-process [`Member`]s on a real server. Each test
//! records what the jobs did, then checks the record.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warden_client::{Client, ConnectOptions};
use warden_scheduler::schedule::{TriggerKind, TriggerSpec};
use warden_scheduler::{
    async_trait, Handler, Job, JobContext, JobError, JobOutput, JobSpec, Listeners, Member,
    MemberConfig, Outcome, Registry, ShardSpec, ShardStrategy, Store,
};
use warden_tests::{bin, wait_until, ServerProc};

/// A `warden-scheduler run` process with its log file.
struct MemberProc {
    child: Child,
    log: PathBuf,
}

impl MemberProc {
    fn start(server: &ServerProc, cluster: &str, id: &str, dir: &Path) -> MemberProc {
        let log = dir.join(format!("{id}.log"));
        let out = std::fs::File::create(&log).expect("member log");
        let child = Command::new(bin("warden-scheduler"))
            .args([
                "run",
                "--servers",
                &server.addr(),
                "--cluster",
                cluster,
                "--id",
                id,
            ])
            .env("RUST_LOG", "info,warden_scheduler=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("start warden-scheduler");
        MemberProc { child, log }
    }

    /// SIGTERM; waits for a clean exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..1000 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().expect("reap")
    }
}

impl Drop for MemberProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(server: &ServerProc) -> Client {
    Client::connect(&server.addr(), ConnectOptions::default())
        .await
        .expect("connect")
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
    let client = connect(&server).await;
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
        .map(|i| MemberProc::start(&server, "basic", &format!("m{i}"), dir.path()))
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
    let admin = connect(&server).await;
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
        let client = connect(&server).await;
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
