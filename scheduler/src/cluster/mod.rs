//! A scheduler [`Member`]: one process's place in a cluster.
//!
//! Every member registers `C/members/<id>` (ephemeral), runs for leader
//! (`LeaderLatch` on `C/leader`) and is a worker. The parts:
//!
//! - `leader` — while this member leads: decides fires, recovers tasks of
//!   lost workers, consumes manual fire requests, trims history.
//! - `worker` — claims and runs the tasks in `C/assign/<id>/`, records
//!   results.
//! - this module — start, connection-state handling, shutdown.
//!
//! Connection states (the client's `ConnectionState` stream):
//!
//! | state | worker | leader |
//! |---|---|---|
//! | `Suspended` | stops claiming; running jobs go on | the latch drops leadership: stops deciding |
//! | `Reconnected` (same session) | claims again | may lead again with the same term |
//! | `Lost` | cancels running jobs (command jobs: process group killed) — their claims are gone | leadership gone |
//! | `Reconnected` (new session) | re-registers `members/<id>`, claims again | queues again |

mod leader;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use warden_client::recipes::LeaderLatch;
use warden_client::{Client, ConnectOptions, ConnectionState, CreateMode, ErrorCode};

use crate::executor::{CancelReason, Registry};
use crate::history::DEFAULT_HISTORY_LIMIT;
use crate::listener::Listeners;
use crate::model::{validate_name, MemberInfo, ModelError};
use crate::store::{to_json, Store, StoreError};

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Bad cluster name or member id.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The store could not be reached or set up.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Connecting to the servers failed.
    #[error("could not connect to {servers}: {error}")]
    Connect { servers: String, error: String },
}

/// How a member runs.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// The cluster (its folder is `/warden/scheduler/<cluster>`).
    pub cluster: String,
    /// This member's id, unique in the cluster (default `<hostname>-<pid>`).
    pub id: String,
    /// Free-form labels shown in the member's node.
    pub labels: BTreeMap<String, String>,
    /// History entries kept per job.
    pub history_limit: usize,
    /// How long a completed fire's node is kept (it guards against a
    /// second fire of the same job and time; the trigger state does too).
    pub fire_retention: Duration,
    /// On shutdown, how long running jobs may finish before they are cancelled.
    pub shutdown_grace: Duration,
}

impl MemberConfig {
    /// Defaults for `cluster` with the default id.
    pub fn new(cluster: &str) -> MemberConfig {
        MemberConfig {
            cluster: cluster.to_string(),
            id: default_member_id(),
            labels: BTreeMap::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            fire_retention: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// `<hostname>-<pid>`, with characters that are not allowed in names replaced by `-`.
pub fn default_member_id() -> String {
    let host = hostname();
    let id = format!("{host}-{}", std::process::id());
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// What the member's tasks share.
pub(crate) struct Shared {
    pub store: Store,
    pub config: MemberConfig,
    pub registry: Registry,
    pub listeners: Listeners,
    /// False while the connection is suspended or lost: no new claims.
    pub claiming: AtomicBool,
    /// True once shutdown began.
    pub stopping: AtomicBool,
    /// Cancel senders of the runs in progress, by task id.
    pub running: Mutex<HashMap<String, watch::Sender<Option<CancelReason>>>>,
    /// Tasks this member ran but could not record: never adopted again.
    pub unrecorded: Mutex<std::collections::HashSet<String>>,
    /// Wakes the worker (new session, resumed claiming).
    pub wake_worker: Notify,
    /// The session the member node was registered with.
    pub registered_session: Mutex<u64>,
}

impl Shared {
    pub fn id(&self) -> &str {
        &self.config.id
    }

    pub fn client(&self) -> &Client {
        self.store.client()
    }

    /// Cancels every run in progress.
    pub fn cancel_all(&self, reason: CancelReason) {
        for tx in self.running.lock().values() {
            tx.send_replace(Some(reason));
        }
    }
}

/// A running scheduler member: registered, running for leader, working.
///
/// Built with [`Member::start`]; stop it with [`Member::shutdown`]
/// (dropping it stops the background tasks abruptly).
pub struct Member {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    latch: Option<Arc<LeaderLatch>>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("cluster", &self.shared.config.cluster)
            .field("id", &self.shared.config.id)
            .finish()
    }
}

impl Member {
    /// Connects to `servers` and starts a member (see [`Member::start`]).
    pub async fn connect(
        servers: &str,
        config: MemberConfig,
        registry: Registry,
        listeners: Listeners,
    ) -> Result<Member, MemberError> {
        let opts = ConnectOptions {
            client_name: format!("warden-scheduler/{}", config.id),
            ..ConnectOptions::default()
        };
        let client = Client::connect(servers, opts)
            .await
            .map_err(|e| MemberError::Connect {
                servers: servers.to_string(),
                error: e.to_string(),
            })?;
        Member::start(&client, config, registry, listeners).await
    }

    /// Starts a member on `client` (which should renew expired sessions, the
    /// default): creates the cluster's folders, registers `members/<id>`,
    /// and starts the leader candidate and the worker.
    ///
    /// If a node `members/<id>` of another session exists (a previous process
    /// with this id that has not expired yet), waits for it to go.
    pub async fn start(
        client: &Client,
        config: MemberConfig,
        registry: Registry,
        listeners: Listeners,
    ) -> Result<Member, MemberError> {
        validate_name("member", &config.id)?;
        let store = Store::new(client, &config.cluster)?;
        store.init().await?;
        store.ensure(&store.paths().assign_dir(&config.id)).await?;
        let shared = Arc::new(Shared {
            store,
            config,
            registry,
            listeners,
            claiming: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            running: Mutex::new(HashMap::new()),
            unrecorded: Mutex::new(std::collections::HashSet::new()),
            wake_worker: Notify::new(),
            registered_session: Mutex::new(0),
        });
        register(&shared).await?;
        tracing::info!(
            cluster = %shared.config.cluster,
            id = %shared.config.id,
            session = format_args!("{:#x}", client.session_id()),
            "scheduler member registered"
        );
        let (shutdown, shutdown_rx) = watch::channel(false);
        let latch = Arc::new(LeaderLatch::start(
            client,
            &shared.store.paths().leader(),
            &shared.config.id,
        ));
        let tasks = vec![
            tokio::spawn(watch_connection(shared.clone(), shutdown_rx.clone())),
            tokio::spawn(leader::run(
                shared.clone(),
                latch.clone(),
                shutdown_rx.clone(),
            )),
            tokio::spawn(worker::run(shared.clone(), shutdown_rx)),
        ];
        Ok(Member {
            shared,
            shutdown,
            tasks,
            latch: Some(latch),
        })
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.shared.config.id
    }

    /// The store this member uses.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// True while this member leads the cluster.
    pub fn is_leader(&self) -> bool {
        self.latch.as_ref().is_some_and(|l| l.has_leadership())
    }

    /// How many tasks this member is running now.
    pub fn running_tasks(&self) -> usize {
        self.shared.running.lock().len()
    }

    /// Stops gracefully: gives up leadership, stops claiming, lets running
    /// jobs finish for up to `shutdown_grace` (then cancels them: they are
    /// recorded `cancelled`, or — for jobs that request recovery — handed
    /// back for another member to re-run), and removes `members/<id>`. The
    /// client stays open (close it if you own it).
    pub async fn shutdown(mut self) {
        tracing::info!(id = %self.shared.config.id, "scheduler member shutting down");
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.claiming.store(false, Ordering::SeqCst);
        if let Some(latch) = self.latch.take() {
            if let Ok(latch) = Arc::try_unwrap(latch) {
                latch.close().await;
            } else {
                tracing::debug!("leader latch still shared; it closes when dropped");
            }
        }
        let deadline = tokio::time::Instant::now() + self.shared.config.shutdown_grace;
        while !self.shared.running.lock().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.shared.cancel_all(CancelReason::Shutdown);
        let stop =
            tokio::time::Instant::now() + crate::executor::STOP_GRACE + Duration::from_secs(2);
        while !self.shared.running.lock().is_empty() && tokio::time::Instant::now() < stop {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.shutdown.send_replace(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let path = self.shared.store.paths().member(&self.shared.config.id);
        if let Err(e) = self.shared.client().delete(&path, None).await {
            if e.code() != ErrorCode::NoNode {
                tracing::warn!(%path, error = %e, "could not remove the member node");
            }
        }
        tracing::info!(id = %self.shared.config.id, "scheduler member stopped");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        for t in &self.tasks {
            t.abort();
        }
        self.shared.cancel_all(CancelReason::Shutdown);
    }
}

/// Creates `members/<id>` for the client's current session, waiting for a
/// node of an older session to expire.
async fn register(shared: &Shared) -> Result<(), StoreError> {
    let client = shared.client();
    let path = shared.store.paths().member(shared.id());
    let info = MemberInfo {
        id: shared.id().to_string(),
        host: hostname(),
        pid: std::process::id(),
        started_at_ms: crate::model::now_ms(),
        labels: shared.config.labels.clone(),
        handlers: shared.registry.names(),
    };
    let mut warned = false;
    loop {
        let session = client.session_id();
        match client
            .create(&path, to_json(&info), CreateMode::Ephemeral)
            .await
        {
            Ok(_) => {
                *shared.registered_session.lock() = session;
                return Ok(());
            }
            Err(e) if e.code() == ErrorCode::NodeExists => {
                let (stat, gone) = client.exists_w(&path).await?;
                match stat {
                    Some(s) if s.ephemeral_owner == session => {
                        *shared.registered_session.lock() = session;
                        return Ok(());
                    }
                    Some(s) => {
                        if !warned {
                            tracing::info!(
                                %path,
                                owner = format_args!("{:#x}", s.ephemeral_owner),
                                "another session holds this member id; waiting for it to end"
                            );
                            warned = true;
                        }
                        let _ = tokio::time::timeout(Duration::from_secs(2), gone).await;
                    }
                    None => {}
                }
            }
            Err(e) if e.is_connection_loss() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Follows the connection state: pauses claiming, cancels runs on loss,
/// re-registers with a new session.
async fn watch_connection(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut states = shared.client().state_changes();
    loop {
        let state = tokio::select! {
            s = states.next() => s,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let Some(state) = state else { return };
        match state {
            ConnectionState::Suspended => {
                tracing::info!(id = %shared.id(), "connection suspended: not claiming new tasks");
                shared.claiming.store(false, Ordering::SeqCst);
            }
            ConnectionState::Lost => {
                tracing::warn!(id = %shared.id(), "session lost: cancelling running jobs");
                shared.claiming.store(false, Ordering::SeqCst);
                shared.cancel_all(CancelReason::SessionLost);
            }
            ConnectionState::Connected | ConnectionState::Reconnected => {
                if shared.stopping.load(Ordering::SeqCst) {
                    continue;
                }
                let session = shared.client().session_id();
                if *shared.registered_session.lock() != session {
                    // A new session: the old claims are gone with it.
                    shared.cancel_all(CancelReason::SessionLost);
                    loop {
                        match register(&shared).await {
                            Ok(()) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "could not re-register; retrying");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                        if *shutdown.borrow() {
                            return;
                        }
                    }
                    tracing::info!(
                        id = %shared.id(),
                        session = format_args!("{session:#x}"),
                        "re-registered with a new session"
                    );
                }
                shared.claiming.store(true, Ordering::SeqCst);
                shared.wake_worker.notify_one();
            }
            ConnectionState::Closed => {
                shared.claiming.store(false, Ordering::SeqCst);
                shared.cancel_all(CancelReason::Shutdown);
                return;
            }
        }
    }
}
