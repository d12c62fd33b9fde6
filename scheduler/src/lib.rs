//! warden-scheduler: a Quartz-style distributed job scheduler on Warden.
//!
//! # The parts
//!
//! - [`schedule`] — triggers (cron, simple, one-shot), calendars and misfire
//!   policies: pure time arithmetic, no I/O.
//! - [`model`] — jobs ([`JobSpec`], [`Handler`], concurrency, shards) and the
//!   runtime records kept in the store (fires, tasks, members).
//! - [`store`] — the layout under `/warden/scheduler/<cluster>/` and typed
//!   reads and writes of it ([`Store`]); the admin API builds on it.
//! - [`cluster`] — a [`Member`]: registration, the leader loop that decides
//!   fires, and the worker that runs them.
//! - [`executor`] — the [`Job`] trait for in-process handlers, the
//!   [`Registry`] of them, and the built-in command job.
//! - [`shard`] — shard strategies (average, round-robin, hash), sticky.
//! - [`listener`] — job and trigger listeners (async traits).
//! - [`history`] — execution history entries and their trimming.
//! - [`admin`] — job management for the CLI: definitions, upsert, views;
//!   [`jobs_file`] — the TOML jobs file.
//!
//! The `warden-scheduler` binary (`src/bin/warden-scheduler/`) comes with
//! the default `cli` feature; a library user can leave it and clap out with
//! `default-features = false`.
//!
//! # Where exactly-once comes from
//!
//! A fire of job J at scheduled time T is run once, by one worker, because
//! of four store-enforced facts — not because of any clock or timer:
//!
//! 1. **Fencing.** Only the leader decides fires, and every leader write is
//!    a `multi` whose first op is `check(<leader node>)`. The leader node is
//!    the election's ephemeral node; when a leader's session ends it is gone,
//!    so a deposed (paused, partitioned, expired) leader's multi fails as a
//!    whole.
//! 2. **One name per fire.** The fire is recorded as `fires/<J>@<T>` in the
//!    same multi that creates its tasks. A second create of that name fails
//!    with `NodeExists`, so even two leaders that both believed they led
//!    could not both record it.
//! 3. **State CAS.** The same multi advances the trigger's state (`next fire
//!    = after T`) with a version check, so a new leader reading the state
//!    starts after T; nothing is kept in memory across leader changes.
//! 4. **Claims.** A worker runs a task only after a multi that marks the
//!    task claimed by its session and creates `running/<task>` as an
//!    ephemeral of that session; it records the result with a multi that
//!    checks that node still exists. A worker that lost its session can
//!    neither claim nor record, and the leader then re-runs the task
//!    elsewhere (`requests_recovery`) or records it `worker-lost`.
//!
//! What users must make idempotent: a worker that loses its session while a
//! command runs kills the command's process group, but side effects already
//! made stay made; with `requests_recovery` the task then runs again
//! (`WARDEN_RECOVERING=1`). So exactly-once holds for *decisions and
//! recorded results*; a recovered run's side effects are at-least-once.
//!
//! # Clocks
//!
//! Only the leader's clock decides when something is due; workers never
//! judge time (they run what they are assigned). A leader whose clock is
//! behind fires late, one whose clock is ahead fires early — but never twice:
//! the fire names and state CAS are clock-free. After a leader change with
//! skewed clocks, fires the new leader thinks are past are handled by the
//! misfire policy.

pub mod admin;
pub mod cluster;
pub mod executor;
pub mod history;
pub mod jobs_file;
pub mod listener;
pub mod model;
pub mod schedule;
pub mod shard;
pub mod store;

/// Re-exported so in-process jobs can `impl Job` without adding the crate.
pub use async_trait::async_trait;
pub use cluster::{Member, MemberConfig, MemberError};
pub use executor::{Job, JobContext, JobError, JobOutput, Registry};
pub use history::{HistoryEntry, Outcome};
pub use listener::{JobListener, Listeners, LoggingListener, TriggerListener};
pub use model::{Concurrency, Handler, JobKey, JobSpec, ShardSpec, ShardStrategy};
pub use store::{PauseTarget, PutOutcome, Store, StoreError};
