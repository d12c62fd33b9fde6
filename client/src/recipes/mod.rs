//! Recipes: the coordination patterns people build on a znode store,
//! following Apache Curator's algorithms.
//!
//! - [`lock`] — a fair FIFO mutex with fencing tokens and loss signalling.
//! - [`rwlock`] — a read-write lock; [`semaphore`] — N leases;
//!   [`multi_lock`] — several locks taken as one, deadlock-free.
//! - [`leader`] — leader election: a latch and a selector that runs a task
//!   while leader.
//! - [`barrier`] — a gate and a double barrier; [`counter`] — a shared
//!   counter with optimistic compare-and-set.
//! - [`queue`] — a distributed queue with reliable consumption;
//!   [`partitioner`] — a set partitioner with one locked owner per item.
//! - [`cache`] — node and tree caches; [`persistent_node`] — an ephemeral
//!   node that recreates itself; [`registry`] — service registration.
//!
//! Shared machinery lives in `sequence`: protected ephemeral-sequential
//! members of a queue, ordered by sequence number, where each member
//! watches only its predecessor (no herd effect).

pub mod barrier;
pub mod cache;
pub mod counter;
pub mod leader;
pub mod lock;
pub mod multi_lock;
pub mod partitioner;
pub mod persistent_node;
pub mod queue;
pub mod registry;
pub mod rwlock;
pub mod semaphore;
mod sequence;

pub use barrier::{Barrier, DoubleBarrier};
pub use cache::{NodeCache, NodeData, TreeCache, TreeEvent, TreeEvents};
pub use counter::{SharedCounter, VersionedValue};
pub use leader::{LeaderLatch, LeaderSelector, Term};
pub use lock::{Lock, LockGuard, LockState};
pub use multi_lock::{MultiLock, MultiLockGuard};
pub use partitioner::{Assignment, OwnedItem, PartitionState, SetPartitioner};
pub use persistent_node::{EphemeralMode, PersistentEphemeralNode};
pub use queue::{DistributedQueue, QueueItem};
pub use registry::{Instance, Registration, ServiceRegistry};
pub use rwlock::{ReadLock, ReadWriteLock, WriteLock};
pub use semaphore::{Lease, Semaphore};
