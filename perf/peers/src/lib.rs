//! Shared command line for the peer servers that `perf/` benchmarks eventhub
//! against. Every peer speaks the same contract so one load tool drives them
//! all the same way:
//!
//! * `--listen ADDR` (default `127.0.0.1:9100`), `--threads N` (tokio worker
//!   threads, default: available cores); a peer that serves wss as well
//!   (tokio-tungstenite) takes `--tls-cert FILE --tls-key FILE` (PEM: the
//!   certificate chain, its key) and then serves wss only, so that its TLS
//!   cost can be set beside eventhub's;
//! * once listening, exactly one line on stdout:
//!   `peer <name> listening on ws://ADDR` (`wss://` with TLS);
//! * WebSocket on any path: a path starting with `/v1/ws/publish` is a
//!   publisher whose text messages are broadcast verbatim to every other
//!   connection (the subscribers). Query strings and auth headers are ignored.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Path prefix that marks a connection as a publisher.
pub const PUBLISH_PREFIX: &str = "/v1/ws/publish";

/// Broadcast capacity (tokio broadcast ring / per-subscriber queue), in messages.
pub const CAPACITY: usize = 1024;

/// Parsed command line.
pub struct Args {
    pub listen: SocketAddr,
    pub threads: usize,
    /// wss: the certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
}

/// `--tls-cert`, `--tls-key`.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Args {
    /// Parses `std::env::args`, exiting with a usage message on error;
    /// the TLS options only where the peer `serves_tls`.
    pub fn parse(name: &str, serves_tls: bool) -> Args {
        let tls_usage = if serves_tls {
            " [--tls-cert FILE --tls-key FILE]"
        } else {
            ""
        };
        let usage = format!("usage: peer-{name} [--listen ADDR] [--threads N]{tls_usage}");
        let (mut tls_cert, mut tls_key) = (None, None);
        let mut listen: SocketAddr = "127.0.0.1:9100".parse().expect("default address");
        let mut threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = || inline.clone().or_else(|| it.next());
            match key.as_str() {
                "--listen" => match value().and_then(|v| v.parse().ok()) {
                    Some(a) => listen = a,
                    None => fail(&usage, "--listen needs HOST:PORT"),
                },
                "--threads" => match value().and_then(|v| v.parse().ok()) {
                    Some(n) if n > 0 => threads = n,
                    _ => fail(&usage, "--threads needs a positive integer"),
                },
                "--tls-cert" if serves_tls => match value() {
                    Some(v) => tls_cert = Some(PathBuf::from(v)),
                    None => fail(&usage, "--tls-cert needs a file"),
                },
                "--tls-key" if serves_tls => match value() {
                    Some(v) => tls_key = Some(PathBuf::from(v)),
                    None => fail(&usage, "--tls-key needs a file"),
                },
                "-h" | "--help" => {
                    println!("{usage}");
                    std::process::exit(0);
                }
                other => fail(&usage, &format!("unknown argument {other:?}")),
            }
        }
        let tls = match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => fail(&usage, "--tls-cert and --tls-key go together"),
        };
        Args {
            listen,
            threads,
            tls,
        }
    }

    /// A multi-thread tokio runtime with `threads` workers.
    pub fn runtime(&self) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .enable_all()
            .build()
            .expect("build tokio runtime")
    }
}

fn fail(usage: &str, msg: &str) -> ! {
    eprintln!("{msg}\n{usage}");
    std::process::exit(2);
}

/// Prints the single readiness line the load tool waits for.
pub fn announce(name: &str, addr: SocketAddr, tls: bool) {
    let scheme = if tls { "wss" } else { "ws" };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "peer {name} listening on {scheme}://{addr}");
    let _ = out.flush();
}

/// Whether a request path (query string included or not) is a publisher's.
pub fn is_publisher(path: &str) -> bool {
    path.starts_with(PUBLISH_PREFIX)
}
