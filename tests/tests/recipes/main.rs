//! The client's recipes end to end against real servers: contenders on
//! separate sessions and in separate processes (`recipe_worker`), faults
//! injected with signals and a proxy. Each test records what happened, then
//! checks the record.

/// The distributed queue, caches, persistent ephemeral node, service registry.
mod data;
/// Leader latches and selectors, and `warden elect`.
mod election;
/// The fair lock and its fencing token, and `warden lock`.
mod lock;
/// The set partitioner.
mod partitioner;
/// Read-write lock, semaphore, multi-lock, barriers, shared counter.
mod sync;
