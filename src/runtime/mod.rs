//! The runtime shell: the only module that knows monoio, sockets and clocks.
//!
//! Runtime layer: above the protocol crate (which it drives) and the
//! config's limits; below the hub, the API and the echo application, which
//! it knows only as an [`App`]. One thread per core, each pinned and running
//! its own monoio runtime with its own `SO_REUSEPORT` listener, its own
//! connections and its own application instance; nothing on the hot path
//! crosses threads.
//!
//! The submodules are private; what an application sees is re-exported
//! here: [`App`], [`Route`], [`CoreInfo`], [`Settings`], [`Conn`], [`serve`],
//! [`spawn`], [`yield_now`], the counters ([`Stats`], [`family`], [`per_core`]) and
//! [`raise_nofile_limit`].
//!
//! - `app`: the contract with the application;
//! - `server`: listeners, worker threads, signals;
//! - `driver`: io_uring or epoll, pinning, the runtime itself;
//! - `worker`: one core's accept loop and graceful stop;
//! - `core`: a core's shared state and the per-slot table;
//! - `http`: reading a request head under a deadline (after a PROXY
//!   header from a trusted proxy), routing it before its body, answering
//!   errors;
//! - `pre_auth`: the cap on connections still in their HTTP phase;
//! - `reactor`: every upgraded connection of a core, one epoll set, one
//!   task;
//! - `ws`: one WebSocket connection's steps (recv, session, queue, flush);
//! - `conn`, `outbox`: per-connection state, the ready list and the
//!   vectored writer (which seals frames into TLS records on wss);
//! - `tls_link`: one connection's TLS, sans-IO over rustls's unbuffered
//!   API, driven by the HTTP phase and then by the reactor;
//!   `tls_records`: a TLS 1.3 connection's records after the handshake,
//!   with the keys taken over from rustls;
//! - `janitor`: the per-core timer: the tick, write timeouts, maximum
//!   age, and the sessions' deadlines;
//! - `balance`: moving upgraded connections to less loaded cores;
//! - `listener`, `registry`, `clock`, `stats`: bookkeeping;
//! - `sys`: every raw system call, each with its SAFETY note.

mod app;
mod balance;
mod clock;
mod conn;
mod core;
mod driver;
mod http;
mod janitor;
mod listener;
mod outbox;
mod pre_auth;
mod reactor;
mod registry;
mod server;
mod stats;
mod sys;
mod tls_link;
mod tls_records;
mod worker;
mod ws;
mod yielding;

use std::io;
use std::sync::Arc;

pub use app::{App, Bound, CoreInfo, Decision, Peer, Route, Settings, TlsSettings};
pub use conn::Conn;
pub use outbox::ENTRY_OVERHEAD;
pub use stats::{family, per_core, Stats};
pub use sys::raise_nofile_limit;
pub use tls_link::TlsFailure;

/// Binds the listeners, calls `ready` with the bound addresses, runs one
/// worker per core until SIGINT/SIGTERM and their graceful close, and
/// returns when every worker has stopped.
pub fn serve<A, F>(settings: Settings, make_app: F, ready: impl FnOnce(Bound)) -> io::Result<()>
where
    A: App,
    F: Fn(CoreInfo) -> A + Send + Sync + 'static,
{
    server::run_all(settings, Arc::new(make_app), ready)
}

/// Lets the calling core's other tasks (its reactor's writes above all) run
/// before coming back: the seam for an application's long loop (see
/// [`yielding`] for why this is not the usual self-wake).
pub async fn yield_now() {
    yielding::yield_now().await
}

/// Runs `task` on the calling core's runtime, beside its connections: the
/// application's long-lived tasks (a fan-out loop fed by a channel) start
/// here, from [`App::start`], without naming the runtime underneath.
pub fn spawn<F>(task: F)
where
    F: std::future::Future<Output = ()> + 'static,
{
    monoio::spawn(task);
}
