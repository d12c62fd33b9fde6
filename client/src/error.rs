//! Errors: ZooKeeper's error codes, and the ways a call can fail.
//!
//! Every failure a caller can act on carries an [`ErrorCode`] (`NoNode`,
//! `BadVersion`, `ConnectionLoss`, ...), so code written against ZooKeeper's
//! error vocabulary ports over as is. `Display` is always
//! `"{CodeName}: {message}"`, e.g. `NoNode: /a/b`.

use std::sync::Arc;

/// ZooKeeper's error codes, with ZooKeeper's names and numbers (warden-proto's
/// [`Code`](warden_proto::vocab::Code), which the server reports too).
///
/// It exists so callers can branch on *what* went wrong (`NodeExists` means
/// "someone else won", `BadVersion` means "retry with fresh data") without
/// parsing strings. `Unknown` keeps a number a newer server might send.
pub use warden_proto::vocab::Code as ErrorCode;

/// The underlying cause of a transport failure, kept for `source()` chains.
pub type TransportSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a call failed.
///
/// Exists so every failure — a server's verdict, a broken connection, no
/// server to talk to — answers [`Error::code`] with a ZooKeeper code, while
/// still keeping enough detail (which servers were tried, the gRPC cause) to
/// tell a person what to do. It is `Clone` because one lost connection fails
/// many pending calls at once.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server, or the client's own argument checks, refused the call.
    /// `message` is usually the offending path.
    #[error("{code}: {message}")]
    Api { code: ErrorCode, message: String },

    /// The connection to the server broke (or never answered); the outcome
    /// of calls that were in flight is unknown.
    #[error("ConnectionLoss: {message}")]
    ConnectionLoss {
        message: String,
        #[source]
        source: Option<TransportSource>,
    },

    /// No server in the connect string accepted a session.
    #[error("ConnectionLoss: could not connect to any of {}: {last_error}", servers.join(","))]
    NoServer {
        /// Every server tried, in the order tried.
        servers: Vec<String>,
        /// Why the last attempt failed.
        last_error: String,
    },
}

impl Error {
    /// An error with a code and a message (usually the path).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::Api {
            code,
            message: message.into(),
        }
    }

    /// A `BadArguments` error: the call was refused before it was sent.
    pub fn bad_arguments(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::BadArguments, message)
    }

    /// A `ConnectionLoss` error without an underlying cause.
    pub fn connection_loss(message: impl Into<String>) -> Error {
        Error::ConnectionLoss {
            message: message.into(),
            source: None,
        }
    }

    /// A `ConnectionLoss` error caused by a gRPC status.
    pub(crate) fn from_status(context: &str, status: tonic::Status) -> Error {
        Error::ConnectionLoss {
            message: format!("{context}: {} ({:?})", status.message(), status.code()),
            source: Some(Arc::new(status)),
        }
    }

    /// A server answer that does not fit the protocol (a missing field, an
    /// unexpected result kind).
    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::MarshallingError, message)
    }

    /// The ZooKeeper code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Api { code, .. } => *code,
            Error::ConnectionLoss { .. } | Error::NoServer { .. } => ErrorCode::ConnectionLoss,
        }
    }

    /// The detail after the code name (usually the path).
    pub fn message(&self) -> String {
        match self {
            Error::Api { message, .. } | Error::ConnectionLoss { message, .. } => message.clone(),
            Error::NoServer {
                servers,
                last_error,
            } => format!(
                "could not connect to any of {}: {last_error}",
                servers.join(",")
            ),
        }
    }

    /// True when the session is gone for good (expired or closed): start a
    /// new client rather than retrying.
    pub fn is_session_expired(&self) -> bool {
        self.code() == ErrorCode::SessionExpired
    }

    /// True when the outcome of the call is unknown because the connection
    /// broke (`ConnectionLoss`).
    pub fn is_connection_loss(&self) -> bool {
        self.code() == ErrorCode::ConnectionLoss
    }
}

/// Why a [`multi`](crate::Client::multi) failed.
///
/// A multi is all-or-nothing, so "which op failed and why" is the whole
/// story a caller needs: `index` points at the culprit and `codes` holds every
/// op's code as the server reported it (ZooKeeper's convention: `Ok` before
/// the failure, `RuntimeInconsistency` after it).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MultiError {
    /// One op failed, so none was applied.
    #[error("{code}: {message} (multi op #{index})")]
    OpFailed {
        /// Position of the failed op in the list passed to `multi`.
        index: usize,
        /// Its error code.
        code: ErrorCode,
        /// Detail from the server (usually the op's path).
        message: String,
        /// Every op's code, in order.
        codes: Vec<ErrorCode>,
    },
    /// The multi as a whole could not be run (connection, bad request...).
    #[error(transparent)]
    Request(#[from] Error),
}

impl MultiError {
    /// The code of the failed op, or of the whole request.
    pub fn code(&self) -> ErrorCode {
        match self {
            MultiError::OpFailed { code, .. } => *code,
            MultiError::Request(e) => e.code(),
        }
    }

    /// Which op failed, when one did.
    pub fn failed_index(&self) -> Option<usize> {
        match self {
            MultiError::OpFailed { index, .. } => Some(*index),
            MultiError::Request(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_code_name_then_message() {
        assert_eq!(
            Error::new(ErrorCode::NoNode, "/a/b").to_string(),
            "NoNode: /a/b"
        );
        assert_eq!(
            Error::new(ErrorCode::InvalidAcl, "/x").to_string(),
            "InvalidACL: /x"
        );
        assert_eq!(
            Error::connection_loss("stream ended").to_string(),
            "ConnectionLoss: stream ended"
        );
        let e = Error::NoServer {
            servers: vec!["h1:1".into(), "h2:2".into()],
            last_error: "refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "ConnectionLoss: could not connect to any of h1:1,h2:2: refused"
        );
        assert_eq!(e.code(), ErrorCode::ConnectionLoss);
        assert_eq!(
            e.message(),
            "could not connect to any of h1:1,h2:2: refused"
        );
    }

    #[test]
    fn codes_round_trip_through_numbers() {
        for n in [
            0, -1, -4, -8, -101, -103, -108, -110, -111, -112, -121, -127,
        ] {
            let code = ErrorCode::from_i32(n);
            assert!(!matches!(code, ErrorCode::Unknown(_)), "{n}");
            assert_eq!(code.as_i32(), n);
        }
        assert_eq!(ErrorCode::from_i32(-101), ErrorCode::NoNode);
        assert_eq!(ErrorCode::from_i32(-9999), ErrorCode::Unknown(-9999));
        assert_eq!(ErrorCode::Unknown(-9999).as_i32(), -9999);
        assert_eq!(ErrorCode::Unknown(-9999).to_string(), "Unknown(-9999)");
    }

    #[test]
    fn status_becomes_connection_loss() {
        let e = Error::from_status("reading", tonic::Status::unavailable("gone"));
        assert_eq!(e.code(), ErrorCode::ConnectionLoss);
        assert!(e.to_string().starts_with("ConnectionLoss: reading: gone"));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn multi_error_names_the_failed_op() {
        let e = MultiError::OpFailed {
            index: 1,
            code: ErrorCode::NoNode,
            message: "/a".into(),
            codes: vec![
                ErrorCode::Ok,
                ErrorCode::NoNode,
                ErrorCode::RuntimeInconsistency,
            ],
        };
        assert_eq!(e.to_string(), "NoNode: /a (multi op #1)");
        assert_eq!(e.failed_index(), Some(1));
        let e: MultiError = Error::new(ErrorCode::SessionExpired, "gone").into();
        assert_eq!(e.to_string(), "SessionExpired: gone");
        assert_eq!(e.code(), ErrorCode::SessionExpired);
    }
}
