//! Opening a session stream on one server of the ensemble.
//!
//! Kept apart from the session task: the first connect ([`connect_any`])
//! and every reconnect ([`connect_round`]) go through the same attempt.

use std::error::Error as StdError;
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use warden_proto::v1 as proto;
use warden_proto::v1::warden_client::WardenClient;

use crate::connect_string::ServerAddr;
use crate::error::{Error, ErrorCode};
use crate::tls::TlsOptions;

/// Largest message the client accepts: well above the 1 MiB data limit, so
/// big child lists and multi results fit.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// An open session stream: where frames go out, where they come in, and
/// what the server said when it accepted the session.
pub(crate) struct Connection {
    /// The server this stream is open to.
    pub server: ServerAddr,
    /// Frames to the server, in order. Taking it (dropping the sender)
    /// half-closes the stream: `None` once the server asked the client to
    /// move (GoAway).
    pub out: Option<mpsc::UnboundedSender<proto::ClientFrame>>,
    /// Frames from the server, in order.
    pub inbound: tonic::Streaming<proto::ServerFrame>,
    /// The server's `Connected` frame.
    pub connected: proto::Connected,
    /// Keeps the HTTP/2 connection's handle alive as long as the stream.
    _grpc: WardenClient<Channel>,
}

/// Why one attempt failed: worth trying the next server, or not.
enum AttemptError {
    /// This server could not take the session; another might.
    Retry(String),
    /// This server answered but cannot take a session just now (an
    /// ensemble member while the leader changes): it may in a moment.
    Busy(String),
    /// No server will: the session itself is refused (expired, bad password).
    Fatal(Error),
}

/// Tries `servers` in random order until one accepts `connect`, all within
/// `timeout`. Each attempt gets an equal share of the time that is left, so
/// one unresponsive server cannot use up the whole budget. When a server
/// answered that it cannot take a session just now (an ensemble electing a
/// leader), the servers are tried again, after [`BUSY_PAUSE`], while time
/// is left; servers that cannot be reached fail the connect at once.
pub(crate) async fn connect_any(
    servers: &[ServerAddr],
    connect: &proto::Connect,
    timeout: Duration,
    tls: Option<&TlsOptions>,
) -> Result<Connection, Error> {
    let deadline = Instant::now() + timeout;
    let mut tried = Vec::new();
    let mut last_error = String::from("no server to try");
    loop {
        let mut order = servers.to_vec();
        order.shuffle(&mut rand::rng());
        let mut busy = false;
        let count = order.len();
        for (i, server) in order.into_iter().enumerate() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() && !tried.is_empty() {
                break;
            }
            let left = u32::try_from(count - i).unwrap_or(u32::MAX).max(1);
            let budget = (remaining / left).max(Duration::from_millis(1));
            if !tried.contains(&server.to_string()) {
                tried.push(server.to_string());
            }
            match tokio::time::timeout(budget, connect_one(&server, connect, budget, tls)).await {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(AttemptError::Fatal(e))) => return Err(e),
                Ok(Err(AttemptError::Retry(why))) => {
                    tracing::debug!(%server, %why, "server did not accept the session");
                    last_error = format!("{server}: {why}");
                }
                Ok(Err(AttemptError::Busy(why))) => {
                    tracing::debug!(%server, %why, "server cannot take a session just now");
                    last_error = format!("{server}: {why}");
                    busy = true;
                }
                Err(_) => {
                    tracing::debug!(%server, ?budget, "connect attempt timed out");
                    last_error = format!("{server}: no answer within {} ms", budget.as_millis());
                }
            }
        }
        if !busy || Instant::now() + BUSY_PAUSE >= deadline {
            break;
        }
        tokio::time::sleep(BUSY_PAUSE).await;
    }
    Err(Error::NoServer {
        servers: tried,
        last_error,
    })
}

/// The pause before trying again servers that were busy.
const BUSY_PAUSE: Duration = Duration::from_millis(100);

/// Why a round of reconnect attempts failed.
pub(crate) enum RoundError {
    /// A server refused the session itself (expired, wrong password): no
    /// other server will take it either.
    Refused(Error),
    /// No server accepted, for reasons another round may not have.
    NoServer(Error),
}

/// One round of reconnect attempts: every server once, in random order
/// but `last` (the server the broken connection was to) at the end, each
/// given at most `per_attempt`.
pub(crate) async fn connect_round(
    servers: &[ServerAddr],
    connect: &proto::Connect,
    per_attempt: Duration,
    last: Option<&ServerAddr>,
    tls: Option<&TlsOptions>,
) -> Result<Connection, RoundError> {
    let order = round_order(servers, last);
    let mut tried = Vec::new();
    let mut last_error = String::from("no server to try");
    for server in order {
        tracing::debug!(
            %server,
            session = format_args!("{:#x}", connect.session_id),
            last_zxid = connect.last_zxid,
            "reconnect attempt"
        );
        tried.push(server.to_string());
        match tokio::time::timeout(per_attempt, connect_one(&server, connect, per_attempt, tls))
            .await
        {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(AttemptError::Fatal(e))) => return Err(RoundError::Refused(e)),
            Ok(Err(AttemptError::Retry(why) | AttemptError::Busy(why))) => {
                tracing::debug!(%server, %why, "reconnect attempt failed");
                last_error = format!("{server}: {why}");
            }
            Err(_) => {
                tracing::debug!(%server, ?per_attempt, "reconnect attempt timed out");
                last_error = format!("{server}: no answer within {} ms", per_attempt.as_millis());
            }
        }
    }
    Err(RoundError::NoServer(Error::NoServer {
        servers: tried,
        last_error,
    }))
}

/// The servers in random order, `last` (if among them) moved to the end,
/// so a reconnect tries the other servers first.
fn round_order(servers: &[ServerAddr], last: Option<&ServerAddr>) -> Vec<ServerAddr> {
    let mut order = servers.to_vec();
    order.shuffle(&mut rand::rng());
    if let Some(i) = last.and_then(|l| order.iter().position(|s| s == l)) {
        let server = order.remove(i);
        order.push(server);
    }
    order
}

/// Opens the stream on one server and waits for `Connected`.
async fn connect_one(
    server: &ServerAddr,
    connect: &proto::Connect,
    budget: Duration,
    tls: Option<&TlsOptions>,
) -> Result<Connection, AttemptError> {
    let endpoint = crate::tls::endpoint(&server.to_string(), tls)
        .map_err(|e| AttemptError::Retry(describe(&e)))?
        .connect_timeout(budget)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| AttemptError::Retry(describe(&e)))?;
    let mut grpc = WardenClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);

    let (out, rx) = mpsc::unbounded_channel();
    // The receiver is alive right here, so this cannot fail.
    let _ = out.send(proto::ClientFrame {
        frame: Some(proto::client_frame::Frame::Connect(connect.clone())),
    });
    let mut inbound = grpc
        .session(UnboundedReceiverStream::new(rx))
        .await
        .map_err(|status| AttemptError::Retry(describe_status(&status)))?
        .into_inner();

    use proto::server_frame::Frame;
    match inbound.message().await {
        Ok(Some(proto::ServerFrame {
            frame: Some(Frame::Connected(connected)),
        })) => Ok(Connection {
            server: server.clone(),
            out: Some(out),
            inbound,
            connected,
            _grpc: grpc,
        }),
        Ok(Some(proto::ServerFrame {
            frame: Some(Frame::ConnectError(refused)),
        })) => {
            let code = ErrorCode::from_i32(refused.code);
            let message = if refused.message.is_empty() {
                format!("{server} refused the session")
            } else {
                refused.message
            };
            match code {
                ErrorCode::SessionExpired | ErrorCode::AuthFailed | ErrorCode::BadArguments => {
                    Err(AttemptError::Fatal(Error::new(code, message)))
                }
                ErrorCode::ConnectionLoss => Err(AttemptError::Busy(format!("{code}: {message}"))),
                _ => Err(AttemptError::Retry(format!("{code}: {message}"))),
            }
        }
        Ok(Some(_)) => Err(AttemptError::Retry(
            "the server answered Connect with something other than Connected".into(),
        )),
        Ok(None) => Err(AttemptError::Retry(
            "the server ended the stream before accepting the session".into(),
        )),
        Err(status) => Err(AttemptError::Retry(describe_status(&status))),
    }
}

/// An error and its causes on one line (tonic's transport errors say only
/// "transport error" at the top).
fn describe(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = e.source();
    }
    text
}

fn describe_status(status: &tonic::Status) -> String {
    let mut text = format!("{:?}", status.code());
    if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    if let Some(source) = StdError::source(status) {
        text.push_str(": ");
        text.push_str(&describe(source));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> ServerAddr {
        ServerAddr {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn a_round_tries_every_server_once_the_last_one_last() {
        let servers: Vec<ServerAddr> = (1..=4).map(addr).collect();
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..100 {
            let order = round_order(&servers, Some(&addr(2)));
            assert_eq!(order.len(), 4);
            assert_eq!(order[3], addr(2));
            let mut sorted = order.clone();
            sorted.sort_by_key(|s| s.port);
            assert_eq!(sorted, servers);
            firsts.insert(order[0].port);
        }
        assert!(firsts.len() > 1, "the order is random: {firsts:?}");
        // One server, or none to avoid: just a shuffle.
        assert_eq!(round_order(&[addr(1)], Some(&addr(1))), vec![addr(1)]);
        assert_eq!(round_order(&servers, Some(&addr(9))).len(), 4);
        assert_eq!(round_order(&servers, None).len(), 4);
    }
}
