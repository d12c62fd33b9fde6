//! Changing the ensemble while it runs: adding members (as learners that
//! catch up, then are promoted), promoting, removing, and handing
//! leadership off.
//!
//! Every change is made by the leader with openraft's joint consensus, one
//! at a time; a member asked for one passes it to the leader over the peer
//! port (`Peer.ChangeMembership`). Before a change the leader checks that
//! a majority of the voters after it answer (so the change can commit and
//! the ensemble goes on), that an id or peer address is not reused, and
//! that a learner to be promoted is close behind.
//!
//! A hand-off ([`Ensemble::transfer`]) holds new writes
//! ([`super::hold`]), waits until the chosen follower has every entry,
//! stops the leader's heartbeats and asks that follower to take over
//! (`Peer.TakeOver`): it starts an election as soon as openraft's leader
//! lease ([`super::LEASE_MS`]) allows the others to vote, which it wins
//! because its log is complete. Held writes then go to the new leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, Membership};
use serde::{Deserialize, Serialize};
use warden_proto::peer as pb;

use super::election::LeaderContact;
use super::member::MemberNode;
use super::network::Peers;
use super::state_machine::Shared;
use super::{Raft, LEASE_MS};

/// A learner is promoted (by hand or on its own) only within this many log
/// entries of the leader.
pub const PROMOTE_LAG: u64 = 1000;

/// How long a member asked whether it is up may take to answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a change waits for a leader, or for an earlier change to end.
const CHANGE_WAIT: Duration = Duration::from_secs(10);

/// How long a hand-off may take before the leader gives up and goes on
/// leading.
const HANDOFF_WAIT: Duration = Duration::from_secs(2);

/// A change to the ensemble, made by the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Change {
    /// A new non-voting member; promoted once close behind unless
    /// `observer`.
    Add {
        id: u64,
        peer: String,
        observer: bool,
    },
    /// A learner becomes a voter.
    Promote { id: u64 },
    /// A member leaves (the leader hands off first if it is the one).
    Remove { id: u64 },
    /// A member's own client addresses, which it announces after starting.
    Announce { id: u64, node: MemberNode },
    /// Leadership moves to this voter (`None`: the most up-to-date one).
    Transfer { to: Option<u64> },
}

/// Why a change was not made.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum MembershipError {
    #[error("member {0} is not the leader")]
    NotLeader(u64),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

impl MembershipError {
    /// The gRPC status an admin call answers with.
    pub fn status(&self) -> tonic::Status {
        let m = self.to_string();
        match self {
            MembershipError::NotLeader(_) | MembershipError::Unavailable(_) => {
                tonic::Status::unavailable(m)
            }
            MembershipError::InUse(_) => tonic::Status::already_exists(m),
            MembershipError::NotFound(_) => tonic::Status::not_found(m),
            MembershipError::Refused(_) => tonic::Status::failed_precondition(m),
            MembershipError::Failed(_) => tonic::Status::internal(m),
        }
    }
}

type Result<T> = std::result::Result<T, MembershipError>;

/// This member's part in changing the ensemble.
pub struct Ensemble {
    pub raft: Raft,
    pub peers: Peers,
    pub shared: Arc<Shared>,
    pub contact: Arc<LeaderContact>,
    /// This member's addresses, as it announces them.
    pub node: MemberNode,
    /// One change (or hand-off) at a time on this member.
    changing: tokio::sync::Mutex<()>,
}

/// What a member says of itself (`Peer.Describe`).
pub struct Described {
    pub cluster: String,
    pub id: u64,
    pub leader: Option<u64>,
    pub membership: Membership<u64, MemberNode>,
    pub lags: BTreeMap<u64, u64>,
    pub changing: bool,
}

impl Ensemble {
    pub fn new(
        raft: Raft,
        peers: Peers,
        shared: Arc<Shared>,
        contact: Arc<LeaderContact>,
        node: MemberNode,
    ) -> Arc<Ensemble> {
        Arc::new(Ensemble {
            raft,
            peers,
            shared,
            contact,
            node,
            changing: tokio::sync::Mutex::new(()),
        })
    }

    fn me(&self) -> u64 {
        self.peers.identity.me
    }

    /// The membership in effect, the leader and (on the leader) each
    /// member's lag.
    pub fn describe(&self) -> Described {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let lags = lags(&m, self.me());
        Described {
            cluster: self.peers.identity.cluster.clone(),
            id: self.me(),
            leader: m.current_leader,
            changing: membership.get_joint_config().len() > 1,
            membership,
            lags,
        }
    }

    /// The ensemble as the leader describes it (asked over the peer port
    /// when this member does not lead).
    pub async fn as_leader_sees_it(&self) -> Result<Described> {
        let (id, addr) = super::forward::leader(&self.raft, CHANGE_WAIT)
            .await
            .ok_or_else(no_leader)?;
        if id == self.me() {
            return Ok(self.describe());
        }
        describe_at(&self.peers, &addr)
            .await
            .map_err(|e| MembershipError::Unavailable(format!("the leader (member {id}): {e}")))
    }

    /// Makes a change through the leader, waiting for one (and for an
    /// earlier change to finish) up to [`CHANGE_WAIT`].
    pub async fn change(&self, change: Change) -> Result<()> {
        let deadline = Instant::now() + CHANGE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (id, addr) = super::forward::leader(&self.raft, left)
                .await
                .ok_or_else(no_leader)?;
            let result = if id == self.me() {
                self.lead_change(change.clone()).await
            } else {
                self.ask_leader(id, &addr, &change).await
            };
            match result {
                Err(MembershipError::NotLeader(_)) | Err(MembershipError::Unavailable(_))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn ask_leader(&self, id: u64, addr: &str, change: &Change) -> Result<()> {
        let unavailable = |e: String| MembershipError::Unavailable(format!("member {id}: {e}"));
        let mut client = self
            .peers
            .client(addr)
            .map_err(|e| unavailable(e.to_string()))?;
        let request = pb::MembershipRequest {
            header: Some(self.peers.identity.header()),
            change: bincode::serialize(change).map_err(|e| unavailable(e.to_string()))?,
        };
        let reply = tokio::time::timeout(CHANGE_WAIT, client.change_membership(request))
            .await
            .map_err(|_| unavailable("did not answer".into()))?
            .map_err(|s| unavailable(s.message().to_string()))?
            .into_inner();
        bincode::deserialize(&reply.result).map_err(|e| unavailable(e.to_string()))?
    }

    /// Makes a change as the leader (`Peer.ChangeMembership` lands here).
    pub async fn lead_change(&self, change: Change) -> Result<()> {
        let _one = tokio::time::timeout(CHANGE_WAIT, self.changing.lock())
            .await
            .map_err(|_| {
                MembershipError::Refused(
                    "another membership change is under way; try again when it is done".into(),
                )
            })?;
        let me = self.me();
        let d = self.describe();
        if d.leader != Some(me) {
            return Err(MembershipError::NotLeader(me));
        }
        if d.changing {
            return Err(MembershipError::Refused(
                "a membership change is still being committed; try again in a moment".into(),
            ));
        }
        let m = &d.membership;
        let voters: BTreeSet<u64> = m.voter_ids().collect();
        match change {
            Change::Add { id, peer, observer } => {
                if let Some(n) = m.get_node(&id) {
                    return Err(MembershipError::InUse(format!(
                        "id {id} is already a member (peer address {}); give the new member an id not in use",
                        n.peer
                    )));
                }
                if let Some((other, _)) = m.nodes().find(|(_, n)| n.peer == peer) {
                    return Err(MembershipError::InUse(format!(
                        "peer address {peer} is member {other}'s; give the new member its own --peer-listen"
                    )));
                }
                let node = MemberNode {
                    observer,
                    ..MemberNode::new(peer.clone())
                };
                self.raft
                    .add_learner(id, node, false)
                    .await
                    .map_err(change_error)?;
                tracing::info!(member = id, %peer, observer, "added a learner");
                Ok(())
            }
            Change::Promote { id } => {
                let node = m.get_node(&id).ok_or_else(|| not_found(id))?.clone();
                if voters.contains(&id) {
                    return Err(MembershipError::Refused(format!(
                        "member {id} is already a voter"
                    )));
                }
                let lag = d.lags.get(&id).copied().unwrap_or(u64::MAX);
                if lag > PROMOTE_LAG {
                    return Err(MembershipError::Refused(format!(
                        "member {id} is {} log entries behind the leader; it can be promoted once within {PROMOTE_LAG} (see its lag in `warden member list`; is it running with --join?)",
                        if lag == u64::MAX { "an unknown number of".to_string() } else { lag.to_string() }
                    )));
                }
                let mut after = voters.clone();
                after.insert(id);
                self.check_quorum(m, &after, &format!("promoting member {id}"))
                    .await?;
                if node.observer {
                    let node = MemberNode {
                        observer: false,
                        ..node
                    };
                    self.raft
                        .change_membership(
                            ChangeMembers::SetNodes(BTreeMap::from([(id, node)])),
                            true,
                        )
                        .await
                        .map_err(change_error)?;
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                    .await
                    .map_err(change_error)?;
                tracing::info!(member = id, lag, "promoted a learner to voter");
                Ok(())
            }
            Change::Remove { id } => {
                if m.get_node(&id).is_none() {
                    return Err(not_found(id));
                }
                if !voters.contains(&id) {
                    self.raft
                        .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                        .await
                        .map_err(change_error)?;
                    tracing::info!(member = id, "removed a learner");
                    return Ok(());
                }
                let mut after = voters.clone();
                after.remove(&id);
                if after.is_empty() {
                    return Err(MembershipError::Refused(format!(
                        "member {id} is the only voter; an ensemble needs one"
                    )));
                }
                self.check_quorum(m, &after, &format!("removing member {id}"))
                    .await?;
                if id == me {
                    // Hand off first; the caller retries with the new leader.
                    let to = self.hand_off(None, &d).await?;
                    tracing::info!(new_leader = to, "handed leadership off before leaving");
                    return Err(MembershipError::NotLeader(me));
                }
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                    .await
                    .map_err(change_error)?;
                tracing::info!(member = id, "removed a voter");
                Ok(())
            }
            Change::Announce { id, node } => {
                let current = m.get_node(&id).ok_or_else(|| not_found(id))?;
                let updated = current.with_addresses_of(&node);
                if updated != *current {
                    self.raft
                        .change_membership(
                            ChangeMembers::SetNodes(BTreeMap::from([(id, updated)])),
                            true,
                        )
                        .await
                        .map_err(change_error)?;
                    tracing::info!(member = id, node = %node, "recorded a member's client addresses");
                }
                Ok(())
            }
            Change::Transfer { to } => {
                let new = self.hand_off(to, &d).await?;
                tracing::info!(new_leader = new, "handed leadership off");
                Ok(())
            }
        }
    }

    /// Refuses a change after which the voters `after` could not commit:
    /// fewer than a majority of them answer now.
    async fn check_quorum(
        &self,
        m: &Membership<u64, MemberNode>,
        after: &BTreeSet<u64>,
        what: &str,
    ) -> Result<()> {
        let probes = after.iter().map(|id| async move {
            if *id == self.me() {
                return true;
            }
            match m.get_node(id) {
                Some(n) => tokio::time::timeout(PROBE_TIMEOUT, describe_at(&self.peers, &n.peer))
                    .await
                    .is_ok_and(|r| r.is_ok()),
                None => false,
            }
        });
        let up = futures::future::join_all(probes).await;
        let answering: Vec<u64> = after
            .iter()
            .zip(&up)
            .filter(|(_, up)| **up)
            .map(|(id, _)| *id)
            .collect();
        let majority = after.len() / 2 + 1;
        if answering.len() < majority {
            let list = |ids: &mut dyn Iterator<Item = &u64>| {
                ids.map(u64::to_string).collect::<Vec<_>>().join(", ")
            };
            return Err(MembershipError::Refused(format!(
                "{what} would leave no quorum: of the voters after it ({}) only {} answer, and {majority} must; start the stopped members first",
                list(&mut after.iter()),
                if answering.is_empty() { "none".into() } else { list(&mut answering.iter()) },
            )));
        }
        Ok(())
    }

    /// Hands leadership to `to` (or the most up-to-date voter); returns the
    /// new leader. Writes are held meanwhile (see the module).
    async fn hand_off(&self, to: Option<u64>, d: &Described) -> Result<u64> {
        let me = self.me();
        let voters: Vec<u64> = d.membership.voter_ids().filter(|v| *v != me).collect();
        let target = match to {
            Some(t) if t == me => return Ok(me),
            Some(t) if voters.contains(&t) => t,
            Some(t) => {
                return Err(MembershipError::Refused(format!(
                    "member {t} is not a voter; leadership can go only to one of {voters:?}"
                )))
            }
            None => *voters
                .iter()
                .min_by_key(|v| d.lags.get(v).copied().unwrap_or(u64::MAX))
                .ok_or_else(|| {
                    MembershipError::Refused("there is no other voter to hand leadership to".into())
                })?,
        };
        let addr = d
            .membership
            .get_node(&target)
            .map(|n| n.peer.clone())
            .ok_or_else(|| not_found(target))?;
        let started = Instant::now();
        let held = self.shared.hold.close().await;
        let term = self.raft.metrics().borrow().current_term;
        // Every entry of this leader applied here and present on the target.
        let caught_up = self
            .raft
            .wait(Some(HANDOFF_WAIT))
            .metrics(
                |m| {
                    let last = m.last_log_index;
                    m.last_applied.map(|l| l.index) >= last
                        && m.replication.as_ref().is_some_and(|r| {
                            r.get(&target).is_some_and(|x| x.map(|l| l.index) >= last)
                        })
                },
                "the hand-off target has every entry",
            )
            .await;
        if caught_up.is_err() {
            return Err(MembershipError::Refused(format!(
                "member {target} did not catch up within {HANDOFF_WAIT:?}; leadership stays with member {me}"
            )));
        }
        self.raft.runtime_config().heartbeat(false);
        let asked = self.ask_take_over(target, &addr, term).await;
        let moved = self
            .raft
            .wait(Some(HANDOFF_WAIT))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != me),
                "a new leader",
            )
            .await;
        self.raft.runtime_config().heartbeat(true);
        drop(held);
        match moved {
            Ok(m) => {
                let new = m.current_leader.unwrap_or(target);
                tracing::info!(
                    from = me,
                    to = new,
                    ms = started.elapsed().as_millis() as u64,
                    "leadership handed off"
                );
                Ok(new)
            }
            Err(_) => Err(MembershipError::Failed(format!(
                "member {target} did not take leadership over within {HANDOFF_WAIT:?}{}; member {me} goes on leading",
                asked.err().map(|e| format!(" ({e})")).unwrap_or_default()
            ))),
        }
    }

    async fn ask_take_over(
        &self,
        target: u64,
        addr: &str,
        term: u64,
    ) -> std::result::Result<(), String> {
        let mut client = self.peers.client(addr).map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(
            HANDOFF_WAIT,
            client.take_over(pb::TakeOverRequest {
                header: Some(self.peers.identity.header()),
                term,
            }),
        )
        .await
        .map_err(|_| format!("member {target} did not answer"))?
        .map_err(|s| s.message().to_string())?
        .into_inner();
        match reply.elected {
            true => Ok(()),
            false => Err(reply.reason),
        }
    }

    /// On the hand-off target: starts an election once openraft's leader
    /// lease has run out on the others (the leader stopped its heartbeats),
    /// trying again until it leads or [`HANDOFF_WAIT`] passes.
    pub async fn take_over(&self, term: u64) -> std::result::Result<(), String> {
        let me = self.me();
        let voter = self.describe().membership.voter_ids().any(|v| v == me);
        if !voter {
            return Err(format!("member {me} is not a voter"));
        }
        if self.raft.metrics().borrow().current_term > term {
            return Err(format!("member {me} is already past term {term}"));
        }
        let lease = Duration::from_millis(LEASE_MS + 30);
        let deadline = Instant::now() + HANDOFF_WAIT;
        while Instant::now() < deadline {
            let quiet = self.contact.silence();
            if quiet < lease {
                tokio::time::sleep(lease - quiet).await;
                continue;
            }
            if let Err(e) = self.raft.trigger().elect().await {
                return Err(format!("could not start an election: {e}"));
            }
            let won = self
                .raft
                .wait(Some(Duration::from_millis(150)))
                .metrics(|m| m.current_leader == Some(me), "leadership")
                .await;
            if won.is_ok() {
                return Ok(());
            }
        }
        Err(format!(
            "member {me} was not elected within {HANDOFF_WAIT:?}"
        ))
    }

    /// Keeps this member's client addresses recorded in the membership
    /// (once a leader is known; checked every second).
    pub async fn announce(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let d = self.describe();
            let Some(recorded) = d.membership.get_node(&d.id) else {
                continue;
            };
            if d.leader.is_none() || recorded.with_addresses_of(&self.node) == *recorded {
                continue;
            }
            let change = Change::Announce {
                id: d.id,
                node: self.node.clone(),
            };
            if let Err(e) = self.change(change).await {
                tracing::debug!(error = %e, "could not record this member's addresses yet");
            }
        }
    }

    /// Resolves once this member is no longer in the ensemble. A removed
    /// member may never see the entry that removed it (the leader stops
    /// sending to it once the change is appended), so when it stops
    /// hearing from a leader it asks the others which member leads, and
    /// that leader's membership decides.
    pub async fn removed(&self) {
        let me = self.me();
        let mut was_member = false;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let d = self.describe();
            let member = d.membership.get_node(&me).is_some();
            if was_member && !member {
                return;
            }
            was_member |= member;
            if !was_member
                || d.leader == Some(me)
                || self.contact.silence() < super::election::QUIET
            {
                continue;
            }
            for (id, n) in d.membership.nodes().filter(|(id, _)| **id != me) {
                let Ok(other) = describe_at(&self.peers, &n.peer).await else {
                    continue;
                };
                if other.leader == Some(*id) {
                    if other.membership.get_node(&me).is_none() {
                        return;
                    }
                    break;
                }
            }
        }
    }

    /// On the leader, every second: promotes learners (not observers) that
    /// are within [`PROMOTE_LAG`] entries.
    pub async fn promote_caught_up(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let d = self.describe();
            if d.leader != Some(d.id) || d.changing {
                continue;
            }
            let ready = d.membership.nodes().find(|(id, n)| {
                !n.observer
                    && !d.membership.voter_ids().any(|v| v == **id)
                    && d.lags.get(id).is_some_and(|lag| *lag <= PROMOTE_LAG)
            });
            if let Some((id, _)) = ready {
                let id = *id;
                if let Err(e) = self.lead_change(Change::Promote { id }).await {
                    tracing::info!(member = id, error = %e, "could not promote a caught-up learner yet");
                }
            }
        }
    }
}

/// On the leader, each member's lag in log entries behind the leader's
/// last entry (0 for the leader itself; the whole log for a member it has
/// not matched yet); empty on any other member, which does not know.
pub fn lags(m: &openraft::RaftMetrics<u64, MemberNode>, me: u64) -> BTreeMap<u64, u64> {
    let Some(r) = &m.replication else {
        return BTreeMap::new();
    };
    let last = m.last_log_index.unwrap_or(0);
    m.membership_config
        .membership()
        .nodes()
        .map(|(id, _)| {
            let lag = match r.get(id) {
                _ if *id == me => 0,
                Some(Some(matched)) => last.saturating_sub(matched.index),
                _ => last,
            };
            (*id, lag)
        })
        .collect()
}

/// Asks the member at `addr` to describe itself.
pub async fn describe_at(peers: &Peers, addr: &str) -> std::result::Result<Described, String> {
    let mut client = peers.client(addr).map_err(|e| e.to_string())?;
    let reply = tokio::time::timeout(PROBE_TIMEOUT * 4, client.describe(peers.identity.header()))
        .await
        .map_err(|_| "did not answer".to_string())?
        .map_err(|s| s.message().to_string())?
        .into_inner();
    decode_described(reply)
}

/// A `Peer.Describe` answer, decoded.
pub fn decode_described(r: pb::DescribeReply) -> std::result::Result<Described, String> {
    let membership = bincode::deserialize(&r.membership).map_err(|e| e.to_string())?;
    let lags = match r.lags.is_empty() {
        true => BTreeMap::new(),
        false => bincode::deserialize(&r.lags).map_err(|e| e.to_string())?,
    };
    Ok(Described {
        cluster: r.cluster,
        id: r.id,
        leader: (r.leader_id != 0).then_some(r.leader_id),
        membership,
        lags,
        changing: r.changing,
    })
}

/// A `Peer.Describe` answer for `d`.
pub fn encode_described(d: &Described, applied: u64) -> pb::DescribeReply {
    pb::DescribeReply {
        cluster: d.cluster.clone(),
        id: d.id,
        leader_id: d.leader.unwrap_or(0),
        applied,
        membership: bincode::serialize(&d.membership).unwrap_or_default(),
        lags: match d.lags.is_empty() {
            true => Vec::new(),
            false => bincode::serialize(&d.lags).unwrap_or_default(),
        },
        changing: d.changing,
    }
}

fn no_leader() -> MembershipError {
    MembershipError::Unavailable(
        "the ensemble has no leader: a majority of its voters must be running".into(),
    )
}

fn not_found(id: u64) -> MembershipError {
    MembershipError::NotFound(format!(
        "member {id} is not in the ensemble (see `warden member list`)"
    ))
}

fn change_error(e: RaftError<u64, ClientWriteError<u64, MemberNode>>) -> MembershipError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            MembershipError::Unavailable("leadership moved during the change; try again".into())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_),
        )) => MembershipError::Refused(
            "a membership change is still being committed; try again in a moment".into(),
        ),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            MembershipError::Refused(e.to_string())
        }
        RaftError::Fatal(e) => MembershipError::Failed(format!("consensus has stopped: {e}")),
    }
}
