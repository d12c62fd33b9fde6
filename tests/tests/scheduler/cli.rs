//! `warden-scheduler job ...` end to end against a real server and a real
//! member: add, list, show, pause, resume, trigger, remove, history and
//! apply, as tables and as `--json`, and the errors a person sees.

use std::time::Duration;

use serde_json::Value;
use warden_tests::scheduler::*;
use warden_tests::wait_until;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn stderr_of(c: &SchedulerCluster, args: &[&str]) -> (i32, String) {
    let out = c.cli(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The start column of `header` in a table's first line, and whether every
/// other line has a cell starting there (aligned columns).
fn aligned(table: &str, header: &str) -> bool {
    let mut lines = table.lines();
    let first = lines.next().unwrap_or("");
    let Some(col) = first.find(header) else {
        return false;
    };
    lines.all(|l| l.len() > col && l.as_bytes()[col - 1] == b' ' && l.as_bytes()[col] != b' ')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_commands_end_to_end() {
    let mut c = SchedulerCluster::start("cli").await;

    let empty = c.cli_ok(&["list"]);
    assert!(empty.contains("no jobs"), "{empty}");

    let added = json(&c.cli_ok(&[
        "add",
        "--name",
        "a",
        "--every",
        "1s",
        "--paused",
        "--data",
        "k=v",
        "--json",
        "--command",
        "/bin/true",
    ]));
    assert_eq!(added[0]["job"], "default.a");
    assert_eq!(added[0]["outcome"], "created");
    assert_eq!(added[0]["triggers"]["default.a"], "created");

    let (code, err) = stderr_of(
        &c,
        &["add", "--name", "a", "--every", "1s", "--command", "x"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("already exists") && err.contains("--replace"),
        "{err}"
    );
    let (code, err) = stderr_of(
        &c,
        &["add", "--name", "b", "--every", "soon", "--command", "x"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--every:"), "{err}");
    let (code, err) = stderr_of(&c, &["add", "--name", "b", "--every", "1s"]);
    assert_eq!(code, 1);
    assert!(err.contains("--command"), "{err}");
    let (code, _) = stderr_of(&c, &["pause"]);
    assert_eq!(code, 2, "clap refuses pause without a target");

    c.cli_ok(&[
        "add",
        "--name",
        "s",
        "--group",
        "g",
        "--cron",
        "*/2 * * * * ?",
        "--shards",
        "3",
        "--shard-names",
        "x,y,z",
        "--strategy",
        "hash",
        "--",
        "/bin/sh",
        "-c",
        "true",
    ]);
    let list = c.cli_ok(&["list"]);
    assert!(list.starts_with("JOB"), "{list}");
    for h in ["SCHEDULE", "NEXT FIRE (UTC)", "LAST OUTCOME", "PAUSED"] {
        assert!(aligned(&list, h), "column {h} not aligned:\n{list}");
    }
    assert!(
        list.contains("every 1s, forever") && list.contains("cron */2 * * * * ? (UTC)"),
        "{list}"
    );

    let paused = |c: &SchedulerCluster| -> Vec<(String, bool)> {
        json(&c.cli_ok(&["list", "--json"]))
            .as_array()
            .expect("array")
            .iter()
            .map(|v| {
                (
                    v["key"].as_str().unwrap().to_string(),
                    v["paused"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        paused(&c),
        vec![("default.a".into(), true), ("g.s".into(), false)]
    );
    c.cli_ok(&["pause", "--group", "g"]);
    assert_eq!(paused(&c)[1], ("g.s".into(), true));
    c.cli_ok(&["resume", "--group", "g"]);
    c.cli_ok(&["resume", "default.a"]);
    assert_eq!(
        paused(&c),
        vec![("default.a".into(), false), ("g.s".into(), false)]
    );

    c.start_member("m1", None);
    wait_until("three runs of default.a", Duration::from_secs(30), || {
        let n = c
            .history("default.a")
            .iter()
            .filter(|e| e["outcome"] == "succeeded")
            .count();
        async move { n >= 3 }
    })
    .await;
    let show = json(&c.cli_ok(&["show", "default.a", "--json"]));
    assert_eq!(show["job"]["data"]["k"], "v");
    assert!(
        show["triggers"][0]["state"]["times_fired"]
            .as_u64()
            .unwrap()
            >= 2,
        "{show:#}"
    );
    let table = c.cli_ok(&["history", "default.a", "-n", "3"]);
    assert!(table.starts_with("FIRE TIME (UTC)"), "{table}");
    for h in [
        "START",
        "END",
        "WORKER",
        "OUTCOME",
        "RECOVERING",
        "SHARD ITEMS",
    ] {
        assert!(aligned(&table, h), "column {h} not aligned:\n{table}");
    }
    assert!(
        table.contains("m1") && table.contains("succeeded"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 4, "-n 3 gives three rows:\n{table}");
    let shown = c.cli_ok(&["show", "default.a"]);
    assert!(
        shown.contains("triggers:") && shown.contains("recent history:"),
        "{shown}"
    );

    let req = json(&c.cli_ok(&["trigger", "g.s", "--data", "extra=1", "--json"]));
    assert_eq!(req["job"], "g.s");
    wait_until("the manual fire of g.s", Duration::from_secs(30), || {
        let h = c.history("g.s");
        async move {
            h.iter()
                .any(|e| e["outcome"] == "succeeded" && e["kind"] == "manual")
        }
    })
    .await;

    c.cli_ok(&["remove", "default.a"]);
    let (code, err) = stderr_of(&c, &["show", "default.a"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("does not exist") && err.contains("job list"),
        "{err}"
    );
    let (code, err) = stderr_of(&c, &["history", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("default.nosuch does not exist"), "{err}");
    c.stop_all();

    // apply --dry-run needs no server; errors name the job and the field.
    let bad = c.path("bad.toml");
    std::fs::write(
        &bad,
        "[[job]]\nname = \"ok\"\ncommand = \"/bin/true\"\nevery = \"1s\"\n\n[[job]]\nname = \"broken\"\ncommand = \"/bin/true\"\ncron = \"0 0 25 * * ?\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(warden_tests::bin("warden-scheduler"))
        .args(["job", "--servers", "127.0.0.1:1", "apply", "--dry-run"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("default.broken") && err.contains("field `cron`"),
        "{err}"
    );
    let good = c.path("good.toml");
    std::fs::write(
        &good,
        "[[job]]\nname = \"ok\"\ncommand = \"/bin/true\"\nevery = \"1s\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(warden_tests::bin("warden-scheduler"))
        .args(["job", "--servers", "127.0.0.1:1", "apply", "--dry-run"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 job(s) valid"));
}
