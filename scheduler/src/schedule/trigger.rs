//! Trigger definitions (`TriggerSpec`, `TriggerKind`) and their fire times: the first one, and
//! the next one after a given instant, honouring start/end, repeat counts and the calendar.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::cron::{just_before, QuartzCron};
use super::human::format_interval;
use super::misfire::{MisfirePolicy, TriggerState};
use super::{zone, Calendar, ScheduleError};

/// Group used when a trigger or job names none.
pub const DEFAULT_GROUP: &str = "default";
/// Quartz's default trigger priority.
pub const DEFAULT_PRIORITY: i32 = 5;
/// Quartz's default misfire threshold: a fire more than this late is a misfire.
pub const DEFAULT_MISFIRE_THRESHOLD_MS: u64 = 60_000;
/// Longest simple-trigger interval accepted: 100 years.
pub const MAX_INTERVAL_MS: u64 = 100 * 366 * 86_400_000;
/// How many calendar-excluded candidates one next-fire search skips before giving up (and
/// reporting no next fire) instead of looping forever.
pub const MAX_CALENDAR_SKIPS: usize = 10_000;

/// When a job should fire: the definition stored at `triggers/<group>.<name>` (JSON) and read
/// from jobs files (TOML). Immutable; what changes as it fires lives in [`TriggerState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerSpec {
    /// Trigger name, unique within its group.
    pub name: String,
    /// Trigger group.
    #[serde(default = "default_group")]
    pub group: String,
    /// Key of the job it fires: `<group>.<name>`.
    pub job: String,
    /// Cron, simple or one-shot.
    pub kind: TriggerKind,
    /// No fire before this instant. `None`: from when the trigger is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// No fire after this instant (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// Orders fires due at the same instant: higher first (Quartz default 5).
    #[serde(default = "default_priority")]
    pub priority: i32,
    /// Exclusions, stored inline with the trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<Calendar>,
    /// What to do with fires that are more than `misfire_threshold_ms` late.
    #[serde(default)]
    pub misfire: MisfirePolicy,
    /// Lateness beyond which a fire counts as misfired (default 60 s).
    #[serde(default = "default_threshold")]
    pub misfire_threshold_ms: u64,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The schedule shape of a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TriggerKind {
    /// Quartz cron expression evaluated in an IANA zone.
    Cron {
        expr: String,
        #[serde(default = "default_zone")]
        time_zone: String,
    },
    /// Fires at start, then every `interval_ms`; `repeat_count` = number of repeats after the
    /// first fire (Quartz), `None` = forever.
    Simple {
        interval_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repeat_count: Option<u64>,
    },
    /// Fires once at `at`.
    Once { at: DateTime<Utc> },
}

fn default_group() -> String {
    DEFAULT_GROUP.to_string()
}
fn default_priority() -> i32 {
    DEFAULT_PRIORITY
}
fn default_threshold() -> u64 {
    DEFAULT_MISFIRE_THRESHOLD_MS
}
fn default_zone() -> String {
    "UTC".to_string()
}

/// Checks a name or group: used in store paths and fire ids, so no `.`, `/`, `@`, `#`.
pub fn validate_name(what: &'static str, value: &str) -> Result<(), ScheduleError> {
    let reason = if value.is_empty() {
        Some("it must not be empty")
    } else if value.len() > 200 {
        Some("it must be at most 200 characters")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some("use only letters, digits, `-` and `_`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ScheduleError::BadName {
            what,
            value: value.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_interval(interval_ms: u64) -> Result<(), ScheduleError> {
    match interval_ms {
        0 => Err(ScheduleError::ZeroInterval),
        ms if ms > MAX_INTERVAL_MS => Err(ScheduleError::IntervalTooLong(ms)),
        _ => Ok(()),
    }
}

/// Checks a job key `<group>.<name>`.
pub fn validate_job_key(key: &str) -> Result<(), ScheduleError> {
    match key.split_once('.') {
        Some((group, name)) => {
            validate_name("job group", group)?;
            validate_name("job name", name)
        }
        None => Err(ScheduleError::BadName {
            what: "job key",
            value: key.to_string(),
            reason: "it must be `<group>.<name>`",
        }),
    }
}

impl TriggerKind {
    /// A one-line description for tables: `cron 0 0 12 ? * MON-FRI (Europe/Berlin)`,
    /// `every 30s, forever`, `once at 2025-06-01T12:00:00Z`.
    pub fn describe(&self) -> String {
        match self {
            TriggerKind::Cron { expr, time_zone } => format!("cron {expr} ({time_zone})"),
            TriggerKind::Simple {
                interval_ms,
                repeat_count,
            } => match repeat_count {
                None => format!("every {}, forever", format_interval(*interval_ms)),
                Some(0) => "once at start".to_string(),
                Some(n) => format!(
                    "every {}, {} time{}",
                    format_interval(*interval_ms),
                    n + 1,
                    if n + 1 == 1 { "" } else { "s" }
                ),
            },
            TriggerKind::Once { at } => format!("once at {}", at.to_rfc3339()),
        }
    }

    /// `cron`, `simple` or `once`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            TriggerKind::Cron { .. } => "cron",
            TriggerKind::Simple { .. } => "simple",
            TriggerKind::Once { .. } => "once",
        }
    }

    /// The zone the trigger lives in: a cron trigger's zone, otherwise UTC.
    pub fn zone(&self) -> Result<Tz, ScheduleError> {
        match self {
            TriggerKind::Cron { time_zone, .. } => zone::parse_zone(time_zone),
            _ => Ok(Tz::UTC),
        }
    }
}

impl TriggerSpec {
    /// A trigger with defaults for everything but name, job and kind.
    pub fn new(name: impl Into<String>, job: impl Into<String>, kind: TriggerKind) -> Self {
        Self {
            name: name.into(),
            group: default_group(),
            job: job.into(),
            kind,
            start: None,
            end: None,
            priority: DEFAULT_PRIORITY,
            calendar: None,
            misfire: MisfirePolicy::default(),
            misfire_threshold_ms: DEFAULT_MISFIRE_THRESHOLD_MS,
            description: None,
        }
    }

    /// `<group>.<name>`: the trigger's store key.
    pub fn key(&self) -> String {
        format!("{}.{}", self.group, self.name)
    }

    /// Checks everything that can be checked without a clock.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        validate_name("trigger name", &self.name)?;
        validate_name("trigger group", &self.group)?;
        validate_job_key(&self.job)?;
        if let (Some(start), Some(end)) = (self.start, self.end) {
            if end <= start {
                return Err(ScheduleError::EndBeforeStart { start, end });
            }
        }
        match &self.kind {
            TriggerKind::Cron { expr, time_zone } => {
                if !QuartzCron::parse(expr, time_zone)?.ever_fires() {
                    return Err(ScheduleError::BadCron {
                        expr: expr.clone(),
                        reason: "it matches no date at all (like 30 February); check day-of-month against month".into(),
                    });
                }
            }
            TriggerKind::Simple { interval_ms, .. } => check_interval(*interval_ms)?,
            TriggerKind::Once { at } => {
                if self.start.is_some_and(|s| *at < s) || self.end.is_some_and(|e| *at > e) {
                    return Err(ScheduleError::OnceOutsideWindow { at: *at });
                }
            }
        }
        if self.misfire.is_simple_only() && !matches!(self.kind, TriggerKind::Simple { .. }) {
            return Err(ScheduleError::PolicyNotForKind {
                policy: self.misfire.name().to_string(),
                kind: self.kind.kind_name(),
            });
        }
        if let Some(cal) = &self.calendar {
            cal.validate()?;
        }
        Ok(())
    }

    /// The zone calendar exclusions are read in.
    fn calendar_zone(&self) -> Result<Tz, ScheduleError> {
        let tz = self.kind.zone()?;
        Ok(self.calendar.as_ref().map_or(tz, |c| c.zone(tz)))
    }
}

/// The fire-time engine for one trigger: the spec with its cron expression parsed once.
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    spec: &'a TriggerSpec,
    cron: Option<QuartzCron>,
    cal_tz: Tz,
}

impl<'a> Schedule<'a> {
    /// Parses what needs parsing; fails when fire times cannot be computed (bad cron
    /// expression or zone, bad interval). Names are not checked: see [`TriggerSpec::validate`].
    pub fn new(spec: &'a TriggerSpec) -> Result<Self, ScheduleError> {
        let cron = match &spec.kind {
            TriggerKind::Cron { expr, time_zone } => Some(QuartzCron::parse(expr, time_zone)?),
            _ => None,
        };
        if let TriggerKind::Simple { interval_ms, .. } = spec.kind {
            check_interval(interval_ms)?;
        }
        Ok(Self {
            spec,
            cron,
            cal_tz: spec.calendar_zone()?,
        })
    }

    /// The spec this schedule computes for.
    pub fn spec(&self) -> &TriggerSpec {
        self.spec
    }

    /// The simple trigger's grid origin: a reschedule-now misfire moves it (kept in the
    /// state, or set at creation when the spec has no start), otherwise the spec's start.
    fn simple_origin(&self, state: &TriggerState) -> Option<DateTime<Utc>> {
        state
            .simple_start_ms
            .and_then(DateTime::from_timestamp_millis)
            .or(self.spec.start)
    }

    /// The simple trigger's effective repeat count (`None` = forever).
    fn simple_repeats(&self, state: &TriggerState) -> Option<u64> {
        match self.spec.kind {
            TriggerKind::Simple { repeat_count, .. } => state.simple_repeat_count.or(repeat_count),
            _ => None,
        }
    }

    /// Raw schedule (no calendar, no end): the first scheduled time strictly after `after`.
    fn raw_next(&self, state: &TriggerState, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.spec.start;
        match &self.spec.kind {
            TriggerKind::Cron { .. } => {
                let from = match start {
                    Some(s) if just_before(s) > after => just_before(s),
                    _ => after,
                };
                self.cron.as_ref()?.next_after(from)
            }
            TriggerKind::Simple { interval_ms, .. } => {
                let origin = self.simple_origin(state)?;
                let interval = *interval_ms as i64;
                let k = if after < origin {
                    0
                } else {
                    (after - origin).num_milliseconds() / interval + 1
                };
                if self.simple_repeats(state).is_some_and(|r| k as u64 > r) {
                    return None;
                }
                origin.checked_add_signed(Duration::milliseconds(k.checked_mul(interval)?))
            }
            TriggerKind::Once { at } => (*at > after).then_some(*at),
        }
    }

    /// The first scheduled time strictly after `after` that is within the end and not
    /// excluded by the calendar; `None` when the trigger has no more fires (or the calendar
    /// excluded [`MAX_CALENDAR_SKIPS`] candidates in a row).
    pub fn next_after(&self, state: &TriggerState, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = after;
        for _ in 0..MAX_CALENDAR_SKIPS {
            let t = self.raw_next(state, from)?;
            if self.spec.end.is_some_and(|e| t > e) {
                return None;
            }
            match self
                .spec
                .calendar
                .as_ref()
                .and_then(|c| c.excluded_until(t, self.cal_tz))
            {
                // Resume the search at the end of the exclusion (at or after it).
                Some(resume) => from = just_before(resume).max(t),
                None => return Some(t),
            }
        }
        None
    }

    /// The state of a trigger created at `now`: nothing fired, and its first fire — the first
    /// scheduled time at or after its start (`now` when it has none; a one-shot's `at`). A start
    /// (or `at`) in the past makes that first fire late; the misfire policy then decides, as in
    /// Quartz.
    pub fn initial_state(&self, now: DateTime<Utc>) -> TriggerState {
        let mut state = TriggerState::default();
        let origin = match self.spec.kind {
            // A one-shot is owed even if its time has passed: the misfire policy decides.
            TriggerKind::Once { at } => at,
            _ => self.spec.start.unwrap_or(now),
        };
        if let TriggerKind::Simple { .. } = self.spec.kind {
            if self.spec.start.is_none() {
                state.simple_start_ms = Some(origin.timestamp_millis());
            }
        }
        state.next_fire_ms = self
            .next_after(&state, just_before(origin))
            .map(|t| t.timestamp_millis());
        state
    }

    /// Number of raw schedule points in `[from, to)` for a simple trigger (Quartz's
    /// `computeNumTimesFiredBetween`: whole intervals between them).
    pub(crate) fn simple_intervals_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        match self.spec.kind {
            TriggerKind::Simple { interval_ms, .. } if to > from => {
                ((to - from).num_milliseconds() as u64) / interval_ms
            }
            _ => 0,
        }
    }

    /// The effective repeat count (simple triggers), for misfire handling.
    pub(crate) fn repeats(&self, state: &TriggerState) -> Option<u64> {
        self.simple_repeats(state)
    }
}

/// The first fire of a trigger created at `now` (see [`Schedule::initial_state`]).
pub fn first_fire(
    spec: &TriggerSpec,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ScheduleError> {
    Ok(Schedule::new(spec)?.initial_state(now).next_fire())
}

/// The initial state of a trigger created at `now`: its first fire, nothing fired yet.
pub fn initial_state(
    spec: &TriggerSpec,
    now: DateTime<Utc>,
) -> Result<TriggerState, ScheduleError> {
    Ok(Schedule::new(spec)?.initial_state(now))
}

/// The next fire strictly after `after` given the trigger's state (times fired, and a simple
/// trigger's moved origin/count after a reschedule-now misfire).
pub fn next_after(
    spec: &TriggerSpec,
    state: &TriggerState,
    after: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ScheduleError> {
    Ok(Schedule::new(spec)?.next_after(state, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::DailyRange;
    use chrono::{NaiveTime, Weekday};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn cron(expr: &str, zone: &str) -> TriggerSpec {
        TriggerSpec::new(
            "t",
            "g.j",
            TriggerKind::Cron {
                expr: expr.into(),
                time_zone: zone.into(),
            },
        )
    }

    fn simple(interval_ms: u64, repeat_count: Option<u64>) -> TriggerSpec {
        TriggerSpec::new(
            "t",
            "g.j",
            TriggerKind::Simple {
                interval_ms,
                repeat_count,
            },
        )
    }

    #[test]
    fn validate_reports_what_to_fix() {
        let mut s = simple(0, None);
        assert_eq!(s.validate(), Err(ScheduleError::ZeroInterval));
        s = simple(u64::MAX, None);
        assert!(matches!(
            s.validate(),
            Err(ScheduleError::IntervalTooLong(_))
        ));
        s = simple(1000, None);
        s.name = "a.b".into();
        assert!(matches!(s.validate(), Err(ScheduleError::BadName { .. })));
        s = simple(1000, None);
        s.job = "nodot".into();
        assert!(matches!(
            s.validate(),
            Err(ScheduleError::BadName {
                what: "job key",
                ..
            })
        ));
        s = simple(1000, None);
        s.start = Some(at("2025-01-02T00:00:00Z"));
        s.end = Some(at("2025-01-01T00:00:00Z"));
        assert!(matches!(
            s.validate(),
            Err(ScheduleError::EndBeforeStart { .. })
        ));
        let mut c = cron("0 0 * * * ?", "UTC");
        c.misfire = MisfirePolicy::RescheduleNextWithExistingCount;
        assert!(matches!(
            c.validate(),
            Err(ScheduleError::PolicyNotForKind { kind: "cron", .. })
        ));
        assert!(matches!(
            cron("0 0 * * * ?", "Nowhere/Else").validate(),
            Err(ScheduleError::UnknownZone(_))
        ));
        assert!(matches!(
            cron("0 0 * * *", "UTC").validate(),
            Err(ScheduleError::BadCron { .. })
        ));
        match cron("0 0 0 30 2 ?", "UTC").validate() {
            Err(ScheduleError::BadCron { reason, .. }) => assert!(reason.contains("no date")),
            other => panic!("30 February should be rejected, got {other:?}"),
        }
        // A year in the past is a valid definition (it simply has no next fire).
        assert_eq!(cron("0 0 12 1 1 ? 2020", "UTC").validate(), Ok(()));
        let mut o = TriggerSpec::new(
            "t",
            "g.j",
            TriggerKind::Once {
                at: at("2025-01-01T00:00:00Z"),
            },
        );
        o.end = Some(at("2024-12-31T00:00:00Z"));
        assert!(matches!(
            o.validate(),
            Err(ScheduleError::OnceOutsideWindow { .. })
        ));
        assert_eq!(cron("0 0 * * * ?", "Europe/Berlin").validate(), Ok(()));
        assert_eq!(simple(1000, Some(3)).validate(), Ok(()));
    }

    #[test]
    fn simple_fires_on_the_start_grid_and_counts_repeats() {
        let mut s = simple(10_000, Some(2));
        s.start = Some(at("2025-01-01T00:00:00Z"));
        let sched = Schedule::new(&s).unwrap();
        let st = sched.initial_state(at("2024-12-31T00:00:00Z"));
        assert_eq!(st.next_fire(), Some(at("2025-01-01T00:00:00Z")));
        let fires: Vec<_> =
            std::iter::successors(st.next_fire(), |t| sched.next_after(&st, *t)).collect();
        // repeat_count 2 = the first fire and two repeats.
        assert_eq!(
            fires,
            vec![
                at("2025-01-01T00:00:00Z"),
                at("2025-01-01T00:00:10Z"),
                at("2025-01-01T00:00:20Z")
            ]
        );
        // Off-grid `after` lands on the next grid point.
        assert_eq!(
            sched.next_after(&st, at("2025-01-01T00:00:03Z")),
            Some(at("2025-01-01T00:00:10Z"))
        );
    }

    #[test]
    fn simple_without_start_begins_now_and_end_is_inclusive() {
        let mut s = simple(60_000, None);
        s.end = Some(at("2025-01-01T00:02:00Z"));
        let st = initial_state(&s, at("2025-01-01T00:00:00Z")).unwrap();
        assert_eq!(st.next_fire(), Some(at("2025-01-01T00:00:00Z")));
        assert_eq!(
            st.simple_start_ms,
            Some(at("2025-01-01T00:00:00Z").timestamp_millis())
        );
        assert_eq!(
            next_after(&s, &st, at("2025-01-01T00:01:00Z")).unwrap(),
            Some(at("2025-01-01T00:02:00Z"))
        );
        assert_eq!(
            next_after(&s, &st, at("2025-01-01T00:02:00Z")).unwrap(),
            None
        );
    }

    #[test]
    fn cron_respects_start_and_end() {
        let mut c = cron("0 0 12 * * ?", "UTC");
        c.start = Some(at("2025-06-10T12:00:00Z"));
        c.end = Some(at("2025-06-11T12:00:00Z"));
        // Created long before the start: the first fire is the start itself (it matches).
        assert_eq!(
            first_fire(&c, at("2025-06-01T00:00:00Z")).unwrap(),
            Some(at("2025-06-10T12:00:00Z"))
        );
        let st = TriggerState::default();
        assert_eq!(
            next_after(&c, &st, at("2025-06-10T12:00:00Z")).unwrap(),
            Some(at("2025-06-11T12:00:00Z"))
        );
        assert_eq!(
            next_after(&c, &st, at("2025-06-11T12:00:00Z")).unwrap(),
            None
        );
    }

    #[test]
    fn once_in_the_past_is_still_owed() {
        let o = TriggerSpec::new(
            "t",
            "g.j",
            TriggerKind::Once {
                at: at("2025-01-01T00:00:00Z"),
            },
        );
        assert_eq!(
            first_fire(&o, at("2025-02-01T00:00:00Z")).unwrap(),
            Some(at("2025-01-01T00:00:00Z"))
        );
        let st = TriggerState::default();
        assert_eq!(
            next_after(&o, &st, at("2025-01-01T00:00:00Z")).unwrap(),
            None
        );
    }

    #[test]
    fn calendar_exclusions_are_skipped() {
        let mut c = cron("0 0 * * * ?", "Europe/Berlin");
        c.calendar = Some(Calendar {
            excluded_daily: vec![DailyRange {
                from: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                to: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            }],
            excluded_weekdays: vec![Weekday::Sat, Weekday::Sun],
            ..Calendar::default()
        });
        let st = TriggerState::default();
        // Monday 2025-06-02 08:00 CEST = 06:00Z; next 09:00..16:00 excluded -> 17:00 CEST.
        assert_eq!(
            next_after(&c, &st, at("2025-06-02T06:00:00Z")).unwrap(),
            Some(at("2025-06-02T15:00:00Z"))
        );
        // Friday 23:00 CEST -> the weekend is excluded -> Monday 00:00 CEST.
        assert_eq!(
            next_after(&c, &st, at("2025-06-06T21:00:00Z")).unwrap(),
            Some(at("2025-06-08T22:00:00Z"))
        );
        // A simple trigger every 30 min with the same calendar (read in UTC).
        let mut s = simple(30 * 60_000, None);
        s.start = Some(at("2025-06-02T00:00:00Z"));
        s.calendar = c.calendar.clone();
        let st = initial_state(&s, at("2025-06-01T00:00:00Z")).unwrap();
        assert_eq!(
            next_after(&s, &st, at("2025-06-02T08:45:00Z")).unwrap(),
            Some(at("2025-06-02T17:00:00Z"))
        );
    }

    #[test]
    fn a_calendar_that_excludes_everything_ends_the_search() {
        let mut c = cron("* * * * * ?", "UTC");
        c.calendar = Some(Calendar {
            excluded_weekdays: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ],
            ..Calendar::default()
        });
        assert_eq!(
            next_after(&c, &TriggerState::default(), at("2025-06-02T06:00:00Z")).unwrap(),
            None
        );
    }

    #[test]
    fn json_and_toml_read_the_same_spec() {
        let json = r#"{"name":"nightly","group":"ops","job":"ops.backup",
            "kind":{"type":"cron","expr":"0 30 2 * * ?","time_zone":"Europe/Berlin"},
            "misfire":"do-nothing","priority":7}"#;
        let from_json: TriggerSpec = serde_json::from_str(json).unwrap();
        let from_toml: TriggerSpec = toml::from_str(
            r#"
            name = "nightly"
            group = "ops"
            job = "ops.backup"
            misfire = "do-nothing"
            priority = 7
            kind = { type = "cron", expr = "0 30 2 * * ?", time_zone = "Europe/Berlin" }
            "#,
        )
        .unwrap();
        assert_eq!(from_json, from_toml);
        assert_eq!(from_json.misfire_threshold_ms, DEFAULT_MISFIRE_THRESHOLD_MS);
        let back: TriggerSpec =
            serde_json::from_str(&serde_json::to_string(&from_json).unwrap()).unwrap();
        assert_eq!(back, from_json);
        let every: TriggerSpec = serde_json::from_str(
            r#"{"name":"t","job":"default.j","kind":{"type":"simple","interval_ms":30000}}"#,
        )
        .unwrap();
        assert_eq!(every.group, DEFAULT_GROUP);
        assert_eq!(every.priority, DEFAULT_PRIORITY);
        assert_eq!(every.kind.describe(), "every 30s, forever");
    }

    #[test]
    fn describe_is_readable() {
        assert_eq!(
            cron("0 0 12 ? * MON-FRI", "Europe/Berlin").kind.describe(),
            "cron 0 0 12 ? * MON-FRI (Europe/Berlin)"
        );
        assert_eq!(
            simple(90_000, Some(2)).kind.describe(),
            "every 1m30s, 3 times"
        );
        assert_eq!(
            TriggerKind::Once {
                at: at("2025-06-01T12:00:00Z")
            }
            .describe(),
            "once at 2025-06-01T12:00:00+00:00"
        );
    }
}
