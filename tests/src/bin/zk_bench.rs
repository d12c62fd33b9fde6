//! `zk_bench`: a closed-loop load generator for any server that speaks the
//! ZooKeeper protocol — Warden's `--zk-listen` and Apache ZooKeeper alike —
//! driven by one third-party client (the `zookeeper-client` crate), so the
//! comparison in docs/benchmarks.md measures the servers, not two clients.
//!
//! N sessions each keep `--in-flight` requests (default 1) in flight for a
//! fixed time. Each operation is a read (`getData` of one of `--keys`
//! shared nodes) or a write; each in-flight slot's writes cycle create →
//! setData → delete over its own node, so every write is one durable
//! transaction and the tree stays the same size. With `--spread`, session
//! i connects only to host i mod n of a multi-host `--servers` (round
//! robin over an ensemble's members) instead of letting the client pick. It prints throughput and p50/p99/max latency, overall and
//! per operation, and a last `RESULT ...` line for scripts.
//!
//! It lives beside the test helpers in `warden-tests` because it is a
//! test-side client like them and shares their `zookeeper-client`
//! dependency; `cargo build --release --bins` builds it as
//! `target/release/zk_bench`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions};

/// Command-line options.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "zk_bench",
    about = "Closed-loop ZooKeeper-protocol load generator: N sessions, a read/write mix, fixed duration; reports ops/s and p50/p99 latency",
    long_about = None
)]
struct Opts {
    /// ZooKeeper connect string of the server under test.
    #[arg(long, default_value = "127.0.0.1:2181")]
    servers: String,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Requests each session keeps in flight (pipelined on its one
    /// connection); each in-flight slot has its own node for writes.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Spread the sessions over the hosts of a multi-host `--servers`
    /// round-robin: session i connects to host i mod n alone (the setup
    /// and cleanup use the whole connect string).
    #[arg(long)]
    spread: bool,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Percentage of operations that are writes (create, setData, delete);
    /// the rest are getData.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    write_percent: u8,
    /// Shared nodes the reads pick from.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Bytes of data per node.
    #[arg(long, default_value_t = 128)]
    value_size: usize,
    /// Leave the benchmark's nodes in place at the end.
    #[arg(long)]
    keep: bool,
    /// Instead of a timed load: create this many nodes of --value-size
    /// bytes under /zk-populate (1000 per parent), with --sessions ×
    /// --in-flight creates in flight, print `POPULATED nodes=N secs=S` and
    /// leave them (the memory, disk and restart rows of bench_scale.py).
    #[arg(long, value_name = "N")]
    populate: Option<u64>,
    /// Instead of a timed load: try to connect and read PATH until it
    /// works (each attempt given 1 s), then print `PROBE ms=M`, the time
    /// since this process started (a restarted server's time to first read).
    #[arg(long, value_name = "PATH")]
    probe: Option<String>,
    /// Instead of a timed load: open N sessions (64 connecting at a time),
    /// each with a one-shot data watch on /zk-watch, print `WATCHING
    /// sessions=N secs=S`, then run --fanout-rounds rounds of one setData
    /// and time until every session has its event (re-armed between
    /// rounds); print `FANOUT sessions=N rounds=R p50_ms=.. max_ms=..` (the
    /// median over rounds of the median and of the last session's delay).
    #[arg(long, value_name = "N")]
    watchers: Option<usize>,
    /// With --watchers: rounds of fan-out.
    #[arg(long, default_value_t = 5)]
    fanout_rounds: usize,
    /// With --watchers: after printing `WATCHING`, wait for a line on
    /// stdin before the rounds (so a caller can measure the server then).
    #[arg(long)]
    pause: bool,
}

/// The kinds of operation measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Create,
    Set,
    Delete,
}

const OPS: [Op; 4] = [Op::Read, Op::Create, Op::Set, Op::Delete];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Read => "getData",
            Op::Create => "create",
            Op::Set => "setData",
            Op::Delete => "delete",
        }
    }
}

/// Latencies in microseconds, per operation kind.
#[derive(Default)]
struct Samples {
    by_op: [Vec<u32>; 4],
}

impl Samples {
    fn add(&mut self, op: Op, micros: u32) {
        self.by_op[op as usize].push(micros);
    }

    fn merge(&mut self, other: Samples) {
        for (mine, theirs) in self.by_op.iter_mut().zip(other.by_op) {
            mine.extend(theirs);
        }
    }
}

fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// The `p`-th percentile (0–100) of sorted samples, in milliseconds.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// A small deterministic generator (xorshift) per session: no shared state
/// on the hot path.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn connect(servers: &str) -> Result<Client> {
    tokio::time::timeout(Duration::from_secs(20), Client::connect(servers))
        .await
        .context("connect timed out")?
        .with_context(|| format!("connect to {servers}"))
}

/// The connect string of session `index`: one host round-robin with
/// `--spread`, else the whole `--servers`.
fn session_servers(opts: &Opts, index: usize) -> String {
    if !opts.spread {
        return opts.servers.clone();
    }
    let hosts: Vec<&str> = opts.servers.split(',').collect();
    hosts[index % hosts.len()].to_string()
}

/// One session: connects, then runs its `--in-flight` slots until `end`.
async fn session(
    opts: Opts,
    root: String,
    index: usize,
    measure_from: Instant,
    end: Instant,
) -> Result<Samples> {
    let client = connect(&session_servers(&opts, index)).await?;
    // This member may not have applied the setup's creates yet.
    client
        .sync(&root)
        .await
        .with_context(|| format!("sync {root}"))?;
    let slots = (0..opts.in_flight).map(|slot| {
        let own = if opts.in_flight == 1 {
            format!("{root}/s{index}")
        } else {
            format!("{root}/s{index}-{slot}")
        };
        let seed = (index * opts.in_flight + slot) as u64;
        slot_loop(&opts, &client, &root, own, seed, measure_from, end)
    });
    let mut samples = Samples::default();
    for s in futures::future::try_join_all(slots).await? {
        samples.merge(s);
    }
    Ok(samples)
}

/// One in-flight slot's closed loop until `end`, recording what finishes
/// after `measure_from`.
async fn slot_loop(
    opts: &Opts,
    client: &Client,
    root: &str,
    own: String,
    seed: u64,
    measure_from: Instant,
    end: Instant,
) -> Result<Samples> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((seed + 1) * 0x2545_F491));
    let value = vec![b'w'; opts.value_size];
    let mut next_write = Op::Create;
    let mut samples = Samples::default();
    while Instant::now() < end {
        let write = (rng.next() % 100) < u64::from(opts.write_percent);
        let op = if write { next_write } else { Op::Read };
        let start = Instant::now();
        match op {
            Op::Read => {
                let key = format!("{root}/k{}", rng.next() as usize % opts.keys);
                client
                    .get_data(&key)
                    .await
                    .with_context(|| format!("getData {key}"))?;
            }
            Op::Create => {
                client
                    .create(&own, &value, &persistent())
                    .await
                    .with_context(|| format!("create {own}"))?;
                next_write = Op::Set;
            }
            Op::Set => {
                client
                    .set_data(&own, &value, None)
                    .await
                    .with_context(|| format!("setData {own}"))?;
                next_write = Op::Delete;
            }
            Op::Delete => {
                client
                    .delete(&own, None)
                    .await
                    .with_context(|| format!("delete {own}"))?;
                next_write = Op::Create;
            }
        }
        let done = Instant::now();
        if start >= measure_from && done <= end {
            samples.add(op, (done - start).as_micros().min(u32::MAX as u128) as u32);
        }
    }
    if next_write != Op::Create {
        let _ = client.delete(&own, None).await;
    }
    Ok(samples)
}

/// Creates the root and the shared read keys (a few writers in parallel).
async fn setup(opts: &Opts, root: &str) -> Result<()> {
    let client = connect(&opts.servers).await?;
    client
        .create(root, b"", &persistent())
        .await
        .with_context(|| format!("create {root}"))?;
    let value = vec![b'r'; opts.value_size];
    let writers = 8.min(opts.keys.max(1));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (client, root, value) = (client.clone(), root.to_string(), value.clone());
        let keys = opts.keys;
        tasks.push(tokio::spawn(async move {
            for k in (w..keys).step_by(writers) {
                client
                    .create(&format!("{root}/k{k}"), &value, &persistent())
                    .await
                    .with_context(|| format!("create {root}/k{k}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("setup task")??;
    }
    Ok(())
}

async fn cleanup(opts: &Opts, root: &str) -> Result<()> {
    let client = connect(&opts.servers).await?;
    // The sessions wrote through other members: catch up before listing.
    client.sync(root).await?;
    for name in client.list_children(root).await? {
        client.delete(&format!("{root}/{name}"), None).await?;
    }
    client.delete(root, None).await?;
    Ok(())
}

/// Nodes per parent when populating.
const FAN_OUT: u64 = 1000;

/// `--populate N`: N nodes under /zk-populate/pI/nJ, created by
/// `--sessions` sessions keeping `--in-flight` creates in flight each.
async fn populate(opts: &Opts, n: u64) -> Result<()> {
    let started = Instant::now();
    let client = connect(&opts.servers).await?;
    let root = "/zk-populate";
    client
        .create(root, b"", &persistent())
        .await
        .with_context(|| format!("create {root}"))?;
    for p in 0..n.div_ceil(FAN_OUT) {
        client
            .create(&format!("{root}/p{p}"), b"", &persistent())
            .await
            .with_context(|| format!("create {root}/p{p}"))?;
    }
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let value = std::sync::Arc::new(vec![b'v'; opts.value_size]);
    let mut sessions = Vec::new();
    for _ in 0..opts.sessions {
        let client = connect(&opts.servers).await?;
        for _ in 0..opts.in_flight {
            let (client, next, value) = (client.clone(), next.clone(), value.clone());
            sessions.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return anyhow::Ok(());
                    }
                    let path = format!("{root}/p{}/n{}", i / FAN_OUT, i % FAN_OUT);
                    client
                        .create(&path, &value, &persistent())
                        .await
                        .with_context(|| format!("create {path}"))?;
                    if i > 0 && i % 100_000 == 0 {
                        eprintln!("zk_bench: {i} of {n} nodes created");
                    }
                }
            }));
        }
    }
    for s in sessions {
        s.await.context("populate task")??;
    }
    println!(
        "POPULATED nodes={n} secs={:.1}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--probe PATH`: the time from this process's start to the first read
/// of PATH that succeeds.
async fn probe(opts: &Opts, path: &str) -> Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(1), async {
            let client = Client::connect(&opts.servers).await?;
            client.get_data(path).await.map(|_| ())
        })
        .await;
        if let Ok(Ok(())) = attempt {
            println!("PROBE ms={}", started.elapsed().as_millis());
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no successful read of {path} within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `--watchers N`: N sessions each watching one node; the server's cost of
/// holding them, and how long one change takes to reach them all.
async fn watchers(opts: &Opts, n: usize) -> Result<()> {
    use futures::StreamExt;
    use std::sync::Arc;
    use tokio::sync::{mpsc, Barrier};

    let started = Instant::now();
    let path = "/zk-watch";
    let admin = connect(&opts.servers).await?;
    match admin.create(path, b"0", &persistent()).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
        Err(e) => return Err(e).context(format!("create {path}")),
    }
    let clients: Vec<Client> = futures::stream::iter(0..n)
        .map(|i| {
            let servers = session_servers(opts, i);
            async move { connect(&servers).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let rounds = opts.fanout_rounds;
    // Everyone armed (n sessions and this task), then one change.
    let armed = Arc::new(Barrier::new(n + 1));
    let (events, mut heard) = mpsc::channel::<Instant>(n);
    let mut tasks = Vec::new();
    for client in clients {
        let (armed, events) = (armed.clone(), events.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let (_, _, watcher) = client
                    .get_and_watch_data(path)
                    .await
                    .with_context(|| format!("getData {path} with a watch"))?;
                armed.wait().await;
                watcher.changed().await;
                let _ = events.send(Instant::now()).await;
            }
            anyhow::Ok(client)
        }));
    }
    drop(events);
    let mut medians = Vec::new();
    let mut lasts = Vec::new();
    for round in 0..rounds {
        armed.wait().await;
        if round == 0 {
            println!(
                "WATCHING sessions={n} secs={:.1}",
                started.elapsed().as_secs_f64()
            );
            if opts.pause {
                let mut line = String::new();
                tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
                    .await
                    .context("stdin")??;
            }
        }
        let t0 = Instant::now();
        admin
            .set_data(path, round.to_string().as_bytes(), None)
            .await
            .with_context(|| format!("setData {path}"))?;
        let mut delays = Vec::with_capacity(n);
        while delays.len() < n {
            let at = tokio::time::timeout(Duration::from_secs(60), heard.recv())
                .await
                .context("a watcher heard nothing within 60 s")?
                .context("a watcher stopped")?;
            delays.push((at - t0).as_micros().min(u32::MAX as u128) as u32);
        }
        delays.sort_unstable();
        medians.push(percentile(&delays, 50.0));
        lasts.push(percentile(&delays, 100.0));
    }
    for t in tasks {
        t.await.context("watcher task")??;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "FANOUT sessions={n} rounds={rounds} p50_ms={:.3} max_ms={:.3}",
        median(&mut medians),
        median(&mut lasts)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Opts::parse();
    if let Some(n) = opts.watchers {
        if n == 0 || opts.fanout_rounds == 0 {
            bail!("--watchers and --fanout-rounds must be at least 1");
        }
        return watchers(&opts, n).await;
    }
    if let Some(n) = opts.populate {
        return populate(&opts, n).await;
    }
    if let Some(path) = &opts.probe {
        return probe(&opts, path).await;
    }
    if opts.sessions == 0 || opts.in_flight == 0 || opts.keys == 0 || opts.duration == 0 {
        bail!("--sessions, --in-flight, --keys and --duration must be at least 1");
    }
    let root = format!("/zk-bench-{:08x}", rand::random::<u32>());
    setup(&opts, &root).await?;
    eprintln!(
        "zk_bench: {} sessions x {} in flight{}, {}% writes, {} keys of {} B, {} s warm-up + {} s against {}",
        opts.sessions,
        opts.in_flight,
        if opts.spread { " (spread)" } else { "" },
        opts.write_percent,
        opts.keys,
        opts.value_size,
        opts.warmup,
        opts.duration,
        opts.servers
    );
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(opts.warmup);
    let end = measure_from + Duration::from_secs(opts.duration);
    let tasks: Vec<_> = (0..opts.sessions)
        .map(|i| tokio::spawn(session(opts.clone(), root.clone(), i, measure_from, end)))
        .collect();
    let mut all = Samples::default();
    for t in tasks {
        all.merge(t.await.context("session task")??);
    }
    if !opts.keep {
        cleanup(&opts, &root).await?;
    }

    let secs = opts.duration as f64;
    let mut total: Vec<u32> = Vec::new();
    let mut writes: Vec<u32> = Vec::new();
    let mut reads: Vec<u32> = Vec::new();
    println!(
        "{:<8} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "op", "count", "ops/s", "p50 ms", "p99 ms", "max ms"
    );
    for op in OPS {
        let mut v = std::mem::take(&mut all.by_op[op as usize]);
        v.sort_unstable();
        println!(
            "{:<8} {:>10} {:>10.0} {:>9.3} {:>9.3} {:>9.3}",
            op.name(),
            v.len(),
            v.len() as f64 / secs,
            percentile(&v, 50.0),
            percentile(&v, 99.0),
            percentile(&v, 100.0)
        );
        if op == Op::Read {
            reads.extend_from_slice(&v);
        } else {
            writes.extend_from_slice(&v);
        }
        total.extend(v);
    }
    writes.sort_unstable();
    total.sort_unstable();
    let ops = total.len() as f64 / secs;
    println!(
        "{:<8} {:>10} {:>10.0} {:>9.3} {:>9.3} {:>9.3}",
        "all",
        total.len(),
        ops,
        percentile(&total, 50.0),
        percentile(&total, 99.0),
        percentile(&total, 100.0)
    );
    println!(
        "RESULT ops_per_sec={ops:.0} p50_ms={:.3} p99_ms={:.3} \
         read_p50_ms={:.3} read_p99_ms={:.3} write_p50_ms={:.3} write_p99_ms={:.3} \
         sessions={} in_flight={} write_percent={}",
        percentile(&total, 50.0),
        percentile(&total, 99.0),
        percentile(&reads, 50.0),
        percentile(&reads, 99.0),
        percentile(&writes, 50.0),
        percentile(&writes, 99.0),
        opts.sessions,
        opts.in_flight,
        opts.write_percent
    );
    Ok(())
}
