//! The leader loop: while this member holds the election's term, decide.
//!
//! Nothing is kept in memory across passes or leader changes: each pass
//! reads jobs, triggers, trigger states, pause markers, members and tasks
//! from the store, then
//!
//! 1. **recovers** tasks: claimed but with no `running` node (the worker
//!    died mid-run) → re-assigned to a live worker marked `recovering` if
//!    the job requests recovery, else recorded `worker-lost`; unclaimed tasks
//!    of a member that is gone (or has not claimed for [`STALE_MS`]) → moved
//!    to a live member; tasks of removed jobs → cancelled;
//! 2. consumes **manual fire requests**;
//! 3. **fires** due triggers (earliest first, then by priority) through
//!    [`resolve_due`]: each decision is one multi
//!    `[check(term.path), set(state @ version), create(fires/<job>@<T>),
//!    create(assign/<member>/<job>@<T>#<part>)..., history entries for
//!    misfires/skips]`;
//! 4. every [`TRIM_EVERY`], trims history to the last N per job and drops
//!    old fire nodes.
//!
//! Who gets a task: live members that are responsive (no task left
//! unclaimed for [`STALE_MS`] recently) and, for in-process jobs, have the
//! handler registered (members list theirs in their node); the least loaded
//! of them, rotating on ties. Sharded fires are split over the same set by
//! the job's strategy.
//!
//! The first op of every multi is the fencing check: a deposed leader's
//! term node is gone, so its multi fails as a whole and it stops. Passes
//! run when something under the cluster folder changes (a persistent
//! recursive watch) or when the earliest fire is due.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;
use warden_client::recipes::{LeaderLatch, Term};
use warden_client::{AddWatchMode, CreateMode, MultiError, Op, WatcherType};

use super::Shared;
use crate::history::{entry_name, names_to_trim, HistoryEntry, Outcome};
use crate::model::{
    fire_id, now_ms, parse_fire_id, task_id, Concurrency, FireKind, FireRecord, FireRequest,
    Handler, JobKey, JobSpec, MemberInfo, Task,
};
use crate::schedule::{initial_state, resolve_due, TriggerSpec, TriggerState};
use crate::shard::{self, Assignment};
use crate::store::{job_of, to_json, trigger_key, Paused, StoreError};

/// An unclaimed task older than this on a live member is moved to another
/// member: its member is alive but not working (stopped, overloaded).
pub const STALE_MS: i64 = 5_000;
/// A member whose stale task was moved gets no new tasks for this long
/// (unless no other member is left).
pub const UNRESPONSIVE_FOR: Duration = Duration::from_secs(10);
/// How often history is trimmed and old fire nodes dropped.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);
/// The longest a leader sleeps between passes without a watch event.
const MAX_SLEEP: Duration = Duration::from_secs(2);
/// Most misfire history entries written in one decision.
const MAX_MISFIRE_ENTRIES: usize = 100;

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
enum LeadError {
    /// The fencing check failed: another member leads now.
    #[error("deposed: the term node is gone")]
    Deposed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MultiError> for LeadError {
    fn from(e: MultiError) -> Self {
        LeadError::Store(StoreError::Multi(e))
    }
}

/// Follows leadership: leads while the latch says so.
pub(crate) async fn run(
    shared: Arc<Shared>,
    latch: Arc<LeaderLatch>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leadership = latch.leadership();
    drop(latch);
    loop {
        let term = leadership.borrow_and_update().clone();
        match term {
            Some(term) => {
                tracing::info!(id = %shared.id(), token = term.token, "leading the scheduler cluster");
                let mut leader = Leader::new(shared.clone(), term);
                let deposed = tokio::select! {
                    () = leader.lead() => true,
                    r = leadership.changed() => if r.is_err() { return } else { false },
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                if deposed {
                    // Wait for the latch to notice (or a moment).
                    tokio::select! {
                        _ = leadership.changed() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                }
                let root = shared.store.paths().root().to_string();
                let _ = shared
                    .client()
                    .remove_watches(&root, WatcherType::Any)
                    .await;
                tracing::info!(id = %shared.id(), "stopped leading");
            }
            None => {
                tokio::select! {
                    r = leadership.changed() => if r.is_err() { return },
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

/// One task node as read in a pass.
#[derive(Debug, Clone)]
struct TaskNode {
    member: String,
    name: String,
    version: i32,
    task: Task,
    running: bool,
}

/// A trigger with its key, its job's key and its state (and the state's version).
type TriggerRow = (TriggerSpec, JobKey, JobKey, Option<(TriggerState, i32)>);

/// What a pass reads.
struct Snapshot {
    now: i64,
    members: Vec<String>,
    /// In-process handlers per member (from the member nodes).
    handlers: BTreeMap<String, BTreeSet<String>>,
    jobs: BTreeMap<JobKey, JobSpec>,
    triggers: Vec<TriggerSpec>,
    paused: Paused,
    tasks: Vec<TaskNode>,
    fires: BTreeSet<String>,
}

struct Leader {
    shared: Arc<Shared>,
    term: Term,
    /// Folders known to exist (assign and history dirs), to skip `ensure`.
    ensured: HashSet<String>,
    last_trim: Option<Instant>,
    /// Triggers whose schedule failed to compute, logged once.
    bad: HashSet<String>,
    /// Members that left a task unclaimed for [`STALE_MS`], and when.
    unresponsive: HashMap<String, Instant>,
}

impl Leader {
    fn new(shared: Arc<Shared>, term: Term) -> Leader {
        Leader {
            shared,
            term,
            ensured: HashSet::new(),
            last_trim: None,
            bad: HashSet::new(),
            unresponsive: HashMap::new(),
        }
    }

    fn fence(&self) -> Op {
        Op::check(self.term.path.clone(), None)
    }

    /// Runs passes until deposed.
    async fn lead(&mut self) {
        let root = self.shared.store.paths().root().to_string();
        let mut events = loop {
            match self
                .shared
                .client()
                .add_watch(&root, AddWatchMode::PersistentRecursive)
                .await
            {
                Ok(w) => break Some(w),
                Err(e) => {
                    tracing::debug!(error = %e, "could not watch the cluster folder; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        loop {
            let sleep = match self.pass().await {
                Ok(sleep) => sleep,
                Err(LeadError::Deposed) => {
                    tracing::info!(id = %self.shared.id(), "the fencing check failed: no longer leader");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "leader pass failed; retrying");
                    Duration::from_millis(200)
                }
            };
            let woke = async {
                match events.as_mut() {
                    Some(s) => s.next().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                alive = woke => {
                    if !alive {
                        events = None;
                    }
                    // Let a burst of changes settle into one pass.
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    if let Some(s) = events.as_mut() {
                        while let Some(Some(_)) = futures::FutureExt::now_or_never(s.next()) {}
                    }
                }
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Reads everything a pass needs. Tasks are read before running nodes,
    /// so a task seen unclaimed is never mistaken for a lost one.
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let store = &self.shared.store;
        let paths = store.paths();
        let members = store.children(&paths.members()).await?;
        let mut handlers = BTreeMap::new();
        for m in &members {
            if let Ok(Some((info, _))) = store.read::<MemberInfo>(&paths.member(m), "member").await
            {
                handlers.insert(m.clone(), info.handlers.into_iter().collect());
            }
        }
        let jobs = store
            .list_jobs()
            .await?
            .into_iter()
            .filter_map(|j| j.key().ok().map(|k| (k, j)))
            .collect();
        let triggers = store.list_triggers().await?;
        let paused = store.paused().await?;
        let mut tasks = Vec::new();
        for member in store.children(&paths.assign()).await? {
            let dir = paths.assign_dir(&member);
            for name in store.children(&dir).await? {
                match store.read::<Task>(&format!("{dir}/{name}"), "task").await {
                    Ok(Some((task, stat))) => tasks.push(TaskNode {
                        member: member.clone(),
                        name,
                        version: stat.version,
                        task,
                        running: false,
                    }),
                    Ok(None) => {}
                    Err(StoreError::Decode { path, error, .. }) => {
                        tracing::warn!(%path, %error, "removing an unreadable task");
                        let _ = store.client().delete(&path, None).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let running: BTreeSet<String> = store
            .children(&paths.running())
            .await?
            .into_iter()
            .collect();
        for t in &mut tasks {
            t.running = running.contains(&t.name);
        }
        let fires = store.children(&paths.fires()).await?.into_iter().collect();
        Ok(Snapshot {
            now: now_ms(),
            members,
            handlers,
            jobs,
            triggers,
            paused,
            tasks,
            fires,
        })
    }

    /// One pass; returns how long to sleep at most before the next.
    async fn pass(&mut self) -> Result<Duration, LeadError> {
        let mut snap = self.snapshot().await?;
        for m in snap.members.clone() {
            let dir = self.shared.store.paths().assign_dir(&m);
            self.ensure(&dir).await?;
        }
        self.recover(&snap).await?;
        self.requests(&mut snap).await?;
        let sleep = self.fire_due(&mut snap).await?;
        if self.last_trim.is_none_or(|t| t.elapsed() >= TRIM_EVERY) {
            self.last_trim = Some(Instant::now());
            if let Err(e) = self.trim(&snap).await {
                tracing::debug!(error = %e, "trimming failed");
            }
        }
        Ok(sleep)
    }

    async fn ensure(&mut self, dir: &str) -> Result<(), StoreError> {
        if !self.ensured.contains(dir) {
            self.shared.store.ensure(dir).await?;
            self.ensured.insert(dir.to_string());
        }
        Ok(())
    }

    /// Runs a fenced multi. `Ok(false)` when it lost a race (a version
    /// check or name clash): the next pass re-reads and decides again.
    async fn commit(&self, mut ops: Vec<Op>) -> Result<bool, LeadError> {
        ops.insert(0, self.fence());
        match self.shared.store.multi(ops).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_index() == Some(0) => Err(LeadError::Deposed),
            Err(e @ MultiError::OpFailed { .. }) => {
                tracing::debug!(error = %e, "leader write lost a race");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Members that are live and working: not holding stale unclaimed tasks.
    fn responsive(&self, snap: &Snapshot) -> Vec<String> {
        let stale: BTreeSet<&String> = snap
            .tasks
            .iter()
            .filter(|t| t.task.claimed_by.is_none() && snap.now - t.task.decided_ms > STALE_MS)
            .map(|t| &t.member)
            .collect();
        let recently_slow = |m: &String| {
            self.unresponsive
                .get(m)
                .is_some_and(|t| t.elapsed() < UNRESPONSIVE_FOR)
        };
        let ok: Vec<String> = snap
            .members
            .iter()
            .filter(|m| !stale.contains(m) && !recently_slow(m))
            .cloned()
            .collect();
        if ok.is_empty() {
            snap.members.clone()
        } else {
            ok
        }
    }

    /// Of `candidates`, those that can run `job`: any member for a command
    /// job, only members with the handler registered for an in-process one.
    fn capable(snap: &Snapshot, job: &JobSpec, candidates: &[String]) -> Vec<String> {
        match &job.handler {
            Handler::InProcess { name } => candidates
                .iter()
                .filter(|m| snap.handlers.get(*m).is_some_and(|h| h.contains(name)))
                .cloned()
                .collect(),
            Handler::Command { .. } => candidates.to_vec(),
        }
    }

    /// The least loaded of `candidates`, ties broken by a rotation seeded
    /// with `seed` (so unsharded fires spread over the members).
    fn pick(&self, snap: &Snapshot, candidates: &[String], seed: i64) -> Option<String> {
        if candidates.is_empty() {
            return None;
        }
        let n = candidates.len();
        let offset = (seed / 1000).rem_euclid(n as i64) as usize;
        candidates
            .iter()
            .enumerate()
            .min_by_key(|(i, m)| {
                let load = snap.tasks.iter().filter(|t| &t.member == *m).count();
                (load, (i + n - offset) % n)
            })
            .map(|(_, m)| m.clone())
    }

    async fn recover(&mut self, snap: &Snapshot) -> Result<(), LeadError> {
        let paths = self.shared.store.paths().clone();
        let live: BTreeSet<&String> = snap.members.iter().collect();
        let responsive = self.responsive(snap);
        for t in &snap.tasks {
            let Ok(key) = t.task.job.key() else { continue };
            let job = snap.jobs.get(&key);
            let assign_path = paths.assign_task(&t.member, &t.name);
            let claimed = t.task.claimed_by.is_some();
            if claimed && !t.running {
                // Lost mid-run (or just completed: then the delete below fails).
                let recover = job.is_some_and(|j| j.requests_recovery) && !t.task.cancelled;
                let able = Self::capable(snap, &t.task.job, &responsive);
                let others: Vec<String> =
                    able.iter().filter(|m| **m != t.member).cloned().collect();
                let target = if others.is_empty() {
                    self.pick(snap, &able, t.task.scheduled_ms)
                } else {
                    self.pick(snap, &others, t.task.scheduled_ms)
                };
                match (recover, target) {
                    (true, Some(target)) => {
                        let mut task = t.task.clone();
                        task.claimed_by = None;
                        task.recovering = true;
                        task.decided_ms = snap.now;
                        if let Some(j) = job {
                            task.job = j.clone();
                        }
                        if self.move_task(t, &target, &task).await? {
                            tracing::info!(task = %t.name, from = %t.member, to = %target, "recovering a task of a lost worker");
                        }
                    }
                    (true, None) => {}
                    (false, _) => {
                        let outcome = if t.task.cancelled {
                            Outcome::Cancelled
                        } else {
                            Outcome::WorkerLost
                        };
                        let entry =
                            self.entry(&t.task, &t.member, outcome, "the worker was lost mid-run");
                        let hdir = paths.history_dir(&key);
                        self.ensure(&hdir).await?;
                        let ops = vec![
                            Op::delete(assign_path, Some(t.version)),
                            Op::create(
                                paths.history_entry(
                                    &key,
                                    &entry_name(t.task.scheduled_ms, &t.task.part.to_string()),
                                ),
                                to_json(&entry),
                                CreateMode::Persistent,
                            ),
                        ];
                        if self.commit(ops).await? {
                            tracing::info!(task = %t.name, worker = %t.member, %outcome, "task of a lost worker recorded");
                        }
                    }
                }
            } else if !claimed {
                if job.is_none() || t.task.cancelled {
                    // Never started: drop it.
                    let entry = self.entry(
                        &t.task,
                        &t.member,
                        Outcome::Cancelled,
                        "cancelled before it started",
                    );
                    let mut ops = vec![Op::delete(assign_path, Some(t.version))];
                    if job.is_some() {
                        let hdir = paths.history_dir(&key);
                        self.ensure(&hdir).await?;
                        ops.push(Op::create(
                            paths.history_entry(
                                &key,
                                &entry_name(t.task.scheduled_ms, &t.task.part.to_string()),
                            ),
                            to_json(&entry),
                            CreateMode::Persistent,
                        ));
                    }
                    self.commit(ops).await?;
                    continue;
                }
                let gone = !live.contains(&t.member);
                let stale = snap.now - t.task.decided_ms > STALE_MS;
                if gone || stale {
                    let others: Vec<String> = Self::capable(snap, &t.task.job, &responsive)
                        .iter()
                        .filter(|m| **m != t.member)
                        .cloned()
                        .collect();
                    if let Some(target) = self.pick(snap, &others, t.task.scheduled_ms) {
                        let mut task = t.task.clone();
                        task.decided_ms = snap.now;
                        if self.move_task(t, &target, &task).await? {
                            tracing::info!(task = %t.name, from = %t.member, to = %target, gone, "moved an unclaimed task");
                            if !gone {
                                self.unresponsive.insert(t.member.clone(), Instant::now());
                            }
                        }
                    }
                }
            } else if job.is_none() && !t.task.cancelled {
                let mut task = t.task.clone();
                task.cancelled = true;
                self.commit(vec![Op::set_data(
                    assign_path,
                    to_json(&task),
                    Some(t.version),
                )])
                .await?;
            }
        }
        Ok(())
    }

    /// Moves a task node to `target`'s folder as `task`, fenced by the old
    /// node's version. `Ok(false)` when it lost a race.
    async fn move_task(&self, t: &TaskNode, target: &str, task: &Task) -> Result<bool, LeadError> {
        let paths = self.shared.store.paths();
        self.commit(vec![
            Op::delete(paths.assign_task(&t.member, &t.name), Some(t.version)),
            Op::create(
                paths.assign_task(target, &t.name),
                to_json(task),
                CreateMode::Persistent,
            ),
        ])
        .await
    }

    fn entry(&self, task: &Task, worker: &str, outcome: Outcome, message: &str) -> HistoryEntry {
        HistoryEntry {
            fire_id: task.fire_id.clone(),
            job: task.job.key().unwrap_or_else(|_| JobKey {
                group: task.job.group.clone(),
                name: task.job.name.clone(),
            }),
            trigger: task.trigger.clone(),
            part: task.part.to_string(),
            scheduled_ms: task.scheduled_ms,
            kind: Some(task.kind),
            started_ms: None,
            ended_ms: Some(now_ms()),
            worker: worker.to_string(),
            outcome,
            exit_code: None,
            output_tail: message.to_string(),
            recovering: task.recovering,
            shard_items: task.shard_items.clone(),
        }
    }

    /// Manual "fire now" requests.
    async fn requests(&mut self, snap: &mut Snapshot) -> Result<(), LeadError> {
        let paths = self.shared.store.paths().clone();
        for name in self.shared.store.children(&paths.requests()).await? {
            let path = format!("{}/{name}", paths.requests());
            let req = match self
                .shared
                .store
                .read::<FireRequest>(&path, "fire request")
                .await
            {
                Ok(Some((r, _))) => r,
                Ok(None) => continue,
                Err(StoreError::Decode { error, .. }) => {
                    tracing::warn!(%path, %error, "dropping an unreadable fire request");
                    self.commit(vec![Op::delete(path, None)]).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(job) = snap.jobs.get(&req.job).cloned() else {
                // The request list is read live, the jobs were read with the
                // snapshot: a job added since is not in it yet, and its
                // request waits for the next pass.
                if self.shared.store.get_job(&req.job).await?.is_none() {
                    tracing::warn!(job = %req.job, "fire request for a job that does not exist; dropped");
                    self.commit(vec![Op::delete(path, None)]).await?;
                }
                continue;
            };
            let mut job = job;
            job.data.extend(req.data.clone());
            let mut ms = snap.now.max(req.requested_ms);
            while snap.fires.contains(&fire_id(&req.job, ms)) {
                ms += 1;
            }
            let pre = vec![Op::delete(path, None)];
            self.decide_fire(snap, &job, None, ms, FireKind::Manual, pre)
                .await?;
        }
        Ok(())
    }

    /// Fires due triggers; returns the time until the earliest next fire.
    async fn fire_due(&mut self, snap: &mut Snapshot) -> Result<Duration, LeadError> {
        let paths = self.shared.store.paths().clone();
        let mut states: Vec<TriggerRow> = Vec::new();
        for t in &snap.triggers {
            let (Ok(tkey), Ok(jkey)) = (trigger_key(t), job_of(t)) else {
                continue;
            };
            let state = self
                .shared
                .store
                .get_state(&tkey)
                .await?
                .map(|(s, stat)| (s, stat.version));
            states.push((t.clone(), tkey, jkey, state));
        }
        // Earliest first, then higher priority.
        states.sort_by_key(|(t, _, _, s)| {
            (
                s.as_ref()
                    .and_then(|(s, _)| s.next_fire_ms)
                    .unwrap_or(i64::MAX),
                std::cmp::Reverse(t.priority),
            )
        });
        let mut earliest: Option<i64> = None;
        for (spec, tkey, jkey, state) in states {
            let Some(job) = snap.jobs.get(&jkey).cloned() else {
                continue;
            };
            let Some((state, version)) = state else {
                match initial_state(&spec, chrono_ms(snap.now)) {
                    Ok(init) => {
                        let ops = vec![Op::create(
                            paths.state(&tkey),
                            to_json(&init),
                            CreateMode::Persistent,
                        )];
                        if self.commit(ops).await? {
                            tracing::info!(trigger = %tkey, next_fire_ms = ?init.next_fire_ms, "trigger scheduled");
                        }
                        earliest = min_opt(earliest, Some(snap.now));
                    }
                    Err(e) => self.bad_trigger(&tkey, &e.to_string()),
                }
                continue;
            };
            if snap.paused.covers(&job, Some(&tkey)) {
                continue;
            }
            let Some(next) = state.next_fire_ms else {
                continue;
            };
            if next > snap.now {
                earliest = min_opt(earliest, Some(next));
                continue;
            }
            let due = match resolve_due(&spec, &state, chrono_ms(snap.now)) {
                Ok(d) => d,
                Err(e) => {
                    self.bad_trigger(&tkey, &e.to_string());
                    continue;
                }
            };
            if due.is_nothing(&state) {
                continue;
            }
            earliest = min_opt(earliest, due.state.next_fire_ms);
            self.apply_due(snap, &spec, &tkey, &jkey, &job, version, due)
                .await?;
        }
        let now = now_ms();
        Ok(match earliest {
            Some(t) if t > now => Duration::from_millis((t - now) as u64).min(MAX_SLEEP),
            Some(_) => Duration::ZERO,
            None => MAX_SLEEP,
        })
    }

    fn bad_trigger(&mut self, key: &JobKey, error: &str) {
        if self.bad.insert(key.to_string()) {
            tracing::warn!(trigger = %key, %error, "trigger cannot be scheduled");
        }
    }

    /// Writes one trigger's decision: state advance, misfire entries and
    /// every due fire — as one fenced multi when there is a single fire
    /// (the common case); several fires each get their own multi, the last
    /// one carrying the state advance.
    #[allow(clippy::too_many_arguments)]
    async fn apply_due(
        &mut self,
        snap: &mut Snapshot,
        spec: &TriggerSpec,
        tkey: &JobKey,
        jkey: &JobKey,
        job: &JobSpec,
        version: i32,
        due: crate::schedule::Due,
    ) -> Result<(), LeadError> {
        let paths = self.shared.store.paths().clone();
        self.ensure(&paths.history_dir(jkey)).await?;
        let mut pre = vec![Op::set_data(
            paths.state(tkey),
            to_json(&due.state),
            Some(version),
        )];
        let mut misfire_entries = Vec::new();
        for t in due.misfired.iter().take(MAX_MISFIRE_ENTRIES) {
            let ms = t.timestamp_millis();
            let entry = HistoryEntry {
                fire_id: fire_id(jkey, ms),
                job: jkey.clone(),
                trigger: Some(tkey.to_string()),
                part: format!("misfire-{}", spec.name),
                scheduled_ms: ms,
                kind: None,
                started_ms: None,
                ended_ms: None,
                worker: self.shared.id().to_string(),
                outcome: Outcome::Misfired,
                exit_code: None,
                output_tail: format!(
                    "missed by more than {} ms; policy {}",
                    spec.misfire_threshold_ms,
                    due.policy_applied.unwrap_or(spec.misfire).name()
                ),
                recovering: false,
                shard_items: Vec::new(),
            };
            pre.push(Op::create(
                paths.history_entry(jkey, &entry_name(ms, &entry.part)),
                to_json(&entry),
                CreateMode::Persistent,
            ));
            misfire_entries.push(entry);
        }
        if due.misfired.len() > MAX_MISFIRE_ENTRIES || due.misfired_truncated {
            tracing::warn!(trigger = %tkey, listed = due.misfired.len(), "more misfired times than recorded in history");
        }
        if due.fires.is_empty() {
            if self.commit(pre).await? {
                for e in &misfire_entries {
                    self.shared.listeners.misfired(Some(tkey), e).await;
                }
            }
            return Ok(());
        }
        let last = due.fires.len() - 1;
        let mut pre = Some(pre);
        for (i, fire) in due.fires.iter().enumerate() {
            let ms = fire.scheduled.timestamp_millis();
            // All but the last fire go alone; the last carries the state and misfires.
            let (ops, state_with) = if i == last {
                (pre.take().unwrap_or_default(), true)
            } else {
                (Vec::new(), false)
            };
            let committed = self
                .decide_fire(snap, job, Some((tkey, spec)), ms, fire.kind, ops)
                .await?;
            if state_with {
                if committed {
                    for e in &misfire_entries {
                        self.shared.listeners.misfired(Some(tkey), e).await;
                    }
                } else if snap.fires.contains(&fire_id(jkey, ms)) {
                    // Already fired (an earlier leader, or a lost reply): advance the state only.
                    let mut ops = vec![Op::set_data(
                        paths.state(tkey),
                        to_json(&due.state),
                        Some(version),
                    )];
                    ops.extend(misfire_entries.iter().map(|e| {
                        Op::create(
                            paths.history_entry(jkey, &entry_name(e.scheduled_ms, &e.part)),
                            to_json(e),
                            CreateMode::Persistent,
                        )
                    }));
                    self.commit(ops).await?;
                }
            }
        }
        Ok(())
    }

    /// Decides one fire of `job` at `ms`: applies the concurrency policy,
    /// splits shards, and commits `pre` + the fire's ops in one multi.
    /// Returns whether the multi went through. A fire whose name already
    /// exists is not created again (only `pre` is committed, by the caller).
    #[allow(clippy::too_many_arguments)]
    async fn decide_fire(
        &mut self,
        snap: &mut Snapshot,
        job: &JobSpec,
        trigger: Option<(&JobKey, &TriggerSpec)>,
        ms: i64,
        kind: FireKind,
        mut ops: Vec<Op>,
    ) -> Result<bool, LeadError> {
        let paths = self.shared.store.paths().clone();
        let Ok(jkey) = job.key() else {
            return Ok(false);
        };
        let fid = fire_id(&jkey, ms);
        if snap.fires.contains(&fid) {
            tracing::debug!(fire = %fid, "already fired");
            return Ok(false);
        }
        let tkey = trigger.map(|(k, _)| k);
        let active: Vec<TaskNode> = snap
            .tasks
            .iter()
            .filter(|t| t.task.job.key().ok().as_ref() == Some(&jkey) && !t.task.cancelled)
            .cloned()
            .collect();
        if !active.is_empty() {
            match job.concurrency {
                Concurrency::Allow => {}
                Concurrency::Forbid => {
                    let entry = HistoryEntry {
                        fire_id: fid.clone(),
                        job: jkey.clone(),
                        trigger: tkey.map(|k| k.to_string()),
                        part: format!(
                            "skip-{}",
                            tkey.map_or("manual".to_string(), |k| k.name.clone())
                        ),
                        scheduled_ms: ms,
                        kind: Some(kind),
                        started_ms: None,
                        ended_ms: None,
                        worker: self.shared.id().to_string(),
                        outcome: Outcome::Skipped,
                        exit_code: None,
                        output_tail: format!(
                            "concurrency forbid: {} still running",
                            active[0].task.fire_id
                        ),
                        recovering: false,
                        shard_items: Vec::new(),
                    };
                    self.ensure(&paths.history_dir(&jkey)).await?;
                    ops.push(Op::create(
                        paths.history_entry(&jkey, &entry_name(ms, &entry.part)),
                        to_json(&entry),
                        CreateMode::Persistent,
                    ));
                    let ok = self.commit(ops).await?;
                    if ok {
                        snap.fires.insert(fid);
                        self.shared.listeners.misfired(tkey, &entry).await;
                    }
                    return Ok(ok);
                }
                Concurrency::Replace => {
                    for t in &active {
                        let mut task = t.task.clone();
                        task.cancelled = true;
                        ops.push(Op::set_data(
                            paths.assign_task(&t.member, &t.name),
                            to_json(&task),
                            Some(t.version),
                        ));
                    }
                }
            }
        }
        let workers = Self::capable(snap, job, &self.responsive(snap));
        if workers.is_empty() {
            if let Handler::InProcess { name } = &job.handler {
                if self.bad.insert(format!("handler:{name}")) {
                    tracing::warn!(job = %jkey, handler = %name, "no live member has this in-process handler; the fire waits");
                }
            }
        }
        let items = job.shard_items();
        let (split, shard_op) = match &job.shards {
            Some(s) => {
                let prev = self
                    .shared
                    .store
                    .read::<Assignment>(&paths.shard(&jkey), "shard assignment")
                    .await
                    .ok()
                    .flatten();
                let split = shard::assign(
                    s.strategy,
                    &jkey.to_string(),
                    &items,
                    &workers,
                    prev.as_ref().map(|(a, _)| a).unwrap_or(&Assignment::new()),
                );
                let op = match prev {
                    Some((old, _)) if old == split => None,
                    Some((_, stat)) => Some(Op::set_data(
                        paths.shard(&jkey),
                        to_json(&split),
                        Some(stat.version),
                    )),
                    None => Some(Op::create(
                        paths.shard(&jkey),
                        to_json(&split),
                        CreateMode::Persistent,
                    )),
                };
                (split, op)
            }
            None => {
                let mut split = Assignment::new();
                if let Some(m) = self.pick(snap, &workers, ms) {
                    split.insert(m, items.clone());
                }
                (split, None)
            }
        };
        if split.is_empty() {
            tracing::debug!(fire = %fid, "no live worker to fire on; waiting");
            return Ok(false);
        }
        self.ensure(&paths.shards()).await?;
        let record = FireRecord {
            job: jkey.clone(),
            trigger: tkey.map(|k| k.to_string()),
            scheduled_ms: ms,
            decided_ms: snap.now,
            kind,
            shards: split.clone(),
            decided_by: self.shared.id().to_string(),
            term: self.term.token,
        };
        ops.push(Op::create(
            paths.fire(&fid),
            to_json(&record),
            CreateMode::Persistent,
        ));
        ops.extend(shard_op);
        let mut new_tasks = Vec::new();
        for (part, (member, items)) in split.iter().enumerate() {
            let task = Task {
                fire_id: fid.clone(),
                part: part as u32,
                job: job.clone(),
                trigger: tkey.map(|k| k.to_string()),
                scheduled_ms: ms,
                decided_ms: snap.now,
                kind,
                shard_items: items.clone(),
                shard_count: job.shard_items().len() as u32,
                recovering: false,
                cancelled: false,
                claimed_by: None,
            };
            let name = task_id(&fid, part as u32);
            ops.push(Op::create(
                paths.assign_task(member, &name),
                to_json(&task),
                CreateMode::Persistent,
            ));
            new_tasks.push(TaskNode {
                member: member.clone(),
                name,
                version: 0,
                task,
                running: false,
            });
        }
        let ok = self.commit(ops).await?;
        if ok {
            snap.fires.insert(fid);
            snap.tasks.extend(new_tasks);
            self.shared.listeners.fired(tkey, &record).await;
        } else if self
            .shared
            .client()
            .exists(&paths.fire(&fid))
            .await
            .map_err(StoreError::from)?
            .is_some()
        {
            snap.fires.insert(fid);
        }
        Ok(ok)
    }

    /// Trims history to the limit, drops fire nodes past retention whose
    /// tasks are all done, and removes departed members' empty task folders.
    async fn trim(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        let store = &self.shared.store;
        let paths = store.paths();
        for key in snap.jobs.keys() {
            let dir = paths.history_dir(key);
            let names = store.children(&dir).await?;
            for name in names_to_trim(names, self.shared.config.history_limit) {
                let _ = store.client().delete(&format!("{dir}/{name}"), None).await;
            }
        }
        let active: BTreeSet<&str> = snap.tasks.iter().map(|t| t.task.fire_id.as_str()).collect();
        let cutoff = snap.now - self.shared.config.fire_retention.as_millis() as i64;
        for fid in &snap.fires {
            let old = parse_fire_id(fid).is_none_or(|(_, ms)| ms < cutoff);
            if old && !active.contains(fid.as_str()) {
                let _ = store.client().delete(&paths.fire(fid), None).await;
            }
        }
        // Empty task folders of members that are gone (ids with a pid change
        // on every restart). A non-empty one is refused by the store.
        let live: BTreeSet<&String> = snap.members.iter().collect();
        let busy: BTreeSet<&String> = snap.tasks.iter().map(|t| &t.member).collect();
        for member in store.children(&paths.assign()).await? {
            if live.contains(&member) || busy.contains(&member) {
                continue;
            }
            let dir = paths.assign_dir(&member);
            if store.client().delete(&dir, None).await.is_ok() {
                tracing::debug!(%dir, "removed the task folder of a departed member");
            }
            self.ensured.remove(&dir);
        }
        Ok(())
    }
}

fn chrono_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(handlers: &[(&str, &[&str])]) -> Snapshot {
        Snapshot {
            now: 0,
            members: handlers.iter().map(|(m, _)| m.to_string()).collect(),
            handlers: handlers
                .iter()
                .map(|(m, h)| (m.to_string(), h.iter().map(|s| s.to_string()).collect()))
                .collect(),
            jobs: BTreeMap::new(),
            triggers: Vec::new(),
            paused: Paused::default(),
            tasks: Vec::new(),
            fires: BTreeSet::new(),
        }
    }

    #[test]
    fn in_process_jobs_go_only_where_their_handler_is() {
        let s = snap(&[("a", &["report"]), ("b", &[]), ("c", &["report", "x"])]);
        let all: Vec<String> = s.members.clone();
        let inproc = JobSpec::new(
            "j",
            Handler::InProcess {
                name: "report".into(),
            },
        );
        assert_eq!(Leader::capable(&s, &inproc, &all), vec!["a", "c"]);
        let cmd = JobSpec::new("j", Handler::command("true", &[]));
        assert_eq!(Leader::capable(&s, &cmd, &all), all);
        let missing = JobSpec::new(
            "j",
            Handler::InProcess {
                name: "nope".into(),
            },
        );
        assert!(Leader::capable(&s, &missing, &all).is_empty());
    }

    #[test]
    fn earliest_of_optional_times() {
        assert_eq!(min_opt(None, None), None);
        assert_eq!(min_opt(Some(3), None), Some(3));
        assert_eq!(min_opt(None, Some(2)), Some(2));
        assert_eq!(min_opt(Some(3), Some(2)), Some(2));
    }
}
