//! Path validation, as ZooKeeper's `PathUtils.validatePath` does it.

use crate::error::ZkError;

/// Checks a znode path: ZooKeeper's rules, shared with the client through
/// `warden_proto::path`.
pub fn validate_path(path: &str) -> Result<(), ZkError> {
    warden_proto::path::check(path).map_err(ZkError::bad_arguments)
}

pub use warden_proto::path::{is_under, join, parent};

/// The last segment of a valid path.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_paths() {
        for p in ["/", "/a", "/a/b", "/a.b", "/a/..b", "/ü", "/a b"] {
            assert!(validate_path(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn rejects_invalid_paths() {
        for p in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/a/..",
            "/a\0",
            "/a\u{1}",
            "/\u{fff5}",
        ] {
            let e = validate_path(p).unwrap_err();
            assert_eq!(e.code, crate::error::Code::BadArguments, "{p}");
        }
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_under("/a/b", "/a"));
        assert!(is_under("/a", "/a"));
        assert!(!is_under("/ab", "/a"));
        assert!(is_under("/x", "/"));
    }
}
