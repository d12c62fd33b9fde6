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
//!   order, matches responses back, routes watch events and pings when idle;
//!   when the stream breaks it resumes the session on a server of the
//!   connect string and re-registers the watches (see *Connection loss*
//!   below). Retries of idempotent calls and
//!   [`create_protected`](Client::create_protected) live on the handle's
//!   side.
//! - [`state`] — [`ConnectionState`] (Curator's `Connected`, `Suspended`,
//!   `Reconnected`, `Lost`, `Closed`) and [`StateStream`], the stream of
//!   changes from [`Client::state_changes`].
//! - [`retry`] — [`RetryPolicy`]: exponential back-off with a cap, for
//!   reconnect rounds and retried operations.
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
//! - [`tls`] — [`TlsOptions`]: the CA, and this client's certificate for
//!   mutual TLS, for servers that speak TLS.
//! - [`connect_string`] — parsing `host:port[,host:port...][/chroot]`.
//!
//! The `warden` command-line tool (`src/bin/warden/`) is built on this
//! library. It and its crates (clap and others) come with the default
//! `cli` feature; a library user can leave them out with
//! `default-features = false`.
//!
//! # Semantics
//!
//! As in ZooKeeper 3.9: node types, versions, `multi`, watches and their
//! event types, error codes. A session's requests are answered in order, and
//! a watch event reaches the client before any response reflecting a later
//! state.
//!
//! # Connection loss
//!
//! Curator's model, with session expiry managed by the client:
//!
//! - **The stream breaks** (server gone, network cut, no answer for ⅔ of the
//!   session timeout): the state becomes `Suspended`. Calls in flight fail
//!   with `ConnectionLoss` — their outcome is unknown — except the
//!   idempotent ones (below). The client reconnects with the same session id,
//!   password and last seen zxid, trying the servers of the connect string
//!   in random order and backing off per [`RetryPolicy`] between rounds.
//!   Calls made meanwhile wait for the connection, up to the session timeout
//!   (then `ConnectionLoss`).
//! - **Reconnected**: before anything else the client re-registers every
//!   watch it holds (one-shot and persistent) relative to its last seen
//!   zxid, so a watched node that changed meanwhile fires its one-shot
//!   watches at once; then the waiting calls go out, and the state becomes
//!   `Reconnected`. No watch event is lost across a reconnect (persistent
//!   watches do not replay changes made while disconnected, as in
//!   ZooKeeper).
//! - **Lost**: suspended for longer than the session timeout, or the server
//!   says the session expired. Every waiting call and every watch fails with
//!   `SessionExpired` (watch streams end with it as
//!   [`end_reason`](WatchStream::end_reason)). The old session is never
//!   resumed after that. With [`ConnectOptions::renew_expired_session`]
//!   (the default) the client opens a new session — a new
//!   [`session_id`](Client::session_id) — and reports `Reconnected`;
//!   otherwise every call fails with `SessionExpired` from then on.
//! - **Retries**: idempotent operations (`get_data`, `exists`,
//!   `get_children*`, `get_acl`, `get_ephemerals`,
//!   `get_all_children_number`, `sync`, `set_data`, `set_acl`, `add_watch`,
//!   `remove_watches`) that fail with `ConnectionLoss` are retried per the
//!   [`RetryPolicy`], re-setting their watch. `create`, `delete` and `multi`
//!   are not: they report `ConnectionLoss`.
//!   [`create_protected`](Client::create_protected) is a create that can be
//!   retried: its name carries a random id, so after a loss the client finds
//!   out whether it happened.
//! - **Closed**: [`Client::close`] ends the session; dropping every handle
//!   only stops the background task (the session expires on the server).
//!
//! State changes are logged at `info`, reconnect attempts at `debug`
//! (`tracing`).

mod client;
pub mod connect_string;
pub mod error;
pub mod path;
pub mod recipes;
pub mod retry;
pub mod state;
pub mod tls;
pub mod types;
pub mod watch;

pub use client::{parse_auth, Client, ConnectOptions};
pub use connect_string::{ConnectString, ServerAddr, DEFAULT_PORT};
pub use error::{Error, ErrorCode, MultiError};
pub use retry::RetryPolicy;
pub use state::{ConnectionState, StateStream};
pub use tls::TlsOptions;
pub use types::{
    Acl, AddWatchMode, ClientInfo, CreateMode, CreateOptions, EventType, Op, OpResult, Stat,
    WatchedEvent, WatcherType,
};
pub use watch::{OneshotWatch, WatchStream};
