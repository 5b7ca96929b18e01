//! The command line as a user meets it: help, the default config, and
//! start-up refusals (exit code 2 with a message naming what is wrong).

mod common;

use std::process::{Command, Output};

fn eventhub(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eventhub"))
        .args(args)
        .output()
        .expect("run eventhub")
}

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{name}-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn refused(args: &[&str]) -> String {
    let out = eventhub(args);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} should exit 2; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_documents_every_serving_option() {
    let out = eventhub(&["serve", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--listen",
        "--workers",
        "--driver",
        "--docker-socket",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }
    let top = String::from_utf8_lossy(&eventhub(&["--help"]).stdout).into_owned();
    for cmd in ["serve", "echo", "default-config"] {
        assert!(top.contains(cmd), "--help lacks {cmd}");
    }
}

#[test]
fn default_config_is_printed_and_loads_back() {
    let out = eventhub(&["default-config"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[server]") && text.contains("[limits]") && text.contains("[hub]"));
    let path = config_file("default", &text);
    // A config that loads but a listen address that cannot be bound: the
    // config passed, so the failure is the bind (exit 1), not the config (2).
    let out = eventhub(&[
        "echo",
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "203.0.113.1:1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on 203.0.113.1:1"));
}

#[test]
fn unknown_config_key_exits_2_naming_it() {
    let path = config_file("unknown", "[server]\nworkerz = 1\n");
    let err = refused(&["serve", "--config", path.to_str().unwrap()]);
    assert!(err.contains("workerz") && err.contains("server"), "{err}");
}

#[test]
fn wrong_type_and_inconsistent_values_exit_2_naming_the_key() {
    let path = config_file("type", "[limits]\nidle_timeout_s = \"soon\"\n");
    assert!(refused(&["echo", "--config", path.to_str().unwrap()]).contains("idle_timeout_s"));
    let path = config_file("ping", "[limits]\nping_interval_s = 90\n");
    assert!(
        refused(&["serve", "--config", path.to_str().unwrap()]).contains("limits.ping_interval_s")
    );
    let path = config_file("channel", "[hub]\nchannels = [\"Bad Name\"]\n");
    assert!(refused(&["serve", "--config", path.to_str().unwrap()]).contains("hub.channels"));
    let path = config_file(
        "origin",
        "[server]\nallowed_origins = [\"dash.example.com\"]\n",
    );
    assert!(
        refused(&["serve", "--config", path.to_str().unwrap()]).contains("server.allowed_origins")
    );
    let path = config_file("ticket", "[ui]\nticket_ttl_s = 0\n");
    assert!(refused(&["serve", "--config", path.to_str().unwrap()]).contains("ui.ticket_ttl_s"));
}

#[test]
fn weak_principal_exits_2_naming_it() {
    let path = config_file(
        "principal",
        "[[principals]]\nname = \"ops\"\ntoken = \"short\"\n",
    );
    let err = refused(&["serve", "--config", path.to_str().unwrap()]);
    assert!(
        err.contains("principals[0] (\"ops\")") && err.contains("16 characters"),
        "{err}"
    );
}

#[test]
fn bad_flags_and_missing_config_file_exit_2() {
    assert!(refused(&["serve", "--workers", "x"]).contains("--workers"));
    assert!(refused(&["serve", "--driver", "kqueue"]).contains("--driver"));
    assert!(
        refused(&["serve", "--config", "/nonexistent/eventhub.toml"])
            .contains("/nonexistent/eventhub.toml")
    );
}

#[test]
fn second_hub_on_a_port_in_use_exits_naming_the_address() {
    let first = common::Server::echo(2, None);
    let addr = first.addr.to_string();
    let out = eventhub(&["echo", "--listen", &addr]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")) && stderr.contains("in use"),
        "{stderr}"
    );
}
