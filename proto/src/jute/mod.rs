//! ZooKeeper's wire protocol (jute), so existing ZooKeeper clients can talk
//! to Warden and tools can talk ZooKeeper without a JVM.
//!
//! - [`wire`] — primitives: big-endian ints, buffers, strings, vectors.
//! - [`records`] — `zookeeper.jute`'s records and every opcode's request
//!   and reply bodies, each with an encoder and a decoder.
//! - [`frame`] — the length-prefixed framing, with a maximum length.
//!
//! Decoding never panics and never allocates more than the input holds:
//! every failure is a [`DecodeError`].

pub mod frame;
pub mod records;
pub mod wire;

pub use frame::{frame, split_frame, DEFAULT_MAX_FRAME};
pub use records::*;

/// Why bytes could not be decoded as jute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("negative length {len} for {what}")]
    NegativeLength { what: &'static str, len: i32 },
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("truncated {what}: needs {needed} bytes, {left} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("{what} is not valid UTF-8")]
    BadUtf8 { what: &'static str },
    #[error("bad vector length {len} for {what}")]
    BadVectorLength { what: &'static str, len: i32 },
    #[error("unknown opcode {opcode} (xid {xid})")]
    UnknownOpcode { xid: i32, opcode: i32 },
    #[error("opcode {opcode} is not allowed inside this multi")]
    BadMultiOp { opcode: i32 },
    #[error("{0} bytes of trailing garbage after the record")]
    TrailingBytes(usize),
    #[error("inconsistent record: {0}")]
    Inconsistent(&'static str),
}

#[cfg(test)]
mod tests;
