//! Shared support for the scheduler's end-to-end tests: a server with a
//! cluster folder and `warden-scheduler run` member processes
//! ([`SchedulerCluster`], [`MemberProc`]), the `warden-scheduler job` CLI, and the
//! record file that `record.sh` jobs append to ([`Run`]).
//!
//! Each job runs `record.sh`, which appends one line per run with a single
//! `O_APPEND` write:
//! `<scheduled ms> <member> <start ms> <end ms> <shard items|-> <recovering>`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use crate::{bin, connect, ServerOpts, ServerProc};
use serde_json::Value;
use warden_client::{Client, ConnectOptions};

pub const EVERY_SECOND: &str = "* * * * * ?";
/// Member session timeout.
pub const SESSION_MS: u64 = 2000;
/// The recording job (see the module doc): `record.sh FILE SLEEP_SECONDS`.
pub const RECORD_SH: &str = r#"#!/bin/sh
# record.sh FILE SLEEP_SECONDS: one line per run, one O_APPEND write.
start=$(date +%s%3N)
if [ "$2" != "0" ]; then sleep "$2"; fi
end=$(date +%s%3N)
printf '%s %s %s %s %s %s\n' "$WARDEN_FIRE_TIME_MS" "$WARDEN_MEMBER" "$start" "$end" "${WARDEN_SHARD_ITEMS:--}" "${WARDEN_RECOVERING:-0}" >> "$1"
"#;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// One run as the record shows it.
#[derive(Debug, Clone)]
pub struct Run {
    pub fire: i64,
    pub member: String,
    pub start: i64,
    pub end: i64,
    pub items: Vec<String>,
    pub recovering: bool,
}

pub fn read_record(path: &Path) -> Vec<Run> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() != 6 {
                return None;
            }
            Some(Run {
                fire: f[0].parse().ok()?,
                member: f[1].to_string(),
                start: f[2].parse().ok()?,
                end: f[3].parse().ok()?,
                items: if f[4] == "-" {
                    Vec::new()
                } else {
                    f[4].split(',').map(str::to_string).collect()
                },
                recovering: f[5] == "1",
            })
        })
        .collect()
}

/// A `warden-scheduler run` process.
pub struct MemberProc {
    pub id: String,
    pub child: Child,
    pub log: PathBuf,
}

impl MemberProc {
    /// Starts `warden-scheduler run` for member `id` of `cluster` on the
    /// server at `servers`, with `extra` run options, logging to `log`.
    pub fn spawn(
        servers: &str,
        cluster: &str,
        id: &str,
        log: &Path,
        extra: &[String],
    ) -> MemberProc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("member log");
        let child = Command::new(bin("warden-scheduler"))
            .args([
                "run",
                "--servers",
                servers,
                "--cluster",
                cluster,
                "--id",
                id,
            ])
            .args(extra)
            .env("RUST_LOG", "info,warden_scheduler=debug")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("start warden-scheduler run");
        MemberProc {
            id: id.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        crate::signal(self.child.id(), sig);
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit; SIGKILL after 40 s.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        for _ in 0..2000 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
        self.child.wait().expect("reap the member")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MemberProc {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server (or an ensemble the test owns), a cluster name, a temp folder
/// with `record.sh`, and members.
pub struct SchedulerCluster {
    /// The cluster's own server; `None` on servers the test owns
    /// ([`SchedulerCluster::on`]).
    pub server: Option<ServerProc>,
    /// The connect string members, the CLI and [`client`](Self::client) use.
    pub servers: String,
    pub name: String,
    pub dir: tempfile::TempDir,
    pub members: BTreeMap<String, MemberProc>,
    pub client: Client,
    pub session_ms: u64,
}

impl SchedulerCluster {
    pub async fn start(name: &str) -> SchedulerCluster {
        // The default maximum session timeout is 20 ticks (2 s at 100 ms):
        // raise it so test 2's 4 s sessions are granted as asked.
        let server = ServerProc::start_with(ServerOpts {
            tick_ms: 100,
            max_session_timeout_ms: Some(10_000),
            ..ServerOpts::default()
        });
        let servers = server.addr();
        let mut c = SchedulerCluster::on(&servers, name).await;
        c.server = Some(server);
        c
    }

    /// A cluster on servers the test owns, `servers` a connect string (for
    /// instance every member of an ensemble).
    pub async fn on(servers: &str, name: &str) -> SchedulerCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("record.sh");
        std::fs::write(&script, RECORD_SH).expect("write record.sh");
        let client = connect(servers, ConnectOptions::default()).await;
        SchedulerCluster {
            server: None,
            servers: servers.to_string(),
            name: name.to_string(),
            dir,
            members: BTreeMap::new(),
            client,
            session_ms: SESSION_MS,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn root(&self) -> String {
        format!("/warden/scheduler/{}", self.name)
    }

    /// `/bin/sh record.sh <record> <sleep>` as `job add` arguments after `--`.
    pub fn recorder(&self, record: &str, sleep: &str) -> Vec<String> {
        vec![
            "/bin/sh".into(),
            self.path("record.sh").display().to_string(),
            self.path(record).display().to_string(),
            sleep.into(),
        ]
    }

    pub fn start_member(&mut self, id: &str, jobs: Option<&Path>) {
        let mut extra = vec![
            "--session-timeout-ms".to_string(),
            self.session_ms.to_string(),
        ];
        if let Some(j) = jobs {
            extra.push("--jobs".into());
            extra.push(j.display().to_string());
        }
        let log = self.path(&format!("{id}.log"));
        let member = MemberProc::spawn(&self.servers, &self.name, id, &log, &extra);
        self.members.insert(id.to_string(), member);
    }

    pub fn stop_all(&mut self) {
        for m in self.members.values_mut() {
            m.stop();
        }
    }

    /// `warden-scheduler job --servers .. --cluster .. <args>` (before `args`:
    /// `add` ends with `-- PROG ARGS`).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("warden-scheduler"))
            .arg("job")
            .args(["--servers", &self.servers, "--cluster", &self.name])
            .args(args)
            .output()
            .expect("run warden-scheduler job")
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "`warden-scheduler job {}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// `job history JOB --json`, oldest first.
    pub fn history(&self, job: &str) -> Vec<Value> {
        let out = self.cli_ok(&["history", job, "-n", "1000", "--json"]);
        let mut v: Vec<Value> = serde_json::from_str(&out).expect("history JSON");
        v.reverse();
        v
    }

    /// The member ids with a live member node.
    pub async fn live_members(&self) -> BTreeSet<String> {
        self.client
            .get_children(&format!("{}/members", self.root()))
            .await
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    /// The current leader's member id: the data of the election's first node.
    /// The acting leader (see [`acting_leader`]).
    pub async fn leader(&self) -> Option<String> {
        acting_leader(&self.client, &self.root()).await
    }

    pub fn dump_logs(&self) -> String {
        self.members
            .values()
            .map(|m| {
                let log = m.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                format!("==== {} (last 40 lines)\n{}", m.id, tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The acting leader of the cluster at `root`: the first latch node's
/// member, once the latest fire was decided by that same member. (The first
/// latch node alone can belong to a member whose client already gave its
/// session up and queued again, until the server expires the old node.)
pub async fn acting_leader(client: &Client, root: &str) -> Option<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let first = first_candidate(client, root).await;
        let decided = latest_decider(client, root).await;
        if first.is_some() && first == decided {
            return first;
        }
        if std::time::Instant::now() > deadline {
            return decided.or(first);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn first_candidate(client: &Client, root: &str) -> Option<String> {
    let dir = format!("{root}/leader");
    let mut nodes = client.get_children(&dir).await.ok()?;
    let seq = |n: &String| n.rsplit('-').next().and_then(|s| s.parse::<u64>().ok());
    nodes.sort_by_key(seq);
    let first = nodes.first()?;
    let (data, _) = client.get_data(&format!("{dir}/{first}")).await.ok()?;
    Some(String::from_utf8_lossy(&data).into_owned())
}

/// The member that decided the most recent fire (`decided_by` of the fire
/// record with the latest scheduled time).
async fn latest_decider(client: &Client, root: &str) -> Option<String> {
    let dir = format!("{root}/fires");
    let names = client.get_children(&dir).await.ok()?;
    let ms = |n: &String| n.rsplit_once('@').and_then(|(_, t)| t.parse::<i64>().ok());
    let latest = names.iter().max_by_key(|n| ms(n))?;
    let (data, _) = client.get_data(&format!("{dir}/{latest}")).await.ok()?;
    let v: Value = serde_json::from_slice(&data).ok()?;
    v.get("decided_by")?.as_str().map(str::to_string)
}

pub fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

pub fn fmt_runs(runs: &[Run]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "{} {} start+{}ms {}ms [{}]{}",
                r.fire,
                r.member,
                r.start - r.fire,
                r.end - r.start,
                r.items.join(","),
                if r.recovering { " recovering" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fire times that appear more than once in the record.
pub fn doubled(runs: &[Run]) -> Vec<i64> {
    let mut seen = BTreeMap::<i64, usize>::new();
    for r in runs {
        *seen.entry(r.fire).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(t, _)| t)
        .collect()
}
