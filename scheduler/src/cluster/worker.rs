//! The worker: claims the tasks the leader put in `C/assign/<me>/`, runs
//! them and records the results.
//!
//! Claim = one multi: `[check(assign node @ version), set(assign node:
//! claimed_by = my session), create(running/<task>, EPHEMERAL)]`. Completion
//! = one multi: `[check(running/<task>), create(history entry),
//! delete(running/<task>), delete(assign node)]`. The running node is an
//! ephemeral of this worker's session, so a worker whose session ended
//! (and whose task the leader may already have given to someone else) can
//! neither claim nor record.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use warden_client::{CreateMode, ErrorCode, Op};

use super::Shared;
use crate::executor::{self, CancelReason, Execution, JobContext};
use crate::history::{entry_name, HistoryEntry, Outcome};
use crate::model::Task;
use crate::store::to_json;

/// How often the worker looks at its folder even without a watch event.
const RESCAN: Duration = Duration::from_secs(2);

pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let dir = shared.store.paths().assign_dir(shared.id());
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut watch = None;
        if shared.claiming.load(Ordering::SeqCst) && !shared.stopping.load(Ordering::SeqCst) {
            if let Err(e) = shared.store.ensure(&dir).await {
                tracing::debug!(error = %e, "could not create the assign folder");
            }
            match shared.client().get_children_w(&dir).await {
                Ok((mut names, w)) => {
                    watch = Some(w);
                    names.sort();
                    for name in names {
                        if !shared.claiming.load(Ordering::SeqCst) {
                            break;
                        }
                        if shared.running.lock().contains_key(&name) {
                            continue;
                        }
                        claim_and_spawn(&shared, &dir, &name).await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "could not list assigned tasks"),
            }
        }
        let changed = async {
            match watch {
                Some(w) => {
                    let _ = w.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = changed => {}
            () = shared.wake_worker.notified() => {}
            () = tokio::time::sleep(RESCAN) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// Claims one task and, if that worked, runs it in its own tokio task.
async fn claim_and_spawn(shared: &Arc<Shared>, dir: &str, name: &str) {
    let path = format!("{dir}/{name}");
    let Ok(Some((mut task, stat))) = shared.store.read::<Task>(&path, "task").await else {
        return;
    };
    let session_id = shared.client().session_id();
    let session = format!("{session_id:#x}");
    let running = shared.store.paths().running_task(name);
    match &task.claimed_by {
        // Our own claim whose reply was lost: adopt it if the claim node is
        // this session's.
        Some(owner) if *owner == session => {
            if shared.unrecorded.lock().contains(name) {
                return;
            }
            match shared.client().exists(&running).await {
                Ok(Some(st)) if st.ephemeral_owner == session_id => {
                    tracing::debug!(task = %name, "adopting our own claim");
                }
                _ => return,
            }
        }
        // Claimed by an earlier session: the leader recovers it.
        Some(_) => return,
        None => {
            if task.cancelled {
                return;
            }
            task.claimed_by = Some(session);
            let ops = vec![
                Op::check(path.clone(), Some(stat.version)),
                Op::set_data(path.clone(), to_json(&task), Some(stat.version)),
                Op::create(
                    running.clone(),
                    shared.id().as_bytes().to_vec(),
                    CreateMode::Ephemeral,
                ),
            ];
            if let Err(e) = shared.store.multi(ops).await {
                tracing::debug!(task = %name, error = %e, "claim failed");
                return;
            }
        }
    }
    let (tx, rx) = watch::channel(None);
    shared.running.lock().insert(name.to_string(), tx.clone());
    tracing::debug!(task = %name, "claimed");
    let shared = shared.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        execute(&shared, &path, &running, task, tx, rx).await;
        shared.running.lock().remove(&name);
        shared.wake_worker.notify_one();
    });
}

async fn execute(
    shared: &Arc<Shared>,
    assign_path: &str,
    running_path: &str,
    task: Task,
    tx: watch::Sender<Option<CancelReason>>,
    rx: watch::Receiver<Option<CancelReason>>,
) {
    let ctx = match JobContext::new(
        task.job.clone(),
        task.fire_id.clone(),
        task.part,
        task.trigger.clone(),
        task.scheduled_ms,
        task.shard_items.clone(),
        task.shard_count,
        task.recovering,
        shared.id().to_string(),
        rx,
    ) {
        Ok(c) => c,
        Err(e) => {
            let now = crate::model::now_ms();
            let result = Execution {
                outcome: Outcome::Failed,
                exit_code: None,
                output_tail: e.to_string(),
                started_ms: now,
                ended_ms: now,
            };
            record(shared, running_path, assign_path, &task, &result).await;
            return;
        }
    };
    shared.listeners.to_be_executed(&task, shared.id()).await;
    let cancel_watch = tokio::spawn(watch_for_cancel(
        shared.clone(),
        assign_path.to_string(),
        tx.clone(),
    ));
    let result = executor::run(&shared.registry, ctx, &tx).await;
    cancel_watch.abort();
    shared.listeners.executed(&task, &result).await;
    if *tx.borrow() == Some(CancelReason::SessionLost) {
        tracing::warn!(
            task = %task.task_id(),
            "session lost during the run: not recording (the leader recovers or records it)"
        );
        return;
    }
    if *tx.borrow() == Some(CancelReason::Shutdown) && task.job.requests_recovery {
        // Hand it back: without our claim node the leader re-runs it elsewhere.
        tracing::info!(task = %task.task_id(), "stopped by shutdown; left for recovery");
        let _ = shared.client().delete(running_path, None).await;
        return;
    }
    record(shared, running_path, assign_path, &task, &result).await;
}

/// Cancels the run when the leader marks the task cancelled or removes it.
async fn watch_for_cancel(
    shared: Arc<Shared>,
    path: String,
    tx: watch::Sender<Option<CancelReason>>,
) {
    loop {
        match shared.client().get_data_w(&path).await {
            Ok((data, _, w)) => {
                if serde_json::from_slice::<Task>(&data).is_ok_and(|t| t.cancelled) {
                    tx.send_replace(Some(CancelReason::Cancelled));
                    return;
                }
                if w.await.is_err() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            Err(e) if e.code() == ErrorCode::NoNode => {
                tx.send_replace(Some(CancelReason::Cancelled));
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Writes the result: history entry, and the task's running and assign
/// nodes gone, in one multi fenced by our running node.
async fn record(
    shared: &Shared,
    running_path: &str,
    assign_path: &str,
    task: &Task,
    result: &Execution,
) {
    let job = match task.job.key() {
        Ok(k) => k,
        Err(_) => return,
    };
    let part = task.part.to_string();
    let entry = HistoryEntry {
        fire_id: task.fire_id.clone(),
        job: job.clone(),
        trigger: task.trigger.clone(),
        part: part.clone(),
        scheduled_ms: task.scheduled_ms,
        kind: Some(task.kind),
        started_ms: Some(result.started_ms),
        ended_ms: Some(result.ended_ms),
        worker: shared.id().to_string(),
        outcome: result.outcome,
        exit_code: result.exit_code,
        output_tail: result.output_tail.clone(),
        recovering: task.recovering,
        shard_items: task.shard_items.clone(),
    };
    let history_dir = shared.store.paths().history_dir(&job);
    let entry_path = shared
        .store
        .paths()
        .history_entry(&job, &entry_name(task.scheduled_ms, &part));
    for attempt in 0..10 {
        if let Err(e) = shared.store.ensure(&history_dir).await {
            tracing::debug!(error = %e, "could not create the history folder");
        }
        let ops = vec![
            Op::check(running_path, None),
            Op::create(entry_path.clone(), to_json(&entry), CreateMode::Persistent),
            Op::delete(running_path, None),
            Op::delete(assign_path, None),
        ];
        match shared.store.multi(ops).await {
            Ok(()) => {
                tracing::debug!(task = %task.task_id(), outcome = %result.outcome, "recorded");
                return;
            }
            Err(e) if e.failed_index() == Some(0) && e.code() == ErrorCode::NoNode => {
                // Either an earlier attempt went through (lost reply), or our claim is gone.
                if shared
                    .client()
                    .exists(&entry_path)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {
                    return;
                }
                tracing::warn!(
                    task = %task.task_id(),
                    "the claim is gone (session lost?): result not recorded"
                );
                return;
            }
            Err(e) if e.failed_index() == Some(1) && e.code() == ErrorCode::NodeExists => {
                // A history entry of this name exists (e.g. a worker-lost record of an
                // earlier attempt): keep ours under a distinct name.
                let alt = shared.store.paths().history_entry(
                    &job,
                    &entry_name(task.scheduled_ms, &format!("{part}-{}", shared.id())),
                );
                let ops = vec![
                    Op::check(running_path, None),
                    Op::create(alt, to_json(&entry), CreateMode::Persistent),
                    Op::delete(running_path, None),
                    Op::delete(assign_path, None),
                ];
                if let Err(e) = shared.store.multi(ops).await {
                    tracing::warn!(task = %task.task_id(), error = %e, "could not record the result");
                    shared.unrecorded.lock().insert(task.task_id());
                }
                return;
            }
            Err(e) => {
                tracing::debug!(task = %task.task_id(), attempt, error = %e, "recording failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    tracing::warn!(
        task = %task.task_id(),
        "gave up recording the result; dropping the claim so the leader settles the task"
    );
    shared.unrecorded.lock().insert(task.task_id());
    let _ = shared.client().delete(running_path, None).await;
}
