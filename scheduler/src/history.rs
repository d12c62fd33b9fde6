//! Execution history: one [`HistoryEntry`] per run (or skipped / misfired
//! fire) at `C/history/<job-key>/<scheduled_ms:013>#<part>`, the last N per
//! job, trimmed by the leader.
//!
//! Zero-padded times make the node names sort by time, so trimming and "the
//! last n" are a sort of the child names, with no reads of the data.

use serde::{Deserialize, Serialize};

use crate::model::{FireKind, JobKey};

/// How many entries per job the leader keeps by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

/// How a fire ended, as the history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
    TimedOut,
    /// Not run: the `forbid` policy saw the previous fire still running.
    Skipped,
    /// Not run: past the misfire threshold and the policy said do nothing
    /// (or the fire was folded into a single "fire now").
    Misfired,
    /// The worker died (or lost its session) mid-run and the job does not
    /// request recovery.
    WorkerLost,
    /// Stopped by the `replace` policy, a removed job, or the member shutting down.
    Cancelled,
}

impl Outcome {
    /// The kebab-case name, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed-out",
            Outcome::Skipped => "skipped",
            Outcome::Misfired => "misfired",
            Outcome::WorkerLost => "worker-lost",
            Outcome::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One record of the history: what ran (or did not), when, where and how it
/// ended. Exists so "did the 02:00 fire run, and where?" has an answer in
/// the store after the fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub fire_id: String,
    pub job: JobKey,
    #[serde(default)]
    pub trigger: Option<String>,
    /// The task part (`skip` / `misfire` for fires that did not run).
    pub part: String,
    pub scheduled_ms: i64,
    /// How the fire came about (`normal`, `late`, `misfire-fire-now`,
    /// `manual`); `None` for misfired times that were not fired.
    #[serde(default)]
    pub kind: Option<FireKind>,
    #[serde(default)]
    pub started_ms: Option<i64>,
    #[serde(default)]
    pub ended_ms: Option<i64>,
    /// The member that ran it (or decided it, for skips and misfires).
    pub worker: String,
    pub outcome: Outcome,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The last 4 KiB of the run's output (command jobs) or its message.
    #[serde(default)]
    pub output_tail: String,
    #[serde(default)]
    pub recovering: bool,
    #[serde(default)]
    pub shard_items: Vec<String>,
}

/// The node name of an entry: `<scheduled_ms:013>#<part>`.
pub fn entry_name(scheduled_ms: i64, part: &str) -> String {
    format!("{scheduled_ms:013}#{part}")
}

/// Of a job's history node names, the ones to delete to keep the newest `keep`.
pub fn names_to_trim(mut names: Vec<String>, keep: usize) -> Vec<String> {
    if names.len() <= keep {
        return Vec::new();
    }
    names.sort();
    let excess = names.len() - keep;
    names.truncate(excess);
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_trim_oldest() {
        let names: Vec<String> = [5_i64, 1_000_000, 20, 999]
            .iter()
            .map(|ms| entry_name(*ms, "0"))
            .collect();
        assert_eq!(
            names_to_trim(names.clone(), 2),
            vec![entry_name(5, "0"), entry_name(20, "0")]
        );
        assert!(names_to_trim(names, 4).is_empty());
    }

    #[test]
    fn outcome_names_match_json() {
        for o in [Outcome::TimedOut, Outcome::WorkerLost, Outcome::Succeeded] {
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
    }
}
