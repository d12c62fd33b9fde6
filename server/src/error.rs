//! Errors: ZooKeeper-coded errors that cross the wire, and startup errors.

use serde::{Deserialize, Serialize};

/// ZooKeeper's error codes (same names and numbers), so both protocols
/// Warden speaks report failures in one vocabulary: warden-proto's.
pub use warden_proto::vocab::Code;

/// A failed operation: a code and the detail (usually the path) a person
/// needs to act on it. This is what apply records and what the wire carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.name())]
pub struct ZkError {
    pub code: Code,
    pub message: String,
}

impl ZkError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ZkError {
            code,
            message: message.into(),
        }
    }
    pub fn no_node(path: &str) -> Self {
        Self::new(Code::NoNode, path)
    }
    pub fn node_exists(path: &str) -> Self {
        Self::new(Code::NodeExists, path)
    }
    pub fn bad_version(path: &str, expected: i32, actual: i32) -> Self {
        Self::new(
            Code::BadVersion,
            format!("{path} (expected version {expected}, node is at {actual})"),
        )
    }
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        Self::new(Code::BadArguments, message)
    }
}

/// Why the server could not start or had to stop. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr} for {what}: {source} (is another warden-server running? choose another address with {flag})")]
    Bind {
        what: &'static str,
        addr: String,
        flag: &'static str,
        source: std::io::Error,
    },
    #[error("data folder {dir} is in use by another running warden-server{holder}; stop it or choose another --data-dir")]
    DataDirLocked { dir: String, holder: String },
    #[error("data folder {dir} is damaged: {detail}; restore it from a backup or a replica, or move it aside to start empty")]
    DataDirDamaged { dir: String, detail: String },
    #[error("data folder {dir} was written by an older Warden (sled storage), which this version does not read; start with an empty --data-dir")]
    DataDirOldFormat { dir: String },
    #[error("a listener has no local address: {0}")]
    Listener(std::io::Error),
    #[error("cannot use data folder {dir}: {source}")]
    DataDirIo { dir: String, source: std::io::Error },
    #[error("data folder {dir}: {source}")]
    Storage {
        dir: String,
        source: crate::storage::StorageError,
    },
    #[error("TLS: {0}")]
    Tls(crate::net::tls::TlsError),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("consensus failed to start: {0}")]
    Raft(String),
    #[error("stopped: {0}; writes since the last good barrier were not acknowledged; check the disk (dmesg), then start the server again: the log is checked at start")]
    StorageFailed(String),
}

impl StartupError {
    /// A data folder's storage error at start: damage refuses the folder
    /// (with what to do about it); anything else is reported as it is.
    pub fn storage(dir: &str, e: crate::storage::StorageError) -> StartupError {
        if e.is_damage() {
            StartupError::DataDirDamaged {
                dir: dir.to_string(),
                detail: e.to_string(),
            }
        } else {
            StartupError::Storage {
                dir: dir.to_string(),
                source: e,
            }
        }
    }
}
