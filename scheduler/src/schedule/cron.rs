//! Quartz cron expressions, parsed and iterated by `croner`, evaluated on a zone's wall clock.
//!
//! Syntax (Quartz): `sec min hour day-of-month month day-of-week [year]`, with `*`, `,`, `-`,
//! `/` (also Quartz's `0/15`), names (`JAN`, `MON`), `?` in one of the two day fields, `L`,
//! `LW` and `15W` in day-of-month, and `6#3`, `6L` and a bare `L` (= Saturday) in
//! day-of-week. Day-of-week numbers are Quartz's: 1 = Sunday … 7 = Saturday. Ranges may wrap
//! as in Quartz (`FRI-MON`, `22-2`, `NOV-FEB`). Not supported: `L-3` (offset from the last
//! day) — rejected with a clear error.
//!
//! DST: croner walks the *local* wall clock (as a naive date-time) and each matching wall
//! time is mapped to an instant by [`zone::resolve_local`]: a time in a spring-forward gap fires
//! at the first instant after the gap (merged with any other fire at that instant), a time
//! repeated by a fall-back fires once, at its first occurrence. Quartz itself skips gap times
//! and may fire overlap times twice; we do neither, deliberately.

use chrono::{DateTime, Duration, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::{zone, ScheduleError};

/// How many croner matches one search may look at before giving up (a fall-back overlap of a
/// per-second expression needs up to 3600 + a few).
const MAX_MATCHES_PER_SEARCH: usize = 20_000;

const FIELD_NAMES: [&str; 7] = [
    "seconds",
    "minutes",
    "hours",
    "day-of-month",
    "month",
    "day-of-week",
    "year",
];

/// A parsed Quartz cron expression bound to its time zone; the thing that computes cron fire
/// times.
#[derive(Debug, Clone)]
pub struct QuartzCron {
    expr: String,
    tz: Tz,
    cron: Cron,
}

impl QuartzCron {
    /// Parses `expr` (Quartz syntax) for evaluation in the IANA zone `time_zone`.
    pub fn parse(expr: &str, time_zone: &str) -> Result<Self, ScheduleError> {
        let tz = zone::parse_zone(time_zone)?;
        let translated = translate(expr)?;
        let cron = parser()
            .parse(&translated)
            .map_err(|e| bad(expr, explain(&translated, e)))?;
        Ok(Self {
            expr: expr.trim().to_string(),
            tz,
            cron,
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The zone the expression is evaluated in.
    pub fn zone(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `after`, or `None` if there is none (a year field in
    /// the past, an impossible date like 30 February, or beyond croner's year 5000 limit).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Every local wall time before `after`'s own maps to an instant <= `after` (the
        // mapping is monotonic), so the walk can start there.
        let mut cursor: NaiveDateTime = zone::local(after, self.tz).with_nanosecond(0)?;
        for _ in 0..MAX_MATCHES_PER_SEARCH {
            let wall = self.cron.find_next_occurrence(&cursor, false).ok()?;
            let instant = zone::resolve_local(self.tz, wall)?;
            if instant > after {
                return Some(instant);
            }
            cursor = wall;
        }
        None
    }

    /// Whether the expression matches any date at all from 1970 on (`0 0 0 30 2 ?` does
    /// not). Can take a few milliseconds for one that never matches: call it when a trigger is
    /// defined, not per fire.
    pub fn ever_fires(&self) -> bool {
        self.next_after(DateTime::UNIX_EPOCH).is_some()
    }

    /// Whether the wall time of `t` matches the expression (ignores DST mapping).
    pub fn matches_wall(&self, t: DateTime<Utc>) -> bool {
        let wall = zone::local(t, self.tz);
        self.cron.is_time_matching(&wall).unwrap_or(false)
    }

    /// An English description of the expression (croner's, with `LW` worded correctly).
    pub fn describe(&self) -> String {
        let text = self.cron.describe();
        let dom = self.expr.split_whitespace().nth(3).unwrap_or("");
        if dom.eq_ignore_ascii_case("LW") {
            text.replace("the last day of the month", "the last weekday of the month")
        } else {
            text
        }
    }

    /// The next fire times after `after`, at most `limit` of them (for previews).
    pub fn upcoming(&self, after: DateTime<Utc>, limit: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(limit);
        let mut from = after;
        while out.len() < limit {
            match self.next_after(from) {
                Some(t) => {
                    out.push(t);
                    from = t;
                }
                None => break,
            }
        }
        out
    }
}

/// One millisecond earlier: searching strictly after it finds times at or after `t`.
pub(crate) fn just_before(t: DateTime<Utc>) -> DateTime<Utc> {
    t - Duration::milliseconds(1)
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Optional)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .build()
}

/// croner's error, prefixed with the field that causes it (found by parsing each field alone).
fn explain(translated: &str, error: croner::errors::CronError) -> String {
    let fields: Vec<&str> = translated.split_whitespace().collect();
    for (i, field) in fields.iter().enumerate() {
        let mut probe = ["0", "0", "0", "*", "*", "?", "*"];
        probe[i] = field;
        if i == 3 {
            probe[5] = "?";
        } else if i == 5 {
            probe[3] = "?";
        }
        if let Err(e) = parser().parse(&probe.join(" ")) {
            return format!("field {} `{field}`: {e}", FIELD_NAMES[i]);
        }
    }
    error.to_string()
}

fn bad(expr: &str, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::BadCron {
        expr: expr.trim().to_string(),
        reason: reason.into(),
    }
}

/// Checks the Quartz rules croner does not enforce and rewrites what croner reads differently.
fn translate(expr: &str) -> Result<String, ScheduleError> {
    let mut fields: Vec<String> = expr
        .split_whitespace()
        .map(|f| f.to_ascii_uppercase())
        .collect();
    if fields.len() != 6 && fields.len() != 7 {
        return Err(bad(
            expr,
            format!(
                "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), got {}",
                fields.len()
            ),
        ));
    }
    for (i, f) in fields.iter().enumerate() {
        if i != 3 && i != 5 && f.contains('?') {
            return Err(bad(
                expr,
                format!(
                    "field {} has `?`, which is only allowed in day-of-month or day-of-week",
                    FIELD_NAMES[i]
                ),
            ));
        }
        if (i == 3 || i == 5) && f.contains('?') && f != "?" {
            return Err(bad(
                expr,
                format!("field {}: `?` must stand alone", FIELD_NAMES[i]),
            ));
        }
    }
    let (dom, dow) = (fields[3].as_str(), fields[5].as_str());
    if dom == "?" && dow == "?" {
        return Err(bad(
            expr,
            "`?` may be used in only one of day-of-month and day-of-week",
        ));
    }
    let specific = |f: &str| f != "?" && f != "*";
    if specific(dom) && specific(dow) {
        return Err(bad(
            expr,
            "both day-of-month and day-of-week are set; put `?` in one of them (Quartz does not combine them)",
        ));
    }
    if dom.contains("L-") {
        return Err(bad(
            expr,
            "day-of-month offsets from the last day (`L-n`) are not supported; use `L`, `LW` or explicit days",
        ));
    }
    if dom.contains('L') && dom != "L" && dom != "LW" {
        return Err(bad(expr, "day-of-month `L` must stand alone (`L` or `LW`)"));
    }
    check_day_of_week(expr, dow)?;
    if dow == "L" {
        // Quartz: a bare `L` in day-of-week is the last day of the week, Saturday.
        fields[5] = "7".to_string();
    }
    if fields.len() == 7 {
        check_years(expr, &fields[6])?;
    }
    for (i, field) in fields.iter_mut().enumerate().take(6) {
        *field = expand_wrapping_ranges(field, i);
    }
    Ok(fields.join(" "))
}

/// Quartz reads a range whose end is below its start as wrapping around (`FRI-MON`, `22-2`,
/// `NOV-FEB`, `50-10/5`); croner does not, so such parts become explicit lists.
fn expand_wrapping_ranges(field: &str, index: usize) -> String {
    let (min, max, names): (u32, u32, &[&str]) = match index {
        0 | 1 => (0, 59, &[]),
        2 => (0, 23, &[]),
        3 => (1, 31, &[]),
        4 => (1, 12, &MONTH_NAMES),
        _ => (1, 7, &WEEKDAY_NAMES),
    };
    let value = |v: &str| -> Option<u32> {
        v.parse::<u32>()
            .ok()
            .or_else(|| names.iter().position(|n| *n == v).map(|p| p as u32 + min))
    };
    let parts: Vec<String> = field
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, s.parse::<u32>().ok()),
                None => (part, Some(1)),
            };
            let Some((a, b)) = range.split_once('-') else {
                return part.to_string();
            };
            match (value(a), value(b), step) {
                (Some(a), Some(b), Some(step))
                    if a > b
                        && step > 0
                        && (min..=max).contains(&a)
                        && (min..=max).contains(&b) =>
                {
                    let span = max - min + 1;
                    (0..=(b + span - a))
                        .step_by(step as usize)
                        .map(|i| (min + (a - min + i) % span).to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                }
                _ => part.to_string(),
            }
        })
        .collect();
    parts.join(",")
}

const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Day-of-week values must be Quartz's 1..7 (or names); `#n` must be 1..5.
fn check_day_of_week(expr: &str, dow: &str) -> Result<(), ScheduleError> {
    if dow == "?" || dow == "*" || dow == "L" {
        return Ok(());
    }
    for part in dow.split(',') {
        let (base, nth) = match part.split_once('#') {
            Some((b, n)) => (b, Some(n)),
            None => (part, None),
        };
        if let Some(n) = nth {
            if !matches!(n, "1" | "2" | "3" | "4" | "5") {
                return Err(bad(
                    expr,
                    format!("day-of-week `{part}`: the number after `#` must be 1 to 5"),
                ));
            }
        }
        let base = base.strip_suffix('L').unwrap_or(base);
        let values = base.split_once('/').map_or(base, |(v, _)| v);
        for v in values.split('-') {
            if v.is_empty() || v == "*" || WEEKDAY_NAMES.contains(&v) {
                continue;
            }
            match v.parse::<u32>() {
                Ok(1..=7) => {}
                _ => {
                    return Err(bad(
                        expr,
                        format!(
                        "day-of-week value `{v}` must be 1-7 (1 = SUN … 7 = SAT) or a name SUN-SAT"
                    ),
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Years must be 1970..=2199 (Quartz allows up to 2099; we are a little more generous).
fn check_years(expr: &str, year: &str) -> Result<(), ScheduleError> {
    for part in year.split(',') {
        let values = part.split_once('/').map_or(part, |(v, _)| v);
        for v in values.split('-') {
            if v.is_empty() || v == "*" {
                continue;
            }
            match v.parse::<u32>() {
                Ok(1970..=2199) => {}
                _ => {
                    return Err(bad(
                        expr,
                        format!("year value `{v}` must be between 1970 and 2199"),
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_keeps_quartz_meaning() {
        assert_eq!(translate("0 0 12 ? * L").unwrap(), "0 0 12 ? * 7");
        assert_eq!(
            translate("0 0 12 ? * fri-mon").unwrap(),
            "0 0 12 ? * 6,7,1,2"
        );
        assert_eq!(translate("0 0 22-2/2 * * ?").unwrap(), "0 0 22,0,2 * * ?");
        assert_eq!(
            translate("0 0 12 1 NOV-FEB ?").unwrap(),
            "0 0 12 1 11,12,1,2 ?"
        );
        // Ordinary ranges and steps pass through for croner.
        assert_eq!(
            translate("0 0/15 9-17 ? JAN-MAR MON-FRI 2025").unwrap(),
            "0 0/15 9-17 ? JAN-MAR MON-FRI 2025"
        );
    }

    #[test]
    fn descriptions_read_naturally() {
        let d = |e: &str| QuartzCron::parse(e, "UTC").unwrap().describe();
        assert!(d("0 0 12 ? * 2-6").contains("Monday, Tuesday, Wednesday, Thursday, and Friday"));
        assert!(d("0 0 10 ? * 6#3").contains("3rd Friday"));
        assert!(d("0 0 0 LW * ?").contains("last weekday of the month"));
    }

    #[test]
    fn upcoming_lists_consecutive_fires() {
        let c = QuartzCron::parse("0 0 */6 * * ?", "UTC").unwrap();
        let after: DateTime<Utc> = "2025-06-01T05:00:00Z".parse().unwrap();
        let times: Vec<String> = c
            .upcoming(after, 3)
            .iter()
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            times,
            [
                "2025-06-01T06:00:00+00:00",
                "2025-06-01T12:00:00+00:00",
                "2025-06-01T18:00:00+00:00"
            ]
        );
        assert!(c.ever_fires());
        assert!(!QuartzCron::parse("0 0 0 31 4 ?", "UTC")
            .unwrap()
            .ever_fires());
    }
}
