//! `warden lock` and `warden elect`: run a command while holding a lock, or
//! only while leader.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::process::{Child, Command};
use warden_client::recipes::{LeaderLatch, Lock};
use warden_client::{Client, Error, ErrorCode};

/// Options of `warden lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock: a path, or a name kept under /warden/locks
    pub name: String,
    /// Give up if the lock is not granted within this many ms (exit status 3)
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Options of `warden elect`.
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election: a path, or a name kept under /warden/elections
    pub name: String,
    /// This candidate's id, stored in its node [default: host:pid]
    #[arg(long)]
    pub id: Option<String>,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn resolve(name: &str, base: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

fn candidate_id() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "host".into());
    format!("{}:{}", host.trim(), std::process::id())
}

fn spawn(command: &[String], token: i64, path: &str) -> Result<Child, Error> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("WARDEN_FENCING_TOKEN", token.to_string())
        .env("WARDEN_NODE", path)
        .kill_on_drop(true);
    // SAFETY: prctl in the forked child before exec only sets a process
    // attribute; it allocates nothing and touches no shared state. It makes
    // the command die with warden even on SIGKILL, so it never outlives the
    // lock or leadership it was started under.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        Error::new(
            ErrorCode::BadArguments,
            format!("cannot run {}: {e}", command[0]),
        )
    })
}

/// SIGTERM, then SIGKILL after a grace period.
async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's pid has no memory-safety concerns.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

fn exit_of(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(c) => ExitCode::from(c.clamp(0, 255) as u8),
        None => ExitCode::from(128),
    }
}

/// Runs the command while holding the lock; exits with its status.
pub async fn lock(client: &Client, args: LockArgs) -> Result<ExitCode, Error> {
    let path = resolve(&args.name, "/warden/locks");
    let lock = Lock::new(client, &path).with_data(candidate_id());
    let mut guard = match args.timeout {
        Some(ms) => match lock.acquire_timeout(Duration::from_millis(ms)).await? {
            Some(g) => g,
            None => {
                eprintln!("error: the lock {path} was not granted within {ms} ms");
                return Ok(ExitCode::from(3));
            }
        },
        None => lock.acquire().await?,
    };
    let mut child = spawn(&args.command, guard.fencing_token(), guard.path())?;
    let code = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| Error::new(ErrorCode::SystemError, format!("waiting for the command: {e}")))?;
            exit_of(status)
        }
        _ = guard.lost() => {
            eprintln!("error: lost the lock {path} (session expired or node deleted); stopping the command");
            stop(&mut child).await;
            return Ok(ExitCode::from(1));
        }
        _ = tokio::signal::ctrl_c() => {
            stop(&mut child).await;
            ExitCode::from(130)
        }
    };
    guard.release().await?;
    Ok(code)
}

/// Runs the command only while leader; exits with its status when it ends.
pub async fn elect(client: &Client, args: ElectArgs) -> Result<ExitCode, Error> {
    let path = resolve(&args.name, "/warden/elections");
    let id = args.id.unwrap_or_else(candidate_id);
    let latch = LeaderLatch::start(client, &path, &id);
    loop {
        let term = tokio::select! {
            t = latch.await_leadership() => t?,
            _ = tokio::signal::ctrl_c() => {
                latch.close().await;
                return Ok(ExitCode::from(130));
            }
        };
        eprintln!(
            "elect: leading {path} (token {}); starting the command",
            term.token
        );
        let mut child = spawn(&args.command, term.token, &term.path)?;
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| Error::new(ErrorCode::SystemError, format!("waiting for the command: {e}")))?;
                latch.close().await;
                return Ok(exit_of(status));
            }
            _ = latch.lost() => {
                eprintln!("elect: lost leadership of {path}; stopping the command and waiting to lead again");
                stop(&mut child).await;
            }
            _ = tokio::signal::ctrl_c() => {
                stop(&mut child).await;
                latch.close().await;
                return Ok(ExitCode::from(130));
            }
        }
    }
}
