//! `warden bench`: create, set and get throughput and latency with many
//! concurrent sessions, against a running server.

use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use warden_client::{Client, ConnectOptions, CreateMode, Error};

/// Options of `warden bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent sessions
    #[arg(long, default_value_t = 32)]
    pub sessions: usize,
    /// Requests per phase, spread evenly over the sessions
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Requests each session keeps in flight
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Bytes of data per node
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Parent of the benchmark's nodes (created, then deleted at the end)
    #[arg(long, default_value = "/warden-bench")]
    pub root: String,
    /// Print one JSON object per phase instead of a table
    #[arg(long)]
    pub json: bool,
}

/// One phase's figures.
#[derive(Debug)]
pub struct PhaseResult {
    pub op: &'static str,
    pub requests: usize,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl PhaseResult {
    fn ops_per_sec(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

#[derive(Clone, Copy)]
enum Phase {
    Create,
    Set,
    Get,
    Delete,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Set => "set",
            Phase::Get => "get",
            Phase::Delete => "delete",
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run_phase(
    clients: &[Client],
    phase: Phase,
    per_session: usize,
    args: &BenchArgs,
) -> Result<PhaseResult, Error> {
    let data = vec![b'x'; args.size];
    let started = Instant::now();
    let tasks = clients.iter().enumerate().map(|(s, c)| {
        let c = c.clone();
        let data = data.clone();
        let root = args.root.clone();
        let pipeline = args.pipeline.max(1);
        async move {
            let lat: Vec<Result<u64, Error>> = futures::stream::iter(0..per_session)
                .map(|n| {
                    let c = c.clone();
                    let path = format!("{root}/s{s}-{n}");
                    let data = data.clone();
                    async move {
                        let t = Instant::now();
                        match phase {
                            Phase::Create => c
                                .create(&path, data, CreateMode::Persistent)
                                .await
                                .map(|_| ()),
                            Phase::Set => c.set_data(&path, data, None).await.map(|_| ()),
                            Phase::Get => c.get_data(&path).await.map(|_| ()),
                            Phase::Delete => c.delete(&path, None).await,
                        }?;
                        Ok(t.elapsed().as_micros() as u64)
                    }
                })
                .buffer_unordered(pipeline)
                .collect()
                .await;
            lat.into_iter().collect::<Result<Vec<u64>, Error>>()
        }
    });
    let mut all = Vec::with_capacity(per_session * clients.len());
    for r in futures::future::join_all(tasks).await {
        all.extend(r?);
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(PhaseResult {
        op: phase.name(),
        requests: all.len(),
        seconds,
        p50_us: percentile(&all, 0.5),
        p99_us: percentile(&all, 0.99),
        p999_us: percentile(&all, 0.999),
    })
}

/// Runs the benchmark and prints its figures.
pub async fn run(servers: &str, options: &ConnectOptions, args: BenchArgs) -> Result<(), Error> {
    let sessions = args.sessions.max(1);
    let per_session = (args.requests / sessions).max(1);
    eprintln!(
        "bench: {sessions} sessions × {per_session} requests per phase, pipeline {}, {} B values, under {}",
        args.pipeline, args.size, args.root
    );
    let mut clients = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        clients.push(Client::connect(servers, options.clone()).await?);
    }
    match clients[0]
        .create(&args.root, Vec::new(), CreateMode::Persistent)
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == warden_client::ErrorCode::NodeExists => {}
        Err(e) => return Err(e),
    }
    let mut results = Vec::new();
    for phase in [Phase::Create, Phase::Set, Phase::Get, Phase::Delete] {
        eprintln!("bench: {} ...", phase.name());
        let r = run_phase(&clients, phase, per_session, &args).await?;
        eprintln!("bench: {} done: {:.0} ops/s", r.op, r.ops_per_sec());
        results.push(r);
    }
    let _ = clients[0].delete(&args.root, None).await;
    for c in &clients {
        let _ = c.close().await;
    }
    if args.json {
        for r in &results {
            println!(
                "{}",
                serde_json::json!({
                    "op": r.op, "requests": r.requests, "seconds": r.seconds,
                    "ops_per_sec": r.ops_per_sec(), "p50_us": r.p50_us, "p99_us": r.p99_us, "p999_us": r.p999_us,
                    "sessions": sessions, "pipeline": args.pipeline, "size": args.size,
                })
            );
        }
    } else {
        println!(
            "{:<8} {:>9} {:>11} {:>9} {:>9} {:>9}",
            "op", "requests", "ops/s", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for r in &results {
            let ms = |us: u64| Duration::from_micros(us).as_secs_f64() * 1000.0;
            println!(
                "{:<8} {:>9} {:>11.0} {:>9.2} {:>9.2} {:>9.2}",
                r.op,
                r.requests,
                r.ops_per_sec(),
                ms(r.p50_us),
                ms(r.p99_us),
                ms(r.p999_us)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), 501);
        assert_eq!(percentile(&v, 0.99), 990);
        assert_eq!(percentile(&[], 0.5), 0);
    }
}
