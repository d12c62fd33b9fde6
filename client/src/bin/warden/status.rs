//! `warden status`: each member's own view of the ensemble, asked directly
//! (no session is opened, so it also works while there is no leader).

use std::time::Duration;

use comfy_table::{presets, Table};
use warden_client::TlsOptions;
use warden_proto as pb;

use crate::cli::CliError;

/// How long one member may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The hosts of a connect string, without its chroot.
pub fn hosts(servers: &str) -> Vec<String> {
    let list = servers.split('/').next().unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(String::from)
        .collect()
}

/// An admin client of one member, each call limited to `timeout`.
pub async fn admin(
    host: &str,
    timeout: Duration,
    tls: Option<&TlsOptions>,
) -> Result<pb::warden_client::WardenClient<tonic::transport::Channel>, String> {
    let endpoint = warden_client::tls::endpoint(host, tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(ASK_TIMEOUT)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    Ok(pb::warden_client::WardenClient::new(channel))
}

async fn ask(host: &str, tls: Option<&TlsOptions>) -> Result<pb::StatusResponse, String> {
    let mut client = admin(host, ASK_TIMEOUT, tls).await?;
    client
        .status(pb::StatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.message().to_string())
}

/// Prints one row per member asked; fails (exit 2) if none answered.
pub async fn run(servers: &str, tls: Option<&TlsOptions>, json: bool) -> Result<(), CliError> {
    let hosts = hosts(servers);
    let answers = futures::future::join_all(hosts.iter().map(|h| ask(h, tls))).await;
    if answers.iter().all(Result::is_err) {
        let why = answers
            .iter()
            .zip(&hosts)
            .map(|(a, h)| format!("{h}: {}", a.as_ref().err().cloned().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(CliError::Unreachable(why));
    }
    // Lag as the leader reports it.
    let lag_of = |id: u64| {
        answers
            .iter()
            .flatten()
            .find(|s| s.role == "leader")
            .and_then(|l| l.members.iter().find(|m| m.id == id))
            .and_then(|m| m.lag)
    };
    let safe = safe_to_stop_one(&answers);
    if json {
        let (ok, why) = match &safe {
            Ok(why) => (true, why),
            Err(why) => (false, why),
        };
        for (h, a) in hosts.iter().zip(&answers) {
            let line = match a {
                Ok(s) => serde_json::json!({
                    "address": h, "id": s.server_id, "role": s.role, "term": s.term,
                    "leader": (s.leader_id != 0).then_some(s.leader_id),
                    "last_log_index": s.last_log_index, "committed": s.committed,
                    "applied": s.last_applied, "lag": lag_of(s.server_id),
                    "znodes": s.znodes, "sessions": s.sessions, "state_hash": s.state_hash,
                }),
                Err(e) => serde_json::json!({"address": h, "error": e}),
            };
            crate::cli::print_lines(&[line.to_string()])?;
        }
        let line = serde_json::json!({"safe_to_stop_one_member": ok, "why": why});
        return crate::cli::print_lines(&[line.to_string()]);
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header([
        "ID",
        "ADDRESS",
        "ROLE",
        "TERM",
        "LEADER",
        "LAST LOG",
        "COMMITTED",
        "APPLIED",
        "LAG",
        "ZNODES",
        "SESSIONS",
        "STATE HASH",
    ]);
    for (h, a) in hosts.iter().zip(&answers) {
        match a {
            Ok(s) => t.add_row([
                s.server_id.to_string(),
                h.clone(),
                s.role.clone(),
                s.term.to_string(),
                match s.leader_id {
                    0 => "-".into(),
                    l => l.to_string(),
                },
                s.last_log_index.to_string(),
                s.committed.to_string(),
                s.last_applied.to_string(),
                lag_of(s.server_id).map_or("-".into(), |l| l.to_string()),
                s.znodes.to_string(),
                s.sessions.to_string(),
                s.state_hash.clone(),
            ]),
            Err(e) => t.add_row(["?".to_string(), h.clone(), format!("unreachable: {e}")]),
        };
    }
    let verdict = match safe {
        Ok(why) => format!("safe to stop one member: yes ({why})"),
        Err(why) => format!("safe to stop one member: no ({why})"),
    };
    crate::cli::print_lines(&[t.to_string(), verdict])
}

/// Log entries a voter may trail the leader by and still count as caught
/// up (a restarted member is past its catch-up).
const CAUGHT_UP: u64 = 100;

/// Whether one member may be taken down now (the next step of a rolling
/// restart): every member asked answered and has applied what it knows is
/// committed, they agree on a leader, and without any one voter the
/// caught-up voters left are still a majority. `Ok`: why it is safe; `Err`:
/// why not.
fn safe_to_stop_one(answers: &[Result<pb::StatusResponse, String>]) -> Result<String, String> {
    let mut up = Vec::new();
    for a in answers {
        match a {
            Ok(s) => up.push(s),
            Err(e) => return Err(format!("a member did not answer: {e}")),
        }
    }
    if up.len() == 1 && up[0].role == "standalone" {
        return Err("a single server: stopping it stops the service".into());
    }
    let Some(leader) = up.iter().find(|s| s.role == "leader") else {
        return Err("no member says it leads".into());
    };
    if leader.members.len() <= 1 {
        return Err("a single server: stopping it stops the service".into());
    }
    if let Some(s) = up.iter().find(|s| s.leader_id != leader.server_id) {
        return Err(format!(
            "member {} does not follow leader {}",
            s.server_id, leader.server_id
        ));
    }
    if let Some(s) = up.iter().find(|s| s.last_applied < s.committed) {
        return Err(format!(
            "member {} is still applying ({} of {})",
            s.server_id, s.last_applied, s.committed
        ));
    }
    let voters: Vec<&pb::Member> = leader.members.iter().filter(|m| m.voter).collect();
    let caught_up = voters
        .iter()
        .filter(|m| m.lag.is_some_and(|l| l <= CAUGHT_UP))
        .count();
    let majority = voters.len() / 2 + 1;
    if caught_up < majority + 1 {
        let behind: Vec<String> = voters
            .iter()
            .filter(|m| m.lag.is_none_or(|l| l > CAUGHT_UP))
            .map(|m| m.id.to_string())
            .collect();
        return Err(format!(
            "{caught_up} of {} voters are caught up (behind or down: {}); without one more the rest would not be a majority of {majority}",
            voters.len(),
            behind.join(", ")
        ));
    }
    Ok(format!(
        "{caught_up} of {} voters caught up, a majority is {majority}",
        voters.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, lag: Option<u64>) -> pb::Member {
        pb::Member {
            id,
            lag,
            voter: true,
            ..Default::default()
        }
    }

    fn status(id: u64, leader: u64, lags: &[Option<u64>]) -> pb::StatusResponse {
        pb::StatusResponse {
            server_id: id,
            leader_id: leader,
            role: if id == leader { "leader" } else { "follower" }.into(),
            committed: 10,
            last_applied: 10,
            members: if id == leader {
                lags.iter()
                    .enumerate()
                    .map(|(i, l)| member(i as u64 + 1, *l))
                    .collect()
            } else {
                Vec::new()
            },
            ..Default::default()
        }
    }

    #[test]
    fn safe_to_stop_one_only_when_the_rest_stay_a_caught_up_majority() {
        let all = |lags: &[Option<u64>]| -> Vec<Result<pb::StatusResponse, String>> {
            (1..=lags.len() as u64)
                .map(|i| Ok(status(i, 1, lags)))
                .collect()
        };
        assert!(safe_to_stop_one(&all(&[Some(0), Some(0), Some(3)])).is_ok());
        let e = safe_to_stop_one(&all(&[Some(0), Some(0), Some(5000)])).unwrap_err();
        assert!(e.contains("behind or down: 3"), "{e}");
        assert!(safe_to_stop_one(&all(&[Some(0), Some(0), Some(0), Some(0), Some(9999)])).is_ok());
        let mut one_down = all(&[Some(0), Some(0), Some(0)]);
        one_down[2] = Err("connection refused".into());
        assert!(safe_to_stop_one(&one_down).is_err());
        let mut applying = all(&[Some(0), Some(0), Some(0)]);
        if let Ok(s) = &mut applying[1] {
            s.last_applied = 5;
        }
        assert!(safe_to_stop_one(&applying)
            .unwrap_err()
            .contains("still applying"));
    }

    #[test]
    fn hosts_drop_the_chroot_and_blanks() {
        assert_eq!(
            super::hosts("a:1, b:2,,c:3/app/x"),
            vec!["a:1".to_string(), "b:2".into(), "c:3".into()]
        );
    }
}
