//! Several `warden-server` processes started as one ensemble: the fixture
//! for tests where a member dies, stalls or restarts while the others go on.
//!
//! [`Cluster::start`] starts `n` [`ServerProc`]s, each with its own client,
//! ZooKeeper and admin ports and its own temporary data folder. Members are
//! numbered from 1, as server ids are: [`Cluster::kill`]`(1)` kills the
//! member started with `--server-id 1`. Every method that takes a member
//! number panics on one outside `1..=n`.
//!
//! With `n > 1` each member is also given the ensemble's flags (see
//! "The ensemble" in the design): `--server-id I`,
//! `--peer-listen 127.0.0.1:PORT` (its own peer port) and the same
//! `--peers 1=127.0.0.1:P1,2=127.0.0.1:P2,...` as every other member. A
//! cluster of one gets no ensemble flags: it is a plain server, and that is
//! how the fixture's own test uses it (`tests/tests/durability/cluster.rs`).
//!
//! Every member is spawned before any is waited for, since a member of an
//! ensemble may not report itself healthy until a quorum is up.
//!
//! [`Cluster::start_with_links`] also puts a fault-injecting [`Proxy`] on
//! every directed link between members: member `i` dials member `j` through
//! [`Cluster::link`]`(i, j)` (the hidden `--peer-via` flag, which changes
//! where a member dials, not the ensemble's identity), so a test can cut,
//! black-hole or delay one direction of one link, or
//! [`isolate`](Cluster::isolate) a member from every other while its
//! clients still reach it.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::process::ExitStatus;
use std::time::Duration;

use crate::proxy::Proxy;
use crate::{free_port, ServerOpts, ServerProc};

/// How many times a member that does not come up is started again on
/// other client ports (as [`ServerProc::start`] does for a single server).
const START_ATTEMPTS: usize = 5;

/// A running ensemble of `warden-server` processes; every member is killed
/// when it is dropped.
pub struct Cluster {
    /// Member `i` at index `i - 1`.
    members: Vec<ServerProc>,
    /// The proxy member `from` dials member `to` through, by `(from, to)`;
    /// empty unless started with links.
    links: BTreeMap<(usize, usize), Proxy>,
    /// Member `i`'s peer port at index `i - 1`.
    peer_ports: Vec<u16>,
}

impl Cluster {
    /// Starts `n` members with `opts` (its `data_dir` must be `None`: each
    /// member has its own folder) and waits until each is healthy.
    pub fn start(n: usize, opts: ServerOpts) -> Cluster {
        Cluster::start_inner(n, opts, false)
    }

    /// [`start`](Self::start) with a [`Proxy`] on every directed link
    /// between members (`n * (n - 1)` of them), for partition tests.
    pub fn start_with_links(n: usize, opts: ServerOpts) -> Cluster {
        assert!(n > 1, "links join two members or more");
        Cluster::start_inner(n, opts, true)
    }

    fn start_inner(n: usize, opts: ServerOpts, with_links: bool) -> Cluster {
        assert!(n >= 1, "a cluster has at least one member");
        assert!(
            opts.data_dir.is_none(),
            "each member has its own data folder: leave ServerOpts::data_dir empty"
        );
        let peer_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let peers = peer_ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}=127.0.0.1:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut links = BTreeMap::new();
        if with_links {
            for from in 1..=n {
                for to in (1..=n).filter(|&to| to != from) {
                    let target = ([127, 0, 0, 1], peer_ports[to - 1]).into();
                    links.insert((from, to), Proxy::start(target));
                }
            }
        }
        let mut members: Vec<ServerProc> = (1..=n)
            .map(|id| {
                let mut opts = opts.clone();
                if n > 1 {
                    opts.extra_args.extend([
                        "--server-id".to_string(),
                        id.to_string(),
                        "--peer-listen".to_string(),
                        format!("127.0.0.1:{}", peer_ports[id - 1]),
                        "--peers".to_string(),
                        peers.clone(),
                    ]);
                }
                let via: Vec<String> = links
                    .iter()
                    .filter(|((from, _), _)| *from == id)
                    .map(|((_, to), p)| format!("{to}={}", p.addr()))
                    .collect();
                if !via.is_empty() {
                    opts.extra_args
                        .extend(["--peer-via".to_string(), via.join(",")]);
                }
                ServerProc::prepare(opts)
            })
            .collect();
        for (i, m) in members.iter_mut().enumerate() {
            if let Err(e) = m.spawn() {
                panic!("cannot start member {}: {e}", i + 1);
            }
        }
        for (i, m) in members.iter_mut().enumerate() {
            if let Err(e) = m.wait_healthy() {
                eprintln!("member {} did not come up ({e}); starting it again", i + 1);
                m.kill9();
                m.start_on_fresh_ports(START_ATTEMPTS - 1);
            }
        }
        Cluster {
            members,
            links,
            peer_ports,
        }
    }

    /// Member `i`'s peer address (its `--peer-listen`), as `warden member
    /// add` takes it.
    pub fn peer_addr(&self, i: usize) -> String {
        self.member(i);
        format!("127.0.0.1:{}", self.peer_ports[i - 1])
    }

    /// Prepares (does not start) member `n + 1`, to join the running
    /// ensemble: `--server-id n+1`, its own peer port, and `--join` with
    /// every other member's peer address. Returns its number; add it with
    /// `warden member add`, then start it with [`restart`](Self::restart).
    pub fn prepare_joiner(&mut self, opts: ServerOpts) -> usize {
        let id = self.members.len() + 1;
        let port = free_port();
        let join: Vec<String> = self.ids().map(|i| self.peer_addr(i)).collect();
        let mut opts = opts;
        opts.extra_args.extend([
            "--server-id".to_string(),
            id.to_string(),
            "--peer-listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--join".to_string(),
            join.join(","),
        ]);
        self.members.push(ServerProc::prepare(opts));
        self.peer_ports.push(port);
        id
    }

    /// The member numbers, `1..=n`.
    pub fn ids(&self) -> RangeInclusive<usize> {
        1..=self.members.len()
    }

    /// Member `i`'s server handle (its ports, folder, log, admin endpoints).
    pub fn member(&self, i: usize) -> &ServerProc {
        let n = self.members.len();
        self.members
            .get(i.wrapping_sub(1))
            .unwrap_or_else(|| panic!("no member {i} in a cluster of {n} (members are 1..={n})"))
    }

    /// Member `i`'s server handle, to act on it.
    pub fn member_mut(&mut self, i: usize) -> &mut ServerProc {
        let n = self.members.len();
        self.members
            .get_mut(i.wrapping_sub(1))
            .unwrap_or_else(|| panic!("no member {i} in a cluster of {n} (members are 1..={n})"))
    }

    /// SIGKILLs member `i` and reaps it.
    pub fn kill(&mut self, i: usize) {
        self.member_mut(i).kill9();
    }

    /// SIGSTOPs member `i` and waits until it is stopped: it answers nothing
    /// and its sockets stay open, as a stalled machine's would.
    pub fn stop(&self, i: usize) {
        self.member(i).sigstop();
    }

    /// SIGCONTs member `i` and waits until it runs again.
    pub fn cont(&self, i: usize) {
        self.member(i).sigcont();
    }

    /// SIGTERMs member `i` and waits for it to exit (SIGKILL after 20 s);
    /// its exit status.
    pub fn terminate(&mut self, i: usize) -> Option<ExitStatus> {
        self.member_mut(i).terminate()
    }

    /// Starts member `i` again, killed or terminated, on its own folder and
    /// ports with the same flags (or for the first time, one made by
    /// [`prepare_joiner`](Self::prepare_joiner)); waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.member_mut(i).restart();
    }

    /// Every member's client address, `127.0.0.1:P1,127.0.0.1:P2,...`: the
    /// connect string of a Warden client (members prepared to join
    /// included).
    pub fn connect_string(&self) -> String {
        self.joined(ServerProc::addr)
    }

    /// Every member's ZooKeeper-protocol address, for a ZooKeeper client.
    pub fn zk_connect_string(&self) -> String {
        self.joined(ServerProc::zk_addr)
    }

    /// The proxy member `from` dials member `to` through (what `from`
    /// sends on it is [`Direction::ToTarget`](crate::proxy::Direction));
    /// panics unless started with [`start_with_links`](Self::start_with_links).
    pub fn link(&self, from: usize, to: usize) -> &Proxy {
        self.links
            .get(&(from, to))
            .unwrap_or_else(|| panic!("no link {from} -> {to}: start the cluster with links"))
    }

    /// Every link between member `i` and another, both directions.
    fn links_of(&self, i: usize) -> impl Iterator<Item = &Proxy> {
        self.links
            .iter()
            .filter(move |((from, to), _)| *from == i || *to == i)
            .map(|(_, p)| p)
    }

    /// Black-holes every link to and from member `i` (held, not closed, as
    /// a partition does): it keeps running and serving its clients, but
    /// hears no peer and no peer hears it.
    pub fn isolate(&self, i: usize) {
        self.links_of(i).for_each(Proxy::mute);
    }

    /// Undoes every link fault: unmuted, undelayed, accepting.
    pub fn heal(&self) {
        for p in self.links.values() {
            p.unmute();
            p.set_delay(Duration::ZERO);
            p.refuse(false);
        }
    }

    /// Copies every member's log to `target/tmp/<name>/member-I.log`, to
    /// read after a failed test (the members' own folders go with them);
    /// the folder.
    pub fn save_logs(&self, name: &str) -> std::path::PathBuf {
        let dir = crate::target_tmp().join(name);
        std::fs::create_dir_all(&dir).expect("a folder for the logs");
        for (i, m) in self.members.iter().enumerate() {
            std::fs::write(dir.join(format!("member-{}.log", i + 1)), m.log())
                .expect("a member's log saved");
        }
        dir
    }

    fn joined(&self, addr: fn(&ServerProc) -> String) -> String {
        let addrs: Vec<String> = self.members.iter().map(addr).collect();
        addrs.join(",")
    }
}
