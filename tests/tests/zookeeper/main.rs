//! Warden's ZooKeeper listener against ZooKeeper's own clients: a raw jute
//! client, the `zookeeper-client` crate, Python's kazoo, Apache Curator and
//! Apache's `zkCli.sh`. With `WARDEN_ZK_REFERENCE=HOST:PORT` the third-party client
//! tests run against that server instead (see `warden_tests::zookeeper`
//! and tests/compat/README.md).

/// Apache Curator's ACL handling (`tests/compat/CuratorAcl.java`).
mod curator;
/// kazoo's own checks (`tests/compat/kazoo_compat.py`).
mod kazoo;
/// One lock taken in turns by kazoo and by a Warden client.
mod mixed_lock;
/// The wire protocol spoken frame by frame, and the four-letter words.
mod protocol;
/// The `zookeeper-client` crate.
mod rust_client;
/// Apache ZooKeeper's shell, `zkCli.sh`.
mod zkcli;
