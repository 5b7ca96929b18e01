//! Runs the k6 load scripts in `perf/k6/` briefly against the real binary,
//! so that they cannot rot: each must pass against a healthy hub, and the
//! loss thresholds of `fanout.js` (and the confirmation check of `storm.js`)
//! must be able to fail.
//!
//! k6 is looked up on `PATH`, then at `target/py-venv/bin/k6` (where
//! `scripts/setup.sh` installs it from `tests/python/requirements.txt`).
//! Without it these tests are skipped with a message, unless
//! `EVENTHUB_REQUIRE_K6` is set, which makes a missing k6 a failure.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::Server;

const TOKEN: &str = "k6-token-0123456789abcdef";

const CONFIG: &str = r#"[hub]
max_connections_per_ip = 0
connect_rate_per_ip = 0.0
[[principals]]
name = "k6"
token = "k6-token-0123456789abcdef"
admin = true
publish = ["*"]
"#;

/// The longest one k6 run may take before the test gives up on it.
const K6_TIMEOUT: Duration = Duration::from_secs(180);

/// One k6 run at a time: the tests run in parallel threads, and k6 plus the
/// hub can saturate a small machine, which would only make the timings
/// (not the verdicts) worse.
static K6_LOCK: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// k6 on `PATH`, else `target/py-venv/bin/k6`; `None` means skip (or panic
/// when `EVENTHUB_REQUIRE_K6` is set).
fn k6() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("k6"))
            .find(|p| p.is_file())
    });
    let found = on_path.or_else(|| {
        let venv = repo_root().join("target/py-venv/bin/k6");
        venv.is_file().then_some(venv)
    });
    if found.is_none() {
        if std::env::var_os("EVENTHUB_REQUIRE_K6").is_some() {
            panic!(
                "k6 not found on PATH or at target/py-venv/bin/k6, and EVENTHUB_REQUIRE_K6 is set"
            );
        }
        eprintln!(
            "SKIPPED: k6 not found on PATH or at target/py-venv/bin/k6 \
             (scripts/setup.sh installs it; set EVENTHUB_REQUIRE_K6 to make this a failure)"
        );
    }
    found
}

/// `eventhub serve` with [`CONFIG`] on two workers.
fn start_hub() -> Server {
    Server::hub(2, CONFIG)
}

/// `k6 run --quiet --no-usage-report -e HUB=.. -e TOKEN=.. -e K=V.. SCRIPT`,
/// bounded by [`K6_TIMEOUT`].
fn run_k6(k6: &Path, hub: &Server, script: &str, vars: &[(&str, &str)]) -> Output {
    let _serial = K6_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(k6);
    cmd.current_dir(repo_root())
        .args(["run", "--quiet", "--no-usage-report"])
        .args(["-e", &format!("HUB={}", hub.addr)])
        .args(["-e", &format!("TOKEN={TOKEN}")]);
    for (k, v) in vars {
        cmd.args(["-e", &format!("{k}={v}")]);
    }
    let mut child = cmd
        .arg(script)
        .env("K6_NO_USAGE_REPORT", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start k6");

    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + K6_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for k6") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "k6 {script} ran longer than {K6_TIMEOUT:?}; hub log:\n{}",
                hub.log_text()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn describe(out: &Output, hub: &Server) -> String {
    format!(
        "k6 exit status {:?}\n--- k6 stdout ---\n{}\n--- k6 stderr ---\n{}\n--- hub log ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        hub.log_text()
    )
}

/// Asserts k6 failed on crossed thresholds (its exit code 99) and that the
/// metrics it names include `metric`.
fn assert_threshold_failed(out: &Output, hub: &Server, metric: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let crossed = stderr
        .lines()
        .find(|l| l.contains("thresholds on metrics"))
        .unwrap_or("");
    assert!(
        out.status.code() == Some(99) && crossed.contains(metric),
        "expected k6 to fail the `{metric}` threshold (exit 99)\n{}",
        describe(out, hub)
    );
}

const FANOUT_SMALL: [(&str, &str); 3] = [("SUBSCRIBERS", "10"), ("EVENTS", "50"), ("RATE", "50")];

#[test]
fn fanout_script_passes_against_a_healthy_hub() {
    let Some(k6) = k6() else { return };
    let hub = start_hub();
    let mut vars = FANOUT_SMALL.to_vec();
    vars.push(("SIZE", "512"));
    let out = run_k6(&k6, &hub, "perf/k6/fanout.js", &vars);
    assert!(
        out.status.success(),
        "fanout.js failed\n{}",
        describe(&out, &hub)
    );
}

#[test]
fn fanout_script_fails_when_deliveries_fall_short() {
    let Some(k6) = k6() else { return };
    let hub = start_hub();
    // One delivery more is expected than the hub can make.
    let mut vars = FANOUT_SMALL.to_vec();
    vars.push(("EXPECT_EXTRA", "1"));
    let out = run_k6(&k6, &hub, "perf/k6/fanout.js", &vars);
    assert_threshold_failed(&out, &hub, "deliveries");
}

#[test]
fn fanout_script_fails_on_a_seq_gap() {
    let Some(k6) = k6() else { return };
    let hub = start_hub();
    // The publisher slips one event onto another channel halfway: the
    // subscribers see a hole in the seqs.
    let mut vars = FANOUT_SMALL.to_vec();
    vars.push(("INJECT_GAP", "1"));
    let out = run_k6(&k6, &hub, "perf/k6/fanout.js", &vars);
    assert_threshold_failed(&out, &hub, "gaps");
    assert_threshold_failed(&out, &hub, "checks");
}

#[test]
fn storm_script_passes_against_a_healthy_hub() {
    let Some(k6) = k6() else { return };
    let hub = start_hub();
    // k6's own client misses a first message about once in 6,000
    // connections (see storm.js); one miss in 100 is k6, not the hub.
    let vars = [("VUS", "5"), ("ITERATIONS", "100"), ("MAX_MISSED", "1")];
    let out = run_k6(&k6, &hub, "perf/k6/storm.js", &vars);
    assert!(
        out.status.success(),
        "storm.js failed\n{}",
        describe(&out, &hub)
    );
}

#[test]
fn storm_script_fails_when_connections_are_refused() {
    let Some(k6) = k6() else { return };
    let hub = start_hub();
    // A token the hub does not know: every handshake gets 401.
    let vars = [
        ("VUS", "2"),
        ("ITERATIONS", "4"),
        ("TOKEN", "not-the-k6-token-at-all"),
    ];
    let out = run_k6(&k6, &hub, "perf/k6/storm.js", &vars);
    assert_threshold_failed(&out, &hub, "checks");
}

#[test]
fn storm_script_fails_when_no_confirmation_comes() {
    let Some(k6) = k6() else { return };
    // The echo server upgrades every request but never speaks first.
    let echo = Server::echo(1, None);
    let vars = [
        ("VUS", "2"),
        ("ITERATIONS", "4"),
        ("TIMEOUT_S", "1"),
        ("MAX_MISSED", "1"),
    ];
    let out = run_k6(&k6, &echo, "perf/k6/storm.js", &vars);
    assert_threshold_failed(&out, &echo, "missed_confirmations");
}
