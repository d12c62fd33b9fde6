//! The scheduler end to end: real `warden-server` and `warden-scheduler run`
//! processes, and in-process members; see `warden_tests::scheduler`.

/// Issue 4's acceptance tests.
mod acceptance;
/// Members as processes and in process: fires, shards, a killed leader,
/// concurrency policies, recovery, the job store.
mod basic;
/// `warden-scheduler job ...` as a person uses it.
mod cli;
