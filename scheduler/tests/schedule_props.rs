//! Property tests of the schedule module's invariants: next fires are strictly after the
//! search point, first (no skipped fire in between), inside [start, end] and never excluded by
//! the calendar; simple triggers stay on the start + k·interval grid; `resolve_due` never
//! returns a time twice and, for ignore-misfires, fires + misfired cover every scheduled time
//! between the old next fire and now exactly once.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use proptest::prelude::*;
use warden_scheduler::schedule::{
    in_gap, initial_state, next_after, resolve_due, Calendar, DailyRange, MisfirePolicy,
    QuartzCron, Schedule, TriggerKind, TriggerSpec, TriggerState, MAX_CATCH_UP_FIRES,
};

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];

fn cron_expr() -> impl Strategy<Value = String> {
    let sec = prop::sample::select(vec!["0", "*/15", "30"]);
    let min = prop::sample::select(vec!["0", "*/5", "30", "15,45", "*"]);
    let hour = prop::sample::select(vec!["*", "2", "1-3", "*/6", "0,12", "22-2"]);
    let days = prop::sample::select(vec![
        ("?", "*"),
        ("?", "MON-FRI"),
        ("?", "6#3"),
        ("?", "6L"),
        ("?", "1"),
        ("?", "FRI-MON"),
        ("*", "?"),
        ("L", "?"),
        ("LW", "?"),
        ("15W", "?"),
        ("1,15", "?"),
        ("29", "?"),
    ]);
    let month = prop::sample::select(vec!["*", "2", "*/3", "JAN,JUL", "3,10,11"]);
    (sec, min, hour, days, month)
        .prop_map(|(s, mi, h, (dom, dow), mo)| format!("{s} {mi} {h} {dom} {mo} {dow}"))
}

/// An instant in 2024..2027 at millisecond precision.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let lo = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let hi = DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    (lo..hi).prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap())
}

fn calendar() -> impl Strategy<Value = Option<Calendar>> {
    let weekdays = prop::sample::subsequence(
        vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ],
        0..=3,
    );
    let range = prop::option::of((0u32..24, 0u32..24).prop_filter("non-empty", |(a, b)| a != b));
    let date = prop::option::of(0u32..1000);
    (weekdays, range, date, any::<bool>()).prop_map(|(w, r, d, some)| {
        some.then(|| Calendar {
            excluded_weekdays: w,
            excluded_daily: r
                .map(|(a, b)| DailyRange {
                    from: NaiveTime::from_hms_opt(a, 0, 0).unwrap(),
                    to: NaiveTime::from_hms_opt(b, 0, 0).unwrap(),
                })
                .into_iter()
                .collect(),
            excluded_dates: d
                .map(|n| NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + Duration::days(n as i64))
                .into_iter()
                .collect(),
            time_zone: None,
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The next cron fire is strictly after `after`, and it is the first: searching from any
    /// point between `after` and it finds it again.
    #[test]
    fn cron_next_is_after_and_first(
        expr in cron_expr(),
        zone in prop::sample::select(ZONES.to_vec()),
        after in instant(),
        frac in 0.0f64..1.0,
    ) {
        let cron = QuartzCron::parse(&expr, zone).unwrap();
        if let Some(next) = cron.next_after(after) {
            prop_assert!(next > after);
            // It matches on the wall clock, or is the first instant after a DST gap.
            let wall_before = next.with_timezone(&cron.zone()).naive_local() - Duration::seconds(1);
            prop_assert!(cron.matches_wall(next) || in_gap(cron.zone(), wall_before), "{} matches nothing", next);
            let gap_ms = (next - after).num_milliseconds();
            let mid = after + Duration::milliseconds((gap_ms as f64 * frac) as i64);
            prop_assert_eq!(cron.next_after(mid.min(next - Duration::milliseconds(1))), Some(next));
        }
    }

    /// A trigger's next fire honours start, end and the calendar.
    #[test]
    fn trigger_next_respects_window_and_calendar(
        expr in cron_expr(),
        zone in prop::sample::select(ZONES.to_vec()),
        after in instant(),
        start_offset_h in -2000i64..2000,
        len_h in 1i64..20_000,
        cal in calendar(),
    ) {
        let mut spec = TriggerSpec::new("t", "g.j", TriggerKind::Cron { expr, time_zone: zone.into() });
        let start = after + Duration::hours(start_offset_h);
        spec.start = Some(start);
        spec.end = Some(start + Duration::hours(len_h));
        spec.calendar = cal.clone();
        spec.validate().unwrap();
        if let Some(next) = next_after(&spec, &TriggerState::default(), after).unwrap() {
            prop_assert!(next > after);
            prop_assert!(next >= start && next <= spec.end.unwrap());
            if let Some(c) = &cal {
                let tz = c.zone(zone.parse().unwrap());
                prop_assert!(!c.is_excluded(next, tz), "{} is excluded", next);
            }
        }
    }

    /// Simple triggers fire on start + k·interval, k counting every grid point.
    #[test]
    fn simple_stays_on_the_grid(
        start in instant(),
        interval_ms in 1u64..10_000_000,
        repeat in prop::option::of(0u64..50),
        after_offset in -100_000_000i64..1_000_000_000,
    ) {
        let mut spec = TriggerSpec::new("t", "g.j", TriggerKind::Simple { interval_ms, repeat_count: repeat });
        spec.start = Some(start);
        let st = initial_state(&spec, start).unwrap();
        prop_assert_eq!(st.next_fire(), Some(start));
        let after = start + Duration::milliseconds(after_offset);
        match next_after(&spec, &st, after).unwrap() {
            Some(next) => {
                prop_assert!(next > after);
                let since = (next - start).num_milliseconds();
                prop_assert!(since >= 0);
                prop_assert_eq!(since as u64 % interval_ms, 0);
                let k = since as u64 / interval_ms;
                prop_assert!(repeat.is_none_or(|r| k <= r));
                // It is the first grid point after `after`.
                prop_assert!(k == 0 || next - Duration::milliseconds(interval_ms as i64) <= after);
            }
            None => {
                let r = repeat.expect("forever never ends");
                prop_assert!(start + Duration::milliseconds((r * interval_ms) as i64) <= after);
            }
        }
    }

    /// `resolve_due` never returns a time twice, never fires or skips anything that was not
    /// due, and leaves the next fire after `now`; with ignore-misfires (and within the caps)
    /// fires + misfired are exactly the scheduled times from the old next fire to `now`.
    #[test]
    fn resolve_due_covers_the_backlog_once(
        expr in cron_expr(),
        zone in prop::sample::select(ZONES.to_vec()),
        next_from in instant(),
        late_s in 0i64..20_000,
        policy in prop::sample::select(vec![
            MisfirePolicy::Smart, MisfirePolicy::FireOnceNow,
            MisfirePolicy::DoNothing, MisfirePolicy::IgnoreMisfires,
        ]),
        threshold_s in 0u64..120,
    ) {
        let mut spec = TriggerSpec::new("t", "g.j", TriggerKind::Cron { expr, time_zone: zone.into() });
        spec.misfire = policy;
        spec.misfire_threshold_ms = threshold_s * 1000;
        let sched = Schedule::new(&spec).unwrap();
        let empty = TriggerState::default();
        let Some(first) = sched.next_after(&empty, next_from) else { return Ok(()) };
        let state = TriggerState { next_fire_ms: Some(first.timestamp_millis()), ..empty.clone() };
        let now = first + Duration::seconds(late_s);
        let due = resolve_due(&spec, &state, now).unwrap();

        let mut expected = Vec::new();
        let mut t = Some(first);
        while let Some(s) = t.filter(|s| *s <= now) {
            expected.push(s);
            t = sched.next_after(&empty, s);
        }
        let mut seen = BTreeSet::new();
        for f in &due.fires {
            prop_assert!(seen.insert(f.scheduled), "{} twice", f.scheduled);
        }
        for m in &due.misfired {
            prop_assert!(seen.insert(*m), "{} twice", m);
        }
        prop_assert!(seen.iter().all(|s| expected.contains(s)));
        if let Some(n) = due.state.next_fire() {
            prop_assert!(n > now || due.fires.len() == MAX_CATCH_UP_FIRES);
        }
        let all_fired_in_time = due.policy_applied.is_none();
        if (policy == MisfirePolicy::IgnoreMisfires || all_fired_in_time) && !due.misfired_truncated
            && due.fires.len() < MAX_CATCH_UP_FIRES
        {
            prop_assert_eq!(seen.into_iter().collect::<Vec<_>>(), expected);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Simple triggers under every policy: no time twice, fires are due grid times or `now`
    /// (a reschedule-now restart), misfired are due grid times, and the next fire is after now.
    #[test]
    fn simple_resolve_due_is_consistent(
        start in instant(),
        interval_ms in 1_000u64..600_000,
        repeat in prop::option::of(0u64..30),
        fired in 0u64..10,
        late_ms in 0i64..20_000_000,
        policy in prop::sample::select(MisfirePolicy::ALL.to_vec()),
    ) {
        let mut spec = TriggerSpec::new("t", "g.j", TriggerKind::Simple { interval_ms, repeat_count: repeat });
        spec.start = Some(start);
        spec.misfire = policy;
        let sched = Schedule::new(&spec).unwrap();
        let mut state = initial_state(&spec, start).unwrap();
        let fired = repeat.map_or(fired, |r| fired.min(r));
        let first = start + Duration::milliseconds((fired * interval_ms) as i64);
        state.next_fire_ms = Some(first.timestamp_millis());
        state.times_fired = fired;
        let now = first + Duration::milliseconds(late_ms);
        let due = resolve_due(&spec, &state, now).unwrap();
        let on_grid = |t: DateTime<Utc>| {
            let since = (t - start).num_milliseconds();
            since >= 0 && (since as u64).is_multiple_of(interval_ms) && t >= first && t <= now
                && repeat.is_none_or(|r| since as u64 / interval_ms <= r)
        };
        let mut seen = BTreeSet::new();
        for f in &due.fires {
            prop_assert!(seen.insert(f.scheduled));
            prop_assert!(on_grid(f.scheduled) || f.scheduled == now, "fire {}", f.scheduled);
        }
        for m in &due.misfired {
            prop_assert!(seen.insert(*m));
            prop_assert!(on_grid(*m), "misfired {}", m);
        }
        if let Some(n) = due.state.next_fire() {
            prop_assert!(n > now || due.fires.len() == MAX_CATCH_UP_FIRES);
        }
        // A finite trigger never fires more than its count in total.
        if let (Some(r), Some(next)) = (repeat, due.state.next_fire()) {
            let left = std::iter::successors(Some(next), |t| sched.next_after(&due.state, *t)).count() as u64;
            prop_assert!(fired + due.fires.len() as u64 + left <= r + 1);
        }
    }
}
