//! TLS settings: the certificate, key and CA files named by `--tls-cert`,
//! `--tls-key` and `--tls-ca`, turned into rustls configurations for each
//! kind of listener and for dialing peers, and read again on SIGHUP.
//!
//! Every listener shares one certificate. Clients are asked for one as
//! `--tls-client-auth` says; peers always must present one the CA signed
//! (mutual TLS between members).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Whether clients must present a certificate (ZooKeeper's `ssl.clientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Not asked for; connections get no `x509` identity.
    None,
    /// Asked for; a client without one may still connect.
    Optional,
    /// A client without a certificate the CA signed is refused.
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(ClientAuth::None),
            "optional" | "want" => Ok(ClientAuth::Optional),
            "required" | "need" => Ok(ClientAuth::Required),
            other => Err(format!(
                "tls_client_auth {other:?} is not one of none, optional, required"
            )),
        }
    }
}

/// The TLS files a server was configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates that client and peer certificates must chain to.
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// Which listener a configuration is for: they differ in the application
/// protocol offered (ALPN) and in how strictly the other side is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// gRPC clients: HTTP/2.
    Grpc,
    /// ZooKeeper-protocol clients: no ALPN.
    Zk,
    /// Admin HTTP: HTTP/1.1.
    Admin,
    /// Other members: HTTP/2, client certificate required.
    Peer,
}

/// Why TLS files could not be used; says which file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("{what} {path} holds no PEM {expected}; give a PEM file (-----BEGIN {expected}-----)")]
    Empty {
        what: &'static str,
        path: String,
        expected: &'static str,
    },
    #[error("the TLS settings do not fit together: {0}")]
    Invalid(String),
}

/// The loaded settings: one rustls configuration per role plus what
/// dialing a peer needs, replaced as a whole on reload.
struct Loaded {
    grpc: Arc<ServerConfig>,
    zk: Arc<ServerConfig>,
    admin: Arc<ServerConfig>,
    peer: Option<Arc<ServerConfig>>,
    /// For tonic's client side when dialing peers: (cert, key, ca) PEM.
    peer_client: Option<tonic::transport::ClientTlsConfig>,
}

/// The server's TLS state, shared by every listener and by the peer
/// network; [`Tls::reload`] swaps in newly read files for new connections.
pub struct Tls {
    files: TlsFiles,
    loaded: RwLock<Arc<Loaded>>,
}

impl Tls {
    /// Reads the files; fails with what is wrong with them.
    pub fn load(files: TlsFiles) -> Result<Arc<Tls>, TlsError> {
        let loaded = load(&files)?;
        Ok(Arc::new(Tls {
            files,
            loaded: RwLock::new(Arc::new(loaded)),
        }))
    }

    /// Reads the files again. On failure the old certificates stay in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = load(&self.files)?;
        *self.loaded.write() = Arc::new(loaded);
        Ok(())
    }

    /// The configuration new connections of `role` are accepted with.
    pub fn server_config(&self, role: Role) -> Option<Arc<ServerConfig>> {
        let l = self.loaded.read();
        match role {
            Role::Grpc => Some(l.grpc.clone()),
            Role::Zk => Some(l.zk.clone()),
            Role::Admin => Some(l.admin.clone()),
            Role::Peer => l.peer.clone(),
        }
    }

    /// How to dial a peer: this member's certificate as the client
    /// certificate, the CA as the roots.
    pub fn peer_client(&self) -> Option<tonic::transport::ClientTlsConfig> {
        self.loaded.read().peer_client.clone()
    }

    /// Whether peers can be checked (a CA is configured).
    pub fn has_ca(&self) -> bool {
        self.files.ca.is_some()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// A PEM file's bytes (tonic's client side takes them as they are) and the
/// certificates in it.
fn certs(
    what: &'static str,
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), TlsError> {
    let pem = read(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.display().to_string(),
            expected: "CERTIFICATE",
        });
    }
    Ok((pem, certs))
}

/// *ring*, as tonic's `tls-ring` client side uses: it builds with no C
/// toolchain beyond what Rust needs. rustls 0.23.48 deprecates it for
/// lacking post-quantum key exchange (aws-lc-rs has it); see docs/security.md.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let (cert_pem, chain) = certs("certificate (--tls-cert)", &files.cert)?;
    let key_pem = read("key (--tls-key)", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Empty {
        what: "key (--tls-key)",
        path: files.key.display().to_string(),
        expected: "PRIVATE KEY",
    })?;
    let (ca_pem, roots) = match &files.ca {
        Some(ca) => {
            let (pem, cas) = certs("CA certificate (--tls-ca)", ca)?;
            let mut roots = RootCertStore::empty();
            for c in cas {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Invalid(format!("{}: {e}", ca.display())))?;
            }
            (Some(pem), Some(Arc::new(roots)))
        }
        None => (None, None),
    };
    if files.client_auth != ClientAuth::None && roots.is_none() {
        return Err(TlsError::Invalid(
            "checking client certificates (--tls-client-auth optional or required) needs --tls-ca"
                .into(),
        ));
    }
    let build = |auth: ClientAuth, alpn: &[&[u8]]| -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
        let builder = match (auth, &roots) {
            (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
            (auth, Some(roots)) => {
                let v = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider());
                let v = match auth {
                    ClientAuth::Optional => v.allow_unauthenticated(),
                    _ => v,
                };
                let v = v
                    .build()
                    .map_err(|e| TlsError::Invalid(format!("the CA (--tls-ca): {e}")))?;
                builder.with_client_cert_verifier(v)
            }
        };
        let mut config = builder
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| {
                TlsError::Invalid(format!(
                    "{} and {} are not a certificate and its key: {e}",
                    files.cert.display(),
                    files.key.display()
                ))
            })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    };
    let (peer, peer_client) = match ca_pem {
        Some(ca_pem) => {
            let client = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
                .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem));
            (Some(build(ClientAuth::Required, &[b"h2"])?), Some(client))
        }
        None => (None, None),
    };
    Ok(Loaded {
        grpc: build(files.client_auth, &[b"h2"])?,
        zk: build(files.client_auth, &[])?,
        admin: build(files.client_auth, &[b"http/1.1"])?,
        peer,
        peer_client,
    })
}

/// The `x509` identity of a client certificate: its subject as Java's
/// `X500Principal.getName()` writes it (RFC 2253: the last RDN first,
/// comma-separated), which is the id ZooKeeper's X509AuthenticationProvider
/// gives a client, so `x509:` ACL entries written for ZooKeeper match.
///
/// `None` (no `x509` identity) for a subject with a value in a string type
/// this cannot read: two such certificates must never share an identity.
pub fn subject(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut parts = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type();
            let name = match x509_parser::objects::oid2abbrev(oid, registry) {
                Ok(abbrev) => abbrev.to_string(),
                Err(_) => oid.to_id_string(),
            };
            parts.push(format!("{name}={}", escape(&attribute_text(atv)?)));
        }
        rdns.push(parts.join("+"));
    }
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// An attribute value's text: the UTF-8-compatible string types, and
/// BMPString (UTF-16) and UniversalString (UTF-32), as Java decodes them.
fn attribute_text(atv: &x509_parser::x509::AttributeTypeAndValue<'_>) -> Option<String> {
    use x509_parser::der_parser::asn1_rs::Tag;
    if let Ok(s) = atv.as_str() {
        return Some(s.to_string());
    }
    let bytes = atv.as_slice();
    match atv.attr_value().tag() {
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            bytes
                .len()
                .is_multiple_of(2)
                .then(|| String::from_utf16(&units).ok())
                .flatten()
        }
        Tag::UniversalString => bytes
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect::<Option<String>>()
            .filter(|_| bytes.len().is_multiple_of(4)),
        _ => None,
    }
}

/// RFC 2253's escaping of an attribute value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == v.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_is_written_as_java_writes_it() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject(cert.der()).as_deref(),
            Some("CN=alice,O=Example\\, Inc,C=US")
        );
        assert_eq!(subject(b"not a certificate"), None);
        let with_cn = |cn: rcgen::DnValue| {
            let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CommonName, cn);
            params.distinguished_name = dn;
            params.self_signed(&key).unwrap()
        };
        let bmp = rcgen::DnValue::BmpString("b\u{f6}b".try_into().unwrap());
        assert_eq!(subject(with_cn(bmp).der()).as_deref(), Some("CN=b\u{f6}b"));
        let universal = rcgen::DnValue::UniversalString("\u{1f600}".try_into().unwrap());
        assert_eq!(
            subject(with_cn(universal).der()).as_deref(),
            Some("CN=\u{1f600}")
        );
        // A type it cannot read gives no identity rather than a shared one.
        let teletex = rcgen::DnValue::TeletexString("bob".try_into().unwrap());
        assert_eq!(subject(with_cn(teletex).der()), None);
    }

    #[test]
    fn bad_files_say_which_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let files = TlsFiles {
            cert: junk.clone(),
            key: junk.clone(),
            ca: None,
            client_auth: ClientAuth::None,
        };
        let e = Tls::load(files.clone()).err().unwrap().to_string();
        assert!(e.contains("--tls-cert") && e.contains("CERTIFICATE"), "{e}");
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            ..files.clone()
        };
        let e = Tls::load(missing).err().unwrap().to_string();
        assert!(e.contains("cannot read"), "{e}");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let ok = TlsFiles {
            cert: c,
            key: k,
            ca: None,
            client_auth: ClientAuth::None,
        };
        let tls = Tls::load(ok.clone()).unwrap();
        assert!(tls.server_config(Role::Peer).is_none());
        assert_eq!(
            tls.server_config(Role::Grpc).unwrap().alpn_protocols,
            vec![b"h2".to_vec()]
        );
        let e = Tls::load(TlsFiles {
            client_auth: ClientAuth::Required,
            ..ok
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("needs --tls-ca"), "{e}");
    }
}
