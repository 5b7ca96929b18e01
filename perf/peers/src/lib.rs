//! Shared command line for the peer servers that `perf/` benchmarks eventhub
//! against. Every peer speaks the same contract so one load tool drives them
//! all the same way:
//!
//! * `--listen ADDR` (default `127.0.0.1:9100`), `--threads N` (tokio worker
//!   threads, default: available cores);
//! * once listening, exactly one line on stdout:
//!   `peer <name> listening on ws://ADDR`;
//! * WebSocket on any path: a path starting with `/v1/ws/publish` is a
//!   publisher whose text messages are broadcast verbatim to every other
//!   connection (the subscribers). Query strings and auth headers are ignored.

use std::io::Write;
use std::net::SocketAddr;

/// Path prefix that marks a connection as a publisher.
pub const PUBLISH_PREFIX: &str = "/v1/ws/publish";

/// Broadcast capacity (tokio broadcast ring / per-subscriber queue), in messages.
pub const CAPACITY: usize = 1024;

/// Parsed command line.
pub struct Args {
    pub listen: SocketAddr,
    pub threads: usize,
}

impl Args {
    /// Parses `std::env::args`, exiting with a usage message on error.
    pub fn parse(name: &str) -> Args {
        let usage = format!("usage: peer-{name} [--listen ADDR] [--threads N]");
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
                "-h" | "--help" => {
                    println!("{usage}");
                    std::process::exit(0);
                }
                other => fail(&usage, &format!("unknown argument {other:?}")),
            }
        }
        Args { listen, threads }
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
pub fn announce(name: &str, addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "peer {name} listening on ws://{addr}");
    let _ = out.flush();
}

/// Whether a request path (query string included or not) is a publisher's.
pub fn is_publisher(path: &str) -> bool {
    path.starts_with(PUBLISH_PREFIX)
}
