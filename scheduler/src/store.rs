//! The one place that knows the layout under `/warden/scheduler/<cluster>/`
//! (C below) and reads and writes its typed JSON values.
//!
//! ```text
//! C/members/<member-id>            EPHEMERAL  MemberInfo — the live workers
//! C/leader/...                     LeaderLatch election (fencing term)
//! C/jobs/<group>.<name>            JobSpec
//! C/triggers/<group>.<name>        TriggerSpec (schedule; names the job it fires)
//! C/state/<trigger-key>            schedule::TriggerState — leader only, CAS in the fire multi
//! C/paused/<marker>                pause markers: all | group:<g> | job:<key> | trigger:<key>
//! C/requests/req-<seq>             FireRequest ("trigger now"), consumed by the leader
//! C/fires/<job-key>@<ms>           FireRecord — deterministic name: one fire per (job, time)
//! C/shards/<job-key>               the last shard assignment (member → items), for stickiness
//! C/assign/<member>/<fire>#<part>  Task — work for one worker
//! C/running/<fire>#<part>          EPHEMERAL (worker's session) — the claim
//! C/history/<job-key>/<ms>#<part>  HistoryEntry — last N per job
//! ```
//!
//! Pause markers are separate nodes (not flags inside the specs) so that
//! pausing never races with the leader's CAS on trigger state, and so "pause
//! a group" also covers jobs added to the group later. A job defined with
//! `paused: true` is paused as well; `resume_job` clears both.
//!
//! The admin API (`warden-scheduler job ...`) and the runtime both go
//! through [`Store`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use warden_client::{Client, CreateMode, Error as ClientError, ErrorCode, MultiError, Op, Stat};

use crate::history::HistoryEntry;
use crate::model::{
    validate_name, FireRecord, FireRequest, JobKey, JobSpec, MemberInfo, ModelError, Task,
};
use crate::schedule::{ScheduleError, TriggerSpec, TriggerState};

/// The root of every cluster's folder.
pub const BASE: &str = "/warden/scheduler";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The coordination service refused or could not answer.
    #[error("store: {0}")]
    Client(#[from] ClientError),
    /// An atomic multi-op write failed (e.g. a version check lost a race).
    #[error("store: {0}")]
    Multi(#[from] MultiError),
    /// A stored value is not the JSON it should be.
    #[error("store: {path} does not hold a valid {what}: {error}")]
    Decode {
        path: String,
        what: &'static str,
        error: String,
    },
    /// A definition was refused.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A trigger definition was refused.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The named job, trigger, ... does not exist.
    #[error("{what} {name} does not exist")]
    NotFound { what: &'static str, name: String },
}

impl StoreError {
    /// The coordination error code, if this is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            StoreError::Client(e) => Some(e.code()),
            StoreError::Multi(e) => Some(e.code()),
            _ => None,
        }
    }
}

/// What an upsert did (`put_job`, `put_trigger`): a restarted member that
/// upserts the same jobs file sees `Unchanged` everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Updated,
    Unchanged,
}

/// What a pause marker covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PauseTarget {
    /// Every trigger of the cluster.
    All,
    /// Every job of a group.
    Group(String),
    /// One job (all its triggers).
    Job(JobKey),
    /// One trigger.
    Trigger(JobKey),
}

impl PauseTarget {
    /// The marker node's name.
    pub fn marker(&self) -> String {
        match self {
            PauseTarget::All => "all".to_string(),
            PauseTarget::Group(g) => format!("group:{g}"),
            PauseTarget::Job(k) => format!("job:{k}"),
            PauseTarget::Trigger(k) => format!("trigger:{k}"),
        }
    }

    /// The target of a marker name; `None` for names this version does not know.
    pub fn from_marker(name: &str) -> Option<PauseTarget> {
        if name == "all" {
            return Some(PauseTarget::All);
        }
        let (kind, rest) = name.split_once(':')?;
        match kind {
            "group" => validate_name("group", rest)
                .ok()
                .map(|()| PauseTarget::Group(rest.to_string())),
            "job" => rest.parse().ok().map(PauseTarget::Job),
            "trigger" => rest.parse().ok().map(PauseTarget::Trigger),
            _ => None,
        }
    }
}

impl fmt::Display for PauseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.marker())
    }
}

/// The set of pause markers, with the question the leader asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paused(pub BTreeSet<PauseTarget>);

impl Paused {
    /// Whether `trigger` (firing `job`) is paused by any marker or by the
    /// job's own `paused` flag.
    pub fn covers(&self, job: &JobSpec, trigger: Option<&JobKey>) -> bool {
        let key = match job.key() {
            Ok(k) => k,
            Err(_) => return true,
        };
        job.paused
            || self.0.contains(&PauseTarget::All)
            || self.0.contains(&PauseTarget::Group(job.group.clone()))
            || self.0.contains(&PauseTarget::Job(key))
            || trigger.is_some_and(|t| self.0.contains(&PauseTarget::Trigger(t.clone())))
    }
}

/// Path building for one cluster: every path of the layout comes from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: String,
}

impl Paths {
    /// The paths of cluster `cluster` (a checked name).
    pub fn new(cluster: &str) -> Result<Paths, ModelError> {
        validate_name("cluster", cluster)?;
        Ok(Paths {
            root: format!("{BASE}/{cluster}"),
        })
    }

    pub fn root(&self) -> &str {
        &self.root
    }
    fn sub(&self, dir: &str) -> String {
        format!("{}/{dir}", self.root)
    }
    pub fn members(&self) -> String {
        self.sub("members")
    }
    pub fn member(&self, id: &str) -> String {
        format!("{}/{id}", self.members())
    }
    pub fn leader(&self) -> String {
        self.sub("leader")
    }
    pub fn jobs(&self) -> String {
        self.sub("jobs")
    }
    pub fn job(&self, key: &JobKey) -> String {
        format!("{}/{key}", self.jobs())
    }
    pub fn triggers(&self) -> String {
        self.sub("triggers")
    }
    pub fn trigger(&self, key: &JobKey) -> String {
        format!("{}/{key}", self.triggers())
    }
    pub fn states(&self) -> String {
        self.sub("state")
    }
    pub fn state(&self, trigger: &JobKey) -> String {
        format!("{}/{trigger}", self.states())
    }
    pub fn paused(&self) -> String {
        self.sub("paused")
    }
    pub fn pause(&self, target: &PauseTarget) -> String {
        format!("{}/{}", self.paused(), target.marker())
    }
    pub fn requests(&self) -> String {
        self.sub("requests")
    }
    pub fn fires(&self) -> String {
        self.sub("fires")
    }
    pub fn fire(&self, fire_id: &str) -> String {
        format!("{}/{fire_id}", self.fires())
    }
    pub fn shards(&self) -> String {
        self.sub("shards")
    }
    pub fn shard(&self, job: &JobKey) -> String {
        format!("{}/{job}", self.shards())
    }
    pub fn assign(&self) -> String {
        self.sub("assign")
    }
    pub fn assign_dir(&self, member: &str) -> String {
        format!("{}/{member}", self.assign())
    }
    pub fn assign_task(&self, member: &str, task_id: &str) -> String {
        format!("{}/{task_id}", self.assign_dir(member))
    }
    pub fn running(&self) -> String {
        self.sub("running")
    }
    pub fn running_task(&self, task_id: &str) -> String {
        format!("{}/{task_id}", self.running())
    }
    pub fn history(&self) -> String {
        self.sub("history")
    }
    pub fn history_dir(&self, job: &JobKey) -> String {
        format!("{}/{job}", self.history())
    }
    pub fn history_entry(&self, job: &JobKey, name: &str) -> String {
        format!("{}/{name}", self.history_dir(job))
    }

    /// The fixed folders, created by [`Store::init`].
    pub fn folders(&self) -> Vec<String> {
        vec![
            self.members(),
            self.leader(),
            self.jobs(),
            self.triggers(),
            self.states(),
            self.paused(),
            self.requests(),
            self.fires(),
            self.shards(),
            self.assign(),
            self.running(),
            self.history(),
        ]
    }
}

/// JSON bytes of a value (the store's encoding).
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("scheduler values always serialize")
}

fn decode<T: DeserializeOwned>(
    path: &str,
    what: &'static str,
    data: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(data).map_err(|e| StoreError::Decode {
        path: path.to_string(),
        what,
        error: e.to_string(),
    })
}

/// A trigger's key (`<group>.<name>`) as a checked [`JobKey`]-shaped value.
pub fn trigger_key(t: &TriggerSpec) -> Result<JobKey, ModelError> {
    JobKey::new(&t.group, &t.name)
}

/// The key of the job a trigger fires.
pub fn job_of(t: &TriggerSpec) -> Result<JobKey, ModelError> {
    match t.job.split_once('.') {
        Some((g, n)) => JobKey::new(g, n),
        None => Err(ModelError::BadKey { key: t.job.clone() }),
    }
}

fn is(code: ErrorCode) -> impl Fn(&ClientError) -> bool {
    move |e| e.code() == code
}

/// Typed access to one cluster's folder.
///
/// Cheap to clone (a [`Client`] handle and the paths).
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    paths: Paths,
}

impl Store {
    /// The store of cluster `cluster` through `client`.
    pub fn new(client: &Client, cluster: &str) -> Result<Store, StoreError> {
        Ok(Store {
            client: client.clone(),
            paths: Paths::new(cluster)?,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Creates the cluster's folders (persistent nodes) if missing.
    pub async fn init(&self) -> Result<(), StoreError> {
        for dir in self.paths.folders() {
            self.ensure(&dir).await?;
        }
        Ok(())
    }

    /// Creates `path` and its missing ancestors as persistent nodes.
    pub async fn ensure(&self, path: &str) -> Result<(), StoreError> {
        if self.client.exists(path).await?.is_some() {
            return Ok(());
        }
        let mut at = String::new();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            at.push('/');
            at.push_str(segment);
            match self
                .client
                .create(&at, Vec::new(), CreateMode::Persistent)
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == ErrorCode::NodeExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads and decodes a node; `None` if it does not exist.
    pub async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &'static str,
    ) -> Result<Option<(T, Stat)>, StoreError> {
        match self.client.get_data(path).await {
            Ok((data, stat)) => Ok(Some((decode(path, what, &data)?, stat))),
            Err(e) if e.code() == ErrorCode::NoNode => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The children of a folder, sorted; empty if it does not exist.
    pub async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        match self.client.get_children(path).await {
            Ok(mut c) => {
                c.sort();
                Ok(c)
            }
            Err(e) if e.code() == ErrorCode::NoNode => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates or overwrites a node with a JSON value (`Unchanged` when the
    /// stored value is equal).
    async fn upsert<T: Serialize + DeserializeOwned + PartialEq>(
        &self,
        path: &str,
        what: &'static str,
        value: &T,
    ) -> Result<PutOutcome, StoreError> {
        loop {
            match self.read::<serde_json::Value>(path, what).await {
                Ok(Some((old, stat))) => {
                    if serde_json::from_value::<T>(old).ok().as_ref() == Some(value) {
                        return Ok(PutOutcome::Unchanged);
                    }
                    match self
                        .client
                        .set_data(path, to_json(value), Some(stat.version))
                        .await
                    {
                        Ok(_) => return Ok(PutOutcome::Updated),
                        Err(e) if is(ErrorCode::BadVersion)(&e) || is(ErrorCode::NoNode)(&e) => {
                            continue
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                // Unreadable JSON is overwritten by a valid definition.
                Ok(None) | Err(StoreError::Decode { .. }) => {
                    if let Some(parent) = path.rsplit_once('/').map(|(p, _)| p) {
                        self.ensure(parent).await?;
                    }
                    match self
                        .client
                        .create(path, to_json(value), CreateMode::Persistent)
                        .await
                    {
                        Ok(_) => return Ok(PutOutcome::Created),
                        Err(e) if is(ErrorCode::NodeExists)(&e) => {
                            if self.client.exists(path).await?.is_some()
                                && self.read::<serde_json::Value>(path, what).await.is_err()
                            {
                                self.client.set_data(path, to_json(value), None).await?;
                                return Ok(PutOutcome::Updated);
                            }
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes a node and everything below it; false if it was not there.
    pub async fn delete_tree(&self, path: &str) -> Result<bool, StoreError> {
        let children = match self.client.get_children(path).await {
            Ok(c) => c,
            Err(e) if e.code() == ErrorCode::NoNode => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        for c in children {
            Box::pin(self.delete_tree(&format!("{path}/{c}"))).await?;
        }
        match self.client.delete(path, None).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == ErrorCode::NoNode => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    // ----- jobs -----------------------------------------------------------

    /// Validates and upserts a job definition.
    pub async fn put_job(&self, job: &JobSpec) -> Result<PutOutcome, StoreError> {
        job.validate()?;
        let key = job.key()?;
        let out = self.upsert(&self.paths.job(&key), "job", job).await?;
        self.ensure(&self.paths.history_dir(&key)).await?;
        Ok(out)
    }

    /// A job definition, if it exists.
    pub async fn get_job(&self, key: &JobKey) -> Result<Option<JobSpec>, StoreError> {
        Ok(self
            .read(&self.paths.job(key), "job")
            .await?
            .map(|(job, _)| job))
    }

    /// Every job, by key. Unreadable nodes are skipped with a warning.
    pub async fn list_jobs(&self) -> Result<Vec<JobSpec>, StoreError> {
        let mut out = Vec::new();
        for name in self.children(&self.paths.jobs()).await? {
            let path = format!("{}/{name}", self.paths.jobs());
            match self.read::<JobSpec>(&path, "job").await {
                Ok(Some((job, _))) => out.push(job),
                Ok(None) => {}
                Err(e) => tracing::warn!(%path, error = %e, "skipping an unreadable job"),
            }
        }
        Ok(out)
    }

    /// Deletes a job, its triggers (and their state), its pause marker, its
    /// shard assignment and its history. Runs in progress are cancelled by
    /// the leader (it cancels tasks whose job is gone). False if it did not exist.
    pub async fn delete_job(&self, key: &JobKey) -> Result<bool, StoreError> {
        for t in self.list_triggers().await? {
            if job_of(&t)? == *key {
                self.delete_trigger(&trigger_key(&t)?).await?;
            }
        }
        let existed = self.delete_tree(&self.paths.job(key)).await?;
        self.delete_tree(&self.paths.pause(&PauseTarget::Job(key.clone())))
            .await?;
        self.delete_tree(&self.paths.shard(key)).await?;
        self.delete_tree(&self.paths.history_dir(key)).await?;
        Ok(existed)
    }

    // ----- triggers ---------------------------------------------------------

    /// Validates and upserts a trigger. Its job must exist. A changed
    /// schedule (kind, start, end, calendar) resets the trigger's state, so
    /// the leader computes the first fire of the new schedule; other changes
    /// (priority, misfire policy, description) keep it. An equal trigger is
    /// left alone, so a finished one-shot re-applied from a jobs file does
    /// not fire again.
    pub async fn put_trigger(&self, trigger: &TriggerSpec) -> Result<PutOutcome, StoreError> {
        trigger.validate()?;
        let key = trigger_key(trigger)?;
        let job = job_of(trigger)?;
        if self.get_job(&job).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "job",
                name: job.to_string(),
            });
        }
        let old = self.get_trigger(&key).await.ok().flatten();
        let out = self
            .upsert(&self.paths.trigger(&key), "trigger", trigger)
            .await?;
        let rescheduled = old.is_none_or(|o| {
            o.kind != trigger.kind
                || o.start != trigger.start
                || o.end != trigger.end
                || o.calendar != trigger.calendar
        });
        if out == PutOutcome::Updated && rescheduled {
            self.delete_tree(&self.paths.state(&key)).await?;
        }
        Ok(out)
    }

    /// A trigger, if it exists.
    pub async fn get_trigger(&self, key: &JobKey) -> Result<Option<TriggerSpec>, StoreError> {
        Ok(self
            .read(&self.paths.trigger(key), "trigger")
            .await?
            .map(|(t, _)| t))
    }

    /// Every trigger. Unreadable nodes are skipped with a warning.
    pub async fn list_triggers(&self) -> Result<Vec<TriggerSpec>, StoreError> {
        let mut out = Vec::new();
        for name in self.children(&self.paths.triggers()).await? {
            let path = format!("{}/{name}", self.paths.triggers());
            match self.read::<TriggerSpec>(&path, "trigger").await {
                Ok(Some((t, _))) => out.push(t),
                Ok(None) => {}
                Err(e) => tracing::warn!(%path, error = %e, "skipping an unreadable trigger"),
            }
        }
        Ok(out)
    }

    /// The triggers that fire `job`.
    pub async fn triggers_of(&self, job: &JobKey) -> Result<Vec<TriggerSpec>, StoreError> {
        Ok(self
            .list_triggers()
            .await?
            .into_iter()
            .filter(|t| job_of(t).ok().as_ref() == Some(job))
            .collect())
    }

    /// Unschedules: deletes a trigger, its state and its pause marker.
    pub async fn delete_trigger(&self, key: &JobKey) -> Result<bool, StoreError> {
        let existed = self.delete_tree(&self.paths.trigger(key)).await?;
        self.delete_tree(&self.paths.state(key)).await?;
        self.delete_tree(&self.paths.pause(&PauseTarget::Trigger(key.clone())))
            .await?;
        Ok(existed)
    }

    /// A trigger's runtime state and its stat (for the version check).
    pub async fn get_state(
        &self,
        trigger: &JobKey,
    ) -> Result<Option<(TriggerState, Stat)>, StoreError> {
        self.read(&self.paths.state(trigger), "trigger state").await
    }

    // ----- pause / resume ---------------------------------------------------

    /// Sets a pause marker (idempotent). The target must exist (except `All`).
    pub async fn pause(&self, target: &PauseTarget) -> Result<(), StoreError> {
        self.check_target(target).await?;
        let path = self.paths.pause(target);
        self.ensure(&self.paths.paused()).await?;
        match self
            .client
            .create(&path, Vec::new(), CreateMode::Persistent)
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::NodeExists => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Removes a pause marker (idempotent); for a job also clears its
    /// `paused` flag. Fires missed while paused are handled by the misfire
    /// policy when due again.
    pub async fn resume(&self, target: &PauseTarget) -> Result<(), StoreError> {
        self.check_target(target).await?;
        self.delete_tree(&self.paths.pause(target)).await?;
        if let PauseTarget::Job(key) = target {
            if let Some(mut job) = self.get_job(key).await? {
                if job.paused {
                    job.paused = false;
                    self.put_job(&job).await?;
                }
            }
        }
        Ok(())
    }

    async fn check_target(&self, target: &PauseTarget) -> Result<(), StoreError> {
        let missing = match target {
            PauseTarget::All | PauseTarget::Group(_) => None,
            PauseTarget::Job(k) => self
                .get_job(k)
                .await?
                .is_none()
                .then(|| ("job", k.to_string())),
            PauseTarget::Trigger(k) => self
                .get_trigger(k)
                .await?
                .is_none()
                .then(|| ("trigger", k.to_string())),
        };
        match missing {
            Some((what, name)) => Err(StoreError::NotFound { what, name }),
            None => Ok(()),
        }
    }

    /// The pause markers in force.
    pub async fn paused(&self) -> Result<Paused, StoreError> {
        Ok(Paused(
            self.children(&self.paths.paused())
                .await?
                .iter()
                .filter_map(|n| PauseTarget::from_marker(n))
                .collect(),
        ))
    }

    // ----- manual fire --------------------------------------------------------

    /// Asks the leader to fire `job` now (with extra data for this fire).
    /// Returns the request's path; the leader deletes it when it fires.
    pub async fn trigger_now(
        &self,
        job: &JobKey,
        data: BTreeMap<String, String>,
    ) -> Result<String, StoreError> {
        if self.get_job(job).await?.is_none() {
            return Err(StoreError::NotFound {
                what: "job",
                name: job.to_string(),
            });
        }
        let req = FireRequest {
            job: job.clone(),
            requested_ms: crate::model::now_ms(),
            data,
        };
        self.ensure(&self.paths.requests()).await?;
        Ok(self
            .client
            .create(
                &format!("{}/req-", self.paths.requests()),
                to_json(&req),
                CreateMode::PersistentSequential,
            )
            .await?)
    }

    // ----- history, members, fires ---------------------------------------------

    /// The newest `n` history entries of a job, newest first.
    pub async fn history(&self, job: &JobKey, n: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let dir = self.paths.history_dir(job);
        let names = self.children(&dir).await?;
        let mut out = Vec::new();
        for name in names.iter().rev().take(n) {
            let path = format!("{dir}/{name}");
            if let Some((e, _)) = self.read::<HistoryEntry>(&path, "history entry").await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The live members.
    pub async fn members(&self) -> Result<Vec<MemberInfo>, StoreError> {
        let mut out = Vec::new();
        for id in self.children(&self.paths.members()).await? {
            if let Some((m, _)) = self
                .read::<MemberInfo>(&self.paths.member(&id), "member")
                .await?
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// A fire record, if it is still kept.
    pub async fn get_fire(&self, fire_id: &str) -> Result<Option<FireRecord>, StoreError> {
        Ok(self
            .read(&self.paths.fire(fire_id), "fire")
            .await?
            .map(|(f, _)| f))
    }

    /// Every task assigned and not yet completed: (member, task, running?).
    pub async fn tasks(&self) -> Result<Vec<(String, Task, bool)>, StoreError> {
        let running: BTreeSet<String> = self
            .children(&self.paths.running())
            .await?
            .into_iter()
            .collect();
        let mut out = Vec::new();
        for member in self.children(&self.paths.assign()).await? {
            let dir = self.paths.assign_dir(&member);
            for name in self.children(&dir).await? {
                if let Some((t, _)) = self.read::<Task>(&format!("{dir}/{name}"), "task").await? {
                    let is_running = running.contains(&name);
                    out.push((member.clone(), t, is_running));
                }
            }
        }
        Ok(out)
    }

    /// A multi that maps "the fencing check failed" to a clear outcome: the
    /// caller sees the `MultiError` with the index of the failed op.
    pub async fn multi(&self, ops: Vec<Op>) -> Result<(), MultiError> {
        self.client.multi(ops).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_layout() {
        let p = Paths::new("prod").unwrap();
        let k: JobKey = "reports.nightly".parse().unwrap();
        assert_eq!(p.root(), "/warden/scheduler/prod");
        assert_eq!(p.job(&k), "/warden/scheduler/prod/jobs/reports.nightly");
        assert_eq!(
            p.assign_task("m1", "reports.nightly@5#0"),
            "/warden/scheduler/prod/assign/m1/reports.nightly@5#0"
        );
        assert_eq!(
            p.running_task("x@1#2"),
            "/warden/scheduler/prod/running/x@1#2"
        );
        assert_eq!(
            p.history_entry(&k, "0000000000005#0"),
            "/warden/scheduler/prod/history/reports.nightly/0000000000005#0"
        );
        assert_eq!(
            p.pause(&PauseTarget::Group("reports".into())),
            "/warden/scheduler/prod/paused/group:reports"
        );
        for f in p.folders() {
            assert!(warden_client::path::validate_path(&f).is_ok(), "{f}");
        }
        assert!(Paths::new("a/b").is_err());
        assert!(Paths::new("").is_err());
    }

    #[test]
    fn pause_markers_round_trip_and_cover() {
        let k: JobKey = "g.j".parse().unwrap();
        for t in [
            PauseTarget::All,
            PauseTarget::Group("g".into()),
            PauseTarget::Job(k.clone()),
            PauseTarget::Trigger(k.clone()),
        ] {
            assert_eq!(PauseTarget::from_marker(&t.marker()), Some(t));
        }
        assert_eq!(PauseTarget::from_marker("nonsense"), None);
        let job = {
            let mut j = JobSpec::new("j", crate::model::Handler::command("true", &[]));
            j.group = "g".into();
            j
        };
        let mut paused = Paused::default();
        assert!(!paused.covers(&job, None));
        paused
            .0
            .insert(PauseTarget::Trigger("g.t".parse().unwrap()));
        assert!(!paused.covers(&job, Some(&k)));
        assert!(paused.covers(&job, Some(&"g.t".parse().unwrap())));
        paused.0.insert(PauseTarget::Group("g".into()));
        assert!(paused.covers(&job, None));
    }
}
