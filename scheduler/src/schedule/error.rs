//! The one error type of the schedule module: what is wrong with a trigger definition or a
//! time/interval typed by a person, worded so the reader knows what to fix.

use chrono::{DateTime, Utc};

/// Why a trigger, calendar, cron expression, interval or time could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A cron expression that is not valid Quartz syntax (or uses a part we do not support).
    #[error("cron expression `{expr}`: {reason}")]
    BadCron { expr: String, reason: String },
    /// A time zone name that is not in the IANA database.
    #[error("unknown time zone `{0}`: use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`")]
    UnknownZone(String),
    /// A simple trigger whose interval is zero.
    #[error("the repeat interval must be at least 1 ms (got 0)")]
    ZeroInterval,
    /// A simple trigger whose interval is beyond [`super::MAX_INTERVAL_MS`].
    #[error("the repeat interval {0} ms is too long: at most 100 years")]
    IntervalTooLong(u64),
    /// `end` is not after `start`.
    #[error("end time {end} is not after start time {start}: move the end later or drop it")]
    EndBeforeStart {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// A one-shot trigger whose time lies outside its own start/end window.
    #[error("one-shot time {at} lies outside the trigger's start/end window")]
    OnceOutsideWindow { at: DateTime<Utc> },
    /// A misfire policy that only makes sense for simple triggers, used on another kind.
    #[error("misfire policy `{policy}` applies to simple triggers only; a {kind} trigger can use smart, fire-once-now, do-nothing or ignore-misfires")]
    PolicyNotForKind { policy: String, kind: &'static str },
    /// A name, group or job key that cannot be used in a store path.
    #[error("{what} `{value}` is not valid: {reason}")]
    BadName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A calendar whose exclusions are malformed.
    #[error("calendar: {0}")]
    BadCalendar(String),
    /// An interval like `30s` that could not be read.
    #[error("interval `{input}`: {reason} (examples: 500ms, 30s, 5m, 1h, 1h30m, 2d)")]
    BadInterval { input: String, reason: String },
    /// A point in time that could not be read or does not exist.
    #[error("time `{input}`: {reason} (use RFC 3339 like 2025-06-01T12:00:00Z, or `YYYY-MM-DD HH:MM:SS` in the given zone)")]
    BadTime { input: String, reason: String },
}
