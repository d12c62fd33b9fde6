//! Data-driven scenario tests for [`DataTree`], in the manner of
//! etcd-io/raft's `testdata/*.txt` (the cockroachdb/datadriven file format).
//!
//! Each file in `src/tree/testdata/` is a sequence of cases. A case is a
//! directive line, optional input lines (only `multi` takes them: its
//! sub-ops), a `----` line, then the expected output up to the next blank
//! line. Lines starting with `#`, and blank lines, between cases are comments
//! (by convention `# ZooKeeper 3.8: ...` above a case says which ZooKeeper
//! behaviour, or which documented choice of Warden's, the case records).
//!
//! ```text
//! # ZooKeeper 3.8: a create moves the parent's cversion and pzxid.
//! create /a data=x
//! ----
//! zxid 1: created /a
//! event NodeCreated /a
//! event NodeChildrenChanged /
//! ```
//!
//! Run: `cargo test -p warden-server --lib tree::scenarios` (one test per
//! file). A wrong expectation fails with `file:line`, the directive and a
//! line diff (`-` expected, `+` actual); every mismatching case of a file is
//! reported. `REWRITE=1` rewrites the expected outputs from the actual ones
//! (comments and input lines are kept): review the diff before committing.
//!
//! Why not the `datadriven` crate (crates.io, justinj/datadriven 0.9): its
//! directive parser accepts only `[A-Za-z0-9_.-]` in arguments, so neither
//! `create /a` nor `data="a b"` can be written, and a mismatch prints both
//! outputs whole rather than a diff. The file format here is the same, less
//! the doubled `----` blocks (the outputs never hold blank lines).
//!
//! # Directive language
//!
//! Arguments are `key=value` or positional (the path). A value may be
//! double-quoted (`data="a b"`, `data=""`), with `\"`, `\\` and `\n`
//! escapes. Numbers are decimal or `0x` hex. An unknown directive or an
//! argument a directive does not use fails the test (typos do not pass).
//!
//! **Writes** are one txn each, applied with [`DataTree::apply`]. The runner
//! numbers them with a plain counter per tree — zxid 1, 2, 3, … — not the
//! server's `(index << 12) | pos`: each write (a failed one too, as a
//! committed txn that fails still has its zxid; a `multi` is one txn) takes
//! the next number. Every write also accepts `session=ID` (the txn's session,
//! default 0), `time=MS` (the txn's time, default the tree's clock) and
//! `zxid=N` (use N; the counter goes on from the highest zxid used).
//! The output is `zxid N: <result>` or `zxid N: error <Code>: <message>`
//! (ZooKeeper's code names), then the Effects apply produced:
//! `event <ZooKeeper EventType> <path>`, `session-opened 0xID timeout=MS`,
//! `session-closed 0xID`.
//!
//! | directive | txn |
//! |---|---|
//! | `open-session id=ID [timeout=MS]` | create session (timeout default 30000) |
//! | `close-session id=ID` | close session (deletes its ephemerals) |
//! | `create PATH [data=S] [mode=M] [ttl=MS] [acl=A]` | create; M: `persistent` (default), `ephemeral`, `sequential`, `ephemeral-sequential`, `container`, `ttl`, `ttl-sequential` |
//! | `delete PATH [version=N]` | delete |
//! | `set PATH data=S [version=N]` | setData (result: the new Stat) |
//! | `set-acl PATH acl=A [version=N]` | setACL (A: `scheme:id:perms,...`, perms from `cdrwa`) |
//! | `check PATH [version=N]` | check (standalone, as Warden allows) |
//! | `multi` + one sub-op per input line | multi; sub-ops are `create`/`delete`/`set`/`check` lines as above (others are accepted to test refusal; `multi` alone is a nested empty multi). Output: each sub-op with its result, or its code (`Ok` / the error / `RuntimeInconsistency`) on failure |
//! | `reap now=MS [PATH...]` | sets the clock to MS, prints `candidates ...` (`reap_candidates(MS)`), then proposes and applies a reap of the candidates (or of the given paths) at time MS, as the leader does; nothing is applied when there is no candidate and no path |
//!
//! **Reads** (no zxid): `get PATH` (data and Stat), `stat PATH`,
//! `children PATH` (`[a, b]`), `get-acl PATH`, `ephemerals id=ID`
//! (the session's ephemeral paths), `candidates now=MS` (the containers and
//! TTL nodes a reap at MS would propose), `hash` (the state hash), `dump [PATH]`
//! (every node at or under PATH, default `/`: path, kind, next sequence
//! number, data, Stat; then the sessions). A read of a missing node prints
//! `error NoNode: PATH`; of an invalid path `error BadArguments: ...`.
//! Stat is printed in ZooKeeper's field order: `czxid mzxid ctime mtime
//! version cversion aversion ephemeralOwner dataLength numChildren pzxid`
//! (zxids decimal, ephemeralOwner hex).
//!
//! **Runner:** `clock MS` sets the time of later writes; `restart` round-trips
//! the tree through a snapshot (bincode, then `rebuild_indexes`) and reports
//! whether the hash and the derived indexes (ephemerals, reap candidates)
//! survived; `tree NAME` switches to another tree (created empty — genesis
//! — on first use, with its own zxid counter and clock; the first tree is
//! `main`); `compare A B` compares two trees' hashes and lists every
//! difference in state, so a file can show when two orders of ops reach the
//! same state and that the hash agrees.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::{path, DataTree, Effects, EventKind, Node, NodeKind, Stat};
use crate::error::Code;
use crate::txn::{Acl, CreateMode, Op, Outcome, Txn, TxnResponse};

// ---------------------------------------------------------------------------
// The file format.

/// A piece of a test file: a comment or blank line (kept verbatim), or a case.
enum Stanza {
    Text(String),
    Case(Case),
}

struct Case {
    /// 1-based line of the directive.
    line: usize,
    directive: String,
    input: Vec<String>,
    expected: Vec<String>,
}

fn parse_file(text: &str) -> Result<Vec<Stanza>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            out.push(Stanza::Text(l.to_string()));
            i += 1;
            continue;
        }
        let line = i + 1;
        i += 1;
        let mut input = Vec::new();
        while i < lines.len() && lines[i] != "----" {
            input.push(lines[i].to_string());
            i += 1;
        }
        if i == lines.len() {
            return Err(format!("{line}: `{l}` has no `----` line after it"));
        }
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            expected.push(lines[i].to_string());
            i += 1;
        }
        out.push(Stanza::Case(Case {
            line,
            directive: l.to_string(),
            input,
            expected,
        }));
    }
    Ok(out)
}

/// Runs every case of one file in a fresh [`Runner`]. Returns the file as
/// it would be with the actual outputs, and one report per mismatching case.
/// A directive the runner cannot run (unknown, bad argument) is an `Err`.
fn run_text(name: &str, text: &str) -> Result<(String, Vec<String>), String> {
    let stanzas = parse_file(text).map_err(|e| format!("{name}:{e}"))?;
    let mut runner = Runner::new();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for s in &stanzas {
        match s {
            Stanza::Text(t) => {
                rewritten.push_str(t);
                rewritten.push('\n');
            }
            Stanza::Case(c) => {
                let at = format!("{name}:{}: {}", c.line, c.directive);
                let actual = runner.run(c).map_err(|e| format!("{at}\n  {e}"))?;
                let actual: Vec<String> = actual.lines().map(str::to_string).collect();
                if actual.iter().any(|l| l.trim().is_empty()) {
                    return Err(format!("{at}\n  the runner printed a blank line"));
                }
                rewritten.push_str(&c.directive);
                rewritten.push('\n');
                for l in c.input.iter().chain(["----".to_string()].iter()) {
                    rewritten.push_str(l);
                    rewritten.push('\n');
                }
                for l in &actual {
                    rewritten.push_str(l);
                    rewritten.push('\n');
                }
                if actual != c.expected {
                    let input: String = c.input.iter().map(|l| format!("{l}\n")).collect();
                    failures.push(format!("{at}\n{input}----\n{}", diff(&c.expected, &actual)));
                }
            }
        }
    }
    Ok((rewritten, failures))
}

/// Runs `testdata/<name>.txt`: panics with every mismatch, or rewrites the
/// file when `REWRITE` is set (to anything but `0`).
fn run_scenario(name: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/tree/testdata")
        .join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let shown = format!("src/tree/testdata/{name}.txt");
    let (rewritten, failures) = run_text(&shown, &text).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var("REWRITE").is_ok_and(|v| !v.is_empty() && v != "0") {
        if rewritten != text {
            std::fs::write(&file, rewritten)
                .unwrap_or_else(|e| panic!("cannot rewrite {}: {e}", file.display()));
        }
        return;
    }
    if !failures.is_empty() {
        panic!(
            "{} case(s) of {shown} gave other output than expected (- expected, + actual):\n\n{}\n\n\
             If the new output is right: REWRITE=1 cargo test -p warden-server --lib tree::scenarios, \
             then review the diff.",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

/// A line diff by longest common subsequence (outputs are a few lines).
fn diff(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if expected[i] == actual[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            out.push(format!("    {}", expected[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("  - {}", expected[i]));
            i += 1;
        } else {
            out.push(format!("  + {}", actual[j]));
            j += 1;
        }
    }
    out.join("\n")
}

// ---------------------------------------------------------------------------
// Directive lines.

/// Splits a line on whitespace; double quotes group (and may be empty).
fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        None => return Err("unclosed \"".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => cur.push('\n'),
                            Some(e) => cur.push(e),
                            None => return Err("unclosed \"".into()),
                        },
                        Some(x) => cur.push(x),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            c => {
                in_token = true;
                cur.push(c);
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

/// A directive's arguments; each is taken once, and leftovers are an error.
struct Args {
    positional: Vec<String>,
    named: BTreeMap<String, String>,
}

impl Args {
    fn parse(tokens: &[String]) -> Result<Args, String> {
        let mut a = Args {
            positional: Vec::new(),
            named: BTreeMap::new(),
        };
        for t in tokens {
            match t.split_once('=') {
                Some((k, v)) if !k.is_empty() && !t.starts_with('/') => {
                    if a.named.insert(k.to_string(), v.to_string()).is_some() {
                        return Err(format!("argument {k} given twice"));
                    }
                }
                _ => a.positional.push(t.clone()),
            }
        }
        Ok(a)
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.named.remove(key)
    }

    fn num<T: TryFrom<i128>>(&mut self, key: &str) -> Result<Option<T>, String> {
        let Some(v) = self.take(key) else {
            return Ok(None);
        };
        let n = match v.strip_prefix("0x") {
            Some(hex) => i128::from_str_radix(hex, 16),
            None => v.parse::<i128>(),
        }
        .map_err(|e| format!("{key}={v}: {e}"))?;
        T::try_from(n)
            .map(Some)
            .map_err(|_| format!("{key}={v}: out of range"))
    }

    fn need<T: TryFrom<i128>>(&mut self, key: &str) -> Result<T, String> {
        self.num(key)?.ok_or_else(|| format!("needs {key}="))
    }

    /// The one positional argument.
    fn path(&mut self) -> Result<String, String> {
        match self.positional.len() {
            1 => Ok(self.positional.remove(0)),
            0 => Err("needs a path".into()),
            _ => Err(format!("one path expected, got {:?}", self.positional)),
        }
    }

    fn finish(self) -> Result<(), String> {
        if !self.positional.is_empty() {
            return Err(format!("unexpected arguments {:?}", self.positional));
        }
        if !self.named.is_empty() {
            let keys: Vec<&String> = self.named.keys().collect();
            return Err(format!("unused arguments {keys:?}"));
        }
        Ok(())
    }
}

fn parse_mode(s: Option<String>) -> Result<CreateMode, String> {
    Ok(match s.as_deref().unwrap_or("persistent") {
        "persistent" => CreateMode::Persistent,
        "ephemeral" => CreateMode::Ephemeral,
        "sequential" | "persistent-sequential" => CreateMode::PersistentSequential,
        "ephemeral-sequential" => CreateMode::EphemeralSequential,
        "container" => CreateMode::Container,
        "ttl" => CreateMode::PersistentWithTtl,
        "ttl-sequential" => CreateMode::PersistentSequentialWithTtl,
        other => return Err(format!("unknown mode {other}")),
    })
}

/// ZooKeeper's permission bits, in zkCli's `cdrwa` spelling.
const PERMS: [(char, i32); 5] = [('c', 4), ('d', 8), ('r', 1), ('w', 2), ('a', 16)];

/// `scheme:id:perms,...` (the id may hold `:`, as digest ids do).
fn parse_acl(s: &str) -> Result<Vec<Acl>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|one| {
            let (scheme, rest) = one
                .split_once(':')
                .ok_or_else(|| format!("acl {one}: want scheme:id:perms"))?;
            let (id, perms) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("acl {one}: want scheme:id:perms"))?;
            let mut bits = 0;
            for c in perms.chars() {
                let (_, b) = PERMS
                    .iter()
                    .find(|(p, _)| *p == c)
                    .ok_or_else(|| format!("acl {one}: unknown permission {c}"))?;
                bits |= b;
            }
            Ok(Acl {
                perms: bits,
                scheme: scheme.into(),
                id: id.into(),
            })
        })
        .collect()
}

fn show_acl(a: &Acl) -> String {
    let perms: String = PERMS
        .iter()
        .filter(|(_, b)| a.perms & b != 0)
        .map(|(c, _)| *c)
        .collect();
    format!("{}:{}:{perms}", a.scheme, a.id)
}

/// The op a write directive (or a multi's sub-op line) names.
fn build_op(name: &str, a: &mut Args) -> Result<Op, String> {
    Ok(match name {
        "create" => Op::Create {
            path: a.path()?,
            data: a.take("data").unwrap_or_default().into_bytes(),
            mode: parse_mode(a.take("mode"))?,
            ttl_ms: a.num("ttl")?.unwrap_or(0),
            acl: parse_acl(&a.take("acl").unwrap_or_default())?,
        },
        "delete" => Op::Delete {
            path: a.path()?,
            version: a.num("version")?,
        },
        "set" => Op::SetData {
            path: a.path()?,
            data: a.take("data").ok_or("needs data=")?.into_bytes(),
            version: a.num("version")?,
        },
        "set-acl" => Op::SetAcl {
            path: a.path()?,
            acl: parse_acl(&a.take("acl").ok_or("needs acl=")?)?,
            version: a.num("version")?,
        },
        "check" => Op::Check {
            path: a.path()?,
            version: a.num("version")?,
        },
        "open-session" => Op::CreateSession {
            session_id: a.need("id")?,
            password: vec![0x5a; 16],
            timeout_ms: a.num("timeout")?.unwrap_or(30_000),
        },
        "close-session" => Op::CloseSession {
            session_id: a.need("id")?,
        },
        "reap" => Op::Reap {
            paths: std::mem::take(&mut a.positional),
        },
        // As a sub-op line only: a nested (empty) multi.
        "multi" => Op::Multi(Vec::new()),
        other => return Err(format!("unknown directive {other}")),
    })
}

// ---------------------------------------------------------------------------
// Printing what ZooKeeper users see.

fn stat_fields(s: &Stat) -> [(&'static str, String); 11] {
    [
        ("czxid", s.czxid.to_string()),
        ("mzxid", s.mzxid.to_string()),
        ("ctime", s.ctime.to_string()),
        ("mtime", s.mtime.to_string()),
        ("version", s.version.to_string()),
        ("cversion", s.cversion.to_string()),
        ("aversion", s.aversion.to_string()),
        ("ephemeralOwner", format!("0x{:x}", s.ephemeral_owner)),
        ("dataLength", s.data_length.to_string()),
        ("numChildren", s.num_children.to_string()),
        ("pzxid", s.pzxid.to_string()),
    ]
}

fn show_stat(s: &Stat) -> String {
    let fields: Vec<String> = stat_fields(s)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("stat {}", fields.join(" "))
}

fn show_data(d: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(d))
}

fn show_kind(k: NodeKind) -> String {
    match k {
        NodeKind::Persistent => "persistent".into(),
        NodeKind::Ephemeral(s) => format!("ephemeral(0x{s:x})"),
        NodeKind::Container => "container".into(),
        NodeKind::Ttl(ms) => format!("ttl({ms}ms)"),
    }
}

/// ZooKeeper's `Watcher.Event.EventType` names.
fn event_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Created => "NodeCreated",
        EventKind::Deleted => "NodeDeleted",
        EventKind::DataChanged => "NodeDataChanged",
        EventKind::ChildrenChanged => "NodeChildrenChanged",
    }
}

fn show_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Created { path, .. } => format!("created {path}"),
        Outcome::Deleted => "deleted".into(),
        Outcome::Stat(s) => show_stat(s),
        Outcome::Checked => "checked".into(),
        Outcome::Multi(v) => format!("multi of {}", v.len()),
        Outcome::SessionCreated {
            session_id,
            timeout_ms,
            ..
        } => format!("session 0x{session_id:x} opened, timeout {timeout_ms} ms"),
        Outcome::SessionClosed => "session closed".into(),
        Outcome::Reaped(p) if p.is_empty() => "reaped nothing".into(),
        Outcome::Reaped(p) => format!("reaped {}", p.join(" ")),
    }
}

fn show_response(r: &TxnResponse, fx: &Effects, labels: &[String]) -> String {
    let label = |i: usize| labels.get(i).cloned().unwrap_or_else(|| format!("op {i}"));
    let mut out = String::new();
    match &r.result {
        Ok(Outcome::Multi(v)) => {
            let _ = writeln!(out, "zxid {}: multi ok", r.zxid);
            for (i, o) in v.iter().enumerate() {
                let _ = writeln!(out, "  {} -> {}", label(i), show_outcome(o));
            }
        }
        Ok(o) => {
            let _ = writeln!(out, "zxid {}: {}", r.zxid, show_outcome(o));
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "zxid {}: error {}: {}",
                r.zxid,
                e.error.code.name(),
                e.error.message
            );
            for (i, c) in e.multi.iter().enumerate() {
                let _ = writeln!(out, "  {} -> {}", label(i), c.name());
            }
        }
    }
    for (k, p) in &fx.events {
        let _ = writeln!(out, "event {} {p}", event_name(*k));
    }
    for (id, t) in &fx.sessions_opened {
        let _ = writeln!(out, "session-opened 0x{id:x} timeout={t}");
    }
    for id in &fx.sessions_closed {
        let _ = writeln!(out, "session-closed 0x{id:x}");
    }
    out
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// Every difference in replicated state between two trees, as lines.
fn state_differences(a: &DataTree, b: &DataTree, an: &str, bn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&str> = a
        .nodes
        .keys()
        .chain(b.nodes.keys())
        .map(|p| p.as_str())
        .collect();
    for p in paths {
        match (a.nodes.get(p), b.nodes.get(p)) {
            (Some(_), None) => out.push(format!("{p}: only in {an}")),
            (None, Some(_)) => out.push(format!("{p}: only in {bn}")),
            (Some(x), Some(y)) => {
                let d = node_differences(x, y);
                if !d.is_empty() {
                    out.push(format!("{p}: {}", d.join(", ")));
                }
            }
            (None, None) => {}
        }
    }
    let ids: BTreeSet<&u64> = a.sessions.keys().chain(b.sessions.keys()).collect();
    for id in ids {
        match (a.sessions.get(id), b.sessions.get(id)) {
            (Some(_), None) => out.push(format!("session 0x{id:x}: only in {an}")),
            (None, Some(_)) => out.push(format!("session 0x{id:x}: only in {bn}")),
            (Some(x), Some(y)) if x != y => out.push(format!("session 0x{id:x}: differs")),
            _ => {}
        }
    }
    out
}

fn node_differences(x: &Node, y: &Node) -> Vec<String> {
    let mut d = Vec::new();
    let mut field = |name: &str, u: String, v: String| {
        if u != v {
            d.push(format!("{name} {u} vs {v}"));
        }
    };
    field("kind", show_kind(x.kind), show_kind(y.kind));
    field("seq", x.seq.to_string(), y.seq.to_string());
    field("data", show_data(&x.data), show_data(&y.data));
    field(
        "acl",
        list(x.acl.iter().map(show_acl)),
        list(y.acl.iter().map(show_acl)),
    );
    for ((k, u), (_, v)) in stat_fields(&x.zk_stat())
        .into_iter()
        .zip(stat_fields(&y.zk_stat()))
    {
        field(k, u, v);
    }
    d
}

// ---------------------------------------------------------------------------
// The runner.

/// One replica's state as the scenario drives it.
struct World {
    tree: DataTree,
    /// The last zxid used.
    zxid: i64,
    /// The time of the next write unless it says `time=`.
    now: i64,
}

impl World {
    fn new() -> Self {
        World {
            tree: DataTree::new(),
            zxid: 0,
            now: 0,
        }
    }
}

struct Runner {
    worlds: BTreeMap<String, World>,
    current: String,
}

impl Runner {
    fn new() -> Self {
        Runner {
            worlds: BTreeMap::from([("main".to_string(), World::new())]),
            current: "main".into(),
        }
    }

    fn world(&mut self) -> &mut World {
        self.worlds
            .get_mut(&self.current)
            .expect("the current tree exists")
    }

    fn run(&mut self, case: &Case) -> Result<String, String> {
        let tokens = tokenize(&case.directive)?;
        let (name, rest) = tokens.split_first().ok_or("empty directive")?;
        let mut a = Args::parse(rest)?;
        if name != "multi" && !case.input.is_empty() {
            return Err(format!("{name} takes no input lines"));
        }
        let out = self.directive(name, &mut a, &case.input)?;
        a.finish()?;
        Ok(out)
    }

    fn directive(&mut self, name: &str, a: &mut Args, input: &[String]) -> Result<String, String> {
        match name {
            "get" | "stat" | "children" | "get-acl" => {
                let p = a.path()?;
                Ok(self.read(name, &p))
            }
            "ephemerals" => {
                let id: u64 = a.need("id")?;
                Ok(list(self.world().tree.ephemerals_of(id)) + "\n")
            }
            "candidates" => {
                let now: i64 = a.need("now")?;
                Ok(list(self.world().tree.reap_candidates(now)) + "\n")
            }
            "hash" => Ok(format!("hash 0x{:016x}\n", self.world().tree.state_hash())),
            "dump" => {
                let root = match a.positional.len() {
                    0 => "/".to_string(),
                    _ => a.path()?,
                };
                Ok(self.dump(&root))
            }
            "clock" => {
                let t = a.path()?;
                let t: i64 = t.parse().map_err(|e| format!("clock {t}: {e}"))?;
                self.world().now = t;
                Ok(format!("clock {t}\n"))
            }
            "restart" => Ok(self.restart()),
            "tree" => {
                let n = a.path()?;
                let new = !self.worlds.contains_key(&n);
                self.worlds.entry(n.clone()).or_insert_with(World::new);
                self.current = n.clone();
                Ok(format!("tree {n}{}\n", if new { " (new)" } else { "" }))
            }
            "compare" => {
                let (an, bn) = match &a.positional[..] {
                    [x, y] => (x.clone(), y.clone()),
                    _ => return Err("compare needs two tree names".into()),
                };
                a.positional.clear();
                Ok(self.compare(&an, &bn)?)
            }
            "reap" => {
                let now: i64 = a.need("now")?;
                self.world().now = now;
                let candidates = self.world().tree.reap_candidates(now);
                let mut out = format!("candidates {}\n", list(&candidates));
                let paths = std::mem::take(&mut a.positional);
                let paths = if !paths.is_empty() {
                    let _ = writeln!(out, "proposing {}", list(&paths));
                    paths
                } else if candidates.is_empty() {
                    return Ok(out + "nothing to propose\n");
                } else {
                    candidates
                };
                out += &self.write(a, Op::Reap { paths }, &[])?;
                Ok(out)
            }
            "multi" => {
                let mut ops = Vec::new();
                let mut labels = Vec::new();
                for line in input {
                    let tokens = tokenize(line)?;
                    let (sub, rest) = tokens.split_first().ok_or("empty multi sub-op line")?;
                    let mut sa = Args::parse(rest)?;
                    ops.push(build_op(sub, &mut sa).map_err(|e| format!("{line}: {e}"))?);
                    sa.finish().map_err(|e| format!("{line}: {e}"))?;
                    labels.push(line.trim().to_string());
                }
                self.write(a, Op::Multi(ops), &labels)
            }
            _ => {
                let op = build_op(name, a)?;
                self.write(a, op, &[])
            }
        }
    }

    /// Applies one txn at the next zxid and prints its result and Effects.
    fn write(&mut self, a: &mut Args, op: Op, labels: &[String]) -> Result<String, String> {
        let session = a.num("session")?.unwrap_or(0);
        let time = a.num("time")?;
        let zxid = a.num("zxid")?;
        let w = self.world();
        let zxid = zxid.unwrap_or(w.zxid + 1);
        w.zxid = w.zxid.max(zxid);
        let txn = Txn {
            session_id: session,
            time_ms: time.unwrap_or(w.now),
            op,
        };
        let mut fx = Effects::default();
        let r = w.tree.apply(zxid, &txn, &mut fx);
        Ok(show_response(&r, &fx, labels))
    }

    fn read(&mut self, what: &str, p: &str) -> String {
        if let Err(e) = path::validate_path(p) {
            return format!("error {}: {}\n", e.code.name(), e.message);
        }
        let Some(n) = self.world().tree.node(p) else {
            return format!("error {}: {p}\n", Code::NoNode.name());
        };
        match what {
            "get" => format!("data {}\n{}\n", show_data(&n.data), show_stat(&n.zk_stat())),
            "stat" => format!("{}\n", show_stat(&n.zk_stat())),
            "children" => list(self.world().tree.children(p).unwrap_or_default()) + "\n",
            _ => {
                let mut out: String = n.acl.iter().map(|a| show_acl(a) + "\n").collect();
                let _ = writeln!(out, "aversion={}", n.stat.aversion);
                out
            }
        }
    }

    fn dump(&mut self, root: &str) -> String {
        let t = &self.world().tree;
        let mut out = String::new();
        for (p, n) in &t.nodes {
            if p == root || warden_proto::path::is_under(p, root) {
                let _ = writeln!(
                    out,
                    "{p} {} seq={} data={} {}",
                    show_kind(n.kind),
                    n.seq,
                    show_data(&n.data),
                    show_stat(&n.zk_stat())
                );
            }
        }
        if root == "/" {
            for (id, s) in t.sessions() {
                let _ = writeln!(
                    out,
                    "session 0x{id:x} timeout={} ephemerals={}",
                    s.timeout_ms,
                    list(t.ephemerals_of(*id))
                );
            }
        }
        if out.is_empty() {
            out = format!("error NoNode: {root}\n");
        }
        out
    }

    fn restart(&mut self) -> String {
        let w = self.world();
        let bytes = bincode::serialize(&w.tree).expect("a tree serializes");
        let mut back: DataTree = bincode::deserialize(&bytes).expect("a snapshot deserializes");
        back.rebuild_indexes();
        let hash = if back.state_hash() == w.tree.state_hash() {
            "hash unchanged"
        } else {
            "HASH CHANGED"
        };
        let indexes = if back.ephemerals == w.tree.ephemerals && back.reapable == w.tree.reapable {
            "indexes unchanged"
        } else {
            "INDEXES CHANGED"
        };
        let lost = state_differences(&w.tree, &back, "before", "after");
        w.tree = back;
        let mut out = format!("restarted from a snapshot: {hash}, {indexes}\n");
        for l in lost {
            let _ = writeln!(out, "  {l}");
        }
        out
    }

    fn compare(&self, an: &str, bn: &str) -> Result<String, String> {
        let get = |n: &str| {
            self.worlds
                .get(n)
                .map(|w| &w.tree)
                .ok_or_else(|| format!("no tree {n}"))
        };
        let (a, b) = (get(an)?, get(bn)?);
        let (ha, hb) = (a.state_hash(), b.state_hash());
        let diffs = state_differences(a, b, an, bn);
        let mut out = if ha == hb {
            format!("same hash 0x{ha:016x}\n")
        } else {
            format!("different hashes: {an} 0x{ha:016x}, {bn} 0x{hb:016x}\n")
        };
        match (ha == hb, diffs.is_empty()) {
            (_, true) => out += "same state\n",
            (true, false) => out += "different state, which the hash does not see:\n",
            (false, false) => out += "different state:\n",
        }
        for d in diffs {
            let _ = writeln!(out, "  {d}");
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// The tests: one per file, and the runner's own.

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_scenario(stringify!($name));
            }
        )*
        const FILES: &[&str] = &[$(stringify!($name)),*];
    };
}

scenarios!(
    nodes,
    sequential,
    ephemeral,
    containers_ttl,
    multi,
    system_nodes,
    hash_order
);

#[test]
fn every_testdata_file_has_a_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tree/testdata");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("testdata/ exists")
        .map(|e| e.expect("readable dir entry").file_name())
        .filter_map(|n| n.to_str()?.strip_suffix(".txt").map(str::to_string))
        .collect();
    found.sort();
    let mut listed: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed, "add each testdata/*.txt to scenarios!()");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff_and_rewrite_fixes_it() {
    let text = "# a comment\ncreate /a data=x\n----\nzxid 1: created /a\nevent NodeCreated /a\n\nget /a\n----\ndata \"y\"\n";
    let (rewritten, failures) = run_text("t.txt", text).unwrap();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].starts_with("t.txt:2: create /a data=x\n"),
        "{}",
        failures[0]
    );
    assert!(
        failures[0].contains("  + event NodeChildrenChanged /"),
        "{}",
        failures[0]
    );
    assert!(
        failures[1].contains("  - data \"y\"\n  + data \"x\""),
        "{}",
        failures[1]
    );
    let (again, failures) = run_text("t.txt", &rewritten).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(again, rewritten);
    assert!(rewritten.starts_with("# a comment\ncreate /a data=x\n----\n"));
}

#[test]
fn directive_mistakes_are_errors_not_outputs() {
    for bad in [
        "crate /a\n----\n",
        "create /a verison=1\n----\n",
        "create /a\n",
        "get /a\ninput\n----\n",
        "create /a data=\"x\n----\n",
    ] {
        assert!(run_text("t.txt", bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn tokens_and_arguments() {
    let t = tokenize(r#"create /a data="a b" acl=world:anyone:cdrwa x="" "#).unwrap();
    assert_eq!(
        t,
        ["create", "/a", "data=a b", "acl=world:anyone:cdrwa", "x="]
    );
    let mut a = Args::parse(&t[1..]).unwrap();
    assert_eq!(a.path().unwrap(), "/a");
    assert_eq!(a.take("x").as_deref(), Some(""));
    let acl = parse_acl(&a.take("acl").unwrap()).unwrap();
    assert_eq!(acl, Acl::open());
    assert_eq!(show_acl(&acl[0]), "world:anyone:cdrwa");
    let mut n = Args::parse(&["id=0x1f".to_string()]).unwrap();
    assert_eq!(n.num::<u64>("id").unwrap(), Some(31));
}
