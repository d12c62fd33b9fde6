//! The `warden` binary's command line without a server (and, as a side
//! effect, makes `cargo test --workspace` build the binary the end-to-end
//! tests in `tests/tests/client/cli.rs` run).

use std::process::Command;

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--help")
        .output()
        .expect("run warden --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in [
        "ls",
        "get",
        "stat",
        "create",
        "set",
        "delete",
        "watch",
        "bench",
        "lock",
        "elect",
        "status",
        "--servers",
    ] {
        assert!(text.contains(command), "--help lacks {command}:\n{text}");
    }
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("frobnicate")
        .output()
        .expect("run warden frobnicate");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("frobnicate"), "{err}");
}
