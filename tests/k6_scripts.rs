//! Runs the k6 load scripts in `perf/k6/` briefly against the real binary,
//! so that they cannot rot: each must pass against a healthy hub, and the
//! loss thresholds of `fanout.js` (and the confirmation check of `storm.js`)
//! must be able to fail.
//!
//! k6 is looked up on `PATH`, then at `target/py-venv/bin/k6` (where
//! `scripts/setup.sh` installs it from `tests/python/requirements.txt`).
//! Without it these tests are skipped with a message, unless
//! `EVENTHUB_REQUIRE_K6` is set, which makes a missing k6 a failure.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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

/// A running `eventhub serve`, killed on drop.
struct Hub {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<u8>>>,
    _config: TempFile,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Hub {
    fn start() -> Hub {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("eventhub-k6-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, CONFIG).expect("write the config");
        let config = TempFile(path);

        let mut child = Command::new(env!("CARGO_BIN_EXE_eventhub"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--config",
            ])
            .arg(&config.0)
            .env_remove("EVENTHUB_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start eventhub");

        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });

        // First stdout line: "eventhub listening on http://127.0.0.1:PORT (2 workers)".
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let first = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "eventhub printed no address line; log:\n{}",
                    String::from_utf8_lossy(&log.lock().unwrap())
                );
            }
        };
        let addr = first
            .strip_prefix("eventhub listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_string();
        Hub {
            child,
            addr,
            log,
            _config: config,
        }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `k6 run --quiet --no-usage-report -e HUB=.. -e TOKEN=.. -e K=V.. SCRIPT`,
/// bounded by [`K6_TIMEOUT`].
fn run_k6(k6: &Path, hub: &Hub, script: &str, vars: &[(&str, &str)]) -> Output {
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
                hub.log()
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

fn describe(out: &Output, hub: &Hub) -> String {
    format!(
        "k6 exit status {:?}\n--- k6 stdout ---\n{}\n--- k6 stderr ---\n{}\n--- hub log ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        hub.log()
    )
}

/// Asserts k6 failed on crossed thresholds (its exit code 99) and that the
/// metrics it names include `metric`.
fn assert_threshold_failed(out: &Output, hub: &Hub, metric: &str) {
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
    let hub = Hub::start();
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
    let hub = Hub::start();
    // One delivery more is expected than the hub can make.
    let mut vars = FANOUT_SMALL.to_vec();
    vars.push(("EXPECT_EXTRA", "1"));
    let out = run_k6(&k6, &hub, "perf/k6/fanout.js", &vars);
    assert_threshold_failed(&out, &hub, "deliveries");
}

#[test]
fn fanout_script_fails_on_a_seq_gap() {
    let Some(k6) = k6() else { return };
    let hub = Hub::start();
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
    let hub = Hub::start();
    let vars = [("VUS", "5"), ("ITERATIONS", "100")];
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
    let hub = Hub::start();
    // A token the hub does not know: every handshake gets 401.
    let vars = [
        ("VUS", "2"),
        ("ITERATIONS", "4"),
        ("TOKEN", "not-the-k6-token-at-all"),
    ];
    let out = run_k6(&k6, &hub, "perf/k6/storm.js", &vars);
    assert_threshold_failed(&out, &hub, "checks");
}
