//! `warden member …` and `warden leader transfer`: the ensemble's
//! membership through the admin RPCs (`Members`, `ChangeMembership`,
//! `TransferLeader`). Any member answers, passing changes to the leader;
//! the first host of --servers that answers is used. No session is opened.

use std::time::Duration;

use clap::{Args, Subcommand};
use comfy_table::{presets, Table};
use warden_client::TlsOptions;
use warden_proto as pb;

use crate::cli::{print_lines, CliError};
use crate::status::{admin, hosts};

/// How long a change may take (it waits for a leader and for the change to
/// commit; a hand-off first).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// `warden member …`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List the members: id, addresses, voter or learner, role, lag
    List(ListArgs),
    /// Add a member: it joins as a learner (start it with an empty
    /// --data-dir and --join), and is promoted to voter once close behind
    /// the leader unless --learner keeps it a non-voting member
    Add(AddArgs),
    /// Remove a member (if it leads, it first hands leadership off);
    /// refused if the voters left could not form a quorum
    Remove(IdArg),
    /// Make a learner a voter (refused until it is close behind)
    Promote(IdArg),
}

/// `warden leader …`.
#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Hand leadership to another voter (the most up-to-date one unless
    /// --to names it); writes wait, they do not fail
    Transfer(TransferArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object per member instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The new member's id (1 to 127, not in use)
    pub id: u64,
    /// Its peer address (its --peer-listen), HOST:PORT
    pub peer_address: String,
    /// Keep it a non-voting member (ZooKeeper's observer): it serves reads
    /// and forwards writes but never counts towards quorum
    #[arg(long)]
    pub learner: bool,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// The member's id
    pub id: u64,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The voter to hand leadership to
    #[arg(long, value_name = "ID")]
    pub to: Option<u64>,
}

type AdminClient = pb::warden_client::WardenClient<tonic::transport::Channel>;

/// The first member of --servers that accepts a connection.
async fn first_member(
    servers: &str,
    tls: Option<&TlsOptions>,
    timeout: Duration,
) -> Result<AdminClient, CliError> {
    let mut why = Vec::new();
    for h in hosts(servers) {
        match admin(&h, timeout, tls).await {
            Ok(c) => return Ok(c),
            Err(e) => why.push(format!("{h}: {e}")),
        }
    }
    Err(CliError::Unreachable(why.join("; ")))
}

fn refused(s: tonic::Status) -> CliError {
    match s.code() {
        tonic::Code::Unavailable if s.message().contains("transport") => {
            CliError::Unreachable(s.message().to_string())
        }
        _ => CliError::Refused(s.message().to_string()),
    }
}

pub async fn member(
    servers: &str,
    tls: Option<&TlsOptions>,
    command: MemberCommand,
) -> Result<(), CliError> {
    let mut client = first_member(servers, tls, CHANGE_TIMEOUT).await?;
    let change = |c| pb::MembershipChange { change: Some(c) };
    use pb::membership_change::Change;
    let (reply, json) = match command {
        MemberCommand::List(args) => (client.members(pb::MembersRequest {}).await, args.json),
        MemberCommand::Add(a) => (
            client
                .change_membership(change(Change::Add(pb::AddMember {
                    id: a.id,
                    peer_address: a.peer_address,
                    learner: a.learner,
                })))
                .await,
            false,
        ),
        MemberCommand::Remove(a) => (
            client.change_membership(change(Change::Remove(a.id))).await,
            false,
        ),
        MemberCommand::Promote(a) => (
            client
                .change_membership(change(Change::Promote(a.id)))
                .await,
            false,
        ),
    };
    let reply = reply.map_err(refused)?.into_inner();
    print_members(&reply, json)
}

pub async fn leader(
    servers: &str,
    tls: Option<&TlsOptions>,
    command: LeaderCommand,
) -> Result<(), CliError> {
    let LeaderCommand::Transfer(args) = command;
    let mut client = first_member(servers, tls, CHANGE_TIMEOUT).await?;
    let reply = client
        .transfer_leader(pb::TransferLeaderRequest {
            to: args.to.unwrap_or(0),
        })
        .await
        .map_err(refused)?
        .into_inner();
    print_lines(&[format!(
        "member {} leads (term {}), after {} ms",
        reply.leader_id, reply.term, reply.took_ms
    )])
}

/// A member's lag as `member list` shows it: a learner close behind is
/// ready to be promoted.
fn lag_text(m: &pb::Member) -> String {
    match m.lag {
        None => "-".into(),
        Some(lag) if !m.voter && m.caught_up => format!("{lag} (caught up)"),
        Some(lag) if !m.voter => format!("{lag} (catching up)"),
        Some(lag) => lag.to_string(),
    }
}

fn print_members(reply: &pb::MembersReply, json: bool) -> Result<(), CliError> {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    if json {
        let lines: Vec<String> = reply
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "peer_address": m.peer_address,
                    "client_address": m.client_address, "zk_address": m.zk_address,
                    "admin_address": m.admin_address, "voter": m.voter,
                    "observer": m.observer, "role": m.role, "lag": m.lag,
                    "caught_up": m.caught_up,
                })
                .to_string()
            })
            .collect();
        return print_lines(&lines);
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header([
        "ID",
        "PEER",
        "CLIENT",
        "ZOOKEEPER",
        "ADMIN",
        "VOTER",
        "ROLE",
        "LAG",
    ]);
    for m in &reply.members {
        t.add_row([
            m.id.to_string(),
            m.peer_address.clone(),
            or_dash(&m.client_address),
            or_dash(&m.zk_address),
            or_dash(&m.admin_address),
            if m.voter { "voter" } else { "learner" }.to_string(),
            m.role.clone(),
            lag_text(m),
        ]);
    }
    let mut out = vec![t.to_string()];
    if reply.changing {
        out.push("(a membership change is being committed)".into());
    }
    print_lines(&out)
}
