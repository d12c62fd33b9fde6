//! `warden status`: each member's own view of the ensemble, asked directly
//! (no session is opened, so it also works while there is no leader).

use std::time::Duration;

use comfy_table::{presets, Table};
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
) -> Result<pb::warden_client::WardenClient<tonic::transport::Channel>, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{host}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(ASK_TIMEOUT)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    Ok(pb::warden_client::WardenClient::new(channel))
}

async fn ask(host: &str) -> Result<pb::StatusResponse, String> {
    let mut client = admin(host, ASK_TIMEOUT).await?;
    client
        .status(pb::StatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.message().to_string())
}

/// Prints one row per member asked; fails (exit 2) if none answered.
pub async fn run(servers: &str, json: bool) -> Result<(), CliError> {
    let hosts = hosts(servers);
    let answers = futures::future::join_all(hosts.iter().map(|h| ask(h))).await;
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
    if json {
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
        return Ok(());
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
    crate::cli::print_lines(&[t.to_string()])
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_drop_the_chroot_and_blanks() {
        assert_eq!(
            super::hosts("a:1, b:2,,c:3/app/x"),
            vec!["a:1".to_string(), "b:2".into(), "c:3".into()]
        );
    }
}
