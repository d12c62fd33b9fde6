//! Elections in an ensemble, with a pre-vote (Raft thesis §9.6): a member
//! that has not heard from a leader for its election timeout first asks
//! its peers whether they would vote for it, and starts an election only
//! if a majority would.
//!
//! openraft 0.9 has no pre-vote: a member that was stopped, cut off, or is
//! busy installing a snapshot times out and raises the term, and the
//! leader steps down when it learns the higher term, even though the
//! member could never win (its log is behind) and the others still hear
//! the leader. Each such election stops writes for a failover. So
//! openraft's own election timer is off in an ensemble (`enable_elect:
//! false`) and [`drive`] decides when to call `trigger().elect()`.
//!
//! A peer grants a pre-vote only if it has not heard from a leader for
//! [`QUIET`] (the longest election timeout, as long as openraft's leader
//! lease, so a granted pre-vote means the real vote can be granted too),
//! is not itself leading with a majority, and the candidate's log is at
//! least as up to date as its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use openraft::LogId;
use parking_lot::Mutex;
use rand::Rng;
use warden_proto::peer as pb;

use super::network::Peers;
use super::{Raft, ELECTION_TIMEOUT_MAX_MS, ELECTION_TIMEOUT_MIN_MS, HEARTBEAT_MS};

/// How long since a peer last heard a leader before it grants a pre-vote.
pub const QUIET: Duration = Duration::from_millis(ELECTION_TIMEOUT_MAX_MS);

/// When this member last heard from a leader (an accepted append-entries or
/// snapshot chunk); since start-up if never.
pub struct LeaderContact {
    last: Mutex<Instant>,
}

impl LeaderContact {
    pub fn new() -> Arc<LeaderContact> {
        Arc::new(LeaderContact {
            last: Mutex::new(Instant::now()),
        })
    }

    /// A leader was heard from just now.
    pub fn heard(&self) {
        *self.last.lock() = Instant::now();
    }

    /// How long ago a leader was last heard from.
    pub fn silence(&self) -> Duration {
        self.last.lock().elapsed()
    }
}

/// Whether `a` is at least as up to date as `b` (Raft §5.4.1: the later
/// last term wins, then the longer log).
pub fn up_to_date(a: Option<&LogId<u64>>, b: Option<&LogId<u64>>) -> bool {
    let key = |l: Option<&LogId<u64>>| l.map(|l| (l.leader_id.term, l.index));
    key(a) >= key(b)
}

/// This member's answer to a pre-vote: `Ok` to grant, or why not.
pub fn answer(
    raft: &Raft,
    me: u64,
    contact: &LeaderContact,
    candidate: Option<&LogId<u64>>,
) -> Result<(), String> {
    if super::leads_with_quorum(raft, me, true) {
        return Err(format!("member {me} leads with a majority"));
    }
    let silence = contact.silence();
    if silence < QUIET {
        return Err(format!(
            "member {me} heard from a leader {} ms ago",
            silence.as_millis()
        ));
    }
    let mine = raft.data_metrics().borrow().last_log;
    if !up_to_date(candidate, mine.as_ref()) {
        return Err(format!(
            "member {me}'s log ({mine:?}) is ahead of the candidate's ({candidate:?})"
        ));
    }
    Ok(())
}

/// Starts elections for this member when it stops hearing from a leader
/// and a majority of the voters agrees (see the module); a learner never
/// does. The voters are read from the membership in effect each time, so
/// the driver follows membership changes. Runs until the process stops.
pub async fn drive(raft: Raft, peers: Peers, contact: Arc<LeaderContact>) {
    let me = peers.identity.me;
    let timeout = || {
        Duration::from_millis(
            rand::rng().random_range(ELECTION_TIMEOUT_MIN_MS..=ELECTION_TIMEOUT_MAX_MS),
        )
    };
    let mut wait = timeout();
    let mut attempted: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS / 2)).await;
        let quiet = contact
            .silence()
            .min(attempted.map_or(Duration::MAX, |t| t.elapsed()));
        if raft.metrics().borrow().current_leader == Some(me) || quiet < wait {
            continue;
        }
        let (members, majority) = {
            let m = raft.metrics().borrow().membership_config.clone();
            let m = m.membership();
            let voters: Vec<(u64, String)> = m
                .voter_ids()
                .filter_map(|id| Some((id, m.get_node(&id)?.peer.clone())))
                .collect();
            // During a change both configurations must agree; asking the
            // larger one for a majority of its own is the closer guess.
            let majority = m
                .get_joint_config()
                .iter()
                .map(|c| c.len() / 2 + 1)
                .max()
                .unwrap_or(1);
            (voters, majority)
        };
        if !members.iter().any(|(id, _)| *id == me) {
            continue;
        }
        let last = raft.data_metrics().borrow().last_log;
        let Ok(last_log) = bincode::serialize(&last) else {
            continue;
        };
        let asks = members
            .iter()
            .filter(|(id, _)| *id != me)
            .map(|(id, addr)| {
                let request = pb::PreVoteRequest {
                    header: Some(peers.identity.header()),
                    last_log: last_log.clone(),
                };
                let client = peers.client(addr);
                async move {
                    let mut client = client.ok()?;
                    let reply = tokio::time::timeout(
                        Duration::from_millis(ELECTION_TIMEOUT_MIN_MS),
                        client.pre_vote(request),
                    )
                    .await
                    .ok()?
                    .ok()?
                    .into_inner();
                    if !reply.granted {
                        tracing::debug!(peer = id, reason = %reply.reason, "pre-vote refused");
                    }
                    Some(reply.granted)
                }
            });
        // Counted as answers come: a dead peer's call must not hold up an
        // election the others already agree to.
        let mut answers: FuturesUnordered<_> = asks.collect();
        let mut grants = 1;
        while grants < majority {
            match answers.next().await {
                Some(Some(true)) => grants += 1,
                Some(_) => {}
                None => break,
            }
        }
        attempted = Some(Instant::now());
        // A leader may have been heard while the peers were asked.
        let still_quiet = contact.silence() >= Duration::from_millis(ELECTION_TIMEOUT_MIN_MS)
            && raft.metrics().borrow().current_leader != Some(me);
        if grants >= majority && still_quiet {
            tracing::info!(
                grants,
                silence_ms = contact.silence().as_millis() as u64,
                "no leader heard and a majority agrees: starting an election"
            );
            if let Err(e) = raft.trigger().elect().await {
                tracing::warn!(error = %e, "could not start an election");
            }
            // As a Raft candidate would: a fresh random timeout before the
            // next attempt, so that two candidates do not keep colliding.
            wait = timeout();
        } else {
            // Asking changes nothing: ask again soon, at a jittered pace.
            wait = Duration::from_millis(
                rand::rng().random_range(HEARTBEAT_MS / 2..=HEARTBEAT_MS * 3 / 2),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    fn log(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    #[test]
    fn a_later_term_or_a_longer_log_is_more_up_to_date() {
        assert!(up_to_date(Some(&log(2, 1)), Some(&log(1, 9))));
        assert!(!up_to_date(Some(&log(1, 9)), Some(&log(2, 1))));
        assert!(up_to_date(Some(&log(2, 5)), Some(&log(2, 5))));
        assert!(up_to_date(Some(&log(2, 6)), Some(&log(2, 5))));
        assert!(!up_to_date(Some(&log(2, 4)), Some(&log(2, 5))));
        assert!(up_to_date(Some(&log(1, 0)), None));
        assert!(!up_to_date(None, Some(&log(1, 0))));
        assert!(up_to_date(None, None));
    }
}
