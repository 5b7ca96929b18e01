//! A new connection's HTTP phase: read the request head under a deadline and
//! a size bound, route it before reading any body, then either answer and
//! close or hand over to the WebSocket loop.
//!
//! Runtime layer: imports the core, the balancer, [`super::ws::adopt`],
//! [`super::sys`] and the protocol crate's head parser. It runs as a monoio
//! task per accepted connection, for the length of the HTTP phase only.
//!
//! Reads wait for readiness and then take what the socket has with a
//! non-blocking `recv`; writes are non-blocking `send`s that wait for
//! writability when the socket is full. An error response is followed by a
//! half-close and a short drain of whatever the client still sends, so the
//! kernel does not answer those bytes with a reset that could destroy the
//! response before the client reads it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::app::{App, Decision, Route};
use super::balance::Handoff;
use super::core::Core;
use super::pre_auth::PreAuthRefusal;
use super::stats::bump;
use super::sys;
use super::ws::adopt;
use crate::proto::forwarded::{canonical, client_from_chain, ForwardedError};
use crate::proto::http::{parse_head, HeadLimits, HttpError, Request, Response};
use crate::proto::proxy::{self, Detect};

/// How long an answered connection is drained before it is dropped.
const LINGER: Duration = Duration::from_millis(500);

/// Why no request head was read.
enum HeadError {
    /// The peer went away (or the socket failed) before a whole head.
    Closed,
    /// The head broke a rule.
    Http(HttpError),
    /// Refused for another reason (a PROXY header), with this answer.
    Respond(Response),
}

/// Serves one accepted connection from its first byte to its last.
///
/// The HTTP phase runs boxed: it is short-lived but its state (request
/// head, routing, error responses) is large, and a future's size is that of
/// its largest state. Boxing it keeps the long-lived state, the WebSocket
/// loop, as small as it can be for every idle connection.
pub(super) async fn serve_connection<A: App>(
    core: Rc<Core<A>>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let upgrade = Box::pin(http_phase(&core, &stream, peer)).await;
    if let Some((accept, handler, leftover)) = upgrade {
        // The reactor gets a descriptor of its own; monoio's goes with the
        // stream (so no driver state outlives this task).
        match sys::dup(stream.as_raw_fd()) {
            Ok(fd) => {
                drop(stream);
                let conn = Handoff {
                    fd,
                    accept,
                    handler,
                    leftover,
                };
                match core.balancer.place(core.id, conn) {
                    Some(h) => adopt(&core, h.fd, &h.accept, h.handler, h.leftover),
                    None => bump(&core.stats().handed_off),
                }
            }
            Err(e) => log::warn!("worker {}: cannot keep a connection: {e}", core.id),
        }
    }
}

/// Reads and routes the request; answers it unless it is an upgrade, which
/// it returns.
///
/// In order: the cap on connections in their HTTP phase (429 per address,
/// 503 in total, before a byte is read); a PROXY header if the peer is a
/// trusted proxy (from another peer it is a 400); the head; the client's
/// address (the PROXY header's, else `X-Forwarded-For`'s from a trusted
/// peer, else the peer's); [`App::route_head`]; and only if it asks, the
/// body, within the bound it gives (a larger `Content-Length` is a 413
/// before any of it is read). The whole phase runs under the handshake
/// timeout (408).
async fn http_phase<A: App>(
    core: &Core<A>,
    stream: &TcpStream,
    peer: SocketAddr,
) -> Option<(String, A::Handler, Vec<u8>)> {
    let _ = stream.set_nodelay(true);
    let trusted = is_trusted(core, peer.ip());
    let _place = match core
        .pre_auth
        .admit((!trusted).then(|| canonical(peer.ip())))
    {
        Ok(place) => place,
        Err(why) => {
            bump(&core.stats().refused);
            let resp = match why {
                PreAuthRefusal::PerIp => Response::error(
                    429,
                    "too_many_pending",
                    &format!(
                        "{} has too many connections that have not finished their request",
                        peer.ip()
                    ),
                ),
                PreAuthRefusal::Total => Response::error(
                    503,
                    "too_many_pending",
                    "too many connections have not finished their request; retry shortly",
                ),
            };
            log::debug!("{peer}: refused before its request: {why:?}");
            respond(core, stream, resp.with_header("Retry-After", "1")).await;
            return None;
        }
    };
    let limits = HeadLimits {
        max_head_bytes: core.settings.limits.max_head_bytes,
        max_headers: core.settings.limits.max_headers,
    };
    let timeout = core.settings.limits.handshake_timeout();
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let head = monoio::time::timeout(timeout, read_head(stream, &limits, trusted)).await;
    let (req, proxied, rest) = match head {
        Ok(Ok(got)) => got,
        Ok(Err(e)) => return refuse_head(core, stream, peer, e).await,
        Err(_) => return timed_out(core, stream).await,
    };
    let client = match client_address(core, peer, proxied, &req) {
        Ok(c) => c,
        Err(e) => {
            let resp = Response::error(400, "bad_forwarded_for", &e.to_string());
            return refuse_head(core, stream, peer, HeadError::Respond(resp)).await;
        }
    };
    if core.draining.get() {
        let resp = Response::error(503, "shutting_down", "server is restarting; retry shortly")
            .with_header("Retry-After", "1");
        respond(core, stream, resp).await;
        return None;
    }
    let max_body = core.settings.max_body_bytes;
    match core.app.route_head(&req, client) {
        Decision::Now(Route::Respond(resp)) => {
            if resp.status >= 400 {
                bump(&core.stats().refused);
            }
            respond(core, stream, resp).await;
            None
        }
        Decision::Now(Route::Upgrade { accept, handler }) => {
            // An announced body (unusual on an upgrade) is read and dropped.
            let read = monoio::time::timeout(left(), read_body(stream, &req, max_body, rest));
            match read.await {
                Ok(Ok((_, leftover))) => Some((accept, handler, leftover)),
                Ok(Err(e)) => refuse_head(core, stream, client, e).await,
                Err(_) => timed_out(core, stream).await,
            }
        }
        Decision::ReadBody { max } => {
            let max = max.min(max_body);
            let read = monoio::time::timeout(left(), read_body(stream, &req, max, rest));
            let (body, leftover) = match read.await {
                Ok(Ok(got)) => got,
                Ok(Err(e)) => return refuse_head(core, stream, client, e).await,
                Err(_) => return timed_out(core, stream).await,
            };
            match core.app.route(&req, body, client).await {
                Route::Respond(resp) => {
                    if resp.status >= 400 {
                        bump(&core.stats().refused);
                    }
                    respond(core, stream, resp).await;
                    None
                }
                Route::Upgrade { accept, handler } => Some((accept, handler, leftover)),
            }
        }
    }
}

/// Whether `ip` is one of `server.trusted_proxies`.
fn is_trusted<A: App>(core: &Core<A>, ip: IpAddr) -> bool {
    core.settings.trusted_proxies.iter().any(|c| c.contains(ip))
}

/// The client's address: the PROXY header's source if one came, else the
/// peer's; and while that is a trusted proxy, the client `X-Forwarded-For`
/// names (the right-most hop that is not a trusted proxy).
fn client_address<A: App>(
    core: &Core<A>,
    peer: SocketAddr,
    proxied: Option<SocketAddr>,
    req: &Request,
) -> Result<SocketAddr, ForwardedError> {
    let addr = proxied.unwrap_or(peer);
    if !is_trusted(core, addr.ip()) {
        return Ok(addr);
    }
    let chain = req.headers_named("x-forwarded-for");
    Ok(match client_from_chain(chain, |ip| is_trusted(core, ip))? {
        Some(ip) => SocketAddr::new(ip, addr.port()),
        None => addr,
    })
}

/// Answers a head that broke a rule, or says nothing to a peer that left.
async fn refuse_head<A: App, T>(
    core: &Core<A>,
    stream: &TcpStream,
    who: SocketAddr,
    e: HeadError,
) -> Option<T> {
    let resp = match e {
        HeadError::Closed => return None,
        HeadError::Http(e) => {
            log::debug!("{who}: bad request: {e}");
            Response::error(e.status(), e.code(), &e.to_string())
        }
        HeadError::Respond(resp) => {
            log::debug!("{who}: refused: {}", resp.status);
            resp
        }
    };
    bump(&core.stats().refused);
    respond(core, stream, resp).await;
    None
}

/// Answers a request that did not arrive within the handshake timeout.
async fn timed_out<A: App, T>(core: &Core<A>, stream: &TcpStream) -> Option<T> {
    bump(&core.stats().refused);
    let msg = "request not received within the handshake timeout";
    respond(core, stream, Response::error(408, "request_timeout", msg)).await;
    None
}

/// Reads a PROXY header (only from a trusted peer: from another it is a
/// 400) and then a request head; returns the head, the client the PROXY
/// header named (if any), and the bytes read after the head.
async fn read_head(
    stream: &TcpStream,
    limits: &HeadLimits,
    trusted: bool,
) -> Result<(Request, Option<SocketAddr>, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut proxied = None;
    loop {
        match proxy::detect(&buf) {
            Detect::Absent => break,
            Detect::NeedMore => recv_some(stream, &mut buf).await?,
            Detect::Present if !trusted => {
                return Err(HeadError::Respond(Response::error(
                    400,
                    "proxy_header_refused",
                    "a PROXY protocol header is accepted only from server.trusted_proxies",
                )))
            }
            Detect::Present => match proxy::parse(&buf) {
                Ok(Some((header, len))) => {
                    proxied = header.source;
                    buf.drain(..len);
                    break;
                }
                Ok(None) => recv_some(stream, &mut buf).await?,
                Err(e) => {
                    let resp = Response::error(400, "bad_proxy_header", &e.to_string());
                    return Err(HeadError::Respond(resp));
                }
            },
        }
    }
    let (req, head_len) = loop {
        if let Some(got) = parse_head(&buf, limits).map_err(HeadError::Http)? {
            break got;
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(limits.max_head_bytes));
        }
        recv_some(stream, &mut buf).await?;
    };
    Ok((req, proxied, buf.split_off(head_len)))
}

/// Reads the body `req` announces (at most `max`: a larger one is a 413
/// before any of it is read) after the `rest` already read; returns it and
/// any bytes after it (the first WebSocket frames, for an upgrade).
async fn read_body(
    stream: &TcpStream,
    req: &Request,
    max: usize,
    mut rest: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let body_len = req.body_length(max).map_err(HeadError::Http)?;
    rest.reserve(body_len.saturating_sub(rest.len()));
    while rest.len() < body_len {
        recv_some(stream, &mut rest).await?;
    }
    let leftover = rest.split_off(body_len);
    Ok((rest, leftover))
}

/// Receives at least one byte into the spare capacity of `buf`.
async fn recv_some(stream: &TcpStream, buf: &mut Vec<u8>) -> Result<(), HeadError> {
    let fd = stream.as_raw_fd();
    if buf.len() == buf.capacity() {
        buf.reserve(1024);
    }
    loop {
        match sys::recv_into_spare(fd, buf) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stream
                    .readable(false)
                    .await
                    .map_err(|_| HeadError::Closed)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(HeadError::Closed),
        }
    }
}

/// Writes `resp`, half-closes, drains briefly, and lets the socket go.
async fn respond<A: App>(core: &Core<A>, stream: &TcpStream, resp: Response) {
    let bytes = resp.to_bytes(false);
    let sent = monoio::time::timeout(
        core.settings.limits.write_timeout(),
        send_all(stream, &bytes),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    sys::shutdown(stream.as_raw_fd(), libc::SHUT_WR);
    let _ = monoio::time::timeout(LINGER, drain(stream)).await;
}

/// Reads and discards until the peer closes.
async fn drain(stream: &TcpStream) {
    let mut scratch = [0u8; 1024];
    loop {
        match sys::recv(stream.as_raw_fd(), &mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stream.readable(false).await.is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Sends all of `bytes`, waiting for writability as needed.
async fn send_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match sys::send(stream.as_raw_fd(), bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable(false).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
