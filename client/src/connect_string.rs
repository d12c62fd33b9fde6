//! The connect string: `host:port[,host:port...][/chroot]`.

use std::fmt;

use crate::error::Error;
use crate::path::Chroot;

/// The port used when a server in the connect string has none.
pub const DEFAULT_PORT: u16 = 7181;

/// One server's address as written in a connect string.
///
/// Kept as host + port (not a resolved socket address) so names are resolved
/// at connect time, and so messages show the server as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerAddr {
    /// A DNS name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A parsed connect string: the servers of one ensemble and an optional
/// chroot.
///
/// Exists so the one string users configure (`WARDEN_SERVERS`, `--servers`)
/// can say both *where* the ensemble is and *which subtree* the application
/// owns, as ZooKeeper's connect strings do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    pub servers: Vec<ServerAddr>,
    pub chroot: Chroot,
}

impl ConnectString {
    /// Parses `host:port[,host:port...][/chroot]`. A missing port means
    /// [`DEFAULT_PORT`]; IPv6 addresses are written in brackets
    /// (`[::1]:7181`). Spaces around entries are ignored.
    pub fn parse(s: &str) -> Result<ConnectString, Error> {
        let bad = |why: String| {
            Err(Error::bad_arguments(format!(
                "invalid connect string {s:?}: {why}"
            )))
        };
        let s_trim = s.trim();
        let (hosts, chroot) = match s_trim.find('/') {
            Some(i) => (&s_trim[..i], Chroot::new(&s_trim[i..])?),
            None => (s_trim, Chroot::default()),
        };
        let mut servers = Vec::new();
        for entry in hosts.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return bad(
                    "empty server entry (expected host:port[,host:port...][/chroot])".into(),
                );
            }
            match parse_server(entry) {
                Ok(addr) => servers.push(addr),
                Err(why) => return bad(format!("{entry:?}: {why}")),
            }
        }
        Ok(ConnectString { servers, chroot })
    }
}

pub(crate) fn parse_server(entry: &str) -> Result<ServerAddr, String> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("missing ] after an IPv6 address".into());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("expected :port after ]".into()),
            },
        }
    } else {
        match entry.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            Some(_) => return Err("IPv6 addresses must be written in brackets: [::1]:7181".into()),
            None => (entry, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '@' || c == '?' || c == '#')
    {
        return Err("invalid character in host".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("invalid port {p:?} (expected 1-65535)")),
            Ok(port) => port,
        },
    };
    Ok(ServerAddr {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str, port: u16) -> ServerAddr {
        ServerAddr {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_servers_and_chroot() {
        let cs = ConnectString::parse("h1:1,h2:2/app/x").unwrap();
        assert_eq!(cs.servers, vec![addr("h1", 1), addr("h2", 2)]);
        assert_eq!(cs.chroot.prefix(), Some("/app/x"));

        let cs = ConnectString::parse("127.0.0.1:7181").unwrap();
        assert_eq!(cs.servers, vec![addr("127.0.0.1", 7181)]);
        assert_eq!(cs.chroot.prefix(), None);

        let cs = ConnectString::parse(" h1 , h2:9 /").unwrap();
        assert_eq!(cs.servers, vec![addr("h1", DEFAULT_PORT), addr("h2", 9)]);
        assert_eq!(cs.chroot.prefix(), None);
    }

    #[test]
    fn parses_ipv6() {
        let cs = ConnectString::parse("[::1]:8000,[fe80::1]/c").unwrap();
        assert_eq!(
            cs.servers,
            vec![addr("::1", 8000), addr("fe80::1", DEFAULT_PORT)]
        );
        assert_eq!(cs.servers[0].to_string(), "[::1]:8000");
        assert_eq!(cs.servers[0].to_string(), "[::1]:8000");
        assert_eq!(cs.chroot.prefix(), Some("/c"));
    }

    #[test]
    fn rejects_bad_strings() {
        for s in [
            "", ",", "h1,,h2", ":80", "h:0", "h:99999", "h:x", "::1:80", "[::1", "[::1]80",
            "h1/app/", "h1/a//b", "a b:1",
        ] {
            let err = ConnectString::parse(s).expect_err(s);
            assert_eq!(err.code(), crate::ErrorCode::BadArguments, "{s}");
        }
    }
}
