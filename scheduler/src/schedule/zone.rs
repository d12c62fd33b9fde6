//! Time zones: parsing IANA names and turning a local wall-clock time into one instant with
//! the DST rules every trigger and calendar in this module shares:
//!
//! - a wall time that happens once maps to that instant;
//! - a wall time that happens twice (fall-back overlap) maps to its *first* occurrence, so it
//!   fires once;
//! - a wall time that does not exist (spring-forward gap) maps to the first instant after the
//!   gap (the transition itself), so it is not lost.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::ScheduleError;

/// Parses an IANA zone name (`UTC`, `Europe/Berlin`).
pub fn parse_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownZone(name.to_string()))
}

/// The wall-clock time of `t` in `tz`.
pub fn local(t: DateTime<Utc>, tz: Tz) -> NaiveDateTime {
    t.with_timezone(&tz).naive_local()
}

/// The instant a local wall time stands for, by the module's DST rules (see the module docs).
/// `None` only for a time outside chrono's range.
pub fn resolve_local(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => gap_end(tz, wall),
    }
}

/// Whether `wall` does not exist in `tz` (falls in a spring-forward gap).
pub fn in_gap(tz: Tz, wall: NaiveDateTime) -> bool {
    matches!(tz.from_local_datetime(&wall), LocalResult::None)
}

/// The first instant after the gap that swallows `wall`: the first existing wall time after
/// it, found by whole minutes and then refined to the second. Gaps are at most a few hours.
fn gap_end(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    const MAX_GAP_MINUTES: i64 = 24 * 60;
    let minute = wall.with_second(0)?.with_nanosecond(0)?;
    let exists = |w: NaiveDateTime| !matches!(tz.from_local_datetime(&w), LocalResult::None);
    let mut first_minute = None;
    for step in 1..=MAX_GAP_MINUTES {
        let w = minute + Duration::minutes(step);
        if exists(w) {
            first_minute = Some(w);
            break;
        }
    }
    let mut first = first_minute?;
    // Transitions are on whole minutes in practice; historic ones need not be.
    for _ in 0..59 {
        let w = first - Duration::seconds(1);
        if w <= wall || !exists(w) {
            break;
        }
        first = w;
    }
    match tz.from_local_datetime(&first) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn wall(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn gap_maps_to_transition() {
        let berlin = parse_zone("Europe/Berlin").unwrap();
        // 2025-03-30 02:30 does not exist in Berlin; clocks jump 02:00 CET -> 03:00 CEST = 01:00Z.
        assert!(in_gap(berlin, wall(2025, 3, 30, 2, 30, 15)));
        assert_eq!(
            resolve_local(berlin, wall(2025, 3, 30, 2, 30, 15)),
            Some(utc("2025-03-30T01:00:00Z"))
        );
        let ny = parse_zone("America/New_York").unwrap();
        // 2025-03-09 02:00 EST -> 03:00 EDT = 07:00Z.
        assert_eq!(
            resolve_local(ny, wall(2025, 3, 9, 2, 0, 0)),
            Some(utc("2025-03-09T07:00:00Z"))
        );
    }

    #[test]
    fn overlap_maps_to_first_occurrence() {
        let berlin = parse_zone("Europe/Berlin").unwrap();
        // 2025-10-26 02:30 happens at 00:30Z (CEST) and 01:30Z (CET).
        assert_eq!(
            resolve_local(berlin, wall(2025, 10, 26, 2, 30, 0)),
            Some(utc("2025-10-26T00:30:00Z"))
        );
    }

    #[test]
    fn unknown_zone_is_an_error() {
        assert!(matches!(
            parse_zone("Mars/Olympus"),
            Err(ScheduleError::UnknownZone(_))
        ));
    }
}
