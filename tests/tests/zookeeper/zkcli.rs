//! Warden's ZooKeeper listener driven by Apache ZooKeeper's own shell,
//! `zkCli.sh` (Debian's `zookeeper` package; `ZKCLI` overrides the path):
//! connect, create, ls, get, set, a data watch firing on another session's
//! set, and delete; then stat, ls -s, getAllChildrenNumber, getEphemerals,
//! sync, a persistent recursive watch and its removal, addauth/whoami,
//! getAcl and deleteall — checking the shell's output line by line (the
//! expected lines are what ZooKeeper 3.8 prints).
//!
//! `.ci/run` installs the package when zkCli is missing; if it is still
//! missing the test fails saying how to install it (it never passes by
//! skipping).

use std::process::Command;
use std::time::{Duration, Instant};

use warden_tests::zookeeper::{self, unique_root, Shell, Target};
use warden_tests::SLOW_STEP;

#[test]
fn zkcli_create_ls_get_set_watch_delete() {
    let target = Target::start();
    let addr = target.zk_addr();
    let root = unique_root("zkcli");
    let kid = format!("{root}/kid");

    let mut sh = Shell::start(&addr);
    sh.expect("WatchedEvent state:SyncConnected type:None path:null");
    sh.run(
        &format!("create {root} hello"),
        &format!("Created {root}\n"),
    );
    sh.run(&format!("create {kid} k"), &format!("Created {kid}\n"));
    sh.run(
        &format!("create {kid} again"),
        &format!("Node already exists: {kid}\n"),
    );
    sh.run(&format!("ls {root}"), "[kid]\n");
    sh.run(&format!("get {root}"), "hello\n");

    // A data watch set here fires on another session's set.
    sh.run(&format!("get -w {root}"), "hello\n");
    let set = Command::new(zookeeper::zkcli())
        .args(["-server", &addr, "set", &root, "world"])
        .output()
        .expect("run zkCli.sh set");
    assert!(
        set.status.success(),
        "the second session's set failed: {}{}",
        String::from_utf8_lossy(&set.stdout),
        String::from_utf8_lossy(&set.stderr)
    );
    let fired = sh.expect(&format!(
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:{root}"
    ));
    assert!(fired.contains("WATCHER::"), "no WATCHER:: header: {fired}");

    let stat = sh.run(&format!("get -s {root}"), "numChildren = 1\n");
    assert!(
        stat.starts_with("world\n") || stat.contains("\nworld\n"),
        "{stat}"
    );
    for line in [
        "dataVersion = 1\n",
        "cversion = 1\n",
        "ephemeralOwner = 0x0\n",
        "dataLength = 5\n",
    ] {
        assert!(stat.contains(line), "`get -s` lacks {line:?}:\n{stat}");
    }

    sh.run(
        &format!("delete {root}"),
        &format!("Node not empty: {root}\n"),
    );
    sh.run(&format!("delete {kid}"), "");
    sh.run(&format!("delete {root}"), "");
    sh.run(
        &format!("ls {root}"),
        &format!("Node does not exist: {root}\n"),
    );
    sh.run(
        &format!("get {kid}"),
        &format!("Node does not exist: {kid}\n"),
    );
    sh.send("quit");
    sh.expect("WatchedEvent state:Closed type:None path:null");
    let deadline = Instant::now() + SLOW_STEP;
    while sh.child.try_wait().expect("wait zkCli").is_none() {
        assert!(
            Instant::now() < deadline,
            "zkCli did not exit after quit:\n{}",
            sh.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = sh.output();
    for bad in ["Exception", "KeeperErrorCode = ConnectionLoss", "Unable to"] {
        assert!(!out.contains(bad), "zkCli reported {bad:?}:\n{out}");
    }
}

#[test]
fn zkcli_stat_counts_ephemerals_sync_persistent_watch_and_auth() {
    let target = Target::start();
    let root = unique_root("zkcli2");
    let mut sh = Shell::start(&target.zk_addr());
    sh.expect("WatchedEvent state:SyncConnected type:None path:null");
    sh.run(&format!("create {root} a"), &format!("Created {root}\n"));
    sh.run(
        &format!("create {root}/b b"),
        &format!("Created {root}/b\n"),
    );
    sh.run(
        &format!("create -e {root}/eph e"),
        &format!("Created {root}/eph\n"),
    );
    sh.run(
        &format!("create -s {root}/seq- s"),
        &format!("Created {root}/seq-0000000002\n"),
    );
    sh.run(
        &format!("create -c {root}/cont c"),
        &format!("Created {root}/cont\n"),
    );
    sh.run(&format!("ls -s {root}"), "[b, cont, eph, seq-0000000002]\n");
    let stat = sh.run(&format!("stat {root}"), "numChildren = 4\n");
    for line in ["cversion = 4\n", "dataVersion = 0\n", "dataLength = 1\n"] {
        assert!(stat.contains(line), "`stat` lacks {line:?}:\n{stat}");
    }
    sh.run(&format!("getAllChildrenNumber {root}"), "4\n");
    sh.run(&format!("getEphemerals {root}"), &format!("[{root}/eph]\n"));
    sh.run(&format!("sync {root}"), "Sync is OK\n");

    sh.send(&format!("addWatch -m PERSISTENT_RECURSIVE {root}"));
    sh.run(
        &format!("set {root}/b bb"),
        &format!("WatchedEvent state:SyncConnected type:NodeDataChanged path:{root}/b"),
    );
    sh.run(
        &format!("removewatches {root} -a"),
        &format!("WatchedEvent state:SyncConnected type:PersistentWatchRemoved path:{root}"),
    );

    sh.run("whoami", "ip: 127.0.0.1\n");
    sh.send("addauth digest user:secret");
    let who = sh.run("whoami", "digest: user\n");
    assert!(who.contains("ip: 127.0.0.1"), "{who}");
    sh.run(&format!("getAcl {root}"), "'world,'anyone\n: cdrwa\n");

    sh.send(&format!("deleteall {root}"));
    sh.run(
        &format!("ls {root}"),
        &format!("Node does not exist: {root}\n"),
    );
    sh.send("quit");
    sh.expect("WatchedEvent state:Closed type:None path:null");
    let out = sh.output();
    for bad in ["Exception", "KeeperErrorCode", "Unable to"] {
        assert!(!out.contains(bad), "zkCli reported {bad:?}:\n{out}");
    }
}

/// ACLs through zkCli: alice (`addauth digest`) locks a node to herself
/// with `setAcl … auth::cdrwa`; `getAcl` shows her digest; another shell,
/// anonymous and then as bob, is refused (`Insufficient permission`),
/// while alice still reads it.
#[test]
fn zkcli_acls_keep_other_users_out() {
    let target = Target::start();
    let addr = target.zk_addr();
    let root = unique_root("zkcli-acl");
    let mut alice = Shell::start(&addr);
    alice.expect("WatchedEvent state:SyncConnected type:None path:null");
    alice.send("addauth digest alice:pw");
    alice.run(
        &format!("create {root} secret"),
        &format!("Created {root}\n"),
    );
    alice.send(&format!("setAcl {root} auth::cdrwa"));
    let hash = warden_server::digest("alice:pw");
    alice.run(
        &format!("getAcl {root}"),
        &format!("'digest,'{hash}\n: cdrwa\n"),
    );
    let mut other = Shell::start(&addr);
    other.expect("WatchedEvent state:SyncConnected type:None path:null");
    other.run(
        &format!("get {root}"),
        &format!("Insufficient permission : {root}\n"),
    );
    other.send("addauth digest bob:pw");
    other.run(
        &format!("set {root} mine"),
        &format!("Insufficient permission : {root}\n"),
    );
    alice.run(&format!("get {root}"), "secret\n");
    alice.send(&format!("delete {root}"));
    alice.run(
        &format!("ls {root}"),
        &format!("Node does not exist: {root}\n"),
    );
    for sh in [&mut alice, &mut other] {
        sh.send("quit");
        sh.expect("WatchedEvent state:Closed type:None path:null");
    }
}

/// zkCli's quota commands: `setquota` with hard limits, `listquota`
/// showing the limits and what the subtree holds, a create past the count
/// limit and a set past the byte limit refused (`QuotaExceeded`, the
/// server enforcing quotas: Warden's `--enforce-quota`, ZooKeeper's
/// `zookeeper.enforceQuota=true` — `tests/compat/zookeeper.py
/// --enforce-quota` for the reference run), and `delquota` lifting them.
#[test]
fn zkcli_quotas_are_kept_and_enforced() {
    let target = Target::start_with(warden_tests::ServerOpts {
        extra_args: vec!["--enforce-quota".into()],
        ..Default::default()
    });
    let addr = target.zk_addr();
    let root = unique_root("zkcli-quota");
    let mut sh = Shell::start(&addr);
    sh.expect("WatchedEvent state:SyncConnected type:None path:null");
    sh.run(&format!("create {root} 12"), &format!("Created {root}\n"));
    sh.run(
        &format!("create {root}/a 345"),
        &format!("Created {root}/a\n"),
    );
    // One limit per call, as zkCli takes them; the second adds to the first.
    sh.send(&format!("setquota -N 3 {root}"));
    sh.send(&format!("setquota -B 10 {root}"));
    sh.run(
        &format!("listquota {root}"),
        &format!(
            "Output quota for {root} count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3\n\
             Output stat for {root} count=2,bytes=5\n"
        ),
    );
    sh.run(
        &format!("create {root}/b 6"),
        &format!("Created {root}/b\n"),
    );
    sh.run(
        &format!("create {root}/c 7"),
        &format!("Quota has exceeded : {root}/c\n"),
    );
    sh.run(
        &format!("set {root}/b 678901"),
        &format!("Quota has exceeded : {root}/b\n"),
    );
    sh.run(&format!("set {root}/b 6789"), "");
    sh.run(
        &format!("listquota {root}"),
        &format!(
            "Output quota for {root} count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3\n\
             Output stat for {root} count=3,bytes=9\n"
        ),
    );
    sh.send(&format!("delquota {root}"));
    sh.run(
        &format!("create {root}/c 7"),
        &format!("Created {root}/c\n"),
    );
    sh.send(&format!("deleteall {root}"));
    sh.run(
        &format!("ls {root}"),
        &format!("Node does not exist: {root}\n"),
    );
    sh.send("quit");
    sh.expect("WatchedEvent state:Closed type:None path:null");
}
