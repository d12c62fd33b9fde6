//! Leader election (Curator's `LeaderLatch` and `LeaderSelector`).
//!
//! Candidates queue as protected ephemeral-sequential nodes under the
//! election path; the first is leader; each other candidate watches only its
//! predecessor. Leadership is confirmed by checking that the leader node's
//! `ephemeralOwner` is this client's current session (Curator's CURATOR-696
//! lesson: a node left over from an expired session must not make anyone
//! leader). Each term carries a fencing token — the node's czxid — that
//! strictly increases from term to term.
//!
//! Leadership is given up the moment the client cannot be sure of it: on
//! `Suspended` (connection lost) as well as on `Lost`. After a reconnect the
//! candidate re-checks its node and, if the session survived, may lead again
//! with the same term; after a new session it queues again.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::LeaderLatch;
//! let latch = LeaderLatch::start(&client, "/election/scheduler", "worker-1");
//! let term = latch.await_leadership().await?;
//! println!("leading with token {}", term.token);
//! latch.resign().await;
//! # Ok(()) }
//! ```

use std::future::Future;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::sequence::{self, Position};
use crate::{Client, ConnectionState, Error, ErrorCode};

const MARKER: &str = "latch-";

/// One period of leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The fencing token: the leader node's czxid.
    pub token: i64,
    /// The leader node's path.
    pub path: String,
}

enum Command {
    Resign,
    Close,
}

/// A candidate in an election: knows at every moment whether it leads.
pub struct LeaderLatch {
    client: Client,
    leader: watch::Receiver<Option<Term>>,
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderLatch {
    /// Joins the election at `path` as `id` (stored in the candidate's node).
    pub fn start(client: &Client, path: &str, id: &str) -> LeaderLatch {
        let (tx, rx) = watch::channel(None);
        let (ctx, crx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            client.clone(),
            path.trim_end_matches('/').to_string(),
            id.as_bytes().to_vec(),
            tx,
            crx,
        ));
        LeaderLatch {
            client: client.clone(),
            leader: rx,
            commands: ctx,
            task,
        }
    }

    /// True while this candidate leads.
    pub fn has_leadership(&self) -> bool {
        self.leader.borrow().is_some()
    }

    /// The current term, if leading.
    pub fn term(&self) -> Option<Term> {
        self.leader.borrow().clone()
    }

    /// Changes of leadership: `Some(term)` on gaining it, `None` on losing it.
    pub fn leadership(&self) -> watch::Receiver<Option<Term>> {
        self.leader.clone()
    }

    /// Waits until this candidate leads.
    pub async fn await_leadership(&self) -> Result<Term, Error> {
        let mut rx = self.leader.clone();
        let term = rx.wait_for(|t| t.is_some()).await.map(|t| t.clone());
        match term {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(Error::new(ErrorCode::SystemError, "leadership vanished")),
            Err(_) => Err(Error::new(
                ErrorCode::SessionExpired,
                "the election stopped",
            )),
        }
    }

    /// Resolves when leadership is lost (at once if not leading).
    pub async fn lost(&self) {
        let mut rx = self.leader.clone();
        let _ = rx.wait_for(|t| t.is_none()).await;
    }

    /// Gives up leadership (or the place in line) and queues again at the
    /// back: the next candidate leads at once.
    pub async fn resign(&self) {
        let _ = self.commands.send(Command::Resign);
        self.lost().await;
    }

    /// Leaves the election for good.
    pub async fn close(mut self) {
        let _ = self.commands.send(Command::Close);
        let _ = (&mut self.task).await;
    }

    /// The client this latch uses.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Drop for LeaderLatch {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Close);
    }
}

/// What interrupted a wait.
enum Wake {
    Changed,
    /// A request failed on a healthy connection: back off, then try again.
    Retry,
    Suspended,
    Lost,
    Resign,
    Close,
}

/// Waits for the connection to come back, still obeying commands. Returns
/// the command that interrupted the wait, if any (`Close` also when the
/// client closed).
async fn wait_for_connection(
    client: &Client,
    states: &mut crate::StateStream,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    ours: &mut Option<(String, i64)>,
) -> Option<Command> {
    loop {
        match client.state() {
            ConnectionState::Connected | ConnectionState::Reconnected => return None,
            ConnectionState::Closed => return Some(Command::Close),
            ConnectionState::Lost => *ours = None,
            ConnectionState::Suspended => {}
        }
        tokio::select! {
            s = states.next() => match s {
                Some(ConnectionState::Lost) => *ours = None,
                Some(ConnectionState::Closed) | None => return Some(Command::Close),
                Some(_) => {}
            },
            c = commands.recv() => return Some(c.unwrap_or(Command::Close)),
        }
    }
}

async fn run(
    client: Client,
    dir: String,
    data: Vec<u8>,
    leader: watch::Sender<Option<Term>>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut states = client.state_changes();
    let mut ours: Option<(String, i64)> = None;
    loop {
        let wake = step(
            &client,
            &dir,
            &data,
            &mut ours,
            &leader,
            &mut states,
            &mut commands,
        )
        .await;
        let wake = match wake {
            Wake::Changed => continue,
            Wake::Retry => {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => continue,
                    c = commands.recv() => match c {
                        Some(Command::Resign) => Wake::Resign,
                        Some(Command::Close) | None => Wake::Close,
                    },
                }
            }
            Wake::Suspended | Wake::Lost => {
                leader.send_replace(None);
                if matches!(wake, Wake::Lost) {
                    ours = None;
                }
                match wait_for_connection(&client, &mut states, &mut commands, &mut ours).await {
                    None => continue,
                    Some(Command::Resign) => Wake::Resign,
                    Some(Command::Close) => Wake::Close,
                }
            }
            other => other,
        };
        match wake {
            Wake::Changed | Wake::Retry | Wake::Suspended | Wake::Lost => {}
            Wake::Resign => {
                leader.send_replace(None);
                if let Some((p, _)) = ours.take() {
                    if let Err(e) = client.delete(&p, None).await {
                        if e.code() != ErrorCode::NoNode {
                            sequence::delete_in_background(&client, p);
                        }
                    }
                }
            }
            Wake::Close => {
                leader.send_replace(None);
                if let Some((p, _)) = ours.take() {
                    sequence::delete_in_background(&client, p);
                }
                return;
            }
        }
    }
}

/// One pass: make sure we are queued, find our place, lead or wait.
async fn step(
    client: &Client,
    dir: &str,
    data: &[u8],
    ours: &mut Option<(String, i64)>,
    leader: &watch::Sender<Option<Term>>,
    states: &mut crate::StateStream,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Wake {
    let retry = |e: &Error| {
        if e.is_session_expired() {
            Wake::Lost
        } else {
            match client.state() {
                ConnectionState::Closed => Wake::Close,
                ConnectionState::Lost => Wake::Lost,
                ConnectionState::Suspended => Wake::Suspended,
                ConnectionState::Connected | ConnectionState::Reconnected => Wake::Retry,
            }
        }
    };
    if ours.is_none() {
        match sequence::join(client, dir, MARKER, data).await {
            Ok((p, stat)) => *ours = Some((p, stat.czxid)),
            Err(e) => {
                tracing::debug!(%dir, error = %e, "could not join the election");
                return retry(&e);
            }
        }
    }
    let Some((path, token)) = ours.clone() else {
        return Wake::Changed;
    };
    let watch_path = match sequence::position(client, dir, MARKER, &path).await {
        Ok(Position::Gone) => {
            *ours = None;
            leader.send_replace(None);
            return Wake::Changed;
        }
        Ok(Position::First) => {
            // Lead only if the node is ours in this very session.
            match client.exists(&path).await {
                Ok(Some(stat)) if stat.ephemeral_owner == client.session_id() => {
                    let term = Term {
                        token,
                        path: path.clone(),
                    };
                    if leader.borrow().as_ref() != Some(&term) {
                        tracing::info!(%path, token, "gained leadership");
                        leader.send_replace(Some(term));
                    }
                    path.clone()
                }
                Ok(_) => {
                    *ours = None;
                    leader.send_replace(None);
                    return Wake::Changed;
                }
                Err(e) => return retry(&e),
            }
        }
        Ok(Position::Behind(pred)) => {
            if leader.borrow().is_some() {
                leader.send_replace(None);
            }
            pred
        }
        Err(e) => return retry(&e),
    };
    let watch = match client.exists_w(&watch_path).await {
        Ok((None, _)) => return Wake::Changed,
        Ok((Some(_), w)) => w,
        Err(e) => return retry(&e),
    };
    tokio::select! {
        r = watch => match r {
            Ok(_) => Wake::Changed,
            Err(e) => retry(&e),
        },
        s = states.next() => match s {
            Some(ConnectionState::Suspended) => Wake::Suspended,
            Some(ConnectionState::Lost) => Wake::Lost,
            Some(ConnectionState::Closed) | None => Wake::Close,
            Some(_) => Wake::Changed,
        },
        c = commands.recv() => match c {
            Some(Command::Resign) => Wake::Resign,
            Some(Command::Close) | None => Wake::Close,
        },
    }
}

/// Runs a task whenever this candidate leads, and stops it the moment
/// leadership is lost (Curator's `LeaderSelector`).
pub struct LeaderSelector {
    latch: LeaderLatch,
    requeue: bool,
}

impl LeaderSelector {
    /// Joins the election at `path` as `id`. With `requeue`, after the task
    /// finishes the candidate queues again for another term; without it, it
    /// leaves the election.
    pub fn new(client: &Client, path: &str, id: &str, requeue: bool) -> LeaderSelector {
        LeaderSelector {
            latch: LeaderLatch::start(client, path, id),
            requeue,
        }
    }

    /// Runs `task` for each term until the task finishes without requeue.
    /// Returns the task's last output, or `None` if the election ended
    /// before the task could finish (e.g. the client closed).
    pub async fn run<F, Fut, T>(self, mut task: F) -> Option<T>
    where
        F: FnMut(Term) -> Fut,
        Fut: Future<Output = T>,
    {
        loop {
            let term = self.latch.await_leadership().await.ok()?;
            let fut = task(term);
            tokio::select! {
                out = fut => {
                    if self.requeue {
                        self.latch.resign().await;
                    } else {
                        self.latch.close().await;
                        return Some(out);
                    }
                }
                _ = self.latch.lost() => {
                    tracing::info!("leadership lost; the task was stopped");
                }
            }
        }
    }

    /// The underlying latch.
    pub fn latch(&self) -> &LeaderLatch {
        &self.latch
    }
}
