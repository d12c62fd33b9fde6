//! A fault-injecting TCP proxy on loopback: it stands between a client (or
//! one peer) and a server (or another peer) and forwards bytes both ways,
//! unchanged, until a test breaks the network between them.
//!
//! The faults, each usable while connections are live:
//!
//! - [`cut`](Proxy::cut): every current connection is closed, both ways
//!   (new ones are forwarded as usual).
//! - [`mute`](Proxy::mute) / [`unmute`](Proxy::unmute): a black hole.
//!   Nothing is delivered, nothing is closed; the connections and the
//!   bytes in them are **held**, not dropped, and delivered in order once
//!   unmuted, as TCP delivers what it retransmitted once a partition heals.
//!   Held means bounded: the proxy reads ahead at most a few chunks per
//!   direction, then stops reading, so the sender fills its socket buffers
//!   and blocks as on a stalled network. A mute covers connections opened
//!   while it lasts too, and an end of stream (FIN) is held like the bytes.
//!   [`mute_one_way`](Proxy::mute_one_way) silences one direction only
//!   (requests reach the server, answers are held).
//! - [`set_delay`](Proxy::set_delay): every chunk is delivered that much
//!   after the proxy read it, in order (a chunk never overtakes an earlier
//!   one, even when the delay is shortened meanwhile).
//! - [`refuse`](Proxy::refuse): new connections are reset at once, as a
//!   server that is down refuses them; open ones carry on. The listener
//!   stays bound, so the address stays the proxy's.
//!
//! Counters — connections accepted, refused and open, bytes read and
//! delivered per [`Direction`] — let a test wait for what happened on the
//! wire instead of sleeping (e.g. "the answer reached the proxy": then cut).
//!
//! The proxy runs on its own thread and runtime, as [`InProcServer`] does,
//! so sync and async tests drive it alike, and it keeps forwarding while
//! the test's own runtime is blocked (on a child process, say). Loopback
//! only: it listens on `127.0.0.1:0` and forwards to a loopback target.
//!
//! [`InProcServer`]: crate::InProcServer

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The most bytes read from one side at once.
const CHUNK: usize = 16 * 1024;
/// Chunks read but not yet delivered, per direction of a connection: with
/// [`CHUNK`], what the proxy itself holds is bounded by 256 KiB a direction.
const QUEUE: usize = 16;

/// One direction of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the side that connected to the proxy, to the target.
    ToTarget,
    /// From the target back to the side that connected.
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToTarget => 0,
            Direction::ToClient => 1,
        }
    }
}

/// What the test asked for; every task of the proxy watches it.
#[derive(Clone, Copy, Debug, Default)]
struct Controls {
    muted: [bool; 2],
    delay: [Duration; 2],
    refuse: bool,
    /// Bumped by every cut: a connection accepted in an earlier epoch ends.
    epoch: u64,
    stop: bool,
}

impl Controls {
    fn ended(&self, epoch: u64) -> bool {
        self.stop || self.epoch != epoch
    }
}

/// Why a connection's forwarding stopped early.
#[derive(Debug)]
struct Ended;

/// Duplicates of a live connection's two sockets, so that [`Proxy::cut`]
/// can shut them down at once from the test's thread.
struct Live {
    client: StdStream,
    target: StdStream,
}

impl Live {
    fn shut(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.target.shutdown(Shutdown::Both);
    }
}

struct Shared {
    target: SocketAddr,
    controls: watch::Sender<Controls>,
    /// Live connections by id. A cut bumps the epoch under this lock, so a
    /// connection is either listed here when the cut comes, or sees the
    /// new epoch when it would register, and ends.
    live: Mutex<HashMap<u64, Live>>,
    accepted: AtomicU64,
    refused: AtomicU64,
    read: [AtomicU64; 2],
    delivered: [AtomicU64; 2],
}

/// A TCP proxy on `127.0.0.1:0` in front of one loopback target, with
/// controls to cut, mute, delay and refuse its connections (see the
/// [module](self) for what each fault does). Dropping it closes everything.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection it
    /// accepts to `target`, which must be a loopback address.
    pub fn start(target: SocketAddr) -> Proxy {
        assert!(
            target.ip().is_loopback(),
            "the proxy forwards to loopback addresses only, not {target}"
        );
        let listener = StdListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            target,
            controls: watch::Sender::new(Controls::default()),
            live: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            read: Default::default(),
            delivered: Default::default(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("proxy-{}", addr.port()))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("the proxy's runtime");
                    // Dropping the runtime afterwards drops every
                    // connection's task, and with it its sockets.
                    rt.block_on(async move {
                        let listener = TcpListener::from_std(listener).expect("a tokio listener");
                        accept_loop(listener, shared).await;
                    });
                })
                .expect("spawn the proxy's thread")
        };
        Proxy {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// The address to connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the connections go.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Closes every current connection, both ways: when this returns, both
    /// ends of each have been shut down (they read end of stream). Bytes
    /// the proxy held for them are dropped. New connections are accepted
    /// as before.
    pub fn cut(&self) {
        let live: Vec<Live> = {
            let mut live = self.shared.live.lock();
            self.shared.controls.send_modify(|c| c.epoch += 1);
            live.drain().map(|(_, l)| l).collect()
        };
        for l in &live {
            l.shut();
        }
    }

    /// Stops delivering bytes both ways, on every connection, current and
    /// new, without closing any; what is sent meanwhile is held (up to the
    /// bounded buffers) and delivered after [`unmute`](Self::unmute).
    /// Bytes read after this returns are not delivered until then.
    pub fn mute(&self) {
        self.shared.controls.send_modify(|c| c.muted = [true; 2]);
    }

    /// Stops delivering bytes in one direction only (the other one is
    /// left as it is).
    pub fn mute_one_way(&self, direction: Direction) {
        self.shared
            .controls
            .send_modify(|c| c.muted[direction.index()] = true);
    }

    /// Delivers again, both ways, starting with what was held.
    pub fn unmute(&self) {
        self.shared.controls.send_modify(|c| c.muted = [false; 2]);
    }

    /// Delivers every chunk read from now on `delay` after it was read,
    /// both ways (zero: at once). Order is kept.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.controls.send_modify(|c| c.delay = [delay; 2]);
    }

    /// [`set_delay`](Self::set_delay) for one direction only.
    pub fn set_delay_one_way(&self, direction: Direction, delay: Duration) {
        self.shared
            .controls
            .send_modify(|c| c.delay[direction.index()] = delay);
    }

    /// While true, new connections are reset as soon as they are accepted
    /// (the connecting side sees its connection refused or reset before
    /// any byte); open connections are not touched.
    pub fn refuse(&self, refuse: bool) {
        self.shared.controls.send_modify(|c| c.refuse = refuse);
    }

    /// Connections accepted and passed on to the target so far (refused
    /// ones are not counted here but by [`refused`](Self::refused)).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections reset by [`refuse`](Self::refuse) so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connections open now (being forwarded, muted or not).
    pub fn open(&self) -> usize {
        self.shared.live.lock().len()
    }

    /// Bytes the proxy has read from the sending side of `direction` so far,
    /// delivered or not (held by a mute or a delay, or dropped by a cut).
    pub fn bytes_read(&self, direction: Direction) -> u64 {
        self.shared.read[direction.index()].load(Ordering::SeqCst)
    }

    /// Bytes the proxy has delivered in `direction` so far.
    pub fn bytes_delivered(&self, direction: Direction) -> u64 {
        self.shared.delivered[direction.index()].load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.controls.send_modify(|c| c.stop = true);
        self.cut();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("target", &self.shared.target)
            .field("controls", &*self.shared.controls.borrow())
            .field("accepted", &self.accepted())
            .field("refused", &self.refused())
            .field("open", &self.open())
            .finish()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut controls = shared.controls.subscribe();
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = controls.wait_for(|c| c.stop) => return,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of descriptors, or a connection reset while queued:
                // the listener itself is fine.
                eprintln!("proxy {}: accept failed: {e}", shared.target);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (refuse, epoch) = {
            let c = controls.borrow();
            (c.refuse, c.epoch)
        };
        if refuse {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            // A reset, not an orderly close: what a closed port answers.
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        next_id += 1;
        tokio::spawn(connection(shared.clone(), next_id, epoch, client));
    }
}

/// Forwards one connection until both directions end, either side breaks
/// it, or it is cut.
async fn connection(shared: Arc<Shared>, id: u64, epoch: u64, client: TcpStream) {
    let Ok(target) = TcpStream::connect(shared.target).await else {
        // Nothing listens behind the proxy: the client sees a reset.
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = target.set_nodelay(true);
    let (Some(client_dup), Some(target_dup)) = (dup(&client), dup(&target)) else {
        return;
    };
    {
        let mut live = shared.live.lock();
        if shared.controls.borrow().ended(epoch) {
            // Cut while it was connecting to the target.
            return;
        }
        live.insert(
            id,
            Live {
                client: client_dup,
                target: target_dup,
            },
        );
    }
    let (client_read, client_write) = client.into_split();
    let (target_read, target_write) = target.into_split();
    // The first direction to fail (a reset, a cut) ends the other one too.
    let _ = tokio::try_join!(
        forward(
            &shared,
            Direction::ToTarget,
            epoch,
            client_read,
            target_write
        ),
        forward(
            &shared,
            Direction::ToClient,
            epoch,
            target_read,
            client_write
        ),
    );
    if let Some(l) = shared.live.lock().remove(&id) {
        l.shut();
    }
}

/// Forwards one direction of a connection through a bounded queue: one
/// task reads, the other delivers, so a delay or a mute holds the queue
/// without stopping the reads (until it is full).
async fn forward(
    shared: &Shared,
    dir: Direction,
    epoch: u64,
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
) -> Result<(), Ended> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::try_join!(
        read_side(shared, dir, epoch, from, tx),
        write_side(shared, dir, epoch, rx, to),
    )?;
    Ok(())
}

/// A second descriptor for the socket, for [`Proxy::cut`].
fn dup(s: &TcpStream) -> Option<StdStream> {
    use std::os::fd::AsFd;
    s.as_fd().try_clone_to_owned().ok().map(StdStream::from)
}

/// Bytes read from one side, due for delivery at `due`.
struct Chunk {
    due: Instant,
    bytes: Vec<u8>,
}

/// Resolves when the connection is cut or the proxy stops.
async fn ended(controls: &mut watch::Receiver<Controls>, epoch: u64) {
    let _ = controls.wait_for(|c| c.ended(epoch)).await;
}

/// Reads one side into the direction's queue. Reads go on while muted
/// (the queue is bounded: when it is full, reading stops), so that
/// [`Proxy::bytes_read`] shows what reached the proxy. End of stream ends
/// the queue (the writer forwards it after the bytes); an error ends the
/// connection.
async fn read_side(
    shared: &Shared,
    dir: Direction,
    epoch: u64,
    mut from: OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
) -> Result<(), Ended> {
    let mut controls = shared.controls.subscribe();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => r.map_err(|_| Ended)?,
            _ = ended(&mut controls, epoch) => return Err(Ended),
        };
        if n == 0 {
            return Ok(());
        }
        shared.read[dir.index()].fetch_add(n as u64, Ordering::SeqCst);
        let due = Instant::now() + controls.borrow().delay[dir.index()];
        let chunk = Chunk {
            due,
            bytes: buf[..n].to_vec(),
        };
        tokio::select! {
            r = tx.send(chunk) => r.map_err(|_| Ended)?,
            _ = ended(&mut controls, epoch) => return Err(Ended),
        }
    }
}

/// Delivers the direction's queue in order: each chunk when it is due and
/// the direction is not muted; then, at the end of the stream, a
/// half-close (also held while muted).
async fn write_side(
    shared: &Shared,
    dir: Direction,
    epoch: u64,
    mut rx: mpsc::Receiver<Chunk>,
    mut to: OwnedWriteHalf,
) -> Result<(), Ended> {
    let mut controls = shared.controls.subscribe();
    loop {
        let chunk = tokio::select! {
            c = rx.recv() => c,
            _ = ended(&mut controls, epoch) => return Err(Ended),
        };
        let Some(chunk) = chunk else {
            open(&mut controls, dir, epoch).await?;
            let _ = to.shutdown().await;
            return Ok(());
        };
        if chunk.due > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(chunk.due) => {}
                _ = ended(&mut controls, epoch) => return Err(Ended),
            }
        }
        // Checked after the chunk was read: nothing read after a mute
        // slips through it.
        open(&mut controls, dir, epoch).await?;
        tokio::select! {
            r = to.write_all(&chunk.bytes) => r.map_err(|_| Ended)?,
            _ = ended(&mut controls, epoch) => return Err(Ended),
        }
        shared.delivered[dir.index()].fetch_add(chunk.bytes.len() as u64, Ordering::SeqCst);
    }
}

/// Waits until `dir` is not muted; an error if the connection ends first.
async fn open(
    controls: &mut watch::Receiver<Controls>,
    dir: Direction,
    epoch: u64,
) -> Result<(), Ended> {
    let c = controls
        .wait_for(|c| c.ended(epoch) || !c.muted[dir.index()])
        .await
        .map_err(|_| Ended)?;
    if c.ended(epoch) {
        Err(Ended)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The proxy in front of an echo server on loopback.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::{Direction, Proxy, CHUNK, QUEUE};
    use crate::{within, STEP};

    /// How long a test watches for bytes that must not arrive. (Waiting
    /// longer cannot make a correct proxy fail; a proxy that leaks bytes
    /// through a mute does so at once.)
    const QUIET: Duration = Duration::from_millis(200);

    /// An echo server: what it received, and how many connections it saw
    /// end.
    struct Echo {
        addr: std::net::SocketAddr,
        received: Arc<AtomicU64>,
        closed: Arc<AtomicU64>,
    }

    async fn echo() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let (r, c) = (received.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (r, c) = (r.clone(), c.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                r.fetch_add(n as u64, Ordering::SeqCst);
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Echo {
            addr,
            received,
            closed,
        }
    }

    /// Polls `cond` until it holds; fails the test after [`STEP`].
    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        within(STEP, what, async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    async fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        within(STEP, "the echo", s.read_exact(&mut buf))
            .await
            .expect("read the echo");
        buf
    }

    /// Writes `msg` and reads it back.
    async fn round_trip(s: &mut TcpStream, msg: &[u8]) {
        s.write_all(msg).await.unwrap();
        assert_eq!(read_exact(s, msg.len()).await, msg);
    }

    /// True if the connection ended (end of stream or reset) within STEP.
    async fn ends(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            within(STEP, "the connection ends", s.read(&mut buf)).await,
            Ok(0) | Err(_)
        )
    }

    /// Nothing arrives on `s` for [`QUIET`].
    async fn silent(s: &mut TcpStream) {
        let mut buf = [0u8; 64];
        if let Ok(r) = tokio::time::timeout(QUIET, s.read(&mut buf)).await {
            panic!("expected silence, read {r:?}");
        }
    }

    #[tokio::test]
    async fn forwards_bytes_both_ways_and_passes_on_the_end_of_stream() {
        let echo = echo().await;
        let proxy = Proxy::start(echo.addr);
        assert_eq!(proxy.target(), echo.addr);
        assert!(proxy.addr().ip().is_loopback());
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut s, b"hello").await;

        // More than the proxy's buffers hold, in both directions at once.
        let big: Vec<u8> = (0..(4 * QUEUE * CHUNK)).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn({
            let big = big.clone();
            async move {
                w.write_all(&big).await.unwrap();
                w
            }
        });
        let mut back = vec![0u8; big.len()];
        within(STEP, "the big echo", r.read_exact(&mut back))
            .await
            .unwrap();
        assert!(back == big, "the bytes came back changed");
        let mut w = within(STEP, "the big write", writer).await.unwrap();
        let total = 5 + big.len() as u64;
        until("the proxy counts every byte", || {
            proxy.bytes_delivered(Direction::ToClient) == total
        })
        .await;
        assert_eq!(proxy.bytes_read(Direction::ToTarget), total);
        assert_eq!(proxy.bytes_delivered(Direction::ToTarget), total);
        assert_eq!(echo.received.load(Ordering::SeqCst), total);
        assert_eq!((proxy.accepted(), proxy.refused(), proxy.open()), (1, 0, 1));

        // The client's half-close reaches the server, whose close comes back.
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        within(STEP, "end of stream", r.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(rest.is_empty());
        until("the server saw the end", || {
            echo.closed.load(Ordering::SeqCst) == 1
        })
        .await;
        until("the proxy let go of it", || proxy.open() == 0).await;
    }

    #[tokio::test]
    async fn cut_closes_every_connection_both_ways_and_new_ones_work() {
        let echo = echo().await;
        let proxy = Proxy::start(echo.addr);
        let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut a, b"a").await;
        round_trip(&mut b, b"b").await;
        assert_eq!(proxy.open(), 2);

        proxy.cut();
        assert_eq!(proxy.open(), 0);
        assert!(
            ends(&mut a).await,
            "the first client sees its connection closed"
        );
        assert!(ends(&mut b).await, "the second client too");
        until("the server sees both closed", || {
            echo.closed.load(Ordering::SeqCst) == 2
        })
        .await;

        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut c, b"after the cut").await;
        assert_eq!(proxy.accepted(), 3);
        assert_eq!(proxy.open(), 1);
    }

    #[tokio::test]
    async fn mute_holds_the_bytes_without_closing_and_unmute_delivers_them_in_order() {
        let echo = echo().await;
        let proxy = Proxy::start(echo.addr);
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut s, b"before").await;
        let received = echo.received.load(Ordering::SeqCst);

        proxy.mute();
        s.write_all(b"one ").await.unwrap();
        s.write_all(b"two").await.unwrap();
        until("the bytes reach the proxy", || {
            proxy.bytes_read(Direction::ToTarget) == 6 + 7
        })
        .await;
        silent(&mut s).await;
        assert_eq!(echo.received.load(Ordering::SeqCst), received, "held");
        assert_eq!(proxy.bytes_delivered(Direction::ToTarget), 6);
        // A connection opened during the mute is muted too, and kept.
        let mut late = TcpStream::connect(proxy.addr()).await.unwrap();
        late.write_all(b"late").await.unwrap();
        silent(&mut late).await;
        assert_eq!(proxy.open(), 2);
        assert_eq!(echo.closed.load(Ordering::SeqCst), 0);

        proxy.unmute();
        assert_eq!(read_exact(&mut s, 7).await, b"one two");
        assert_eq!(read_exact(&mut late, 4).await, b"late");

        // One way: the request gets through, the answer is held.
        proxy.mute_one_way(Direction::ToClient);
        s.write_all(b"ping").await.unwrap();
        until("the server gets the request", || {
            echo.received.load(Ordering::SeqCst) == received + 7 + 4 + 4
        })
        .await;
        until("the answer reaches the proxy", || {
            proxy.bytes_read(Direction::ToClient) == 6 + 7 + 4 + 4
        })
        .await;
        silent(&mut s).await;
        proxy.unmute();
        assert_eq!(read_exact(&mut s, 4).await, b"ping");
    }

    #[tokio::test]
    async fn a_mute_holds_a_bounded_amount_and_loses_nothing() {
        let echo = echo().await;
        let proxy = Proxy::start(echo.addr);
        let s = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut r, mut w) = s.into_split();
        proxy.mute();
        // Far more than the proxy's queue holds (the rest waits in the
        // socket buffers, or in the sender).
        let big: Vec<u8> = (0..(8 << 20)).map(|i| (i % 249) as u8).collect();
        let writer = tokio::spawn({
            let big = big.clone();
            async move {
                w.write_all(&big).await.unwrap();
            }
        });
        until("the proxy reads ahead", || {
            proxy.bytes_read(Direction::ToTarget) > 0
        })
        .await;
        tokio::time::sleep(QUIET).await;
        let held = proxy.bytes_read(Direction::ToTarget);
        // The queue, the chunk being queued and the one being delivered.
        assert!(
            held <= ((QUEUE + 2) * CHUNK) as u64,
            "the proxy read {held} bytes while muted"
        );
        // What the proxy passed on, not what the echo server got: another
        // test's connection to a port it believed free may reach the echo.
        assert_eq!(proxy.bytes_delivered(Direction::ToTarget), 0);

        proxy.unmute();
        let mut back = vec![0u8; big.len()];
        within(STEP, "everything echoed", r.read_exact(&mut back))
            .await
            .unwrap();
        assert!(back == big, "the bytes came back changed");
        within(STEP, "the sender finishes", writer).await.unwrap();
    }

    #[tokio::test]
    async fn delay_delivers_each_chunk_later_and_keeps_the_order() {
        let echo = echo().await;
        let proxy = Proxy::start(echo.addr);
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut s, b"warm").await;

        let delay = Duration::from_millis(150);
        proxy.set_delay(delay);
        let started = std::time::Instant::now();
        round_trip(&mut s, b"slow").await;
        let took = started.elapsed();
        assert!(took >= 2 * delay, "a round trip took {took:?}");

        // A shorter delay does not let a later chunk overtake an earlier one.
        proxy.set_delay(Duration::from_millis(400));
        s.write_all(b"first").await.unwrap();
        until("the first chunk is read", || {
            proxy.bytes_read(Direction::ToTarget) == 4 + 4 + 5
        })
        .await;
        proxy.set_delay(Duration::ZERO);
        s.write_all(b"second").await.unwrap();
        assert_eq!(read_exact(&mut s, 11).await, b"firstsecond");

        // One way only.
        proxy.set_delay_one_way(Direction::ToClient, delay);
        let started = std::time::Instant::now();
        round_trip(&mut s, b"half").await;
        assert!(started.elapsed() >= delay);
    }

    #[tokio::test]
    async fn refuse_resets_new_connections_and_spares_open_ones() {
        let echo = echo().await;
        let proxy = Proxy::start(echo.addr);
        let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut open, b"open").await;

        proxy.refuse(true);
        for _ in 0..2 {
            // The kernel completes the handshake, the proxy resets it: the
            // reset may come before the connect returns, or after.
            if let Ok(mut s) = TcpStream::connect(proxy.addr()).await {
                let _ = s.write_all(b"anyone?").await;
                assert!(ends(&mut s).await, "a refused connection ends");
            }
        }
        until("both were refused", || proxy.refused() == 2).await;
        round_trip(&mut open, b"still open").await;
        assert_eq!(proxy.accepted(), 1);
        assert_eq!(echo.received.load(Ordering::SeqCst), 4 + 10);

        proxy.refuse(false);
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut s, b"welcome back").await;
        assert_eq!((proxy.accepted(), proxy.refused()), (2, 2));
    }

    #[tokio::test]
    async fn with_nothing_behind_it_a_connection_is_closed() {
        // A port nobody listens on: bound without listening for as long as
        // the test runs, so no other test's listener can take it.
        let reserved = tokio::net::TcpSocket::new_v4().unwrap();
        reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let dead = reserved.local_addr().unwrap();
        let proxy = Proxy::start(dead);
        // The reset may come before the connect returns, or after.
        if let Ok(mut s) = TcpStream::connect(proxy.addr()).await {
            assert!(ends(&mut s).await);
        }
        until("the proxy took the connection", || proxy.accepted() == 1).await;
        assert_eq!(proxy.open(), 0);
    }

    #[test]
    #[should_panic(expected = "loopback addresses only")]
    fn targets_are_loopback_only() {
        Proxy::start("192.0.2.1:80".parse().unwrap());
    }
}
