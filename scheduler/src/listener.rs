//! Listeners: code that wants to hear about fires and runs (Quartz's
//! `JobListener` and `TriggerListener`), as async traits with no-op
//! defaults.
//!
//! They are called on the member where the thing happens: trigger events on
//! the leader (which decides fires), job events and `trigger_complete` on the
//! worker that ran the task. A listener must not block for long: the caller
//! awaits it. [`LoggingListener`] logs every event with `tracing`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::executor::Execution;
use crate::history::HistoryEntry;
use crate::model::{FireRecord, JobKey, Task};

/// Hears about runs, on the worker.
#[async_trait]
pub trait JobListener: Send + Sync {
    /// A worker claimed `task` and is about to run it.
    async fn job_to_be_executed(&self, _task: &Task, _member: &str) {}
    /// The run ended (`result` is what the history records).
    async fn job_was_executed(&self, _task: &Task, _result: &Execution) {}
}

/// Hears about fires (on the leader) and their completion (on the worker).
#[async_trait]
pub trait TriggerListener: Send + Sync {
    /// The leader recorded a fire.
    async fn trigger_fired(&self, _trigger: Option<&JobKey>, _fire: &FireRecord) {}
    /// The leader recorded a fire as misfired or skipped (the history entry).
    async fn trigger_misfired(&self, _trigger: Option<&JobKey>, _entry: &HistoryEntry) {}
    /// A worker finished its part of a fire.
    async fn trigger_complete(&self, _task: &Task, _result: &Execution) {}
}

/// The listeners a member calls, in registration order.
#[derive(Clone, Default)]
pub struct Listeners {
    pub jobs: Vec<Arc<dyn JobListener>>,
    pub triggers: Vec<Arc<dyn TriggerListener>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("jobs", &self.jobs.len())
            .field("triggers", &self.triggers.len())
            .finish()
    }
}

impl Listeners {
    /// No listeners.
    pub fn new() -> Listeners {
        Listeners::default()
    }

    /// Only the [`LoggingListener`], for both kinds.
    pub fn logging() -> Listeners {
        let l = Arc::new(LoggingListener);
        Listeners {
            jobs: vec![l.clone()],
            triggers: vec![l],
        }
    }

    pub fn add_job_listener(&mut self, l: Arc<dyn JobListener>) -> &mut Listeners {
        self.jobs.push(l);
        self
    }

    pub fn add_trigger_listener(&mut self, l: Arc<dyn TriggerListener>) -> &mut Listeners {
        self.triggers.push(l);
        self
    }

    pub(crate) async fn to_be_executed(&self, task: &Task, member: &str) {
        for l in &self.jobs {
            l.job_to_be_executed(task, member).await;
        }
    }

    pub(crate) async fn executed(&self, task: &Task, result: &Execution) {
        for l in &self.jobs {
            l.job_was_executed(task, result).await;
        }
        for l in &self.triggers {
            l.trigger_complete(task, result).await;
        }
    }

    pub(crate) async fn fired(&self, trigger: Option<&JobKey>, fire: &FireRecord) {
        for l in &self.triggers {
            l.trigger_fired(trigger, fire).await;
        }
    }

    pub(crate) async fn misfired(&self, trigger: Option<&JobKey>, entry: &HistoryEntry) {
        for l in &self.triggers {
            l.trigger_misfired(trigger, entry).await;
        }
    }
}

/// Logs every event: fires and outcomes at `info`, the rest at `debug`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingListener;

#[async_trait]
impl JobListener for LoggingListener {
    async fn job_to_be_executed(&self, task: &Task, member: &str) {
        tracing::debug!(task = %task.task_id(), %member, recovering = task.recovering, "job to be executed");
    }
    async fn job_was_executed(&self, task: &Task, result: &Execution) {
        tracing::info!(
            task = %task.task_id(),
            outcome = %result.outcome,
            exit_code = ?result.exit_code,
            ms = result.ended_ms - result.started_ms,
            "job executed"
        );
    }
}

#[async_trait]
impl TriggerListener for LoggingListener {
    async fn trigger_fired(&self, trigger: Option<&JobKey>, fire: &FireRecord) {
        tracing::info!(
            trigger = ?trigger.map(|t| t.to_string()),
            job = %fire.job,
            scheduled_ms = fire.scheduled_ms,
            kind = ?fire.kind,
            parts = fire.shards.len(),
            "fired"
        );
    }
    async fn trigger_misfired(&self, trigger: Option<&JobKey>, entry: &HistoryEntry) {
        tracing::info!(
            trigger = ?trigger.map(|t| t.to_string()),
            job = %entry.job,
            scheduled_ms = entry.scheduled_ms,
            outcome = %entry.outcome,
            "not fired"
        );
    }
    async fn trigger_complete(&self, task: &Task, result: &Execution) {
        tracing::debug!(task = %task.task_id(), outcome = %result.outcome, "trigger complete");
    }
}
