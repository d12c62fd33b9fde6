//! Test certificates, made fresh for each test with rcgen (nothing is
//! checked in): a CA, and certificates it signs for servers and clients,
//! written as PEM files into a temporary folder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The subject as ZooKeeper writes an `x509` id (RFC 2253).
    pub subject: String,
}

/// A CA of its own and the folder its files live in.
#[derive(Debug)]
pub struct Certs {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM): what `--tls-ca` names.
    pub ca: PathBuf,
    /// A client certificate the harness uses for its own HTTPS requests.
    pub harness: Issued,
}

impl Certs {
    /// A new CA named `name`, with its own folder.
    pub fn new(name: &str) -> Arc<Certs> {
        let dir = tempfile::Builder::new()
            .prefix("warden-certs-")
            .tempdir()
            .expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{name} test CA"));
        params.distinguished_name = dn;
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let ca = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca, issuer.pem()).expect("write CA");
        let mut certs = Certs {
            dir,
            issuer,
            ca,
            harness: Issued {
                cert: PathBuf::new(),
                key: PathBuf::new(),
                subject: String::new(),
            },
        };
        certs.harness = certs.issue("harness", "warden-test-harness");
        Arc::new(certs)
    }

    /// A certificate for `localhost`, 127.0.0.1 and ::1, good for both
    /// server and client authentication, with subject `CN=<cn>,O=Warden
    /// tests`, written as `<file>.pem` and `<file>-key.pem`.
    pub fn issue(&self, file: &str, cn: &str) -> Issued {
        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .expect("params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Warden tests");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let issued = Issued {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}-key.pem")),
            subject: format!("CN={cn},O=Warden tests"),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write cert");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write key");
        issued
    }

    /// The CA certificate's PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).expect("read CA")
    }

    /// What a warden-client needs to reach a server of this CA, presenting
    /// `client` (if any) as its certificate.
    pub fn client_options(&self, client: Option<&Issued>) -> warden_client::TlsOptions {
        warden_client::TlsOptions::from_files(
            Some(&self.ca),
            client.map(|c| c.cert.as_path()),
            client.map(|c| c.key.as_path()),
        )
        .expect("client TLS options")
    }

    /// The `warden` tool's flags for the same.
    pub fn cli_args(&self, client: Option<&Issued>) -> Vec<String> {
        let mut a = vec!["--tls-ca".to_string(), self.ca.display().to_string()];
        if let Some(c) = client {
            a.extend([
                "--tls-cert".to_string(),
                c.cert.display().to_string(),
                "--tls-key".to_string(),
                c.key.display().to_string(),
            ]);
        }
        a
    }

    /// `GET path` over HTTPS from 127.0.0.1:`port`, presenting the
    /// harness's certificate: (status code, body).
    pub fn https_get(&self, port: u16, path: &str) -> std::io::Result<(u16, String)> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).map_err(std::io::Error::other)? {
            roots
                .add(c.map_err(std::io::Error::other)?)
                .map_err(std::io::Error::other)?;
        }
        let chain: Vec<_> = CertificateDer::pem_file_iter(&self.harness.cert)
            .map_err(std::io::Error::other)?
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        let key = PrivateKeyDer::from_pem_file(&self.harness.key).map_err(std::io::Error::other)?;
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(std::io::Error::other)?;
        let name = ServerName::try_from("127.0.0.1").map_err(std::io::Error::other)?;
        let mut conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let mut sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        write!(tls, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut buf = Vec::new();
        // A server that closes without close_notify still sent the reply.
        if let Err(e) = tls.read_to_end(&mut buf) {
            if buf.is_empty() {
                return Err(e);
            }
        }
        Ok(crate::parse_http_reply(&String::from_utf8_lossy(&buf)))
    }
}

/// A server's TLS settings in the harness ([`crate::ServerOpts::tls`]).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub certs: Arc<Certs>,
    /// The server's own certificate.
    pub server: Issued,
    /// `--tls-client-auth`.
    pub client_auth: &'static str,
    /// Leave out `--tls-ca` (a server that checks nobody).
    pub no_ca: bool,
}

impl ServerTls {
    /// A server certificate from `certs`, clients checked as `client_auth` says.
    pub fn new(certs: &Arc<Certs>, name: &str, client_auth: &'static str) -> ServerTls {
        ServerTls {
            certs: certs.clone(),
            server: certs.issue(name, name),
            client_auth,
            no_ca: false,
        }
    }

    /// The server's flags.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--tls-cert".to_string(),
            self.server.cert.display().to_string(),
            "--tls-key".to_string(),
            self.server.key.display().to_string(),
        ];
        if !self.no_ca {
            a.extend([
                "--tls-ca".to_string(),
                self.certs.ca.display().to_string(),
                "--tls-client-auth".to_string(),
                self.client_auth.to_string(),
            ]);
        }
        a
    }
}
