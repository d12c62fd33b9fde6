//! Opening a session: a new one proposed to the log (with a fresh id and
//! password), or a resumed one checked against the tree.

use std::time::{Duration, Instant};

use rand::RngCore;

use super::message::Connect;
use super::Ctx;
use crate::error::{Code, ZkError};
use crate::txn::{Op, Outcome};

/// How long a connect from a client that has seen more than this member
/// has applied waits for this member to catch up.
const CATCH_UP_WAIT: Duration = Duration::from_secs(1);

/// A session ready to attach to a connection.
pub struct Opened {
    pub session_id: u64,
    pub password: Vec<u8>,
    pub timeout_ms: u32,
}

/// Creates a new session, or checks the id and password of one being resumed.
pub async fn open_session(ctx: &Ctx, c: &Connect) -> Result<Opened, ZkError> {
    // A member a little behind what the client has seen holds the connect
    // until it has applied that far; one further behind refuses it, and
    // the client tries another member.
    if c.last_zxid > ctx.shared.state.read().tree.last_zxid() {
        let index = (c.last_zxid as u64) >> crate::txn::BATCH_BITS;
        ctx.shared.wait_applied(index, CATCH_UP_WAIT).await;
    }
    let last_zxid = ctx.shared.state.read().tree.last_zxid();
    if c.last_zxid > last_zxid {
        return Err(ZkError::new(
            Code::ConnectionLoss,
            format!(
                "this server has applied up to zxid {last_zxid} but the client has seen {}; try another server",
                c.last_zxid
            ),
        ));
    }
    if c.session_id != 0 {
        let info = ctx.shared.state.read().tree.session(c.session_id).cloned();
        let Some(info) = info else {
            return Err(ZkError::new(
                Code::SessionExpired,
                format!(
                    "session 0x{:x} has expired or never existed; open a new session",
                    c.session_id
                ),
            ));
        };
        if info.password != c.password {
            return Err(ZkError::new(
                Code::AuthFailed,
                format!("wrong password for session 0x{:x}", c.session_id),
            ));
        }
        if !ctx.shared.sessions.touch(c.session_id, Instant::now()) {
            return Err(ZkError::new(
                Code::SessionExpired,
                format!(
                    "session 0x{:x} is expiring; open a new session",
                    c.session_id
                ),
            ));
        }
        tracing::info!(session = format!("0x{:x}", c.session_id), "session resumed");
        return Ok(Opened {
            session_id: c.session_id,
            password: info.password,
            timeout_ms: info.timeout_ms,
        });
    }
    let timeout_ms = ctx.config.negotiate_timeout(c.timeout_ms);
    for _ in 0..5 {
        let (id, password) = {
            let mut rng = rand::rng();
            let mut password = vec![0u8; 16];
            rng.fill_bytes(&mut password);
            (session_id(ctx.config.server_id, rng.next_u64()), password)
        };
        let r = ctx
            .proposer
            .propose(
                0,
                Op::CreateSession {
                    session_id: id,
                    password,
                    timeout_ms,
                },
            )
            .await?;
        match r.result {
            Ok(Outcome::SessionCreated {
                session_id,
                password,
                timeout_ms,
            }) => {
                tracing::info!(
                    session = format!("0x{session_id:x}"),
                    timeout_ms,
                    client = %c.client_name,
                    "session opened"
                );
                return Ok(Opened {
                    session_id,
                    password,
                    timeout_ms,
                });
            }
            Ok(_) => {
                return Err(ZkError::new(
                    Code::SystemError,
                    "unexpected result opening a session",
                ))
            }
            Err(e) if e.error.code == Code::SystemError => continue,
            Err(e) => return Err(e.error),
        }
    }
    Err(ZkError::new(
        Code::SystemError,
        "could not allocate a session id",
    ))
}

/// A new session id: the server id in the top byte, as ZooKeeper's, and
/// random bits below. The top byte keeps ids clear of ZooKeeper's
/// ephemeral-owner markers (0x80 containers, 0xFF TTL nodes), which tools
/// decode from `ephemeralOwner`.
fn session_id(server_id: u64, random: u64) -> u64 {
    ((server_id & 0x7F) << 56) | (random & 0x00FF_FFFF_FFFF_FFFF) | 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_carry_the_server_id_and_no_marker_byte() {
        for (server, random) in [(1, u64::MAX), (0, 0), (200, 0xFF00_0000_0000_0000)] {
            let id = super::session_id(server, random);
            assert_eq!(id >> 56, server & 0x7F);
            assert_ne!(id, 0);
            assert!(id >> 56 < 0x80, "{id:#x}");
        }
    }
}
