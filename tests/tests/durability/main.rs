//! Durability end to end: what a `warden-server` process has after it is
//! killed, cut off from power, stopped cleanly or restarted on a damaged
//! folder.

/// The multi-server fixture on a cluster of one.
mod cluster;
/// Power cuts on a filesystem that forgets every unsynced write (needs
/// /dev/fuse and root).
mod power_loss;
/// `kill -9`, replay, group commit, snapshots and damaged data folders.
mod restart;
