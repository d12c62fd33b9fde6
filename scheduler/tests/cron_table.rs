//! Acceptance 5: Quartz cron expressions against their expected next fire times.
//!
//! Every expected value was worked out by hand from Quartz's documented semantics and a
//! calendar (weekdays, DST transition instants), not taken from this code's output. DST rows
//! follow the schedule module's documented rules: a wall time inside a spring-forward gap
//! fires at the first instant after the gap; a wall time repeated by a fall-back fires once,
//! at its first occurrence.
//!
//! Transitions used (2025): Europe/Berlin jumps 02:00 CET -> 03:00 CEST at 01:00Z on 30 March
//! and falls back 03:00 CEST -> 02:00 CET at 01:00Z on 26 October; America/New_York jumps
//! 02:00 EST -> 03:00 EDT at 07:00Z on 9 March and falls back 02:00 EDT -> 01:00 EST at 06:00Z
//! on 2 November.

use chrono::{DateTime, Utc};
use warden_scheduler::schedule::{next_after, QuartzCron, TriggerKind, TriggerSpec, TriggerState};

struct Case {
    expr: &'static str,
    zone: &'static str,
    after: &'static str,
    expected: Option<&'static str>,
    why: &'static str,
}

const fn case(
    expr: &'static str,
    zone: &'static str,
    after: &'static str,
    expected: Option<&'static str>,
    why: &'static str,
) -> Case {
    Case {
        expr,
        zone,
        after,
        expected,
        why,
    }
}

const UTC: &str = "UTC";
const BERLIN: &str = "Europe/Berlin";
const NEW_YORK: &str = "America/New_York";

#[rustfmt::skip]
const TABLE: &[Case] = &[
    // Plain fields, strictly-after semantics.
    case("0 0 12 * * ?", UTC, "2025-06-01T12:00:00Z", Some("2025-06-02T12:00:00Z"), "daily noon, strictly after a fire time"),
    case("0 0 12 * * ?", UTC, "2025-06-01T11:59:59.999Z", Some("2025-06-01T12:00:00Z"), "daily noon, just before"),
    case("0 0/15 * * * ?", UTC, "2025-06-01T10:07:30Z", Some("2025-06-01T10:15:00Z"), "Quartz start/step minutes"),
    case("*/20 * * * * ?", UTC, "2025-06-01T10:00:59Z", Some("2025-06-01T10:01:00Z"), "every 20 seconds rolls the minute"),
    case("0 0 0 1 */3 ?", UTC, "2025-02-10T00:00:00Z", Some("2025-04-01T00:00:00Z"), "quarterly: months 1,4,7,10"),
    // Day-of-week: Quartz numbering 1 = SUN … 7 = SAT, and names.
    case("0 15 10 ? * MON-FRI", UTC, "2025-06-06T10:15:00Z", Some("2025-06-09T10:15:00Z"), "Friday's fire done -> Monday"),
    case("0 0 10 ? * 1", UTC, "2025-06-02T00:00:00Z", Some("2025-06-08T10:00:00Z"), "1 is Sunday in Quartz"),
    case("0 0 10 ? * 2-6", UTC, "2025-06-07T00:00:00Z", Some("2025-06-09T10:00:00Z"), "2-6 is Mon-Fri; Saturday -> Monday"),
    case("0 0 10 ? * 7", UTC, "2025-06-01T00:00:00Z", Some("2025-06-07T10:00:00Z"), "7 is Saturday in Quartz"),
    case("0 0 8 ? JUN-AUG SAT,SUN", UTC, "2025-05-31T00:00:00Z", Some("2025-06-01T08:00:00Z"), "month and day names; Sat 31 May is outside JUN-AUG"),
    // Ranges that wrap around, as Quartz reads them.
    case("0 0 12 ? * FRI-MON", UTC, "2025-06-02T12:00:00Z", Some("2025-06-06T12:00:00Z"), "FRI-MON wraps: Monday noon done -> Friday"),
    case("0 0 22-2/2 * * ?", UTC, "2025-06-01T02:00:00Z", Some("2025-06-01T22:00:00Z"), "22-2/2 is 22, 0, 2"),
    case("0 0 22-2/2 * * ?", UTC, "2025-06-01T22:00:00Z", Some("2025-06-02T00:00:00Z"), "22-2/2 crosses midnight"),
    case("0 0 12 1 NOV-FEB ?", UTC, "2025-02-02T00:00:00Z", Some("2025-11-01T12:00:00Z"), "NOV-FEB wraps over the year end"),
    // `?`, `L`, `LW`, `W`.
    case("0 0 0 L * ?", UTC, "2024-02-01T00:00:00Z", Some("2024-02-29T00:00:00Z"), "L in a leap February"),
    case("0 0 0 L * ?", UTC, "2025-02-01T00:00:00Z", Some("2025-02-28T00:00:00Z"), "L in a common February"),
    case("0 0 0 LW * ?", UTC, "2025-05-01T00:00:00Z", Some("2025-05-30T00:00:00Z"), "LW: 31 May 2025 is a Saturday -> Friday 30th"),
    case("0 0 0 LW * ?", UTC, "2025-08-01T00:00:00Z", Some("2025-08-29T00:00:00Z"), "LW: 31 Aug 2025 is a Sunday -> Friday 29th"),
    case("0 0 0 LW 2 ?", UTC, "2025-03-01T00:00:00Z", Some("2026-02-27T00:00:00Z"), "LW in February 2026: the 28th is a Saturday"),
    case("0 0 9 15W * ?", UTC, "2025-11-01T00:00:00Z", Some("2025-11-14T09:00:00Z"), "15W, 15th on a Saturday -> Friday 14th"),
    case("0 0 9 15W * ?", UTC, "2025-06-01T00:00:00Z", Some("2025-06-16T09:00:00Z"), "15W, 15th on a Sunday -> Monday 16th"),
    case("0 0 9 15W * ?", UTC, "2025-07-01T00:00:00Z", Some("2025-07-15T09:00:00Z"), "15W, 15th a Tuesday -> itself"),
    case("0 0 9 1W * ?", UTC, "2025-10-31T00:00:00Z", Some("2025-11-03T09:00:00Z"), "1W, the 1st a Saturday -> Monday 3rd, never the previous month"),
    case("0 0 9 31W * ?", UTC, "2025-08-01T00:00:00Z", Some("2025-08-29T09:00:00Z"), "31W, the 31st a Sunday -> Friday 29th, never the next month"),
    // `#` and `L` in day-of-week.
    case("0 0 10 ? * 6#3", UTC, "2025-06-01T00:00:00Z", Some("2025-06-20T10:00:00Z"), "third Friday of June 2025"),
    case("0 0 10 ? * FRI#1", UTC, "2025-06-07T00:00:00Z", Some("2025-07-04T10:00:00Z"), "first Friday, next month"),
    case("0 0 12 ? * MON#5", UTC, "2025-06-01T00:00:00Z", Some("2025-06-30T12:00:00Z"), "fifth Monday exists in June 2025"),
    case("0 0 10 ? * 6L", UTC, "2025-06-01T00:00:00Z", Some("2025-06-27T10:00:00Z"), "last Friday of June 2025"),
    case("0 0 10 ? * L", UTC, "2025-06-01T00:00:00Z", Some("2025-06-07T10:00:00Z"), "bare L in day-of-week is Saturday"),
    // Year field and leap years.
    case("0 0 12 1 JAN ? 2027", UTC, "2025-06-01T00:00:00Z", Some("2027-01-01T12:00:00Z"), "year field"),
    case("0 0 12 1 1 ? 2020-2024", UTC, "2025-06-01T00:00:00Z", None, "year range entirely in the past: never again"),
    case("0 0 0 29 2 ?", UTC, "2025-03-01T00:00:00Z", Some("2028-02-29T00:00:00Z"), "29 February: next leap year"),
    case("0 0 0 29 FEB ?", UTC, "2024-02-29T00:00:00Z", Some("2028-02-29T00:00:00Z"), "29 February after a fire: four years later"),
    case("0 0 0 L 2 ? 2028", UTC, "2025-01-01T00:00:00Z", Some("2028-02-29T00:00:00Z"), "L in February of leap year 2028"),
    // Zones without DST.
    case("0 0 9 * * ?", "Asia/Tokyo", "2025-06-01T00:00:00Z", Some("2025-06-02T00:00:00Z"), "09:00 JST is 00:00Z; strictly after"),
    // DST: Europe/Berlin spring-forward gap.
    case("0 30 2 * * ?", BERLIN, "2025-03-29T12:00:00Z", Some("2025-03-30T01:00:00Z"), "02:30 does not exist on 30 March: first instant after the gap, 03:00 CEST"),
    case("0 30 2 * * ?", BERLIN, "2025-03-30T01:00:00Z", Some("2025-03-31T00:30:00Z"), "the day after the gap: 02:30 CEST"),
    case("0 */15 * * * ?", BERLIN, "2025-03-30T00:50:00Z", Some("2025-03-30T01:00:00Z"), "01:50 CET -> 02:00..02:45 are in the gap -> one fire at 03:00 CEST"),
    case("0 */15 * * * ?", BERLIN, "2025-03-30T01:00:00Z", Some("2025-03-30T01:15:00Z"), "after the merged gap fire: 03:15 CEST"),
    // DST: Europe/Berlin fall-back overlap (02:00-02:59 happens twice).
    case("0 30 2 * * ?", BERLIN, "2025-10-25T12:00:00Z", Some("2025-10-26T00:30:00Z"), "repeated 02:30 fires at its first occurrence (CEST)"),
    case("0 30 2 * * ?", BERLIN, "2025-10-26T00:30:00Z", Some("2025-10-27T01:30:00Z"), "and not again at 02:30 CET: next is the 27th, 02:30 CET"),
    case("0 0 * * * ?", BERLIN, "2025-10-26T00:00:00Z", Some("2025-10-26T02:00:00Z"), "hourly: 02:00 CEST fired; the repeated 02:00 CET is not; next 03:00 CET"),
    // DST: America/New_York.
    case("0 30 2 * * ?", NEW_YORK, "2025-03-08T12:00:00Z", Some("2025-03-09T07:00:00Z"), "02:30 missing on 9 March: fires at 03:00 EDT"),
    case("0 30 2 * * ?", NEW_YORK, "2025-03-09T07:00:00Z", Some("2025-03-10T06:30:00Z"), "next day 02:30 EDT"),
    case("0 30 1 * * ?", NEW_YORK, "2025-11-01T12:00:00Z", Some("2025-11-02T05:30:00Z"), "01:30 repeated on 2 November: first (EDT) occurrence"),
    case("0 30 1 * * ?", NEW_YORK, "2025-11-02T05:30:00Z", Some("2025-11-03T06:30:00Z"), "not again at 01:30 EST; next day 01:30 EST"),
    case("0 30 1 * * ?", NEW_YORK, "2025-11-02T06:00:00Z", Some("2025-11-03T06:30:00Z"), "searching from inside the repeated hour skips its 01:30"),
    case("0 0 * * * ?", NEW_YORK, "2025-11-02T05:00:00Z", Some("2025-11-02T07:00:00Z"), "hourly: 01:00 EST repeats 01:00 EDT, so next is 02:00 EST"),
];

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

#[test]
fn quartz_expressions_fire_at_the_expected_times() {
    assert!(TABLE.len() >= 25);
    let mut failures = Vec::new();
    for c in TABLE {
        let cron = QuartzCron::parse(c.expr, c.zone)
            .unwrap_or_else(|e| panic!("`{}` should parse: {e}", c.expr));
        let got = cron.next_after(at(c.after));
        let want = c.expected.map(at);
        if got != want {
            failures.push(format!(
                "`{}` in {} after {}: want {:?}, got {:?} ({})",
                c.expr, c.zone, c.after, want, got, c.why
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_table_holds_through_the_trigger_api() {
    for c in TABLE {
        let spec = TriggerSpec::new(
            "t",
            "g.j",
            TriggerKind::Cron {
                expr: c.expr.to_string(),
                time_zone: c.zone.to_string(),
            },
        );
        spec.validate().unwrap();
        let got = next_after(&spec, &TriggerState::default(), at(c.after)).unwrap();
        assert_eq!(got, c.expected.map(at), "`{}` ({})", c.expr, c.why);
    }
}

#[test]
fn invalid_quartz_expressions_are_rejected_with_a_reason() {
    for (expr, mentions) in [
        ("0 12 * * ?", "6 or 7 fields"),
        ("0 0 12 1 * MON", "put `?` in one"),
        ("0 0 12 ? * ?", "only one"),
        ("0 0 12 ? * 0", "1-7"),
        ("0 0 12 ? * 8", "1-7"),
        ("0 0 12 ? * 6#6", "1 to 5"),
        ("0 0 12 L-3 * ?", "L-n"),
        ("0 0 ? * * ?", "only allowed in day-of-month or day-of-week"),
        ("0 0 25 * * ?", "field hours"),
        ("0 60 * * * ?", "field minutes"),
        ("0 0 12 1 13 ?", "field month"),
        ("0 0 12 1 1 ? 1969", "1970"),
    ] {
        match QuartzCron::parse(expr, UTC) {
            Ok(_) => panic!("`{expr}` should be rejected"),
            Err(e) => assert!(
                e.to_string().contains(mentions) && e.to_string().contains(expr),
                "`{expr}`: message `{e}` should mention `{mentions}` and the expression"
            ),
        }
    }
    assert!(QuartzCron::parse("0 0 12 * * ?", "Europe/Atlantis").is_err());
}
