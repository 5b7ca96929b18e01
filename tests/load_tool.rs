//! Runs the load tool (`perf/load`, binary `eventhub-load`) briefly against
//! the real hub, so that the figures `perf/compare.sh` prints keep coming
//! from a tool that works: every delivery counted and checked, under both
//! readers (epoll, tungstenite) and closed-loop publishing (`--window`),
//! slow consumers seen closed with 1013, idle connections' memory and the
//! connect storm measured, a failing exit status when deliveries go
//! missing, and all of it over wss as well (`--tls-ca`, what
//! `perf/compare.sh` runs with `TLS=1`); and against the nodes of a
//! cluster at once (`--addr A,B,C`, what `perf/cluster.sh` runs), where
//! every subscriber must get every node's publishes.
//!
//! The tool is built (in this test's profile) by `cargo build -p
//! eventhub-load` on first use: a workspace test run does not build other
//! packages' binaries for this one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use common::tls::{TestCa, TlsFiles};
use common::Server;

const TOKEN: &str = "load-token-0123456789abcdef";

/// The send queue of the slow-consumer runs: 1,024 events of 4 KiB, a
/// second of them at 1,000/s. A healthy debug-build reader starved of the
/// CPU for a second on a busy 2-core box (it was, with 256 events, while
/// other builds ran) is not taken for a slow one, while those that never
/// read (3,000 events, 12 MiB, sent to each) pass it for sure.
const SLOW_TEST_QUEUE: usize = 4 << 20;

fn config(send_queue_bytes: usize) -> String {
    format!(
        r#"[hub]
max_connections_per_ip = 0
connect_rate_per_ip = 0.0
[limits]
send_queue_bytes = {send_queue_bytes}
[[principals]]
name = "load"
token = "{TOKEN}"
admin = true
publish = ["*"]
"#
    )
}

/// The `eventhub-load` binary next to this test's `eventhub`, built once.
fn load_tool() -> &'static Path {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        let dir = Path::new(env!("CARGO_BIN_EXE_eventhub"))
            .parent()
            .expect("the binary has a directory");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-q", "-p", "eventhub-load"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p eventhub-load failed");
        dir.join("eventhub-load")
    })
}

/// One run at a time: the tests run in parallel threads, and two load runs
/// on a small machine could starve a healthy subscriber into being closed
/// as a slow one.
static RUN_LOCK: Mutex<()> = Mutex::new(());

/// Runs the tool against `server` with `args` (split on spaces); returns its
/// output and the JSON report.
fn run_load(server: &Server, args: &str) -> (Output, Value) {
    run_load_on(std::slice::from_ref(server), args)
}

/// [`run_load`] against several servers at once (`--addr` and
/// `--server-pid` list them all).
fn run_load_on(servers: &[Server], args: &str) -> (Output, Value) {
    let _one_at_a_time = RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let json = tempfile_path();
    let list = |item: fn(&Server) -> String| servers.iter().map(item).collect::<Vec<_>>().join(",");
    let out = Command::new(load_tool())
        .args(["--addr", &list(|s| s.addr.to_string()), "--token", TOKEN])
        .args(["--server-pid", &list(|s| s.pid().to_string())])
        .arg("--json")
        .arg(&json)
        .args(args.split_whitespace())
        .output()
        .expect("run eventhub-load");
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_file(&json);
    (out, report)
}

fn tempfile_path() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "eventhub-load-test-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn explain(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_delivery_is_counted_with_its_latency_and_the_servers_cpu() {
    let server = Server::hub(2, &config(1 << 20));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --subscribers 20 --rate 500 --count 200 --threads 2",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["subscribers"], 20, "{report}");
    assert_eq!(report["published"], 200, "{report}");
    assert_eq!(report["expected"], 4000, "{report}");
    assert_eq!(report["deliveries"], 4000, "{report}");
    for check in ["gaps", "duplicates", "disorder", "slow_subscribers"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
    let p50 = report["latency_us"]["p50"].as_f64().unwrap_or(0.0);
    let max = report["latency_us"]["max"].as_f64().unwrap_or(0.0);
    assert!(p50 > 0.0 && max >= p50, "{report}");
    assert!(
        report["server_cpu_us_per_delivery"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("deliveries      4000/4000"), "{table}");
}

#[test]
fn slow_consumers_are_counted_apart_and_seen_closed_with_1013_as_metrics_count() {
    let server = Server::hub(2, &config(SLOW_TEST_QUEUE));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --subscribers 10 --slow-percent 20 --rate 1000 --count 3000 --size 4096",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["slow_subscribers"], 2, "{report}");
    assert_eq!(report["slow_closed_1013"], 2, "{report}");
    assert_eq!(
        report["server_slow_consumer_closes"], 2,
        "every close the subscribers saw is counted in /metrics: {report}"
    );
    assert_eq!(report["expected"], 8 * 3000, "{report}");
    assert_eq!(report["deliveries"], 8 * 3000, "{report}");
}

#[test]
fn idle_connections_get_a_memory_figure() {
    let server = Server::hub(2, &config(1 << 20));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --subscribers 200 --idle --idle-hold-s 1",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["subscribers"], 200, "{report}");
    assert_eq!(report["connect_errors"], 0, "{report}");
    assert!(
        report["rss_bytes_per_connection"].as_f64().is_some(),
        "{report}"
    );
}

#[test]
fn missing_deliveries_fail_the_run() {
    // Driven as a peer, the tool publishes bare bodies, which the hub
    // refuses as events: nothing is delivered, and the tool must say so
    // with its exit status.
    let server = Server::hub(1, &config(1 << 20));
    let (out, report) = run_load(
        &server,
        "--kind peer --subscribers 5 --rate 200 --count 20 --timeout 2",
    );
    assert!(!out.status.success(), "{}", explain(&out));
    assert_eq!(report["deliveries"], 0, "{report}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loss"),
        "{}",
        explain(&out)
    );
}

#[test]
fn the_tungstenite_reader_delivers_everything_with_no_gaps() {
    let server = Server::hub(2, &config(1 << 20));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --reader tungstenite --subscribers 20 --rate 500 --count 200 --threads 2",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["reader"], "tungstenite", "{report}");
    assert_eq!(report["subscribers"], 20, "{report}");
    assert_eq!(report["expected"], 4000, "{report}");
    assert_eq!(report["deliveries"], 4000, "{report}");
    for check in ["gaps", "duplicates", "disorder", "slow_subscribers"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
    let p50 = report["latency_us"]["p50"].as_f64().unwrap_or(0.0);
    assert!(p50 > 0.0, "every delivery has its latency: {report}");
}

#[test]
fn the_tungstenite_reader_sees_slow_consumers_closed_with_1013() {
    let server = Server::hub(2, &config(SLOW_TEST_QUEUE));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --reader tungstenite --subscribers 10 --slow-percent 20 --rate 1000 --count 3000 --size 4096",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["slow_subscribers"], 2, "{report}");
    assert_eq!(report["slow_closed_1013"], 2, "{report}");
    assert_eq!(report["deliveries"], 8 * 3000, "{report}");
}

#[test]
fn a_window_run_delivers_everything_and_reports_writes_per_delivery_or_none() {
    // Two publishers share the window: neither may run ahead of the
    // slowest subscriber by more than 8 events of both.
    let server = Server::hub(2, &config(1 << 20));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --subscribers 50 --publishers 2 --window 8 --rate 0 --count 300 --threads 2",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["window"], 8, "{report}");
    assert_eq!(report["published"], 600, "{report}");
    assert_eq!(report["expected"], 50 * 600, "{report}");
    assert_eq!(report["deliveries"], 50 * 600, "{report}");
    for check in ["gaps", "duplicates", "disorder"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
    // A hub with `eventhub_frames_per_write` gives figures, one without
    // gives none; the run goes on either way.
    let writes = &report["writes_per_delivery"];
    let frames = &report["frames_per_write"];
    assert!(
        (writes.is_null() && frames.is_null())
            || (writes.as_f64().is_some_and(|w| w > 0.0)
                && frames.as_f64().is_some_and(|f| f >= 1.0)),
        "{report}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("window 8") && table.contains("writes/delivery "),
        "{table}"
    );
}

#[test]
fn a_window_run_with_the_tungstenite_reader_delivers_everything() {
    let server = Server::hub(2, &config(1 << 20));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --reader tungstenite --subscribers 50 --window 4 --rate 0 --count 300",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["deliveries"], 50 * 300, "{report}");
    for check in ["gaps", "duplicates", "disorder"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
}

#[test]
fn an_idle_connect_storm_is_timed_with_the_servers_cpu_per_connection() {
    let server = Server::hub(2, &config(1 << 20));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --subscribers 300 --idle --idle-hold-s 0 --ramp-per-s 0",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["subscribers"], 300, "{report}");
    let connect = &report["connect"];
    assert!(
        connect["seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{report}"
    );
    assert!(
        connect["per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{report}"
    );
    assert!(
        connect["server_cpu_us_per_connection"].as_f64().is_some(),
        "with --server-pid: {report}"
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("connect storm") && table.contains("cpu/connection"),
        "{table}"
    );
}

/// A wss run under `reader`, against a hub that serves wss only: every
/// delivery counted through the tool's TLS, the slow consumers' 1013 seen
/// through it, and `/metrics` read over https (its slow-consumer count and
/// writes per delivery).
fn wss_run_delivers_everything(reader: &str) {
    let ca = TestCa::new("load-ca");
    let files = TlsFiles::new(&format!("load-{reader}"));
    let tls = files.pair(&ca.server("load"));
    let ca_file = files.write("ca.pem", &ca.cert_pem);
    let server = Server::hub(2, &format!("{}[tls]\n{tls}", config(SLOW_TEST_QUEUE)));
    assert!(server.tls_addr.is_some(), "the hub serves wss");
    let (out, report) = run_load(
        &server,
        &format!(
            "--kind eventhub --reader {reader} --subscribers 10 --slow-percent 20 --rate 1000 --count 3000 --size 4096 --tls-ca {}",
            ca_file.display()
        ),
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert!(
        report["transport"]
            .as_str()
            .is_some_and(|t| t.starts_with("wss TLSv1_3")),
        "{report}"
    );
    assert_eq!(report["expected"], 8 * 3000, "{report}");
    assert_eq!(report["deliveries"], 8 * 3000, "{report}");
    for check in ["gaps", "duplicates", "disorder"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
    assert_eq!(report["slow_subscribers"], 2, "{report}");
    assert_eq!(report["slow_closed_1013"], 2, "{report}");
    assert_eq!(report["server_slow_consumer_closes"], 2, "{report}");
    assert!(
        report["writes_per_delivery"]
            .as_f64()
            .is_some_and(|w| w > 0.0),
        "{report}"
    );
}

#[test]
fn over_wss_the_epoll_reader_delivers_everything_and_sees_1013() {
    wss_run_delivers_everything("epoll");
}

#[test]
fn over_wss_the_tungstenite_reader_delivers_everything_and_sees_1013() {
    wss_run_delivers_everything("tungstenite");
}

#[test]
fn a_plain_run_says_ws() {
    let server = Server::hub(1, &config(1 << 20));
    let (out, report) = run_load(
        &server,
        "--kind eventhub --subscribers 2 --rate 200 --count 20",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["transport"], "ws", "{report}");
}

#[test]
fn three_cluster_nodes_all_publishing_lose_duplicate_and_misorder_nothing() {
    // Publisher j and subscriber i on node j % 3 and i % 3: every
    // subscriber gets all three publishers' events, two thirds of them
    // published on other nodes, through the one stream.
    let nats = common::nats::Nats::start();
    // Bodies well under NATS's max_payload (1 MiB by default), so that a
    // node has nothing to warn of at start-up either.
    let limits = "[limits]\nmax_body_bytes = 65536\n";
    let config = format!(
        "{}[cluster]\nnats_url = \"{}\"\n",
        config(1 << 20).replace("[limits]\n", limits),
        nats.url()
    );
    let nodes: Vec<Server> = (0..3).map(|_| Server::hub(2, &config)).collect();
    let (out, report) = run_load_on(
        &nodes,
        "--kind eventhub --publishers 3 --subscribers 30 --rate 300 --count 200 --threads 2",
    );
    assert!(out.status.success(), "{}", explain(&out));
    assert_eq!(report["subscribers"], 30, "{report}");
    assert_eq!(report["connect_errors"], 0, "{report}");
    assert_eq!(report["published"], 3 * 200, "{report}");
    assert_eq!(report["expected"], 30 * 3 * 200, "{report}");
    assert_eq!(report["deliveries"], 30 * 3 * 200, "{report}");
    for check in ["gaps", "duplicates", "disorder", "slow_subscribers"] {
        assert_eq!(report[check], 0, "{check}: {report}");
    }
    assert!(
        report["server_cpu_us_per_delivery"]
            .as_f64()
            .is_some_and(|c| c > 0.0),
        "summed over the three nodes: {report}"
    );
    assert!(
        report["writes_per_delivery"]
            .as_f64()
            .is_some_and(|w| w > 0.0),
        "summed over the three nodes' /metrics: {report}"
    );
    for node in &nodes {
        let log = node.log_text();
        assert!(
            !log.contains("WARN") && !log.contains("ERROR"),
            "a node logged trouble:\n{log}"
        );
    }
}
