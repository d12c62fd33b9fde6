//! Znodes and watches against a real server (in process), checked against
//! ZooKeeper 3.9's semantics.

/// ACLs enforced: schemes, permissions per operation, auth, super user.
mod acls;
/// Node types, errors, versions, stats, path and size validation, multi.
mod nodes;
/// One-shot, persistent and recursive watches and their order on the wire.
mod watches;
