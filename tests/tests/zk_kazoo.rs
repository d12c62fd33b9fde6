//! Warden's ZooKeeper listener driven by kazoo, Python's ZooKeeper client:
//! runs `tests/compat/kazoo_compat.py` (connection and server version,
//! CRUD, sequential and ephemeral nodes, watches, a dropped connection,
//! transactions, and kazoo's recipes) against a fresh server and fails
//! with its report if any check fails. Needs
//! `pip install -r tests/compat/requirements.txt`; without kazoo the test
//! fails saying so, it never passes by skipping.

mod zk_support;

use std::path::PathBuf;
use std::process::Command;

use zk_support::Target;

/// `tests/compat/<name>`.
fn compat_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("compat")
        .join(name)
}

/// Fails the test with the pip command if kazoo cannot be imported.
fn require_kazoo() {
    let probe = Command::new("python3")
        .args(["-c", "import kazoo"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): kazoo's checks need Python 3"));
    assert!(
        probe.status.success(),
        "kazoo is not importable: pip install -r tests/compat/requirements.txt\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

#[test]
fn kazoo_client_and_recipes() {
    require_kazoo();
    let target = Target::start();
    let out = Command::new("python3")
        .arg(compat_script("kazoo_compat.py"))
        .arg("--hosts")
        .arg(target.zk_addr())
        .output()
        .expect("run kazoo_compat.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "kazoo compatibility checks failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        target.log()
    );
    assert!(
        stdout.contains("all 13 checks passed"),
        "unexpected report:\n{stdout}"
    );
}
