//! `eventhub events` and `eventhub publish`: the hub's own command-line
//! client.
//!
//! Why a client in the hub's binary: wscat, websocat and curl reach every
//! endpoint, but each user then rebuilds the same rules by hand: the token
//! in an `Authorization` header (never in the URL, where logs and proxies
//! keep it), Docker's `filters` JSON URL-encoded, and above all resuming:
//! reconnecting after the hub closes a connection (its maximum age, a slow
//! consumer's 1013, a network drop) with `since=<last seq>&epoch=<epoch>`
//! so that nothing is missed or shown twice, and waiting out a 409/429's
//! `Retry-After`. These commands do that once, the way the API documents
//! it, so `eventhub events` is to the hub what `docker events` is to the
//! engine.
//!
//! - [`connect`]: the hub's URL, TCP and TLS (rustls), the WebSocket
//!   handshake (tungstenite) with the bearer header, refusals as the hub
//!   sent them;
//! - [`events`]: the tail of `/v1/ws/subscribe` or `/events/ws`, with
//!   reconnects and resume;
//! - [`publish`]: events from the arguments or stdin over the publisher
//!   WebSocket, with its acks;
//! - [`format`]: the readable lines, and the times `--since`/`--until`
//!   take.
//!
//! Layer: beside `main` (as [`crate::cli`] is), but it imports nothing of
//! the server (no runtime, hub, API or config): it talks to a hub over the
//! network as any other client does, with blocking std sockets (reads time
//! out every 250 ms so a Ctrl-C is seen), rustls and tungstenite. Nothing
//! here knows clap: `cli` turns flags into these options.

pub mod connect;
pub mod events;
pub mod format;
pub mod publish;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Every way a client command fails.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid --url {url:?}: {why}")]
    Url { url: String, why: &'static str },
    #[error("cannot read the {what} file {}: {source}", path.display())]
    SecretFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} file {} is empty", path.display())]
    EmptySecretFile { what: &'static str, path: PathBuf },
    #[error("give a token (--token, EVENTHUB_TOKEN, --token-file) or an API key (--api-key, EVENTHUB_API_KEY, --api-key-file), not both")]
    TwoCredentials,
    #[error("cannot read CA certificates from {}: {why}", path.display())]
    Ca { path: PathBuf, why: String },
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("WebSocket handshake with {url} failed: {source}")]
    Handshake {
        url: String,
        source: Box<tungstenite::Error>,
    },
    /// The hub answered the upgrade with an HTTP error: its JSON body as
    /// it sent it.
    #[error("the hub refused {url}: {status} {body}")]
    Refused {
        url: String,
        status: u16,
        /// From `Retry-After` (409, 429, 503).
        retry_after_s: Option<u64>,
        body: String,
    },
    #[error("connection lost: {0}")]
    WebSocket(Box<tungstenite::Error>),
    /// The publisher socket ended before every message was answered.
    #[error("{count} event message(s) unacknowledged: {why}")]
    Unacknowledged { why: String, count: usize },
    #[error("{0} event message(s) were refused")]
    Refusals(usize),
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
    #[error("cannot write stdout: {0}")]
    Stdout(std::io::Error),
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signals(std::io::Error),
}

impl From<tungstenite::Error> for ClientError {
    fn from(e: tungstenite::Error) -> ClientError {
        ClientError::WebSocket(Box::new(e))
    }
}

/// Set by SIGINT or SIGTERM; the commands poll it between reads. A second
/// signal while it is set ends the process at once (exit 1).
pub fn stop_flag() -> Result<Arc<AtomicBool>, ClientError> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, flag.clone())
            .and_then(|_| signal_hook::flag::register(sig, flag.clone()))
            .map_err(ClientError::Signals)?;
    }
    Ok(flag)
}

/// A client command's exit: 0, or the error on stderr and 1 (refused
/// events were reported one by one already).
pub fn exit(command: &str, result: Result<(), ClientError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eventhub {command}: {e}");
            ExitCode::FAILURE
        }
    }
}
