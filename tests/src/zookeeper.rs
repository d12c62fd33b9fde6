//! Shared by the ZooKeeper-protocol compatibility tests: which server they
//! run against ([`Target`]), and the third-party clients they drive (kazoo,
//! zkCli).
//!
//! By default each test starts its own `warden-server` and talks to its
//! ZooKeeper listener (`ServerProc::zk_addr`). With
//! `WARDEN_ZK_REFERENCE=HOST:PORT` the same tests run against that server
//! instead — an Apache ZooKeeper started with
//! `python3 tests/compat/zookeeper.py` — which is how they were checked
//! to expect exactly what ZooKeeper does. Every test works under its own
//! random root, so a shared reference server is fine.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{ServerOpts, ServerProc, SLOW_STEP};

/// The server a test talks to.
pub enum Target {
    /// A fresh Warden server of this test's own.
    Warden(Box<ServerProc>),
    /// An external server named by `WARDEN_ZK_REFERENCE`.
    Reference(String),
}

impl Target {
    /// A Warden server with the harness's defaults (or the reference server).
    pub fn start() -> Target {
        Self::start_with(ServerOpts::default())
    }

    /// A Warden server with these options (or the reference server, which
    /// keeps its own settings).
    pub fn start_with(opts: ServerOpts) -> Target {
        match std::env::var("WARDEN_ZK_REFERENCE") {
            Ok(addr) if !addr.is_empty() => Target::Reference(addr),
            _ => Target::Warden(Box::new(ServerProc::start_with(opts))),
        }
    }

    /// `HOST:PORT` of the ZooKeeper-protocol listener.
    pub fn zk_addr(&self) -> String {
        match self {
            Target::Warden(s) => s.zk_addr(),
            Target::Reference(a) => a.clone(),
        }
    }

    /// The Warden server, if this is one (for its gRPC API and its log).
    pub fn warden(&self) -> Option<&ServerProc> {
        match self {
            Target::Warden(s) => Some(s),
            Target::Reference(_) => None,
        }
    }

    /// The server's log, to show when a test fails (empty for a reference).
    pub fn log(&self) -> String {
        self.warden().map(|s| s.log()).unwrap_or_default()
    }
}

/// A path no other test (or earlier run against a shared reference server)
/// uses: `/<prefix>-<random hex>`.
pub fn unique_root(prefix: &str) -> String {
    format!("/{prefix}-{:016x}", rand::random::<u64>())
}

/// `tests/compat/<name>`.
pub fn compat_file(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("compat")
        .join(name)
}

/// A `python3` command that can import kazoo. When the system Python lacks
/// it, the pinned `tests/compat/requirements.txt` is installed once with pip
/// into the build's own folder (`target/tmp/compat-python`) and put on
/// `PYTHONPATH`, so `cargo test --workspace` needs nothing installed by hand.
pub fn python_with_kazoo() -> std::process::Command {
    use std::process::Command;
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let importable = |path: Option<&std::path::Path>| {
        let mut c = Command::new("python3");
        c.args(["-c", "import kazoo"]);
        if let Some(p) = path {
            c.env("PYTHONPATH", p);
        }
        c.output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}): kazoo's checks need Python 3"))
            .status
            .success()
    };
    let dir = DIR.get_or_init(|| {
        if importable(None) {
            return None;
        }
        let dir = crate::target_tmp().join("compat-python");
        if importable(Some(&dir)) {
            return Some(dir);
        }
        // Installed beside, then renamed into place, so two test binaries
        // installing at once cannot see a half-written folder.
        let staging = dir.with_extension(format!("partial-{}", std::process::id()));
        eprintln!(
            "kazoo is not installed: pip-installing tests/compat/requirements.txt into {}",
            dir.display()
        );
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&staging)
            .arg("-r")
            .arg(compat_file("requirements.txt"))
            .output()
            .expect("run pip");
        assert!(
            out.status.success(),
            "could not install kazoo (pip install -r tests/compat/requirements.txt by hand?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if std::fs::rename(&staging, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        assert!(
            importable(Some(&dir)),
            "kazoo still not importable from {}",
            dir.display()
        );
        Some(dir)
    });
    let mut cmd = Command::new("python3");
    if let Some(d) = dir {
        cmd.env("PYTHONPATH", d);
    }
    cmd
}

/// Installs a Debian package once when `marker` (a file it provides) is
/// missing and this runs as root with apt, so a test needs nothing
/// installed by hand; otherwise the test fails saying how to install it.
fn debian_package(package: &str, marker: &str) {
    let present = |p: &str| std::path::Path::new(p).exists();
    let root = unsafe { libc::geteuid() } == 0;
    if !present(marker) && root && present("/usr/bin/apt-get") {
        eprintln!("{marker} is missing: apt-get install {package}");
        let sh = format!(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -qq --no-install-recommends {package}"
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &sh])
            .output()
            .expect("run apt-get");
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    assert!(
        present(marker),
        "{marker} is missing: install it with \
         `apt-get install -y --no-install-recommends {package}`"
    );
}

/// Debian's `zkCli.sh` (`ZKCLI` overrides the path), from the `zookeeper`
/// package, installed once (about 15 s) when missing.
pub fn zkcli() -> String {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| match std::env::var("ZKCLI") {
        Ok(path) => path,
        Err(_) => {
            let path = "/usr/share/zookeeper/bin/zkCli.sh";
            debian_package("zookeeper", path);
            path.to_string()
        }
    })
    .clone()
}

/// Jars of `/usr/share/java` on a class path: those named, and every one
/// whose name starts with one of `prefixes`.
fn class_path(names: &[&str], prefixes: &[&str]) -> String {
    let jars = "/usr/share/java";
    let mut cp: Vec<String> = names.iter().map(|n| format!("{jars}/{n}")).collect();
    if let Ok(dir) = std::fs::read_dir(jars) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if prefixes.iter().any(|p| name.starts_with(p)) && name.ends_with(".jar") {
                cp.push(format!("{jars}/{name}"));
            }
        }
    }
    cp.join(":")
}

/// The jars of Apache ZooKeeper's Java client (Debian's `zookeeper`).
const ZOOKEEPER_JARS: [&str; 6] = [
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "slf4j-simple.jar",
    "metrics-core.jar",
    "commons-io.jar",
];

/// A `java` command that runs a single-file program from `tests/compat/`
/// on the class path `cp`, logging warnings only.
fn java(program: &str, cp: String) -> std::process::Command {
    let mut c = std::process::Command::new("java");
    c.arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg("-cp")
        .arg(cp)
        .arg(compat_file(program));
    c
}

/// A `java` command that runs a single-file program from `tests/compat/`
/// against Apache ZooKeeper's own Java client (the jars of Debian's
/// `zookeeper` package, which [`zkcli`] installs when missing).
pub fn java_client(program: &str) -> std::process::Command {
    zkcli();
    java(program, class_path(&ZOOKEEPER_JARS, &["netty-"]))
}

/// A `java` command that runs a single-file program from `tests/compat/`
/// against Apache Curator (Debian's `libcurator-recipes-java`, 5.4, with
/// its Guava), over ZooKeeper's Java client; both installed when missing.
pub fn curator_client(program: &str) -> std::process::Command {
    zkcli();
    debian_package(
        "libcurator-recipes-java",
        "/usr/share/java/curator-recipes.jar",
    );
    let mut names = ZOOKEEPER_JARS.to_vec();
    names.extend([
        "curator-client.jar",
        "curator-framework.jar",
        "curator-recipes.jar",
        "guava.jar",
    ]);
    java(program, class_path(&names, &["netty-"]))
}

/// An interactive zkCli session (`zkCli.sh -server ADDR`): commands go to
/// its stdin, and its output (stdout and stderr, in order) collects in `out`.
pub struct Shell {
    /// The shell's process (`sh` exec'ing `zkCli.sh`).
    pub child: Child,
    stdin: ChildStdin,
    out: Arc<Mutex<String>>,
    /// How much of `out` earlier expectations consumed.
    seen: usize,
}

impl Shell {
    pub fn start(addr: &str) -> Shell {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {} -server {addr} 2>&1", zkcli()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start zkCli.sh");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let out = Arc::new(Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut o = sink.lock().expect("output lock");
                o.push_str(&line);
                o.push('\n');
            }
        });
        Shell {
            child,
            stdin,
            out,
            seen: 0,
        }
    }

    pub fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("write to zkCli");
        self.stdin.flush().expect("flush");
    }

    /// Waits until `want` appears after what earlier expectations matched;
    /// returns the text from there up to and including it.
    pub fn expect(&mut self, want: &str) -> String {
        let deadline = Instant::now() + SLOW_STEP;
        loop {
            {
                let out = self.out.lock().expect("output lock");
                if let Some(i) = out[self.seen..].find(want) {
                    let end = self.seen + i + want.len();
                    let text = out[self.seen..end].to_string();
                    self.seen = end;
                    return text;
                }
                assert!(
                    Instant::now() < deadline,
                    "zkCli did not print {want:?} within {SLOW_STEP:?}; its output:\n{}",
                    *out
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn run(&mut self, cmd: &str, want: &str) -> String {
        self.send(cmd);
        self.expect(want)
    }

    pub fn output(&self) -> String {
        self.out.lock().expect("output lock").clone()
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A compatibility script or program that talks over its stdin and stdout
/// (`kazoo_failover.py`, `JavaFailover.java`, …): its stdout lines arrive
/// one by one, its stderr (the client library's own logging) is kept for
/// failure messages.
pub struct Script {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    errors: Option<std::thread::JoinHandle<String>>,
}

impl Script {
    /// Starts `command` with its three streams piped.
    pub fn spawn(mut command: Command, name: &str) -> Script {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {name}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        });
        Script {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            errors: Some(errors),
        }
    }

    /// Its next stdout line, or why none came within `timeout` (then the
    /// script is killed, and the reason ends with its stderr).
    pub fn line(&mut self, timeout: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let errors = self.errors();
                Err(format!(
                    "{}: no line within {timeout:?} ({e})\n{errors}",
                    self.name
                ))
            }
        }
    }

    /// Writes `line` to its stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to the script");
        stdin.flush().expect("flush the script's stdin");
    }

    /// Reads its report up to its verdict (`all N checks passed` or
    /// `… checks failed`) and waits for it to exit; panics unless it
    /// passed all `checks`. The report.
    pub fn expect_passed(mut self, checks: usize, timeout: Duration, context: &str) -> String {
        let mut report = Vec::new();
        let done = loop {
            match self.lines.recv_timeout(timeout) {
                Ok(line) => {
                    let last = line.starts_with("all ") || line.contains("checks failed");
                    report.push(line);
                    if last {
                        break true;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break false,
                Err(e) => {
                    let _ = self.child.kill();
                    break {
                        report.push(format!("(no verdict: {e})"));
                        false
                    };
                }
            }
        };
        let status = self.child.wait().expect("wait for the script");
        let report = report.join("\n");
        let errors = self.errors();
        assert!(
            done && status.success() && report.contains(&format!("all {checks} checks passed")),
            "{} ({status}):\n{report}\n{errors}\n{context}",
            self.name,
        );
        report
    }

    /// The tail of what it wrote to stderr (once it has exited).
    pub fn errors(&mut self) -> String {
        let all = self
            .errors
            .take()
            .and_then(|e| e.join().ok())
            .unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}
