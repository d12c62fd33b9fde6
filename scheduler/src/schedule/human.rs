//! Reading and writing times the way people type them on the command line: intervals like
//! `30s` / `1h30m` (`--every`) and points in time (`--at`).

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};

use super::{zone, ScheduleError};

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses an interval such as `500ms`, `30s`, `5m`, `1h`, `2d` or `1h30m` into milliseconds.
pub fn parse_every(input: &str) -> Result<u64, ScheduleError> {
    let bad = |reason: &str| ScheduleError::BadInterval {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let s = input.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut rest = s.as_str();
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad("expected a number before each unit"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                if unit.is_empty() {
                    bad("missing unit (ms, s, m, h or d)")
                } else {
                    bad("unknown unit (use ms, s, m, h or d)")
                }
            })?;
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| bad("the interval is too large"))?;
    }
    if total == 0 {
        return Err(bad("the interval must be more than zero"));
    }
    Ok(total)
}

/// Formats milliseconds the way [`parse_every`] reads them: `1h30m`, `500ms`.
pub fn format_interval(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, factor) in UNITS {
        if rest >= factor {
            out.push_str(&format!("{}{unit}", rest / factor));
            rest %= factor;
        }
    }
    out
}

/// Parses a point in time: RFC 3339 (`2025-06-01T12:00:00Z`, `…+02:00`), or a local
/// `YYYY-MM-DD HH:MM[:SS]` (a `T` also works) read in the IANA zone `time_zone`. A local time
/// that happens twice means its first occurrence; one that does not exist is an error.
pub fn parse_at(input: &str, time_zone: &str) -> Result<DateTime<Utc>, ScheduleError> {
    let text = input.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let tz = zone::parse_zone(time_zone)?;
    let wall = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .ok_or_else(|| ScheduleError::BadTime {
        input: input.to_string(),
        reason: "not a recognised date and time".to_string(),
    })?;
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t.with_timezone(&Utc)),
        LocalResult::None => Err(ScheduleError::BadTime {
            input: input.to_string(),
            reason: format!("this local time does not exist in {time_zone} (daylight-saving gap)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reads_units_and_combinations() {
        assert_eq!(parse_every("30s"), Ok(30_000));
        assert_eq!(parse_every("5m"), Ok(300_000));
        assert_eq!(parse_every("1h"), Ok(3_600_000));
        assert_eq!(parse_every("1h30m"), Ok(5_400_000));
        assert_eq!(parse_every("500ms"), Ok(500));
        assert_eq!(parse_every(" 2D "), Ok(172_800_000));
        for bad in [
            "",
            "0s",
            "s",
            "10",
            "10x",
            "1.5h",
            "-5s",
            "99999999999999999999s",
        ] {
            assert!(
                matches!(parse_every(bad), Err(ScheduleError::BadInterval { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [1, 500, 1_000, 30_000, 90_000, 5_400_000, 86_400_000 + 1] {
            assert_eq!(parse_every(&format_interval(ms)), Ok(ms));
        }
        assert_eq!(format_interval(5_400_000), "1h30m");
    }

    #[test]
    fn at_reads_rfc3339_and_local_times() {
        let z: DateTime<Utc> = "2025-06-01T10:00:00Z".parse().unwrap();
        assert_eq!(parse_at("2025-06-01T12:00:00+02:00", "UTC"), Ok(z));
        assert_eq!(parse_at("2025-06-01 12:00:00", "Europe/Berlin"), Ok(z));
        assert_eq!(parse_at("2025-06-01T12:00", "Europe/Berlin"), Ok(z));
        assert_eq!(parse_at("2025-06-01 10:00", "UTC"), Ok(z));
        // Fall-back overlap: the first 02:30 (CEST) is 00:30Z.
        assert_eq!(
            parse_at("2025-10-26 02:30:00", "Europe/Berlin"),
            Ok("2025-10-26T00:30:00Z".parse().unwrap())
        );
        assert!(matches!(
            parse_at("2025-03-30 02:30:00", "Europe/Berlin"),
            Err(ScheduleError::BadTime { .. })
        ));
        assert!(matches!(
            parse_at("tomorrow", "UTC"),
            Err(ScheduleError::BadTime { .. })
        ));
        assert!(matches!(
            parse_at("2025-06-01 10:00", "Nowhere/Land"),
            Err(ScheduleError::UnknownZone(_))
        ));
    }
}
