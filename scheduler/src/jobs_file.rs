//! Jobs files: TOML with one `[[job]]` table per job, loaded by
//! `warden-scheduler run --jobs FILE` and `warden-scheduler job apply FILE`.
//!
//! ```toml
//! [[job]]
//! name = "nightly-report"
//! group = "reports"
//! command = "/usr/local/bin/report"
//! args = ["--full"]
//! cron = "0 0 2 * * ?"
//! tz = "Europe/Berlin"
//!
//! [[job.trigger]]          # more triggers for the same job
//! name = "hourly"
//! every = "1h"
//! ```
//!
//! The fields are [`JobInput`]'s and [`TriggerInput`]'s; trigger keys on
//! the job itself define one trigger named after the job. Every error names
//! the file, the job and the field.

use std::path::{Path, PathBuf};

use crate::admin::{
    check_unique, AdminError, FieldError, JobDef, JobInput, TriggerInput, SHORTHAND_KEYS,
};

/// Why a jobs file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JobsFileError {
    #[error("{path}: cannot read the jobs file: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {message} (a jobs file holds [[job]] tables and nothing else)")]
    Shape { path: PathBuf, message: String },
    #[error("{path}: job {job}: {error}")]
    Field {
        path: PathBuf,
        job: String,
        error: FieldError,
    },
    #[error("{path}: {error}")]
    Duplicate { path: PathBuf, error: AdminError },
}

/// Reads and checks a jobs file.
pub fn load(path: &Path) -> Result<Vec<JobDef>, JobsFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| JobsFileError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text).map_err(|e| e.with_path(path))
}

/// A parse error before the file's path is known.
#[derive(Debug)]
pub enum ParseError {
    Syntax(String),
    Shape(String),
    Field { job: String, error: FieldError },
    Duplicate(AdminError),
}

impl ParseError {
    fn with_path(self, path: &Path) -> JobsFileError {
        let path = path.to_path_buf();
        match self {
            ParseError::Syntax(message) => JobsFileError::Syntax { path, message },
            ParseError::Shape(message) => JobsFileError::Shape { path, message },
            ParseError::Field { job, error } => JobsFileError::Field { path, job, error },
            ParseError::Duplicate(error) => JobsFileError::Duplicate { path, error },
        }
    }
}

/// Parses jobs-file text into checked definitions.
pub fn parse(text: &str) -> Result<Vec<JobDef>, ParseError> {
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ParseError::Syntax(e.message().to_string() + &at(text, &e))
    })?;
    if let Some(other) = doc.keys().find(|k| *k != "job") {
        return Err(ParseError::Shape(format!(
            "unknown top-level key `{other}`"
        )));
    }
    let jobs = match doc.remove("job") {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a,
        Some(_) => return Err(ParseError::Shape("`job` must be [[job]] tables".into())),
    };
    let mut defs = Vec::new();
    for (i, value) in jobs.into_iter().enumerate() {
        let toml::Value::Table(mut table) = value else {
            return Err(ParseError::Shape(format!("job #{} is not a table", i + 1)));
        };
        let label = match table.get("name") {
            Some(toml::Value::String(n)) => {
                let group = match table.get("group") {
                    Some(toml::Value::String(g)) => g.clone(),
                    _ => crate::model::DEFAULT_GROUP.to_string(),
                };
                format!("{group}.{n} (job #{})", i + 1)
            }
            _ => format!("#{}", i + 1),
        };
        let fail = |error: FieldError| ParseError::Field {
            job: label.clone(),
            error,
        };
        let mut shorthand = toml::Table::new();
        for key in SHORTHAND_KEYS {
            if let Some(v) = table.remove(key) {
                shorthand.insert(key.to_string(), v);
            }
        }
        times_as_text(&mut shorthand);
        let triggers = match table.remove("trigger") {
            None => Vec::new(),
            Some(toml::Value::Array(a)) => a,
            Some(_) => {
                return Err(fail(FieldError {
                    field: "trigger".into(),
                    why: "must be [[job.trigger]] tables".into(),
                }))
            }
        };
        let mut input: JobInput = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| fail(serde_field_error(&e, "")))?;
        input.schedule = toml::Value::Table(shorthand)
            .try_into::<TriggerInput>()
            .map_err(|e: toml::de::Error| fail(serde_field_error(&e, "")))?;
        for (n, mut t) in triggers.into_iter().enumerate() {
            if let toml::Value::Table(tt) = &mut t {
                times_as_text(tt);
            }
            input
                .trigger
                .push(t.try_into::<TriggerInput>().map_err(|e: toml::de::Error| {
                    fail(serde_field_error(&e, &format!("trigger[{n}].")))
                })?);
        }
        defs.push(input.to_def().map_err(fail)?);
    }
    check_unique(&defs).map_err(ParseError::Duplicate)?;
    Ok(defs)
}

/// Native TOML date-times (`start = 2025-06-01T12:00:00Z`) of `at`,
/// `start` and `end` as the text the CLI would take, so quoted and unquoted
/// times both work.
fn times_as_text(table: &mut toml::Table) {
    for key in ["at", "start", "end"] {
        if let Some(toml::Value::Datetime(dt)) = table.get(key) {
            let text = dt.to_string();
            table.insert(key.to_string(), toml::Value::String(text));
        }
    }
}

/// A serde error as a [`FieldError`]: the field is the one serde names
/// (`unknown field `x``, `missing field `name``), else the key path.
fn serde_field_error(e: &toml::de::Error, prefix: &str) -> FieldError {
    let msg = e.message().to_string();
    let named = msg
        .split('`')
        .nth(1)
        .filter(|_| msg.contains("field `"))
        .map(str::to_string);
    FieldError {
        field: format!("{prefix}{}", named.unwrap_or_else(|| "?".to_string())),
        why: msg,
    }
}

/// ` at line L, column C` for a syntax error with a position.
fn at(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            format!(" at line {line}, column {col}")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Concurrency, Handler, ShardStrategy};
    use crate::schedule::{MisfirePolicy, TriggerKind};

    const EXAMPLE: &str = r#"
[[job]]
name = "nightly-report"
group = "reports"
description = "builds the nightly report"
command = "/usr/local/bin/report"
args = ["--full", "--out", "/var/reports"]
env = { RUST_LOG = "info" }
data = { region = "eu" }
concurrency = "forbid"
recovery = true
timeout = "30m"
cron = "0 0 2 * * ?"
tz = "Europe/Berlin"
misfire = "fire-once-now"
misfire_threshold = "5m"
calendar = { excluded_dates = ["2025-12-25"], excluded_weekdays = ["Sun"] }

[[job.trigger]]
name = "midday"
cron = "0 0 12 ? * MON-FRI"
tz = "Europe/Berlin"
priority = 7

[[job]]
name = "reindex"
shards = 10
strategy = "hash"
command = "/usr/local/bin/reindex"

[[job.trigger]]
every = "30s"
repeat = 100
start = "2030-01-01 00:00"
"#;

    #[test]
    fn the_documented_example_parses() {
        let defs = parse(EXAMPLE).unwrap();
        assert_eq!(defs.len(), 2);
        let report = &defs[0];
        assert_eq!(report.key().to_string(), "reports.nightly-report");
        assert!(matches!(&report.job.handler, Handler::Command { args, .. } if args.len() == 3));
        assert_eq!(report.job.concurrency, Concurrency::Forbid);
        assert!(report.job.requests_recovery);
        assert_eq!(report.job.timeout_ms, Some(30 * 60_000));
        assert_eq!(report.triggers.len(), 2);
        assert_eq!(report.triggers[0].key(), "reports.nightly-report");
        assert_eq!(report.triggers[0].misfire, MisfirePolicy::FireOnceNow);
        assert!(report.triggers[0].calendar.is_some());
        assert_eq!(report.triggers[1].key(), "reports.midday");
        assert_eq!(report.triggers[1].priority, 7);
        let reindex = &defs[1];
        assert_eq!(reindex.key().to_string(), "default.reindex");
        assert_eq!(
            reindex.job.shards.as_ref().unwrap().strategy,
            ShardStrategy::Hash
        );
        assert!(matches!(
            reindex.triggers[0].kind,
            TriggerKind::Simple {
                interval_ms: 30_000,
                repeat_count: Some(100)
            }
        ));
        assert!(reindex.triggers[0].start.is_some());
    }

    #[test]
    fn native_toml_times_work_like_quoted_ones() {
        let native = parse(
            "[[job]]\nname = \"a\"\ncommand = \"x\"\nat = 2030-01-01T12:00:00Z\n[[job.trigger]]\nname = \"t\"\nevery = \"1s\"\nstart = 2030-01-01T00:00:00\ntz = \"Europe/Berlin\"\n",
        )
        .unwrap();
        let quoted = parse(
            "[[job]]\nname = \"a\"\ncommand = \"x\"\nat = \"2030-01-01T12:00:00Z\"\n[[job.trigger]]\nname = \"t\"\nevery = \"1s\"\nstart = \"2030-01-01 00:00\"\ntz = \"Europe/Berlin\"\n",
        )
        .unwrap();
        assert_eq!(native, quoted);
    }

    #[test]
    fn parsing_is_deterministic() {
        assert_eq!(parse(EXAMPLE).unwrap(), parse(EXAMPLE).unwrap());
    }

    fn field_error(text: &str) -> (String, String) {
        match parse(text) {
            Err(ParseError::Field { job, error }) => (job, error.field),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_job_and_field() {
        let (job, field) = field_error(
            "[[job]]\nname = \"a\"\ncommand = \"x\"\nevery = \"1s\"\n[[job]]\nname = \"b\"\ncommand = \"x\"\ncron = \"nope\"\n",
        );
        assert_eq!(job, "default.b (job #2)");
        assert_eq!(field, "cron");
        let (_, field) = field_error("[[job]]\nname = \"a\"\ncommand = \"x\"\nevry = \"1s\"\n");
        assert_eq!(field, "evry");
        let (job, field) = field_error("[[job]]\ncommand = \"x\"\n");
        assert_eq!((job.as_str(), field.as_str()), ("#1", "name"));
        let (_, field) = field_error(
            "[[job]]\nname = \"a\"\ncommand = \"x\"\n[[job.trigger]]\nevery = \"1s\"\nmisfire = \"later\"\n",
        );
        assert_eq!(field, "trigger[0].misfire");
        let (_, field) =
            field_error("[[job]]\nname = \"a\"\ncommand = \"x\"\n[[job.trigger]]\nnmae = \"t\"\n");
        assert_eq!(field, "trigger[0].nmae");
    }

    #[test]
    fn shape_and_syntax_errors() {
        assert!(matches!(
            parse("[jobs]\nx = 1\n"),
            Err(ParseError::Shape(_))
        ));
        assert!(matches!(parse("[[job]\n"), Err(ParseError::Syntax(_))));
        assert!(matches!(
            parse("[[job]]\nname=\"a\"\ncommand=\"x\"\n[[job]]\nname=\"a\"\ncommand=\"y\"\n"),
            Err(ParseError::Duplicate(_))
        ));
        assert!(parse("").unwrap().is_empty());
    }
}
