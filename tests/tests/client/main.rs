//! The client library and the `warden` tool against a real server running
//! in this process ([`InProcServer`]):
//!
//! - `session`: operations and their typed errors, chroot, pipelining,
//!   watches, `multi`, close, pings, a server that stops answering;
//! - `reconnect`: suspending and resuming the session, re-registered
//!   watches, retries, expiry and renewal, protected creates, fail-over;
//! - `cli`: the `warden` command-line tool.
//!
//! Faults are made on the wire by a [`Proxy`] between the client and the
//! server: a cut connection, a server that stops answering (muted), answers
//! or requests lost in flight (one way muted, then cut), a slow network
//! (delayed), a server that is down (refusing). What the server saw is read
//! from what it reports to anyone: its metrics (`warden_requests_total` by
//! operation, answered) and the four-letter words `cons` (connections and
//! their sessions), `dump` (live sessions) and `wchc` (watches by session).
//!
//! Every server ticks every 200 ms (the harness default), so it grants
//! session timeouts in [400 ms, 4 s]. The tests run on a two-worker
//! runtime: the client's background task goes on while a test blocks on
//! the harness (a four-letter word, a metric, the server stopping).

mod cli;
mod reconnect;
mod session;

use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;
use std::io::{Read, Write};
use std::time::Duration;

use warden_client::{Client, ConnectOptions};
use warden_tests::proxy::{Direction, Proxy};
use warden_tests::{within, InProcServer, STEP};

/// A fresh server.
fn start() -> InProcServer {
    InProcServer::start()
}

/// A proxy in front of `server`'s client port.
fn proxy_for(server: &InProcServer) -> Proxy {
    Proxy::start(server.addr().parse().expect("a socket address"))
}

/// A client of `servers` (a connect string, or an address); fails the
/// test if it does not connect within [`STEP`].
async fn connect(servers: impl Display, opts: ConnectOptions) -> Client {
    warden_tests::connect(&servers.to_string(), opts).await
}

/// Another session, straight to the server: what "someone else" does.
async fn observer(server: &InProcServer) -> Client {
    connect(server.addr(), ConnectOptions::default()).await
}

/// Options asking for this session timeout.
fn with_timeout(session_timeout: Duration) -> ConnectOptions {
    ConnectOptions {
        session_timeout,
        ..Default::default()
    }
}

/// Polls `cond` until it holds; fails the test after [`STEP`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    within(STEP, what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// A four-letter word's answer, from the server's ZooKeeper port.
fn word(server: &InProcServer, w: &str) -> String {
    let mut s = std::net::TcpStream::connect(server.zk_addr()).expect("connect to the zk port");
    s.set_read_timeout(Some(STEP)).expect("a read timeout");
    s.write_all(w.as_bytes()).expect("send the word");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("the answer");
    out
}

/// The sessions the server holds (`dump`).
fn live_sessions(server: &InProcServer) -> BTreeSet<u64> {
    word(server, "dump")
        .lines()
        .skip_while(|l| !l.starts_with("Global Sessions"))
        .skip(1)
        .take_while(|l| l.starts_with("0x"))
        .filter_map(|l| {
            u64::from_str_radix(l.split('\t').next()?.trim_start_matches("0x"), 16).ok()
        })
        .collect()
}

/// The server's connections serving `session` (`cons`): each one's count
/// of frames received (requests and pings).
fn connections_of(server: &InProcServer, session: u64) -> Vec<u64> {
    let sid = format!("sid=0x{session:x},");
    word(server, "cons")
        .lines()
        .filter(|l| l.contains(&sid))
        .map(|l| {
            l.split("recved=")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(|n| n.parse().ok())
                .expect("cons reports recved=N")
        })
        .collect()
}

/// The watches the server holds for `session` (`wchc`), as
/// `"<path> (<kind>)"`, sorted.
fn watches_of(server: &InProcServer, session: u64) -> Vec<String> {
    let head = format!("0x{session:x}");
    let mut w: Vec<String> = word(server, "wchc")
        .lines()
        .skip_while(|l| *l != head)
        .skip(1)
        .take_while(|l| l.starts_with('\t'))
        .map(|l| l.trim().to_string())
        .collect();
    w.sort();
    w
}

/// How many requests of kind `op` the server has answered (its metric
/// `warden_requests_total`, counted just before the answer is sent).
fn answered(server: &InProcServer, op: &str) -> u64 {
    server.metric("warden_requests_total", &format!("op=\"{op}\"")) as u64
}

/// Every request the server has answered, of any kind.
fn answered_all(server: &InProcServer) -> u64 {
    server.metric("warden_requests_total", "") as u64
}

/// A call made on a clone of `c`, to spawn.
fn on<F, Fut>(c: &Client, f: F) -> Fut
where
    F: FnOnce(Client) -> Fut,
{
    f(c.clone())
}

/// Lets the call `f` makes on `c` reach the server, which carries it out
/// and answers (an `op` counted in its metrics), and loses the answer: the
/// proxy holds it, then the connection is cut. Returns what the call
/// returned.
async fn answer_lost<T, F, Fut>(
    server: &InProcServer,
    proxy: &Proxy,
    c: &Client,
    op: &str,
    f: F,
) -> T
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    until("the client is connected", || c.state().is_connected()).await;
    proxy.mute_one_way(Direction::ToClient);
    let before = answered(server, op);
    let call = tokio::spawn(f(c.clone()));
    until(&format!("the server answers {op}"), || {
        answered(server, op) > before
    })
    .await;
    proxy.cut();
    proxy.unmute();
    within(STEP, op, call).await.expect("the call's task")
}

/// Loses the request of the call `f` makes on `c`: it reaches the proxy,
/// which holds it, then the connection is cut. Returns what the call
/// returned.
async fn request_lost<T, F, Fut>(proxy: &Proxy, c: &Client, what: &str, f: F) -> T
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    until("the client is connected", || c.state().is_connected()).await;
    proxy.mute_one_way(Direction::ToTarget);
    let before = proxy.bytes_read(Direction::ToTarget);
    let call = tokio::spawn(f(c.clone()));
    until(&format!("{what} reaches the proxy"), || {
        proxy.bytes_read(Direction::ToTarget) > before
    })
    .await;
    proxy.cut();
    proxy.unmute();
    within(STEP, what, call).await.expect("the call's task")
}
