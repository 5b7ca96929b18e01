//! The runtime shell: the only module that knows monoio, sockets and clocks.
//!
//! One thread per core, each pinned and running its own monoio runtime with
//! its own `SO_REUSEPORT` listener, its own connections and its own
//! application instance; nothing on the hot path crosses threads. The layers
//! below ([`crate::proto`]) are pure; the application above is an [`App`]
//! that turns a request head into a response or an upgrade, and receives
//! the messages of the connections it upgraded.
//!
//! - [`listener`]: binding every worker's listener up front;
//! - [`worker`]: one core: driver choice, accept loop, janitor, shutdown;
//! - [`http`]: reading a request head under a deadline, answering errors;
//! - [`reactor`]: every upgraded connection of a core, one epoll set, one
//!   task;
//! - [`balance`]: moving upgraded connections to less loaded cores;
//! - [`ws`]: one WebSocket connection's steps (read, decode, write, close);
//! - [`conn`], [`outbox`]: per-connection state and the vectored writer;
//! - [`registry`], [`clock`], [`stats`]: bookkeeping.

pub mod balance;
pub mod clock;
pub mod conn;
pub mod http;
pub mod listener;
pub mod outbox;
pub mod reactor;
pub mod registry;
pub mod stats;
pub mod worker;
pub mod ws;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

pub use conn::{Conn, Phase};
pub use stats::Stats;

use crate::config::{DriverChoice, LimitsConfig};
use crate::proto::http::{Request, Response};
use crate::proto::MessageKind;

/// What the shell needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub workers: usize,
    pub driver: DriverChoice,
    pub pin_workers: bool,
    /// Move upgraded connections to less loaded cores ([`balance`]).
    pub balance_connections: bool,
    pub limits: LimitsConfig,
    /// Largest message a client may send (the reader closes with 1009).
    pub max_message_bytes: u64,
    /// Largest request body; larger is refused with 413.
    pub max_body_bytes: usize,
}

/// What a worker is told from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop accepting, close every connection with 1001, exit.
    Shutdown,
}

/// What an application is given on each core.
#[derive(Debug, Clone)]
pub struct CoreInfo {
    /// This core's index, 0-based.
    pub id: usize,
    /// The runtime counters of every core (for `/metrics`).
    pub stats: Arc<Stats>,
}

/// The answer to a request head.
pub enum Route<H> {
    /// Answer with this response and close.
    Respond(Response),
    /// Switch protocols (`accept` is `Sec-WebSocket-Accept`) and hand the
    /// connection to `handler`.
    Upgrade { accept: String, handler: H },
}

/// An application, one instance per core.
///
/// `route` is async because answering may need another core (the hub
/// routes an unsubscribe to the core that holds the connection). The
/// runtime is single-threaded per core, so the futures need not be `Send`.
///
/// A connection's own state is a [`Self::Handler`], held by the reactor
/// beside the socket and passed to the hooks below together with the
/// application. Keeping the per-core context here rather than in each
/// handler keeps an idle connection small: a handler need not hold a
/// reference to anything its core already has.
#[allow(async_fn_in_trait)]
pub trait App: 'static {
    /// `Send`: a handler may move to another core with its connection.
    type Handler: Send + 'static;
    /// Decides what to do with a request and its body (already read, at
    /// most `Settings::max_body_bytes`).
    async fn route(&self, req: &Request, body: Vec<u8>, peer: SocketAddr) -> Route<Self::Handler>;
    /// Called once on the core's runtime, before the first connection:
    /// the place to spawn the application's own tasks.
    fn start(self: &Rc<Self>) {}
    /// Called on shutdown before every connection is sent its close frame:
    /// the place to queue what must still reach the clients.
    fn on_shutdown(&self) {}
    /// The upgrade is done; frames sent now follow the 101 response.
    fn on_open(&self, _handler: &mut Self::Handler, _conn: &Rc<Conn>) {}
    /// A complete data message (text is valid UTF-8).
    fn on_message(
        &self,
        handler: &mut Self::Handler,
        kind: MessageKind,
        payload: &mut [u8],
        conn: &Rc<Conn>,
    );
    /// Every complete message of one read has been handled: the place to
    /// flush work batched across those messages.
    fn on_input_end(&self, _handler: &mut Self::Handler, _conn: &Rc<Conn>) {}
    /// The connection is gone.
    fn on_close(&self, _handler: &mut Self::Handler, _conn: &Rc<Conn>) {}
    /// Called by the core's janitor on every tick (twice a second): the
    /// place for the application's own timers (deadlines it keeps per
    /// connection, sampled gauges), so that it needs no timer of its own.
    fn on_tick(&self) {}
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

/// Binds the listeners, calls `ready` with the bound address, runs one
/// worker per core until SIGINT/SIGTERM and their graceful close, and
/// returns when every worker has stopped.
pub fn serve<A, F>(
    settings: Settings,
    make_app: F,
    ready: impl FnOnce(SocketAddr),
) -> io::Result<()>
where
    A: App,
    F: Fn(CoreInfo) -> A + Send + Sync + 'static,
{
    worker::run_all(settings, Arc::new(make_app), ready)
}
