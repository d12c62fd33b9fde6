//! The `warden-server` binary's command line (and, as a side effect, makes
//! `cargo test` build the binary the end-to-end tests run).

use std::process::Command;

#[test]
fn help_explains_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden-server"))
        .arg("--help")
        .output()
        .expect("run warden-server --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data-dir",
        "--listen",
        "--admin-listen",
        "--tick-ms",
        "--min-session-timeout-ms",
        "--max-session-timeout-ms",
        "--config",
        "--snapshot-every",
        "replay",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

#[test]
fn bad_config_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "tick_ms = \"soon\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden-server"))
        .arg("--config")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: invalid configuration"), "{err}");
}
