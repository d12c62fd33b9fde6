//! Misfire policies, the runtime state of a trigger, and `resolve_due`: given the stored next
//! fire time and the leader's `now`, exactly which scheduled times to fire now, which to record
//! as misfired, and the state to write back.
//!
//! A fire is *misfired* when `now - scheduled > misfire_threshold_ms`. As in Quartz, the policy
//! is applied when the oldest due time (the stored next fire) is misfired, and then governs the
//! whole backlog; otherwise every due time is fired in order (each is at most that late).
//! Policies, with Quartz's meanings:
//!
//! | policy | cron / once | simple |
//! |---|---|---|
//! | `smart` (default) | fire-once-now | repeat 0: fire-now; forever: reschedule-next-with-remaining-count; else reschedule-now-with-existing-count |
//! | `fire-once-now` | fire the latest missed time now, skip the rest | repeat 0: same; else reschedule-now-with-remaining-count |
//! | `do-nothing` | skip all missed, wait for the next time | same |
//! | `ignore-misfires` | fire every missed time (oldest first, at most [`MAX_CATCH_UP_FIRES`]) | same |
//! | `reschedule-now-with-existing-count` | — | fire now; restart the interval grid at now; repeats left = count − times fired |
//! | `reschedule-now-with-remaining-count` | — | as above, but missed times also use up repeats |
//! | `reschedule-next-with-remaining-count` | — | skip to the next grid time after now; missed times use up repeats |
//! | `reschedule-next-with-existing-count` | — | skip to the next grid time after now |
//!
//! Every scheduled time between the old next fire and `now` appears exactly once in either
//! `fires` or `misfired` (up to the caps, flagged by `misfired_truncated`); a reschedule-now
//! fire is at `now` itself, a new grid point.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::trigger::{Schedule, TriggerKind, TriggerSpec};
use super::ScheduleError;

/// A fire at most this late is `normal`; later (but within the threshold) is `late`.
pub const ON_TIME_TOLERANCE_MS: i64 = 1_000;
/// Most fires one `resolve_due` returns (ignore-misfires catch-up, or a backlog within the
/// threshold); older extra misfired times are recorded as misfired.
pub const MAX_CATCH_UP_FIRES: usize = 100;
/// Most misfired times listed in a [`Due`]; more set `misfired_truncated`.
pub const MAX_RECORDED_MISFIRES: usize = 1_000;
/// Most due times one call enumerates (all are fired or recorded); a longer backlog is
/// skipped in one step and flagged `misfired_truncated`.
pub const MAX_BACKLOG: usize = MAX_CATCH_UP_FIRES + MAX_RECORDED_MISFIRES;

/// What a trigger does about fires that are more than its threshold late (leader down, all
/// workers paused, clock jump). Names are Quartz's, kebab-case in JSON/TOML/CLI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MisfirePolicy {
    /// Quartz's default: chosen by trigger kind (see the module table).
    #[default]
    Smart,
    /// Fire once now, then carry on with the schedule (cron FIRE_AND_PROCEED, simple FIRE_NOW).
    FireOnceNow,
    /// Skip the missed fires; next fire is the next scheduled time after now.
    DoNothing,
    /// Fire every missed time (capped), then carry on.
    IgnoreMisfires,
    /// Simple only: fire now, restart the grid at now, keep the not-yet-fired repeat count.
    RescheduleNowWithExistingCount,
    /// Simple only: fire now, restart the grid at now, missed fires use up repeats.
    RescheduleNowWithRemainingCount,
    /// Simple only: wait for the next grid time, missed fires use up repeats.
    RescheduleNextWithRemainingCount,
    /// Simple only: wait for the next grid time, repeat count unchanged.
    RescheduleNextWithExistingCount,
}

impl MisfirePolicy {
    /// Every policy, for help texts.
    pub const ALL: [MisfirePolicy; 8] = [
        MisfirePolicy::Smart,
        MisfirePolicy::FireOnceNow,
        MisfirePolicy::DoNothing,
        MisfirePolicy::IgnoreMisfires,
        MisfirePolicy::RescheduleNowWithExistingCount,
        MisfirePolicy::RescheduleNowWithRemainingCount,
        MisfirePolicy::RescheduleNextWithRemainingCount,
        MisfirePolicy::RescheduleNextWithExistingCount,
    ];

    /// The kebab-case name used in JSON, TOML and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            MisfirePolicy::Smart => "smart",
            MisfirePolicy::FireOnceNow => "fire-once-now",
            MisfirePolicy::DoNothing => "do-nothing",
            MisfirePolicy::IgnoreMisfires => "ignore-misfires",
            MisfirePolicy::RescheduleNowWithExistingCount => "reschedule-now-with-existing-count",
            MisfirePolicy::RescheduleNowWithRemainingCount => "reschedule-now-with-remaining-count",
            MisfirePolicy::RescheduleNextWithRemainingCount => {
                "reschedule-next-with-remaining-count"
            }
            MisfirePolicy::RescheduleNextWithExistingCount => "reschedule-next-with-existing-count",
        }
    }

    /// Whether the policy only applies to simple (interval) triggers.
    pub fn is_simple_only(self) -> bool {
        matches!(
            self,
            MisfirePolicy::RescheduleNowWithExistingCount
                | MisfirePolicy::RescheduleNowWithRemainingCount
                | MisfirePolicy::RescheduleNextWithRemainingCount
                | MisfirePolicy::RescheduleNextWithExistingCount
        )
    }
}

impl fmt::Display for MisfirePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown misfire policy name (CLI `--misfire`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown misfire policy `{0}`: use one of smart, fire-once-now, do-nothing, ignore-misfires, reschedule-now-with-existing-count, reschedule-now-with-remaining-count, reschedule-next-with-remaining-count, reschedule-next-with-existing-count")]
pub struct UnknownMisfirePolicy(pub String);

impl FromStr for MisfirePolicy {
    type Err = UnknownMisfirePolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        MisfirePolicy::ALL
            .into_iter()
            .find(|p| p.name() == norm)
            .ok_or_else(|| UnknownMisfirePolicy(s.to_string()))
    }
}

/// What changes as a trigger fires: stored at `state/<trigger-key>` (JSON), written only by the
/// leader. `next_fire_ms: None` means the trigger is complete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerState {
    /// Next scheduled fire (ms since epoch), `None` = no more fires.
    pub next_fire_ms: Option<i64>,
    /// Fires so far (Quartz `timesTriggered`; reset by reschedule-now misfires).
    #[serde(default)]
    pub times_fired: u64,
    /// Scheduled time of the last fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fire_ms: Option<i64>,
    /// Set by the runtime (pause/resume); the schedule functions carry it through unchanged.
    #[serde(default)]
    pub paused: bool,
    /// Simple triggers: the interval grid's origin when it is not the spec's start (no start
    /// given, or moved by a reschedule-now misfire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple_start_ms: Option<i64>,
    /// Simple triggers: repeat count replacing the spec's after a reschedule-now misfire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple_repeat_count: Option<u64>,
}

impl TriggerState {
    /// The next fire as a time.
    pub fn next_fire(&self) -> Option<DateTime<Utc>> {
        self.next_fire_ms.and_then(DateTime::from_timestamp_millis)
    }

    /// The last fire as a time.
    pub fn last_fire(&self) -> Option<DateTime<Utc>> {
        self.last_fire_ms.and_then(DateTime::from_timestamp_millis)
    }

    /// Whether the trigger will never fire again.
    pub fn is_complete(&self) -> bool {
        self.next_fire_ms.is_none()
    }
}

/// Why a fire happens, as recorded on the fire node (`kind` in the design).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FireKind {
    /// At its time (at most [`ON_TIME_TOLERANCE_MS`] late).
    Normal,
    /// Late, but within the misfire threshold.
    Late,
    /// Misfired, fired anyway by the misfire policy.
    MisfireFireNow,
    /// Fired by a person ("trigger now"); never produced here.
    Manual,
    /// Re-run of a fire whose worker died; never produced here.
    Recovery,
}

/// One fire the leader must perform now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueFire {
    /// The scheduled time it stands for (the fire's identity).
    pub scheduled: DateTime<Utc>,
    /// Why it fires.
    pub kind: FireKind,
}

/// The leader's instructions for one trigger at one `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Fires to perform now, oldest first; no scheduled time twice.
    pub fires: Vec<DueFire>,
    /// Scheduled times skipped as misfired (to record in history), oldest first.
    pub misfired: Vec<DateTime<Utc>>,
    /// More times were missed than `misfired` lists.
    pub misfired_truncated: bool,
    /// The concrete policy applied (Smart resolved), when there was a misfire.
    pub policy_applied: Option<MisfirePolicy>,
    /// The state to write back (with a version check) together with the fires.
    pub state: TriggerState,
}

impl Due {
    /// Nothing to fire, nothing to record, state unchanged.
    pub fn is_nothing(&self, old: &TriggerState) -> bool {
        self.fires.is_empty() && self.misfired.is_empty() && self.state == *old
    }
}

/// Decides what is due for `spec` in `state` at `now` (see the module docs).
pub fn resolve_due(
    spec: &TriggerSpec,
    state: &TriggerState,
    now: DateTime<Utc>,
) -> Result<Due, ScheduleError> {
    Ok(Schedule::new(spec)?.resolve_due(state, now))
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The due times `<= now` from the stored next fire on, oldest first.
struct Backlog {
    times: Vec<DateTime<Utc>>,
    /// All due times were enumerated (else there are more after the last listed).
    complete: bool,
}

impl Schedule<'_> {
    fn backlog(&self, state: &TriggerState, now: DateTime<Utc>, limit: usize) -> Backlog {
        let mut times = Vec::new();
        let mut t = state.next_fire();
        while let Some(s) = t.filter(|s| *s <= now) {
            if times.len() == limit {
                return Backlog {
                    times,
                    complete: false,
                };
            }
            times.push(s);
            t = self.next_after(state, s);
        }
        Backlog {
            times,
            complete: true,
        }
    }

    /// The latest scheduled time `<= now`, known to be after `floor` (itself a due time):
    /// enumerates a window before `now` that widens until it holds one.
    fn latest_due(
        &self,
        state: &TriggerState,
        now: DateTime<Utc>,
        floor: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let mut window = match self.spec().kind {
            TriggerKind::Simple { interval_ms, .. } => chrono::Duration::milliseconds(
                interval_ms.saturating_mul(2).min(i64::MAX as u64 / 2) as i64,
            ),
            _ => chrono::Duration::seconds(60),
        };
        loop {
            let from = now
                .checked_sub_signed(window)
                .map_or(floor, |f| f.max(floor));
            let mut latest = None;
            let mut t = self.next_after(state, from);
            for _ in 0..MAX_BACKLOG {
                match t.filter(|s| *s <= now) {
                    Some(s) => {
                        latest = Some(s);
                        t = self.next_after(state, s);
                    }
                    None => break,
                }
            }
            if let Some(l) = latest {
                return l;
            }
            if from == floor {
                return floor;
            }
            window = window * 4;
        }
    }

    /// Quartz's `updateAfterMisfire` choice of instruction.
    fn effective_policy(&self, state: &TriggerState) -> MisfirePolicy {
        let policy = self.spec().misfire;
        match &self.spec().kind {
            TriggerKind::Simple { .. } => {
                let repeats = self.repeats(state);
                match policy {
                    MisfirePolicy::Smart => match repeats {
                        Some(0) => MisfirePolicy::FireOnceNow,
                        None => MisfirePolicy::RescheduleNextWithRemainingCount,
                        Some(_) => MisfirePolicy::RescheduleNowWithExistingCount,
                    },
                    MisfirePolicy::FireOnceNow if repeats != Some(0) => {
                        MisfirePolicy::RescheduleNowWithRemainingCount
                    }
                    p => p,
                }
            }
            _ if policy == MisfirePolicy::Smart || policy.is_simple_only() => {
                MisfirePolicy::FireOnceNow
            }
            _ => policy,
        }
    }

    fn kind_for(&self, scheduled: DateTime<Utc>, now: DateTime<Utc>) -> FireKind {
        let late = (now - scheduled).num_milliseconds();
        if late <= ON_TIME_TOLERANCE_MS {
            FireKind::Normal
        } else if late <= self.spec().misfire_threshold_ms as i64 {
            FireKind::Late
        } else {
            FireKind::MisfireFireNow
        }
    }

    fn is_misfired(&self, scheduled: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - scheduled).num_milliseconds() > self.spec().misfire_threshold_ms as i64
    }

    /// See [`resolve_due`].
    pub fn resolve_due(&self, state: &TriggerState, now: DateTime<Utc>) -> Due {
        let mut due = Due {
            fires: Vec::new(),
            misfired: Vec::new(),
            misfired_truncated: false,
            policy_applied: None,
            state: state.clone(),
        };
        let Some(next) = state.next_fire() else {
            return due;
        };
        if next > now {
            return due;
        }
        if !self.is_misfired(next, now) {
            // Not a misfire: fire the due times in order; a longer backlog than the cap is
            // left for the next call (it is not misfired yet).
            let backlog = self.backlog(state, now, MAX_CATCH_UP_FIRES);
            self.fire_all(&mut due, &backlog.times, now);
            return due;
        }
        let policy = self.effective_policy(state);
        due.policy_applied = Some(policy);
        let backlog = self.backlog(state, now, MAX_BACKLOG);
        let times = &backlog.times;
        due.misfired_truncated = !backlog.complete;
        match policy {
            MisfirePolicy::IgnoreMisfires => {
                let fire_count = times.len().min(MAX_CATCH_UP_FIRES);
                self.fire_all(&mut due, &times[..fire_count], now);
                if fire_count < times.len() || !backlog.complete {
                    self.record_misfired(&mut due, &times[fire_count..]);
                    due.state.next_fire_ms = self.next_after(&due.state, now).map(ms);
                }
            }
            MisfirePolicy::FireOnceNow => {
                let (enumerated_last, earlier) = times.split_last().expect("backlog holds `next`");
                let last = if backlog.complete {
                    self.record_misfired(&mut due, earlier);
                    *enumerated_last
                } else {
                    self.record_misfired(&mut due, times);
                    self.latest_due(state, now, *enumerated_last)
                };
                let last = &last;
                due.fires.push(DueFire {
                    scheduled: *last,
                    kind: self.kind_for(*last, now),
                });
                due.state.times_fired += 1;
                due.state.last_fire_ms = Some(ms(*last));
                due.state.next_fire_ms = self.next_after(&due.state, now.max(*last)).map(ms);
            }
            MisfirePolicy::DoNothing | MisfirePolicy::RescheduleNextWithExistingCount => {
                self.record_misfired(&mut due, times);
                due.state.next_fire_ms = self.next_after(&due.state, now).map(ms);
            }
            MisfirePolicy::RescheduleNextWithRemainingCount => {
                self.record_misfired(&mut due, times);
                let new_next = self.next_after(&due.state, now);
                if let Some(n) = new_next {
                    due.state.times_fired += self.simple_intervals_between(next, n);
                }
                due.state.next_fire_ms = new_next.map(ms);
            }
            MisfirePolicy::RescheduleNowWithExistingCount
            | MisfirePolicy::RescheduleNowWithRemainingCount => {
                self.record_misfired(&mut due, times);
                self.reschedule_now(&mut due, state, policy, next, now);
            }
            MisfirePolicy::Smart => unreachable!("effective_policy resolves smart"),
        }
        due
    }

    /// Fires `times` in order and advances the state past the last one.
    fn fire_all(&self, due: &mut Due, times: &[DateTime<Utc>], now: DateTime<Utc>) {
        for &s in times {
            due.fires.push(DueFire {
                scheduled: s,
                kind: self.kind_for(s, now),
            });
            due.state.times_fired += 1;
            due.state.last_fire_ms = Some(ms(s));
        }
        if let Some(&last) = times.last() {
            due.state.next_fire_ms = self.next_after(&due.state, last).map(ms);
        }
    }

    fn record_misfired(&self, due: &mut Due, times: &[DateTime<Utc>]) {
        let room = MAX_RECORDED_MISFIRES.saturating_sub(due.misfired.len());
        if times.len() > room {
            due.misfired_truncated = true;
        }
        due.misfired.extend(times.iter().take(room));
    }

    /// Quartz's RESCHEDULE_NOW_WITH_{EXISTING,REMAINING}_REPEAT_COUNT: the grid restarts at
    /// `now`, which fires (unless past the end or excluded by the calendar).
    fn reschedule_now(
        &self,
        due: &mut Due,
        old: &TriggerState,
        policy: MisfirePolicy,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        if self.spec().end.is_some_and(|e| now > e) {
            due.state.next_fire_ms = None;
            return;
        }
        if let Some(r) = self.repeats(old) {
            let used = if policy == MisfirePolicy::RescheduleNowWithRemainingCount {
                old.times_fired + self.simple_intervals_between(next, now)
            } else {
                old.times_fired
            };
            due.state.simple_repeat_count = Some(r.saturating_sub(used));
        }
        due.state.times_fired = 0;
        due.state.simple_start_ms = Some(ms(now));
        // The new grid's first point is `now`; the calendar may exclude it.
        match self.next_after(&due.state, now - chrono::Duration::milliseconds(1)) {
            Some(first) if first == now => self.fire_all(due, &[now], now),
            other => due.state.next_fire_ms = other.map(ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::initial_state;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn cron(expr: &str, policy: MisfirePolicy) -> TriggerSpec {
        let mut s = TriggerSpec::new(
            "t",
            "g.j",
            TriggerKind::Cron {
                expr: expr.into(),
                time_zone: "UTC".into(),
            },
        );
        s.misfire = policy;
        s
    }

    fn simple(interval_ms: u64, repeat: Option<u64>, policy: MisfirePolicy) -> TriggerSpec {
        let mut s = TriggerSpec::new(
            "t",
            "g.j",
            TriggerKind::Simple {
                interval_ms,
                repeat_count: repeat,
            },
        );
        s.start = Some(at("2025-01-01T00:00:00Z"));
        s.misfire = policy;
        s
    }

    fn state_at(next: &str) -> TriggerState {
        TriggerState {
            next_fire_ms: Some(at(next).timestamp_millis()),
            ..TriggerState::default()
        }
    }

    fn scheduled(due: &Due) -> Vec<DateTime<Utc>> {
        due.fires.iter().map(|f| f.scheduled).collect()
    }

    #[test]
    fn nothing_is_due_before_the_next_fire_or_when_complete() {
        let spec = cron("0 * * * * ?", MisfirePolicy::Smart);
        let st = state_at("2025-01-01T00:01:00Z");
        let due = resolve_due(&spec, &st, at("2025-01-01T00:00:59Z")).unwrap();
        assert!(due.is_nothing(&st));
        let done = TriggerState::default();
        let due = resolve_due(&spec, &done, at("2025-01-01T00:00:59Z")).unwrap();
        assert!(due.is_nothing(&done));
    }

    #[test]
    fn on_time_and_late_fires_within_the_threshold() {
        let spec = cron("* * * * * ?", MisfirePolicy::DoNothing);
        let st = state_at("2025-01-01T00:00:00Z");
        // 30 s late: 31 due times, none misfired (threshold 60 s): all fire, oldest first.
        let due = resolve_due(&spec, &st, at("2025-01-01T00:00:30Z")).unwrap();
        assert_eq!(due.fires.len(), 31);
        assert_eq!(due.fires[0].kind, FireKind::Late);
        assert_eq!(due.fires[30].kind, FireKind::Normal);
        assert_eq!(due.fires[29].kind, FireKind::Normal, "1 s late is on time");
        assert!(due.misfired.is_empty() && due.policy_applied.is_none());
        assert_eq!(due.state.times_fired, 31);
        assert_eq!(due.state.next_fire(), Some(at("2025-01-01T00:00:31Z")));
        assert_eq!(due.state.last_fire(), Some(at("2025-01-01T00:00:30Z")));
    }

    #[test]
    fn cron_smart_fires_once_now_for_the_latest_missed_time() {
        let spec = cron("0 * * * * ?", MisfirePolicy::Smart);
        let st = state_at("2025-01-01T00:01:00Z");
        let now = at("2025-01-01T00:05:30Z");
        let due = resolve_due(&spec, &st, now).unwrap();
        assert_eq!(due.policy_applied, Some(MisfirePolicy::FireOnceNow));
        assert_eq!(scheduled(&due), vec![at("2025-01-01T00:05:00Z")]);
        assert_eq!(due.fires[0].kind, FireKind::Late);
        assert_eq!(
            due.misfired,
            vec![
                at("2025-01-01T00:01:00Z"),
                at("2025-01-01T00:02:00Z"),
                at("2025-01-01T00:03:00Z"),
                at("2025-01-01T00:04:00Z")
            ]
        );
        assert_eq!(due.state.next_fire(), Some(at("2025-01-01T00:06:00Z")));
        assert_eq!(due.state.times_fired, 1);
    }

    #[test]
    fn do_nothing_skips_every_missed_time() {
        let spec = cron("0 * * * * ?", MisfirePolicy::DoNothing);
        let due = resolve_due(
            &spec,
            &state_at("2025-01-01T00:01:00Z"),
            at("2025-01-01T00:03:30Z"),
        )
        .unwrap();
        assert!(due.fires.is_empty());
        assert_eq!(due.misfired.len(), 3);
        assert_eq!(due.state.next_fire(), Some(at("2025-01-01T00:04:00Z")));
        assert_eq!(due.state.times_fired, 0);
    }

    #[test]
    fn ignore_misfires_fires_all_then_caps() {
        let spec = cron("0 * * * * ?", MisfirePolicy::IgnoreMisfires);
        let due = resolve_due(
            &spec,
            &state_at("2025-01-01T00:01:00Z"),
            at("2025-01-01T00:03:30Z"),
        )
        .unwrap();
        assert_eq!(due.fires.len(), 3);
        assert_eq!(due.fires[0].kind, FireKind::MisfireFireNow);
        assert_eq!(due.fires[2].kind, FireKind::Late);
        assert_eq!(due.state.next_fire(), Some(at("2025-01-01T00:04:00Z")));
        // 500 missed minutes: the oldest MAX_CATCH_UP_FIRES fire, the rest misfire.
        let due = resolve_due(
            &spec,
            &state_at("2025-01-01T00:00:00Z"),
            at("2025-01-01T08:19:30Z"),
        )
        .unwrap();
        assert_eq!(due.fires.len(), MAX_CATCH_UP_FIRES);
        assert_eq!(due.fires[0].scheduled, at("2025-01-01T00:00:00Z"));
        assert_eq!(due.misfired.len(), 500 - MAX_CATCH_UP_FIRES);
        assert_eq!(due.misfired[0], at("2025-01-01T01:40:00Z"));
        assert!(!due.misfired_truncated);
        assert_eq!(due.state.next_fire(), Some(at("2025-01-01T08:20:00Z")));
        // A whole day: the record is truncated, the schedule still resumes after now.
        let due = resolve_due(
            &spec,
            &state_at("2025-01-01T00:00:00Z"),
            at("2025-01-01T23:59:30Z"),
        )
        .unwrap();
        assert_eq!(due.fires.len(), MAX_CATCH_UP_FIRES);
        assert_eq!(due.misfired.len(), MAX_RECORDED_MISFIRES);
        assert!(due.misfired_truncated);
        assert_eq!(due.state.next_fire(), Some(at("2025-01-02T00:00:00Z")));
    }

    #[test]
    fn long_outages_are_truncated_but_resolved_in_one_step() {
        let spec = cron("* * * * * ?", MisfirePolicy::FireOnceNow);
        let now = at("2025-01-03T00:00:00.500Z");
        let due = resolve_due(&spec, &state_at("2025-01-01T00:00:00Z"), now).unwrap();
        assert_eq!(scheduled(&due), vec![at("2025-01-03T00:00:00Z")]);
        assert_eq!(due.misfired.len(), MAX_RECORDED_MISFIRES);
        assert!(due.misfired_truncated);
        assert_eq!(due.state.next_fire(), Some(at("2025-01-03T00:00:01Z")));
    }

    #[test]
    fn simple_smart_forever_reschedules_next_with_remaining_count() {
        let spec = simple(10_000, None, MisfirePolicy::Smart);
        let st = initial_state(&spec, at("2024-12-31T00:00:00Z")).unwrap();
        let due = resolve_due(&spec, &st, at("2025-01-01T00:02:05Z")).unwrap();
        assert_eq!(
            due.policy_applied,
            Some(MisfirePolicy::RescheduleNextWithRemainingCount)
        );
        assert!(due.fires.is_empty());
        // 00:00:00 .. 00:02:00 missed: 13 grid points.
        assert_eq!(due.misfired.len(), 13);
        assert_eq!(due.state.next_fire(), Some(at("2025-01-01T00:02:10Z")));
        assert_eq!(due.state.times_fired, 13);
    }

    #[test]
    fn simple_smart_with_repeats_reschedules_now_with_existing_count() {
        let spec = simple(10_000, Some(5), MisfirePolicy::Smart);
        let mut st = initial_state(&spec, at("2024-12-31T00:00:00Z")).unwrap();
        // Two fires happened, then the leader was gone for a while.
        st.times_fired = 2;
        st.next_fire_ms = Some(at("2025-01-01T00:00:20Z").timestamp_millis());
        let now = at("2025-01-01T00:05:00.250Z");
        let due = resolve_due(&spec, &st, now).unwrap();
        assert_eq!(
            due.policy_applied,
            Some(MisfirePolicy::RescheduleNowWithExistingCount)
        );
        assert_eq!(scheduled(&due), vec![now]);
        assert_eq!(due.fires[0].kind, FireKind::Normal);
        // 6 fires in all; 2 done, so 4 remain: now and 3 repeats.
        assert_eq!(due.state.simple_repeat_count, Some(3));
        assert_eq!(due.state.times_fired, 1);
        let s = Schedule::new(&spec).unwrap();
        let rest: Vec<_> =
            std::iter::successors(due.state.next_fire(), |t| s.next_after(&due.state, *t))
                .collect();
        assert_eq!(
            rest,
            vec![
                at("2025-01-01T00:05:10.250Z"),
                at("2025-01-01T00:05:20.250Z"),
                at("2025-01-01T00:05:30.250Z")
            ]
        );
    }

    #[test]
    fn simple_reschedule_now_with_remaining_count_uses_up_missed_repeats() {
        let spec = simple(
            10_000,
            Some(10),
            MisfirePolicy::RescheduleNowWithRemainingCount,
        );
        let mut st = initial_state(&spec, at("2024-12-31T00:00:00Z")).unwrap();
        st.times_fired = 2;
        st.next_fire_ms = Some(at("2025-01-01T00:00:20Z").timestamp_millis());
        // Quartz: missed = (now - next) / interval = 65 s / 10 s = 6; remaining = 10 - (2 + 6).
        let due = resolve_due(&spec, &st, at("2025-01-01T00:01:25Z")).unwrap();
        assert_eq!(due.fires.len(), 1);
        assert_eq!(due.state.simple_repeat_count, Some(2));
        // Beyond the count: the fire now is the last one.
        let due = resolve_due(&spec, &st, at("2025-01-01T00:10:00Z")).unwrap();
        assert_eq!(due.fires.len(), 1);
        assert_eq!(due.state.simple_repeat_count, Some(0));
        assert!(due.state.is_complete());
    }

    #[test]
    fn simple_reschedule_next_with_existing_count_keeps_the_count() {
        let spec = simple(
            10_000,
            Some(100),
            MisfirePolicy::RescheduleNextWithExistingCount,
        );
        let mut st = initial_state(&spec, at("2024-12-31T00:00:00Z")).unwrap();
        st.times_fired = 1;
        st.next_fire_ms = Some(at("2025-01-01T00:00:10Z").timestamp_millis());
        let due = resolve_due(&spec, &st, at("2025-01-01T00:01:15Z")).unwrap();
        assert!(due.fires.is_empty());
        assert_eq!(due.state.times_fired, 1);
        assert_eq!(due.state.next_fire(), Some(at("2025-01-01T00:01:20Z")));
    }

    #[test]
    fn once_and_repeat_zero_fire_now_when_misfired() {
        let once = TriggerSpec::new(
            "t",
            "g.j",
            TriggerKind::Once {
                at: at("2025-01-01T00:00:00Z"),
            },
        );
        let st = initial_state(&once, at("2025-01-05T00:00:00Z")).unwrap();
        let due = resolve_due(&once, &st, at("2025-01-05T00:00:00Z")).unwrap();
        assert_eq!(due.policy_applied, Some(MisfirePolicy::FireOnceNow));
        assert_eq!(scheduled(&due), vec![at("2025-01-01T00:00:00Z")]);
        assert_eq!(due.fires[0].kind, FireKind::MisfireFireNow);
        assert!(due.state.is_complete());
        let one = simple(1_000, Some(0), MisfirePolicy::Smart);
        let st = initial_state(&one, at("2024-12-31T00:00:00Z")).unwrap();
        let due = resolve_due(&one, &st, at("2025-01-02T00:00:00Z")).unwrap();
        assert_eq!(due.fires.len(), 1);
        assert!(due.state.is_complete());
    }

    #[test]
    fn policy_names_parse() {
        for p in MisfirePolicy::ALL {
            assert_eq!(p.name().parse::<MisfirePolicy>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.name())
            );
        }
        assert_eq!("FIRE_ONCE_NOW".parse(), Ok(MisfirePolicy::FireOnceNow));
        assert!("sometimes".parse::<MisfirePolicy>().is_err());
    }
}
