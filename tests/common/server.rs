//! The server process: `eventhub echo` or `eventhub serve` as a child
//! process with its config in a temporary file, its address read from its
//! stdout, its log from its stderr; stopped by signal or on drop.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::TIMEOUT;

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// The binary under test: this build's `eventhub`, or the one
/// `EVENTHUB_TEST_BIN` names (to run a suite against another build, e.g. an
/// older commit's, and see which of its tests fail there).
fn binary() -> PathBuf {
    std::env::var_os("EVENTHUB_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_eventhub")))
}

/// A running `eventhub` process; killed (SIGKILL) on drop if still alive.
pub struct Server {
    child: Child,
    /// The address it listens on, as printed on its stdout (its plain one
    /// when it has both).
    pub addr: SocketAddr,
    /// Its wss address, when it serves TLS.
    pub tls_addr: Option<SocketAddr>,
    /// Everything it wrote to stderr so far (its log).
    log: Arc<Mutex<Vec<u8>>>,
    config: Option<PathBuf>,
    exit: Option<ExitStatus>,
}

impl Server {
    /// `eventhub echo --listen 127.0.0.1:0 --workers N`, with `config` (TOML
    /// text) written to a temporary file and passed as `--config` if given.
    pub fn echo(workers: usize, config: Option<&str>) -> Server {
        let workers = workers.to_string();
        Server::start(
            &["echo", "--listen", "127.0.0.1:0", "--workers", &workers],
            config,
        )
    }

    /// `eventhub serve --listen 127.0.0.1:0 --workers N --config FILE`, with
    /// `config` (TOML text) written to a temporary file.
    pub fn hub(workers: usize, config: &str) -> Server {
        let workers = workers.to_string();
        Server::start(
            &["serve", "--listen", "127.0.0.1:0", "--workers", &workers],
            Some(config),
        )
    }

    /// `eventhub serve` as [`Server::hub`] does, on `addr` (a restart on
    /// the port of a run that just ended).
    pub fn hub_at(addr: SocketAddr, workers: usize, config: &str) -> Server {
        let (listen, workers) = (addr.to_string(), workers.to_string());
        Server::start(
            &["serve", "--listen", &listen, "--workers", &workers],
            Some(config),
        )
    }

    /// Starts the binary with `args` (plus `--config FILE` when `config` is
    /// given) and waits for the line on stdout that names its address.
    pub fn start(args: &[&str], config: Option<&str>) -> Server {
        Server::start_with(Command::new(binary()), args, config)
    }

    /// `eventhub serve` as [`Server::hub`] does, inside the network
    /// namespace `netns` (`ip netns exec`, which execs the binary, so the
    /// process and its pid are the hub's). Its address is that namespace's.
    pub fn hub_in_netns(netns: &str, workers: usize, config: &str) -> Server {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns]).arg(binary());
        let workers = workers.to_string();
        Server::start_with(
            cmd,
            &["serve", "--listen", "127.0.0.1:0", "--workers", &workers],
            Some(config),
        )
    }

    fn start_with(mut cmd: Command, args: &[&str], config: Option<&str>) -> Server {
        let config_path = config.map(write_temp_config);
        cmd.args(args);
        if let Some(path) = &config_path {
            cmd.arg("--config").arg(path);
        }
        cmd.env_remove("EVENTHUB_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the eventhub binary");

        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });

        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });

        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls_addr: None,
            log,
            config: config_path,
            exit: None,
        };
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => panic!(
                "eventhub exited before announcing its address; stderr:\n{}",
                server.log_text()
            ),
            Err(_) => panic!(
                "eventhub did not announce its address within {TIMEOUT:?}; stderr:\n{}",
                server.log_text()
            ),
        };
        let (plain, tls) = parse_listening_line(&line)
            .unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"));
        server.addr = plain.or(tls).expect("at least one address");
        server.tls_addr = tls;
        server
    }

    /// `ws://ADDR/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// The process's resident memory, from `/proc/PID/status`.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status");
        kib * 1024
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged to stderr so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn signal_term(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({sig}): {}", io::Error::last_os_error());
    }

    /// Waits (up to `timeout`) for the process to exit and returns its
    /// status; panics if it is still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "eventhub still running {timeout:?} after being asked to stop; stderr:\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(path) = &self.config {
            let _ = std::fs::remove_file(path);
        }
        if thread::panicking() {
            eprintln!("--- eventhub stderr ---\n{}", self.log_text());
        }
    }
}

/// `eventhub echo listening on ws://127.0.0.1:PORT (N workers)`,
/// `eventhub listening on http://127.0.0.1:PORT (N workers)`, with
/// `wss://` / `https://` for TLS, or both joined by `and` → the plain
/// address and the TLS one.
fn parse_listening_line(line: &str) -> Option<(Option<SocketAddr>, Option<SocketAddr>)> {
    let urls = line.split_once(" listening on ")?.1.split(" (").next()?;
    let (mut plain, mut tls) = (None, None);
    for url in urls.split(" and ") {
        let (scheme, addr) = url.split_once("://")?;
        let addr = addr.trim_end_matches('/').parse().ok()?;
        match scheme {
            "ws" | "http" => plain = Some(addr),
            "wss" | "https" => tls = Some(addr),
            _ => return None,
        }
    }
    Some((plain, tls))
}

fn write_temp_config(text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!(
        "eventhub-test-{}-{}.toml",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).expect("write the temporary config");
    path
}
