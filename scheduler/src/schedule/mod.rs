//! Triggers, calendars and misfire policies: pure time arithmetic, no I/O and no clock reads
//! (`now` is always a parameter). All instants at the API are UTC (`DateTime<Utc>`, or ms
//! since the epoch in stored state); zones are used only inside.
//!
//! - [`TriggerSpec`] / [`TriggerKind`] — a trigger definition (cron with zone, simple, once),
//!   serde JSON/TOML, with [`TriggerSpec::validate`].
//! - [`QuartzCron`] — Quartz cron syntax on `croner`, with this module's DST rules.
//! - [`Calendar`] — exclusions (dates, weekdays, daily ranges) in local time.
//! - [`TriggerState`], [`resolve_due`] — what the leader fires now, what it records as
//!   misfired, and the next state, per [`MisfirePolicy`].
//! - [`parse_every`], [`parse_at`], [`TriggerKind::describe`] — helpers for the CLI.
//!
//! # DST rules (cron triggers, calendars, `--at` input)
//!
//! Cron expressions are evaluated on the zone's wall clock. A wall time that does not exist
//! (spring-forward gap, e.g. 02:30 on the last Sunday of March in Europe/Berlin) fires at the
//! first instant after the gap (03:00 CEST), once even if several scheduled times fall in the
//! gap. A wall time that happens twice (fall-back overlap) fires once, at its first
//! occurrence; the repeated hour's times are not fired again. Quartz instead skips gap times
//! and may fire overlap times twice; we chose never to lose nor double a fire.

mod calendar;
mod cron;
mod error;
mod human;
mod misfire;
mod trigger;
mod zone;

pub use calendar::{Calendar, DailyRange};
pub use cron::QuartzCron;
pub use error::ScheduleError;
pub use human::{format_interval, parse_at, parse_every};
pub use misfire::{
    resolve_due, Due, DueFire, FireKind, MisfirePolicy, TriggerState, UnknownMisfirePolicy,
    MAX_BACKLOG, MAX_CATCH_UP_FIRES, MAX_RECORDED_MISFIRES, ON_TIME_TOLERANCE_MS,
};
pub use trigger::{
    first_fire, initial_state, next_after, validate_job_key, validate_name, Schedule, TriggerKind,
    TriggerSpec, DEFAULT_GROUP, DEFAULT_MISFIRE_THRESHOLD_MS, DEFAULT_PRIORITY, MAX_CALENDAR_SKIPS,
};
pub use zone::{in_gap, parse_zone, resolve_local};
