//! Apache Curator 5.4 (Debian's jars) on Warden's ZooKeeper listener: ACLs
//! with digest authentication (`tests/compat/CuratorAcl.java`) — a node
//! only alice may use is refused to bob and to an anonymous client, alice
//! reads it and reads back her ACL, and `setACL` opens it. Runs against
//! Apache ZooKeeper with `WARDEN_ZK_REFERENCE`, with the same outcome.

use warden_tests::zookeeper::{curator_client, Target};

#[test]
fn curator_acls_keep_other_users_out() {
    let target = Target::start();
    let out = curator_client("CuratorAcl.java")
        .arg(target.zk_addr())
        .output()
        .expect("run CuratorAcl.java");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all 4 checks passed"),
        "Curator's ACL checks ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
