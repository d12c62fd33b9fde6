//! `warden-scheduler job ...`: manage a cluster's jobs from the command
//! line — add, apply (a jobs file), list, show, pause, resume, trigger,
//! remove, history. Reads print aligned tables for people and JSON with
//! `--json` for scripts; every error says what to do next.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use warden_client::{Client, ConnectOptions};
use warden_scheduler::admin::{
    self, active_tasks, job_views, AdminError, FieldError, JobInput, JobView, TriggerInput,
};
use warden_scheduler::jobs_file::{self, JobsFileError};
use warden_scheduler::model::{JobKey, ModelError};
use warden_scheduler::{HistoryEntry, PauseTarget, Store, StoreError};

/// Why a `job` command failed; each message ends with what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("--{flag}: {why}")]
    Flag { flag: String, why: String },
    #[error("could not connect to {servers}: {error} — is warden-server running there? Pass --servers HOST:PORT[,HOST:PORT...]")]
    Connect {
        servers: String,
        error: warden_client::Error,
    },
    #[error("{0}")]
    JobsFile(#[from] JobsFileError),
    #[error("{0}")]
    Admin(AdminError),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<AdminError> for CliError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(StoreError::NotFound { what, name }) => CliError::Usage(format!(
                "{what} {name} does not exist (list them with `warden-scheduler job list`; check --cluster)"
            )),
            AdminError::Store(StoreError::Model(m)) => CliError::Usage(model_hint(&m)),
            other => CliError::Admin(other),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        AdminError::from(e).into()
    }
}

fn model_hint(e: &ModelError) -> String {
    format!("{e} (job keys are <group>.<name>; a bare <name> means group `default`)")
}

/// The CLI flag for a definition field.
fn flag_of(field: &str) -> String {
    match field {
        "args" => "arg".to_string(),
        "schedule" => "cron".to_string(),
        f => f.replace('_', "-"),
    }
}

impl From<FieldError> for CliError {
    fn from(e: FieldError) -> Self {
        CliError::Flag {
            flag: flag_of(&e.field),
            why: e.why,
        }
    }
}

/// Where the cluster is: shared by every `job` subcommand.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Warden servers, `host:port[,host:port...]`.
    #[arg(
        long,
        global = true,
        env = "WARDEN_SERVERS",
        default_value = "127.0.0.1:7181"
    )]
    servers: String,
    /// The scheduler cluster (its data lives under /warden/scheduler/<cluster>).
    #[arg(
        long,
        global = true,
        env = "WARDEN_SCHEDULER_CLUSTER",
        default_value = "default"
    )]
    cluster: String,
    /// Authenticate the session: SCHEME:CREDENTIALS, e.g.
    /// digest:scheduler:secret (repeatable)
    #[arg(long, global = true, env = "WARDEN_AUTH", value_name = "SCHEME:CREDENTIALS",
          value_parser = warden_client::parse_auth)]
    auth: Vec<(String, Vec<u8>)>,
    #[command(flatten)]
    tls: warden_client::tls::TlsArgs,
}

/// `warden-scheduler job ...`.
#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Define a job and its trigger.
    ///
    /// Examples:
    ///
    ///   job add --name backup --cron '0 0 2 * * ?' --tz Europe/Berlin -- /usr/local/bin/backup --full
    ///
    ///   job add --name poll --every 30s --command /usr/local/bin/poll --concurrency forbid
    Add(Box<AddArgs>),
    /// Create or update the jobs of a TOML jobs file (as `run --jobs` does):
    /// equal definitions are left untouched.
    Apply(ApplyArgs),
    /// List the jobs: schedule, next fire, last outcome, paused.
    List(ListArgs),
    /// Show one job: definition, triggers and their state, running tasks, recent history.
    Show(ShowArgs),
    /// Pause a job, a trigger, a group or everything (no fires until resumed).
    Pause(PauseArgs),
    /// Resume what `pause` paused; fires missed meanwhile follow the misfire policy.
    Resume(PauseArgs),
    /// Fire a job now (the leader runs it once, besides its schedule).
    Trigger(TriggerArgs),
    /// Delete a job with its triggers, state and history.
    Remove(RemoveArgs),
    /// A job's execution history, newest first.
    History(HistoryArgs),
}

/// Options of `job add`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("schedule").args(["cron", "every", "at"])))]
struct AddArgs {
    /// Job name (A-Z a-z 0-9 _ -).
    #[arg(long)]
    name: String,
    /// Job group.
    #[arg(long, default_value = warden_scheduler::model::DEFAULT_GROUP)]
    group: String,
    /// Free text shown by `show`.
    #[arg(long)]
    description: Option<String>,
    /// Quartz cron expression with seconds, e.g. '0 */5 * * * ?'.
    #[arg(long, value_name = "EXPR")]
    cron: Option<String>,
    /// IANA time zone for --cron, --at, --start and --end [default: UTC].
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// Fire every interval (500ms, 30s, 5m, 1h30m).
    #[arg(long, value_name = "INTERVAL")]
    every: Option<String>,
    /// With --every: repeats after the first fire [default: forever].
    #[arg(long, value_name = "N", requires = "every")]
    repeat: Option<u64>,
    /// Fire once at TIME (RFC 3339, or 'YYYY-MM-DD HH:MM[:SS]' in --tz).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// No fire before TIME.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// No fire after TIME.
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// The trigger's name [default: the job's name].
    #[arg(long, value_name = "NAME")]
    trigger_name: Option<String>,
    /// Program to run (or give it after `--`).
    #[arg(long, value_name = "PROG")]
    command: Option<String>,
    /// An argument for --command (repeatable).
    #[arg(long = "arg", value_name = "A", allow_hyphen_values = true)]
    args: Vec<String>,
    /// An environment variable for the command (repeatable).
    #[arg(long, value_name = "K=V")]
    env: Vec<String>,
    /// Working directory of the command [default: the member's].
    #[arg(long, value_name = "DIR")]
    working_dir: Option<String>,
    /// Run an in-process job registered under NAME instead of a command.
    #[arg(long, value_name = "NAME", conflicts_with = "command")]
    handler: Option<String>,
    /// Job data, passed as WARDEN_DATA_<K> (repeatable).
    #[arg(long, value_name = "K=V")]
    data: Vec<String>,
    /// Split each fire into N shard items over the live members.
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
    /// Names of the shard items, comma separated (N of them).
    #[arg(long, value_name = "a,b,...", value_delimiter = ',')]
    shard_names: Option<Vec<String>>,
    /// How items are split: average, round-robin or hash.
    #[arg(long, value_name = "STRATEGY")]
    strategy: Option<String>,
    /// Misfire policy: smart, fire-once-now, do-nothing, ignore-misfires, or a simple-trigger
    /// reschedule-now/next-with-existing/remaining-count.
    #[arg(long, value_name = "POLICY")]
    misfire: Option<String>,
    /// A fire later than this is a misfire [default: 60s].
    #[arg(long, value_name = "INTERVAL")]
    misfire_threshold: Option<String>,
    /// When a fire is due while the last runs: allow, forbid (skip) or replace (cancel the old).
    #[arg(long, value_name = "POLICY")]
    concurrency: Option<String>,
    /// Re-run on a live member if the member running it is lost.
    #[arg(long)]
    recovery: bool,
    /// Keep the job when it has no trigger.
    #[arg(long)]
    durable: bool,
    /// Create the job paused.
    #[arg(long)]
    paused: bool,
    /// Kill a run after this long (outcome timed-out).
    #[arg(long, value_name = "INTERVAL")]
    timeout: Option<String>,
    /// Orders fires due at the same time, higher first [default: 5].
    #[arg(long)]
    priority: Option<i32>,
    /// Overwrite the job if it exists (otherwise adding an existing job is an error).
    #[arg(long)]
    replace: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
    /// The program and its arguments (instead of --command/--arg).
    #[arg(last = true, value_name = "PROG ARGS")]
    argv: Vec<String>,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// The TOML jobs file.
    file: PathBuf,
    /// Only check the file; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only this group's jobs.
    #[arg(long)]
    group: Option<String>,
    /// Print JSON (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// The job, `<group>.<name>` (or `<name>` in group default).
    job: String,
    /// Print JSON (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["job", "trigger", "group", "all"])))]
struct PauseArgs {
    /// A job, `<group>.<name>`.
    job: Option<String>,
    /// A trigger, `<group>.<name>`.
    #[arg(long, value_name = "KEY")]
    trigger: Option<String>,
    /// Every job of a group.
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Everything in the cluster.
    #[arg(long)]
    all: bool,
    /// Print JSON (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TriggerArgs {
    /// The job, `<group>.<name>`.
    job: String,
    /// Extra job data for this fire only (repeatable).
    #[arg(long, value_name = "K=V")]
    data: Vec<String>,
    /// Print JSON (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RemoveArgs {
    /// The job, `<group>.<name>`.
    job: String,
    /// Print JSON (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct HistoryArgs {
    /// The job, `<group>.<name>`.
    job: String,
    /// How many entries.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: usize,
    /// Print JSON (for scripts).
    #[arg(long)]
    json: bool,
}

/// Runs a `job` subcommand.
pub async fn run(args: JobArgs) -> Result<(), CliError> {
    if let JobCommand::Apply(a) = &args.command {
        if a.dry_run {
            let defs = jobs_file::load(&a.file)?;
            return print_dry_run(&defs, a.json);
        }
    }
    // Parse a definition before connecting: bad flags fail fast.
    let add_def = match &args.command {
        JobCommand::Add(a) => Some(add_input(a)?.to_def()?),
        _ => None,
    };
    let options = ConnectOptions {
        session_timeout: Duration::from_secs(10),
        client_name: format!("warden-scheduler-cli/{}", env!("CARGO_PKG_VERSION")),
        auth: args.conn.auth.clone(),
        tls: args.conn.tls.options().map_err(|error| CliError::Connect {
            servers: args.conn.servers.clone(),
            error,
        })?,
        ..ConnectOptions::default()
    };
    let client = Client::connect(&args.conn.servers, options)
        .await
        .map_err(|error| CliError::Connect {
            servers: args.conn.servers.clone(),
            error,
        })?;
    let result = async {
        let store = Store::new(&client, &args.conn.cluster).map_err(|e| match e {
            StoreError::Model(m) => CliError::Flag {
                flag: "cluster".into(),
                why: m.to_string(),
            },
            other => other.into(),
        })?;
        dispatch(&store, args.command, add_def).await
    }
    .await;
    let _ = client.close().await;
    match result {
        // `job list | head` is not an error.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

async fn dispatch(
    store: &Store,
    command: JobCommand,
    add_def: Option<admin::JobDef>,
) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match command {
        JobCommand::Add(a) => {
            let def = add_def.expect("parsed above");
            store.init().await?;
            if !a.replace && store.get_job(&def.key()).await?.is_some() {
                return Err(CliError::Usage(format!(
                    "job {key} already exists: use `job add --replace ...` to overwrite it, or `job remove {key}` first",
                    key = def.key()
                )));
            }
            let applied = admin::apply(store, std::slice::from_ref(&def)).await?;
            print_applied(&mut out, &applied, a.json)?;
        }
        JobCommand::Apply(a) => {
            let defs = jobs_file::load(&a.file)?;
            store.init().await?;
            let applied = admin::apply(store, &defs).await?;
            print_applied(&mut out, &applied, a.json)?;
        }
        JobCommand::List(a) => {
            let mut views = job_views(store, None).await?;
            if let Some(g) = &a.group {
                views.retain(|v| &v.job.group == g);
            }
            if a.json {
                json_line(&mut out, &views)?;
            } else if views.is_empty() {
                writeln!(
                    out,
                    "no jobs in cluster {} (add one with `warden-scheduler job add`)",
                    store.paths().root()
                )?;
            } else {
                print_list(&mut out, &views)?;
            }
        }
        JobCommand::Show(a) => {
            let key = parse_key(&a.job)?;
            let view = job_views(store, Some(&key)).await?.remove(0);
            let tasks = active_tasks(store, &key).await?;
            let history = store.history(&key, 5).await?;
            if a.json {
                #[derive(Serialize)]
                struct Running {
                    member: String,
                    task: String,
                    running: bool,
                    recovering: bool,
                    shard_items: Vec<String>,
                }
                #[derive(Serialize)]
                struct Show<'a> {
                    #[serde(flatten)]
                    view: &'a JobView,
                    tasks: Vec<Running>,
                    history: &'a [HistoryEntry],
                }
                let tasks = tasks
                    .iter()
                    .map(|(m, t, r)| Running {
                        member: m.clone(),
                        task: t.task_id(),
                        running: *r,
                        recovering: t.recovering,
                        shard_items: t.shard_items.clone(),
                    })
                    .collect();
                json_line(
                    &mut out,
                    &Show {
                        view: &view,
                        tasks,
                        history: &history,
                    },
                )?;
            } else {
                print_show(&mut out, &view, &tasks, &history)?;
            }
        }
        JobCommand::Pause(a) => pause_or_resume(store, &mut out, a, true).await?,
        JobCommand::Resume(a) => pause_or_resume(store, &mut out, a, false).await?,
        JobCommand::Trigger(a) => {
            let key = parse_key(&a.job)?;
            let data = pairs("data", &a.data)?;
            let request = store.trigger_now(&key, data).await?;
            if a.json {
                json_line(
                    &mut out,
                    &serde_json::json!({"job": key.to_string(), "request": request}),
                )?;
            } else {
                writeln!(
                    out,
                    "asked the leader to fire {key} now (request {request}); see `warden-scheduler job history {key}`"
                )?;
            }
        }
        JobCommand::Remove(a) => {
            let key = parse_key(&a.job)?;
            if !store.delete_job(&key).await? {
                return Err(CliError::Usage(format!(
                    "job {key} does not exist (list them with `warden-scheduler job list`; check --cluster)"
                )));
            }
            if a.json {
                json_line(
                    &mut out,
                    &serde_json::json!({"job": key.to_string(), "removed": true}),
                )?;
            } else {
                writeln!(
                    out,
                    "removed job {key} with its triggers, state and history"
                )?;
            }
        }
        JobCommand::History(a) => {
            let key = parse_key(&a.job)?;
            if store.get_job(&key).await?.is_none() {
                return Err(StoreError::NotFound {
                    what: "job",
                    name: key.to_string(),
                }
                .into());
            }
            let entries = store.history(&key, a.limit).await?;
            if a.json {
                json_line(&mut out, &entries)?;
            } else if entries.is_empty() {
                writeln!(out, "no history for {key} yet")?;
            } else {
                print_history(&mut out, &entries)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

async fn pause_or_resume(
    store: &Store,
    out: &mut impl Write,
    a: PauseArgs,
    pause: bool,
) -> Result<(), CliError> {
    let target = if a.all {
        PauseTarget::All
    } else if let Some(g) = a.group {
        warden_scheduler::model::validate_name("group", &g).map_err(|e| CliError::Flag {
            flag: "group".into(),
            why: e.to_string(),
        })?;
        PauseTarget::Group(g)
    } else if let Some(t) = a.trigger {
        PauseTarget::Trigger(t.parse().map_err(|e: ModelError| CliError::Flag {
            flag: "trigger".into(),
            why: model_hint(&e),
        })?)
    } else {
        PauseTarget::Job(parse_key(a.job.as_deref().unwrap_or_default())?)
    };
    if pause {
        store.pause(&target).await?;
    } else {
        store.resume(&target).await?;
    }
    let verb = if pause { "paused" } else { "resumed" };
    if a.json {
        json_line(
            out,
            &serde_json::json!({ "target": target.marker(), verb: true }),
        )?;
    } else {
        let what = match &target {
            PauseTarget::All => "every trigger of the cluster".to_string(),
            PauseTarget::Group(g) => format!("group {g}"),
            PauseTarget::Job(k) => format!("job {k}"),
            PauseTarget::Trigger(k) => format!("trigger {k}"),
        };
        writeln!(out, "{verb} {what}")?;
    }
    Ok(())
}

fn parse_key(s: &str) -> Result<JobKey, CliError> {
    s.parse()
        .map_err(|e: ModelError| CliError::Usage(model_hint(&e)))
}

/// `K=V` arguments of `--flag` as a map.
fn pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::Flag {
                flag: flag.to_string(),
                why: format!("{kv:?} is not KEY=VALUE"),
            }),
        })
        .collect()
}

/// `job add`'s flags as the input a jobs file would give.
fn add_input(a: &AddArgs) -> Result<JobInput, CliError> {
    let (command, args) = match (&a.command, a.argv.split_first()) {
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "give the program either with --command or after `--`, not both".into(),
            ))
        }
        (Some(c), None) => (Some(c.clone()), a.args.clone()),
        (None, Some((prog, rest))) => {
            if !a.args.is_empty() {
                return Err(CliError::Usage(
                    "--arg goes with --command; after `--` write the arguments directly".into(),
                ));
            }
            (Some(prog.clone()), rest.to_vec())
        }
        (None, None) => (None, a.args.clone()),
    };
    if command.is_none() && a.handler.is_none() {
        return Err(CliError::Usage(
            "what should the job run? Give --command PROG [--arg A]..., or `-- PROG ARGS...`, or --handler NAME".into(),
        ));
    }
    Ok(JobInput {
        name: a.name.clone(),
        group: Some(a.group.clone()),
        description: a.description.clone(),
        command,
        args,
        env: pairs("env", &a.env)?,
        working_dir: a.working_dir.clone(),
        handler: a.handler.clone(),
        data: pairs("data", &a.data)?,
        concurrency: a.concurrency.clone(),
        recovery: a.recovery,
        durable: a.durable || (a.cron.is_none() && a.every.is_none() && a.at.is_none()),
        timeout: a.timeout.clone(),
        paused: a.paused,
        shards: a.shards,
        shard_names: a.shard_names.clone(),
        strategy: a.strategy.clone(),
        schedule: TriggerInput {
            name: a.trigger_name.clone(),
            group: None,
            cron: a.cron.clone(),
            tz: a.tz.clone(),
            every: a.every.clone(),
            repeat: a.repeat,
            at: a.at.clone(),
            start: a.start.clone(),
            end: a.end.clone(),
            misfire: a.misfire.clone(),
            misfire_threshold: a.misfire_threshold.clone(),
            priority: a.priority,
            description: None,
            calendar: None,
        },
        trigger: Vec::new(),
    })
}

fn json_line(out: &mut impl Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

fn print_dry_run(defs: &[admin::JobDef], json: bool) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if json {
        return json_line(&mut out, &defs);
    }
    for d in defs {
        let scheds: Vec<String> = d.triggers.iter().map(|t| t.kind.describe()).collect();
        writeln!(out, "ok  {}  {}", d.key(), scheds.join("; "))?;
    }
    writeln!(
        out,
        "{} job(s) valid; nothing was changed (--dry-run)",
        defs.len()
    )?;
    Ok(())
}

fn print_applied(
    out: &mut impl Write,
    applied: &[admin::Applied],
    json: bool,
) -> Result<(), CliError> {
    if json {
        return json_line(out, &applied);
    }
    let mut t = Table::new(&["JOB", "DEFINITION", "TRIGGERS"]);
    for a in applied {
        let triggers: Vec<String> = a.triggers.iter().map(|(k, o)| format!("{k} {o}")).collect();
        t.row(vec![
            a.job.clone(),
            a.outcome.to_string(),
            if triggers.is_empty() {
                "(none)".to_string()
            } else {
                triggers.join(", ")
            },
        ]);
    }
    t.print(out)
}

/// UTC time of a ms timestamp, to the millisecond.
fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn opt_ms(ms: Option<i64>) -> String {
    ms.map(fmt_ms).unwrap_or_else(|| "-".to_string())
}

fn schedule_of(v: &JobView) -> String {
    if v.triggers.is_empty() {
        return "(no trigger)".to_string();
    }
    v.triggers
        .iter()
        .map(|t| t.spec.kind.describe())
        .collect::<Vec<_>>()
        .join("; ")
}

fn next_fire_of(v: &JobView) -> String {
    match v.next_fire_ms() {
        Some(ms) => fmt_ms(ms),
        None if v.triggers.iter().any(|t| t.state.is_none() && !t.paused) => {
            "pending (no leader yet)".to_string()
        }
        None => "-".to_string(),
    }
}

fn last_of(v: &JobView) -> String {
    match &v.last {
        Some(e) => format!("{} ({})", e.outcome, fmt_ms(e.scheduled_ms)),
        None => "-".to_string(),
    }
}

fn print_list(out: &mut impl Write, views: &[JobView]) -> Result<(), CliError> {
    let mut t = Table::new(&[
        "JOB",
        "SCHEDULE",
        "NEXT FIRE (UTC)",
        "LAST OUTCOME",
        "PAUSED",
    ]);
    for v in views {
        t.row(vec![
            v.key.clone(),
            schedule_of(v),
            next_fire_of(v),
            last_of(v),
            yes_no(v.paused),
        ]);
    }
    t.print(out)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn print_show(
    out: &mut impl Write,
    v: &JobView,
    tasks: &[(String, warden_scheduler::model::Task, bool)],
    history: &[HistoryEntry],
) -> Result<(), CliError> {
    let j = &v.job;
    let handler = match &j.handler {
        warden_scheduler::Handler::Command { program, args, .. } => {
            let mut s = program.clone();
            for a in args {
                s.push(' ');
                s.push_str(a);
            }
            format!("command: {s}")
        }
        warden_scheduler::Handler::InProcess { name } => format!("in-process: {name}"),
    };
    let mut kv = Table::new(&["", ""]);
    kv.headers = false;
    kv.row(vec!["job".into(), v.key.clone()]);
    if !j.description.is_empty() {
        kv.row(vec!["description".into(), j.description.clone()]);
    }
    kv.row(vec!["runs".into(), handler]);
    if !j.data.is_empty() {
        let d: Vec<String> = j.data.iter().map(|(k, v)| format!("{k}={v}")).collect();
        kv.row(vec!["data".into(), d.join(" ")]);
    }
    kv.row(vec![
        "concurrency".into(),
        format!("{:?}", j.concurrency).to_lowercase(),
    ]);
    kv.row(vec!["recovery".into(), yes_no(j.requests_recovery)]);
    kv.row(vec![
        "timeout".into(),
        j.timeout_ms
            .map(warden_scheduler::schedule::format_interval)
            .unwrap_or_else(|| "none".into()),
    ]);
    if let Some(s) = &j.shards {
        kv.row(vec![
            "shards".into(),
            format!(
                "{} items ({}), strategy {:?}",
                s.count,
                s.item_names().join(","),
                s.strategy
            ),
        ]);
    }
    kv.row(vec!["paused".into(), yes_no(v.paused)]);
    kv.row(vec!["next fire".into(), next_fire_of(v)]);
    kv.print(out)?;

    writeln!(out, "\ntriggers:")?;
    let mut t = Table::new(&[
        "TRIGGER",
        "SCHEDULE",
        "MISFIRE",
        "NEXT FIRE (UTC)",
        "FIRED",
        "LAST FIRE",
        "PAUSED",
    ]);
    for tv in &v.triggers {
        let s = tv.state.as_ref();
        t.row(vec![
            tv.key.clone(),
            tv.spec.kind.describe(),
            format!(
                "{} after {}",
                tv.spec.misfire,
                warden_scheduler::schedule::format_interval(tv.spec.misfire_threshold_ms)
            ),
            match s {
                None => "pending".into(),
                Some(s) => opt_ms(s.next_fire_ms),
            },
            s.map_or("0".into(), |s| s.times_fired.to_string()),
            opt_ms(s.and_then(|s| s.last_fire_ms)),
            yes_no(tv.paused),
        ]);
    }
    t.print(out)?;
    if !tasks.is_empty() {
        writeln!(out, "\nassigned tasks:")?;
        let mut t = Table::new(&["TASK", "MEMBER", "STATE", "SHARD ITEMS"]);
        for (m, task, running) in tasks {
            t.row(vec![
                task.task_id(),
                m.clone(),
                if *running { "running" } else { "waiting" }.to_string()
                    + if task.recovering { " (recovering)" } else { "" },
                task.shard_items.join(","),
            ]);
        }
        t.print(out)?;
    }
    if !history.is_empty() {
        writeln!(out, "\nrecent history:")?;
        print_history(out, history)?;
    }
    Ok(())
}

fn print_history(out: &mut impl Write, entries: &[HistoryEntry]) -> Result<(), CliError> {
    // `kind` (normal / late / misfire-fire-now / manual / recovery) is shown
    // when the runtime records it.
    let kind = |e: &HistoryEntry| {
        serde_json::to_value(e)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
    };
    let with_kind = entries.iter().any(|e| kind(e).is_some());
    let mut headers = vec!["FIRE TIME (UTC)", "PART"];
    if with_kind {
        headers.push("KIND");
    }
    headers.extend([
        "START",
        "END",
        "WORKER",
        "OUTCOME",
        "RECOVERING",
        "SHARD ITEMS",
    ]);
    let mut t = Table::new(&headers);
    for e in entries {
        let mut row = vec![fmt_ms(e.scheduled_ms), e.part.clone()];
        if with_kind {
            row.push(kind(e).unwrap_or_else(|| "-".into()));
        }
        row.extend([
            opt_ms(e.started_ms),
            opt_ms(e.ended_ms),
            e.worker.clone(),
            match e.exit_code {
                Some(c) if c != 0 => format!("{} (exit {c})", e.outcome),
                _ => e.outcome.to_string(),
            },
            yes_no(e.recovering),
            e.shard_items.join(","),
        ]);
        t.row(row);
    }
    t.print(out)
}

/// Columns padded to their widest cell, two spaces apart.
struct Table {
    headers: bool,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[&str]) -> Table {
        Table {
            headers: true,
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn print(&self, out: &mut impl Write) -> Result<(), CliError> {
        let rows = if self.headers {
            &self.rows[..]
        } else {
            &self.rows[1..]
        };
        let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                rows.iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 < r.len() {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
                } else {
                    line.push_str(cell);
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: Top,
    }
    #[derive(Debug, Subcommand)]
    enum Top {
        Job(JobArgs),
    }

    fn add(args: &[&str]) -> Result<admin::JobDef, CliError> {
        let mut argv = vec!["t", "job", "add"];
        argv.extend_from_slice(args);
        let Top::Job(j) = T::try_parse_from(argv).expect("parses").c;
        let JobCommand::Add(a) = j.command else {
            panic!("not add")
        };
        Ok(add_input(&a)?.to_def()?)
    }

    #[test]
    fn add_builds_job_and_trigger() {
        let d = add(&[
            "--name",
            "rec",
            "--cron",
            "* * * * * ?",
            "--misfire",
            "do-nothing",
            "--data",
            "a=1",
            "--shards",
            "3",
            "--",
            "/bin/sh",
            "-c",
            "echo hi",
        ])
        .unwrap();
        assert_eq!(d.key().to_string(), "default.rec");
        assert_eq!(d.triggers.len(), 1);
        assert!(matches!(&d.job.handler,
            warden_scheduler::Handler::Command { program, args, .. } if program == "/bin/sh" && args.len() == 2));
        assert_eq!(d.job.data.get("a").map(String::as_str), Some("1"));
        assert!(!d.job.durable);
    }

    #[test]
    fn add_errors_name_the_flag() {
        let e = add(&["--name", "x", "--every", "soon", "--command", "true"]).unwrap_err();
        assert!(e.to_string().starts_with("--every:"), "{e}");
        let e = add(&[
            "--name",
            "x",
            "--every",
            "1s",
            "--misfire-threshold",
            "x",
            "--command",
            "true",
        ])
        .unwrap_err();
        assert!(e.to_string().starts_with("--misfire-threshold:"), "{e}");
        let e = add(&["--name", "x", "--every", "1s"]).unwrap_err();
        assert!(e.to_string().contains("--command"), "{e}");
        let e = add(&[
            "--name",
            "x",
            "--every",
            "1s",
            "--env",
            "novalue",
            "--command",
            "t",
        ])
        .unwrap_err();
        assert!(e.to_string().starts_with("--env:"), "{e}");
        assert!(T::try_parse_from([
            "t", "job", "add", "--name", "x", "--cron", "c", "--every", "1s"
        ])
        .is_err());
    }

    #[test]
    fn pause_needs_exactly_one_target() {
        assert!(T::try_parse_from(["t", "job", "pause"]).is_err());
        assert!(T::try_parse_from(["t", "job", "pause", "g.j", "--all"]).is_err());
        assert!(T::try_parse_from(["t", "job", "pause", "--group", "g"]).is_ok());
        assert!(T::try_parse_from(["t", "job", "resume", "--all", "--cluster", "c"]).is_ok());
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["A", "BB"]);
        t.row(vec!["long".into(), "x".into()]);
        let mut buf = Vec::new();
        t.print(&mut buf).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "A     BB\nlong  x\n");
    }
}
