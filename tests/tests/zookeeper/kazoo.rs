//! Warden's ZooKeeper listener driven by kazoo, Python's ZooKeeper client:
//! runs `tests/compat/kazoo_compat.py` (connection and server version,
//! CRUD, sequential and ephemeral nodes, watches, a dropped connection,
//! transactions, kazoo's recipes, digest authentication and ACL rules)
//! against a fresh server and fails
//! with its report if any check fails. Without kazoo on the system Python,
//! the pinned requirements are pip-installed into the build folder first
//! (`warden_tests::zookeeper::python_with_kazoo`); the test never passes by skipping.

use warden_tests::zookeeper::{compat_file, python_with_kazoo, Target};

#[test]
fn kazoo_client_and_recipes() {
    let target = Target::start();
    let out = python_with_kazoo()
        .arg(compat_file("kazoo_compat.py"))
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
        stdout.contains("all 16 checks passed"),
        "unexpected report:\n{stdout}"
    );
}
