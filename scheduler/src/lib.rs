//! warden-scheduler: a Quartz-style distributed job scheduler on Warden.
//!
//! # The parts
//!
//! - [`schedule`] — triggers (cron, simple, one-shot), calendars and misfire
//!   policies: pure time arithmetic, no I/O.
