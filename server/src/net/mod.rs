//! The network edge shared by every listener: [`accept`] admits
//! connections (per-address limit, TLS handshake, client identity) and
//! [`tls`] holds the certificates, re-read on SIGHUP.

pub mod accept;
pub mod tls;
