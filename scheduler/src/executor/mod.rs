//! Running one task: the [`Job`] trait for in-process handlers, the
//! [`Registry`] they are found in, the built-in [`CommandJob`], and
//! [`run`], which applies the timeout and the cancellation signal and turns
//! the result into a history [`Outcome`].
//!
//! Cancellation is a `tokio::sync::watch` channel carrying a
//! [`CancelReason`]: a job sees it through [`JobContext::cancelled`]; the
//! command job turns it into SIGTERM, then SIGKILL after a grace period, to
//! the whole process group.

mod command;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

pub use command::{CommandJob, OUTPUT_TAIL_BYTES};

use crate::history::Outcome;
use crate::model::{now_ms, Handler, JobKey, JobSpec};

/// Why a run is being stopped. `None` while it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The leader cancelled it (`replace` policy, job removed).
    Cancelled,
    /// The job's `timeout_ms` passed.
    TimedOut,
    /// The member's session was lost: another worker may run it now.
    SessionLost,
    /// The member is shutting down.
    Shutdown,
}

/// Everything a job knows about the run it is asked to do.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub job: JobKey,
    /// The job definition as it was when the fire was decided.
    pub spec: JobSpec,
    pub fire_id: String,
    pub part: u32,
    pub trigger: Option<String>,
    /// When the fire was due (leader's clock), ms since the epoch.
    pub scheduled_ms: i64,
    /// When this run started (this member's clock).
    pub actual_ms: i64,
    /// This run's shard items (`["0"]` for an unsharded job).
    pub shard_items: Vec<String>,
    pub shard_count: u32,
    /// A re-run after the worker that had it was lost.
    pub recovering: bool,
    /// The member running it.
    pub member: String,
    /// The job's data (with a manual fire's extra data merged in).
    pub data: BTreeMap<String, String>,
    cancel: watch::Receiver<Option<CancelReason>>,
}

impl JobContext {
    /// A context; `cancel` delivers the stop signal.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        spec: JobSpec,
        fire_id: String,
        part: u32,
        trigger: Option<String>,
        scheduled_ms: i64,
        shard_items: Vec<String>,
        shard_count: u32,
        recovering: bool,
        member: String,
        cancel: watch::Receiver<Option<CancelReason>>,
    ) -> Result<JobContext, crate::model::ModelError> {
        Ok(JobContext {
            job: spec.key()?,
            data: spec.data.clone(),
            spec,
            fire_id,
            part,
            trigger,
            scheduled_ms,
            actual_ms: now_ms(),
            shard_items,
            shard_count,
            recovering,
            member,
            cancel,
        })
    }

    /// Why the run should stop, if it should.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        *self.cancel.borrow()
    }

    /// True once the run should stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel_reason().is_some()
    }

    /// Resolves when the run should stop (never, if nobody ever asks).
    pub async fn cancelled(&self) -> CancelReason {
        let mut rx = self.cancel.clone();
        loop {
            if let Some(r) = *rx.borrow_and_update() {
                return r;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// What a successful run reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOutput {
    pub exit_code: Option<i32>,
    /// Kept in the history (at most [`OUTPUT_TAIL_BYTES`]).
    pub output_tail: String,
}

/// Why a run did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The job ran and failed.
    #[error("job failed: {message}")]
    Failed {
        message: String,
        exit_code: Option<i32>,
        output_tail: String,
    },
    /// The job stopped because it was asked to.
    #[error("job cancelled ({reason:?})")]
    Cancelled {
        reason: CancelReason,
        exit_code: Option<i32>,
        output_tail: String,
    },
    /// No in-process job of that name is registered on this member.
    #[error("no in-process job named {0:?} is registered on this member")]
    UnknownHandler(String),
    /// The program could not be started.
    #[error("could not start {program:?}: {error}")]
    Spawn { program: String, error: String },
}

impl JobError {
    /// A plain failure with a message.
    pub fn failed(message: impl Into<String>) -> JobError {
        JobError::Failed {
            message: message.into(),
            exit_code: None,
            output_tail: String::new(),
        }
    }
}

/// An in-process job handler.
///
/// Implement it and register it in the member's [`Registry`] under the
/// name a job's `Handler::InProcess { name }` uses. It should return soon
/// after [`JobContext::cancelled`] resolves; it is dropped otherwise.
#[async_trait]
pub trait Job: Send + Sync {
    async fn execute(&self, ctx: JobContext) -> Result<JobOutput, JobError>;
}

/// The named in-process jobs a member can run (the command job needs no
/// registration).
#[derive(Clone, Default)]
pub struct Registry {
    jobs: HashMap<String, Arc<dyn Job>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.jobs.keys().collect();
        names.sort();
        f.debug_struct("Registry").field("jobs", &names).finish()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `job` under `name` (replacing one of the same name).
    pub fn register(&mut self, name: &str, job: impl Job + 'static) -> &mut Registry {
        self.jobs.insert(name.to_string(), Arc::new(job));
        self
    }

    /// The handler for a job definition.
    pub fn resolve(&self, handler: &Handler) -> Result<Arc<dyn Job>, JobError> {
        match handler {
            Handler::Command { .. } => Ok(Arc::new(CommandJob)),
            Handler::InProcess { name } => self
                .jobs
                .get(name)
                .cloned()
                .ok_or_else(|| JobError::UnknownHandler(name.clone())),
        }
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.jobs.keys().cloned().collect();
        v.sort();
        v
    }
}

/// The result of [`run`], ready for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub output_tail: String,
    pub started_ms: i64,
    pub ended_ms: i64,
}

/// How long a cancelled job gets to stop before it is dropped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the job of `ctx` with its timeout; `cancel` is the sender whose
/// receiver is in `ctx` (the timeout uses it too). Never panics on a job
/// error: every ending becomes an [`Execution`].
pub async fn run(
    registry: &Registry,
    ctx: JobContext,
    cancel: &watch::Sender<Option<CancelReason>>,
) -> Execution {
    let started_ms = ctx.actual_ms;
    let timeout = ctx.spec.timeout_ms.map(Duration::from_millis);
    let result = match registry.resolve(&ctx.spec.handler) {
        Err(e) => Err(e),
        Ok(job) => {
            let watcher = ctx.clone();
            let fut = job.execute(ctx);
            tokio::pin!(fut);
            let deadline = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut fut => r,
                () = deadline => {
                    cancel.send_replace(Some(CancelReason::TimedOut));
                    finish_after_cancel(&mut fut, CancelReason::TimedOut).await
                }
                reason = watcher.cancelled() => finish_after_cancel(&mut fut, reason).await,
            }
        }
    };
    let ended_ms = now_ms();
    let (outcome, exit_code, output_tail) = match result {
        Ok(out) => (Outcome::Succeeded, out.exit_code, out.output_tail),
        Err(JobError::Failed {
            message,
            exit_code,
            output_tail,
        }) => (
            Outcome::Failed,
            exit_code,
            if output_tail.is_empty() {
                message
            } else {
                output_tail
            },
        ),
        Err(JobError::Cancelled {
            reason,
            exit_code,
            output_tail,
        }) => (outcome_of(reason), exit_code, output_tail),
        Err(e) => (Outcome::Failed, None, e.to_string()),
    };
    Execution {
        outcome,
        exit_code,
        output_tail,
        started_ms,
        ended_ms,
    }
}

fn outcome_of(reason: CancelReason) -> Outcome {
    match reason {
        CancelReason::TimedOut => Outcome::TimedOut,
        _ => Outcome::Cancelled,
    }
}

/// After a cancel: give the job [`STOP_GRACE`] to return, and whatever it
/// returns, the run counts as stopped for `reason`.
async fn finish_after_cancel<F>(fut: &mut F, reason: CancelReason) -> Result<JobOutput, JobError>
where
    F: std::future::Future<Output = Result<JobOutput, JobError>> + Unpin,
{
    let (exit_code, output_tail) =
        match tokio::time::timeout(STOP_GRACE + Duration::from_secs(1), fut).await {
            Ok(Ok(out)) => (out.exit_code, out.output_tail),
            Ok(Err(JobError::Cancelled {
                exit_code,
                output_tail,
                ..
            }))
            | Ok(Err(JobError::Failed {
                exit_code,
                output_tail,
                ..
            })) => (exit_code, output_tail),
            Ok(Err(e)) => (None, e.to_string()),
            Err(_) => (None, "the job did not stop within the grace period".into()),
        };
    Err(JobError::Cancelled {
        reason,
        exit_code,
        output_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleepy;

    #[async_trait]
    impl Job for Sleepy {
        async fn execute(&self, ctx: JobContext) -> Result<JobOutput, JobError> {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(30)) => Ok(JobOutput::default()),
                r = ctx.cancelled() => Err(JobError::Cancelled { reason: r, exit_code: None, output_tail: "stopped".into() }),
            }
        }
    }

    struct Echo;

    #[async_trait]
    impl Job for Echo {
        async fn execute(&self, ctx: JobContext) -> Result<JobOutput, JobError> {
            if ctx.data.contains_key("fail") {
                return Err(JobError::failed("asked to fail"));
            }
            Ok(JobOutput {
                exit_code: None,
                output_tail: format!("{} {:?}", ctx.fire_id, ctx.shard_items),
            })
        }
    }

    fn ctx(
        handler: &str,
        timeout_ms: Option<u64>,
    ) -> (JobContext, watch::Sender<Option<CancelReason>>) {
        let mut spec = JobSpec::new(
            "j",
            Handler::InProcess {
                name: handler.into(),
            },
        );
        spec.timeout_ms = timeout_ms;
        let (tx, rx) = watch::channel(None);
        let c = JobContext::new(
            spec,
            "default.j@1".into(),
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
        (c, tx)
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.register("sleepy", Sleepy).register("echo", Echo);
        r
    }

    #[tokio::test]
    async fn outcomes_follow_the_ending() {
        let r = registry();
        let (c, tx) = ctx("echo", None);
        let e = run(&r, c, &tx).await;
        assert_eq!(e.outcome, Outcome::Succeeded);
        assert_eq!(e.output_tail, "default.j@1 [\"0\"]");

        let (mut c, tx) = ctx("echo", None);
        c.data.insert("fail".into(), "1".into());
        let e = run(&r, c, &tx).await;
        assert_eq!(e.outcome, Outcome::Failed);
        assert_eq!(e.output_tail, "asked to fail");

        let (c, tx) = ctx("missing", None);
        let e = run(&r, c, &tx).await;
        assert_eq!(e.outcome, Outcome::Failed);
        assert!(e.output_tail.contains("missing"));
    }

    #[tokio::test]
    async fn timeout_and_cancel_stop_the_job() {
        let r = registry();
        let (c, tx) = ctx("sleepy", Some(50));
        let e = run(&r, c, &tx).await;
        assert_eq!(e.outcome, Outcome::TimedOut);
        assert_eq!(e.output_tail, "stopped");

        let (c, tx) = ctx("sleepy", None);
        let tx2 = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx2.send_replace(Some(CancelReason::Cancelled));
        });
        let e = run(&r, c, &tx).await;
        assert_eq!(e.outcome, Outcome::Cancelled);
    }
}
