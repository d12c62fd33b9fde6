//! Access control as ZooKeeper 3.8 does it: who a connection is
//! ([`AuthId`]s, from its address and `addauth`), what a node's ACL lets
//! them do ([`check`]), and what an ACL given to `create` or `setACL`
//! becomes ([`fixup`]).
//!
//! Schemes: `world` (`anyone`), `auth` (replaced at create/setACL by every
//! identity the connection has authenticated as), `digest`
//! (`user:BASE64(SHA1(user:password))`, so digests made by kazoo or
//! Curator match), `ip` (an address, or a network in CIDR form), `x509`
//! (the client certificate's subject) and `super` (held by a connection
//! that authenticated with the configured super digest: every check
//! passes).
//!
//! Writes are checked when applied (`tree`), against the ACLs in the log's
//! order, with the identities the writer's txn carries; reads are checked
//! by the session core against the member's tree.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::error::{Code, ZkError};
use crate::txn::Acl;

/// An identity a connection has: its scheme and id within the scheme
/// (ZooKeeper's `Id`). A digest identity's id is `user:hash`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthId {
    pub scheme: String,
    pub id: String,
}

impl AuthId {
    pub fn new(scheme: &str, id: &str) -> AuthId {
        AuthId {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    /// The user name `whoAmI` reports: a digest identity's user, else the id.
    pub fn user(&self) -> &str {
        match self.scheme.as_str() {
            "digest" => self.id.split(':').next().unwrap_or_default(),
            _ => &self.id,
        }
    }
}

/// ZooKeeper's digest of `user:password`: `user:BASE64(SHA1(user:password))`.
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// What `addauth SCHEME CREDENTIALS` adds to a connection: the identities,
/// or `AuthFailed` (the connection is then closed, as ZooKeeper does).
/// `super_digest`: the configured `user:hash` whose password makes a
/// connection the super user.
pub fn authenticate(
    scheme: &str,
    credentials: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<AuthId>, ZkError> {
    match scheme {
        "digest" => {
            let text = std::str::from_utf8(credentials)
                .map_err(|_| ZkError::new(Code::AuthFailed, "digest credentials are not UTF-8"))?;
            let id = digest(text);
            let mut ids = Vec::new();
            if super_digest == Some(id.as_str()) {
                ids.push(AuthId::new("super", ""));
            }
            ids.push(AuthId::new("digest", &id));
            Ok(ids)
        }
        other => Err(ZkError::new(
            Code::AuthFailed,
            format!("no authentication provider for scheme {other:?} (Warden accepts digest)"),
        )),
    }
}

/// Whether `id` (an ACL's `ip` id: an address, or `address/bits`) covers
/// the address `addr`.
fn ip_matches(acl_id: &str, addr: &str) -> bool {
    let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let (net, bits) = match acl_id.split_once('/') {
        Some((n, b)) => match b.parse::<u32>() {
            Ok(b) => (n, Some(b)),
            Err(_) => return false,
        },
        None => (acl_id, None),
    };
    let Ok(net) = net.parse::<std::net::IpAddr>() else {
        return false;
    };
    let (a, n, width) = match (addr, net) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(n)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(n)), 32)
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (n >> shift)
}

/// Whether an ACL entry's id is valid for its scheme (ZooKeeper's
/// `isValid` of each provider).
fn valid(a: &Acl) -> bool {
    match a.scheme.as_str() {
        "world" => a.id == "anyone",
        "digest" => a.id.split(':').count() == 2,
        "ip" => {
            let (net, bits) = match a.id.split_once('/') {
                Some((n, b)) => (n, Some(b)),
                None => (a.id.as_str(), None),
            };
            net.parse::<std::net::IpAddr>().is_ok() && bits.is_none_or(|b| b.parse::<u8>().is_ok())
        }
        "x509" => !a.id.is_empty(),
        _ => false,
    }
}

/// The ACL a `create` or `setACL` stores: `auth` entries replaced by the
/// connection's authenticated identities (digest, x509; not ip, as in
/// ZooKeeper), every entry checked, duplicates removed (first kept).
/// `InvalidACL` for an empty list, an unknown scheme, a bad id, or an
/// `auth` entry on a connection that has authenticated as no one.
pub fn fixup(path: &str, acl: &[Acl], auth: &[AuthId]) -> Result<Vec<Acl>, ZkError> {
    let invalid = |why: String| ZkError::new(Code::InvalidAcl, format!("{path}: {why}"));
    if acl.is_empty() {
        return Err(invalid("an empty ACL".into()));
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        if a.scheme == "auth" {
            let mut any = false;
            for id in auth
                .iter()
                .filter(|i| matches!(i.scheme.as_str(), "digest" | "x509"))
            {
                any = true;
                push(Acl {
                    perms: a.perms,
                    scheme: id.scheme.clone(),
                    id: id.id.clone(),
                });
            }
            if !any {
                return Err(invalid(
                    "an `auth` entry, but this connection has not authenticated (addauth first)"
                        .into(),
                ));
            }
        } else if valid(a) {
            push(a.clone());
        } else {
            return Err(invalid(format!(
                "{}:{} is not a valid ACL entry",
                a.scheme, a.id
            )));
        }
    }
    Ok(out)
}

/// Whether `auth` may do `perm` (a permission bit, or several: any one
/// suffices) on a node with `acl`: a super user may do anything, as may
/// anyone on a node with an empty ACL; otherwise an entry granting one of
/// the bits must name one of the identities. `NoAuth` if not.
pub fn check(path: &str, acl: &[Acl], auth: &[AuthId], perm: i32) -> Result<(), ZkError> {
    if acl.is_empty() || auth.iter().any(|i| i.scheme == "super") {
        return Ok(());
    }
    let allowed = acl
        .iter()
        .filter(|a| a.perms & perm != 0)
        .any(|a| match a.scheme.as_str() {
            "world" => a.id == "anyone",
            "ip" => auth
                .iter()
                .any(|i| i.scheme == "ip" && ip_matches(&a.id, &i.id)),
            scheme => auth.iter().any(|i| i.scheme == scheme && i.id == a.id),
        });
    if allowed {
        Ok(())
    } else {
        Err(ZkError::new(
            Code::NoAuth,
            format!("{path}: not allowed (see its ACL; addauth may help)"),
        ))
    }
}

/// A node's ACL as `getACL` shows it to a connection without ADMIN on it:
/// digest hashes hidden (`user:x`), as ZooKeeper does.
pub fn redacted(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| match a.scheme.as_str() {
            "digest" => Acl {
                perms: a.perms,
                scheme: a.scheme.clone(),
                id: format!("{}:x", a.id.split(':').next().unwrap_or_default()),
            },
            _ => a.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    #[test]
    fn digest_matches_zookeepers() {
        // DigestAuthenticationProvider.generateDigest("super:test"), as in
        // ZooKeeper's documentation of the super user.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(AuthId::new("digest", &digest("user:pw")).user(), "user");
    }

    #[test]
    fn checks_follow_the_schemes() {
        let alice = AuthId::new("digest", &digest("alice:secret"));
        let from = |ip: &str| AuthId::new("ip", ip);
        let node = vec![
            acl(Acl::READ, "world", "anyone"),
            acl(Acl::ALL, "digest", &alice.id),
            acl(Acl::WRITE, "ip", "10.1.0.0/16"),
        ];
        assert!(check("/n", &node, &[from("1.2.3.4")], Acl::READ).is_ok());
        let e = check("/n", &node, &[from("1.2.3.4")], Acl::WRITE).unwrap_err();
        assert_eq!(e.code, Code::NoAuth);
        assert!(check("/n", &node, &[from("10.1.200.3")], Acl::WRITE).is_ok());
        assert!(check("/n", &node, &[from("10.2.0.1")], Acl::WRITE).is_err());
        assert!(check("/n", &node, &[from("1.2.3.4"), alice.clone()], Acl::ADMIN).is_ok());
        let bob = AuthId::new("digest", &digest("bob:secret"));
        assert!(check("/n", &node, &[bob], Acl::ADMIN).is_err());
        // Any of several bits suffices (getACL asks READ | ADMIN).
        assert!(check("/n", &node, &[], Acl::READ | Acl::ADMIN).is_ok());
        assert!(
            check("/n", &[], &[], Acl::ADMIN).is_ok(),
            "an empty ACL allows all"
        );
        let root = AuthId::new("super", "");
        assert!(check("/n", &[acl(Acl::READ, "digest", "x:y")], &[root], Acl::ALL).is_ok());
    }

    #[test]
    fn ip_networks() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("127.0.0.1", "127.0.0.2"));
        assert!(ip_matches("127.0.0.0/8", "127.9.9.9"));
        assert!(ip_matches("0.0.0.0/0", "8.8.8.8"));
        assert!(ip_matches("::1", "::1"));
        assert!(ip_matches("fd00::/8", "fd12::1"));
        assert!(!ip_matches("fd00::/8", "127.0.0.1"));
        assert!(!ip_matches("nonsense", "127.0.0.1"));
    }

    #[test]
    fn fixup_replaces_auth_validates_and_removes_duplicates() {
        let alice = AuthId::new("digest", &digest("alice:secret"));
        let ip = AuthId::new("ip", "127.0.0.1");
        let fixed = fixup(
            "/n",
            &[
                acl(Acl::ALL, "auth", ""),
                acl(Acl::READ, "world", "anyone"),
                acl(Acl::READ, "world", "anyone"),
            ],
            &[ip.clone(), alice.clone()],
        )
        .unwrap();
        assert_eq!(
            fixed,
            vec![
                acl(Acl::ALL, "digest", &alice.id),
                acl(Acl::READ, "world", "anyone")
            ]
        );
        for bad in [
            vec![],
            vec![acl(Acl::ALL, "auth", "")],
            vec![acl(Acl::ALL, "world", "someone")],
            vec![acl(Acl::ALL, "digest", "no-colon")],
            vec![acl(Acl::ALL, "ip", "not-an-address")],
            vec![acl(Acl::ALL, "kerberos", "x")],
        ] {
            let e = fixup("/n", &bad, std::slice::from_ref(&ip)).unwrap_err();
            assert_eq!(e.code, Code::InvalidAcl, "{bad:?}");
        }
    }

    #[test]
    fn authentication_and_the_super_user() {
        let sup = digest("super:test");
        let ids = authenticate("digest", b"super:test", Some(&sup)).unwrap();
        assert_eq!(ids[0], AuthId::new("super", ""));
        let ids = authenticate("digest", b"alice:pw", Some(&sup)).unwrap();
        assert_eq!(ids, vec![AuthId::new("digest", &digest("alice:pw"))]);
        let e = authenticate("kerberos", b"x", None).unwrap_err();
        assert_eq!(e.code, Code::AuthFailed);
    }

    #[test]
    fn redaction_hides_digest_hashes() {
        let shown = redacted(&[
            acl(Acl::ALL, "digest", "alice:abc="),
            acl(1, "ip", "1.2.3.4"),
        ]);
        assert_eq!(shown[0].id, "alice:x");
        assert_eq!(shown[1].id, "1.2.3.4");
    }
}
