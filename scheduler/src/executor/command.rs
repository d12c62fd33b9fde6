//! The built-in command job: runs a program in its own process group with
//! the fire described in environment variables, keeps the last 4 KiB of its
//! output, and kills the whole group when the run is cancelled (SIGTERM, then
//! SIGKILL after [`STOP_GRACE`](super::STOP_GRACE)) or dropped (SIGKILL). On
//! Linux the program also gets SIGKILL if the member process dies
//! (`PR_SET_PDEATHSIG`); its own children are reached only through the group kill.
//!
//! Environment (besides the member's own and the handler's `env`):
//!
//! | variable | value |
//! |---|---|
//! | `WARDEN_JOB`, `WARDEN_GROUP` | the job's name and group |
//! | `WARDEN_FIRE_ID` | `<group>.<name>@<scheduled ms>` |
//! | `WARDEN_FIRE_TIME`, `WARDEN_FIRE_TIME_MS` | the scheduled time (RFC 3339 UTC, ms) |
//! | `WARDEN_ACTUAL_FIRE_TIME` | when this run started (RFC 3339 UTC) |
//! | `WARDEN_SHARD_ITEMS`, `WARDEN_SHARD_COUNT` | this run's items (comma list), the job's total |
//! | `WARDEN_RECOVERING` | `1` for a re-run after a lost worker, else `0` |
//! | `WARDEN_MEMBER` | the member running it |
//! | `WARDEN_DATA_<KEY>` | each job data entry (key upper-cased) |

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::{Job, JobContext, JobError, JobOutput, STOP_GRACE};
use crate::model::Handler;

/// How much output the history keeps per run.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// The command job. Stateless: the program comes from the job's handler.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandJob;

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The `WARDEN_*` variables of a run.
pub fn fire_env(ctx: &JobContext) -> Vec<(String, String)> {
    let mut env = vec![
        ("WARDEN_JOB".to_string(), ctx.job.name.clone()),
        ("WARDEN_GROUP".to_string(), ctx.job.group.clone()),
        ("WARDEN_FIRE_ID".to_string(), ctx.fire_id.clone()),
        ("WARDEN_FIRE_TIME".to_string(), rfc3339(ctx.scheduled_ms)),
        (
            "WARDEN_FIRE_TIME_MS".to_string(),
            ctx.scheduled_ms.to_string(),
        ),
        (
            "WARDEN_ACTUAL_FIRE_TIME".to_string(),
            rfc3339(ctx.actual_ms),
        ),
        ("WARDEN_SHARD_ITEMS".to_string(), ctx.shard_items.join(",")),
        (
            "WARDEN_SHARD_COUNT".to_string(),
            ctx.shard_count.to_string(),
        ),
        (
            "WARDEN_RECOVERING".to_string(),
            if ctx.recovering { "1" } else { "0" }.to_string(),
        ),
        ("WARDEN_MEMBER".to_string(), ctx.member.clone()),
    ];
    for (k, v) in &ctx.data {
        env.push((format!("WARDEN_DATA_{}", k.to_ascii_uppercase()), v.clone()));
    }
    env
}

/// The last [`OUTPUT_TAIL_BYTES`] of stdout and stderr, interleaved as read.
#[derive(Default)]
struct Tail(VecDeque<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend(bytes);
        let excess = self.0.len().saturating_sub(OUTPUT_TAIL_BYTES);
        self.0.drain(..excess);
    }
    fn text(&self) -> String {
        let bytes: Vec<u8> = self.0.iter().copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

async fn pump(mut from: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.lock().push(&buf[..n]);
    }
}

/// Kills the process group with SIGKILL if dropped before the child was reaped.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn signal(&self, sig: i32) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg only sends a signal; a stale group id fails with ESRCH.
            unsafe {
                libc::killpg(pgid, sig);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

#[async_trait]
impl Job for CommandJob {
    async fn execute(&self, ctx: JobContext) -> Result<JobOutput, JobError> {
        let Handler::Command {
            program,
            args,
            env,
            working_dir,
        } = &ctx.spec.handler
        else {
            return Err(JobError::failed("the command job needs a command handler"));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env)
            .envs(fire_env(&ctx))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = working_dir {
            cmd.current_dir(dir);
        }
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to send SIGKILL
        // to this child when the member's thread that spawned it dies (a member killed
        // with SIGKILL does not leave its job running).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| JobError::Spawn {
            program: program.clone(),
            error: e.to_string(),
        })?;
        let mut guard = GroupGuard {
            pgid: child.id().map(|p| p as i32),
        };
        tracing::debug!(job = %ctx.job, fire = %ctx.fire_id, pid = ?guard.pgid, "command started");
        let tail = Arc::new(Mutex::new(Tail::default()));
        let out = child
            .stdout
            .take()
            .map(|s| tokio::spawn(pump(s, tail.clone())));
        let err = child
            .stderr
            .take()
            .map(|s| tokio::spawn(pump(s, tail.clone())));
        let mut cancel = None;
        let status = tokio::select! {
            s = child.wait() => s,
            reason = ctx.cancelled() => {
                cancel = Some(reason);
                guard.signal(libc::SIGTERM);
                match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        guard.signal(libc::SIGKILL);
                        child.wait().await
                    }
                }
            }
        };
        // The leader process is reaped; make sure no descendant outlives it.
        guard.signal(libc::SIGKILL);
        guard.pgid = None;
        for pump in [out, err].into_iter().flatten() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), pump).await;
        }
        let output_tail = tail.lock().text();
        let status = status.map_err(|e| JobError::failed(format!("waiting for {program}: {e}")))?;
        let exit_code = status.code();
        if let Some(reason) = cancel {
            return Err(JobError::Cancelled {
                reason,
                exit_code,
                output_tail,
            });
        }
        if status.success() {
            Ok(JobOutput {
                exit_code,
                output_tail,
            })
        } else {
            use std::os::unix::process::ExitStatusExt;
            let message = match (exit_code, status.signal()) {
                (Some(c), _) => format!("{program} exited with status {c}"),
                (None, Some(s)) => format!("{program} was killed by signal {s}"),
                _ => format!("{program} failed"),
            };
            Err(JobError::Failed {
                message,
                exit_code,
                output_tail,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{run, CancelReason, Registry};
    use crate::history::Outcome;
    use crate::model::JobSpec;
    use std::time::Duration;
    use tokio::sync::watch;

    fn ctx(
        script: &str,
        timeout_ms: Option<u64>,
    ) -> (JobContext, watch::Sender<Option<CancelReason>>) {
        let mut spec = JobSpec::new("cmd", Handler::command("/bin/sh", &["-c", script]));
        spec.group = "g".into();
        spec.timeout_ms = timeout_ms;
        spec.data.insert("region".into(), "eu".into());
        let (tx, rx) = watch::channel(None);
        let c = JobContext::new(
            spec,
            "g.cmd@1700000000000".into(),
            0,
            None,
            1_700_000_000_000,
            vec!["3".into(), "4".into()],
            10,
            true,
            "m1".into(),
            rx,
        )
        .unwrap();
        (c, tx)
    }

    #[tokio::test]
    async fn env_and_output_reach_the_history() {
        let (c, tx) = ctx(
            "echo $WARDEN_JOB $WARDEN_GROUP $WARDEN_FIRE_TIME_MS $WARDEN_FIRE_TIME $WARDEN_SHARD_ITEMS/$WARDEN_SHARD_COUNT $WARDEN_RECOVERING $WARDEN_MEMBER $WARDEN_DATA_REGION; echo oops >&2",
            None,
        );
        let e = run(&Registry::new(), c, &tx).await;
        assert_eq!(e.outcome, Outcome::Succeeded, "{e:?}");
        assert_eq!(e.exit_code, Some(0));
        assert!(
            e.output_tail
                .contains("cmd g 1700000000000 2023-11-14T22:13:20.000Z 3,4/10 1 m1 eu"),
            "{}",
            e.output_tail
        );
        assert!(e.output_tail.contains("oops"));
    }

    #[tokio::test]
    async fn exit_status_and_tail_limit() {
        let (c, tx) = ctx("head -c 10000 /dev/zero | tr '\\0' x; exit 3", None);
        let e = run(&Registry::new(), c, &tx).await;
        assert_eq!(e.outcome, Outcome::Failed);
        assert_eq!(e.exit_code, Some(3));
        assert_eq!(e.output_tail.len(), OUTPUT_TAIL_BYTES);
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let dir = tempfile_dir();
        let marker = dir.join("child-alive");
        // A grandchild that would touch the marker after 2 s.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let (c, tx) = ctx(&script, Some(200));
        let e = run(&Registry::new(), c, &tx).await;
        assert_eq!(e.outcome, Outcome::TimedOut);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the grandchild survived the kill");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn missing_program_is_a_failure_not_a_panic() {
        let spec = JobSpec::new("x", Handler::command("/no/such/program", &[]));
        let (tx, rx) = watch::channel(None);
        let c = JobContext::new(
            spec,
            "default.x@1".into(),
            0,
            None,
            1,
            vec!["0".into()],
            1,
            false,
            "m".into(),
            rx,
        )
        .unwrap();
        let e = run(&Registry::new(), c, &tx).await;
        assert_eq!(e.outcome, Outcome::Failed);
        assert!(e.output_tail.contains("/no/such/program"));
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "warden-sched-cmd-{}-{}",
            std::process::id(),
            crate::model::now_ms()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
