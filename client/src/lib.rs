//! The Warden client: an async session with a Warden ensemble.
//!
//! ```no_run
//! use warden_client::{Client, ConnectOptions, CreateMode};
//!
//! # async fn demo() -> Result<(), warden_client::Error> {
//! let client = Client::connect("127.0.0.1:7181/myapp", ConnectOptions::default()).await?;
//! client.create("/config", "v1", CreateMode::Persistent).await?;
//! let (data, stat, changed) = client.get_data_w("/config").await?;
//! println!("{} at version {}", String::from_utf8_lossy(&data), stat.version);
//! let event = changed.await?; // resolves on the next change
//! println!("{} {}", event.event_type, event.path);
//! client.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # The parts
//!
//! - [`client`](Client) — [`Client`], a cheaply cloneable handle to one
//!   session, and [`ConnectOptions`]. Inside, one background task owns the
//!   gRPC session stream: it numbers requests (xids), pipelines them in call
//!   order, matches responses back, routes watch events and pings when idle.
//! - [`error`] — [`Error`] and [`ErrorCode`] (ZooKeeper's codes and names;
//!   `Display` is `"NoNode: /a/b"`), and [`MultiError`].
//! - [`types`] — plain types for what crosses the API: [`Stat`],
//!   [`CreateMode`], [`CreateOptions`], [`Acl`], [`Op`] / [`OpResult`] for
//!   `multi`, [`WatchedEvent`], [`EventType`], [`AddWatchMode`],
//!   [`WatcherType`].
//! - [`watch`] — [`OneshotWatch`] (a future) and [`WatchStream`] (a
//!   stream), and the table that fans server events out to them with
//!   ZooKeeper's routing rules.
//! - [`path`] — path validation (`BadArguments` before anything is sent)
//!   and the [`Chroot`](path::Chroot) that prefixes/strips paths.
//! - [`connect_string`] — parsing `host:port[,host:port...][/chroot]`.
//!
//! The `warden` command-line tool (`src/main.rs`, `src/cli.rs`) is built on
//! this library.
//!
//! # Semantics
//!
//! As in ZooKeeper 3.9: node types, versions, `multi`, watches and their
//! event types, error codes. A session's requests are answered in order, and
//! a watch event reaches the client before any response reflecting a later
//! state. When the connection breaks, pending calls fail with
//! `ConnectionLoss` and watches learn it; reconnecting to another server with
//! the same session is not done yet.

mod client;
pub mod connect_string;
pub mod error;
pub mod path;
pub mod types;
pub mod watch;

pub use client::{Client, ConnectOptions};
pub use connect_string::{ConnectString, ServerAddr, DEFAULT_PORT};
pub use error::{Error, ErrorCode, MultiError};
pub use types::{
    Acl, AddWatchMode, CreateMode, CreateOptions, EventType, Op, OpResult, Stat, WatchedEvent,
    WatcherType,
};
pub use watch::{OneshotWatch, WatchStream};
