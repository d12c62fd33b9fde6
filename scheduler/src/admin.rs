//! Job management between the CLI / jobs file and [`Store`]: one input
//! shape for a job and its triggers ([`JobInput`], [`TriggerInput`]) that
//! both `warden-scheduler job add` and `[[job]]` tables of a jobs file fill
//! in, its conversion into checked [`JobSpec`]s and [`TriggerSpec`]s with
//! errors that name the field, the upsert of definitions ([`apply`]) that
//! leaves equal nodes untouched, and the read views the CLI prints
//! ([`JobView`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::history::HistoryEntry;
use crate::model::{Concurrency, Handler, JobKey, JobSpec, ShardSpec, ShardStrategy, Task};
use crate::schedule::{
    parse_at, parse_every, Calendar, MisfirePolicy, TriggerKind, TriggerSpec, TriggerState,
    DEFAULT_MISFIRE_THRESHOLD_MS, DEFAULT_PRIORITY,
};
use crate::store::{job_of, trigger_key, PutOutcome, Store, StoreError};

/// A definition field that cannot be used, named as in the jobs file
/// (`misfire_threshold`, `trigger[1].cron`); the CLI maps it to its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {why}")]
pub struct FieldError {
    pub field: String,
    pub why: String,
}

fn field_err(field: impl Into<String>, why: impl ToString) -> FieldError {
    FieldError {
        field: field.into(),
        why: why.to_string(),
    }
}

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store refused or could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A definition is not usable.
    #[error("job {job}: {error}")]
    Definition { job: String, error: FieldError },
    /// Two definitions claim the same job or trigger key.
    #[error("{what} {key} is defined twice")]
    Duplicate { what: &'static str, key: String },
}

/// One trigger as a person writes it: exactly one of `cron`, `every`, `at`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerInput {
    /// Default: the job's name (for the first trigger), `<job>-<n>` after.
    pub name: Option<String>,
    /// Default: the job's group.
    pub group: Option<String>,
    /// Quartz cron expression (with seconds).
    pub cron: Option<String>,
    /// IANA zone for `cron`, `at`, `start` and `end` written without an offset.
    pub tz: Option<String>,
    /// Interval of a simple trigger (`30s`, `5m`, `1h30m`).
    pub every: Option<String>,
    /// Repeats after the first fire of an `every` trigger (default forever).
    pub repeat: Option<u64>,
    /// One-shot time (RFC 3339, or `YYYY-MM-DD HH:MM[:SS]` in `tz`).
    pub at: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    /// Misfire policy name (default `smart`).
    pub misfire: Option<String>,
    /// Lateness that makes a fire a misfire (default `60s`).
    pub misfire_threshold: Option<String>,
    pub priority: Option<i32>,
    pub description: Option<String>,
    pub calendar: Option<Calendar>,
}

impl TriggerInput {
    fn has_schedule(&self) -> bool {
        self.cron.is_some() || self.every.is_some() || self.at.is_some()
    }

    /// The checked trigger for job `job`; `field` prefixes error field names.
    fn to_spec(
        &self,
        job: &JobKey,
        default_name: &str,
        field: &str,
    ) -> Result<TriggerSpec, FieldError> {
        let f = |name: &str| {
            if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}.{name}")
            }
        };
        let tz = self.tz.clone().unwrap_or_else(|| "UTC".to_string());
        if self.tz.is_some() {
            crate::schedule::parse_zone(&tz).map_err(|e| field_err(f("tz"), e))?;
        }
        let kind = match (&self.cron, &self.every, &self.at) {
            (Some(expr), None, None) => TriggerKind::Cron {
                expr: expr.clone(),
                time_zone: tz.clone(),
            },
            (None, Some(every), None) => TriggerKind::Simple {
                interval_ms: parse_every(every).map_err(|e| field_err(f("every"), e))?,
                repeat_count: self.repeat,
            },
            (None, None, Some(at)) => TriggerKind::Once {
                at: parse_at(at, &tz).map_err(|e| field_err(f("at"), e))?,
            },
            (None, None, None) => {
                return Err(field_err(
                    field.to_string() + if field.is_empty() { "cron" } else { ".cron" },
                    "no schedule: give one of cron, every or at",
                ))
            }
            _ => {
                return Err(field_err(
                    f("cron"),
                    "give only one of cron, every and at per trigger",
                ))
            }
        };
        if self.repeat.is_some() && self.every.is_none() {
            return Err(field_err(f("repeat"), "only an `every` trigger repeats"));
        }
        let time = |name: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>, FieldError> {
            v.as_deref()
                .map(|s| parse_at(s, &tz).map_err(|e| field_err(f(name), e)))
                .transpose()
        };
        let mut spec = TriggerSpec::new(
            self.name
                .clone()
                .unwrap_or_else(|| default_name.to_string()),
            job.to_string(),
            kind,
        );
        spec.group = self.group.clone().unwrap_or_else(|| job.group.clone());
        spec.start = time("start", &self.start)?;
        spec.end = time("end", &self.end)?;
        spec.priority = self.priority.unwrap_or(DEFAULT_PRIORITY);
        spec.calendar = self.calendar.clone();
        spec.description = self.description.clone();
        spec.misfire = match &self.misfire {
            Some(m) => m
                .parse::<MisfirePolicy>()
                .map_err(|e| field_err(f("misfire"), e))?,
            None => MisfirePolicy::default(),
        };
        spec.misfire_threshold_ms = match &self.misfire_threshold {
            Some(t) => parse_every(t).map_err(|e| field_err(f("misfire_threshold"), e))?,
            None => DEFAULT_MISFIRE_THRESHOLD_MS,
        };
        spec.validate().map_err(|e| {
            let name = match &e {
                crate::schedule::ScheduleError::BadCron { .. } => "cron",
                crate::schedule::ScheduleError::UnknownZone(_) => "tz",
                crate::schedule::ScheduleError::EndBeforeStart { .. } => "end",
                crate::schedule::ScheduleError::OnceOutsideWindow { .. } => "at",
                crate::schedule::ScheduleError::PolicyNotForKind { .. } => "misfire",
                crate::schedule::ScheduleError::BadCalendar(_) => "calendar",
                _ => "name",
            };
            field_err(f(name), e)
        })?;
        Ok(spec)
    }
}

/// One job as a person writes it (a `[[job]]` table, or `job add`'s flags).
/// Trigger fields written on the job itself (`cron = ...`) define one
/// trigger named after the job; `[[job.trigger]]` tables define more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    pub name: String,
    /// Default `default`.
    pub group: Option<String>,
    pub description: Option<String>,
    /// Program of a command job.
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    /// Name of an in-process handler (instead of `command`).
    pub handler: Option<String>,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// `allow` (default), `forbid` or `replace`.
    pub concurrency: Option<String>,
    /// Re-run on a live worker when the worker running it is lost.
    #[serde(default)]
    pub recovery: bool,
    /// Keep the job when it has no trigger.
    #[serde(default)]
    pub durable: bool,
    /// Per-run time limit (`30s`).
    pub timeout: Option<String>,
    #[serde(default)]
    pub paused: bool,
    /// Number of shard items.
    pub shards: Option<u32>,
    pub shard_names: Option<Vec<String>>,
    /// `average` (default), `round-robin` or `hash`.
    pub strategy: Option<String>,
    /// The job-level trigger shorthand (a jobs file's job-level keys in
    /// [`SHORTHAND_KEYS`] land here).
    #[serde(skip)]
    pub schedule: TriggerInput,
    #[serde(default)]
    pub trigger: Vec<TriggerInput>,
}

/// Trigger keys a `[[job]]` table may hold directly (one trigger named
/// after the job).
pub const SHORTHAND_KEYS: [&str; 11] = [
    "cron",
    "tz",
    "every",
    "repeat",
    "at",
    "start",
    "end",
    "misfire",
    "misfire_threshold",
    "priority",
    "calendar",
];

/// A checked job with the triggers that fire it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobDef {
    pub job: JobSpec,
    pub triggers: Vec<TriggerSpec>,
}

impl JobDef {
    pub fn key(&self) -> JobKey {
        JobKey {
            group: self.job.group.clone(),
            name: self.job.name.clone(),
        }
    }
}

impl JobInput {
    /// Checks everything and builds the definitions; the error names the field.
    pub fn to_def(&self) -> Result<JobDef, FieldError> {
        let group = self
            .group
            .clone()
            .unwrap_or_else(|| crate::model::DEFAULT_GROUP.to_string());
        let key = JobKey::new(&group, &self.name).map_err(|e| {
            let field = if matches!(&e, crate::model::ModelError::BadName { what: "group", .. }) {
                "group"
            } else {
                "name"
            };
            field_err(field, e)
        })?;
        let handler = match (&self.command, &self.handler) {
            (Some(program), None) => Handler::Command {
                program: program.clone(),
                args: self.args.clone(),
                env: self.env.clone(),
                working_dir: self.working_dir.clone(),
            },
            (None, Some(name)) => {
                if !self.args.is_empty() || !self.env.is_empty() || self.working_dir.is_some() {
                    return Err(field_err(
                        "args",
                        "args, env and working_dir belong to a command job, not an in-process handler",
                    ));
                }
                Handler::InProcess { name: name.clone() }
            }
            (None, None) => {
                return Err(field_err(
                    "command",
                    "no handler: give `command` (a program to run) or `handler` (an in-process job's name)",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(field_err("handler", "give either `command` or `handler`, not both"))
            }
        };
        let mut job = JobSpec::new(&self.name, handler);
        job.group = group;
        job.description = self.description.clone().unwrap_or_default();
        job.data = self.data.clone();
        job.concurrency = match &self.concurrency {
            Some(c) => c
                .parse::<Concurrency>()
                .map_err(|e| field_err("concurrency", e))?,
            None => Concurrency::Allow,
        };
        job.requests_recovery = self.recovery;
        job.durable = self.durable;
        job.paused = self.paused;
        job.timeout_ms = self
            .timeout
            .as_deref()
            .map(|t| parse_every(t).map_err(|e| field_err("timeout", e)))
            .transpose()?;
        job.shards = match (self.shards, &self.shard_names) {
            (None, None) if self.strategy.is_some() => {
                return Err(field_err(
                    "strategy",
                    "only a sharded job (`shards`) has a strategy",
                ))
            }
            (None, None) => None,
            (count, names) => {
                let count = count
                    .or(names.as_ref().map(|n| n.len() as u32))
                    .unwrap_or_default();
                Some(ShardSpec {
                    count,
                    names: names.clone(),
                    strategy: match &self.strategy {
                        Some(s) => s
                            .parse::<ShardStrategy>()
                            .map_err(|e| field_err("strategy", e))?,
                        None => ShardStrategy::Average,
                    },
                })
            }
        };
        job.validate().map_err(|e| {
            let field = match &e {
                crate::model::ModelError::BadField { field, .. } => match *field {
                    "handler.program" => "command",
                    "shards.count" => "shards",
                    "shards.names" => "shard_names",
                    "shards.strategy" => "strategy",
                    "timeout_ms" => "timeout",
                    other => other,
                },
                crate::model::ModelError::BadName { what, .. } => match *what {
                    "in-process handler" => "handler",
                    "shard item" => "shard_names",
                    _ => "name",
                },
                crate::model::ModelError::BadKey { .. } => "name",
            };
            field_err(field, e)
        })?;

        let mut triggers: Vec<TriggerSpec> = Vec::new();
        let push = |triggers: &mut Vec<TriggerSpec>,
                    spec: TriggerSpec,
                    field: String|
         -> Result<(), FieldError> {
            if triggers.iter().any(|t| t.key() == spec.key()) {
                return Err(field_err(
                    field + ".name",
                    format!("trigger {} appears twice in this job", spec.key()),
                ));
            }
            triggers.push(spec);
            Ok(())
        };
        if self.schedule.has_schedule() {
            let spec = self.schedule.to_spec(&key, &self.name, "")?;
            push(&mut triggers, spec, "trigger".into())?;
        } else if self.schedule != TriggerInput::default() {
            return Err(field_err(
                "cron",
                "trigger settings on the job need a schedule: add cron, every or at (or move them into a [[job.trigger]])",
            ));
        }
        for (i, t) in self.trigger.iter().enumerate() {
            let default_name = if triggers.is_empty() {
                self.name.clone()
            } else {
                format!("{}-{}", self.name, i + 1)
            };
            let field = format!("trigger[{i}]");
            let spec = t.to_spec(&key, &default_name, &field)?;
            push(&mut triggers, spec, field)?;
        }
        Ok(JobDef { job, triggers })
    }
}

/// What [`apply`] did to one job and its triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub job: String,
    pub outcome: &'static str,
    /// Trigger key → `created` / `updated` / `unchanged`.
    pub triggers: BTreeMap<String, &'static str>,
}

fn outcome_name(o: PutOutcome) -> &'static str {
    match o {
        PutOutcome::Created => "created",
        PutOutcome::Updated => "updated",
        PutOutcome::Unchanged => "unchanged",
    }
}

/// Checks that no job or trigger key appears twice among `defs`.
pub fn check_unique(defs: &[JobDef]) -> Result<(), AdminError> {
    let mut jobs = BTreeSet::new();
    let mut triggers = BTreeSet::new();
    for d in defs {
        if !jobs.insert(d.key()) {
            return Err(AdminError::Duplicate {
                what: "job",
                key: d.key().to_string(),
            });
        }
        for t in &d.triggers {
            if !triggers.insert(t.key()) {
                return Err(AdminError::Duplicate {
                    what: "trigger",
                    key: t.key(),
                });
            }
        }
    }
    Ok(())
}

/// Upserts jobs and their triggers. An equal definition is not written
/// (its node keeps its version and mzxid) and an unchanged trigger keeps
/// its state, so applying the same definitions again changes nothing.
/// Triggers in the store that a definition does not list are left alone
/// (remove them with `job remove` or the store API).
pub async fn apply(store: &Store, defs: &[JobDef]) -> Result<Vec<Applied>, AdminError> {
    check_unique(defs)?;
    let mut out = Vec::new();
    for d in defs {
        let job = store.put_job(&d.job).await?;
        let mut triggers = BTreeMap::new();
        for t in &d.triggers {
            triggers.insert(t.key(), outcome_name(store.put_trigger(t).await?));
        }
        let applied = Applied {
            job: d.key().to_string(),
            outcome: outcome_name(job),
            triggers,
        };
        tracing::info!(job = %applied.job, outcome = applied.outcome, triggers = ?applied.triggers, "job applied");
        out.push(applied);
    }
    Ok(out)
}

/// A trigger with its runtime state, for `list` and `show`.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerView {
    pub key: String,
    pub spec: TriggerSpec,
    /// `None` until the leader has scheduled it.
    pub state: Option<TriggerState>,
    pub paused: bool,
}

/// A job as `list` and `show` print it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub key: String,
    pub job: JobSpec,
    pub paused: bool,
    pub triggers: Vec<TriggerView>,
    /// The newest history entry.
    pub last: Option<HistoryEntry>,
}

impl JobView {
    /// The earliest next fire of its unpaused triggers.
    pub fn next_fire_ms(&self) -> Option<i64> {
        self.triggers
            .iter()
            .filter(|t| !t.paused)
            .filter_map(|t| t.state.as_ref()?.next_fire_ms)
            .min()
    }
}

/// Every job (or one, with `only`) with triggers, state and last outcome.
pub async fn job_views(store: &Store, only: Option<&JobKey>) -> Result<Vec<JobView>, AdminError> {
    let jobs = match only {
        Some(k) => match store.get_job(k).await? {
            Some(j) => vec![j],
            None => {
                return Err(StoreError::NotFound {
                    what: "job",
                    name: k.to_string(),
                }
                .into())
            }
        },
        None => store.list_jobs().await?,
    };
    let triggers = store.list_triggers().await?;
    let paused = store.paused().await?;
    let mut out = Vec::new();
    for job in jobs {
        let key = job.key().map_err(StoreError::from)?;
        let mut views = Vec::new();
        for t in triggers
            .iter()
            .filter(|t| job_of(t).ok().as_ref() == Some(&key))
        {
            let tkey = trigger_key(t).map_err(StoreError::from)?;
            let state = store.get_state(&tkey).await?.map(|(s, _)| s);
            views.push(TriggerView {
                key: tkey.to_string(),
                spec: t.clone(),
                paused: paused.covers(&job, Some(&tkey)),
                state,
            });
        }
        out.push(JobView {
            key: key.to_string(),
            paused: paused.covers(&job, None),
            last: store.history(&key, 1).await?.into_iter().next(),
            job,
            triggers: views,
        });
    }
    Ok(out)
}

/// The tasks of a job that are assigned and not finished: (member, task, running?).
pub async fn active_tasks(
    store: &Store,
    key: &JobKey,
) -> Result<Vec<(String, Task, bool)>, AdminError> {
    Ok(store
        .tasks()
        .await?
        .into_iter()
        .filter(|(_, t, _)| t.job.key().ok().as_ref() == Some(key))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str) -> JobInput {
        JobInput {
            name: name.into(),
            command: Some("/bin/true".into()),
            ..JobInput::default()
        }
    }

    #[test]
    fn job_level_schedule_makes_one_trigger_named_after_the_job() {
        let mut i = input("rec");
        i.group = Some("g".into());
        i.schedule.cron = Some("* * * * * ?".into());
        i.schedule.misfire = Some("do-nothing".into());
        i.schedule.misfire_threshold = Some("5s".into());
        let d = i.to_def().unwrap();
        assert_eq!(d.key().to_string(), "g.rec");
        assert_eq!(d.triggers.len(), 1);
        assert_eq!(d.triggers[0].key(), "g.rec");
        assert_eq!(d.triggers[0].job, "g.rec");
        assert_eq!(d.triggers[0].misfire, MisfirePolicy::DoNothing);
        assert_eq!(d.triggers[0].misfire_threshold_ms, 5000);
    }

    #[test]
    fn errors_name_the_field() {
        let mut i = input("j");
        i.schedule.cron = Some("not cron".into());
        assert_eq!(i.to_def().unwrap_err().field, "cron");
        let mut i = input("j");
        i.trigger.push(TriggerInput {
            every: Some("10 parsecs".into()),
            ..TriggerInput::default()
        });
        assert_eq!(i.to_def().unwrap_err().field, "trigger[0].every");
        let mut i = input("j");
        i.concurrency = Some("sometimes".into());
        assert_eq!(i.to_def().unwrap_err().field, "concurrency");
        let mut i = input("j");
        i.shards = Some(3);
        i.shard_names = Some(vec!["a".into()]);
        assert_eq!(i.to_def().unwrap_err().field, "shard_names");
        let mut i = input("j");
        i.command = None;
        assert_eq!(i.to_def().unwrap_err().field, "command");
        let mut i = input("j");
        i.schedule.misfire = Some("fire-once-now".into());
        assert_eq!(i.to_def().unwrap_err().field, "cron");
        let mut i = input("bad.name");
        i.schedule.every = Some("1s".into());
        assert_eq!(i.to_def().unwrap_err().field, "name");
    }

    #[test]
    fn duplicate_triggers_and_jobs_are_refused() {
        let mut i = input("j");
        i.schedule.every = Some("1s".into());
        i.trigger.push(TriggerInput {
            name: Some("j".into()),
            every: Some("2s".into()),
            ..TriggerInput::default()
        });
        assert_eq!(i.to_def().unwrap_err().field, "trigger[0].name");
        let mut a = input("a");
        a.schedule.every = Some("1s".into());
        let d = a.to_def().unwrap();
        assert!(matches!(
            check_unique(&[d.clone(), d]),
            Err(AdminError::Duplicate { what: "job", .. })
        ));
    }

    #[test]
    fn shards_take_their_count_from_names() {
        let mut i = input("s");
        i.shard_names = Some(vec!["a".into(), "b".into()]);
        i.strategy = Some("hash".into());
        let d = i.to_def().unwrap();
        let s = d.job.shards.unwrap();
        assert_eq!(s.count, 2);
        assert_eq!(s.strategy, ShardStrategy::Hash);
    }
}
