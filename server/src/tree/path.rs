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
    fn names_and_shared_rules() {
        assert_eq!(name("/a/b"), "b");
        assert_eq!(name("/a"), "a");
        let e = validate_path("/a/").unwrap_err();
        assert_eq!(e.code, crate::error::Code::BadArguments);
        assert!(e.message.contains("must not end with /"), "{e}");
    }
}
