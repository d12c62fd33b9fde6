//! The job model: what a job is ([`JobSpec`]), how it is named ([`JobKey`])
//! and the runtime records the cluster keeps about it in the store
//! ([`FireRecord`], [`Task`], [`MemberInfo`], [`FireRequest`]). Trigger
//! definitions and their state are [`crate::schedule`]'s.
//!
//! Every value here is serde JSON as stored under `/warden/scheduler/<cluster>/`,
//! so a person can read it with `warden get`. Names become znode names and
//! parts of other names (`<group>.<name>@<ms>#<part>`), so [`validate_name`]
//! allows only `A-Z a-z 0-9 _ -`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::schedule::FireKind;

/// The longest job, group, trigger or member name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Why a definition was refused.
///
/// One error type for every model check so the CLI and the jobs-file loader
/// can show the person what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A name (job, group, trigger, member, shard item, in-process handler) is not usable.
    #[error("bad {what} name {name:?}: {why}")]
    BadName {
        what: &'static str,
        name: String,
        why: String,
    },
    /// A key is not `<group>.<name>`.
    #[error("bad key {key:?}: expected <group>.<name> (e.g. reports.nightly)")]
    BadKey { key: String },
    /// A field holds a value that cannot work.
    #[error("bad {field}: {why}")]
    BadField { field: &'static str, why: String },
}

/// Checks a name used as (part of) a znode name: 1..=200 characters of
/// `A-Z a-z 0-9 _ -`. `what` says which kind of name in the error.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), ModelError> {
    let bad = |why: String| ModelError::BadName {
        what,
        name: name.to_string(),
        why,
    };
    if name.is_empty() {
        return Err(bad("must not be empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(format!("longer than {MAX_NAME_LEN} characters")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(bad(format!(
            "character {c:?} is not allowed (use A-Z, a-z, 0-9, _ and -)"
        )));
    }
    Ok(())
}

/// A job's (or trigger's) identity: `<group>.<name>`, the name of its node.
///
/// A separate type so paths are built from a checked value, never from a raw
/// string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    pub group: String,
    pub name: String,
}

impl JobKey {
    /// A checked key.
    pub fn new(group: &str, name: &str) -> Result<JobKey, ModelError> {
        validate_name("group", group)?;
        validate_name("job", name)?;
        Ok(JobKey {
            group: group.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.group, self.name)
    }
}

impl FromStr for JobKey {
    type Err = ModelError;

    /// Parses `group.name`; a bare `name` means group `default`.
    fn from_str(s: &str) -> Result<JobKey, ModelError> {
        match s.split_once('.') {
            Some((g, n)) => JobKey::new(g, n).map_err(|e| match e {
                ModelError::BadName { .. } if g.is_empty() || n.is_empty() => {
                    ModelError::BadKey { key: s.to_string() }
                }
                other => other,
            }),
            None => JobKey::new(DEFAULT_GROUP, s),
        }
    }
}

impl Serialize for JobKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JobKey, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The group a job or trigger gets when none is named.
pub const DEFAULT_GROUP: &str = "default";

fn default_group() -> String {
    DEFAULT_GROUP.to_string()
}

/// A job definition (Quartz's `JobDetail`), stored at `C/jobs/<group>.<name>`.
///
/// Definition only: when it runs is a trigger's business, what happened is
/// in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    #[serde(default = "default_group")]
    pub group: String,
    #[serde(default)]
    pub description: String,
    pub handler: Handler,
    /// Passed to the handler (`WARDEN_DATA_<KEY>` for command jobs).
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub concurrency: Concurrency,
    /// Run again on a live worker if the worker running it dies.
    #[serde(default)]
    pub requests_recovery: bool,
    /// Quartz's durability: the job is meant to exist without a trigger
    /// (admin tools use it). The runtime never deletes a job by itself, not
    /// even a non-durable one whose triggers are complete: the finished
    /// trigger's state is what keeps a re-applied jobs file from firing a
    /// past one-shot again.
    #[serde(default)]
    pub durable: bool,
    /// Per-run time limit; the run is killed and recorded `timed-out`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub shards: Option<ShardSpec>,
    /// Defined paused: no trigger fires it until resumed.
    #[serde(default)]
    pub paused: bool,
}

impl JobSpec {
    /// A job in group `default` with the given handler and defaults elsewhere.
    pub fn new(name: &str, handler: Handler) -> JobSpec {
        JobSpec {
            name: name.to_string(),
            group: default_group(),
            description: String::new(),
            handler,
            data: BTreeMap::new(),
            concurrency: Concurrency::Allow,
            requests_recovery: false,
            durable: false,
            timeout_ms: None,
            shards: None,
            paused: false,
        }
    }

    /// The job's key.
    pub fn key(&self) -> Result<JobKey, ModelError> {
        JobKey::new(&self.group, &self.name)
    }

    /// Checks everything a run depends on; the store refuses invalid jobs.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.key()?;
        match &self.handler {
            Handler::Command { program, .. } if program.trim().is_empty() => {
                return Err(ModelError::BadField {
                    field: "handler.program",
                    why: "must not be empty".into(),
                })
            }
            Handler::InProcess { name } => validate_name("in-process handler", name)?,
            Handler::Command { .. } => {}
        }
        for key in self.data.keys() {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ModelError::BadField {
                    field: "data",
                    why: format!(
                        "key {key:?} must be non-empty A-Z, a-z, 0-9 or _ (it becomes WARDEN_DATA_<KEY>)"
                    ),
                });
            }
        }
        if self.timeout_ms == Some(0) {
            return Err(ModelError::BadField {
                field: "timeout_ms",
                why: "must be greater than zero (leave it out for no limit)".into(),
            });
        }
        if let Some(shards) = &self.shards {
            shards.validate()?;
        }
        Ok(())
    }

    /// The shard item names of one fire: the spec's names, or `0..count`
    /// as strings; a single unnamed item `"0"` for unsharded jobs.
    pub fn shard_items(&self) -> Vec<String> {
        match &self.shards {
            None => vec!["0".to_string()],
            Some(s) => s.item_names(),
        }
    }
}

/// What a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Handler {
    /// A program with arguments (the built-in command job).
    Command {
        program: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        working_dir: Option<String>,
    },
    /// A Rust [`Job`](crate::executor::Job) registered by name in the
    /// member's [`Registry`](crate::executor::Registry).
    InProcess { name: String },
}

impl Handler {
    /// A command handler with no env and the member's working directory.
    pub fn command(program: &str, args: &[&str]) -> Handler {
        Handler::Command {
            program: program.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            working_dir: None,
        }
    }
}

/// What happens when a fire is due while the job's previous fire still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Concurrency {
    /// Run both.
    #[default]
    Allow,
    /// Skip the new fire (history entry `skipped`).
    Forbid,
    /// Cancel the running fire, then run the new one.
    Replace,
}

impl FromStr for Concurrency {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s {
            "allow" => Ok(Concurrency::Allow),
            "forbid" => Ok(Concurrency::Forbid),
            "replace" => Ok(Concurrency::Replace),
            _ => Err(ModelError::BadField {
                field: "concurrency",
                why: format!("{s:?} is not one of allow, forbid, replace"),
            }),
        }
    }
}

/// How a sharded job's items are split over the live workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub count: u32,
    /// Optional item names (`count` of them); default `0..count`.
    #[serde(default)]
    pub names: Option<Vec<String>>,
    #[serde(default)]
    pub strategy: ShardStrategy,
}

/// The most shard items a job may have.
pub const MAX_SHARDS: u32 = 10_000;

impl ShardSpec {
    /// Checks count and names.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.count == 0 || self.count > MAX_SHARDS {
            return Err(ModelError::BadField {
                field: "shards.count",
                why: format!("must be 1..={MAX_SHARDS}, not {}", self.count),
            });
        }
        if let Some(names) = &self.names {
            if names.len() != self.count as usize {
                return Err(ModelError::BadField {
                    field: "shards.names",
                    why: format!("{} names for {} items", names.len(), self.count),
                });
            }
            let mut seen = std::collections::BTreeSet::new();
            for n in names {
                validate_name("shard item", n)?;
                if !seen.insert(n) {
                    return Err(ModelError::BadField {
                        field: "shards.names",
                        why: format!("{n:?} appears twice"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The item names, in order.
    pub fn item_names(&self) -> Vec<String> {
        match &self.names {
            Some(n) => n.clone(),
            None => (0..self.count).map(|i| i.to_string()).collect(),
        }
    }
}

/// The named strategies of [`crate::shard`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShardStrategy {
    /// Even split over members in id order (10 on 3 → 4/3/3).
    #[default]
    Average,
    /// Even split, starting at a member chosen by the job's name, so
    /// different jobs put their larger shares on different members.
    RoundRobin,
    /// Each item goes to the member with the highest hash(item, member):
    /// only the items of a leaving member move, new members take only
    /// items that hash to them.
    Hash,
}

impl FromStr for ShardStrategy {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, ModelError> {
        match s {
            "average" => Ok(ShardStrategy::Average),
            "round-robin" => Ok(ShardStrategy::RoundRobin),
            "hash" => Ok(ShardStrategy::Hash),
            _ => Err(ModelError::BadField {
                field: "shards.strategy",
                why: format!("{s:?} is not one of average, round-robin, hash"),
            }),
        }
    }
}

/// One fire of a job at `C/fires/<job-key>@<scheduled_ms>`. Its name is
/// deterministic, so a second create for the same job and time fails with
/// `NodeExists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireRecord {
    pub job: JobKey,
    /// The trigger key, or `None` for manual fires.
    pub trigger: Option<String>,
    pub scheduled_ms: i64,
    pub decided_ms: i64,
    pub kind: FireKind,
    /// member → shard items (unsharded: one member → `["0"]`).
    pub shards: BTreeMap<String, Vec<String>>,
    /// The leader that decided it, and its term's fencing token.
    #[serde(default)]
    pub decided_by: String,
    #[serde(default)]
    pub term: i64,
}

/// A unit of work for one worker at `C/assign/<member>/<fire-id>#<part>`:
/// a fire, or one member's share of a sharded fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub fire_id: String,
    pub part: u32,
    pub job: JobSpec,
    pub trigger: Option<String>,
    pub scheduled_ms: i64,
    pub decided_ms: i64,
    pub kind: FireKind,
    pub shard_items: Vec<String>,
    pub shard_count: u32,
    /// A re-run after the worker running it was lost.
    #[serde(default)]
    pub recovering: bool,
    /// Set by the leader (replace policy, job removed): stop the run.
    #[serde(default)]
    pub cancelled: bool,
    /// Session (hex) of the worker that claimed it; `None` until claimed.
    /// Claimed with no `running` node = the worker was lost mid-run.
    #[serde(default)]
    pub claimed_by: Option<String>,
}

impl Task {
    /// `<fire-id>#<part>`: the name of its assign, running node.
    pub fn task_id(&self) -> String {
        task_id(&self.fire_id, self.part)
    }
}

/// `<fire-id>#<part>`.
pub fn task_id(fire_id: &str, part: u32) -> String {
    format!("{fire_id}#{part}")
}

/// `<job-key>@<scheduled_ms>`: the deterministic fire name.
pub fn fire_id(job: &JobKey, scheduled_ms: i64) -> String {
    format!("{job}@{scheduled_ms}")
}

/// Splits a fire id back into job key and time.
pub fn parse_fire_id(id: &str) -> Option<(JobKey, i64)> {
    let (key, ms) = id.rsplit_once('@')?;
    Some((key.parse().ok()?, ms.parse().ok()?))
}

/// A live member at `C/members/<id>` (ephemeral).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started_at_ms: i64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The in-process handlers registered on it: jobs with an in-process
    /// handler are assigned only to members that have it.
    #[serde(default)]
    pub handlers: Vec<String>,
}

/// A request to fire a job now, at `C/requests/req-<seq>`; the leader
/// consumes it (deletes it in the fire's multi).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FireRequest {
    pub job: JobKey,
    pub requested_ms: i64,
    /// Extra job data for this fire only (merged over the job's data).
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("job", "nightly-report_2").is_ok());
        for bad in ["", "a.b", "a/b", "a@b", "a#b", "a b", "é"] {
            assert!(validate_name("job", bad).is_err(), "{bad:?}");
        }
        assert!(validate_name("job", &"x".repeat(201)).is_err());
    }

    #[test]
    fn keys_parse_and_print() {
        let k: JobKey = "reports.nightly".parse().unwrap();
        assert_eq!(k.group, "reports");
        assert_eq!(k.to_string(), "reports.nightly");
        let bare: JobKey = "cleanup".parse().unwrap();
        assert_eq!(bare.to_string(), "default.cleanup");
        assert!(matches!(
            ".x".parse::<JobKey>(),
            Err(ModelError::BadKey { .. })
        ));
        assert!("a.b.c".parse::<JobKey>().is_err());
        let fid = fire_id(&k, 1_700_000_000_000);
        assert_eq!(fid, "reports.nightly@1700000000000");
        assert_eq!(parse_fire_id(&fid), Some((k, 1_700_000_000_000)));
    }

    #[test]
    fn job_validation_names_the_field() {
        let mut job = JobSpec::new("j", Handler::command("/bin/true", &[]));
        assert!(job.validate().is_ok());
        job.data.insert("bad-key".into(), "v".into());
        assert!(matches!(
            job.validate(),
            Err(ModelError::BadField { field: "data", .. })
        ));
        job.data.clear();
        job.shards = Some(ShardSpec {
            count: 3,
            names: Some(vec!["a".into(), "b".into()]),
            strategy: ShardStrategy::Average,
        });
        assert!(job.validate().is_err());
        job.shards = Some(ShardSpec {
            count: 2,
            names: Some(vec!["a".into(), "a".into()]),
            strategy: ShardStrategy::Average,
        });
        assert!(job.validate().is_err());
        job.shards = Some(ShardSpec {
            count: 0,
            names: None,
            strategy: ShardStrategy::Hash,
        });
        assert!(job.validate().is_err());
        job.shards = None;
        job.timeout_ms = Some(0);
        assert!(job.validate().is_err());
        job.timeout_ms = None;
        job.handler = Handler::command(" ", &[]);
        assert!(job.validate().is_err());
    }

    #[test]
    fn job_json_round_trips_with_defaults() {
        let json = r#"{"name":"n","handler":{"type":"command","program":"echo"}}"#;
        let job: JobSpec = serde_json::from_str(json).unwrap();
        assert_eq!(job.group, "default");
        assert_eq!(job.concurrency, Concurrency::Allow);
        assert_eq!(job.shard_items(), vec!["0".to_string()]);
        let back: JobSpec = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }
}
