//! What the runtime asks of the application above it, and what it gives it.
//!
//! Runtime layer: imports the connection ([`super::conn::Conn`]), the
//! config's limits and the protocol crate's request and response types.
//! This is the whole contract between the shell and an application (the hub
//! or the echo server): an [`App`] per core, a [`Decision`] on each request
//! head and a [`Route`] once a body it asked for is read, the
//! hooks of each upgraded connection, a tick.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::conn::Conn;
use super::stats::Stats;
use crate::config::{DriverChoice, KtlsChoice, LimitsConfig};
use crate::proto::forwarded::Cidr;
use crate::proto::http::{Request, Response};
use crate::proto::MessageKind;

/// What the shell needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub workers: usize,
    pub driver: DriverChoice,
    pub pin_workers: bool,
    /// Move upgraded connections to less loaded cores.
    pub balance_connections: bool,
    pub limits: LimitsConfig,
    /// Largest message a client may send (the reader closes with 1009).
    pub max_message_bytes: u64,
    /// Largest request body; larger is refused with 413.
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` or PROXY protocol header names the
    /// client (`server.trusted_proxies`); from any other peer a PROXY
    /// header is a 400 and `X-Forwarded-For` is ignored.
    pub trusted_proxies: Vec<Cidr>,
    /// wss, when configured.
    pub tls: Option<TlsSettings>,
    /// Accept permessage-deflate offers (`compression.enabled`).
    pub deflate: bool,
}

/// How wss is served.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The rustls config every handshake starts from.
    pub server_config: Arc<crate::tls::ServerConfig>,
    /// The served certificate (its expiry and reloads go to `/metrics`).
    pub store: Arc<crate::tls::CertStore>,
    /// Where: `None` = on [`Settings::listen`], instead of plain ws.
    pub listen: Option<SocketAddr>,
    /// `tls.ktls`: whether to look for kernel TLS at start-up.
    pub ktls: KtlsChoice,
}

/// The addresses being served, once bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Plain HTTP and ws (none when wss took [`Settings::listen`]).
    pub plain: Option<SocketAddr>,
    /// HTTPS and wss.
    pub tls: Option<SocketAddr>,
}

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address: the one a trusted proxy named, else the
    /// socket's peer.
    pub addr: SocketAddr,
    /// On wss with `tls.client_ca`: the subject common name of the client
    /// certificate the handshake verified.
    pub cert_name: Option<String>,
}

impl Peer {
    pub fn ip(&self) -> std::net::IpAddr {
        self.addr.ip()
    }
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

/// The answer to a request head, before any of its body is read.
pub enum Decision<H> {
    /// Answer (or upgrade) now: the body, if any, is never read (an
    /// upgrade's announced body, at most `Settings::max_body_bytes`, is
    /// read and dropped).
    Now(Route<H>),
    /// Read the body, at most `max` bytes (a larger `Content-Length` is a
    /// 413 before any of it is read), then call [`App::route`].
    ReadBody { max: usize },
}

impl<H> From<Route<H>> for Decision<H> {
    fn from(route: Route<H>) -> Decision<H> {
        Decision::Now(route)
    }
}

/// An application, one instance per core.
///
/// A request is decided in two steps: [`Self::route_head`] on the head
/// alone (answer, upgrade, or read the body within a bound), then, only if
/// it asked for the body, [`Self::route`] with it. `route` is async because
/// answering may need another core (the hub routes an unsubscribe to the
/// core that holds the connection). The
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
    /// Decides what to do with a request head, before its body: the place
    /// to authenticate and route, so that a request that will be refused
    /// (401, 404, 405, 413) is refused before its body is read or any room
    /// is reserved for it. `peer` says who sent it.
    fn route_head(&self, req: &Request, peer: &Peer) -> Decision<Self::Handler>;
    /// Decides what to do with a request whose head asked for its body
    /// ([`Decision::ReadBody`]); `body` is read, at most the bound asked.
    async fn route(&self, req: &Request, body: Vec<u8>, peer: &Peer) -> Route<Self::Handler>;
    /// Called once on the core's runtime, before the first connection:
    /// the place to start the application's own tasks ([`super::spawn`]).
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
    /// Whether the connection's input is wanted now (default: yes). While
    /// it is not, the socket is not read (its peer's writes back up); the
    /// question is asked again on each tick of the janitor.
    fn may_read(&self, _handler: &Self::Handler) -> bool {
        true
    }
    /// Every complete message of one read has been handled: the place to
    /// flush work batched across those messages.
    fn on_input_end(&self, _handler: &mut Self::Handler, _conn: &Rc<Conn>) {}
    /// A write left less than half of `limits.send_queue_bytes` queued on
    /// an open connection: the place to queue more of something sent at
    /// the pace the client reads (a replay), without passing the bound.
    fn on_drained(&self, _handler: &mut Self::Handler, _conn: &Rc<Conn>) {}
    /// The connection is gone.
    fn on_close(&self, _handler: &mut Self::Handler, _conn: &Rc<Conn>) {}
    /// Called by the core's janitor on every tick (twice a second): the
    /// place for the application's own timers (deadlines it keeps per
    /// connection, sampled gauges), so that it needs no timer of its own.
    fn on_tick(&self) {}
}
