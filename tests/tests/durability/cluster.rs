//! The multi-server fixture (`warden_tests::cluster`) on a cluster of one:
//! a member killed and restarted on its folder still has what it
//! acknowledged, and a stopped member holds a write until it is continued.

use std::time::Duration;

use warden_client::CreateMode;
use warden_tests::{connect, session_opts, within, Cluster, ServerOpts, STEP};

/// A session long enough that no pause of this test comes near it.
const SESSION: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_keeps_its_writes_across_kill_and_restart_and_holds_a_write_while_stopped() {
    let mut cluster = Cluster::start(
        1,
        ServerOpts {
            max_session_timeout_ms: Some(SESSION.as_millis() as u64),
            ..ServerOpts::default()
        },
    );
    assert_eq!(cluster.ids(), 1..=1);
    let servers = cluster.connect_string();
    assert_eq!(servers, cluster.member(1).addr());

    let c = connect(&servers, session_opts(SESSION, None)).await;
    c.create("/kept", "before", CreateMode::Persistent)
        .await
        .expect("create");
    drop(c);

    cluster.kill(1);
    assert!(!cluster.member_mut(1).is_running(), "killed");
    cluster.restart(1);
    let c = connect(&servers, session_opts(SESSION, None)).await;
    let (data, _) = c.get_data("/kept").await.expect("read after restart");
    assert_eq!(data, b"before", "the acknowledged write survived kill -9");

    // Once `stop` returns the member answers nothing, so a write sent now
    // waits; half a second shows it does (it cannot finish any sooner on a
    // slower machine), and it completes once the member is continued.
    cluster.stop(1);
    let write = c.set_data("/kept", "after", None);
    tokio::pin!(write);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut write)
            .await
            .is_err(),
        "a write completed while its only server was stopped"
    );
    cluster.cont(1);
    within(STEP, "the write held by the stopped member", write)
        .await
        .expect("set_data after SIGCONT");
    let (data, _) = c.get_data("/kept").await.expect("read after SIGCONT");
    assert_eq!(data, b"after");

    c.close().await.expect("close");
    let exit = cluster.terminate(1).expect("it was running");
    assert!(exit.success(), "a clean stop on SIGTERM: {exit}");
}
