//! Startup, background duties and shutdown of a server process.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::api::grpc::WardenService;
use crate::config::Config;
use crate::error::StartupError;
use crate::metrics::Metrics;
use crate::raft::log_store::{recover, LogStore};
use crate::raft::network::PeerNetwork;
use crate::raft::proposer::{now_ms, Proposer};
use crate::raft::state_machine::{load_snapshot, Shared, StateMachine};
use crate::raft::Raft;
use crate::session::Ctx;
use crate::storage::{DiskEngine, Durability, Engine, MemoryEngine};
use crate::txn::Op;

async fn bind(
    addr: std::net::SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind {
            what,
            addr: addr.to_string(),
            flag,
            source,
        })
}

/// The sockets a server serves on. Bound before the server starts, so a
/// caller (a test) can bind port 0 and know the addresses first.
pub struct Listeners {
    pub client: TcpListener,
    pub admin: TcpListener,
    /// The ZooKeeper-protocol listener, if enabled.
    pub zk: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses `config` names.
    pub async fn bind(config: &Config) -> Result<Listeners, StartupError> {
        let client = bind(config.listen, "the client API", "--listen").await?;
        let admin = bind(config.admin_listen, "admin HTTP", "--admin-listen").await?;
        let zk = match config.zk_listen {
            Some(addr) => Some(
                bind(
                    addr,
                    "the ZooKeeper protocol",
                    "--zk-listen (an empty value, --zk-listen '', disables it)",
                )
                .await?,
            ),
            None => None,
        };
        Ok(Listeners { client, admin, zk })
    }
}

/// Runs a server until `shutdown` resolves, then stops cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartupError> {
    let listeners = Listeners::bind(&config).await?;
    run_with(config, listeners, shutdown).await
}

/// [`run`] on listeners the caller bound; the configured addresses are
/// replaced by the bound ones.
pub async fn run_with(
    mut config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    let local = |l: &TcpListener| l.local_addr().map_err(StartupError::Listener);
    config.listen = local(&listeners.client)?;
    config.admin_listen = local(&listeners.admin)?;
    config.zk_listen = listeners.zk.as_ref().map(local).transpose()?;
    let Listeners {
        client: client_listener,
        admin: admin_listener,
        zk: zk_listener,
    } = listeners;
    let config = Arc::new(config);
    let dir = config.data_dir.display().to_string();
    let durability = Durability {
        sync: !config.unsafe_no_fsync,
    };
    if !durability.sync {
        tracing::warn!(
            "--unsafe-no-fsync: writes are acknowledged before they are durable (tests only)"
        );
    }
    let engine: Arc<dyn Engine> = if config.unsafe_in_memory {
        tracing::warn!(
            "--unsafe-in-memory: nothing is written to disk or survives a stop (tests only)"
        );
        Arc::new(MemoryEngine::new())
    } else {
        Arc::new(DiskEngine::open(&config.data_dir, durability)?)
    };
    let storage = |e| StartupError::storage(&dir, e);
    let snap = load_snapshot(&*engine).map_err(storage)?;
    recover(
        &*engine,
        snap.as_ref()
            .and_then(|(m, _)| m.last_log_id.map(|l| l.index)),
    )
    .map_err(storage)?;

    let metrics = Arc::new(Metrics::new());
    let shared = Shared::new(metrics.clone());
    let sm = StateMachine::open(engine.clone(), snap, shared.clone()).map_err(storage)?;
    let log_store = LogStore::new(engine, metrics.clone());

    let raft_config = openraft::Config {
        cluster_name: "warden".into(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        max_payload_entries: 1000,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartupError::Raft(e.to_string()))?;
    let raft = Raft::new(
        config.server_id,
        Arc::new(raft_config),
        PeerNetwork,
        log_store.clone(),
        sm,
    )
    .await
    .map_err(|e| StartupError::Raft(e.to_string()))?;
    let started = Instant::now();
    if !raft
        .is_initialized()
        .await
        .map_err(|e| StartupError::Raft(e.to_string()))?
    {
        let mut members = BTreeMap::new();
        members.insert(config.server_id, BasicNode::new(config.listen.to_string()));
        raft.initialize(members)
            .await
            .map_err(|e| StartupError::Raft(e.to_string()))?;
        tracing::info!(data_dir = %dir, "initialized a new single-server cluster");
    }
    raft.wait(Some(Duration::from_secs(30)))
        .metrics(
            |m| m.current_leader == Some(config.server_id),
            "become leader",
        )
        .await
        .map_err(|e| StartupError::Raft(format!("this server did not become leader: {e}")))?;
    // Serve only once the recovered log is applied: a new session must not
    // read a state older than one already acknowledged.
    let recovered = raft.metrics().borrow().last_log_index;
    raft.wait(Some(Duration::from_secs(600)))
        .applied_index_at_least(recovered, "apply the recovered log")
        .await
        .map_err(|e| StartupError::Raft(format!("the recovered log was not applied: {e}")))?;
    {
        // The tree is replayed; every session gets a fresh full timeout from now.
        shared.sessions.reset_all(Instant::now());
        let st = shared.state.read();
        tracing::info!(
            last_zxid = st.tree.last_zxid(),
            znodes = st.tree.node_count(),
            sessions = st.tree.session_count(),
            ms = started.elapsed().as_millis() as u64,
            "state recovered"
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let proposer = Proposer::start(raft.clone());
    let ctx = Ctx {
        shared: shared.clone(),
        proposer: proposer.clone(),
        config: config.clone(),
        shutdown: stop_rx.clone(),
        turns: Arc::default(),
        conns: Arc::default(),
    };

    let expirer = tokio::spawn(expire_sessions(ctx.clone()));
    let reaper = tokio::spawn(reap(ctx.clone()));

    let grpc = {
        let mut stop = stop_rx.clone();
        let svc =
            warden_proto::warden_server::WardenServer::new(WardenService { ctx: ctx.clone() })
                .max_decoding_message_size(8 * 1024 * 1024);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(client_listener),
                    async move {
                        let _ = stop.changed().await;
                    },
                ),
        )
    };
    let admin = {
        let mut stop = stop_rx.clone();
        let router = crate::admin::router(ctx.clone());
        tokio::spawn(async move {
            axum::serve(admin_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await
        })
    };
    let zk = zk_listener
        .map(|l| tokio::spawn(crate::api::zk::accept_loop(ctx.clone(), l, stop_rx.clone())));
    tracing::info!(
        client_api = %config.listen,
        zk = %config.zk_listen.map(|a| a.to_string()).unwrap_or_else(|| "disabled".into()),
        admin = %config.admin_listen,
        data_dir = %dir,
        tick_ms = config.tick.as_millis() as u64,
        "warden-server is serving"
    );

    let failed = tokio::select! {
        _ = shutdown => None,
        why = log_store.failed() => Some(why),
        why = consensus_failed(&raft) => Some(why),
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    expirer.abort();
    reaper.abort();
    let _ = tokio::time::timeout(Duration::from_secs(10), grpc).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), admin).await;
    if let Some(zk) = zk {
        let _ = tokio::time::timeout(Duration::from_secs(10), zk).await;
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "consensus did not stop cleanly");
    }
    if let Some(why) = failed {
        return Err(StartupError::StorageFailed(why));
    }
    log_store.finish();
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Resolves once consensus has stopped on a fatal error (a storage write
/// or snapshot that failed, say): the server cannot commit anything more
/// and must not linger half alive.
async fn consensus_failed(raft: &Raft) -> String {
    let mut m = raft.metrics();
    loop {
        if let Err(e) = &m.borrow().running_state {
            return format!("consensus stopped: {e}");
        }
        if m.changed().await.is_err() {
            return "consensus stopped".into();
        }
    }
}

/// Once a tick, proposes `close_session` for every session past its deadline.
async fn expire_sessions(ctx: Ctx) {
    let mut tick = tokio::time::interval(ctx.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for id in ctx.shared.sessions.take_expired(Instant::now()) {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                match ctx
                    .proposer
                    .propose(0, Op::CloseSession { session_id: id })
                    .await
                {
                    Ok(r) => tracing::info!(
                        session = format!("0x{id:x}"),
                        zxid = r.zxid,
                        "session expired"
                    ),
                    Err(e) => {
                        tracing::warn!(session = format!("0x{id:x}"), error = %e, "could not expire a session; will retry");
                        ctx.shared.sessions.reopen(id, Instant::now());
                    }
                }
            });
        }
    }
}

/// Once a tick, deletes empty containers and expired TTL nodes.
async fn reap(ctx: Ctx) {
    let mut tick = tokio::time::interval(ctx.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let paths = ctx.shared.state.read().tree.reap_candidates(now_ms());
        if paths.is_empty() {
            continue;
        }
        match ctx.proposer.propose(0, Op::Reap { paths }).await {
            Ok(r) => {
                tracing::debug!(zxid = r.zxid, result = ?r.result, "reaped containers and TTL nodes")
            }
            Err(e) => tracing::warn!(error = %e, "could not reap containers and TTL nodes"),
        }
    }
}
