//! An ephemeral node that stays (Curator's `PersistentNode` in its
//! ephemeral modes).
//!
//! An ephemeral node says "I am alive" only as long as its session: when the
//! session is lost it is gone for good, and someone may delete it by hand.
//! [`PersistentEphemeralNode`] keeps one in place: a background task creates
//! it, watches it (`exists` watch), and creates it again — with the same
//! data — after it was deleted, and after the client's session was lost and
//! replaced by a new one. A plain (non-sequential) node that still exists
//! but belongs to another session (typically our own expired one, not yet
//! reaped by the server) is waited out, not stolen.
//!
//! Sequential modes get a new name at each re-creation: read
//! [`path`](PersistentEphemeralNode::path) for the current one. Protected
//! modes (`_c_<id>-` names) make a create whose answer was lost safe to
//! retry; use them with sequential nodes.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use std::time::Duration;
//! use warden_client::recipes::{EphemeralMode, PersistentEphemeralNode};
//! let node = PersistentEphemeralNode::new(
//!     &client,
//!     "/workers/worker-1",
//!     "10.0.0.7:8080",
//!     EphemeralMode::Ephemeral,
//! )?;
//! let path = node.wait_for_initial_create(Duration::from_secs(5)).await?;
//! println!("registered at {path}");
//! node.set_data("10.0.0.7:8081").await?;
//! node.close().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::sequence::{self, ensure_containers};
use crate::path::{parent, validate_path};
use crate::{Client, ConnectionState, CreateMode, Error, ErrorCode, EventType};

/// How a [`PersistentEphemeralNode`] is created.
///
/// It exists because the choice matters for what survives a lost answer:
/// protected names let the client find a node whose create it cannot
/// confirm, and sequential names never collide with a stale node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EphemeralMode {
    /// An ephemeral node at exactly the given path.
    Ephemeral,
    /// An ephemeral-sequential node: the path is a prefix.
    EphemeralSequential,
    /// An ephemeral node named `_c_<id>-<name>`.
    ProtectedEphemeral,
    /// An ephemeral-sequential node named `_c_<id>-<name><seq>`.
    ProtectedEphemeralSequential,
}

impl EphemeralMode {
    fn sequential(self) -> bool {
        matches!(
            self,
            EphemeralMode::EphemeralSequential | EphemeralMode::ProtectedEphemeralSequential
        )
    }

    fn protected(self) -> bool {
        matches!(
            self,
            EphemeralMode::ProtectedEphemeral | EphemeralMode::ProtectedEphemeralSequential
        )
    }

    fn create_mode(self) -> CreateMode {
        if self.sequential() {
            CreateMode::EphemeralSequential
        } else {
            CreateMode::Ephemeral
        }
    }
}

/// What the node's task reports.
#[derive(Debug, Clone, Default)]
struct Status {
    /// The node's current path, while it exists (as far as we know).
    path: Option<String>,
    /// Why the task gave up, if it did (e.g. an invalid path).
    failed: Option<Error>,
}

enum Command {
    SetData(Vec<u8>, oneshot::Sender<Result<(), Error>>),
    Close(Option<oneshot::Sender<Result<(), Error>>>),
}

/// An ephemeral node kept in existence across deletions and session loss.
///
/// It exists for "announce myself while I run" — service registration,
/// worker membership — where the announcement must come back by itself
/// after an outage rather than silently vanish. Dropping it stops the
/// upkeep and deletes the node in the background; [`close`](Self::close)
/// does so and waits.
pub struct PersistentEphemeralNode {
    status: watch::Receiver<Status>,
    paths: watch::Receiver<Option<String>>,
    commands: mpsc::UnboundedSender<Command>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for PersistentEphemeralNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentEphemeralNode")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

impl PersistentEphemeralNode {
    /// Starts keeping a node at `path` (a prefix for sequential modes) with
    /// `data`. Returns at once; the node is created in the background (see
    /// [`wait_for_initial_create`](Self::wait_for_initial_create)). Missing
    /// parents are created as containers.
    ///
    /// Fails with `BadArguments` for an invalid path, or when called
    /// outside a Tokio runtime.
    pub fn new(
        client: &Client,
        path: &str,
        data: impl Into<Vec<u8>>,
        mode: EphemeralMode,
    ) -> Result<PersistentEphemeralNode, Error> {
        if mode.sequential() {
            validate_path(&format!("{path}0"))?;
        } else {
            validate_path(path)?;
        }
        if path == "/" {
            return Err(Error::bad_arguments("the root cannot be an ephemeral node"));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::bad_arguments("PersistentEphemeralNode::new needs a Tokio runtime")
        })?;
        let (status_tx, status) = watch::channel(Status::default());
        let (paths_tx, paths) = watch::channel(None);
        let (commands, rx) = mpsc::unbounded_channel();
        let keeper = Keeper {
            client: client.clone(),
            path: path.to_string(),
            mode,
            data: data.into(),
            status: status_tx,
            paths: paths_tx,
            commands: rx,
            states: client.state_changes(),
            current: None,
            session: client.session_id(),
        };
        let task = runtime.spawn(keeper.run());
        Ok(PersistentEphemeralNode {
            status,
            paths,
            commands,
            task: Some(task),
        })
    }

    /// The node's current path, while it exists; `None` before the first
    /// create, and between a loss and the re-creation.
    pub fn path(&self) -> Option<String> {
        self.status.borrow().path.clone()
    }

    /// A receiver of the node's path as it changes (`None` while missing).
    pub fn path_changes(&self) -> watch::Receiver<Option<String>> {
        self.paths.clone()
    }

    /// Waits until the node has been created, at most `timeout`; returns
    /// its path. Fails with `OperationTimeout` when it was not created in
    /// time, or with the error that made the upkeep give up.
    pub async fn wait_for_initial_create(&self, timeout: Duration) -> Result<String, Error> {
        let mut rx = self.status.clone();
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.path.is_some() || s.failed.is_some()),
        )
        .await;
        match waited {
            Ok(Ok(status)) => match (&status.path, &status.failed) {
                (Some(path), _) => Ok(path.clone()),
                (None, Some(e)) => Err(e.clone()),
                (None, None) => Err(stopped()),
            },
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(Error::new(
                ErrorCode::OperationTimeout,
                format!("the node was not created within {timeout:?}"),
            )),
        }
    }

    /// Replaces the node's data, now and for every re-creation.
    pub async fn set_data(&self, data: impl Into<Vec<u8>>) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::SetData(data.into(), reply))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Stops the upkeep and deletes the node.
    pub async fn close(mut self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        if self.commands.send(Command::Close(Some(reply))).is_err() {
            return Ok(());
        }
        let result = rx.await.unwrap_or(Ok(()));
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        result
    }
}

impl Drop for PersistentEphemeralNode {
    fn drop(&mut self) {
        if self.task.is_some() {
            let _ = self.commands.send(Command::Close(None));
        }
    }
}

/// Errors no retry can cure: the upkeep gives up on them.
fn is_permanent(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::BadArguments
            | ErrorCode::NoChildrenForEphemerals
            | ErrorCode::InvalidAcl
            | ErrorCode::NoAuth
            | ErrorCode::AuthFailed
            | ErrorCode::Unimplemented
    )
}

fn stopped() -> Error {
    Error::new(
        ErrorCode::SessionExpired,
        "the persistent node's upkeep has stopped (client closed)",
    )
}

/// The background task's state.
struct Keeper {
    client: Client,
    path: String,
    mode: EphemeralMode,
    data: Vec<u8>,
    status: watch::Sender<Status>,
    paths: watch::Sender<Option<String>>,
    commands: mpsc::UnboundedReceiver<Command>,
    states: crate::StateStream,
    /// Our node, if we believe it exists.
    current: Option<String>,
    /// The session `current` belongs to.
    session: u64,
}

/// What a wait ended with.
enum Next {
    Again,
    Stop,
}

/// Why a create did not give us a node.
enum NotCreated {
    /// The path holds another session's node.
    Taken,
    Failed(Error),
}

impl Keeper {
    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            // Be connected. While suspended the node may well still exist;
            // once the session is lost it is gone.
            loop {
                match self.client.state() {
                    ConnectionState::Connected | ConnectionState::Reconnected => break,
                    ConnectionState::Closed => {
                        self.forget();
                        self.drain_commands().await;
                        return;
                    }
                    ConnectionState::Lost => self.forget(),
                    ConnectionState::Suspended => {}
                }
                tokio::select! {
                    change = self.states.next() => {
                        if change.is_none() {
                            self.forget();
                            self.drain_commands().await;
                            return;
                        }
                    }
                    cmd = self.commands.recv() => {
                        if let Next::Stop = self.on_command(cmd).await {
                            return;
                        }
                    }
                }
            }
            if self.client.session_id() != self.session {
                // A new session: the old node died (or will) with the old one.
                self.forget();
                self.session = self.client.session_id();
            }
            let Some(path) = self.current.clone() else {
                match self.create().await {
                    Ok(path) => {
                        failures = 0;
                        tracing::debug!(%path, "persistent ephemeral node created");
                        self.current = Some(path.clone());
                        self.publish(Some(path));
                    }
                    Err(NotCreated::Taken) => {
                        if let Next::Stop = self.wait_until_gone().await {
                            return;
                        }
                    }
                    Err(NotCreated::Failed(e)) if !is_permanent(&e) => {
                        failures += 1;
                        tracing::debug!(path = %self.path, error = %e, "could not create the node yet");
                        if let Next::Stop = self.pause(failures).await {
                            return;
                        }
                    }
                    Err(NotCreated::Failed(e)) => {
                        tracing::warn!(path = %self.path, error = %e, "giving up on the persistent node");
                        self.status.send_modify(|s| s.failed = Some(e));
                        self.drain_commands().await;
                        return;
                    }
                }
                continue;
            };
            let watch = match self.client.exists_w(&path).await {
                Ok((Some(stat), w)) if stat.ephemeral_owner == self.session => w,
                Ok(_) => {
                    tracing::debug!(%path, "the persistent ephemeral node is gone; re-creating it");
                    self.forget();
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(%path, error = %e, "could not watch the node; trying again");
                    if let Next::Stop = self.pause(failures).await {
                        return;
                    }
                    continue;
                }
            };
            failures = 0;
            tokio::select! {
                event = watch => match event {
                    Ok(e) if e.event_type == EventType::NodeDeleted => {
                        tracing::debug!(%path, "the persistent ephemeral node was deleted; re-creating it");
                        self.forget();
                    }
                    // Data changed, or the session is being replaced: look again.
                    Ok(_) | Err(_) => {}
                },
                _ = self.states.next() => {}
                cmd = self.commands.recv() => {
                    if let Next::Stop = self.on_command(cmd).await {
                        return;
                    }
                }
            }
        }
    }

    fn publish(&self, path: Option<String>) {
        self.paths.send_if_modified(|p| {
            let changed = *p != path;
            p.clone_from(&path);
            changed
        });
        self.status.send_if_modified(|s| {
            let changed = s.path != path;
            s.path = path;
            changed
        });
    }

    /// Our node is gone (or belongs to a dead session).
    fn forget(&mut self) {
        self.current = None;
        self.publish(None);
    }

    async fn create(&mut self) -> Result<String, NotCreated> {
        let mode = self.mode.create_mode();
        for _ in 0..10 {
            let made = if self.mode.protected() {
                self.client
                    .create_protected(&self.path, self.data.clone(), mode)
                    .await
            } else {
                self.client
                    .create(&self.path, self.data.clone(), mode)
                    .await
            };
            match made {
                Ok(path) => return Ok(path),
                // A parent is missing (never made, or an emptied container
                // reaped meanwhile): make it and try again.
                Err(e) if e.code() == ErrorCode::NoNode => {
                    if let Some(dir) = parent(&self.path).filter(|d| *d != "/") {
                        match ensure_containers(&self.client, dir).await {
                            Ok(()) => {}
                            Err(e) if e.code() == ErrorCode::NoNode => {}
                            Err(e) => return Err(NotCreated::Failed(e)),
                        }
                    }
                }
                Err(e)
                    if !self.mode.sequential()
                        && (e.code() == ErrorCode::NodeExists || e.is_connection_loss()) =>
                {
                    // Ours (a create whose answer was lost)? Then adopt it.
                    match self.client.exists(&self.path).await {
                        Ok(Some(stat)) if stat.ephemeral_owner == self.client.session_id() => {
                            let _ = self
                                .client
                                .set_data(&self.path, self.data.clone(), None)
                                .await;
                            return Ok(self.path.clone());
                        }
                        Ok(Some(_)) => return Err(NotCreated::Taken),
                        Ok(None) => {}
                        Err(e) => return Err(NotCreated::Failed(e)),
                    }
                }
                Err(e) => return Err(NotCreated::Failed(e)),
            }
        }
        Err(NotCreated::Failed(Error::new(
            ErrorCode::SystemError,
            format!("{}: could not create the node", self.path),
        )))
    }

    /// Another session's node sits at our path: wait for it to go.
    async fn wait_until_gone(&mut self) -> Next {
        let watch = match self.client.exists_w(&self.path).await {
            Ok((None, _)) => return Next::Again,
            Ok((Some(stat), w)) => {
                tracing::debug!(
                    path = %self.path,
                    owner = format_args!("{:#x}", stat.ephemeral_owner),
                    "the path holds another session's node; waiting for it to go"
                );
                w
            }
            Err(_) => return self.pause(1).await,
        };
        tokio::select! {
            _ = watch => Next::Again,
            _ = self.states.next() => Next::Again,
            cmd = self.commands.recv() => self.on_command(cmd).await,
        }
    }

    /// Backs off after a failure, still serving commands.
    async fn pause(&mut self, failures: u32) -> Next {
        let delay = Duration::from_millis(50u64 << failures.min(5));
        tokio::select! {
            _ = tokio::time::sleep(delay) => Next::Again,
            cmd = self.commands.recv() => self.on_command(cmd).await,
        }
    }

    async fn on_command(&mut self, cmd: Option<Command>) -> Next {
        match cmd {
            Some(Command::SetData(data, reply)) => {
                self.data = data;
                let result = match &self.current {
                    Some(path) => match self.client.set_data(path, self.data.clone(), None).await {
                        Ok(_) => Ok(()),
                        // Gone: it is re-created with the new data.
                        Err(e) if e.code() == ErrorCode::NoNode => Ok(()),
                        Err(e) => Err(e),
                    },
                    // Re-created with the new data.
                    None => Ok(()),
                };
                let _ = reply.send(result);
                Next::Again
            }
            Some(Command::Close(reply)) => {
                let result = self.delete().await;
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
                Next::Stop
            }
            None => {
                let _ = self.delete().await;
                Next::Stop
            }
        }
    }

    /// Deletes our node, if it is ours in the current session.
    async fn delete(&mut self) -> Result<(), Error> {
        let Some(path) = self.current.take() else {
            self.publish(None);
            return Ok(());
        };
        self.publish(None);
        if self.client.session_id() != self.session {
            return Ok(());
        }
        match self.client.delete(&path, None).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ErrorCode::NoNode || e.is_session_expired() => Ok(()),
            Err(e) => {
                sequence::delete_in_background(&self.client, path);
                Err(e)
            }
        }
    }

    /// After giving up: answer commands until closed.
    async fn drain_commands(&mut self) {
        while let Some(cmd) = self.commands.recv().await {
            match cmd {
                Command::SetData(_, reply) => {
                    let _ = reply.send(Err(self
                        .status
                        .borrow()
                        .failed
                        .clone()
                        .unwrap_or_else(stopped)));
                }
                Command::Close(reply) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_create_modes() {
        assert_eq!(
            EphemeralMode::Ephemeral.create_mode(),
            CreateMode::Ephemeral
        );
        assert_eq!(
            EphemeralMode::ProtectedEphemeralSequential.create_mode(),
            CreateMode::EphemeralSequential
        );
        assert!(EphemeralMode::ProtectedEphemeral.protected());
        assert!(!EphemeralMode::EphemeralSequential.protected());
        assert!(EphemeralMode::EphemeralSequential.sequential());
    }
}
