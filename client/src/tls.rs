//! TLS to servers that speak it (`warden-server --tls-cert`): the CA to
//! trust and, for mutual TLS, this client's certificate and key.

use std::fmt;
use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::error::{Error, ErrorCode};

/// How to speak TLS to the servers. Exists so one value, in
/// [`ConnectOptions::tls`](crate::ConnectOptions::tls), carries what a
/// ZooKeeper client sets through `zookeeper.ssl.*` properties.
#[derive(Clone, Default)]
pub struct TlsOptions {
    /// PEM CA certificates the server's certificate must chain to; `None`
    /// trusts the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// This client's PEM certificate and private key, for servers that ask
    /// for one (`--tls-client-auth`); its subject is the session's `x509`
    /// identity.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to check the server's certificate against, when it is not
    /// the host in the connect string.
    pub domain: Option<String>,
}

impl TlsOptions {
    /// Reads PEM files: what the tools' `--tls-ca`, `--tls-cert` and
    /// `--tls-key` name.
    pub fn from_files(
        ca: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<TlsOptions, Error> {
        let read = |what: &str, p: &Path| {
            std::fs::read(p).map_err(|e| {
                Error::new(
                    ErrorCode::BadArguments,
                    format!("cannot read the {what} {}: {e}", p.display()),
                )
            })
        };
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((read("certificate", c)?, read("key", k)?)),
            (None, None) => None,
            _ => {
                return Err(Error::new(
                    ErrorCode::BadArguments,
                    "a client certificate needs its key: give both --tls-cert and --tls-key",
                ))
            }
        };
        Ok(TlsOptions {
            ca_pem: ca.map(|p| read("CA certificate", p)).transpose()?,
            identity,
            domain: None,
        })
    }

    fn client_config(&self) -> ClientTlsConfig {
        let mut c = ClientTlsConfig::new();
        c = match &self.ca_pem {
            Some(ca) => c.ca_certificate(Certificate::from_pem(ca)),
            None => c.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            c = c.identity(Identity::from_pem(cert, key));
        }
        if let Some(d) = &self.domain {
            c = c.domain_name(d.clone());
        }
        c
    }
}

/// The `--tls-ca`, `--tls-cert`, `--tls-key` and `--tls` flags (and their
/// `WARDEN_TLS_*` variables), shared by the `warden` and
/// `warden-scheduler` tools.
#[cfg(feature = "clap")]
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Speak TLS, trusting the PEM CA certificates in FILE (for servers
    /// started with --tls-cert)
    #[arg(long, global = true, env = "WARDEN_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// This client's PEM certificate, for servers that check clients'
    /// certificates (mutual TLS); implies TLS
    #[arg(long, global = true, env = "WARDEN_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, global = true, env = "WARDEN_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Speak TLS, trusting the system's CA certificates (implied by
    /// --tls-ca and --tls-cert)
    #[arg(long, global = true, env = "WARDEN_TLS")]
    pub tls: bool,
}

#[cfg(feature = "clap")]
impl TlsArgs {
    /// The TLS settings the flags ask for: `None` for plain text.
    pub fn options(&self) -> Result<Option<TlsOptions>, Error> {
        if !self.tls && self.tls_ca.is_none() && self.tls_cert.is_none() && self.tls_key.is_none() {
            return Ok(None);
        }
        TlsOptions::from_files(
            self.tls_ca.as_deref(),
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
        )
        .map(Some)
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("domain", &self.domain)
            .finish()
    }
}

/// The tonic endpoint of one server (`host:port`), over TLS when `tls` is
/// given: for callers of the gRPC API beside sessions (the `warden` tool's
/// `status` and `member` commands).
pub fn endpoint(
    server: &str,
    tls: Option<&TlsOptions>,
) -> Result<Endpoint, tonic::transport::Error> {
    match tls {
        None => Endpoint::from_shared(format!("http://{server}")),
        Some(t) => {
            Endpoint::from_shared(format!("https://{server}"))?.tls_config(t.client_config())
        }
    }
}
