//! A separate process that uses the lock and election recipes, for the
//! acceptance tests in `tests/tests/recipes/` (`lock.rs`, `election.rs`)
//! and `tests/tests/zookeeper/mixed_lock.rs`, which start it through
//! `warden_tests::workers::Proc::worker`.
//!
//! Every mode appends what it does to `--out FILE`, one line per event, each
//! with one `write(2)` on a file opened with `O_APPEND`, so the lines of many
//! processes never mix. Times are `CLOCK_MONOTONIC` nanoseconds, one clock
//! for every process on the machine. Lines are `KIND NS TOKEN PID [EXTRA]`.
//!
//! Modes:
//!
//! - `flash-sale --servers A --tasks N --lock P --stock P --out F
//!   [--ready DIR --go P]`: N concurrent tasks on one session; each takes
//!   the lock, reads the stock, writes stock−1 and records
//!   `SALE <ns> <token> <pid> <stock seen>` if positive, else `SOLDOUT ...`,
//!   and releases (`RELEASE_UNSURE <ns> <token> <pid>` when the release's
//!   answer was lost to a `ConnectionLoss`: the recipe deletes the node in
//!   the background, and the task carries on). With `--ready`/`--go`, it first announces itself with an
//!   ephemeral node under DIR and waits for the node GO to exist, so every
//!   process starts contending at the same moment.
//! - `hold --servers A --lock P --out F --hold-ms N --timeout-ms T
//!   [--max-acq K]`: forever (or K grants): acquire (`ACQ`), act on the
//!   protected resource every 10 ms for N ms (`ACT`, whatever the guard's
//!   state: a naive holder, which the fencing token must make harmless),
//!   then `REL` if the guard is still `Held` (`LOST` otherwise) and release.
//! - `elect --servers A --path P --out F --timeout-ms T --fence P [--id ID]`:
//!   a `LeaderLatch`; on each term `LEAD`, then every 20 ms a write of the
//!   term's token to the fenced resource FENCE (a node whose data is the
//!   highest token seen, updated by a versioned set only if the token is not
//!   smaller): `WRITE_OK`, `WRITE_REJECTED` (extra: the higher token seen) or
//!   `WRITE_ERR` (each stamped when the attempt began); after each write,
//!   `LOST` and back to waiting if the latch no longer leads. The write
//!   comes before the check on purpose: a leader paused past its session
//!   timeout writes once more with its stale token when it wakes, and the
//!   fence must reject it.
//!
//! - `latch-close --servers A --path P [--rounds N]`: N times, on a new
//!   session: a `LeaderLatch` leads, the client is closed, then the latch
//!   must close within 3 s; exit status 3 (at once, without waiting for the
//!   runtime's tasks) if it does not.
//!
//! Exit status 0 when a finite mode completes, 1 on an error (printed), 2 on
//! bad arguments.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use warden_client::recipes::{LeaderLatch, Lock, LockState};
use warden_client::{Client, ConnectOptions, CreateMode, Error, ErrorCode};
use warden_tests::workers::mono_ns;

/// An append-only record file shared by processes.
#[derive(Clone)]
struct Record {
    file: std::sync::Arc<std::fs::File>,
}

impl Record {
    fn open(path: &str) -> Record {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| fail(&format!("cannot open {path}: {e}")));
        Record {
            file: std::sync::Arc::new(file),
        }
    }

    /// Appends `KIND NS TOKEN PID [EXTRA]` with a single write, NS now.
    fn line(&self, kind: &str, token: i64, extra: &str) {
        self.line_at(kind, mono_ns(), token, extra)
    }

    /// Appends `KIND NS TOKEN PID [EXTRA]` with a single write.
    fn line_at(&self, kind: &str, ns: u64, token: i64, extra: &str) {
        let mut line = format!("{kind} {ns} {token} {}", std::process::id());
        if !extra.is_empty() {
            line.push(' ');
            line.push_str(extra);
        }
        line.push('\n');
        (&*self.file)
            .write_all(line.as_bytes())
            .unwrap_or_else(|e| fail(&format!("cannot record: {e}")));
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("recipe_worker: {msg}");
    std::process::exit(1)
}

struct Args {
    mode: String,
    opts: HashMap<String, String>,
}

impl Args {
    fn parse() -> Args {
        let mut it = std::env::args().skip(1);
        let Some(mode) = it.next() else {
            eprintln!("usage: recipe_worker flash-sale|hold|elect --key value ...");
            std::process::exit(2);
        };
        let mut opts = HashMap::new();
        while let Some(k) = it.next() {
            let Some(key) = k.strip_prefix("--") else {
                eprintln!("recipe_worker: unexpected argument {k:?}");
                std::process::exit(2);
            };
            let Some(v) = it.next() else {
                eprintln!("recipe_worker: --{key} needs a value");
                std::process::exit(2);
            };
            opts.insert(key.to_string(), v);
        }
        Args { mode, opts }
    }

    fn get(&self, key: &str) -> String {
        self.opts.get(key).cloned().unwrap_or_else(|| {
            eprintln!("recipe_worker {}: --{key} is required", self.mode);
            std::process::exit(2);
        })
    }

    fn opt(&self, key: &str) -> Option<String> {
        self.opts.get(key).cloned()
    }

    fn num(&self, key: &str, default: u64) -> u64 {
        match self.opts.get(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("recipe_worker: --{key} {v:?} is not a number");
                std::process::exit(2);
            }),
        }
    }
}

async fn connect(args: &Args) -> Client {
    let opts = ConnectOptions {
        session_timeout: Duration::from_millis(args.num("timeout-ms", 10_000)),
        client_name: format!("recipe_worker/{}", std::process::id()),
        ..ConnectOptions::default()
    };
    Client::connect(&args.get("servers"), opts)
        .await
        .unwrap_or_else(|e| fail(&format!("connect: {e}")))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let result = match args.mode.as_str() {
        "flash-sale" => flash_sale(&args).await,
        "hold" => hold(&args).await,
        "elect" => elect(&args).await,
        "latch-close" => latch_close(&args).await,
        other => {
            eprintln!("recipe_worker: unknown mode {other:?}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        fail(&e.to_string());
    }
}

/// Announces this process under `ready` and waits for `go` to exist.
async fn start_together(client: &Client, ready: &str, go: &str) -> Result<(), Error> {
    let me = format!("{ready}/{}", std::process::id());
    client
        .create(&me, Vec::new(), CreateMode::Ephemeral)
        .await?;
    loop {
        let (stat, watch) = client.exists_w(go).await?;
        if stat.is_some() {
            return Ok(());
        }
        watch.await?;
    }
}

async fn flash_sale(args: &Args) -> Result<(), Error> {
    let client = connect(args).await;
    let record = Record::open(&args.get("out"));
    let lock = Lock::new(&client, &args.get("lock"));
    let stock = args.get("stock");
    if let (Some(ready), Some(go)) = (args.opt("ready"), args.opt("go")) {
        start_together(&client, &ready, &go).await?;
    }
    let mut tasks = Vec::new();
    for _ in 0..args.num("tasks", 30) {
        let (client, lock, stock, record) =
            (client.clone(), lock.clone(), stock.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            let mut guard = lock.acquire().await?;
            let token = guard.fencing_token();
            let (data, _) = client.get_data(&stock).await?;
            let text = String::from_utf8_lossy(&data).into_owned();
            let seen: i64 = text
                .trim()
                .parse()
                .map_err(|_| Error::new(ErrorCode::SystemError, format!("stock is {text:?}")))?;
            if seen > 0 {
                // Unconditional on purpose: only the lock prevents overselling.
                client
                    .set_data(&stock, (seen - 1).to_string(), None)
                    .await?;
                record.line("SALE", token, &seen.to_string());
            } else {
                record.line("SOLDOUT", token, &seen.to_string());
            }
            if guard.state() != LockState::Held {
                record.line("NOT_HELD", token, &format!("{:?}", guard.state()));
            }
            match guard.release().await {
                // The delete's answer was lost (its member, or the leader it
                // went through, died): it may or may not have happened, and
                // the recipe finishes it in the background. The buyer is done.
                Err(e) if e.is_connection_loss() => {
                    record.line("RELEASE_UNSURE", token, "");
                    Ok(())
                }
                r => r,
            }
        }));
    }
    for t in tasks {
        match t.await {
            Ok(r) => r?,
            Err(e) => return Err(Error::new(ErrorCode::SystemError, e.to_string())),
        }
    }
    client.close().await
}

async fn hold(args: &Args) -> Result<(), Error> {
    let client = connect(args).await;
    let record = Record::open(&args.get("out"));
    let lock = Lock::new(&client, &args.get("lock")).with_data(std::process::id().to_string());
    let hold = Duration::from_millis(args.num("hold-ms", 100));
    let max_acq = args.num("max-acq", u64::MAX);
    let mut grants = 0;
    while grants < max_acq {
        let mut guard = match lock.acquire().await {
            Ok(g) => g,
            Err(e) => {
                record.line("ERR", 0, &e.to_string().replace(' ', "_"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        grants += 1;
        let token = guard.fencing_token();
        record.line("ACQ", token, "");
        let end = tokio::time::Instant::now() + hold;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
            record.line("ACT", token, &format!("{:?}", guard.state()));
        }
        match guard.state() {
            LockState::Held => record.line("REL", token, ""),
            other => record.line("LOST", token, &format!("{other:?}")),
        }
        if let Err(e) = guard.release().await {
            record.line("ERR", token, &e.to_string().replace(' ', "_"));
        }
    }
    client.close().await
}

/// The outcome of one write to the fenced resource.
enum Fenced {
    Accepted,
    Rejected(i64),
}

/// Writes `token` to the fence node if it is not smaller than the highest
/// token the node has seen: read, compare, set at the version read (retried
/// on `BadVersion` and on connection trouble).
async fn fenced_write(client: &Client, fence: &str, token: i64) -> Result<Fenced, Error> {
    let mut last = Error::new(ErrorCode::SystemError, "no attempt");
    for _ in 0..200 {
        match client.get_data(fence).await {
            Ok((data, stat)) => {
                let highest: i64 = String::from_utf8_lossy(&data).trim().parse().unwrap_or(0);
                if token < highest {
                    return Ok(Fenced::Rejected(highest));
                }
                match client
                    .set_data(fence, token.to_string(), Some(stat.version))
                    .await
                {
                    Ok(_) => return Ok(Fenced::Accepted),
                    Err(e) if e.code() == ErrorCode::BadVersion => continue,
                    Err(e) => last = e,
                }
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last)
}

async fn elect(args: &Args) -> Result<(), Error> {
    let client = connect(args).await;
    let record = Record::open(&args.get("out"));
    let fence = args.get("fence");
    let id = args
        .opt("id")
        .unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let latch = LeaderLatch::start(&client, &args.get("path"), &id);
    loop {
        let term = latch.await_leadership().await?;
        record.line("LEAD", term.token, "");
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            // Stamped when the attempt starts: a write that completes
            // after a pause still counts as begun before it.
            let began = mono_ns();
            match fenced_write(&client, &fence, term.token).await {
                Ok(Fenced::Accepted) => record.line_at("WRITE_OK", began, term.token, ""),
                Ok(Fenced::Rejected(h)) => {
                    record.line_at("WRITE_REJECTED", began, term.token, &h.to_string())
                }
                Err(e) => record.line_at(
                    "WRITE_ERR",
                    began,
                    term.token,
                    &e.to_string().replace(' ', "_"),
                ),
            }
            if latch.term().as_ref() != Some(&term) {
                record.line("LOST", term.token, "");
                break;
            }
        }
    }
}

async fn latch_close(args: &Args) -> Result<(), Error> {
    let path = args.get("path");
    for round in 0..args.num("rounds", 5) {
        let client = connect(args).await;
        let latch = LeaderLatch::start(&client, &format!("{path}/{round}"), "closing");
        match tokio::time::timeout(Duration::from_secs(10), latch.await_leadership()).await {
            Ok(r) => {
                r?;
            }
            Err(_) => fail(&format!("round {round}: no leadership within 10 s")),
        }
        client.close().await?;
        if tokio::time::timeout(Duration::from_secs(3), latch.close())
            .await
            .is_err()
        {
            eprintln!(
                "recipe_worker: round {round}: LeaderLatch::close() did not return within 3 s \
                 after Client::close()"
            );
            // A task that never yields would keep the runtime from shutting down.
            std::process::exit(3);
        }
    }
    Ok(())
}
