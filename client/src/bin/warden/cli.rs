//! The `warden` command line: arguments, and one function per subcommand.
//!
//! Adding a subcommand (e.g. `bench`): add a variant to [`Command`] with its
//! own `Args` struct, and an arm in [`dispatch`]. Each handler gets a
//! [`Context`] holding the connected client plus the connect string and
//! options, so a command that needs more sessions can open them itself.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use futures::{StreamExt, TryStreamExt};
use warden_client::path::join;
use warden_client::tls::TlsArgs;
use warden_client::{
    Acl, AddWatchMode, Client, ConnectOptions, CreateMode, CreateOptions, Error, ErrorCode, Stat,
};

/// How many requests `ls -R` and `delete -r` keep in flight.
const TREE_CONCURRENCY: usize = 256;

/// Read, write and watch znodes on a Warden ensemble.
#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    after_help = "Exit status: 0 success, 1 the operation failed, 2 no server could be reached."
)]
pub struct Cli {
    /// Servers to connect to: host:port[,host:port...][/chroot]
    #[arg(
        long,
        global = true,
        env = "WARDEN_SERVERS",
        default_value = "127.0.0.1:7181",
        value_name = "HOSTS"
    )]
    pub servers: String,

    /// Session timeout to ask for, in milliseconds
    #[arg(long, global = true, default_value_t = 10_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// Authenticate the session, as zkCli's addauth: SCHEME:CREDENTIALS,
    /// e.g. digest:alice:secret (repeatable)
    #[arg(long, global = true, env = "WARDEN_AUTH", value_name = "SCHEME:CREDENTIALS",
          value_parser = warden_client::parse_auth)]
    pub auth: Vec<(String, Vec<u8>)>,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each variant's doc line is its `--help` summary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a node's children, one per line, sorted
    Ls(LsArgs),
    /// Print a node's data, followed by a newline
    Get(PathArg),
    /// Print a node's stat, one `name = value` per line
    Stat(PathArg),
    /// Print a node's ACL, one `scheme:id:perms` entry per line (perms as
    /// zkCli writes them: cdrwa)
    Getacl(PathArg),
    /// Replace a node's ACL: entries scheme:id:perms separated by commas,
    /// e.g. world:anyone:r,digest:alice:HASH:cdrwa, or auth::cdrwa
    Setacl(SetaclArgs),
    /// Create a node and print its path
    Create(CreateArgs),
    /// Replace a node's data
    Set(SetArgs),
    /// Delete a node (with -r, its whole subtree)
    Delete(DeleteArgs),
    /// Print one line per event on a node (or subtree) until interrupted
    Watch(WatchArgs),
    /// Measure create, set, get and delete throughput with many sessions
    Bench(crate::bench::BenchArgs),
    /// Run a command while holding a lock; exit with its status
    Lock(crate::exec::LockArgs),
    /// Run a command only while leader of an election, stopping it on loss
    Elect(crate::exec::ElectArgs),
    /// Ask every member in --servers for its view of the ensemble (role,
    /// term, leader, log, commit and apply indexes, lag); opens no session
    Status(StatusArgs),
    /// List, add, remove or promote the ensemble's members
    #[command(subcommand)]
    Member(crate::member::MemberCommand),
    /// Hand leadership to another member
    #[command(subcommand)]
    Leader(crate::member::LeaderCommand),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One JSON object per member instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetaclArgs {
    /// The node's path
    pub path: String,
    /// The new ACL
    #[arg(value_parser = parse_acl)]
    pub acl: AclList,
    /// Only if the node's ACL version is this
    #[arg(long)]
    pub version: Option<i32>,
}

/// An ACL as given on the command line.
#[derive(Debug, Clone)]
pub struct AclList(pub Vec<Acl>);

const PERM_LETTERS: [(char, i32); 5] = [
    ('c', Acl::CREATE),
    ('d', Acl::DELETE),
    ('r', Acl::READ),
    ('w', Acl::WRITE),
    ('a', Acl::ADMIN),
];

/// zkCli's ACL syntax: `scheme:id:perms[,…]`; the id may hold colons (a
/// digest's `user:hash`), the perms are the last field.
fn parse_acl(s: &str) -> Result<AclList, String> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (head, perms) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry:?}: write scheme:id:perms, e.g. world:anyone:cdrwa"))?;
        let (scheme, id) = head
            .split_once(':')
            .ok_or_else(|| format!("{entry:?}: write scheme:id:perms, e.g. world:anyone:cdrwa"))?;
        let mut bits = 0;
        for ch in perms.chars() {
            let (_, bit) = PERM_LETTERS
                .iter()
                .find(|(c, _)| *c == ch)
                .ok_or_else(|| format!("{entry:?}: {ch:?} is not one of c, d, r, w, a"))?;
            bits |= bit;
        }
        out.push(Acl {
            perms: bits,
            scheme: scheme.to_string(),
            id: id.to_string(),
        });
    }
    if out.is_empty() {
        return Err("an empty ACL".into());
    }
    Ok(AclList(out))
}

/// Permission bits as zkCli prints them (`cdrwa` order).
fn perm_letters(bits: i32) -> String {
    PERM_LETTERS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(c, _)| *c)
        .collect()
}

#[derive(Debug, Args)]
pub struct PathArg {
    /// The node's path, e.g. /app/config
    pub path: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print the full path of PATH and every descendant, breadth first
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// The node whose children to list
    pub path: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Ephemeral: deleted when this command's session ends
    #[arg(short = 'e', long, conflicts_with_all = ["container", "ttl"])]
    pub ephemeral: bool,
    /// Sequential: append a unique, increasing 10-digit suffix
    #[arg(short = 's', long, conflicts_with = "container")]
    pub sequential: bool,
    /// Container: deleted by the server once its last child is gone
    #[arg(long)]
    pub container: bool,
    /// Time to live in milliseconds: deleted when unmodified and childless that long
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl: Option<u64>,
    /// Null data, not empty (ZooKeeper's create(path, null); `get` prints `null`)
    #[arg(long, conflicts_with = "data")]
    pub null: bool,
    /// The new node's path
    pub path: String,
    /// The new node's data (default: empty)
    #[arg(allow_hyphen_values = true)]
    pub data: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Set null data, not empty (ZooKeeper's setData(path, null))
    #[arg(long, conflicts_with = "data")]
    pub null: bool,
    /// The node's path
    pub path: String,
    /// The new data
    #[arg(allow_hyphen_values = true, required_unless_present = "null")]
    pub data: Option<String>,
    /// Only if the node is at this data version
    #[arg(long, value_name = "V", allow_hyphen_values = true)]
    pub version: Option<i32>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Delete the whole subtree, children first
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// The node's path
    pub path: String,
    /// Only if the node is at this data version
    #[arg(long, value_name = "V", allow_hyphen_values = true)]
    pub version: Option<i32>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch the whole subtree (persistent recursive watch)
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// The node to watch (it need not exist yet)
    pub path: String,
}

/// What every subcommand runs with.
pub struct Context {
    /// A session opened from `servers` and `options`.
    pub client: Client,
    /// The connect string, as given (subcommands such as bench open more sessions).
    pub servers: String,
    /// The options `client` was opened with.
    pub options: ConnectOptions,
}

/// Why the command failed; decides the message and the exit code.
#[derive(Debug)]
pub enum CliError {
    /// No session could be opened (exit 2).
    Connect { servers: String, error: Error },
    /// The operation failed (exit 1).
    Op(Error),
    /// Writing the output failed (exit 1; a closed pipe is not an error).
    Output(io::Error),
    /// A command run by `lock` or `elect` ended with this status.
    Exit(ExitCode),
    /// No member answered (exit 2).
    Unreachable(String),
    /// A member refused an administrative request (exit 1).
    Refused(String),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Op(e)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Output(e)
    }
}

impl CliError {
    fn message(&self) -> String {
        match self {
            CliError::Connect {
                error: Error::NoServer { servers: tried, last_error },
                ..
            } => format!(
                "could not connect to any of {} (last error: {last_error}); \
                 check --servers or WARDEN_SERVERS (and --tls-ca if the servers speak TLS)",
                tried.join(",")
            ),
            CliError::Connect { error, .. } if error.code() == ErrorCode::AuthFailed => {
                format!("{error}; check --auth or WARDEN_AUTH")
            }
            CliError::Connect { servers, error } => format!(
                "could not open a session with {servers:?}: {error}; check --servers or WARDEN_SERVERS"
            ),
            CliError::Op(e) => e.to_string(),
            CliError::Output(e) => format!("cannot write output: {e}"),
            CliError::Exit(_) => String::new(),
            CliError::Unreachable(why) => format!(
                "no member answered ({why}); check --servers or WARDEN_SERVERS"
            ),
            CliError::Refused(why) => why.clone(),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Connect { error, .. } if error.code() == ErrorCode::AuthFailed => {
                ExitCode::from(1)
            }
            CliError::Connect { .. } | CliError::Unreachable(_) => ExitCode::from(2),
            CliError::Exit(code) => *code,
            _ => ExitCode::from(1),
        }
    }
}

/// Connects, runs the command, closes the session, and reports.
pub async fn run(cli: Cli) -> ExitCode {
    match execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(CliError::Exit(code)) => code,
        Err(e) => {
            let _ = writeln!(io::stderr().lock(), "error: {}", e.message());
            e.exit_code()
        }
    }
}

async fn execute(cli: Cli) -> Result<(), CliError> {
    let tls = cli.tls.options()?;
    match cli.command {
        Command::Status(args) => {
            return crate::status::run(&cli.servers, tls.as_ref(), args.json).await
        }
        Command::Member(c) => return crate::member::member(&cli.servers, tls.as_ref(), c).await,
        Command::Leader(c) => return crate::member::leader(&cli.servers, tls.as_ref(), c).await,
        _ => {}
    }
    let options = ConnectOptions {
        session_timeout: Duration::from_millis(cli.timeout_ms),
        client_name: format!("warden-cli/{}", env!("CARGO_PKG_VERSION")),
        auth: cli.auth.clone(),
        tls,
        ..ConnectOptions::default()
    };
    let client = Client::connect(&cli.servers, options.clone())
        .await
        .map_err(|error| CliError::Connect {
            servers: cli.servers.clone(),
            error,
        })?;
    let ctx = Context {
        client,
        servers: cli.servers,
        options,
    };
    let result = dispatch(&ctx, cli.command).await;
    // Always end the session, so ephemerals go at once; the command's own
    // outcome is what gets reported.
    let closed = ctx.client.close().await;
    if let Err(e) = &closed {
        tracing::debug!(error = %e, "closing the session failed");
    }
    result
}

/// Runs one subcommand.
pub async fn dispatch(ctx: &Context, command: Command) -> Result<(), CliError> {
    match command {
        Command::Ls(args) => ls(ctx, args).await,
        Command::Get(args) => get(ctx, args).await,
        Command::Stat(args) => stat(ctx, args).await,
        Command::Getacl(args) => getacl(ctx, args).await,
        Command::Setacl(args) => {
            let stat = ctx
                .client
                .set_acl(&args.path, args.acl.0, args.version)
                .await?;
            print_lines(&[format!("aclVersion = {}", stat.aversion)])
        }
        Command::Create(args) => create(ctx, args).await,
        Command::Set(args) => set(ctx, args).await,
        Command::Delete(args) => delete(ctx, args).await,
        Command::Watch(args) => watch(ctx, args).await,
        Command::Bench(args) => Ok(crate::bench::run(&ctx.servers, &ctx.options, args).await?),
        Command::Lock(args) => Err(CliError::Exit(crate::exec::lock(&ctx.client, args).await?)),
        Command::Elect(args) => Err(CliError::Exit(crate::exec::elect(&ctx.client, args).await?)),
        Command::Status(args) => {
            crate::status::run(&ctx.servers, ctx.options.tls.as_ref(), args.json).await
        }
        Command::Member(c) => {
            crate::member::member(&ctx.servers, ctx.options.tls.as_ref(), c).await
        }
        Command::Leader(c) => {
            crate::member::leader(&ctx.servers, ctx.options.tls.as_ref(), c).await
        }
    }
}

async fn ls(ctx: &Context, args: LsArgs) -> Result<(), CliError> {
    let client = &ctx.client;
    let mut children = client.get_children(&args.path).await?;
    children.sort();
    if !args.recursive {
        return print_lines(&children);
    }
    print_lines(std::slice::from_ref(&args.path))?;
    let mut level: Vec<String> = children.iter().map(|c| join(&args.path, c)).collect();
    while !level.is_empty() {
        print_lines(&level)?;
        level = next_level(client, level).await?;
    }
    Ok(())
}

/// Prints each item on its own line and flushes (the stdout lock is never
/// held across an await).
pub fn print_lines(lines: &[String]) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(out.flush()?)
}

/// The children (full paths, each parent's sorted) of every node in
/// `level`, in order. Nodes deleted meanwhile are skipped.
async fn next_level(client: &Client, level: Vec<String>) -> Result<Vec<String>, Error> {
    let lists: Vec<(String, Option<Vec<String>>)> = futures::stream::iter(level)
        .map(|path| async move {
            match client.get_children(&path).await {
                Ok(mut children) => {
                    children.sort();
                    Ok((path, Some(children)))
                }
                Err(e) if e.code() == ErrorCode::NoNode => Ok((path, None)),
                Err(e) => Err(e),
            }
        })
        .buffered(TREE_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(lists
        .into_iter()
        .flat_map(|(parent, children)| {
            children
                .unwrap_or_default()
                .into_iter()
                .map(move |c| join(&parent, &c))
        })
        .collect())
}

async fn get(ctx: &Context, args: PathArg) -> Result<(), CliError> {
    let (data, _) = ctx.client.get_data_nullable(&args.path).await?;
    let mut out = io::stdout().lock();
    // Null data prints as zkCli prints it.
    out.write_all(data.as_deref().unwrap_or(b"null"))?;
    out.write_all(b"\n")?;
    Ok(out.flush()?)
}

async fn getacl(ctx: &Context, args: PathArg) -> Result<(), CliError> {
    let (acl, _) = ctx.client.get_acl(&args.path).await?;
    let lines: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.scheme, a.id, perm_letters(a.perms)))
        .collect();
    print_lines(&lines)
}

async fn stat(ctx: &Context, args: PathArg) -> Result<(), CliError> {
    let Some(stat) = ctx.client.exists(&args.path).await? else {
        return Err(Error::new(ErrorCode::NoNode, args.path).into());
    };
    let mut out = io::stdout().lock();
    out.write_all(format_stat(&stat).as_bytes())?;
    Ok(out.flush()?)
}

/// A stat as ZooKeeper's CLI names its fields: zxids and times in decimal
/// (times in milliseconds since the epoch), the owner session in hex.
pub fn format_stat(stat: &Stat) -> String {
    let fields: [(&str, String); 11] = [
        ("cZxid", stat.czxid.to_string()),
        ("ctime", stat.ctime.to_string()),
        ("mZxid", stat.mzxid.to_string()),
        ("mtime", stat.mtime.to_string()),
        ("pZxid", stat.pzxid.to_string()),
        ("cversion", stat.cversion.to_string()),
        ("dataVersion", stat.version.to_string()),
        ("aclVersion", stat.aversion.to_string()),
        ("ephemeralOwner", format!("{:#x}", stat.ephemeral_owner)),
        ("dataLength", stat.data_length.to_string()),
        ("numChildren", stat.num_children.to_string()),
    ];
    fields
        .iter()
        .map(|(name, value)| format!("{name} = {value}\n"))
        .collect()
}

/// The create mode (and TTL) the flags ask for.
pub fn create_options(args: &CreateArgs) -> CreateOptions {
    let mode = match (args.ephemeral, args.sequential, args.container, args.ttl) {
        (_, _, true, _) => CreateMode::Container,
        (true, true, _, _) => CreateMode::EphemeralSequential,
        (true, false, _, _) => CreateMode::Ephemeral,
        (false, true, _, Some(_)) => CreateMode::PersistentSequentialWithTtl,
        (false, false, _, Some(_)) => CreateMode::PersistentWithTtl,
        (false, true, _, None) => CreateMode::PersistentSequential,
        (false, false, _, None) => CreateMode::Persistent,
    };
    let options = CreateOptions::new(mode);
    match args.ttl {
        Some(ms) if mode.is_ttl() => options.with_ttl(Duration::from_millis(ms)),
        _ => options,
    }
}

async fn create(ctx: &Context, args: CreateArgs) -> Result<(), CliError> {
    let options = create_options(&args);
    let data = args.data.unwrap_or_default().into_bytes();
    let created = if args.null {
        ctx.client.create_null(&args.path, options).await?.0
    } else if options.ttl.is_some() {
        ctx.client.create_with(&args.path, data, options).await?.0
    } else {
        ctx.client.create(&args.path, data, options.mode).await?
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{created}")?;
    Ok(out.flush()?)
}

async fn set(ctx: &Context, args: SetArgs) -> Result<(), CliError> {
    match args.data {
        Some(data) if !args.null => {
            ctx.client
                .set_data(&args.path, data.into_bytes(), args.version)
                .await?
        }
        _ => ctx.client.set_data_null(&args.path, args.version).await?,
    };
    Ok(())
}

async fn delete(ctx: &Context, args: DeleteArgs) -> Result<(), CliError> {
    let client = &ctx.client;
    if !args.recursive {
        return Ok(client.delete(&args.path, args.version).await?);
    }
    // Collect the subtree level by level, then delete the deepest level
    // first, so every node is childless when its turn comes.
    let mut children = client.get_children(&args.path).await?;
    children.sort();
    let mut levels = Vec::new();
    let mut level: Vec<String> = children.iter().map(|c| join(&args.path, c)).collect();
    while !level.is_empty() {
        let next = next_level(client, level.clone()).await?;
        levels.push(level);
        level = next;
    }
    for level in levels.into_iter().rev() {
        futures::stream::iter(level)
            .map(|path| async move {
                match client.delete(&path, None).await {
                    Err(e) if e.code() != ErrorCode::NoNode => Err(e),
                    _ => Ok(()),
                }
            })
            .buffer_unordered(TREE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
    }
    if args.path != "/" {
        client.delete(&args.path, args.version).await?;
    }
    Ok(())
}

async fn watch(ctx: &Context, args: WatchArgs) -> Result<(), CliError> {
    let mode = if args.recursive {
        AddWatchMode::PersistentRecursive
    } else {
        AddWatchMode::Persistent
    };
    let mut events = ctx.client.add_watch(&args.path, mode).await?;
    let mut out = io::stdout();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(event) => {
                    let mut lock = out.lock();
                    writeln!(lock, "{} {}", event.event_type, event.path)?;
                    lock.flush()?;
                }
                None => {
                    return match events.end_reason() {
                        Some(e) => Err(e.clone().into()),
                        // The watch was removed (by another tool): done.
                        None => Ok(()),
                    };
                }
            },
            () = &mut stop => {
                out.flush()?;
                return Ok(());
            }
        }
    }
}

/// Resolves on Ctrl-C (or SIGTERM on Unix).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Cannot listen for Ctrl-C: never resolve, the default handler stays.
            futures::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    term.recv().await;
                }
                Err(_) => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("warden").chain(args.iter().copied()))
    }

    #[test]
    fn acls_and_auth_parse_as_zkcli_writes_them() {
        let AclList(acl) = parse_acl("world:anyone:r, digest:alice:abc=:cdrwa,auth::cd").unwrap();
        assert_eq!(
            acl.iter()
                .map(|a| (a.scheme.as_str(), a.id.as_str(), a.perms))
                .collect::<Vec<_>>(),
            vec![
                ("world", "anyone", Acl::READ),
                ("digest", "alice:abc=", Acl::ALL),
                ("auth", "", Acl::CREATE | Acl::DELETE)
            ]
        );
        assert_eq!(perm_letters(Acl::ALL), "cdrwa");
        assert_eq!(perm_letters(Acl::READ | Acl::ADMIN), "ra");
        for bad in ["", "world", "world:anyone:x", "nocolon"] {
            assert!(parse_acl(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            warden_client::parse_auth("digest:alice:pw").unwrap(),
            ("digest".to_string(), b"alice:pw".to_vec())
        );
        assert!(warden_client::parse_auth("nocolon").is_err());
        let cli = parse(&["--auth", "digest:a:b", "getacl", "/x"]).unwrap();
        assert_eq!(cli.auth.len(), 1);
    }

    fn create_args(args: &[&str]) -> CreateArgs {
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        match parse(&all).map(|c| c.command) {
            Ok(Command::Create(a)) => a,
            other => panic!("not a create: {other:?}"),
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn create_flags_pick_the_mode() {
        let mode = |args: &[&str]| create_options(&create_args(args)).mode;
        assert_eq!(mode(&["/a"]), CreateMode::Persistent);
        assert_eq!(mode(&["-e", "/a"]), CreateMode::Ephemeral);
        assert_eq!(mode(&["-s", "/a"]), CreateMode::PersistentSequential);
        assert_eq!(mode(&["-e", "-s", "/a"]), CreateMode::EphemeralSequential);
        assert_eq!(mode(&["-es", "/a"]), CreateMode::EphemeralSequential);
        assert_eq!(mode(&["--container", "/a"]), CreateMode::Container);
        assert_eq!(mode(&["--ttl", "500", "/a"]), CreateMode::PersistentWithTtl);
        assert_eq!(
            mode(&["-s", "--ttl", "500", "/a"]),
            CreateMode::PersistentSequentialWithTtl
        );
        let opts = create_options(&create_args(&["--ttl", "500", "/a", "data"]));
        assert_eq!(opts.ttl, Some(Duration::from_millis(500)));
        assert!(parse(&["create", "-e", "--ttl", "5", "/a"]).is_err());
        assert!(parse(&["create", "-e", "--container", "/a"]).is_err());
        assert!(parse(&["create", "--ttl", "0", "/a"]).is_err());
        let a = create_args(&["/a", "-1"]);
        assert_eq!(a.data.as_deref(), Some("-1"));
    }

    #[test]
    fn global_options_and_defaults() {
        let cli = parse(&["ls", "/"]).unwrap();
        assert_eq!(cli.timeout_ms, 10_000);
        let cli = parse(&["--servers", "h:1/app", "ls", "-R", "/"]).unwrap();
        assert_eq!(cli.servers, "h:1/app");
        match cli.command {
            Command::Ls(a) => assert!(a.recursive),
            other => panic!("{other:?}"),
        }
        let cli = parse(&[
            "delete",
            "-r",
            "/a",
            "--version",
            "3",
            "--timeout-ms",
            "3000",
        ])
        .unwrap();
        assert_eq!(cli.timeout_ms, 3000);
        match cli.command {
            Command::Delete(a) => {
                assert!(a.recursive);
                assert_eq!(a.version, Some(3));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["set", "/a", "x", "--version", "-1"])
            .unwrap()
            .command
        {
            Command::Set(a) => assert_eq!(a.version, Some(-1)),
            other => panic!("{other:?}"),
        }
        match parse(&["watch", "-r", "/a"]).unwrap().command {
            Command::Watch(a) => assert!(a.recursive),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stat_uses_zookeeper_names() {
        let s = Stat {
            czxid: 5,
            version: 2,
            ephemeral_owner: 0x1234_abcd,
            num_children: 3,
            ..Stat::default()
        };
        let text = format_stat(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "cZxid = 5");
        assert!(lines.contains(&"dataVersion = 2"));
        assert!(lines.contains(&"ephemeralOwner = 0x1234abcd"));
        assert!(lines.contains(&"numChildren = 3"));
        assert!(format_stat(&Stat::default()).contains("ephemeralOwner = 0x0\n"));
    }

    #[test]
    fn errors_print_one_line_with_the_code() {
        let e = CliError::Op(Error::new(ErrorCode::NoNode, "/a/b"));
        assert_eq!(e.message(), "NoNode: /a/b");
        assert_eq!(e.exit_code(), ExitCode::from(1));
        let e = CliError::Connect {
            servers: "h:1".into(),
            error: Error::NoServer {
                servers: vec!["h:1".into()],
                last_error: "h:1: connection refused".into(),
            },
        };
        let m = e.message();
        assert!(m.contains("h:1") && m.contains("--servers") && m.contains("WARDEN_SERVERS"));
        assert!(!m.contains('\n'));
        assert_eq!(e.exit_code(), ExitCode::from(2));
    }
}
