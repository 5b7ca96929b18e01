//! A real `nats-server` with JetStream, as a child process on a loopback
//! port of its own with a temporary store directory; stopped, restarted
//! on the same port and store, or killed, as a fault test needs.
//!
//! `scripts/setup.sh` installs it (Debian's `nats-server`, 2.9 with
//! JetStream); a test that needs it and cannot find it fails, naming the
//! package.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::TIMEOUT;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running nats-server.
pub struct Nats {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// Its JetStream store.
    pub store: PathBuf,
    extra: Vec<String>,
}

impl Nats {
    /// A nats-server with JetStream on a free port, a new store.
    pub fn start() -> Nats {
        Nats::start_with(&[])
    }

    /// [`Nats::start`] with more arguments (auth, TLS).
    pub fn start_with(extra: &[&str]) -> Nats {
        let store = std::env::temp_dir().join(format!(
            "eventhub-test-nats-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&store).expect("make the NATS store directory");
        let port = free_port();
        let mut nats = Nats {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            store,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        nats.spawn();
        nats
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("nats-server");
        cmd.args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .arg("-sd")
            .arg(&self.store)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run nats-server ({e}): scripts/setup.sh installs it (apt-get install nats-server)")
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Server is ready") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        rx.recv_timeout(TIMEOUT)
            .expect("nats-server did not say it is ready");
        self.child = Some(child);
    }

    /// Stops it (SIGTERM, as systemd would) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + TIMEOUT;
            while child.try_wait().ok().flatten().is_none() {
                assert!(Instant::now() < deadline, "nats-server did not stop");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The store directory (for a test that starts another server on it).
    pub fn store(&self) -> &Path {
        &self.store
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
