//! The `warden-server` binary: parse flags, set up logging, serve until
//! SIGINT or SIGTERM.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use warden_server::config::{Cli, Command, Config};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(Command::Digest { user_password }) = &cli.command {
        println!("{}", warden_server::digest(user_password));
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(Command::Replay { data_dir, upto }) = cli.command {
        return match warden_server::replay::replay(&data_dir, upto) {
            Ok(r) => {
                println!(
                    "last_applied={} state_hash={:016x} znodes={} sessions={}",
                    r.last_applied, r.state_hash, r.znodes, r.sessions
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let config = match Config::resolve(&cli.run) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(warden_server::server::run(config, shutdown_signal())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
