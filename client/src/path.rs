//! Znode paths: validation, and the chroot that prefixes them.
//!
//! Paths are checked before anything is sent, with the same rules the server
//! applies (ZooKeeper's `PathUtils.validatePath`), so a typo fails fast with
//! `BadArguments` instead of costing a round trip.

use crate::error::Error;

/// Checks a znode path with the rules the server applies (ZooKeeper's
/// `PathUtils.validatePath`, shared through `warden_proto::path`).
pub fn validate_path(path: &str) -> Result<(), Error> {
    warden_proto::path::check(path).map_err(Error::bad_arguments)
}

pub use warden_proto::path::{is_under, join, parent};

/// The subtree of the server's namespace a client sees as its root.
///
/// Exists so an application can be pointed at `/apps/billing` by its connect
/// string alone: every path it sends is prefixed, every path it receives
/// (created names, watch events) has the prefix stripped, and it never has to
/// know where it lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chroot {
    /// `None` for the real root; otherwise a valid path other than `/`.
    prefix: Option<String>,
}

impl Chroot {
    /// A chroot at `prefix` (a valid path; `/` means none).
    pub fn new(prefix: &str) -> Result<Chroot, Error> {
        validate_path(prefix)
            .map_err(|e| Error::bad_arguments(format!("invalid chroot: {}", e.message())))?;
        Ok(Chroot {
            prefix: (prefix != "/").then(|| prefix.to_string()),
        })
    }

    /// The chroot's path on the server, `None` for the real root.
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The server path for a client path (which must be valid).
    pub fn to_server(&self, client_path: &str) -> String {
        match &self.prefix {
            None => client_path.to_string(),
            Some(prefix) if client_path == "/" => prefix.clone(),
            Some(prefix) => format!("{prefix}{client_path}"),
        }
    }

    /// The client path for a server path. A path outside the chroot (which
    /// the server should never send) is returned unchanged.
    pub fn to_client(&self, server_path: &str) -> String {
        match &self.prefix {
            None => server_path.to_string(),
            Some(prefix) => match server_path.strip_prefix(prefix.as_str()) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => server_path.to_string(),
            },
        }
    }

    /// True when a server path lies inside the chroot.
    pub fn contains(&self, server_path: &str) -> bool {
        match &self.prefix {
            None => true,
            Some(prefix) => is_under(server_path, prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn accepts_good_paths() {
        for p in ["/", "/a", "/a/b", "/a.b/c..d/...", "/ü/名前", "/a-b_c 1"] {
            assert!(validate_path(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{fff0}",
        ] {
            let err = validate_path(p).expect_err(p);
            assert_eq!(err.code(), ErrorCode::BadArguments, "{p}");
            assert!(err.to_string().starts_with("BadArguments: invalid path"));
        }
    }

    #[test]
    fn join_parent_and_under() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
        assert!(is_under("/a/b", "/a"));
        assert!(is_under("/a", "/a"));
        assert!(is_under("/a", "/"));
        assert!(!is_under("/ab", "/a"));
        assert!(!is_under("/a", "/a/b"));
    }

    #[test]
    fn chroot_joins_and_strips() {
        let root = Chroot::default();
        assert_eq!(root.to_server("/a"), "/a");
        assert_eq!(root.to_client("/a"), "/a");

        let c = Chroot::new("/app").unwrap();
        assert_eq!(c.prefix(), Some("/app"));
        assert_eq!(c.to_server("/"), "/app");
        assert_eq!(c.to_server("/x/y"), "/app/x/y");
        assert_eq!(c.to_client("/app"), "/");
        assert_eq!(c.to_client("/app/x/y"), "/x/y");
        // Outside the chroot: unchanged, never mangled.
        assert_eq!(c.to_client("/apple"), "/apple");
        assert_eq!(c.to_client("/other"), "/other");
        assert!(c.contains("/app/x"));
        assert!(c.contains("/app"));
        assert!(!c.contains("/apple"));

        assert_eq!(Chroot::new("/").unwrap(), Chroot::default());
        assert!(Chroot::new("/app/").is_err());
        assert!(Chroot::new("app").is_err());
    }
}
