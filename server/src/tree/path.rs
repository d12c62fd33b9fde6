//! Path validation, as ZooKeeper's `PathUtils.validatePath` does it.

use crate::error::ZkError;

/// Checks a znode path: ZooKeeper's rules, shared with the client through
/// `warden_proto::path`.
pub fn validate_path(path: &str) -> Result<(), ZkError> {
    warden_proto::path::check(path).map_err(ZkError::bad_arguments)
}

pub use warden_proto::path::parent;

/// ZooKeeper's system nodes, which no client may delete
/// (`DataTree.isSpecialPath`: the answer is BadArguments).
pub fn check_not_special(path: &str) -> Result<(), ZkError> {
    match path {
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config" => Err(
            ZkError::bad_arguments(format!("{path} is a system node: it cannot be deleted")),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shared_rules() {
        let e = validate_path("/a/").unwrap_err();
        assert_eq!(e.code, crate::error::Code::BadArguments);
        assert!(e.message.contains("must not end with /"), "{e}");
        assert!(check_not_special("/zookeeper/quota").is_err());
        assert!(check_not_special("/zookeeper/quota/app").is_ok());
    }
}
