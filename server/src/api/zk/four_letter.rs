//! ZooKeeper's four-letter words on the ZooKeeper port: a connection whose
//! first four bytes are a known word gets a plain-text answer and is closed.
//!
//! Served: ruok, srvr, stat, envi, conf, cons, mntr, wchs, wchc, wchp,
//! dump, isro. ZooKeeper's other known words get ZooKeeper's answer for a
//! word not in its whitelist; anything else is not a word at all and is
//! read as a (much too large) frame length, so the connection is closed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::session::Ctx;
use crate::watch::WatchKind;

/// The version string ZooKeeper tools parse (kazoo reads it from `envi`).
pub fn version() -> String {
    format!(
        "3.8.4-warden-{}, built on warden {}",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION")
    )
}

const SERVED: [&str; 12] = [
    "ruok", "srvr", "stat", "envi", "conf", "cons", "mntr", "wchs", "wchc", "wchp", "dump", "isro",
];
const NOT_SERVED: [&str; 6] = ["crst", "srst", "gtmk", "stmk", "hash", "dirs"];

/// The word, if these four bytes are one ZooKeeper knows.
pub fn known(head: &[u8; 4]) -> Option<&'static str> {
    SERVED
        .iter()
        .chain(NOT_SERVED.iter())
        .find(|w| w.as_bytes() == head)
        .copied()
}

/// The answer to a known word.
pub fn answer(ctx: &Ctx, word: &str) -> String {
    match word {
        "ruok" => "imok".into(),
        "isro" => "rw".into(),
        "srvr" => srvr(ctx, false),
        "stat" => srvr(ctx, true),
        "envi" => envi(ctx),
        "conf" => conf(ctx),
        "cons" => format!("{}\n", cons(ctx)),
        "mntr" => mntr(ctx),
        "wchs" => wchs(ctx),
        "wchc" => wchc(ctx),
        "wchp" => wchp(ctx),
        "dump" => dump(ctx),
        other => format!("{other} is not executed because it is not in the whitelist.\n"),
    }
}

/// ZooKeeper's name for this member's role: standalone (an ensemble of
/// one), leader, follower (also while an election runs), or observer.
fn mode(ctx: &Ctx) -> &'static str {
    match crate::api::grpc::status(ctx).role.as_str() {
        "standalone" => "standalone",
        "leader" => "leader",
        "learner" => "observer",
        _ => "follower",
    }
}

fn srvr(ctx: &Ctx, with_clients: bool) -> String {
    let (zxid, nodes) = {
        let st = ctx.shared.state.read();
        (st.tree.last_zxid(), st.tree.node_count())
    };
    let (min, avg, max) = ctx.conns.latency.summary_ms();
    let mut s = format!("Zookeeper version: {}\n", version());
    if with_clients {
        s.push_str("Clients:\n");
        s.push_str(&cons(ctx));
        s.push('\n');
    }
    let _ = write!(
        s,
        "Latency min/avg/max: {min:.0}/{avg:.4}/{max:.0}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: 0\nZxid: 0x{zxid:x}\nMode: {}\nNode count: {nodes}\n",
        ctx.conns.received.load(Ordering::Relaxed),
        ctx.conns.sent.load(Ordering::Relaxed),
        ctx.conns.len(),
        mode(ctx),
    );
    s
}

fn envi(ctx: &Ctx) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={}\nhost.name={host}\njava.version=none (warden-server is written in Rust)\nos.name={}\nos.arch={}\nuser.dir={cwd}\nwarden.data_dir={}\nwarden.client_listen={}\n",
        version(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        ctx.config.data_dir.display(),
        ctx.config.listen,
    )
}

fn conf(ctx: &Ctx) -> String {
    let c = &ctx.config;
    let zk = c.zk_listen.map(|a| a.to_string()).unwrap_or_default();
    let port = c.zk_listen.map(|a| a.port()).unwrap_or(0);
    format!(
        "clientPort={port}\nclientPortAddress={zk}\ndataDir={}\ndataLogDir={}\ntickTime={}\nmaxClientCnxns=0\nminSessionTimeout={}\nmaxSessionTimeout={}\nserverId={}\nreconfigEnabled=false\n",
        c.data_dir.display(),
        c.data_dir.display(),
        c.tick.as_millis(),
        c.min_session_timeout.as_millis(),
        c.max_session_timeout.as_millis(),
        c.server_id,
    )
}

fn cons(ctx: &Ctx) -> String {
    let now = SystemTime::now();
    let mut s = String::new();
    for c in ctx.conns.list() {
        let peer = c
            .peer
            .map(|p| p.to_string())
            .unwrap_or_else(|| "unknown".into());
        let (min, avg, max) = c.latency.summary_ms();
        let est = c
            .established
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let _ = writeln!(
            s,
            " /{peer}[1](queued=0,recved={},sent={},sid=0x{:x},lop={},est={est},to={},proto={},age_ms={},minlat={min:.0},avglat={avg:.4},maxlat={max:.0})",
            c.received.load(Ordering::Relaxed),
            c.sent.load(Ordering::Relaxed),
            c.session.load(Ordering::Relaxed),
            *c.last_op.lock(),
            c.timeout_ms.load(Ordering::Relaxed),
            c.protocol,
            now.duration_since(c.established).map(|d| d.as_millis()).unwrap_or(0),
        );
    }
    s
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| x.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(0)
}

fn mntr(ctx: &Ctx) -> String {
    let (zxid, nodes, ephemerals, size, sessions) = {
        let st = ctx.shared.state.read();
        (
            st.tree.last_zxid(),
            st.tree.node_count(),
            st.tree.ephemeral_count(),
            st.tree.approximate_data_size(),
            st.tree.session_count(),
        )
    };
    let (min, avg, max) = ctx.conns.latency.summary_ms();
    let watches = ctx.shared.watches.list();
    let paths: BTreeSet<&str> = watches.iter().map(|w| w.2.as_str()).collect();
    let status = crate::api::grpc::status(ctx);
    let mut rows: Vec<(&str, String)> = vec![
        ("zk_version", version()),
        ("zk_server_state", mode(ctx).into()),
        ("zk_avg_latency", format!("{avg:.4}")),
        ("zk_max_latency", format!("{max:.0}")),
        ("zk_min_latency", format!("{min:.0}")),
        (
            "zk_packets_received",
            ctx.conns.received.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_packets_sent",
            ctx.conns.sent.load(Ordering::Relaxed).to_string(),
        ),
        ("zk_num_alive_connections", ctx.conns.len().to_string()),
        ("zk_outstanding_requests", "0".into()),
        ("zk_znode_count", nodes.to_string()),
        ("zk_watch_count", watches.len().to_string()),
        ("zk_watched_paths", paths.len().to_string()),
        ("zk_ephemerals_count", ephemerals.to_string()),
        ("zk_approximate_data_size", size.to_string()),
        ("zk_global_sessions", sessions.to_string()),
        ("zk_open_file_descriptor_count", open_fds().to_string()),
        ("zk_max_file_descriptor_count", max_fds().to_string()),
        ("zk_last_zxid", format!("0x{zxid:x}")),
        ("zk_server_id", ctx.config.server_id.to_string()),
    ];
    if status.role == "leader" {
        let followers = status.members.iter().filter(|m| m.id != status.server_id);
        let synced = followers.clone().filter(|m| m.lag == Some(0)).count();
        rows.push(("zk_followers", followers.count().to_string()));
        rows.push(("zk_synced_followers", synced.to_string()));
    }
    rows.into_iter()
        .map(|(k, v)| format!("{k}\t{v}\n"))
        .collect()
}

fn kind_name(k: WatchKind) -> &'static str {
    match k {
        WatchKind::Data => "data",
        WatchKind::Child => "child",
        WatchKind::Persistent => "persistent",
        WatchKind::PersistentRecursive => "persistentRecursive",
    }
}

fn wchs(ctx: &Ctx) -> String {
    let w = ctx.shared.watches.list();
    let sessions: BTreeSet<u64> = w.iter().map(|x| x.0).collect();
    let paths: BTreeSet<&str> = w.iter().map(|x| x.2.as_str()).collect();
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        sessions.len(),
        paths.len(),
        w.len()
    )
}

fn wchc(ctx: &Ctx) -> String {
    let mut by: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (s, k, p) in ctx.shared.watches.list() {
        by.entry(s)
            .or_default()
            .push(format!("{p} ({})", kind_name(k)));
    }
    let mut out = String::new();
    for (s, ps) in by {
        let _ = writeln!(out, "0x{s:x}");
        for p in ps {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out
}

fn wchp(ctx: &Ctx) -> String {
    let mut by: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (s, _, p) in ctx.shared.watches.list() {
        by.entry(p).or_default().insert(s);
    }
    let mut out = String::new();
    for (p, ss) in by {
        let _ = writeln!(out, "{p}");
        for s in ss {
            let _ = writeln!(out, "\t0x{s:x}");
        }
    }
    out
}

fn dump(ctx: &Ctx) -> String {
    let st = ctx.shared.state.read();
    let mut out = format!(
        "SessionTracker dump:\nGlobal Sessions({}):\n",
        st.tree.session_count()
    );
    for (id, info) in st.tree.sessions() {
        let _ = writeln!(out, "0x{id:x}\t{}ms", info.timeout_ms);
    }
    let eph: Vec<_> = st.tree.ephemerals_by_session().collect();
    let _ = writeln!(
        out,
        "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
        eph.len()
    );
    for (id, paths) in eph {
        let _ = writeln!(out, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_zookeepers_words_only() {
        assert_eq!(known(b"ruok"), Some("ruok"));
        assert_eq!(known(b"crst"), Some("crst"));
        assert_eq!(known(b"GET "), None);
        assert_eq!(known(&[0, 0, 0, 45]), None);
        assert!(version().starts_with("3.8.4-warden-"));
    }
}
