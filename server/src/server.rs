//! Startup, background duties and shutdown of a server process.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{InitializeError, RaftError};
use openraft::SnapshotPolicy;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warden_proto::peer::peer_server::PeerServer;

use crate::api::grpc::WardenService;
use crate::config::Config;
use crate::error::StartupError;
use crate::metrics::Metrics;
use crate::net::accept::{self, AxumListener, Gate, PerAddress};
use crate::net::tls::{Role, Tls};
use crate::raft::election::{self, LeaderContact};
use crate::raft::log_store::{recover, LogStore};
use crate::raft::member::MemberNode;
use crate::raft::membership::{self, Ensemble};
use crate::raft::network::{Identity, PeerNetwork, Peers};
use crate::raft::peer_service::PeerService;
use crate::raft::proposer::{now_ms, Proposer};
use crate::raft::state_machine::{load_snapshot, Shared, StateMachine};
use crate::raft::Raft;
use crate::raft::{cluster, forward};
use crate::session::Ctx;
use crate::storage::{DiskEngine, Durability, Engine, MemoryEngine};
use crate::txn::Op;

/// Concurrent gRPC streams (sessions, admin calls) one client connection
/// may carry; warden-client opens one connection per session.
const MAX_STREAMS_PER_CONNECTION: u32 = 16;

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
    /// The peer listener, in an ensemble.
    pub peer: Option<TcpListener>,
    /// Plain-text client listeners kept beside TLS ones
    /// (`--plain-listen`, `--plain-zk-listen`).
    pub plain_client: Option<TcpListener>,
    pub plain_zk: Option<TcpListener>,
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
        let peer = match config.is_ensemble() {
            true => Some(bind(config.peer_listen, "peer traffic", "--peer-listen").await?),
            false => None,
        };
        let plain_client = match config.plain_listen {
            Some(a) => Some(bind(a, "the plain-text client API", "--plain-listen").await?),
            None => None,
        };
        let plain_zk = match config.plain_zk_listen {
            Some(a) => {
                Some(bind(a, "the plain-text ZooKeeper protocol", "--plain-zk-listen").await?)
            }
            None => None,
        };
        Ok(Listeners {
            client,
            admin,
            zk,
            peer,
            plain_client,
            plain_zk,
        })
    }
}

/// Asks openraft for a snapshot whenever the state machine counts enough
/// txns since the last one, again every half second until one begins
/// (openraft ignores the ask while it is building or installing one).
async fn ask_for_snapshots(raft: Raft, shared: Arc<Shared>) {
    loop {
        shared.snapshot_wanted().await;
        while shared.snapshot_pending() {
            if let Err(e) = raft.trigger().snapshot().await {
                tracing::debug!(error = %e, "raft stopped; no more snapshots");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
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
    let booted = Instant::now();
    // Caught from the start, so a SIGHUP during recovery does not stop
    // the server (its default action).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let local = |l: &TcpListener| l.local_addr().map_err(StartupError::Listener);
    config.listen = local(&listeners.client)?;
    config.admin_listen = local(&listeners.admin)?;
    config.zk_listen = listeners.zk.as_ref().map(local).transpose()?;
    if let Some(l) = &listeners.peer {
        config.peer_listen = local(l)?;
    }
    config.plain_listen = listeners.plain_client.as_ref().map(local).transpose()?;
    config.plain_zk_listen = listeners.plain_zk.as_ref().map(local).transpose()?;
    let Listeners {
        client: client_listener,
        admin: admin_listener,
        zk: zk_listener,
        peer: peer_listener,
        plain_client,
        plain_zk,
    } = listeners;
    let tls = match &config.tls {
        Some(files) => Some(Tls::load(files.clone()).map_err(StartupError::Tls)?),
        None => None,
    };
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
    let identity = ensemble_identity(&config, &*engine, snap.is_none(), tls.clone()).await?;
    shared.snapshot_every(config.snapshot_every);
    let sm = StateMachine::open(engine.clone(), snap, shared.clone()).map_err(storage)?;
    tracing::info!(
        znodes = shared.state.read().tree.node_count(),
        ms = booted.elapsed().as_millis() as u64,
        "snapshot loaded"
    );
    let log_store = LogStore::new(engine, metrics.clone(), true);
    let ensemble = config.is_ensemble();

    let raft_config = openraft::Config {
        cluster_name: "warden".into(),
        heartbeat_interval: crate::raft::HEARTBEAT_MS,
        // In an ensemble openraft's election timer is off (our pre-vote
        // decides) and its maximum is only the leader lease (raft::LEASE_MS).
        election_timeout_min: match ensemble {
            true => crate::raft::LEASE_MS - 30,
            false => crate::raft::ELECTION_TIMEOUT_MIN_MS,
        },
        election_timeout_max: match ensemble {
            true => crate::raft::LEASE_MS,
            false => crate::raft::ELECTION_TIMEOUT_MAX_MS,
        },
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        // A follower a little behind catches up from the log, not a snapshot.
        max_in_snapshot_log_to_keep: if ensemble { 1000 } else { 0 },
        install_snapshot_timeout: 10_000,
        purge_batch_size: 1,
        max_payload_entries: 1000,
        // In an ensemble, elections start after a pre-vote (raft::election).
        enable_elect: !ensemble,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartupError::Raft(e.to_string()))?;
    let routes = config
        .peer_via
        .iter()
        .filter_map(|(id, via)| Some((config.peers.get(id)?.clone(), via.clone())))
        .collect();
    let peers = Peers::new(identity.clone(), routes, tls.clone());
    let raft = Raft::new(
        config.server_id,
        Arc::new(raft_config),
        PeerNetwork {
            peers: peers.clone(),
        },
        log_store.clone(),
        sm,
    )
    .await
    .map_err(|e| StartupError::Raft(e.to_string()))?;
    tokio::spawn(ask_for_snapshots(raft.clone(), shared.clone()));
    let contact = LeaderContact::new();
    let (drain_tx, drain_rx) = watch::channel(None);
    let ensemble_ctl = Ensemble::new(
        raft.clone(),
        peers.clone(),
        shared.clone(),
        contact.clone(),
        MemberNode {
            peer: config.peer_listen.to_string(),
            client: Some(config.listen.to_string()),
            zk: config.zk_listen.map(|a| a.to_string()),
            admin: Some(config.admin_listen.to_string()),
            observer: false,
        },
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = |name, role, limit| Gate {
        name,
        tls: tls.clone().map(|t| (t, role)),
        limit,
    };
    // Peers must reach this member before it can join an election.
    let peer_server = peer_listener.map(|l| {
        let conns = accept::incoming(l, gate("peer", Role::Peer, None), stop_rx.clone());
        let mut stop = stop_rx.clone();
        let svc = PeerServer::new(PeerService {
            raft: raft.clone(),
            identity: identity.clone(),
            shared: shared.clone(),
            contact: contact.clone(),
            ensemble: ensemble_ctl.clone(),
        })
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(accept::stream(conns), async move {
                    let _ = stop.changed().await;
                }),
        )
    });
    // Formed once a membership is stored: a vote alone (granted to a peer
    // that bootstrapped first) does not make an ensemble of this folder.
    let stored: BTreeMap<u64, String> = raft
        .with_raft_state(|st| {
            st.membership_state
                .effective()
                .membership()
                .nodes()
                .map(|(id, n)| (*id, n.peer.clone()))
                .collect()
        })
        .await
        .map_err(|e| StartupError::Raft(e.to_string()))?;
    let formed = !stored.is_empty();
    if formed {
        check_membership(&config, &stored)?;
    } else if !config.join.is_empty() {
        tracing::info!(data_dir = %dir, ensemble = %identity.cluster, via = ?config.join, "joining the ensemble as a learner: waiting for the leader to send the data");
    } else {
        match raft.initialize(founding_members(&config)).await {
            Ok(()) if ensemble => {
                tracing::info!(data_dir = %dir, members = config.peers.len(), ensemble = %identity.cluster, "bootstrapped a new ensemble")
            }
            Ok(()) => tracing::info!(data_dir = %dir, "initialized a new single-server cluster"),
            // Every founding member initializes with the same members; one
            // whose vote a peer already asked for learns them from the leader.
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) if ensemble => {
                tracing::info!(data_dir = %dir, ensemble = %identity.cluster, "a peer bootstrapped the ensemble first; joining it")
            }
            Err(e) => return Err(StartupError::Raft(e.to_string())),
        }
    }
    if ensemble {
        serve_ensemble_member(&raft, &shared, &config).await;
    } else {
        recover_single(&raft, &config).await?;
    }
    {
        // The tree is replayed; every session gets a fresh full timeout from now.
        shared.sessions.reset_all(Instant::now());
        let st = shared.state.read();
        tracing::info!(
            last_zxid = st.tree.last_zxid(),
            znodes = st.tree.node_count(),
            sessions = st.tree.session_count(),
            ms = booted.elapsed().as_millis() as u64,
            "state recovered"
        );
    }

    let proposer = Proposer::start(
        raft.clone(),
        shared.clone(),
        ensemble.then_some(peers.clone()),
    );
    let ctx = Ctx {
        shared: shared.clone(),
        proposer: proposer.clone(),
        config: config.clone(),
        shutdown: stop_rx.clone(),
        drain: drain_rx,
        turns: Arc::default(),
        conns: Arc::default(),
        ensemble: ensemble.then(|| ensemble_ctl.clone()),
    };

    let watcher = tokio::spawn(watch_consensus(
        raft.clone(),
        metrics.clone(),
        config.server_id,
    ));
    let expirer = tokio::spawn(expire_sessions(ctx.clone()));
    let reaper = tokio::spawn(reap(ctx.clone()));
    let reporter = ensemble.then(|| tokio::spawn(report_sessions(ctx.clone(), peers.clone())));
    let elector = ensemble.then(|| {
        tokio::spawn(election::drive(
            raft.clone(),
            peers.clone(),
            contact.clone(),
        ))
    });
    let announcer = ensemble.then(|| tokio::spawn(ensemble_ctl.clone().announce()));
    let promoter = ensemble.then(|| tokio::spawn(ensemble_ctl.clone().promote_caught_up()));
    let limit = Some(PerAddress::new(config.max_connections_per_ip));
    let plain = |name| Gate {
        name,
        tls: None,
        limit: limit.clone(),
    };
    let serve_grpc = |conns| {
        let mut stop = stop_rx.clone();
        let svc =
            warden_proto::warden_server::WardenServer::new(WardenService { ctx: ctx.clone() })
                .max_decoding_message_size(8 * 1024 * 1024);
        tokio::spawn(
            tonic::transport::Server::builder()
                // Each session is a stream; bounded, so one connection
                // cannot carry sessions past --max-connections-per-ip's point.
                .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
                .add_service(svc)
                .serve_with_incoming_shutdown(accept::stream(conns), async move {
                    let _ = stop.changed().await;
                }),
        )
    };
    let mut grpc = vec![serve_grpc(accept::incoming(
        client_listener,
        gate("gRPC", Role::Grpc, limit.clone()),
        stop_rx.clone(),
    ))];
    if let Some(l) = plain_client {
        grpc.push(serve_grpc(accept::incoming(
            l,
            plain("plain gRPC"),
            stop_rx.clone(),
        )));
    }
    let admin = {
        let mut stop = stop_rx.clone();
        let router = crate::admin::router(ctx.clone());
        let listener = AxumListener {
            rx: accept::incoming(
                admin_listener,
                gate("admin", Role::Admin, None),
                stop_rx.clone(),
            ),
            local: config.admin_listen,
        };
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await
        })
    };
    let mut zk = Vec::new();
    if let Some(l) = zk_listener {
        let conns = accept::incoming(
            l,
            gate("ZooKeeper", Role::Zk, limit.clone()),
            stop_rx.clone(),
        );
        zk.push(tokio::spawn(crate::api::zk::accept_loop(
            ctx.clone(),
            conns,
        )));
    }
    if let Some(l) = plain_zk {
        let conns = accept::incoming(l, plain("plain ZooKeeper"), stop_rx.clone());
        zk.push(tokio::spawn(crate::api::zk::accept_loop(
            ctx.clone(),
            conns,
        )));
    }
    let reloader = Some(tokio::spawn(reload_on_sighup(
        hup,
        tls.clone(),
        peers.clone(),
    )));
    tracing::info!(
        client_api = %config.listen,
        zk = %config.zk_listen.map(|a| a.to_string()).unwrap_or_else(|| "disabled".into()),
        admin = %config.admin_listen,
        tls = match &config.tls {
            Some(t) if t.ca.is_some() => "on (clients and members checked against --tls-ca)",
            Some(_) => "on",
            None => "off",
        },
        data_dir = %dir,
        tick_ms = config.tick.as_millis() as u64,
        "warden-server is serving"
    );
    if let Some(a) = config.plain_listen {
        tracing::info!(plain_client_api = %a, "also serving the client API in plain text");
    }
    if let Some(a) = config.plain_zk_listen {
        tracing::info!(plain_zk = %a, "also serving the ZooKeeper protocol in plain text");
    }

    let failed = tokio::select! {
        _ = shutdown => None,
        _ = removed(ensemble.then_some(&*ensemble_ctl)) => None,
        why = log_store.failed() => Some(why),
        why = consensus_failed(&raft) => Some(why),
    };
    if failed.is_none() && ensemble {
        drain(&ctx, &ensemble_ctl, &drain_tx, config.drain_timeout).await;
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    expirer.abort();
    reaper.abort();
    watcher.abort();
    if let Some(e) = elector {
        e.abort();
    }
    for task in [reporter, announcer, promoter, reloader]
        .into_iter()
        .flatten()
    {
        task.abort();
    }
    for g in grpc {
        let _ = tokio::time::timeout(Duration::from_secs(10), g).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), admin).await;
    for z in zk {
        let _ = tokio::time::timeout(Duration::from_secs(10), z).await;
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "consensus did not stop cleanly");
    }
    if let Some(p) = peer_server {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    if let Some(why) = failed {
        return Err(StartupError::StorageFailed(why));
    }
    log_store.finish();
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Reads the TLS files again on each SIGHUP: new connections (and new
/// links to peers) use the new certificates; open ones keep theirs.
/// Without TLS a SIGHUP is logged and ignored (it does not stop the
/// server, as it would by default).
async fn reload_on_sighup(
    hup: Option<tokio::signal::unix::Signal>,
    tls: Option<Arc<Tls>>,
    peers: Peers,
) {
    let Some(mut hup) = hup else {
        tracing::warn!("cannot watch for SIGHUP: TLS certificates are read only at start");
        return;
    };
    while hup.recv().await.is_some() {
        let Some(tls) = &tls else {
            tracing::info!("SIGHUP: no TLS certificates to read again; ignored");
            continue;
        };
        match tls.reload() {
            Ok(()) => {
                peers.forget_connections();
                tracing::info!("SIGHUP: read the TLS certificates again; new connections use them")
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: cannot read the TLS certificates; still using the old ones")
            }
        }
    }
}

/// The members an empty data folder bootstraps with: `--peers`, or this
/// server alone.
fn founding_members(config: &Config) -> BTreeMap<u64, MemberNode> {
    if config.is_ensemble() {
        config
            .peers
            .iter()
            .map(|(id, addr)| (*id, MemberNode::new(addr.clone())))
            .collect()
    } else {
        BTreeMap::from([(config.server_id, MemberNode::new(config.listen.to_string()))])
    }
}

/// This member's identity: its id and its ensemble's, which is stored in
/// the data folder the first time (derived from the founding members, or
/// learned from the running ensemble by a member started with `--join`).
async fn ensemble_identity(
    config: &Config,
    engine: &dyn Engine,
    no_snapshot: bool,
    tls: Option<Arc<Tls>>,
) -> Result<Identity, StartupError> {
    let dir = config.data_dir.display().to_string();
    let storage = |e| StartupError::storage(&dir, e);
    let cluster = match cluster::stored(engine).map_err(storage)? {
        Some(id) => id,
        None if !config.join.is_empty() => {
            let id = join_target(config, tls).await?;
            tracing::info!(ensemble = %id, "joining ensemble");
            cluster::store(engine, &id).map_err(storage)?;
            id
        }
        None => {
            let founding: BTreeMap<u64, String> = if config.is_ensemble() {
                config.peers.clone()
            } else {
                BTreeMap::from([(config.server_id, String::new())])
            };
            let id = cluster::ensemble_id(&founding);
            if engine.last_index().is_some() || !no_snapshot {
                tracing::info!(ensemble = %id, "recorded the ensemble id of an existing data folder");
            }
            cluster::store(engine, &id).map_err(storage)?;
            id
        }
    };
    Ok(Identity {
        cluster,
        me: config.server_id,
    })
}

/// Asks the `--join` members which ensemble they form, and checks that it
/// expects this member (`warden member add` named its id and peer address).
async fn join_target(config: &Config, tls: Option<Arc<Tls>>) -> Result<String, StartupError> {
    let me = config.server_id;
    let asker = Peers::new(
        Identity {
            cluster: String::new(),
            me,
        },
        Default::default(),
        tls,
    );
    let mut why = Vec::new();
    for addr in &config.join {
        let d = match membership::describe_at(&asker, addr).await {
            Ok(d) => d,
            Err(e) => {
                why.push(format!("{addr}: {e}"));
                continue;
            }
        };
        let Some(node) = d.membership.get_node(&me) else {
            return Err(StartupError::Config(format!(
                "the ensemble at {addr} has no member {me}; add it first with `warden member add {me} {}`, then start this member again",
                config.peer_listen
            )));
        };
        let mine = config.peer_listen.to_string();
        if node.peer != mine {
            return Err(StartupError::Config(format!(
                "the ensemble at {addr} expects member {me} at peer address {}, but this member's --peer-listen is {mine}; start it with --peer-listen {}",
                node.peer, node.peer
            )));
        }
        return Ok(d.cluster);
    }
    Err(StartupError::Config(format!(
        "no --join member answered ({}); name the peer address of a running member",
        why.join("; ")
    )))
}

/// Refuses to start when the flags contradict the membership stored in
/// the data folder. After membership changes the stored membership rules
/// and `--peers` (the founding list) may name members since removed or
/// lack ones since added; but every id it shares with the stored
/// membership must have the same peer address, and this member must
/// still be a member.
fn check_membership(config: &Config, stored: &BTreeMap<u64, String>) -> Result<(), StartupError> {
    let show = |m: &BTreeMap<u64, String>| {
        m.iter()
            .map(|(id, a)| format!("{id}={a}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let dir = config.data_dir.display();
    let me = config.server_id;
    if config.is_ensemble() {
        let contradicts = config
            .peers
            .iter()
            .any(|(id, addr)| stored.get(id).is_some_and(|a| a != addr));
        if contradicts {
            return Err(StartupError::Config(format!(
                "--peers {} contradicts the members stored in {dir} ({}); start with the stored list, or use an empty --data-dir to found a new ensemble",
                show(&config.peers),
                show(stored)
            )));
        }
        if !stored.contains_key(&me) {
            return Err(StartupError::Config(format!(
                "member {me} is no longer in the ensemble stored in {dir} ({}): it was removed; to bring it back, empty its data folder, `warden member add` it and start it with --join",
                show(stored)
            )));
        }
        if stored != &config.peers && !config.peers.is_empty() {
            tracing::info!(
                peers = %show(&config.peers),
                stored = %show(stored),
                "the membership changed since the ensemble was founded: the stored membership is used"
            );
        }
    } else if stored.len() > 1 || !stored.contains_key(&me) {
        return Err(StartupError::Config(format!(
            "{dir} belongs to an ensemble ({}), but no --peers or --join were given (or --server-id {me} is not among them); start it with --server-id and the flags it was started with",
            show(stored),
        )));
    }
    Ok(())
}

/// A single server must be leader before it serves, and serves only once
/// its recovered log is applied: a new session must not read a state older
/// than one already acknowledged.
async fn recover_single(raft: &Raft, config: &Config) -> Result<(), StartupError> {
    raft.wait(Some(Duration::from_secs(30)))
        .metrics(
            |m| m.current_leader == Some(config.server_id),
            "become leader",
        )
        .await
        .map_err(|e| StartupError::Raft(format!("this server did not become leader: {e}")))?;
    let recovered = raft.metrics().borrow().last_log_index;
    raft.wait(Some(Duration::from_secs(600)))
        .applied_index_at_least(recovered, "apply the recovered log")
        .await
        .map_err(|e| StartupError::Raft(format!("the recovered log was not applied: {e}")))?;
    Ok(())
}

/// An ensemble member serves at once, with or without a leader (clients
/// resuming a session are refused if this member is behind what they saw;
/// writes wait for a leader). It waits briefly for one so that a whole
/// ensemble started together serves writes as soon as it says so.
async fn serve_ensemble_member(raft: &Raft, shared: &Shared, config: &Config) {
    let leader = raft
        .wait(Some(Duration::from_secs(3)))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await;
    match leader {
        Ok(m) => {
            let committed = m.last_log_index.unwrap_or(0);
            let _ = shared.wait_applied(committed, Duration::from_secs(3)).await;
            tracing::info!(leader = ?m.current_leader, term = m.current_term, "the ensemble has a leader");
        }
        Err(_) => tracing::warn!(
            peers = config.peers.len(),
            "no leader yet: a majority of the members must be running; serving reads meanwhile"
        ),
    }
}

/// A graceful stop of an ensemble member: hands leadership off if it
/// leads, tells its clients to move (gRPC: `GoAway` naming the other
/// members; ZooKeeper protocol: the connection closes once it has answered
/// what it read) and waits, up to `timeout` in all, for them to go.
async fn drain(
    ctx: &Ctx,
    ensemble: &Ensemble,
    drain_tx: &watch::Sender<Option<Arc<[String]>>>,
    timeout: Duration,
) {
    let started = Instant::now();
    let me = ctx.config.server_id;
    let d = ensemble.describe();
    if d.leader == Some(me) && d.membership.voter_ids().any(|v| v != me) {
        tracing::info!("stopping: handing leadership off first");
        let handed = tokio::time::timeout(
            timeout / 2,
            ensemble.change(membership::Change::Transfer { to: None }),
        )
        .await;
        match handed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not hand leadership off; stopping anyway (the others elect a leader)")
            }
            Err(_) => tracing::warn!("handing leadership off took too long; stopping anyway"),
        }
    }
    let others: Vec<String> = d
        .membership
        .nodes()
        .filter(|(id, _)| **id != me)
        .filter_map(|(_, n)| n.client.clone())
        .collect();
    tracing::info!(connections = ctx.conns.len(), members = ?others, "stopping: asking clients to move to other members");
    drain_tx.send_replace(Some(others.into()));
    let deadline = started + timeout;
    while !ctx.conns.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match ctx.conns.len() {
        0 => tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "every client has moved"
        ),
        left => tracing::warn!(
            connections = left,
            timeout_ms = timeout.as_millis() as u64,
            "drain time is up; closing the connections left"
        ),
    }
}

/// Resolves once this ensemble member has been removed from the ensemble
/// (never for a single server): it then stops as on SIGTERM.
async fn removed(ensemble: Option<&Ensemble>) {
    match ensemble {
        Some(e) => {
            e.removed().await;
            tracing::info!("this member was removed from the ensemble; stopping");
        }
        None => futures::future::pending().await,
    }
}

/// Resolves once consensus has stopped on a fatal error (a storage write
/// or snapshot that failed, say): the server cannot commit anything more
/// and must not linger half alive.
///
/// Follows the server metrics (role, leader, membership), not the full
/// ones, which change on every write: this runs on the main thread, and
/// waking it per write cost two context switches a write.
async fn consensus_failed(raft: &Raft) -> String {
    let mut m = raft.server_metrics();
    loop {
        if let Err(e) = &raft.metrics().borrow().running_state {
            return format!("consensus stopped: {e}");
        }
        // The sender goes when consensus stops.
        if m.changed().await.is_err() {
            return match &raft.metrics().borrow().running_state {
                Err(e) => format!("consensus stopped: {e}"),
                Ok(()) => "consensus stopped".into(),
            };
        }
    }
}

/// Whether this member leads, with a quorum behind it.
fn leads(ctx: &Ctx) -> bool {
    crate::raft::leads_with_quorum(
        &ctx.proposer.raft,
        ctx.config.server_id,
        ctx.config.is_ensemble(),
    )
}

/// On the leader, once a tick, proposes `close_session` for every session
/// past its deadline. A member that has just become leader first gives
/// every session a fresh full timeout (ZooKeeper's rule): it has not heard
/// what the previous leader heard.
async fn expire_sessions(ctx: Ctx) {
    let mut tick = tokio::time::interval(ctx.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut led = true;
    loop {
        tick.tick().await;
        let leading = leads(&ctx);
        if leading && !led {
            tracing::info!("leading: every session gets a fresh timeout");
            ctx.shared.sessions.reset_all(Instant::now());
        }
        led = leading;
        if !leading {
            continue;
        }
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
        if !leads(&ctx) {
            continue;
        }
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

/// On a follower, reports the sessions its clients were heard from to the
/// leader, a few times per tick, so the leader does not expire them.
async fn report_sessions(ctx: Ctx, peers: Peers) {
    let every = (ctx.config.tick / 4).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sessions = ctx.shared.sessions.take_heard();
        if sessions.is_empty() || leads(&ctx) {
            continue;
        }
        let Some((leader, addr)) = forward::leader(&ctx.proposer.raft, Duration::ZERO).await else {
            continue;
        };
        let Ok(mut client) = peers.client(&addr) else {
            continue;
        };
        let request = warden_proto::peer::TouchRequest {
            header: Some(peers.identity.header()),
            sessions,
        };
        if let Err(e) = tokio::time::timeout(every, client.touch(request)).await {
            tracing::debug!(leader, error = %e, "could not report live sessions to the leader");
        }
    }
}

/// Follows consensus: logs leader changes and keeps the leader, election
/// and replication-lag metrics. Woken by role and leader changes, and
/// every [`LAG_EVERY`] for the lags: the full metrics change on every
/// write, and following them would wake this task per write.
async fn watch_consensus(raft: Raft, metrics: Arc<Metrics>, me: u64) {
    let mut server = raft.server_metrics();
    let mut tick = tokio::time::interval(LAG_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leader = None;
    let mut term = None;
    loop {
        {
            let m = raft.metrics();
            let m = m.borrow();
            if m.current_leader != leader {
                if leader.is_some() || term.is_some() {
                    metrics.leader_changes.inc();
                }
                match m.current_leader {
                    Some(l) => tracing::info!(leader = l, term = m.current_term, "leader known"),
                    None => tracing::info!(term = m.current_term, "no leader"),
                }
                leader = m.current_leader;
            }
            metrics.has_leader.set(i64::from(leader.is_some()));
            if let Some(t) = term {
                if m.current_term > t {
                    metrics.elections.inc_by(m.current_term - t);
                }
            }
            term = Some(m.current_term);
            metrics.replication_lag.reset();
            for (id, lag) in membership::lags(&m, me)
                .into_iter()
                .filter(|(id, _)| *id != me)
            {
                metrics
                    .replication_lag
                    .with_label_values(&[&id.to_string()])
                    .set(lag as i64);
            }
        }
        tokio::select! {
            changed = server.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}

/// How often the replication lags are brought up to date.
const LAG_EVERY: Duration = Duration::from_millis(500);
