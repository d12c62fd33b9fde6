//! Calendars: Quartz-style exclusions a trigger's fire times must avoid — whole dates, weekly
//! days, and daily time ranges, all in local time of one zone.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{zone, ScheduleError};

/// Times a trigger must not fire at. Stored inline in the trigger (no shared calendar
/// registry): a fire time that falls in an exclusion is skipped, not delayed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    /// Whole local dates on which nothing fires (`2025-12-25`; in TOML quoted or not).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "text_or_toml::dates"
    )]
    pub excluded_dates: Vec<NaiveDate>,
    /// Days of the week on which nothing fires (`Sat`, `Sunday`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_weekdays: Vec<Weekday>,
    /// Local time-of-day ranges, every day, in which nothing fires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_daily: Vec<DailyRange>,
    /// Zone the exclusions are read in; `None` = the trigger's zone (a cron trigger's zone,
    /// otherwise UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// A local time-of-day range `[from, to)`; `from > to` wraps past midnight (`22:00`–`06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyRange {
    /// First excluded local time (inclusive): `"09:00"`, `"09:00:30"`, or a TOML time.
    #[serde(deserialize_with = "text_or_toml::time")]
    pub from: NaiveTime,
    /// First local time no longer excluded (exclusive).
    #[serde(deserialize_with = "text_or_toml::time")]
    pub to: NaiveTime,
}

/// Dates and times written as strings (JSON, quoted TOML) or as TOML's own date/time values.
mod text_or_toml {
    use chrono::{NaiveDate, NaiveTime};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Plain(String),
        Toml(toml::value::Datetime),
    }

    impl Text {
        fn into_string(self) -> String {
            match self {
                Text::Plain(s) => s,
                Text::Toml(d) => d.to_string(),
            }
        }
    }

    pub fn dates<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NaiveDate>, D::Error> {
        Vec::<Text>::deserialize(d)?
            .into_iter()
            .map(|t| {
                let s = t.into_string();
                NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                    .map_err(|_| D::Error::custom(format!("`{s}` is not a date like 2025-12-25")))
            })
            .collect()
    }

    pub fn time<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let s = Text::deserialize(d)?.into_string();
        NaiveTime::parse_from_str(&s, "%H:%M:%S%.f")
            .or_else(|_| NaiveTime::parse_from_str(&s, "%H:%M"))
            .map_err(|_| {
                D::Error::custom(format!("`{s}` is not a time of day like 09:00 or 17:30:00"))
            })
    }
}

impl DailyRange {
    fn contains(&self, t: NaiveTime) -> bool {
        if self.from < self.to {
            self.from <= t && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }
}

impl Calendar {
    /// Checks the calendar is usable: a known zone and no empty daily range.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if let Some(name) = &self.time_zone {
            zone::parse_zone(name)?;
        }
        for r in &self.excluded_daily {
            if r.from == r.to {
                return Err(ScheduleError::BadCalendar(format!(
                    "daily range {}–{} is empty; to exclude whole days use excluded_weekdays or excluded_dates",
                    r.from, r.to
                )));
            }
        }
        Ok(())
    }

    /// The zone exclusions are read in, given the trigger's own zone.
    pub fn zone(&self, trigger_zone: Tz) -> Tz {
        self.time_zone
            .as_deref()
            .and_then(|n| zone::parse_zone(n).ok())
            .unwrap_or(trigger_zone)
    }

    /// Whether instant `t` is excluded when read in `tz` (already resolved with [`Self::zone`]).
    pub fn is_excluded(&self, t: DateTime<Utc>, tz: Tz) -> bool {
        let wall = zone::local(t, tz);
        let date = wall.date();
        self.excluded_dates.contains(&date)
            || self.excluded_weekdays.contains(&date.weekday())
            || self.excluded_daily.iter().any(|r| r.contains(wall.time()))
    }

    /// If `t` is excluded, the earliest instant after `t` at which every exclusion that covers
    /// `t` has ended (the result may still be excluded by another rule: callers loop).
    pub fn excluded_until(&self, t: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let wall = zone::local(t, tz);
        let date = wall.date();
        let mut end_wall = None;
        let mut push = |w: chrono::NaiveDateTime| {
            end_wall = Some(end_wall.map_or(w, |e: chrono::NaiveDateTime| e.max(w)));
        };
        let next_midnight = date.succ_opt()?.and_time(NaiveTime::MIN);
        if self.excluded_dates.contains(&date) || self.excluded_weekdays.contains(&date.weekday()) {
            push(next_midnight);
        }
        for r in &self.excluded_daily {
            if !r.contains(wall.time()) {
                continue;
            }
            let end_date = if r.from < r.to || wall.time() < r.to {
                date
            } else {
                date.succ_opt()?
            };
            push(end_date.and_time(r.to));
        }
        let end = zone::resolve_local(tz, end_wall?)?;
        Some(if end > t {
            end
        } else {
            t + Duration::seconds(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn dates_weekdays_and_ranges_exclude_in_local_time() {
        let cal = Calendar {
            excluded_dates: vec![NaiveDate::from_ymd_opt(2025, 12, 25).unwrap()],
            excluded_weekdays: vec![Weekday::Sun],
            excluded_daily: vec![DailyRange {
                from: t(22, 0),
                to: t(6, 0),
            }],
            time_zone: None,
        };
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2025-12-24T23:30Z is 00:30 on the 25th in Berlin.
        assert!(cal.is_excluded(utc("2025-12-24T23:30:00Z"), berlin));
        // 2025-06-01 is a Sunday.
        assert!(cal.is_excluded(utc("2025-06-01T12:00:00Z"), Tz::UTC));
        assert!(!cal.is_excluded(utc("2025-06-02T12:00:00Z"), Tz::UTC));
        // Wrapping night range.
        assert!(cal.is_excluded(utc("2025-06-02T23:00:00Z"), Tz::UTC));
        assert!(cal.is_excluded(utc("2025-06-03T05:59:59Z"), Tz::UTC));
        assert!(!cal.is_excluded(utc("2025-06-03T06:00:00Z"), Tz::UTC));
    }

    #[test]
    fn excluded_until_finds_the_end_of_the_exclusion() {
        let cal = Calendar {
            excluded_daily: vec![DailyRange {
                from: t(22, 0),
                to: t(6, 0),
            }],
            ..Calendar::default()
        };
        assert_eq!(
            cal.excluded_until(utc("2025-06-02T23:00:00Z"), Tz::UTC),
            Some(utc("2025-06-03T06:00:00Z"))
        );
        assert_eq!(
            cal.excluded_until(utc("2025-06-03T01:00:00Z"), Tz::UTC),
            Some(utc("2025-06-03T06:00:00Z"))
        );
        assert_eq!(
            cal.excluded_until(utc("2025-06-03T12:00:00Z"), Tz::UTC),
            None
        );
        let weekends = Calendar {
            excluded_weekdays: vec![Weekday::Sat, Weekday::Sun],
            ..Calendar::default()
        };
        // Saturday 2025-06-07 -> Sunday midnight (still excluded; callers loop) .
        assert_eq!(
            weekends.excluded_until(utc("2025-06-07T10:00:00Z"), Tz::UTC),
            Some(utc("2025-06-08T00:00:00Z"))
        );
    }

    #[test]
    fn empty_range_is_rejected() {
        let cal = Calendar {
            excluded_daily: vec![DailyRange {
                from: t(9, 0),
                to: t(9, 0),
            }],
            ..Calendar::default()
        };
        assert!(matches!(cal.validate(), Err(ScheduleError::BadCalendar(_))));
    }

    #[test]
    fn toml_reads_quoted_and_native_dates_and_times() {
        let quoted: Calendar = toml::from_str(
            r#"
            excluded_dates = ["2025-12-25"]
            excluded_weekdays = ["SAT", "sun"]
            excluded_daily = [{ from = "09:00", to = "17:30" }]
            "#,
        )
        .unwrap();
        let native: Calendar = toml::from_str(
            r#"
            excluded_dates = [2025-12-25]
            excluded_weekdays = ["Saturday", "SUN"]
            excluded_daily = [{ from = 09:00:00, to = 17:30:00 }]
            "#,
        )
        .unwrap();
        assert_eq!(quoted, native);
        assert_eq!(quoted.excluded_daily[0].to, t(17, 30));
        let back: Calendar =
            serde_json::from_str(&serde_json::to_string(&quoted).unwrap()).unwrap();
        assert_eq!(back, quoted);
        let err =
            toml::from_str::<Calendar>(r#"excluded_daily = [{ from = "9am", to = "10:00" }]"#)
                .unwrap_err();
        assert!(err.to_string().contains("not a time of day"), "{err}");
    }

    #[test]
    fn serde_reads_friendly_forms() {
        let cal: Calendar = serde_json::from_str(
            r#"{"excluded_dates":["2025-12-25"],"excluded_weekdays":["Sat","sunday"],
                "excluded_daily":[{"from":"12:00:00","to":"13:00:00"}],"time_zone":"Europe/Berlin"}"#,
        )
        .unwrap();
        assert_eq!(cal.excluded_weekdays, vec![Weekday::Sat, Weekday::Sun]);
        assert!(cal.validate().is_ok());
    }
}
