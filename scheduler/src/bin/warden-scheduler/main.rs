//! `warden-scheduler`: runs a scheduler member and manages jobs.
//!
//! `run` is here; `job ...` (job management) is in `cli`.

mod cli;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use warden_client::{Client, ConnectOptions};
use warden_scheduler::cluster::default_member_id;
use warden_scheduler::{Listeners, Member, MemberConfig, Registry, Store};

/// Warden's distributed job scheduler.
#[derive(Debug, Parser)]
#[command(name = "warden-scheduler", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scheduler member: it registers in the cluster, takes part in the
    /// leader election, and runs the jobs it is assigned until SIGINT/SIGTERM.
    ///
    /// Start one on each machine that should run jobs; all members of a
    /// cluster share its jobs and split the work. Example:
    ///
    ///   warden-scheduler run --servers 10.0.0.1:7181,10.0.0.2:7181 --cluster prod
    Run(RunArgs),
    /// Manage jobs: add, apply (a TOML jobs file), list, show, pause, resume,
    /// trigger, remove, history. Reads print tables; add --json for scripts.
    Job(cli::JobArgs),
}

/// Options of `run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Warden servers, `host:port[,host:port...]`.
    #[arg(long, env = "WARDEN_SERVERS", default_value = "127.0.0.1:7181")]
    servers: String,
    /// The cluster to join (its data lives under /warden/scheduler/<cluster>).
    #[arg(long, env = "WARDEN_SCHEDULER_CLUSTER", default_value = "default")]
    cluster: String,
    /// This member's id, unique in the cluster [default: <hostname>-<pid>].
    #[arg(long)]
    id: Option<String>,
    /// A TOML file of jobs to create or update at start.
    #[arg(long, value_name = "FILE")]
    jobs: Option<PathBuf>,
    /// Session timeout in milliseconds: how long after this process stops
    /// answering the cluster treats it as gone and re-runs or records its jobs.
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    session_timeout_ms: u64,
    /// Authenticate the session: SCHEME:CREDENTIALS, e.g.
    /// digest:scheduler:secret (repeatable), for a cluster folder whose
    /// ACL admits only that user
    #[arg(long, env = "WARDEN_AUTH", value_name = "SCHEME:CREDENTIALS",
          value_parser = warden_client::parse_auth)]
    auth: Vec<(String, Vec<u8>)>,
    #[command(flatten)]
    tls: warden_client::tls::TlsArgs,
}

fn main() {
    let cli = Cli::parse();
    // `job ...` prints its own results; only warnings go to its stderr.
    let default_log_level = match cli.command {
        Command::Job(_) => "warn",
        Command::Run(_) => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warden-scheduler: could not start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Job(args) => cli::run(args).await.map_err(|e| anyhow::anyhow!("{e}")),
        }
    });
    if let Err(e) = result {
        eprintln!("warden-scheduler: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let id = args.id.unwrap_or_else(default_member_id);
    // A bad jobs file fails before anything connects.
    let jobs = args
        .jobs
        .as_deref()
        .map(|path| warden_scheduler::jobs_file::load(path).map(|defs| (path, defs)))
        .transpose()?;
    let opts = ConnectOptions {
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        client_name: format!("warden-scheduler/{id}"),
        auth: args.auth.clone(),
        tls: args.tls.options()?,
        ..ConnectOptions::default()
    };
    let client = Client::connect(&args.servers, opts)
        .await
        .with_context(|| format!("connecting to {}", args.servers))?;
    if let Some((path, defs)) = &jobs {
        let store = Store::new(&client, &args.cluster)?;
        store.init().await?;
        apply_jobs_file(&store, path, defs).await?;
    }
    let mut config = MemberConfig::new(&args.cluster);
    config.id = id;
    let member = Member::start(&client, config, Registry::new(), Listeners::logging()).await?;
    let mut states = client.state_changes();
    let log_states = async {
        while let Some(s) = states.next().await {
            tracing::info!(state = %s, "connection state");
        }
    };
    tokio::select! {
        () = log_states => {}
        () = stop_signal() => {}
    }
    member.shutdown().await;
    let _ = client.close().await;
    Ok(())
}

/// Upserts the jobs of a TOML jobs file; equal definitions are not rewritten.
async fn apply_jobs_file(
    store: &Store,
    path: &std::path::Path,
    defs: &[warden_scheduler::admin::JobDef],
) -> anyhow::Result<()> {
    let applied = warden_scheduler::admin::apply(store, defs)
        .await
        .with_context(|| format!("--jobs {}", path.display()))?;
    tracing::info!(file = %path.display(), jobs = applied.len(), "jobs file applied");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
    }
}
