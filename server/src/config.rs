//! Configuration: built-in defaults, overridden by a TOML file (`--config`),
//! overridden by command-line flags. With nothing given the server runs on
//! loopback with its data in `./warden-data`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::error::StartupError;
use crate::net::tls::{ClientAuth, TlsFiles};

/// The `warden-server` command line.
#[derive(Parser, Debug)]
#[command(
    name = "warden-server",
    version,
    about = "Warden coordination server: a durable znode store with sessions, ephemeral and sequential nodes, and watches",
    long_about = "Warden coordination server.\n\nWith no arguments it serves the gRPC client API on 127.0.0.1:7181, the ZooKeeper wire protocol (and four-letter words) on 127.0.0.1:2181 and admin HTTP (/metrics, /health, /status) on 127.0.0.1:7180, keeping its data in ./warden-data. Flags override a --config TOML file, which overrides the defaults. Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more detail."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Offline tools that work on a data folder instead of serving it.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Rebuild the tree from a data folder (snapshot + log) without serving
    /// it, and print its last zxid and state hash. The server must be stopped.
    Replay {
        /// The data folder to read.
        #[arg(long, default_value = "./warden-data")]
        data_dir: PathBuf,
        /// Stop after this log index (default: the last committed entry).
        #[arg(long)]
        upto: Option<u64>,
    },
    /// Print the digest ACL id of USER:PASSWORD (`user:BASE64(SHA1(...))`),
    /// as ZooKeeper makes it: for a `digest` ACL entry, or --super-digest.
    Digest {
        /// The user and password, joined by a colon.
        user_password: String,
    },
}

/// Flags for running the server. Each overrides the config file.
#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// A TOML file with any of the settings below (snake_case keys, e.g. `tick_ms = 500`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the log, snapshots and lock live [default: ./warden-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address for the gRPC client API [default: 127.0.0.1:7181].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address for admin HTTP: /metrics, /health, /status [default: 127.0.0.1:7180].
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Address for the ZooKeeper wire protocol and four-letter words; an empty string disables it [default: 127.0.0.1:2181].
    #[arg(long, value_name = "ADDR")]
    pub zk_listen: Option<String>,
    /// The basic time unit in ms: sessions are checked for expiry once a tick [default: 2000].
    #[arg(long, value_name = "MS")]
    pub tick_ms: Option<u64>,
    /// Smallest session timeout granted, in ms [default: 2 × tick].
    #[arg(long, value_name = "MS")]
    pub min_session_timeout_ms: Option<u64>,
    /// Largest session timeout granted, in ms [default: 20 × tick].
    #[arg(long, value_name = "MS")]
    pub max_session_timeout_ms: Option<u64>,
    /// Take a snapshot (and purge older log entries) after this many txns, as ZooKeeper's snapCount [default: 50000].
    #[arg(long, value_name = "N")]
    pub snapshot_every: Option<u64>,
    /// This server's id in the ensemble [default: 1].
    #[arg(long, value_name = "ID")]
    pub server_id: Option<u64>,
    /// The ensemble's members, the same list on every member: ID=HOST:PORT
    /// pairs of peer addresses, e.g. 1=10.0.0.1:7182,2=10.0.0.2:7182,3=10.0.0.3:7182.
    /// Without it the server is an ensemble of one.
    #[arg(long, value_name = "LIST")]
    pub peers: Option<String>,
    /// Address for traffic between members [default: this member's address
    /// in --peers, else 127.0.0.1:7182]; used only with --peers or --join.
    #[arg(long, value_name = "ADDR")]
    pub peer_listen: Option<SocketAddr>,
    /// Join a running ensemble: HOST:PEER_PORT of one or more of its members.
    /// Start the new member with an empty --data-dir after
    /// `warden member add ID PEER_ADDR` named it; it catches up as a
    /// learner. Ignored once its data folder holds the ensemble.
    #[arg(long, value_name = "LIST", conflicts_with = "peers")]
    pub join: Option<String>,
    /// On SIGTERM or SIGINT, how long (ms) to hand leadership off and let
    /// clients move to other members before stopping [default: 5000].
    #[arg(long, value_name = "MS")]
    pub drain_timeout_ms: Option<u64>,
    /// The super user's digest, `super:BASE64(SHA1(super:PASSWORD))` (as
    /// ZooKeeper's `zookeeper.DigestAuthenticationProvider.superDigest`): a
    /// connection that runs `addauth digest super:PASSWORD` may do anything.
    #[arg(long, value_name = "USER:HASH")]
    pub super_digest: Option<String>,
    /// A PEM certificate (chain) to serve TLS with. With it (and --tls-key)
    /// every listener speaks TLS on its usual port; members also use it to
    /// prove who they are to each other. Re-read on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates that client and member certificates must chain
    /// to. Needed for mutual TLS between members and to check clients.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Whether clients must present a certificate signed by --tls-ca: none,
    /// optional or required [default: optional with --tls-ca, else none].
    /// A client's certificate subject is its `x509` identity.
    #[arg(long, value_name = "MODE")]
    pub tls_client_auth: Option<String>,
    /// With TLS on, also serve the gRPC client API in plain text here.
    #[arg(long, value_name = "ADDR")]
    pub plain_listen: Option<SocketAddr>,
    /// With TLS on, also serve the ZooKeeper protocol in plain text here
    /// (ZooKeeper's clientPort beside its secureClientPort).
    #[arg(long, value_name = "ADDR")]
    pub plain_zk_listen: Option<SocketAddr>,
    /// Most connections one client address may hold open, over both client
    /// protocols (ZooKeeper's maxClientCnxns); 0 for no limit [default: 60].
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Refuse a create or setData that would pass a hard quota limit
    /// (`setquota -N/-B`) with QuotaExceeded, as ZooKeeper's
    /// zookeeper.enforceQuota=true; give it to every member.
    #[arg(long)]
    pub enforce_quota: bool,
    /// Tests only: acknowledge writes without waiting for fdatasync/fsync,
    /// so the power-loss test can show it notices the difference.
    #[arg(long, hide = true)]
    pub unsafe_no_fsync: bool,
    /// Tests only: keep the log and snapshots in memory (nothing survives a
    /// stop), for in-process servers whose point is semantics.
    #[arg(long, hide = true)]
    pub unsafe_in_memory: bool,
    /// Tests only: ID=HOST:PORT pairs; dial peer ID at HOST:PORT instead of
    /// its --peers address (a fault-injecting proxy per link), without
    /// changing the ensemble's identity.
    #[arg(long, hide = true, value_name = "LIST")]
    pub peer_via: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    zk_listen: Option<String>,
    tick_ms: Option<u64>,
    min_session_timeout_ms: Option<u64>,
    max_session_timeout_ms: Option<u64>,
    snapshot_every: Option<u64>,
    server_id: Option<u64>,
    peers: Option<String>,
    peer_listen: Option<SocketAddr>,
    join: Option<String>,
    drain_timeout_ms: Option<u64>,
    super_digest: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tls_client_auth: Option<String>,
    plain_listen: Option<SocketAddr>,
    plain_zk_listen: Option<SocketAddr>,
    max_connections_per_ip: Option<usize>,
    enforce_quota: Option<bool>,
}

/// The resolved settings the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// The ZooKeeper-protocol listener; `None` when disabled.
    pub zk_listen: Option<SocketAddr>,
    pub tick: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub snapshot_every: u64,
    pub server_id: u64,
    /// The ensemble's members by id (peer addresses); empty for an
    /// ensemble of one.
    pub peers: BTreeMap<u64, String>,
    /// Where peers reach this member (bound only in an ensemble).
    pub peer_listen: SocketAddr,
    /// Members of a running ensemble to join through (`--join`); empty
    /// when founding one or alone.
    pub join: Vec<String>,
    /// How long a graceful stop may take (`--drain-timeout-ms`).
    pub drain_timeout: Duration,
    /// The super user's `user:hash` digest (`--super-digest`).
    pub super_digest: Option<String>,
    /// TLS on every listener, when a certificate is given.
    pub tls: Option<TlsFiles>,
    /// Plain-text gRPC and ZooKeeper listeners kept beside TLS ones.
    pub plain_listen: Option<SocketAddr>,
    pub plain_zk_listen: Option<SocketAddr>,
    /// `--max-connections-per-ip`; 0 for no limit.
    pub max_connections_per_ip: usize,
    /// `--enforce-quota`.
    pub enforce_quota: bool,
    /// Skip every durability barrier (`--unsafe-no-fsync`, tests only).
    pub unsafe_no_fsync: bool,
    /// Keep everything in memory (`--unsafe-in-memory`, tests only).
    pub unsafe_in_memory: bool,
    /// Where to dial a peer instead of its --peers address (`--peer-via`,
    /// tests only).
    pub peer_via: BTreeMap<u64, String>,
}

impl Config {
    /// Defaults ← file ← flags, then checks that the result makes sense.
    pub fn resolve(args: &RunArgs) -> Result<Config, StartupError> {
        let file = match &args.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    StartupError::Config(format!("cannot read {}: {e}", p.display()))
                })?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| StartupError::Config(format!("{}: {e}", p.display())))?
            }
            None => FileConfig::default(),
        };
        let tick_ms = args.tick_ms.or(file.tick_ms).unwrap_or(2000);
        if tick_ms == 0 {
            return Err(StartupError::Config("tick_ms must be above 0".into()));
        }
        let min = args
            .min_session_timeout_ms
            .or(file.min_session_timeout_ms)
            .unwrap_or(2 * tick_ms);
        let max = args
            .max_session_timeout_ms
            .or(file.max_session_timeout_ms)
            .unwrap_or(20 * tick_ms);
        if min > max {
            return Err(StartupError::Config(format!(
                "min_session_timeout_ms ({min}) is above max_session_timeout_ms ({max})"
            )));
        }
        let snapshot_every = args
            .snapshot_every
            .or(file.snapshot_every)
            .unwrap_or(50_000);
        if snapshot_every == 0 {
            return Err(StartupError::Config(
                "snapshot_every must be above 0".into(),
            ));
        }
        let server_id = args.server_id.or(file.server_id).unwrap_or(1);
        if server_id == 0 || server_id > 127 {
            return Err(StartupError::Config(format!(
                "server_id {server_id} is out of range; use 1 to 127"
            )));
        }
        let peers = match args.peers.as_ref().or(file.peers.as_ref()) {
            Some(list) => parse_peers(list)?,
            None => BTreeMap::new(),
        };
        if !peers.is_empty() && !peers.contains_key(&server_id) {
            return Err(StartupError::Config(format!(
                "server_id {server_id} is not in peers ({}); give each member its own id from the list",
                peers.keys().map(u64::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        let peer_via = match &args.peer_via {
            Some(list) => parse_peers(list)?,
            None => BTreeMap::new(),
        };
        let join: Vec<String> = match args.join.as_ref().or(file.join.as_ref()) {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect(),
            None => Vec::new(),
        };
        if !join.is_empty() && !peers.is_empty() {
            return Err(StartupError::Config(
                "give either peers (to found an ensemble) or join (to join a running one), not both".into(),
            ));
        }
        if let Some(bad) = join.iter().find(|a| a.rsplit_once(':').is_none()) {
            return Err(StartupError::Config(format!(
                "join address {bad:?} is not HOST:PORT; name the peer address of a running member, e.g. 127.0.0.1:7182"
            )));
        }
        if let Some(id) = peer_via
            .keys()
            .find(|id| join.is_empty() && !peers.contains_key(id))
        {
            return Err(StartupError::Config(format!(
                "--peer-via names member {id}, which is not in --peers"
            )));
        }
        let peer_listen = args
            .peer_listen
            .or(file.peer_listen)
            .or_else(|| peers.get(&server_id).and_then(|a| a.parse().ok()))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7182)));
        let zk_listen = match args.zk_listen.as_ref().or(file.zk_listen.as_ref()) {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 2181))),
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Some(s.trim().parse().map_err(|e| {
                StartupError::Config(format!(
                    "zk_listen {s:?} is not an address like 127.0.0.1:2181 ({e}); use an empty string to disable it"
                ))
            })?),
        };
        let tls = tls_files(args, &file)?;
        let config = Config {
            tls,
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./warden-data")),
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7181))),
            admin_listen: args
                .admin_listen
                .or(file.admin_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7180))),
            zk_listen,
            tick: Duration::from_millis(tick_ms),
            min_session_timeout: Duration::from_millis(min),
            max_session_timeout: Duration::from_millis(max),
            snapshot_every,
            server_id,
            peers,
            peer_listen,
            join,
            drain_timeout: Duration::from_millis(
                args.drain_timeout_ms
                    .or(file.drain_timeout_ms)
                    .unwrap_or(5000),
            ),
            super_digest: match args.super_digest.clone().or(file.super_digest) {
                Some(d) if d.split(':').count() != 2 => {
                    return Err(StartupError::Config(format!(
                        "super_digest {d:?} is not USER:HASH; make one with `warden-server digest super:PASSWORD`"
                    )))
                }
                other => other,
            },
            plain_listen: args.plain_listen.or(file.plain_listen),
            plain_zk_listen: args.plain_zk_listen.or(file.plain_zk_listen),
            max_connections_per_ip: args
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(60),
            enforce_quota: args.enforce_quota || file.enforce_quota.unwrap_or(false),
            unsafe_no_fsync: args.unsafe_no_fsync,
            unsafe_in_memory: args.unsafe_in_memory,
            peer_via,
        };
        if config.is_ensemble() && config.tls.as_ref().is_some_and(|t| t.ca.is_none()) {
            return Err(StartupError::Config(
                "members of a TLS ensemble check each other's certificates: give tls_ca (the CA that signed every member's certificate)".into(),
            ));
        }
        Ok(config)
    }

    /// Whether this server is one of several members (founding one with
    /// `--peers`, or joining one with `--join`).
    pub fn is_ensemble(&self) -> bool {
        self.peers.len() > 1 || !self.join.is_empty()
    }

    /// Clamps a requested session timeout into [min, max].
    pub fn negotiate_timeout(&self, requested_ms: u32) -> u32 {
        let min = self.min_session_timeout.as_millis() as u32;
        let max = self.max_session_timeout.as_millis() as u32;
        requested_ms.clamp(min, max)
    }
}

/// The TLS files, if a certificate is given (flags over the file).
fn tls_files(args: &RunArgs, file: &FileConfig) -> Result<Option<TlsFiles>, StartupError> {
    let cert = args.tls_cert.clone().or(file.tls_cert.clone());
    let key = args.tls_key.clone().or(file.tls_key.clone());
    let ca = args.tls_ca.clone().or(file.tls_ca.clone());
    let auth = args
        .tls_client_auth
        .clone()
        .or(file.tls_client_auth.clone());
    let (cert, key) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => {
            if ca.is_some() || auth.is_some() {
                return Err(StartupError::Config(
                    "tls_ca and tls_client_auth need a certificate: give tls_cert and tls_key too"
                        .into(),
                ));
            }
            let plain = args.plain_listen.or(file.plain_listen).is_some()
                || args.plain_zk_listen.or(file.plain_zk_listen).is_some();
            if plain {
                return Err(StartupError::Config(
                    "plain_listen and plain_zk_listen are for a server with TLS on; without tls_cert, listen and zk_listen are plain text already".into(),
                ));
            }
            return Ok(None);
        }
        _ => {
            return Err(StartupError::Config(
                "give both tls_cert and tls_key, or neither".into(),
            ))
        }
    };
    let client_auth = match auth {
        Some(a) => a.parse().map_err(StartupError::Config)?,
        None if ca.is_some() => ClientAuth::Optional,
        None => ClientAuth::None,
    };
    Ok(Some(TlsFiles {
        cert,
        key,
        ca,
        client_auth,
    }))
}

/// Parses `1=host:port,2=host:port,...`.
fn parse_peers(list: &str) -> Result<BTreeMap<u64, String>, StartupError> {
    let bad = |why: String| {
        StartupError::Config(format!(
            "peers {list:?}: {why}; write ID=HOST:PORT pairs separated by commas, e.g. 1=127.0.0.1:7182,2=127.0.0.1:7282"
        ))
    };
    let mut peers = BTreeMap::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("{item:?} has no '='")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| bad(format!("{:?} is not a member id", id.trim())))?;
        if id == 0 || id > 127 {
            return Err(bad(format!("member id {id} is out of range (1 to 127)")));
        }
        let addr = addr.trim();
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(bad(format!("{addr:?} is not HOST:PORT"))),
        }
        if peers.insert(id, addr.to_string()).is_some() {
            return Err(bad(format!("member id {id} is listed twice")));
        }
    }
    if peers.is_empty() {
        return Err(bad("no members".into()));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_flags() {
        let c = Config::resolve(&RunArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7181");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:7180");
        assert_eq!(c.zk_listen, Some("127.0.0.1:2181".parse().unwrap()));
        assert_eq!(c.tick, Duration::from_millis(2000));
        assert_eq!(c.negotiate_timeout(1), 4000);
        assert_eq!(c.negotiate_timeout(1_000_000), 40_000);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("w.toml");
        std::fs::write(&f, "tick_ms = 100\nlisten = \"127.0.0.1:9999\"\n").unwrap();
        let c = Config::resolve(&RunArgs {
            config: Some(f.clone()),
            listen: Some("127.0.0.1:8888".parse().unwrap()),
            ..RunArgs::default()
        })
        .unwrap();
        assert_eq!(c.tick, Duration::from_millis(100));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8888");
        assert_eq!(c.min_session_timeout, Duration::from_millis(200));
        let off = Config::resolve(&RunArgs {
            config: Some(f.clone()),
            zk_listen: Some(String::new()),
            ..RunArgs::default()
        })
        .unwrap();
        assert_eq!(off.zk_listen, None);
        std::fs::write(&f, "zk_listen = \"127.0.0.1:12181\"\n").unwrap();
        let c = Config::resolve(&RunArgs {
            config: Some(f.clone()),
            ..RunArgs::default()
        })
        .unwrap();
        assert_eq!(c.zk_listen, Some("127.0.0.1:12181".parse().unwrap()));
        let bad = Config::resolve(&RunArgs {
            zk_listen: Some("nope".into()),
            ..RunArgs::default()
        })
        .unwrap_err();
        assert!(bad.to_string().contains("zk_listen"), "{bad}");
        std::fs::write(&f, "tick = 100\n").unwrap();
        let e = Config::resolve(&RunArgs {
            config: Some(f),
            ..RunArgs::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn tls_and_limits_come_from_the_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("w.toml");
        std::fs::write(
            &f,
            "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_ca = \"ca.pem\"\nplain_zk_listen = \"127.0.0.1:2182\"\nmax_connections_per_ip = 5\nenforce_quota = true\n",
        )
        .unwrap();
        let c = Config::resolve(&RunArgs {
            config: Some(f.clone()),
            ..RunArgs::default()
        })
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("c.pem"));
        assert_eq!(tls.client_auth, ClientAuth::Optional, "a CA means optional");
        assert_eq!(c.plain_zk_listen, Some("127.0.0.1:2182".parse().unwrap()));
        assert_eq!(c.max_connections_per_ip, 5);
        assert!(c.enforce_quota);
        let d = Config::resolve(&RunArgs::default()).unwrap();
        assert!(d.tls.is_none() && !d.enforce_quota);
        assert_eq!(d.max_connections_per_ip, 60);
        for (text, says) in [
            ("tls_cert = \"c.pem\"\n", "both tls_cert and tls_key"),
            ("tls_ca = \"ca.pem\"\n", "need a certificate"),
            ("plain_listen = \"127.0.0.1:1\"\n", "TLS on"),
            (
                "tls_cert = \"c\"\ntls_key = \"k\"\ntls_client_auth = \"maybe\"\n",
                "none, optional, required",
            ),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = Config::resolve(&RunArgs {
                config: Some(f.clone()),
                ..RunArgs::default()
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        std::fs::write(&f, "tls_cert = \"c\"\ntls_key = \"k\"\n").unwrap();
        let e = Config::resolve(&RunArgs {
            config: Some(f),
            peers: Some("1=127.0.0.1:7182,2=127.0.0.1:7282".into()),
            ..RunArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("give tls_ca"), "{e}");
    }

    #[test]
    fn peers_parse_and_bad_lists_say_why() {
        let p = parse_peers("1=127.0.0.1:7182, 2=localhost:7282,3=[::1]:7382").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[&3], "[::1]:7382");
        for (bad, says) in [
            ("1=a:1,1=b:2", "listed twice"),
            ("x=a:1", "not a member id"),
            ("1=a", "not HOST:PORT"),
            ("1:a:1", "no '='"),
            ("0=a:1", "out of range"),
            ("", "no members"),
        ] {
            let e = parse_peers(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn an_ensemble_member_must_be_in_the_list() {
        let args = RunArgs {
            server_id: Some(4),
            peers: Some("1=127.0.0.1:7182,2=127.0.0.1:7282".into()),
            ..Default::default()
        };
        let e = Config::resolve(&args).unwrap_err().to_string();
        assert!(e.contains("not in peers"), "{e}");
        let args = RunArgs {
            server_id: Some(2),
            ..args
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.peer_listen, "127.0.0.1:7282".parse().unwrap());
        assert!(c.is_ensemble());
    }
}
