//! Recipes: the coordination patterns people build on a znode store,
//! following Apache Curator's algorithms.
//!
//! - [`lock`] — a fair FIFO mutex with fencing tokens and loss signalling.
//! - [`leader`] — leader election: a latch and a selector that runs a task
//!   while leader.
//!
//! Shared machinery lives in `sequence`: protected ephemeral-sequential
//! members of a queue, ordered by sequence number, where each member
//! watches only its predecessor (no herd effect).

pub mod leader;
pub mod lock;
mod sequence;

pub use leader::{LeaderLatch, LeaderSelector, Term};
pub use lock::{Lock, LockGuard, LockState};
