//! Operating a server: its admin endpoints and its command-line tool.

/// `/health`, `/metrics`, `/status`, the gRPC `Status` call, SIGTERM.
mod admin;
/// The `warden` command-line tool.
mod cli;
/// TLS on every listener, client certificates, SIGHUP rotation, mutual
/// TLS between members.
mod tls;
